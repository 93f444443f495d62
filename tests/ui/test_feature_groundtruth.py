"""The ground-truth feature end to end with the bundled shapes models (real weights, no fakes):
the GT layer beside the sample scene, the merged panoptic layer, the error layer with hover, the
Metrics dock's per-image PQ, the folder evaluation (progress, cancel) and its JSON/CSV export."""

from __future__ import annotations

import csv
import functools
import json
from pathlib import Path

import numpy as np
import pytest
import torchvision.models.detection  # noqa: F401 - imported at collection: minutes on a loaded CPU
from PySide6.QtCore import Qt

from segviewer.adapters.registry import get_card
from segviewer.render.error_layer import TP
from segviewer.synth.dataset import write_dataset
from segviewer.ui.features.groundtruth import ERROR_LAYER, GT_LAYER, PANOPTIC_LAYER, GroundTruthFeature
from segviewer.ui.main_window import ASSETS, MainWindow
from segviewer.ui.model_host import ModelHost, registry_factory
from segviewer.ui.worker import InferenceWorker

MODELS = ["shapes_maskrcnn", "shapes_fcn"]
TIMEOUT = 120_000  # a 2-core CPU shared with a training job
_factory = functools.partial(registry_factory, torch_threads=1)


@pytest.fixture
def window(qtbot):
    made: list[MainWindow] = []

    def make() -> tuple[MainWindow, GroundTruthFeature]:
        w = MainWindow(InferenceWorker(_factory, process=False), cards=[get_card(m) for m in MODELS])
        qtbot.addWidget(w)
        w.resize(1200, 800)
        w.show()
        qtbot.waitExposed(w)
        made.append(w)
        feat = w.findChild(GroundTruthFeature)
        assert feat is not None, "the groundtruth feature did not install"
        feat.host_factory = lambda: ModelHost(_factory)  # in-process here; the app uses a child process
        return w, feat

    yield make
    for w in made:
        feat = w.findChild(GroundTruthFeature)
        if feat is not None:
            assert feat.shutdown(30_000)
        w.shutdown()


def _evaluated_with(feat: GroundTruthFeature, *kinds: str) -> bool:
    return feat.eval is not None and all(k in feat.eval.metrics for k in kinds)


