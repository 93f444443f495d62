"""``segviewer predict`` end to end on random-init models (no weights, no network)."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from segviewer.adapters.base import PredictParams
from segviewer.adapters.registry import create_adapter, get_card
from segviewer.cli import main
from segviewer.core.fileio import write_image_atomic


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SEGVIEWER_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setenv("SEGVIEWER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None, raising=False)
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: pytest.fail(f"network used: {a}"))
    torch.set_num_threads(1)


def _scene(h: int = 96, w: int = 128, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.full((h, w, 3), 90, np.uint8)
    cv2.circle(img, (40, 40), 20, (230, 40, 40), -1)
    cv2.rectangle(img, (70, 50), (110, 85), (40, 200, 60), -1)
    return np.clip(img + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8)


def test_instance_model_writes_overlay_and_coco_json_that_round_trips(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "in"
    write_image_atomic(src / "scene.png", _scene())
    out = tmp_path / "out"
    args = ["predict", "--model", "maskrcnn_resnet50_fpn", "--random-init", "--device", "cpu", "--score-thresh", "0",
            "--max-detections", "6", "--min-size", "96", "--out", str(out), str(src)]
    torch.manual_seed(0)
    assert main(args) == 0
    overlay = cv2.imread(str(out / "scene_overlay.png"), cv2.IMREAD_UNCHANGED)
    assert overlay is not None and overlay.shape == (96, 128, 3)
    records = json.loads((out / "results.json").read_text())
    assert len(records) == 6 and {"image_id", "category_id", "bbox", "score", "segmentation"} <= set(records[0])
    cats = get_card("maskrcnn_resnet50_fpn").categories
    assert json.loads((out / "categories.json").read_text())[1] == {"id": 1, "name": cats[1]}
    # pycocotools reads it as a results file against a ground truth with the image and the 91 ids
    gt = COCO()
    gt.dataset = {"images": [{"id": 1, "height": 96, "width": 128, "file_name": "scene.png"}],
                  "categories": [{"id": i, "name": n} for i, n in enumerate(cats) if i], "annotations": []}
    gt.createIndex()
    dt = gt.loadRes(str(out / "results.json"))
    assert len(dt.getAnnIds(imgIds=[1])) == 6
    # and what it holds is what the adapter predicts (same seed, same image)
    torch.manual_seed(0)
    adapter = create_adapter("maskrcnn_resnet50_fpn", random_init=True)
    adapter.load("cpu")
    det = adapter.predict(_scene(), PredictParams(min_score=0.0, max_detections=6, extra=(("min_size", 96),)))
    for r, i in zip(records, range(len(det))):
        x0, y0, x1, y1 = det.boxes[i]
        assert np.allclose(r["bbox"], [x0, y0, x1 - x0, y1 - y0], atol=1e-3)
        assert r["category_id"] == int(det.class_ids[i]) and r["score"] == pytest.approx(float(det.scores[i]), abs=1e-6)
        assert np.array_equal(mask_utils.decode(r["segmentation"]).astype(bool), det.masks.full(i))
    assert "scene.png: 6 detections" in capsys.readouterr().out


def test_semantic_model_writes_label_png(tmp_path: Path) -> None:
    img = _scene()
    write_image_atomic(tmp_path / "a.png", img)
    out = tmp_path / "out"
    torch.manual_seed(0)
    assert main(["predict", "--model", "lraspp_mobilenet_v3_large", "--random-init", "--min-size", "96",
                 "--out", str(out), str(tmp_path / "a.png")]) == 0
    labels = cv2.imread(str(out / "a_labels.png"), cv2.IMREAD_UNCHANGED)
    torch.manual_seed(0)
    adapter = create_adapter("lraspp_mobilenet_v3_large", random_init=True)
    adapter.load("cpu")
    ref = adapter.predict(img, PredictParams(extra=(("min_size", 96),)))
    assert labels.dtype == np.uint8 and np.array_equal(labels, ref.labels)
    overlay = cv2.imread(str(out / "a_overlay.png"))
    assert overlay.shape == (96, 128, 3) and not np.array_equal(overlay[..., ::-1], img)  # something was drawn


def test_bad_image_among_several_is_reported_and_skipped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "in"
    write_image_atomic(src / "good.png", _scene())
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    out = tmp_path / "out"
    rc = main(["predict", "--model", "ssdlite320_mobilenet_v3_large", "--random-init", "--out", str(out),
               str(src), str(tmp_path / "missing.jpg")])
    assert rc == 1
    err = capsys.readouterr().err
    assert "broken.png" in err and "missing.jpg: no such file or folder" in err
    assert ".;" not in err and "; skipped" in err  # one sentence per line, no doubled punctuation
    assert (out / "good_overlay.png").is_file() and (out / "results.json").is_file()
    assert not list(out.glob("broken*")) and not list(out.glob(".*part*"))


def test_missing_weights_is_one_line_and_nonzero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_image_atomic(tmp_path / "a.png", _scene())
    rc = main(["predict", "--model", "fcos_resnet50_fpn", "--out", str(tmp_path / "out"), str(tmp_path / "a.png")])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "fcos_resnet50_fpn_coco-99b0c9b7.pth" in err[0] and "segviewer models" in err[0]
    assert not (tmp_path / "out" / "a_overlay.png").exists()


@pytest.mark.parametrize("argv,message", [
    (["--model", "no_such_model"], "unknown model 'no_such_model'"),
    (["--model", "ssdlite320_mobilenet_v3_large", "--random-init", "--score-thresh", "1.5"], "--score-thresh"),
    (["--model", "ssdlite320_mobilenet_v3_large", "--random-init", "--device", "tpu"], "unknown device"),
])
def test_bad_arguments_are_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str],
                                           message: str) -> None:
    write_image_atomic(tmp_path / "a.png", _scene())
    assert main(["predict", *argv, "--out", str(tmp_path / "out"), str(tmp_path / "a.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_no_images_at_all(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    assert main(["predict", "--model", "ssdlite320_mobilenet_v3_large", "--random-init", "--out",
                 str(tmp_path / "out"), str(tmp_path / "empty")]) == 2
    assert "no images to predict on" in capsys.readouterr().err


PANOPTIC_ADAPTER = '''
import numpy as np
from segviewer.core.results import PanopticMap, PanopticSegment

class HalfAndHalf:
    """CLI plumbing only: left half one 'sky' segment, a square 'circle' instance on the right."""
    def __init__(self, card):
        self.card, self.loaded, self.device = card, False, None
    def load(self, device, weights=None, progress=None):
        self.loaded, self.device = True, device
    def predict(self, image, params=None, timings=None):
        h, w = image.shape[:2]
        ids = np.zeros((h, w), np.int32)
        ids[:, : w // 2] = 3
        ids[10:30, w - 30 : w - 10] = 70000  # needs all three PNG channels
        segs = (PanopticSegment(3, 0, False, int((ids == 3).sum())),
                PanopticSegment(70000, 1, True, int((ids == 70000).sum()), score=0.9))
        return PanopticMap(ids, segs, self.card.categories, self.card.isthing)
'''


def test_panoptic_results_write_a_coco_panoptic_png(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from segviewer.core.panoptic_io import read_panoptic_png

    (tmp_path / "pan_adapter_mod.py").write_text(PANOPTIC_ADAPTER)
    monkeypatch.syspath_prepend(str(tmp_path))
    models = tmp_path / "models"
    models.mkdir()
    (models / "halves.toml").write_text('id = "halves"\ntask = "panoptic"\nfamily = "test"\n'
                                        'adapter = "pan_adapter_mod:HalfAndHalf"\ncategories = ["sky", "circle"]\n'
                                        'isthing = [false, true]\n')
    monkeypatch.setenv("SEGVIEWER_MODELS", str(models))
    write_image_atomic(tmp_path / "a.png", _scene())
    out = tmp_path / "out"
    assert main(["predict", "--model", "halves", "--out", str(out), str(tmp_path / "a.png")]) == 0
    ids = read_panoptic_png(out / "a_panoptic.png")
    assert set(np.unique(ids).tolist()) == {0, 3, 70000} and int((ids == 3).sum()) == 96 * 64
    segs = json.loads((out / "a_segments.json").read_text())
    assert [s["id"] for s in segs] == [3, 70000] and segs[1]["isthing"] is True
    assert (out / "a_overlay.png").is_file()
