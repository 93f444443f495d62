"""Instance AP through COCOeval: known values, quiet, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from segviewer.analysis.instance_eval import STAT_NAMES, coco_evaluate, evaluate_detections
from segviewer.core.errors import BadDatasetError
from segviewer.core.results import Detections, MaskSet


def _rle(mask: np.ndarray) -> dict:
    r = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in r["size"]], "counts": r["counts"].decode("ascii")}


def _gt(h: int = 64, w: int = 64) -> tuple[dict, np.ndarray]:
    m = np.zeros((h, w), bool)
    m[10:50, 10:50] = True  # 1600 px: "medium"
    gt = {"images": [{"id": 1, "height": h, "width": w, "file_name": "a.png"}],
          "categories": [{"id": 3, "name": "circle"}],
          "annotations": [{"id": 1, "image_id": 1, "category_id": 3, "bbox": [10, 10, 40, 40],
                           "area": 1600, "iscrowd": 0, "segmentation": _rle(m)}]}
    return gt, m


def test_one_false_positive_above_the_true_one_gives_ap_one_half(capsys):
    gt, m = _gt()
    wrong = np.zeros_like(m)
    wrong[0:5, 55:64] = True
    res = [{"image_id": 1, "category_id": 3, "bbox": [55, 0, 9, 5], "score": 0.95, "segmentation": _rle(wrong)},
           {"image_id": 1, "category_id": 3, "bbox": [10, 10, 40, 40], "score": 0.9, "segmentation": _rle(m)}]
    out = coco_evaluate(gt, res)
    assert set(out) == {"bbox", "segm"} and set(out["bbox"]) == set(STAT_NAMES)
    for t in ("bbox", "segm"):
        assert out[t]["AP"] == pytest.approx(0.5) and out[t]["AP50"] == pytest.approx(0.5)
        assert out[t]["APm"] == pytest.approx(1.0)  # the small false positive is outside "medium"
        assert out[t]["APs"] == -1.0  # no small ground truth: COCOeval's -1 is kept
        assert out[t]["AR100"] == pytest.approx(1.0)
    assert capsys.readouterr().out == ""  # COCOeval's printing is captured


def test_perfect_in_memory_detections_score_one():
    rng = np.random.default_rng(0)
    pairs = []
    for _ in range(3):
        masks = np.zeros((3, 48, 48), bool)
        boxes = []
        for i in range(3):
            x, y = int(rng.integers(0, 30)), int(rng.integers(0, 30))
            masks[i, y:y + 15, x:x + 15] = True
            boxes.append([x, y, x + 15, y + 15])
        d = Detections((48, 48), boxes, [0.9, 0.8, 0.7], [1, 2, 1], ("__background__", "a", "b"),
                       masks=MaskSet.from_full(masks))
        pairs.append((d, d))
    out = evaluate_detections(pairs)
    assert out["bbox"]["AP"] == pytest.approx(1.0) and out["segm"]["AP"] == pytest.approx(1.0)


@pytest.mark.parametrize("edit,msg", [
    (lambda r: r.update(image_id=7), "image 7"),
    (lambda r: r.update(category_id=99), "unknown category 99"),
    (lambda r: r.pop("score"), "no score"),
    (lambda r: r.update(segmentation=_rle(np.zeros((10, 10), bool))), "mask is 10x10"),
])
def test_bad_results_raise(edit, msg):
    gt, m = _gt()
    r = {"image_id": 1, "category_id": 3, "bbox": [10, 10, 40, 40], "score": 0.9, "segmentation": _rle(m)}
    edit(r)
    with pytest.raises(BadDatasetError, match=msg):
        coco_evaluate(gt, [r])


def test_no_detections_is_zero_not_a_crash():
    gt, _ = _gt()
    assert coco_evaluate(gt, [])["bbox"]["AP"] == 0.0
