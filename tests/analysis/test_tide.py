"""TIDE error types (analysis.tide): hand-built cases of each type, dAP by hand, and the authors'
package ``tidecv`` on a generated shapes dataset (to 0.05 AP points; the comparison is skipped
where tidecv is not installed: ``pip install --no-deps tidecv`` avoids its opencv-python pin,
which would clash with opencv-python-headless)."""

from __future__ import annotations

import numpy as np
import pytest

from segviewer.analysis.tide import ERROR_TYPES, classify_image, tide_evaluate
from segviewer.core.results import Detections

CATS = ("a", "b")


def dets(boxes: list[list[float]], cls: list[int], scores: list[float] | None = None) -> Detections:
    return Detections((100, 100), np.array(boxes, np.float32).reshape(-1, 4),
                      np.array(scores if scores is not None else [1.0] * len(cls), np.float32),
                      np.array(cls, np.int32), CATS)


def types(pred: Detections, gt: Detections) -> list[str]:
    ev = classify_image(pred, gt, "bbox")
    return [ev.type_of_pred(i) for i in range(len(pred))]


GT = dets([[10, 10, 30, 30]], [0])


@pytest.mark.parametrize("box,cls,expected", [
    ([10, 10, 30, 30], 0, "TP"),
    ([20, 10, 40, 30], 0, "localisation"),  # same class, IoU 1/3
    ([11, 10, 31, 30], 1, "classification"),  # other class, IoU 0.9
    ([20, 10, 40, 30], 1, "both"),  # other class, IoU 1/3
    ([60, 60, 80, 80], 0, "background"),  # IoU 0
    ([28, 10, 48, 30], 0, "background"),  # IoU 0.05 <= 0.1
])
def test_each_false_positive_type(box: list[float], cls: int, expected: str) -> None:
    assert types(dets([box], [cls]), GT) == [expected]


def test_duplicate_is_the_lower_scoring_second_match() -> None:
    pred = dets([[10, 10, 30, 30], [11, 10, 31, 30]], [0, 0], [0.5, 0.9])
    assert types(pred, GT) == ["duplicate", "TP"]


def test_missed_only_when_no_cls_or_loc_error_could_fix_it() -> None:
    gt = dets([[10, 10, 30, 30], [60, 60, 80, 80]], [0, 0])
    ev = classify_image(dets([[20, 10, 40, 30]], [0]), gt, "bbox")
    assert ev.counts() == {"classification": 0, "localisation": 1, "both": 0, "duplicate": 0,
                           "background": 0, "missed": 1}
    assert ev.gt_type.tolist()[1] == ERROR_TYPES.index("missed")


def test_no_ground_truth_makes_every_prediction_background() -> None:
    assert types(dets([[10, 10, 30, 30]], [0]), dets([], [])) == ["background"]


def test_dap_by_hand() -> None:
    # one Loc error on the only ground truth: AP 0, fixed 100
    r = tide_evaluate([(dets([[20, 10, 40, 30]], [0]), GT)], "bbox")
    assert r.ap == 0 and r.dap["localisation"] == pytest.approx(100) and r.counts["missed"] == 0
    # Cls: class a has 1 GT and no TP (AP 0), class b one FP without GT (AP 0, counted): fixed -> 100
    r = tide_evaluate([(dets([[11, 10, 31, 30]], [1]), GT)], "bbox")
    assert r.ap == 0 and r.dap["classification"] == pytest.approx(100)
    # background FP scored above the TP: precision 1/2 at recall 1 -> AP 50, fixed 100
    r = tide_evaluate([(dets([[10, 10, 30, 30], [60, 60, 80, 80]], [0, 0], [0.5, 0.9]), GT)], "bbox")
    assert r.ap == pytest.approx(50) and r.dap["background"] == pytest.approx(50)
    assert r.dap["missed"] == 0 and r.per_class["a"]["background"] == 1
    # missed: one of two GTs found -> precision 1 up to recall 0.5, 51 of COCO's 101 recall points;
    # fixing misses removes it from the positives -> 100
    gt2 = dets([[10, 10, 30, 30], [60, 60, 80, 80]], [0, 0])
    r = tide_evaluate([(dets([[10, 10, 30, 30]], [0]), gt2)], "bbox")
    assert r.ap == pytest.approx(5100 / 101) and r.dap["missed"] == pytest.approx(100 - 5100 / 101)


