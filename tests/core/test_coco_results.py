"""COCO results export: JSON round trip through pycocotools' own loader."""

from __future__ import annotations

import contextlib
import io
import json

import cv2
import numpy as np
import pytest
from pycocotools.coco import COCO

from segviewer.core.coco_results import coco_to_detections, decode_segmentation, detections_to_coco
from segviewer.core.errors import BadDatasetError
from segviewer.core.results import Detections, MaskSet

CATS = ("__background__", "circle", "square", "star")
COCO_IDS = [0, 3, 7, 11]  # our class k is COCO category COCO_IDS[k]


def _dets(with_masks: bool = True, h: int = 60, w: int = 80) -> Detections:
    rng = np.random.default_rng(3)
    full = np.zeros((4, h, w), np.uint8)
    for i in range(3):
        cx, cy = int(rng.integers(10, w - 10)), int(rng.integers(10, h - 10))
        cv2.ellipse(full[i], (cx, cy), (int(rng.integers(3, 15)), int(rng.integers(3, 15))), 30.0 * i, 0, 360, 1, -1)
    full[1, 0:5, w - 6:] = 1  # a second blob, touching the border
    # full[3] stays empty: a mask that vanished after thresholding
    ms = MaskSet.from_full(full.astype(bool))
    boxes = np.array([[1.5, 2.25, 30.0, 40.5], [10, 10, 79.75, 59.5], [0, 0, 80, 60], [5, 5, 6, 6]], np.float32)
    kp = rng.uniform(0, 50, (4, 2, 3)).astype(np.float32)
    return Detections((h, w), boxes, np.array([0.9, 0.5, 0.75, 0.1], np.float32), np.array([1, 2, 3, 1]),
                      CATS, masks=ms if with_masks else None, keypoints=kp, keypoint_names=("a", "b"))


def _load(records: list[dict], image_id: int, h: int, w: int) -> COCO:
    gt = COCO()
    gt.dataset = {"images": [{"id": image_id, "height": h, "width": w}],
                  "categories": [{"id": c, "name": n} for c, n in zip(COCO_IDS[1:], CATS[1:])],
                  "annotations": []}
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        return gt.loadRes(json.loads(json.dumps(records)))


def test_masks_survive_json_and_load_res() -> None:
    d = _dets()
    recs = detections_to_coco(d, image_id=42, category_ids=COCO_IDS)
    assert all(isinstance(r["segmentation"]["counts"], str) for r in recs)
    res = _load(recs, 42, *d.image_size)
    anns = [res.anns[k] for k in sorted(res.anns)]
    assert [a["category_id"] for a in anns] == [COCO_IDS[c] for c in d.class_ids]
    assert [a["score"] for a in anns] == pytest.approx(d.scores.tolist())
    full = d.masks.to_full()
    for i, a in enumerate(anns):
        np.testing.assert_array_equal(res.annToMask(a).astype(bool), full[i])
        x, y, bw, bh = a["bbox"]  # loadRes keeps our boxes when records have one
        np.testing.assert_allclose([x, y, x + bw, y + bh], d.boxes[i], atol=1e-5)


def test_boxes_survive_json_and_load_res() -> None:
    d = _dets(with_masks=False)
    recs = detections_to_coco(d, image_id=7)
    assert "segmentation" not in recs[0]
    res = _load([dict(r, category_id=COCO_IDS[r["category_id"]]) for r in recs], 7, *d.image_size)
    for i, k in enumerate(sorted(res.anns)):
        x, y, bw, bh = res.anns[k]["bbox"]
        np.testing.assert_allclose([x, y, x + bw, y + bh], d.boxes[i], atol=1e-5)


def test_round_trip_back_to_detections() -> None:
    d = _dets()
    recs = json.loads(json.dumps(detections_to_coco(d, 1, COCO_IDS)))
    back = coco_to_detections(recs, d.image_size, CATS, category_ids=COCO_IDS)
    np.testing.assert_allclose(back.boxes, d.boxes, atol=1e-5)
    np.testing.assert_array_equal(back.class_ids, d.class_ids)
    np.testing.assert_allclose(back.scores, d.scores)
    np.testing.assert_array_equal(back.masks.to_full(), d.masks.to_full())
    np.testing.assert_array_equal(back.masks.offsets, d.masks.offsets)
    np.testing.assert_allclose(back.keypoints, d.keypoints, atol=1e-5)
    assert back.masks.crops[3].shape == (0, 0)


def test_ground_truth_polygons_and_uncompressed_rle() -> None:
    h, w = 20, 30
    poly = [[2.0, 2.0, 12.0, 2.0, 12.0, 10.0, 2.0, 10.0]]
    m = decode_segmentation(poly, (h, w))
    assert m[5, 5] and not m[15, 20]
    # uncompressed RLE: column-major runs, starting with zeros
    counts = [h * 3, 4, h - 4, 4, h * (w - 5) - 4 + h - h]  # columns 3 and 4 have rows 0..3 set
    counts[-1] = h * w - sum(counts[:-1])
    m2 = decode_segmentation({"size": [h, w], "counts": counts}, (h, w))
    assert m2.sum() == 8 and m2[0:4, 3:5].all()
    recs = [{"image_id": 1, "category_id": 3, "segmentation": poly, "area": 80, "iscrowd": 0, "bbox": [2, 2, 10, 8]},
            {"image_id": 1, "category_id": 7, "bbox": [0, 0, 5, 5]}]
    d = coco_to_detections(recs, (h, w), CATS, category_ids=COCO_IDS)
    assert d.scores.tolist() == [1.0, 1.0] and d.class_ids.tolist() == [1, 2]
    assert d.masks is not None and d.masks.crops[1].shape == (0, 0)


def test_bad_records_raise_one_line_errors() -> None:
    with pytest.raises(BadDatasetError, match="category id 99"):
        coco_to_detections([{"category_id": 99, "bbox": [0, 0, 1, 1]}], (10, 10), CATS, COCO_IDS)
    rle = detections_to_coco(_dets(), 1)[0]["segmentation"]
    with pytest.raises(BadDatasetError, match="80x60 but the image is 10x10"):
        coco_to_detections([{"category_id": 1, "segmentation": rle}], (10, 10), CATS)
    with pytest.raises(ValueError, match="category_ids"):
        detections_to_coco(_dets(), 1, category_ids=[0, 1])
