"""Per-image rows equal the dock's single-image numbers; the store makes reruns free and a killed
run resumes (a subprocess is SIGKILLed mid-run)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from segviewer.analysis.dataset_eval import ROW_KEYS, evaluate_image, run_dataset
from segviewer.analysis.evaluation import MergeParams, image_report, remap_detections
from segviewer.core.dataset_index import open_dataset
from segviewer.core.groundtruth import find_ground_truth
from segviewer.core.result_store import ResultStore
from segviewer.synth.predictions import perturb_detections

ROOT = Path(__file__).resolve().parents[2]
SCENES = ROOT / "assets" / "scenes"


def _predict(index, i: int):
    gt = index.ground_truth(i).instances
    return perturb_detections(gt, 1000 + i), 1.5


def test_rows_equal_the_docks_single_image_metrics() -> None:
    index = open_dataset(SCENES)
    for i in range(len(index)):
        pred, _ = _predict(index, i)
        _, row = evaluate_image(pred, index.ground_truth(i), name=index.paths[i].name)
        # the window's path: ground truth found beside the image, the dock's image_report
        gt = find_ground_truth(index.paths[i])
        ev = image_report(pred, None, gt, MergeParams(), index.paths[i].name)
        inst = ev.metrics["instances"]
        assert row["box_ap"] == (None if inst["bbox"]["AP"] < 0 else inst["bbox"]["AP"])
        assert row["mask_ap"] == (None if inst["segm"]["AP"] < 0 else inst["segm"]["AP"])
        assert (row["tp"], row["fp"], row["fn"]) == (ev.errors.counts["TP"], ev.errors.counts["FP"],
                                                      ev.errors.counts["FN"])
        assert row["mask_miss"] == ev.errors.error_counts["missed"]
        assert set(row) <= set(ROW_KEYS)


def test_semantic_rows_equal_the_docks_miou() -> None:
    from segviewer.core.results import SemanticMap

    index = open_dataset(SCENES / "metadata.csv")
    gt = index.ground_truth(2)
    labels = np.array(gt.semantic.labels, copy=True)
    labels[:10] = 0
    pred = SemanticMap(labels, gt.semantic.categories)
    _, row = evaluate_image(pred, gt)
    ev = image_report(None, pred, find_ground_truth(index.paths[2]), MergeParams())
    assert row["miou"] == ev.metrics["semantic"]["mean_iou"] < 1


def test_store_round_trip_and_no_recompute(tmp_path: Path) -> None:
    index = open_dataset(SCENES)
    calls: list[int] = []

    def predict(i: int):
        calls.append(i)
        return _predict(index, i)

    with ResultStore(tmp_path / "r.sqlite") as store:
        rows = run_dataset(index, predict, store, "shapes-perturbed", "w1")
        assert sorted(calls) == list(range(len(index)))
        again = run_dataset(index, predict, store, "shapes-perturbed", "w1")
        assert len(calls) == len(index) and again == rows  # nothing predicted twice
        h = store.image_hash(index.paths[0])
        back, ms = store.get_prediction(h, "shapes-perturbed", "w1")
        orig, _ = _predict(index, 0)
        assert ms == 1.5 and np.array_equal(back.boxes, orig.boxes)
        assert all(np.array_equal(back.masks.full(k), orig.masks.full(k)) for k in range(len(orig)))
        run_dataset(index, predict, store, "shapes-perturbed", "w2", images=[1])  # other weights: predicted
        assert calls[-1] == 1 and len(calls) == len(index) + 1


CHILD = r"""
import sys, time
from pathlib import Path
from segviewer.analysis.dataset_eval import run_dataset
from segviewer.core.dataset_index import open_dataset
from segviewer.core.result_store import ResultStore
from segviewer.synth.predictions import perturb_detections
index = open_dataset(sys.argv[1])
log = open(sys.argv[3], "a")
def predict(i):
    log.write(f"{i}\n"); log.flush()
    time.sleep(0.15)
    return perturb_detections(index.ground_truth(i).instances, 1000 + i), 2.0
run_dataset(index, predict, ResultStore(sys.argv[2]), "m", "w")
"""


def test_a_killed_run_resumes(tmp_path: Path) -> None:
    from segviewer.synth.dataset import write_dataset

    write_dataset(tmp_path / "ds", 14, seed=3, size=(64, 64))
    db, log = tmp_path / "r.sqlite", tmp_path / "log.txt"
    log.write_text("")
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path / "ds"), str(db), str(log)])
    try:
        deadline = time.monotonic() + 60
        while len(log.read_text().split()) < 5 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    started = [int(v) for v in log.read_text().split()]
    assert 5 <= len(started) < 14, "the child was not killed mid-run"
    index = open_dataset(tmp_path / "ds")
    with ResultStore(db) as store:
        done_before = len(store.metrics("m", "w", index.gt_key))
        assert 4 <= done_before < 14
        calls: list[int] = []

        def predict(i: int):
            calls.append(i)
            return perturb_detections(index.ground_truth(i).instances, 1000 + i), 2.0

        rows = run_dataset(index, predict, store, "m", "w")
    assert len(rows) == 14 and len(calls) == 14 - done_before  # only what was missing
    for i in (0, 13):  # stored rows equal a fresh computation
        pred, _ = predict(i)
        _, fresh = evaluate_image(pred, index.ground_truth(i), name=index.paths[i].name)
        assert {k: v for k, v in rows[i].items() if k != "infer_ms"} == fresh


def test_remap_keeps_class_names() -> None:  # the rows score by name, as the dock does
    index = open_dataset(SCENES)
    gt = index.ground_truth(0).instances
    assert remap_detections(gt, gt.categories).names == gt.names


@pytest.mark.parametrize("path", ["annotations/instances.json", "annotations/panoptic.json", "metadata.csv", "."])
def test_open_each_dataset_form(path: str) -> None:
    index = open_dataset(SCENES / path)
    assert len(index) == 6 and all(p.is_file() for p in index.paths)
    assert index.ground_truth(0)


def test_cityscapes_tree_opens_with_ground_truth_beside_each_image(tmp_path: Path) -> None:
    import cv2

    img_dir = tmp_path / "leftImg8bit" / "val" / "ulm"
    gt_dir = tmp_path / "gtFine" / "val" / "ulm"
    img_dir.mkdir(parents=True)
    gt_dir.mkdir(parents=True)
    for k in range(2):
        cv2.imwrite(str(img_dir / f"ulm_{k:06d}_leftImg8bit.png"), np.zeros((8, 16, 3), np.uint8))
        lab = np.full((8, 16), 7, np.uint8)  # road
        lab[:3] = 23  # sky
        cv2.imwrite(str(gt_dir / f"ulm_{k:06d}_gtFine_labelIds.png"), lab)
    index = open_dataset(tmp_path)
    assert index.kind == "folder" and len(index) == 2
    gt = index.ground_truth(1)
    assert gt.semantic is not None and gt.semantic.categories[23] == "sky"
