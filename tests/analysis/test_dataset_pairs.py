"""Panoptic pairs in the result store and the dataset rows, and the dataset totals the Metrics
dock shows (sums of counts, per-image means of the rest)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from segviewer.analysis.dataset_eval import evaluate_image, shown_result, summarize_rows
from segviewer.analysis.evaluation import MergeParams, image_report
from segviewer.core.dataset_index import open_dataset
from segviewer.core.result_store import ResultStore, pack_result, unpack_result
from segviewer.core.results import Detections, PanopticMap, SemanticMap
from segviewer.synth.dataset import write_dataset
from segviewer.synth.predictions import perturb_detections


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("pairs") / "ds"
    write_dataset(root, 2, seed=5, size=(64, 80))
    index = open_dataset(root)
    gt = index.ground_truth(0)
    inst = perturb_detections(gt.instances, 3)
    labels = gt.semantic.labels.copy()
    labels[:8] = 0  # a band of wrong stuff
    sem = SemanticMap(labels, gt.semantic.categories, ignore_index=gt.semantic.ignore_index)
    return index, gt, inst, sem


def test_a_pair_survives_the_store(scene, tmp_path: Path) -> None:
    index, _gt, inst, sem = scene
    kind, blob = pack_result((inst, sem))
    assert kind == "pair"
    i2, s2 = unpack_result(kind, blob)
    assert isinstance(i2, Detections) and isinstance(s2, SemanticMap)
    assert np.array_equal(i2.boxes, inst.boxes) and np.array_equal(i2.masks.to_full(), inst.masks.to_full())
    assert np.array_equal(s2.labels, sem.labels) and s2.categories == sem.categories
    with ResultStore(tmp_path / "s.sqlite") as store:
        store.put_prediction("h", "a+b", "w", (inst, sem), 12.0)
        (i3, s3), ms = store.get_prediction("h", "a+b", "w")
        assert ms == 12.0 and np.array_equal(s3.labels, sem.labels) and len(i3) == len(inst)
    with pytest.raises(Exception, match="pair"):
        pack_result((sem, inst))


def test_a_pair_row_is_the_docks_merged_report(scene) -> None:
    _index, gt, inst, sem = scene
    ev, row = evaluate_image((inst, sem), gt)
    dock = image_report(inst, sem, gt, MergeParams(), "x")
    assert row["pq"] == pytest.approx(dock.metrics["panoptic"]["all"]["pq"])
    assert row["miou"] == pytest.approx(dock.metrics["semantic"]["mean_iou"])
    assert row["mask_ap"] == pytest.approx(dock.metrics["instances"]["segm"]["AP"])
    assert row["tp"] == dock.errors.counts["TP"] and ev.error_kind == "panoptic"
    drawn = shown_result((inst, sem))
    assert isinstance(drawn, PanopticMap) and np.array_equal(drawn.segment_ids, ev.merged.segment_ids)
    assert shown_result(inst) is inst


def test_totals_sum_counts_and_average_the_rest() -> None:
    rows = [{"pq": 0.5, "tp": 3, "fp": 1, "mask_loc": 2, "infer_ms": 10.0},
            {"pq": 0.25, "tp": 1, "fp": 0, "mask_loc": 0, "infer_ms": 30.0},
            {"tp": 0, "fp": 2, "mask_ap": None, "infer_ms": math.nan}]
    t = summarize_rows(rows)
    assert t["images"] == 3 and t["pq"] == pytest.approx(0.375)
    assert (t["tp"], t["fp"], t["mask_loc"]) == (4, 3, 2) and t["infer_ms"] == pytest.approx(20.0)
    assert "mask_ap" not in t and summarize_rows([]) == {"images": 0.0}


def test_dataset_tide_scores_the_instance_half_and_skips_label_maps(scene) -> None:
    from segviewer.analysis.dataset_eval import dataset_tide
    from segviewer.analysis.tide import tide_evaluate

    _index, gt, inst, sem = scene
    got = dataset_tide([((inst, sem), gt), (sem, gt)])
    want = tide_evaluate([(inst, gt.instances)], "segm")
    assert got["segm"]["counts"] == want.counts and got["segm"]["dAP"] == pytest.approx(want.dap)
    assert set(got) == {"bbox", "segm"}
    assert dataset_tide([(sem, gt)]) is None
    assert dataset_tide([(inst, gt)], should_stop=lambda: True) is None


def test_a_panoptic_models_map_is_stored_and_scored(scene, tmp_path: Path) -> None:
    from segviewer.analysis.dataset_eval import run_dataset
    from segviewer.analysis.error_map import panoptic_errors
    from segviewer.analysis.pq import image_pq

    index, gt, inst, sem = scene
    pm = shown_result((inst, sem))  # a panoptic map as a panoptic model would give it
    kind, blob = pack_result(pm)
    back = unpack_result(kind, blob)
    assert kind == "panoptic" and np.array_equal(back.segment_ids, pm.segment_ids)
    assert back.segments == pm.segments and back.categories == pm.categories and back.isthing == pm.isthing
    ev, row = evaluate_image(pm, gt)
    want = image_pq(pm, gt.panoptic)["all"]  # the merge already names the ground truth's classes
    assert (row["pq"], row["sq"], row["rq"]) == pytest.approx((want["pq"], want["sq"], want["rq"]))
    assert row["fp"] == panoptic_errors(pm, gt.panoptic).counts["FP"] and ev.error_kind == "panoptic"
    assert evaluate_image(gt.panoptic, gt)[1]["pq"] == pytest.approx(1.0)
    with ResultStore(tmp_path / "s.sqlite") as store:
        rows = run_dataset(index, lambda i: (pm if i == 0 else index.ground_truth(i).panoptic, 5.0), store, "pan", "w",
                           images=[0, 1])
        assert rows[0]["pq"] == pytest.approx(row["pq"]) and rows[1]["pq"] == pytest.approx(1.0)
        assert isinstance(store.get_prediction(store.image_hash(index.paths[0]), "pan", "w")[0], PanopticMap)


def test_an_image_without_detections_keeps_the_mask_numbers_on(scene) -> None:
    from segviewer.analysis.dataset_eval import dataset_tide, with_empty_masks

    _index, gt, inst, _sem = scene
    none = Detections(inst.image_size, np.zeros((0, 4), np.float32), np.zeros(0, np.float32),
                      np.zeros(0, np.int32), inst.categories)  # as coco_to_detections gives an empty image
    got = dataset_tide([(inst, gt), (none, gt)])
    assert set(got) == {"bbox", "segm"} and got["segm"]["counts"]["missed"] >= len(gt.instances)
    assert with_empty_masks(none).masks is not None and with_empty_masks(inst) is inst
    row = evaluate_image(with_empty_masks(none), gt)[1]
    assert row["mask_ap"] == 0.0 and row["fn"] == len(gt.instances)
