"""The Metrics dock's "UPSNet head" merge with the bundled shapes models (real weights): offered
only when the current results carry logits, with the reason in its tooltip otherwise; picking it
merges through UPSNet's head and scores the sample scene close to the heuristic."""

from __future__ import annotations

import functools

import pytest
import torchvision.models.detection  # noqa: F401 - imported at collection: minutes on a loaded CPU

from segviewer.adapters.registry import get_card
from segviewer.core.results import Detections
from segviewer.ui.features.groundtruth import PANOPTIC_LAYER, GroundTruthFeature
from segviewer.ui.main_window import ASSETS, MainWindow
from segviewer.ui.model_host import registry_factory
from segviewer.ui.widgets.metrics_panel import UPSNET_TIP, MetricsPanel
from segviewer.ui.worker import InferenceWorker

MODELS = ["shapes_maskrcnn", "shapes_fcn"]
TIMEOUT = 120_000
_factory = functools.partial(registry_factory, torch_threads=1)


@pytest.fixture
def window(qtbot):
    w = MainWindow(InferenceWorker(_factory, process=False), cards=[get_card(m) for m in MODELS])
    qtbot.addWidget(w)
    w.resize(1200, 800)
    w.show()
    qtbot.waitExposed(w)
    feat = w.findChild(GroundTruthFeature)
    assert feat is not None
    yield w, feat
    assert feat.shutdown(30_000)
    w.shutdown()


def _pq(feat: GroundTruthFeature) -> float:
    return feat.eval.metrics["panoptic"]["all"]["pq"]


def _pick(panel: MetricsPanel, method: str) -> None:
    """What a user's click does: set the combo and emit ``activated``."""
    i = 1 if method == "upsnet" else 0
    panel.method.setCurrentIndex(i)
    panel.method.activated.emit(i)


def test_upsnet_choice_follows_the_results_and_merges_the_sample_scene(qtbot, window) -> None:
    w, feat = window
    panel = feat.panel
    assert not panel.upsnet_enabled()  # nothing to merge yet
    scene = ASSETS / "scenes" / "scene_000.png"
    w.start([scene], models=MODELS)

    def merged_with(method: str) -> bool:
        return (feat.eval is not None and "panoptic" in feat.eval.metrics
                and feat.eval.merge_method == method and not any(m in w.session.running for m in MODELS))

    qtbot.waitUntil(lambda: merged_with("heuristic") and panel.upsnet_enabled(), timeout=TIMEOUT)
    heuristic = _pq(feat)
    assert panel.method.model().item(1).toolTip() == UPSNET_TIP
    assert panel.overlap.isEnabled()

    _pick(panel, "upsnet")
    qtbot.waitUntil(lambda: merged_with("upsnet"), timeout=TIMEOUT)
    upsnet = _pq(feat)
    print(f"sample scene PQ: heuristic {heuristic:.4f}, UPSNet head {upsnet:.4f}")
    assert upsnet > 0.8 and abs(upsnet - heuristic) < 0.05
    assert not panel.overlap.isEnabled() and not panel.stuff_area.isEnabled()  # UPSNet ignores them
    assert "UPSNet head" in panel.image_item.text(1)
    merged = w.session.results[PANOPTIC_LAYER]
    assert merged.categories == get_card("shapes_fcn").categories
    assert feat.current_report()["merge"]["method"] == "upsnet"

    # Results without mask logits (e.g. a detector without a mask head): the choice greys out,
    # says why, and the heuristic takes over; logits back, the user's pick comes back too.
    real = w.session.results["shapes_maskrcnn"]
    w.session.results["shapes_maskrcnn"] = Detections(real.image_size, real.boxes, real.scores, real.class_ids,
                                                      real.categories, masks=real.masks)
    w.session.resultsChanged.emit()
    qtbot.waitUntil(lambda: merged_with("heuristic"), timeout=TIMEOUT)
    assert not panel.upsnet_enabled() and panel.merge_method() == "heuristic"
    tip = panel.method.model().item(1).toolTip()
    assert "shapes_maskrcnn" in tip and "mask logits" in tip
    assert _pq(feat) == pytest.approx(heuristic)
    w.session.results["shapes_maskrcnn"] = real
    w.session.resultsChanged.emit()
    qtbot.waitUntil(lambda: merged_with("upsnet"), timeout=TIMEOUT)
    assert panel.upsnet_enabled() and _pq(feat) == pytest.approx(upsnet)


def test_panel_keeps_the_users_pick_while_upsnet_is_unavailable(qtbot) -> None:
    panel = MetricsPanel()
    qtbot.addWidget(panel)
    changes: list[int] = []
    panel.paramsChanged.connect(lambda: changes.append(1))
    assert not panel.upsnet_enabled() and panel.merge_method() == "heuristic"
    panel.set_upsnet_available(True)
    _pick(panel, "upsnet")
    assert panel.merge_method() == "upsnet" and changes == [1]
    panel.set_upsnet_available(False, "the semantic model gives no logits")
    assert panel.merge_method() == "heuristic" and "no logits" in panel.method.model().item(1).toolTip()
    assert "no logits" in panel.method.toolTip() and panel.overlap.isEnabled()
    panel.set_upsnet_available(True)
    assert panel.merge_method() == "upsnet" and changes == [1]  # programmatic changes emit nothing


def test_folder_evaluation_merges_with_upsnet_when_picked(qtbot, window, tmp_path) -> None:
    """The folder job runs the models in a host (results cross a pickle boundary with their logits)
    and merges every image with the method in effect."""
    from segviewer.synth.dataset import write_dataset
    from segviewer.ui.model_host import ModelHost

    root = tmp_path / "ds"
    write_dataset(root, 2, seed=3, size=(128, 128), images_dir=".")
    w, feat = window
    feat.host_factory = lambda: ModelHost(_factory)
    w.start([root], models=MODELS)
    qtbot.waitUntil(lambda: feat.eval is not None and feat.panel.upsnet_enabled()
                    and not any(m in w.session.running for m in MODELS), timeout=TIMEOUT)
    _pick(feat.panel, "upsnet")
    with qtbot.waitSignal(feat.folderFinished, timeout=TIMEOUT) as done:
        assert feat.evaluate_folder()
    report = done.args[0]
    assert report["merge"]["method"] == "upsnet" and report["panoptic_merges"] == {"upsnet": 2}
    assert report["panoptic"]["images"] == 2 and 0.5 < report["panoptic"]["all"]["pq"] <= 1.0
