"""``segviewer predict --set KEY=VALUE``: a key no model reads is a one-line error (exit 2), and
each adapter's ``params_keys`` declaration is checked against what its code reads."""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path
from typing import Any

import pytest

import segviewer.adapters as adapters_pkg
from segviewer.adapters.registry import create_adapter, get_card, list_cards
from segviewer.cli import main
from segviewer.commands.predict import check_model_options
from segviewer.core.errors import SegviewerError

ADAPTERS_DIR = Path(adapters_pkg.__file__).parent


def _image(tmp_path: Path) -> Path:
    import numpy as np

    from segviewer.core.fileio import encode_image

    p = tmp_path / "x.png"
    p.write_bytes(encode_image(np.zeros((40, 48, 3), np.uint8)))
    return p


def test_unknown_set_key_is_one_line_error_naming_accepted_keys(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    rc = main(["predict", str(_image(tmp_path)), "--model", "shapes_msrcnn", "--device", "cpu",
               "--out", str(out), "--set", "scroing=box"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1, err
    assert "scroing" in err[0] and "scoring" in err[0] and "min_size" in err[0]
    assert not out.exists()  # refused before anything was loaded or written


def test_declared_keys_pass_and_plugins_without_declaration_accept_any() -> None:
    ad = create_adapter("shapes_msrcnn")
    check_model_options([ad], ["scoring", "min_size"])
    check_model_options([ad], [])
    with pytest.raises(SegviewerError, match="stage"):
        check_model_options([ad], ["stage"])  # the FCN's key, not this model's

    class Plugin:  # a third-party adapter that declares nothing: what it reads is unknown
        card = ad.card

    check_model_options([Plugin()], ["anything"])
    fcn = create_adapter("shapes_fcn")
    check_model_options([ad, fcn], ["stage", "scoring"])  # --panoptic: either model may read a key
    with pytest.raises(SegviewerError, match="shapes_fcn accepts min_size, stage"):
        check_model_options([ad, fcn], ["nope"])


def _keys_read(tree: ast.AST) -> set[str]:
    """String keys read from ``params.extra``: ``dict(params.extra).get("k")``, and through a name
    bound to ``dict(params.extra)``: ``x.get("k")``, ``x["k"]``, ``"k" in x``."""

    def is_extra(node: ast.AST) -> bool:
        return (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict"
                and len(node.args) == 1 and isinstance(node.args[0], ast.Attribute)
                and node.args[0].attr == "extra" and isinstance(node.args[0].value, ast.Name)
                and node.args[0].value.id == "params")

    keys: set[str] = set()
    scopes = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    for scope in scopes or [tree]:  # a name bound to dict(params.extra) counts in its own function only
        keys |= _scope_keys(scope, is_extra)
    return keys


def _scope_keys(scope: ast.AST, is_extra: Any) -> set[str]:
    names = {t.id for n in ast.walk(scope) if isinstance(n, ast.Assign) and is_extra(n.value)
             for t in n.targets if isinstance(t, ast.Name)}

    def source(node: ast.AST) -> bool:
        return is_extra(node) or (isinstance(node, ast.Name) and node.id in names)

    keys: set[str] = set()
    for n in ast.walk(scope):
        if (isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "get"
                and source(n.func.value) and n.args and isinstance(n.args[0], ast.Constant)):
            keys.add(str(n.args[0].value))
        elif isinstance(n, ast.Subscript) and source(n.value) and isinstance(n.slice, ast.Constant):
            keys.add(str(n.slice.value))
        elif (isinstance(n, ast.Compare) and isinstance(n.left, ast.Constant) and len(n.comparators) == 1
              and isinstance(n.ops[0], ast.In | ast.NotIn) and source(n.comparators[0])):
            keys.add(str(n.left.value))
    return keys


def _adapter_classes() -> list[type]:
    """Every bundled adapter class a model card names."""
    out = []
    for card in list_cards():
        spec = str(get_card(card.id).extra.get("adapter", ""))
        if ":" in spec and spec.startswith("segviewer.adapters."):
            mod, name = spec.split(":")
            out.append(getattr(importlib.import_module(mod), name))
    return list(dict.fromkeys(out))


def test_scanner_sees_every_read_pattern() -> None:
    src = ("def f(params):\n    e = dict(params.extra)\n    a = e.get('a'); b = e['b']; c = 'c' in e\n"
           "    d = dict(params.extra).get('d', 1)\n")
    assert _keys_read(ast.parse(src)) == {"a", "b", "c", "d"}


def test_params_keys_cover_what_each_adapter_reads() -> None:
    classes = _adapter_classes()
    assert len(classes) >= 8
    helpers: dict[str, set[str]] = {}  # module-level function -> keys it reads
    everywhere: set[str] = set()
    for path in sorted(ADAPTERS_DIR.rglob("*.py")):
        tree = ast.parse(path.read_text())
        everywhere |= _keys_read(tree)
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and _keys_read(node):
                helpers[node.name] = _keys_read(node)
    declared_any: set[str] = set()
    for cls in classes:
        declared = set(getattr(cls, "params_keys", ("<missing>",)))
        assert "<missing>" not in declared, f"{cls.__name__} declares no params_keys"
        declared_any |= declared
        for base in cls.__mro__:
            if not base.__module__.startswith("segviewer.adapters"):
                continue
            node = ast.parse(inspect.getsource(base))
            read = _keys_read(node)
            called = {n.func.id for n in ast.walk(node) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
            for name in called & set(helpers):
                read |= helpers[name]
            assert read <= declared, f"{cls.__name__} reads {sorted(read - declared)} (via {base.__name__}) undeclared"
    # keys read in code no adapter class reaches directly (one_pass, internals_upsample) still
    # have to be some model's declared key, or --set could never reach them
    assert everywhere <= declared_any, sorted(everywhere - declared_any)
    assert {"scoring", "stage", "min_size", "task", "points"} <= everywhere  # the scan finds real reads