def test_sample_scene_gt_panoptic_errors_hover_and_export(qtbot, window, tmp_path: Path) -> None:
    w, feat = window()
    scene = ASSETS / "scenes" / "scene_000.png"
    with qtbot.waitSignal(feat.groundTruthLoaded, timeout=TIMEOUT):
        w.start([scene], models=MODELS)
    # The ground truth is a layer like any model's, available but hidden by default.
    from segviewer.core.results import PanopticMap

    assert isinstance(w.session.results[GT_LAYER], PanopticMap)
    gt_layer = (GT_LAYER, "panoptic")
    assert not w.panel.checkbox(gt_layer).isChecked()
    assert "panoptic.json" in feat.panel.source.text()

    qtbot.waitUntil(lambda: _evaluated_with(feat, "panoptic", "semantic", "instances"), timeout=TIMEOUT)
    assert isinstance(w.session.results[PANOPTIC_LAYER], PanopticMap)
    errors = w.session.results[ERROR_LAYER]
    assert w.panel.checkbox((ERROR_LAYER, "masks")).isChecked()  # errors shown, GT and merge on request
    assert not w.panel.checkbox((PANOPTIC_LAYER, "panoptic")).isChecked()
    # Merge categories by name: the FCN's 9 classes, things from the Mask R-CNN.
    merged = w.session.results[PANOPTIC_LAYER]
    assert merged.categories == get_card("shapes_fcn").categories
    assert {merged.categories[s.category_id] for s in merged.segments if s.isthing} <= set(
        get_card("shapes_maskrcnn").categories[1:])
    pq = feat.eval.metrics["panoptic"]["all"]["pq"]
    assert 0.3 < pq <= 1.0
    assert feat.panel.image_value("PQ all").startswith(f"{100 * pq:.1f}")
    assert feat.panel.image_value("mIoU") == f"{100 * feat.eval.metrics['semantic']['mean_iou']:.1f}"
    assert feat.panel.image_value("mask AP") is not None

    # Hover a true-positive pixel: the dock names status, class and the matched IoU.
    rows, cols = np.nonzero(errors.status == TP)
    y, x = int(rows[len(rows) // 2]), int(cols[len(cols) // 2])
    w.canvas.hovered.emit((x + 0.5, y + 0.5))
    info = errors.info_at(x + 0.5, y + 0.5)
    name = merged.categories[merged.segment(info["pred_id"]).category_id]
    assert feat.panel.hover.text() == f"Under cursor: TP {name}, IoU {info['iou']:.2f}"

    # Export this image's numbers.
    out = tmp_path / "image.json"
    with qtbot.waitSignal(feat.exported, timeout=TIMEOUT):
        assert feat.export(out)
    doc = json.loads(out.read_text())
    assert doc["scope"] == "image" and doc["panoptic"]["all"]["pq"] == pytest.approx(pq)


def _folder(tmp_path: Path, n: int = 3) -> Path:
    root = tmp_path / "ds"
    write_dataset(root, n, seed=7, size=(128, 128), images_dir=".")
    return root


def test_folder_evaluation_progress_result_and_export(qtbot, window, tmp_path: Path) -> None:
    root = _folder(tmp_path)
    w, feat = window()
    with qtbot.waitSignal(feat.groundTruthLoaded, timeout=TIMEOUT):
        w.start([root], models=MODELS)
    progress: list[tuple[int, int]] = []
    feat.folderProgress.connect(lambda d, t: progress.append((d, t)))
    with qtbot.waitSignal(feat.folderFinished, timeout=TIMEOUT) as done:
        assert feat.evaluate_folder()
        assert feat.panel.cancel.isEnabled() and not feat.panel.evaluate.isEnabled()
    report = done.args[0]
    assert progress == [(1, 3), (2, 3), (3, 3)]
    assert report["images_evaluated"] == 3 and report["images_without_ground_truth"] == []
    assert report["panoptic"]["images"] == 3 and report["semantic"]["images"] == 3
    assert 0.3 < report["panoptic"]["all"]["pq"] <= 1.0
    assert 0.3 < report["semantic"]["mean_iou"] <= 1.0
    assert 0.0 < report["instances"]["segm"]["AP"] <= 1.0
    qtbot.waitUntil(lambda: feat.job is None, timeout=TIMEOUT)
    assert feat.panel.evaluate.isEnabled() and feat.panel.folder_item.text(1) == "3 images"

    js, cs = tmp_path / "out" / "folder.json", tmp_path / "out" / "folder.csv"
    for path in (js, cs):
        with qtbot.waitSignal(feat.exported, timeout=TIMEOUT):
            assert feat.export(path)
    doc = json.loads(js.read_text())
    assert doc["scope"] == "folder" and doc["panoptic"]["all"]["pq"] == pytest.approx(report["panoptic"]["all"]["pq"])
    with cs.open(newline="") as f:
        rows = list(csv.DictReader(f))
    got = {(r["section"], r["class"], r["metric"]): r["value"] for r in rows}
    assert float(got[("panoptic", "all", "pq")]) == pytest.approx(report["panoptic"]["all"]["pq"], abs=1e-6)
    assert float(got[("semantic", "", "mean_iou")]) == pytest.approx(report["semantic"]["mean_iou"], abs=1e-6)
    assert float(got[("instances_segm", "", "AP")]) == pytest.approx(report["instances"]["segm"]["AP"], abs=1e-6)
    assert not list((tmp_path / "out").glob(".*part*"))  # atomic writes leave no temp files


def test_folder_evaluation_can_be_cancelled(qtbot, window, tmp_path: Path) -> None:
    root = _folder(tmp_path)
    w, feat = window()
    with qtbot.waitSignal(feat.groundTruthLoaded, timeout=TIMEOUT):
        w.start([root], models=MODELS)
    finished: list[object] = []
    progress: list[int] = []
    feat.folderFinished.connect(finished.append)
    feat.folderProgress.connect(lambda d, t: progress.append(d))
    with qtbot.waitSignal(feat.folderCancelled, timeout=TIMEOUT):
        assert feat.evaluate_folder()
        assert feat.panel.cancel.isEnabled()
        # cancel right after the first image, from the job's own thread (deterministic here; the
        # Cancel button calls the same thread-safe method from the UI thread)
        job = feat.job
        job.progress.connect(lambda d, t: job.cancel(), Qt.ConnectionType.DirectConnection)
    qtbot.waitUntil(lambda: feat.job is None, timeout=TIMEOUT)
    assert finished == [] and feat.folder_report is None and progress == [1]
    assert feat.panel.status.text() == "Cancelled." and feat.panel.evaluate.isEnabled()


def test_no_ground_truth_says_so(qtbot, window, tmp_path: Path) -> None:
    from segviewer.core.fileio import write_image_atomic
    from segviewer.synth.generate import generate_scene

    img = tmp_path / "lonely.png"
    write_image_atomic(img, generate_scene(3, (64, 64)).image)
    w, feat = window()
    with qtbot.waitSignal(feat.groundTruthLoaded, timeout=TIMEOUT):
        w.start([img], models=[], no_default=True)
    assert feat.panel.source.text() == "No ground truth found beside lonely.png."
    assert GT_LAYER not in w.session.results
    qtbot.waitUntil(lambda: feat.eval is not None, timeout=TIMEOUT)
    # said once (the source line), not again in the notes below it (issue #10)
    shown = [feat.panel.source.text(), feat.panel.notes.text(), feat.panel.hover.text()]
    assert sum(t.count("No ground truth found") for t in shown) == 1


# ---- the Qt-free glue, against the reference functions ------------------------------------------


def test_semantic_accumulator_maps_names_and_equals_one_confusion_matrix() -> None:
    from segviewer.analysis.evaluation import SemanticAccumulator
    from segviewer.analysis.metrics import semantic_metrics
    from segviewer.core.results import SemanticMap

    rng = np.random.default_rng(0)
    names = ("sky", "grass", "circle")
    acc = SemanticAccumulator()
    gts, preds = [], []
    for _ in range(2):
        g = rng.integers(0, 3, (20, 30))
        g[0, :5] = 255  # void in the ground truth is not counted
        p = np.where(rng.random((20, 30)) < 0.7, np.where(g == 255, 0, g), rng.integers(0, 3, (20, 30)))
        gts.append(g)
        preds.append(p)
        # the prediction lists its classes in another order: labels are re-indexed by name
        perm = np.array([2, 0, 1])  # sky -> 2, grass -> 0, circle -> 1
        pred = SemanticMap(perm[p], ("grass", "circle", "sky"))
        acc.update(pred, SemanticMap(g, names, ignore_index=255))
    ref = semantic_metrics(np.stack(gts), np.stack(preds), 3, 255, names)
    got = acc.scores()
    for k in ("pixel_accuracy", "mean_accuracy", "mean_iou", "fw_iou"):
        assert got[k] == pytest.approx(ref[k], abs=1e-12)
    assert got["per_class"]["circle"]["iou"] == pytest.approx(ref["per_class"]["circle"]["iou"])


def test_merge_by_name_things_from_the_detector_stuff_from_the_segmenter() -> None:
    from segviewer.analysis.evaluation import MergeParams, merge_by_name, remap_panoptic
    from segviewer.core.results import Detections, MaskSet, SemanticMap

    lab = np.zeros((20, 20), np.uint8)  # __background__
    lab[:10] = 1  # sky
    lab[12:16, 12:16] = 2  # the segmenter's circle pixels never become stuff
    sem = SemanticMap(lab, ("__background__", "sky", "circle"))
    m = np.zeros((1, 20, 20), bool)
    m[0, 2:8, 2:8] = True
    det = Detections((20, 20), [[2, 2, 8, 8]], [0.9], [2], ("__background__", "square", "circle"),
                     masks=MaskSet.from_full(m))
    pm = merge_by_name(det, sem, MergeParams(stuff_min_area=10))
    assert pm.categories == ("__background__", "sky", "circle", "square")
    assert pm.isthing == (False, False, True, True)
    segs = {pm.categories[s.category_id]: s for s in pm.segments}
    assert set(segs) == {"circle", "sky"} and segs["circle"].isthing and not segs["sky"].isthing
    assert segs["circle"].area == 36 and segs["sky"].area == 200 - 36  # the circle covers part of the sky
    assert (pm.segment_ids[10:] == 0).all()  # background and the segmenter's things are void
    # re-labelled into a ground truth's category list by name; unknown classes drop to void
    gt_like = remap_panoptic(pm, ("circle", "grass"), (True, False))
    assert [gt_like.categories[s.category_id] for s in gt_like.segments] == ["circle"]
    assert int((gt_like.segment_ids > 0).sum()) == 36
