"""Issue #10, the window's first contact: no display, the wheel over the Layers list, Open Recent
from another folder, the Classes panel with two semantic models, text that does not fit, and a
model that fails on one image (status line, Metrics dock, no dialog)."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fakes import FakeAdapter, fake_card
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from segviewer.commands.gui import NO_DISPLAY, display_problem
from segviewer.core.fileio import write_image_atomic
from segviewer.core.results import SemanticMap
from segviewer.synth.generate import generate_scene
from segviewer.ui import display as disp
from segviewer.ui.main_window import MainWindow
from segviewer.ui.settings import open_settings
from segviewer.ui.widgets.layer_panel import LayerPanel
from segviewer.ui.widgets.metrics_panel import MetricsPanel

TIMEOUT = 120_000


@pytest.fixture
def make_window(show_window):
    def make(factory=lambda mid: FakeAdapter(mid), cards=None) -> MainWindow:
        return show_window(factory, [fake_card("fake")] if cards is None else cards)

    return make


# ---- no display --------------------------------------------------------------------------------
def test_no_display_is_detected_before_qt_aborts() -> None:
    assert display_problem({}, "linux") == NO_DISPLAY
    assert display_problem({"DISPLAY": "remote.example:10.0"}, "linux") is None  # ssh -X: not probed
    assert display_problem({"WAYLAND_DISPLAY": "wayland-0"}, "linux") is None
    assert display_problem({"QT_QPA_PLATFORM": "offscreen"}, "linux") is None
    assert display_problem({}, "darwin") is None and display_problem({}, "win32") is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the X socket check is Linux's")
def test_a_display_nobody_listens_on_is_detected_too() -> None:
    """DISPLAY set but no X server behind it (a closed Xvfb, a stale ssh variable) made Qt abort too."""
    import socket

    n = 40000 + os.getpid() % 20000
    problem = display_problem({"DISPLAY": f":{n}"}, "linux")
    assert problem is not None and f"DISPLAY=:{n}" in problem and "QT_QPA_PLATFORM=offscreen" in problem
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:  # an X server's abstract socket
        server.bind(f"\0/tmp/.X11-unix/X{n}")
        server.listen(1)
        assert display_problem({"DISPLAY": f":{n}"}, "linux") is None
        assert display_problem({"DISPLAY": f"unix:{n}.0"}, "linux") is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the X/Wayland check is Linux's")
def test_segviewer_without_a_display_says_what_to_do_and_exits_2(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    env["SEGVIEWER_SETTINGS_FILE"] = str(tmp_path / "s.ini")
    out = subprocess.run([sys.executable, "-m", "segviewer", "--no-default"], capture_output=True, text=True,
                         env=env, timeout=120, cwd=tmp_path)
    assert out.returncode == 2, (out.returncode, out.stderr[-2000:])  # was 134: Qt's abort
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "xcb" not in out.stderr, out.stderr
    for hint in ("display", "QT_QPA_PLATFORM=offscreen", "segviewer predict"):
        assert hint in lines[0]


# ---- the wheel over the Layers list ----------------------------------------------------------
def _wheel(widget, dy: int = -120) -> None:
    """A wheel notch over ``widget``'s centre, delivered as the window system does (a spontaneous
    QWheelEvent, which Qt passes on to the parent when the widget ignores it)."""
    window = widget.window()
    at = widget.mapTo(window, widget.rect().center())
    QTest.wheelEvent(window.windowHandle(), QPointF(at), QPoint(0, dy))
    QApplication.processEvents()


def test_wheel_over_an_opacity_slider_scrolls_the_list_until_the_slider_is_focused(qtbot) -> None:
    panel = LayerPanel()
    qtbot.addWidget(panel)
    state = disp.DisplayState()
    layers = [(f"model{i}", kind) for i in range(6) for kind in ("masks", "boxes", "labels")]
    panel.set_layers(layers, {lid: disp.layer_title(lid) for lid in layers}, state)
    panel.resize(320, 420)
    panel.show()
    qtbot.waitExposed(panel)
    bar = panel.rows_scroll.verticalScrollBar()
    assert bar.maximum() > 0  # the rows do not fit: there is something to scroll
    slider = panel.opacity_slider(layers[3])  # ("model1", "masks"): opacity 0.60
    before = slider.value()
    moved: list = []
    panel.opacityChanged.connect(lambda lid, v: moved.append(lid))
    _wheel(slider)
    assert slider.value() == before and moved == []  # was 0.60 -> 0.51: the slider under the pointer
    assert bar.value() > 0  # the list scrolled instead
    # clicked (focused), the slider takes the wheel as usual
    panel.rows_scroll.ensureWidgetVisible(slider)
    panel.activateWindow()
    slider.setFocus(Qt.FocusReason.MouseFocusReason)
    qtbot.waitUntil(slider.hasFocus, timeout=5000)
    _wheel(slider, dy=120)
    assert slider.value() != before and moved == [layers[3]]


def test_metrics_spin_boxes_and_combo_take_the_wheel_only_when_focused(qtbot) -> None:
    panel = MetricsPanel()
    qtbot.addWidget(panel)
    panel.show()
    qtbot.waitExposed(panel)
    for w, value in ((panel.overlap, panel.overlap.value), (panel.stuff_area, panel.stuff_area.value),
                     (panel.min_score, panel.min_score.value), (panel.method, panel.method.currentIndex)):
        before = value()
        _wheel(w)
        assert value() == before, w
        assert w.focusPolicy() == Qt.FocusPolicy.StrongFocus


# ---- Open Recent -----------------------------------------------------------------------------
def test_open_recent_stores_absolute_paths_and_drops_stale_relative_ones(
        qtbot, make_window, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    start, elsewhere = tmp_path / "start", tmp_path / "elsewhere"
    (start / "inputs").mkdir(parents=True)
    elsewhere.mkdir()
    write_image_atomic(start / "inputs" / "retina.png", generate_scene(1, (48, 64)).image)
    s = open_settings()
    s.setValue("recentFiles", ["old/gone.png", str(start / "inputs" / "retina.png")])
    s.sync()
    monkeypatch.chdir(start)
    w = make_window(cards=[])
    tips = [a.toolTip() for a in w.recent_menu.actions()]
    assert tips == [str((start / "inputs" / "retina.png").resolve())]  # "old/gone.png" is gone
    with qtbot.waitSignal(w.session.imageShown, timeout=TIMEOUT):
        w.start([Path("inputs/retina.png")], models=[], no_default=True)  # relative, as typed
    recent = open_settings().value("recentFiles")
    recent = [recent] if isinstance(recent, str) else list(recent)
    assert recent == [str((start / "inputs" / "retina.png").resolve())]
    assert Path(str(w.settings.value("lastFolder"))).is_absolute()
    # from another working directory the entry still opens
    monkeypatch.chdir(elsewhere)
    w.session.image = None
    with qtbot.waitSignal(w.session.imageShown, timeout=TIMEOUT):
        w.recent_menu.actions()[0].trigger()
    assert w.session.path is not None and w.session.path.resolve() == (start / "inputs" / "retina.png").resolve()


# ---- the Classes panel ---------------------------------------------------------------------
def _sem(labels: np.ndarray) -> SemanticMap:
    return SemanticMap(labels.astype(np.uint8), ("__background__", "water", "ring"))


def test_two_semantic_models_each_sum_to_at_most_100_percent(qtbot) -> None:
    a = np.zeros((10, 10), np.uint8)
    a[:, :7] = 1  # water 70%
    b = np.zeros((10, 10), np.uint8)
    b[:, :7] = 1
    b[:, 7:] = 2  # water 70%, ring 30%
    counts = disp.class_counts({"fcn": _sem(a), "unet": _sem(b)}, 0.5)
    by_model: dict[str, float] = {}
    for c in counts:
        assert c.unit == "%"
        by_model[c.model] = by_model.get(c.model, 0.0) + c.share
    assert by_model == pytest.approx({"fcn": 0.7, "unet": 1.0})  # was water 140%
    panel = LayerPanel()
    qtbot.addWidget(panel)
    panel.set_classes(counts, disp.DisplayState())
    assert panel.class_rows() == [("fcn", "water   70%"), ("unet", "water   70%"), ("unet", "ring   30%")]
    # hiding a class from one group hides it everywhere, and both rows say so
    state = disp.DisplayState()
    state.hidden_classes.add("water")
    panel.sync(state)
    rows = [panel.classes.item(i) for i in range(panel.classes.count())]
    water = [it for it in rows if it.data(Qt.ItemDataRole.UserRole) == "water"]
    assert len(water) == 2 and all(it.checkState() == Qt.CheckState.Unchecked for it in water)


def test_result_summary_says_zero_detections() -> None:
    from segviewer.core.results import Detections

    empty = Detections((8, 8), np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int32),
                       ("__background__", "circle"))
    assert disp.result_summary(empty) == "0 detections"
    assert disp.result_summary(_sem(np.ones((4, 4)))) == "1 class"


def test_result_summary_says_how_many_detections_the_slider_and_class_filter_leave() -> None:
    from segviewer.core.results import Detections

    dets = Detections((8, 8), np.array([[0, 0, 4, 4], [2, 2, 6, 6], [1, 1, 3, 3]], np.float32),
                      np.array([0.9, 0.3, 0.2], np.float32), np.array([1, 1, 2], np.int32),
                      ("__background__", "circle", "square"))
    assert disp.result_summary(dets, disp.filter_result(dets, 0.0, ())) == "3 detections"
    assert disp.result_summary(dets, disp.filter_result(dets, 0.5, ())) == "3 detections, 1 shown"
    assert disp.result_summary(dets, disp.filter_result(dets, 0.95, ())) == "3 detections, 0 shown"
    assert disp.result_summary(dets, disp.filter_result(dets, 0.0, ("square",))) == "3 detections, 2 shown"


# ---- text that does not fit ----------------------------------------------------------------
def test_evaluating_label_is_elided_with_the_full_text_in_its_tooltip(qtbot) -> None:
    panel = MetricsPanel()
    qtbot.addWidget(panel)
    panel.resize(300, 600)
    panel.show()
    qtbot.waitExposed(panel)
    width = panel.minimumSizeHint().width()
    text = "Evaluating 6 images with " + ", ".join(f"shapes_model_number_{i}" for i in range(8)) + "…"
    panel.set_progress(0, 6, text)
    qtbot.wait(10)
    assert panel.minimumSizeHint().width() == width  # the long line does not widen the dock
    assert panel.status.height() <= 2 * panel.status.fontMetrics().height()  # nor make it tall
    shown = panel.status.displayed_text()
    assert shown != text and shown.endswith("…") and panel.status.fontMetrics().horizontalAdvance(shown) <= \
        panel.status.contentsRect().width()
    assert panel.status.toolTip() == text and panel.status.full_text() == text


# ---- a model that fails on one image: the Metrics dock -----------------------------------------
def test_metrics_dock_says_a_model_failed_instead_of_waiting_for_it(qtbot, make_window) -> None:
    from segviewer.adapters.registry import get_card
    from segviewer.ui.features.groundtruth import GroundTruthFeature
    from segviewer.ui.main_window import ASSETS
    from segviewer.ui.model_host import registry_factory

    real = functools.partial(registry_factory, torch_threads=1)

    def factory(mid: str):
        return FakeAdapter(mid, fail=RuntimeError("kaboom")) if mid == "boom" else real(mid)

    w = make_window(factory, cards=[get_card("shapes_fcn"), fake_card("boom")])
    feat = w.findChild(GroundTruthFeature)
    dialogs: list[str] = []
    w.errorShown.connect(dialogs.append)
    w.start([ASSETS / "scenes" / "scene_000.png"], models=["boom", "shapes_fcn"])
    qtbot.waitUntil(lambda: "boom failed on this image: RuntimeError: kaboom" in feat.panel.notes.text()
                    and "shapes_fcn" in w.session.results and "Waiting" not in feat.panel.notes.text(),
                    timeout=TIMEOUT)
    assert dialogs == [] and "boom" not in w.session.results
    assert "boom: failed" in w.session.summary() and "shapes_fcn: " in w.session.summary()


def test_every_value_control_in_the_docks_ignores_an_unfocused_wheel(qtbot) -> None:
    """The Internals tabs, the Video dock's controls and its timeline sit in scroll areas too: a
    passing wheel must scroll them, not change a head, a level, an interval or the frame."""
    from PySide6.QtWidgets import QAbstractSlider, QAbstractSpinBox, QComboBox

    from segviewer.ui.widgets import controls
    from segviewer.ui.widgets.internals_tabs import InternalsPanel
    from segviewer.ui.widgets.video_controls import VideoControls
    from segviewer.ui.widgets.video_timeline import Timeline

    focus_kinds = (controls.FocusSlider, controls.FocusSpinBox, controls.FocusDoubleSpinBox, controls.FocusComboBox)
    for w in (InternalsPanel(), VideoControls(["shapes_fcn"], ["none"], 30), Timeline()):
        qtbot.addWidget(w)
        found = w.findChildren(QAbstractSlider) + w.findChildren(QAbstractSpinBox) + w.findChildren(QComboBox)
        value_controls = [c for c in found if type(c).__name__ not in ("QScrollBar",)
                          and not isinstance(c.parent(), QComboBox)]
        assert value_controls
        for c in value_controls:
            assert isinstance(c, focus_kinds), (type(w).__name__, type(c).__name__, c.objectName())


def test_no_error_dialog_opens_after_the_window_closed(make_window) -> None:
    w = make_window()
    w.close()
    w.show_error("The model process has been shut down.")
    assert w.last_error and getattr(w, "error_dialog", None) is None


def test_cycles_are_collected_on_the_gui_thread_only(qtbot) -> None:
    """A worker thread that allocates a lot must not run the cycle collector: a collected cycle
    holding a widget was destroyed off the GUI thread and deadlocked the worker (PySide6)."""
    import gc
    import threading

    from segviewer.ui.app import GuiThreadGC, make_app

    app = make_app()
    collector = app.findChild(GuiThreadGC)
    try:
        assert collector is not None and not gc.isenabled()
        died_in: list[str] = []
        kept: list[list] = []

        class Node:
            def __del__(self) -> None:
                died_in.append(threading.current_thread().name)

        def churn() -> None:
            a, b = Node(), Node()
            a.other, b.other = b, a  # a cycle: only the collector frees it
            del a, b
            kept.append([[] for _ in range(200_000)])  # would have triggered automatic collection

        t = threading.Thread(target=churn, name="worker")
        t.start()
        t.join()
        assert died_in == []  # nothing collected on the worker
        qtbot.waitUntil(lambda: len(died_in) == 2, timeout=5000)
        assert set(died_in) == {threading.main_thread().name}
        kept.clear()
    finally:
        if collector is not None:
            collector.timer.stop()
            collector.setParent(None)
