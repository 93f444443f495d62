"""The per-pixel semantic error layer in the ground-truth feature, with the bundled shapes FCN on
the sample scene (real weights): offered beside the ground truth, shown when it is the only error
layer, hidden by default under the panoptic one, and read out on hover."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torchvision.models.detection  # noqa: F401 - imported at collection: minutes on a loaded CPU

from segviewer.adapters.registry import get_card
from segviewer.render.semantic_error import SEM_STATUS_NAMES, SemanticErrorMap
from segviewer.ui.features.groundtruth import ERROR_LAYER, SEMANTIC_ERROR_LAYER, GroundTruthFeature
from segviewer.ui.main_window import ASSETS, MainWindow
from segviewer.ui.model_host import registry_factory
from segviewer.ui.worker import InferenceWorker

TIMEOUT = 120_000
_factory = functools.partial(registry_factory, torch_threads=1)


@pytest.fixture
def window(qtbot):
    made: list[MainWindow] = []

    def make(models: list[str]) -> tuple[MainWindow, GroundTruthFeature]:
        w = MainWindow(InferenceWorker(_factory, process=False), cards=[get_card(m) for m in models])
        qtbot.addWidget(w)
        w.resize(1200, 800)
        w.show()
        qtbot.waitExposed(w)
        made.append(w)
        feat = w.findChild(GroundTruthFeature)
        assert feat is not None
        return w, feat

    yield make
    for w in made:
        feat = w.findChild(GroundTruthFeature)
        if feat is not None:
            assert feat.shutdown(30_000)
        w.shutdown()


def _done(w: MainWindow, feat: GroundTruthFeature, models: list[str]) -> bool:
    return (feat.eval is not None and "semantic" in feat.eval.metrics
            and not any(m in w.session.running for m in models))


def test_semantic_only_results_get_a_pixel_error_layer_with_hover(qtbot, window) -> None:
    models = ["shapes_fcn"]
    w, feat = window(models)
    w.start([ASSETS / "scenes" / "scene_000.png"], models=models)
    qtbot.waitUntil(lambda: _done(w, feat, models), timeout=TIMEOUT)
    em = w.session.results[SEMANTIC_ERROR_LAYER]
    assert isinstance(em, SemanticErrorMap) and ERROR_LAYER not in w.session.results
    assert w.panel.checkbox((SEMANTIC_ERROR_LAYER, "masks")).isChecked()  # the only error layer: shown
    # its pixel counts give back the dock's pixel accuracy
    c = em.counts
    counted = sum(v for k, v in c.items() if k != "ignored")
    acc = feat.eval.metrics["semantic"]["pixel_accuracy"]
    assert (c["correct"] + c["background"]) / counted == pytest.approx(acc, abs=1e-12)
    assert feat.panel.image_item.text(1).startswith(f"right {100 * acc:.1f}%")
    assert "(pixels)" in feat.panel.image_item.text(1)
    # hover a wrongly classified pixel: both classes and their IoU
    status = np.isin(em.status, [SEM_STATUS_NAMES.index(s) for s in ("wrong class", "missed", "spurious")])
    ys, xs = np.nonzero(status)
    assert len(ys), "the FCN is not perfect on the sample scene's boundaries"
    x, y = float(xs[0]) + 0.5, float(ys[0]) + 0.5
    w.canvas.hovered.emit((x, y))
    assert feat.panel.hover.text() == em.hover_text(x, y)
    assert "predicted" in feat.panel.hover.text() and "true" in feat.panel.hover.text()


def test_with_a_panoptic_error_layer_the_pixel_one_starts_hidden(qtbot, window) -> None:
    models = ["shapes_maskrcnn", "shapes_fcn"]
    w, feat = window(models)
    w.start([ASSETS / "scenes" / "scene_000.png"], models=models)
    qtbot.waitUntil(lambda: _done(w, feat, models) and "panoptic" in feat.eval.metrics, timeout=TIMEOUT)
    assert isinstance(w.session.results[SEMANTIC_ERROR_LAYER], SemanticErrorMap)
    assert w.panel.checkbox((ERROR_LAYER, "masks")).isChecked()
    assert not w.panel.checkbox((SEMANTIC_ERROR_LAYER, "masks")).isChecked()
    # hover reads out the layers on screen: the segment line, and the pixel line once that is shown
    em = w.session.results[SEMANTIC_ERROR_LAYER]
    w.canvas.hovered.emit((100.5, 100.5))
    assert "\n" not in feat.panel.hover.text() and feat.panel.hover.text().startswith("Under cursor:")
    w.panel.checkbox((SEMANTIC_ERROR_LAYER, "masks")).setChecked(True)
    qtbot.waitUntil(lambda: w.state.visible.get((SEMANTIC_ERROR_LAYER, "masks"), False), timeout=TIMEOUT)
    w.canvas.hovered.emit((100.5, 100.5))
    lines = feat.panel.hover.text().split("\n")
    assert len(lines) == 2 and lines[0].startswith("Under cursor:") and lines[1] == em.hover_text(100.5, 100.5)
