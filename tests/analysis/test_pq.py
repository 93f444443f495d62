"""PQ against the reference pq_compute (cityscapesscripts' copy of panopticapi's) on the same files."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest

from segviewer.analysis.pq import image_pq, pq_compute, pq_from_maps
from segviewer.core.errors import BadDatasetError, SegviewerError
from segviewer.core.results import PanopticMap, PanopticSegment

try:  # tests/analysis may become a package; both import styles work
    from .pq_files import CATEGORIES, make_panoptic_files, perturb, random_gt, write_panoptic
except ImportError:
    from pq_files import CATEGORIES, make_panoptic_files, perturb, random_gt, write_panoptic


@pytest.fixture
def panoptic_files(tmp_path: Path) -> tuple[Path, Path]:
    return make_panoptic_files(tmp_path)


def _reference():
    try:
        from cityscapesscripts.evaluation import evalPanopticSemanticLabeling as ref
    except Exception as err:  # noqa: BLE001 - any import failure means: no reference here
        pytest.skip(f"cityscapesscripts (the reference pq_compute) is not importable: {err}")
    return ref


def _reference_results(gt_json: Path, pred_json: Path, capsys) -> dict:
    """The reference in one process (its worker body), on the same files."""
    ref = _reference()
    gj, pj = json.loads(gt_json.read_text()), json.loads(pred_json.read_text())
    cats = {c["id"]: c for c in gj["categories"]}
    preds = {a["image_id"]: a for a in pj["annotations"]}
    pairs = [(g, preds[g["image_id"]]) for g in gj["annotations"]]
    stat = ref.pq_compute_single_core(0, pairs, str(gt_json.with_suffix("")),
                                      str(pred_json.with_suffix("")), cats)
    capsys.readouterr()
    return ref.average_pq(stat, cats)


def _assert_equal(ours: dict, theirs: dict) -> None:
    for a, b in (("all", "All"), ("things", "Things"), ("stuff", "Stuff")):
        for k in ("pq", "sq", "rq"):
            assert ours[a][k] == pytest.approx(theirs[b][k], abs=1e-9), (a, k)
        assert ours[a]["n"] == theirs[b]["n"]
    per = {row["id"]: row for row in ours["per_class"].values()}
    assert set(per) == set(theirs["per_class"])
    for cid, row in theirs["per_class"].items():
        for k in ("pq", "sq", "rq"):
            assert per[cid][k] == pytest.approx(row[k], abs=1e-9), (cid, k)


def test_equals_reference_pq_compute(panoptic_files, capsys):
    gj, pj = panoptic_files
    theirs = _reference_results(gj, pj, capsys)
    ours = pq_compute(gj, pj)
    _assert_equal(ours, theirs)
    # not a degenerate case: some TP, FP and FN in things and stuff
    tot = np.array([[r["tp"], r["fp"], r["fn"]] for r in ours["per_class"].values()]).sum(0)
    assert (tot > 0).all() and 0.2 < ours["all"]["pq"] < 0.95
    assert ours["things"]["n"] >= 1 and ours["stuff"]["n"] >= 1
    # threads give the same numbers
    assert pq_compute(gj, pj, workers=2) == ours


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_equals_reference_on_more_random_files(tmp_path, capsys, seed):
    rng = np.random.default_rng(seed)
    gts, preds = [], []
    for i in range(3):
        g, gs = random_gt(rng, 64, 80, n_things=int(rng.integers(2, 12)), crowd=bool(rng.random() < 0.7))
        p, ps = perturb(rng, g, gs)
        gts.append((i, g, gs))
        preds.append((i, p, ps))
    gj, pj = tmp_path / "g.json", tmp_path / "p.json"
    write_panoptic(gj, gts)
    write_panoptic(pj, preds)
    _assert_equal(pq_compute(gj, pj), _reference_results(gj, pj, capsys))


def _tiny(tmp_path: Path, gt: np.ndarray, gsegs: list[dict], pred: np.ndarray, psegs: list[dict]):
    for s in gsegs:
        s.setdefault("iscrowd", 0)
        s.setdefault("area", int((gt == s["id"]).sum()))
    gj, pj = tmp_path / "gt.json", tmp_path / "pred.json"
    write_panoptic(gj, [(1, gt, gsegs)])
    write_panoptic(pj, [(1, pred, psegs)])
    return gj, pj


def test_void_and_crowd_rules_by_hand(tmp_path, capsys):
    # 10x10: left half a circle (id 5), right half void in GT; a crowd of circles at the bottom row.
    gt = np.zeros((10, 10), np.int64)
    gt[:, :5] = 5
    gt[9, :] = 9  # crowd
    pred = np.zeros_like(gt)
    pred[:9, :7] = 3  # covers the circle and 2 void columns: union excludes pred-on-void pixels
    gt[:9, 9] = 8  # a grass stripe (stuff)
    pred[:9, 9] = 8
    pred[0:4, 7:9] = 4  # spurious, entirely on GT void: not a FP
    pred[9, :] = 6  # on the crowd region: not a FP
    gsegs = [{"id": 5, "category_id": 11}, {"id": 9, "category_id": 11, "iscrowd": 1},
             {"id": 8, "category_id": 2}]
    psegs = [{"id": 3, "category_id": 11}, {"id": 4, "category_id": 11}, {"id": 6, "category_id": 11},
             {"id": 8, "category_id": 2}]
    gj, pj = _tiny(tmp_path, gt, gsegs, pred, psegs)
    ours = pq_compute(gj, pj)
    circle = ours["per_class"]["circle"]
    # pred 3 area 63 (9 rows x 7), inter 45, on void 18 -> union 63 + 45 - 45 - 18 = 45 -> IoU 1
    assert (circle["tp"], circle["fp"], circle["fn"]) == (1, 0, 0)
    assert circle["pq"] == pytest.approx(1.0)
    _assert_equal(ours, _reference_results(gj, pj, capsys))
    # every segment here is small: the size table's "small" row is the whole result
    assert ours["by_size"]["small"]["all"] == ours["all"]
    assert ours["by_size"]["medium"]["all"]["n"] == 0 and ours["by_size"]["large"]["all"]["n"] == 0


def test_two_crowd_regions_of_one_category_follow_the_reference(tmp_path, capsys):
    """The reference remembers only the LAST crowd segment listed per category when deciding
    whether an unmatched prediction is mostly crowd; we keep that quirk so the numbers agree."""
    gt = np.full((12, 12), 8, np.int64)  # grass
    gt[0:4, 0:6] = 9  # crowd A (listed first)
    gt[8:12, 0:6] = 10  # crowd B (listed last)
    pred = np.full_like(gt, 8)
    pred[0:4, 0:6] = 3  # a circle exactly on crowd A: counted as FP by the reference
    pred[8:12, 0:6] = 4  # a circle exactly on crowd B: ignored
    gsegs = [{"id": 8, "category_id": 2}, {"id": 9, "category_id": 11, "iscrowd": 1},
             {"id": 10, "category_id": 11, "iscrowd": 1}]
    psegs = [{"id": 8, "category_id": 2}, {"id": 3, "category_id": 11}, {"id": 4, "category_id": 11}]
    gj, pj = _tiny(tmp_path, gt, gsegs, pred, psegs)
    ours = pq_compute(gj, pj)
    assert ours["per_class"]["circle"]["fp"] == 1
    _assert_equal(ours, _reference_results(gj, pj, capsys))


def test_torchmetrics_differs_on_void_in_prediction():
    """torchmetrics' PanopticQuality also removes the PREDICTION's void pixels from a ground-truth
    segment's area; the reference (and we) do not. A thing predicted on 20 of its 50 pixels, void on
    the other 30: IoU 20/50 for the reference (FN + FP), 20/20 for torchmetrics (a TP)."""
    tm = pytest.importorskip("torchmetrics.detection")
    import torch

    gt_ids = np.full((10, 10), 7, np.int64)  # stuff 7 on the right
    gt_ids[:, :5] = 5  # a thing, 50 px
    pred_ids = gt_ids.copy()
    pred_ids[:, :5] = 0  # void ...
    pred_ids[:4, :5] = 3  # ... except 20 px of the thing
    cats = ("circle", "grass")
    gt = PanopticMap(gt_ids, (PanopticSegment(5, 0, True, 50), PanopticSegment(7, 1, False, 50)),
                     cats, (True, False))
    pr = PanopticMap(pred_ids, (PanopticSegment(3, 0, True, 20), PanopticSegment(7, 1, False, 50)),
                     cats, (True, False))
    ours = image_pq(pr, gt)
    assert ours["per_class"]["circle"]["fn"] == 1 and ours["per_class"]["circle"]["fp"] == 1
    assert ours["all"]["pq"] == pytest.approx(0.5)

    def tm_input(ids: np.ndarray, void_cat: int) -> torch.Tensor:
        cat = np.select([ids == 0, ids == 7], [void_cat, 1], 0)
        inst = np.where(ids == 7, 0, ids)
        return torch.from_numpy(np.stack([cat, inst], -1)[None])

    metric = tm.PanopticQuality(things={0}, stuffs={1}, allow_unknown_preds_category=True)
    theirs = float(metric(tm_input(pred_ids, 2), tm_input(gt_ids, 2)))
    assert theirs == pytest.approx(1.0)
    assert abs(theirs - ours["all"]["pq"]) > 0.4


def _copy_files(gj: Path, pj: Path, tmp_path: Path, edit) -> tuple[Path, Path]:
    data = copy.deepcopy(json.loads(pj.read_text()))
    edit(data)
    out = tmp_path / "pred.json"
    out.write_text(json.dumps(data))
    return gj, out


@pytest.mark.parametrize("case,message", [
    ("missing_png", "missing"),
    ("png_id_not_in_json", "in the PNG but not in the JSON"),
    ("json_id_not_in_png", "in the JSON segments_info but not in the PNG"),
    ("duplicate_id", "listed twice"),
    ("unknown_category", "unknown category_id"),
    ("no_prediction", "no prediction for image"),
    ("segment_without_category", "lacks a valid 'category_id'"),
])
def test_bad_prediction_raises_a_clear_error(panoptic_files, tmp_path, case, message):
    gj, pj = panoptic_files

    def edit(d):
        a = d["annotations"][1]
        if case == "missing_png":
            a["file_name"] = "nope.png"
        elif case == "png_id_not_in_json":
            a["segments_info"].pop()
        elif case == "json_id_not_in_png":
            a["segments_info"].append({"id": 16777000, "category_id": 11})
        elif case == "duplicate_id":
            a["segments_info"].append(dict(a["segments_info"][0]))
        elif case == "unknown_category":
            a["segments_info"][0]["category_id"] = 999
        elif case == "no_prediction":
            d["annotations"].pop(1)
        elif case == "segment_without_category":
            del a["segments_info"][0]["category_id"]

    gj, pj2 = _copy_files(gj, pj, tmp_path, edit)
    with pytest.raises(SegviewerError) as err:
        pq_compute(gj, pj2, pred_folder=pj.with_suffix(""))
    text = str(err.value)
    assert message in text and "image 2" in text and "\n" not in text


def test_mis_sized_prediction_raises(tmp_path):
    g = np.ones((8, 8), np.int64)
    p = np.ones((8, 9), np.int64)
    gj, pj = _tiny(tmp_path, g, [{"id": 1, "category_id": 1}], p, [{"id": 1, "category_id": 1}])
    with pytest.raises(BadDatasetError, match="image 1.*9x8"):
        pq_compute(gj, pj)


def test_gt_area_disagreeing_with_png_raises(tmp_path):
    g = np.ones((8, 8), np.int64)
    gj, pj = _tiny(tmp_path, g, [{"id": 1, "category_id": 1, "area": 10}], g,
                   [{"id": 1, "category_id": 1}])
    with pytest.raises(BadDatasetError, match="segment 1 has area 10"):
        pq_compute(gj, pj)


def test_by_size_and_maps_agree_with_files(panoptic_files):
    gj, pj = panoptic_files
    from segviewer.analysis.pq import read_panoptic_png

    gd, pd = json.loads(gj.read_text()), json.loads(pj.read_text())
    names = tuple(c["name"] for c in CATEGORIES)
    index = {c["id"]: i for i, c in enumerate(CATEGORIES)}
    isthing = tuple(bool(c["isthing"]) for c in CATEGORIES)

    def to_map(folder: Path, ann: dict) -> PanopticMap:
        ids = read_panoptic_png(folder / ann["file_name"]).astype(np.int32)
        segs = tuple(PanopticSegment(s["id"], index[s["category_id"]], isthing[index[s["category_id"]]],
                                     int((ids == s["id"]).sum()), iscrowd=bool(s.get("iscrowd", 0)))
                     for s in ann["segments_info"])
        return PanopticMap(ids, segs, names, isthing)

    pairs = [(to_map(pj.with_suffix(""), p), to_map(gj.with_suffix(""), g))
             for g, p in zip(gd["annotations"], pd["annotations"])]
    from_maps = pq_from_maps(pairs)
    from_files = pq_compute(gj, pj)
    for k in ("all", "things", "stuff"):
        assert from_maps[k] == pytest.approx(from_files[k], abs=1e-12)
    # size buckets partition the TP/FN (by GT area) and FP (by prediction area) counts
    bs = from_files["by_size"]
    assert set(bs) == {"small", "medium", "large"}
    total = sum(r["tp"] + r["fn"] + r["fp"] for r in from_files["per_class"].values())
    assert total > 0 and all(0 <= bs[s]["all"]["pq"] <= 1 for s in bs)
