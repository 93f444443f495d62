"""The architecture's import rules, checked statically (as napari's import-linter contracts do).

core, render, analysis, video and synth are numpy-only: no Qt, no torch. adapters may import
torch but never Qt. Only ui/ (and the gui command) may import Qt.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "segviewer"
QT = ("PySide6", "pyqtgraph", "PyQt5", "PyQt6", "superqt", "qtpy")
TORCH = ("torch", "torchvision")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package,forbidden", [
    ("core", QT + TORCH), ("render", QT + TORCH), ("analysis", QT + TORCH),
    ("video", QT + TORCH), ("synth", QT + TORCH), ("adapters", QT), ("training", QT),
])
def test_package_does_not_import(package: str, forbidden: tuple[str, ...]) -> None:
    offenders = [
        f"{p.relative_to(ROOT.parent)} imports {sorted(_imports(p) & set(forbidden))}"
        for p in sorted((ROOT / package).rglob("*.py"))
        if _imports(p) & set(forbidden)
    ]
    assert not offenders, "\n".join(offenders)


def test_torch_stays_out_of_everything_but_adapters_training_and_commands() -> None:
    allowed = {"adapters", "training", "commands", "ui"}
    offenders = [
        str(p.relative_to(ROOT.parent)) for p in ROOT.rglob("*.py")
        if p.relative_to(ROOT).parts[0] not in allowed and _imports(p) & set(TORCH)
    ]
    assert not offenders, offenders


def test_boundary_check_sees_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import numpy\nfrom PySide6 import QtCore\nimport torch.nn as nn\n")
    assert _imports(bad) >= {"PySide6", "torch", "numpy"}


def _segviewer_modules(path: Path) -> set[str]:
    """Every ``segviewer.*`` module a file imports (at any depth, lazy imports included)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.startswith("segviewer"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module.startswith("segviewer"):
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


@pytest.mark.parametrize("package", ["adapters", "ui"])
def test_models_load_without_the_trainer(package: str) -> None:
    """Training imports the adapters (model construction, checkpoint reading), never the reverse."""
    offenders = [
        f"{p.relative_to(ROOT.parent)} imports {sorted(m for m in _segviewer_modules(p) if m.startswith('segviewer.training'))}"
        for p in sorted((ROOT / package).rglob("*.py"))
        if any(m.startswith("segviewer.training") for m in _segviewer_modules(p))
    ]
    assert not offenders, "\n".join(offenders)


def test_trainer_boundary_check_sees_a_lazy_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from segviewer.training import checkpoint\n")
    assert "segviewer.training.checkpoint" in _segviewer_modules(bad)
