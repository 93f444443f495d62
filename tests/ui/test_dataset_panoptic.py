"""A COCO panoptic dataset in the dataset view: the bundled instance and semantic models run as a
panoptic pair (merged as ``predict --panoptic`` merges them), PQ/SQ/RQ per image in the table,
sorted worst first, filtered, the worst image opened with the Metrics dock showing the same
numbers; a pair reuses its members' stored runs, and two stored runs merge without a model."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
from fakes import FakeAdapter
from PySide6.QtCore import Qt

from segviewer.analysis.evaluation import MergeParams, image_report
from segviewer.core.results import PanopticMap
from segviewer.synth.dataset import write_dataset
from segviewer.ui.features.dataset import DATASET_ERRORS, DATASET_PREDICTION, DatasetFeature
from segviewer.ui.features.groundtruth import GroundTruthFeature
from segviewer.ui.main_window import MainWindow
from segviewer.ui.model_host import ModelHost, registry_factory
from segviewer.ui.worker import InferenceWorker

TIMEOUT = 120_000
PAIR = ("shapes_maskrcnn+shapes_fcn", "bundled+bundled")


@pytest.fixture
def window(qtbot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    w = MainWindow(InferenceWorker(FakeAdapter, process=False), cards=[])
    qtbot.addWidget(w)
    w.resize(1366, 768)
    w.show()
    qtbot.waitExposed(w)
    feat = w.findChild(DatasetFeature)
    yield w, feat
    feat.shutdown()
    w.shutdown()


def _run(qtbot, feat, models: list[str]) -> None:
    feat.session.models = models  # as the Models dock selects them
    with qtbot.waitSignal(feat.runFinished, timeout=TIMEOUT) as done:
        feat.run_model()
    assert done.args == [True]


def test_panoptic_pair_rows_sort_filter_open_and_the_metrics_dock(qtbot, window, tmp_path: Path) -> None:
    w, feat = window
    root = tmp_path / "ds"
    write_dataset(root, 4, seed=3, size=(96, 128))
    calls: list[str] = []

    class CountingHost(ModelHost):
        def predict(self, *a, **k):
            calls.append(a[0])
            return super().predict(*a, **k)

    feat.host_factory = lambda: CountingHost(functools.partial(registry_factory, torch_threads=1))
    with qtbot.waitSignal(feat.opened, timeout=TIMEOUT):
        feat.open_dataset(root / "annotations" / "panoptic.json")
    assert feat.index.kind == "panoptic"
    # each member alone first, then the pair: its members come from the store, nothing is rerun
    _run(qtbot, feat, ["shapes_maskrcnn"])
    _run(qtbot, feat, ["shapes_fcn"])
    assert calls == ["shapes_maskrcnn"] * 4 + ["shapes_fcn"] * 4
    _run(qtbot, feat, ["shapes_maskrcnn", "shapes_fcn"])
    assert len(calls) == 8 and feat.run_key == PAIR
    m = feat.model
    assert {"pq", "sq", "rq", "tp", "fp", "fn"} <= set(m.keys)
    pq = m.columns["pq"]
    assert np.all((pq >= 0) & (pq <= 1))
    # sort worst first by a click on the PQ header; filter by class and by name
    table = feat.panel.table
    table.sortByColumn(1 + m.keys.index("pq"), Qt.SortOrder.AscendingOrder)
    shown = [m.value(int(i), "pq") for i in m.view]
    assert shown == sorted(shown)
    worst = int(m.view[0])
    star = m.categories.index("star")
    feat.panel.classes.setCurrentIndex(1 + star)
    assert 0 < m.rowCount() <= 4 and all(m.class_counts[int(i), star] > 0 for i in m.view)
    feat.panel.classes.setCurrentIndex(0)
    feat.panel.search.setText(m.names[worst][-8:])
    assert [int(i) for i in m.view] == [worst]
    feat.panel.search.setText("")
    # open the worst image: the merged map and its error layer; the dock shows the same PQ
    gt_feat = w.findChild(GroundTruthFeature)
    with qtbot.waitSignal(feat.imageEvaluated, timeout=TIMEOUT):
        table.selectRow(0)
    assert w.session.path.name == m.names[worst]
    assert isinstance(w.session.results[DATASET_PREDICTION], PanopticMap)
    assert feat.eval.error_kind == "panoptic" and w.session.results[DATASET_ERRORS] is feat.eval.errors
    (inst, sem), _ = feat.store.get_prediction(feat.store.image_hash(feat.index.paths[worst]), *PAIR)
    single = image_report(inst, sem, feat.index.ground_truth(worst), MergeParams(), "x")  # the dock's function
    assert m.value(worst, "pq") == pytest.approx(single.metrics["panoptic"]["all"]["pq"])
    qtbot.waitUntil(lambda: (gt_feat.panel.dataset_value("PQ all") or "").startswith(
        f"{100 * m.value(worst, 'pq'):.1f}"), timeout=TIMEOUT)
    assert gt_feat.panel.dataset_item.text(1).startswith(PAIR[0])
    assert gt_feat.panel.folder_item.text(0) == "Dataset totals"
    assert gt_feat.panel.section_value("mean PQ") == f"{100 * np.nanmean(pq):.1f}"
    assert gt_feat.panel.section_value("TP") == str(int(np.nansum(m.columns["tp"])))
    # the same pair from the two stored runs, the other way round, predicts nothing and agrees
    runs = {tuple(feat.panel.runs.itemData(k)) for k in range(feat.panel.runs.count())}
    assert {("shapes_maskrcnn", "bundled"), ("shapes_fcn", "bundled"), PAIR} <= runs
    before = dict(enumerate(pq))
    with qtbot.waitSignal(feat.rowsLoaded, timeout=TIMEOUT):
        feat.choose_run(("shapes_fcn", "bundled"))
    feat.compare_key = ("shapes_maskrcnn", "bundled")
    with qtbot.waitSignal(feat.runFinished, timeout=TIMEOUT) as merged:
        feat.merge_runs()
    assert merged.args == [True] and feat.run_key == ("shapes_fcn+shapes_maskrcnn", "bundled+bundled")
    assert len(calls) == 8
    assert np.allclose([m.value(i, "pq") for i in range(4)], [before[i] for i in range(4)])


def test_inference_ms_leaves_out_loading_the_model(tmp_path: Path) -> None:
    import time

    from segviewer.adapters.base import PredictParams
    from segviewer.core.dataset_index import open_dataset
    from segviewer.ui.features._dataset_jobs import model_predictor

    write_dataset(tmp_path / "ds", 1, seed=1, size=(32, 32))
    index = open_dataset(tmp_path / "ds")
    gt = index.ground_truth(0).instances

    class SlowLoadHost:
        def predict(self, mid, device, weights, image, params, timings, on_state):
            on_state("loading")
            time.sleep(0.4)  # loading the weights
            on_state("loaded")
            time.sleep(0.02)  # the forward pass
            return gt

    result, ms = model_predictor(index, SlowLoadHost(), "m", "cpu", None, PredictParams())(0)
    assert result is gt and 15 <= ms < 300


def test_an_image_without_results_is_still_scored_for_masks(tmp_path: Path) -> None:
    import json

    from segviewer.analysis.dataset_eval import evaluate_image
    from segviewer.core.coco_results import detections_to_coco
    from segviewer.core.dataset_index import open_dataset
    from segviewer.ui.features._dataset_jobs import results_predictor

    write_dataset(tmp_path / "ds", 2, seed=4, size=(48, 64))
    index = open_dataset(tmp_path / "ds" / "annotations" / "instances.json")
    gt0 = index.ground_truth(0).instances
    res = tmp_path / "results.json"  # image 0 only: image 1 has no detections at all
    res.write_text(json.dumps(detections_to_coco(gt0, int(index.image_ids[0]), list(index._instances.category_ids))))
    predict = results_predictor(index, res)
    empty, _ = predict(1)
    assert len(empty) == 0 and empty.masks is not None
    row = evaluate_image(empty, index.ground_truth(1))[1]
    assert row["mask_ap"] == 0.0 and row["mask_miss"] == len(index.ground_truth(1).instances)
