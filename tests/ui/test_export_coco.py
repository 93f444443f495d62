"""The window's COCO JSON export (Ctrl+Shift+E): the dataset's image id and category ids when the
image has ground truth beside it, as the Metrics dock finds it (issue #10)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from segviewer.core.results import Detections, MaskSet
from segviewer.synth.dataset import write_dataset
from segviewer.ui.export import write_coco

CATS = ("__background__", "circle", "square", "triangle", "star", "ring")  # the bundled Mask R-CNN's


def _dets(h: int, w: int) -> Detections:
    masks = np.zeros((2, h, w), bool)
    masks[0, 2:10, 3:12] = True
    masks[1, 12:20, 5:9] = True
    return Detections((h, w), np.array([[3, 2, 12, 10], [5, 12, 9, 20]], np.float32), np.array([0.9, 0.8], np.float32),
                      np.array([1, 5], np.int32), CATS, masks=MaskSet.from_full(masks))


def test_export_uses_the_dataset_ids_beside_the_image(tmp_path: Path) -> None:
    write_dataset(tmp_path / "ds", 3, seed=1, size=(32, 40))
    image = tmp_path / "ds" / "images" / "scene_002.png"
    out = tmp_path / "e.json"
    write_coco(out, {"shapes_maskrcnn": _dets(32, 40)}, image)
    recs = json.loads(out.read_text())
    cats = {c["name"]: c["id"] for c in json.loads((tmp_path / "ds" / "annotations" / "instances.json")
                                                     .read_text())["categories"]}
    assert [r["image_id"] for r in recs] == [3, 3]  # scene_002 is image 3 of the dataset
    assert [r["category_id"] for r in recs] == [cats["circle"], cats["ring"]] == [5, 9]


def test_export_without_ground_truth_keeps_the_model_ids(tmp_path: Path) -> None:
    out = tmp_path / "e.json"
    write_coco(out, {"m": _dets(32, 40)}, tmp_path / "lonely.png")
    assert [(r["image_id"], r["category_id"]) for r in json.loads(out.read_text())] == [(0, 1), (0, 5)]
