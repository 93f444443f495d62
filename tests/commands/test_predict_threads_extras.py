"""``segviewer predict`` computes only what it writes, takes ``--threads``, and starts without what it
does not need (``eval`` without torch, Qt or pycocotools; torchvision without TorchDynamo)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import pytest
import torch

from segviewer.adapters.shapes import ShapesFCN, ShapesMaskRCNN
from segviewer.cli import main
from segviewer.core.fileio import write_image_atomic
from segviewer.synth.generate import generate_scene

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _threads() -> object:
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _images(tmp_path: Path, n: int = 2) -> Path:
    src = tmp_path / "in"
    for i in range(n):
        write_image_atomic(src / f"s{i}.png", generate_scene(i, (96, 128)).image)
    return src


def _spy(monkeypatch: pytest.MonkeyPatch, cls: type) -> list[object]:
    seen: list[object] = []
    real = cls.predict

    def predict(self, image, params=None, timings=None):  # noqa: ANN001, ANN202 - the adapter's own signature
        seen.append(params)
        return real(self, image, params, timings)

    monkeypatch.setattr(cls, "predict", predict)
    return seen


def test_predict_asks_only_for_what_it_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _spy(monkeypatch, ShapesFCN)
    src = _images(tmp_path)
    assert main(["predict", str(src), "--model", "shapes_fcn", "--out", str(tmp_path / "o"), "--device", "cpu"]) == 0
    assert len(seen) == 2 and all(getattr(p, "extras", True) is False for p in seen)
    assert cv2.imread(str(tmp_path / "o" / "s0_labels.png"), cv2.IMREAD_UNCHANGED).shape == (96, 128)


@pytest.mark.parametrize(("merge", "extras"), [("heuristic", False), ("upsnet", True)])
def test_panoptic_upsnet_still_gets_the_logits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               merge: str, extras: bool) -> None:
    sem = _spy(monkeypatch, ShapesFCN)
    inst = _spy(monkeypatch, ShapesMaskRCNN)
    src = _images(tmp_path, 1)
    assert main(["predict", str(src), "--model", "shapes_maskrcnn", "--model", "shapes_fcn", "--panoptic",
                 "--merge", merge, "--no-gt", "--out", str(tmp_path / "o"), "--device", "cpu"]) == 0
    assert (tmp_path / "o" / "panoptic.json").is_file()
    assert [p.extras for p in inst] == [extras] and [p.extras for p in sem] == [extras]  # type: ignore[attr-defined]


def test_threads_sets_torch_and_opencv(tmp_path: Path) -> None:
    src = _images(tmp_path, 1)
    cv_before = cv2.getNumThreads()
    try:
        assert main(["predict", str(src), "--model", "shapes_unet", "--threads", "1", "--out", str(tmp_path / "o"),
                     "--device", "cpu"]) == 0
        assert torch.get_num_threads() == 1 and cv2.getNumThreads() == 1
    finally:
        cv2.setNumThreads(cv_before)


def test_threads_below_one_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _images(tmp_path, 1)
    assert main(["predict", str(src), "--model", "shapes_unet", "--threads", "0", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["segviewer: --threads must be at least 1, got 0"]
    assert not (tmp_path / "o").exists()


_PROBE = """
import sys
from segviewer.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as e:  # --help
    code = e.code
# pycocotools.mask (its C RLE codec, under 1 ms) may come with core.coco_io; pycocotools.coco
# imports matplotlib (a quarter of a second) and must not
heavy = sorted(m for m in ("torch", "torchvision", "PySide6", "pyqtgraph", "pycocotools.coco", "matplotlib",
                           "scipy") if m in sys.modules)
print("HEAVY", ",".join(heavy))
sys.exit(code)
"""


@pytest.mark.parametrize("argv", [
    ["--help"],
    ["eval", "--help"],
    ["predict", "--help"],
    ["eval", "--task", "panoptic", "--gt", "assets/scenes/annotations/panoptic.json",
     "--pred", "assets/scenes/annotations/panoptic.json"],
    ["eval", "--task", "semantic", "--gt", "assets/scenes", "--pred", "assets/scenes/masks"],
])
def test_cli_start_up_imports_no_torch_qt_or_coco_api(argv: list[str]) -> None:
    """These verbs' start-up is interpreter + numpy (+ OpenCV): torch alone would add a second or more."""
    r = subprocess.run([sys.executable, "-c", _PROBE, *argv], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "HEAVY", r.stdout[-300:]