def test_two_errors_on_one_ground_truth_fix_only_the_best_scoring() -> None:
    pred = dets([[20, 10, 40, 30], [11, 10, 31, 30]], [0, 1], [0.4, 0.8])  # Loc (a) and Cls (b) on one GT
    r = tide_evaluate([(pred, GT)], "bbox")
    # fixing Cls: the b prediction (0.8) becomes the TP of a; the Loc one stays an FP of a below it
    assert r.dap["classification"] == pytest.approx(100 - r.ap)
    # fixing Loc: the Loc error is not the best-scoring one on that GT, so it is removed, not fixed
    assert r.dap["localisation"] == pytest.approx(0)


def _shapes_pairs(n: int = 30, size: int = 112) -> list[tuple[Detections, Detections]]:
    from segviewer.synth.classes import CATEGORIES, THINGS
    from segviewer.synth.generate import generate_scene
    from segviewer.synth.predictions import perturb_detections, scene_detections

    cmap = {c: THINGS.index(n) for c, n in enumerate(CATEGORIES) if n in THINGS}
    pairs = []
    for i in range(n):
        gt = scene_detections(generate_scene(500 + i, (size, size)).instances, (size, size), THINGS, cmap)
        occupied = gt.masks.to_full().any(0) if len(gt) else None
        pairs.append((perturb_detections(gt, 90 + i, ignore=occupied), gt))
    return pairs


def _tidecv(pairs: list[tuple[Detections, Detections]], mode: str) -> tuple[float, dict[str, float], dict[str, int]]:
    tidecv = pytest.importorskip("tidecv")
    from pycocotools import mask as mask_utils

    gt_data, pred_data = tidecv.Data("gt"), tidecv.Data("pred")
    for k, (pred, gt) in enumerate(pairs):
        for d, is_gt in ((gt, True), (pred, False)):
            for i in range(len(d)):
                x0, y0, x1, y1 = (float(v) for v in d.boxes[i])
                rle = mask_utils.encode(np.asfortranarray(d.masks.full(i).astype(np.uint8)))
                if is_gt:
                    gt_data.add_ground_truth(k, int(d.class_ids[i]), [x0, y0, x1 - x0, y1 - y0], rle)
                else:
                    pred_data.add_detection(k, int(d.class_ids[i]), float(d.scores[i]),
                                            [x0, y0, x1 - x0, y1 - y0], rle)
    tmode = tidecv.TIDE.BOX if mode == "bbox" else tidecv.TIDE.MASK
    run = tidecv.TIDE(mode=tmode).evaluate(gt_data, pred_data, mode=tmode, name="run")
    short = {"Cls": "classification", "Loc": "localisation", "Both": "both", "Dupe": "duplicate",
             "Bkg": "background", "Miss": "missed"}
    dap = {short[e.short_name]: v for e, v in run.fix_main_errors().items()}
    counts = {short[e.short_name]: v for e, v in run.count_errors().items()}
    return run.ap, dap, counts


@pytest.mark.parametrize("mode", ["bbox", "segm"])
def test_equals_tidecv_on_a_generated_dataset(mode: str) -> None:
    pairs = _shapes_pairs()
    ours = tide_evaluate(pairs, mode)
    ap, dap, counts = _tidecv(pairs, mode)
    assert ours.counts == counts
    assert all(v > 0 for k, v in ours.counts.items()), ours.counts  # every type occurs
    assert ours.ap == pytest.approx(ap, abs=0.05)
    for k in ERROR_TYPES:
        assert ours.dap[k] == pytest.approx(dap[k], abs=0.05), k
    assert sum(ours.per_class[c][t] for c in ours.per_class for t in ERROR_TYPES) == sum(counts.values())
    assert [sum(d.values()) for d in ours.per_image] == [
        sum(v for v in classify_image(p, g, mode).counts().values()) for p, g in pairs]
