"""``segviewer predict`` over a folder of awkward real-world image kinds (grey, 16-bit, RGBA, 1x1,
flat, a wide panorama) with every bundled model: every image gets its outputs (issue #10)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from segviewer.cli import main

BUNDLED = ("shapes_maskrcnn", "shapes_fcn", "shapes_unet", "shapes_pcv")


pytestmark = pytest.mark.usefixtures("offline_one_thread")  # tests/commands/conftest.py


@pytest.fixture(scope="module")
def odd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("odd")
    rng = np.random.default_rng(0)
    scene = np.full((96, 128, 3), 70, np.uint8)
    cv2.circle(scene, (40, 48), 22, (40, 40, 230), -1)
    cv2.imwrite(str(d / "grey.png"), cv2.cvtColor(scene, cv2.COLOR_BGR2GRAY))
    cv2.imwrite(str(d / "deep16.png"), scene.astype(np.uint16) * 257)
    cv2.imwrite(str(d / "alpha.png"), np.dstack([scene, np.full(scene.shape[:2], 128, np.uint8)]))
    cv2.imwrite(str(d / "one.png"), np.array([[[10, 200, 30]]], np.uint8))
    cv2.imwrite(str(d / "flat.png"), np.full((64, 64, 3), 128, np.uint8))
    cv2.imwrite(str(d / "pano.jpg"), rng.integers(0, 255, (60, 1200, 3), dtype=np.uint8))
    return d


@pytest.mark.parametrize("model", BUNDLED)
def test_every_odd_image_gets_its_outputs(odd: Path, tmp_path: Path, model: str,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["predict", "--model", model, "--device", "cpu", "--out", str(out), str(odd)]) == 0
    err = capsys.readouterr().err
    assert "skipped" not in err and "Traceback" not in err
    for img in sorted(odd.iterdir()):
        overlay = cv2.imread(str(out / f"{img.stem}_overlay.png"), cv2.IMREAD_UNCHANGED)
        src = cv2.imread(str(img), cv2.IMREAD_UNCHANGED)
        assert overlay is not None and overlay.shape[:2] == src.shape[:2], img.name
    if model == "shapes_maskrcnn":
        assert (out / "results.json").is_file() and (out / "images.json").is_file()
    else:
        assert len(list(out.glob("*_labels.png"))) == 6
