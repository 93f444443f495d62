"""The Metrics dock's keypoint AP: a COCO person-keypoints ground truth found beside the image
(the loader reads its keypoints, the GT layer draws them) and a keypoint model's result put where
the worker puts it; the dock's keypoint AP / AP50 / AP75 equal pycocotools' COCOeval run on the
file and the same results."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from segviewer.adapters.registry import get_card
from segviewer.analysis.dataset_eval import image_row, summarize_rows
from segviewer.core.results import Detections
from segviewer.render.layers import LayerKind, layer_kinds
from segviewer.ui.features.groundtruth import GT_LAYER, GroundTruthFeature
from segviewer.ui.model_host import registry_factory
from tests.keypoint_coco import pycocotools_keypoint_stats, write_people

KP = "keypointrcnn_resnet50_fpn"
SHOT = Path("/work/notes/s4/kp_metrics_dock.png")


def open_with_keypoints(show_window, qtbot, root: Path):  # noqa: ANN001, ANN201
    """A window on the people image with its ground truth loaded and the keypoint result in."""
    img, gt_path, pred, results = write_people(root)
    w = show_window(functools.partial(registry_factory, torch_threads=1), [get_card(KP)], size=(1200, 800))
    feat = w.findChild(GroundTruthFeature)
    assert feat is not None
    with qtbot.waitSignal(feat.groundTruthLoaded, timeout=60_000):
        w.start([img], no_default=True)
    w.session.results[KP] = pred  # what the worker does with a Keypoint R-CNN's prediction
    w.session.resultsChanged.emit()
    qtbot.waitUntil(lambda: feat.eval is not None and "keypoints" in feat.eval.metrics, timeout=60_000)
    return w, feat, gt_path, results


def test_metrics_dock_keypoint_ap_equals_pycocotools(qtbot, show_window, tmp_path: Path) -> None:
    w, feat, gt_path, results = open_with_keypoints(show_window, qtbot, tmp_path / "ds")
    want = dict(zip(("AP", "AP50", "AP75", "APm", "APl", "AR"), pycocotools_keypoint_stats(gt_path, results)))
    assert 0.2 < want["AP"] < 0.9
    assert feat.eval.metrics["keypoints"]["AP"] == pytest.approx(want["AP"], abs=1e-12)
    panel = feat.panel
    assert panel.image_value("keypoint AP") == f"{100 * want['AP']:.1f}"
    row = next(panel.image_item.child(i) for i in range(panel.image_item.childCount())
               if panel.image_item.child(i).text(0) == "keypoint AP")
    kids = {row.child(i).text(0): row.child(i).text(1) for i in range(row.childCount())}
    for k in ("AP50", "AP75", "APm", "APl", "AR"):
        assert kids[k] == f"{100 * want[k]:.1f}"
    assert KP in panel.image_item.text(1)
    assert not panel.notes.isVisible()  # nothing missing: no "needs an instance model" note
    # the GT layer is the file's instances with their keypoints (drawn as the model's are)
    gt = w.session.results[GT_LAYER]
    assert isinstance(gt, Detections) and gt.keypoints is not None
    assert LayerKind.KEYPOINTS in layer_kinds(gt)
    report = feat.current_report()
    assert report is not None and report["keypoints"]["AP"] == pytest.approx(want["AP"])
    # a dataset run's totals (the Dataset dock's): the pooled keypoint AP and the rows' mean
    totals = summarize_rows([image_row(feat.eval)])
    feat.show_dataset_totals("run", totals, keypoints=feat.eval.metrics["keypoints"])
    assert panel.section_value("dataset keypoint AP") == f"{100 * want['AP']:.1f}"
    assert panel.section_value("mean KP AP") == f"{100 * want['AP']:.1f}"


def test_keypoint_result_without_keypoint_ground_truth_says_why(qtbot, show_window, tmp_path: Path) -> None:
    import json

    img, gt_path, pred, _ = write_people(tmp_path / "ds")
    doc = json.loads(gt_path.read_text())
    gt_path.write_text(json.dumps({**doc, "annotations": [{k: v for k, v in a.items() if k != "keypoints"}
                                                          for a in doc["annotations"]]}))
    w = show_window(functools.partial(registry_factory, torch_threads=1), [get_card(KP)])
    feat = w.findChild(GroundTruthFeature)
    with qtbot.waitSignal(feat.groundTruthLoaded, timeout=60_000):
        w.start([img], no_default=True)
    w.session.results[KP] = pred
    w.session.resultsChanged.emit()
    qtbot.waitUntil(lambda: "keypoint ground truth" in feat.panel.notes.text(), timeout=60_000)
    assert feat.panel.image_value("keypoint AP") is None


if __name__ == "__main__":  # the screenshot: python -m tests.ui.test_metrics_keypoints
    import os
    import tempfile

    if not os.environ.get("DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    from segviewer.ui.main_window import MainWindow
    from segviewer.ui.worker import InferenceWorker

    app = QApplication.instance() or QApplication([])
    img, gt_path, pred, results = write_people(Path(tempfile.mkdtemp()) / "ds")
    win = MainWindow(InferenceWorker(functools.partial(registry_factory, torch_threads=1), process=False),
                     cards=[get_card(KP)])
    win.resize(1300, 820)
    win.show()
    f = win.findChild(GroundTruthFeature)
    win.start([img], no_default=True)
    while f.gt is None:
        app.processEvents()
    win.session.results[KP] = pred
    win.session.resultsChanged.emit()
    while f.eval is None or "keypoints" not in f.eval.metrics:
        app.processEvents()
    f.dock.show()
    f.dock.raise_()
    for i in range(f.panel.image_item.childCount()):
        f.panel.image_item.child(i).setExpanded(True)
    win.panel.checkbox((GT_LAYER, "keypoints")).setChecked(True)  # the file's keypoints, v > 0
    win.panel.checkbox((KP, "keypoints")).setChecked(False)
    win.panel.checkbox((KP, "labels")).setChecked(False)
    for _ in range(50):
        app.processEvents()
    win.grab().save(str(SHOT.with_name("kp_window.png")))
    f.panel.resize(380, 560)
    f.panel.grab().save(str(SHOT))  # the dock shares its tab with the Legend: the panel itself
    print(SHOT, f.eval.metrics["keypoints"], pycocotools_keypoint_stats(gt_path, results)[:3])
    win.shutdown()
