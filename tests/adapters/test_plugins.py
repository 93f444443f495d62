"""The plugin door: families registered through the ``segviewer.adapters`` entry-point group.

The README's example package is installed for real (``pip install --target`` into a temp folder put
on ``sys.path``, so the environment is untouched) and run through the registry and ``predict``;
faster tests point a real ``EntryPoint`` at modules written into ``tmp_path``.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from segviewer.adapters import plugins, registry
from segviewer.core.errors import SegviewerError
from segviewer.core.results import SemanticMap

README = Path(__file__).resolve().parents[2] / "README.md"


def _readme_block(name: str) -> str:
    text = README.read_text(encoding="utf-8")
    m = re.search(rf"<!-- plugin-example: {re.escape(name)} -->\s*```\w*\n(.*?)```", text, re.S)
    assert m, f"README has no plugin example block for {name}"
    return m.group(1)


@pytest.fixture
def on_path(tmp_path: Path) -> Iterator[Path]:
    """A folder on ``sys.path`` for this test only (modules imported from it are forgotten after)."""
    folder = tmp_path / "site"
    folder.mkdir()
    sys.path.insert(0, str(folder))
    before = set(sys.modules)
    try:
        yield folder
    finally:
        sys.path.remove(str(folder))
        for name in set(sys.modules) - before:
            mod = sys.modules.get(name)
            if getattr(mod, "__file__", None) and str(folder) in str(mod.__file__):
                del sys.modules[name]
        importlib.invalidate_caches()


@pytest.mark.slow  # pip builds and installs the example: about 7 s
def test_readme_example_installs_lists_loads_and_predicts(on_path: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    pkg = tmp_path / "segviewer-threshold"
    pkg.mkdir()
    (pkg / "pyproject.toml").write_text(_readme_block("pyproject.toml"))
    (pkg / "segviewer_threshold.py").write_text(_readme_block("segviewer_threshold.py"))
    assert len(_readme_block("segviewer_threshold.py").strip().splitlines()) <= 26  # "a 20-line example"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(on_path), str(pkg)], check=True, capture_output=True)
    importlib.invalidate_caches()
    assert any(ep.name == "brightness" for ep in importlib.metadata.entry_points(group=plugins.GROUP))

    card = registry.get_card("brightness")
    assert card.extra["plugin"].startswith("plugin 'brightness' (segviewer_threshold:cards, from segviewer")
    assert "brightness" in {c.id for c in registry.list_cards()}
    ad = registry.create_adapter("brightness")
    ad.load("cpu")
    img = np.zeros((4, 6, 3), np.uint8)
    img[:, 3:] = 200
    res = ad.predict(img)
    assert isinstance(res, SemanticMap) and res.categories == ("dark", "bright")
    assert res.labels[:, :3].max() == 0 and res.labels[:, 3:].min() == 1

    from segviewer.cli import main

    assert main(["models", "--task", "semantic"]) == 0
    assert "brightness" in capsys.readouterr().out
    scenes = Path(__file__).resolve().parents[2] / "assets" / "scenes"
    one = sorted(scenes.glob("*.png"))[0]
    src = tmp_path / "in"
    src.mkdir()
    (src / one.name).write_bytes(one.read_bytes())
    assert main(["predict", "--model", "brightness", "--out", str(tmp_path / "out"), str(src)]) == 0
    assert any((tmp_path / "out").rglob("*.png"))


def _entry_point(monkeypatch: pytest.MonkeyPatch, *eps: importlib.metadata.EntryPoint) -> None:
    real = importlib.metadata.entry_points

    def fake(**kw: object) -> object:
        if kw.get("group") == plugins.GROUP:
            return importlib.metadata.EntryPoints(eps)
        return real(**kw)  # type: ignore[arg-type]

    monkeypatch.setattr(plugins, "entry_points", fake)


MODULE = '''
import numpy as np
from segviewer.adapters.base import ModelCard
from segviewer.core.results import SemanticMap

def cards():
    return [ModelCard(id="half", task="semantic", family="left and right", categories=("left", "right"),
                      weights_source="none", extra={"adapter": "my_plugin:Half"})]

def taken():
    return [ModelCard(id="fcn_resnet50", task="semantic", family="x", categories=("a",),
                      extra={"adapter": "my_plugin:Half"})]

def not_cards():
    return 42

class Half:
    def __init__(self, card):
        self.card, self.device, self.loaded = card, None, False
    def load(self, device, weights=None, progress=None):
        self.device, self.loaded = device, True
    def predict(self, image, params=None, timings=None):
        lab = np.zeros(image.shape[:2], np.uint8)
        lab[:, image.shape[1] // 2:] = 1
        return SemanticMap(lab, self.card.categories)
'''


def test_entry_point_family_loads_through_create_adapter(on_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (on_path / "my_plugin.py").write_text(textwrap.dedent(MODULE))
    ep = importlib.metadata.EntryPoint(name="half", value="my_plugin:cards", group=plugins.GROUP)
    _entry_point(monkeypatch, ep)
    ad = registry.create_adapter("half")
    ad.load("cpu")
    res = ad.predict(np.zeros((2, 4, 3), np.uint8))
    assert res.labels.tolist() == [[0, 0, 1, 1], [0, 0, 1, 1]]
    assert not [p for p in registry.bundled_card_problems() if p.startswith("plugin")]


def test_broken_plugins_are_one_line_each_and_the_rest_still_lists(on_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    (on_path / "my_plugin.py").write_text(textwrap.dedent(MODULE))
    G = plugins.GROUP
    _entry_point(monkeypatch,
                 importlib.metadata.EntryPoint(name="good", value="my_plugin:cards", group=G),
                 importlib.metadata.EntryPoint(name="missing", value="no_such_module:cards", group=G),
                 importlib.metadata.EntryPoint(name="clash", value="my_plugin:taken", group=G),
                 importlib.metadata.EntryPoint(name="odd", value="my_plugin:not_cards", group=G))
    ids = {c.id for c in registry.list_cards()}
    assert "half" in ids and "fcn_resnet50" in ids
    problems = [p for p in registry.bundled_card_problems() if p.startswith("plugin")]
    assert len(problems) == 3
    text = "\n".join(problems)
    assert "plugin 'missing' (no_such_module:cards) could not be loaded (ModuleNotFoundError" in text
    assert "plugin 'clash' (my_plugin:taken): card id 'fcn_resnet50' is already taken" in text
    assert "plugin 'odd' (my_plugin:not_cards) could not be loaded (TypeError: it gave int, not model cards)" in text
    assert registry.get_card("fcn_resnet50").family != "x"  # a plugin cannot replace a zoo model
    with pytest.raises(SegviewerError, match="unknown model 'nothing'"):
        registry.get_card("nothing")
