"""The window fits a 1366 x 768 laptop with its default docks, in the image view and with a video
open, and keeps the size the user gives it; the Layers rows keep six rows; the hover inspector
never describes an image that is no longer shown (issue #10). Fake models only: what is checked
here is layout and plumbing, not a network."""

from __future__ import annotations

import functools
import threading
from pathlib import Path

import cv2
import pytest
from fakes import FakeAdapter, fake_card
from PySide6.QtCore import QRect

from segviewer.core.fileio import write_image_atomic
from segviewer.synth.generate import generate_scene
from segviewer.synth.video import generate_video
from segviewer.ui.features.video import VideoFeature
from segviewer.ui.layout import FIT_SCREEN, LAYER_ROWS_MIN
from segviewer.ui.main_window import MainWindow
from segviewer.ui.model_host import registry_factory
from segviewer.ui.worker import InferenceWorker

TIMEOUT = 120_000
_factory = functools.partial(registry_factory, torch_threads=1)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (128, 96))
    for f in generate_video(3, 6, (96, 128)):
        writer.write(cv2.cvtColor(f.image, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def _scene(path: Path, seed: int) -> Path:
    write_image_atomic(path, generate_scene(seed, (96, 128)).image)
    return path


@pytest.fixture
def make_window(qtbot):
    made: list[MainWindow] = []

    def make(models: tuple[str, ...] = (), factory=None) -> MainWindow:  # noqa: ANN001
        factory = factory or ((lambda mid: FakeAdapter(mid)) if models else _factory)
        w = MainWindow(InferenceWorker(factory, process=False), cards=[fake_card(m) for m in models])
        qtbot.addWidget(w)
        made.append(w)
        return w

    yield make
    for w in made:
        feat = w.findChild(VideoFeature)
        if feat is not None:
            feat.close_video()
        w.shutdown()


def _fits(w: MainWindow) -> None:
    """Nothing asks for more than the screen, and every dock shown lies inside the window."""
    hint = w.minimumSizeHint()
    assert hint.width() <= FIT_SCREEN.width() and hint.height() <= FIT_SCREEN.height(), hint
    assert w.width() <= FIT_SCREEN.width() and w.height() <= FIT_SCREEN.height(), w.size()
    inside = QRect(0, 0, w.width(), w.height())
    for name, dock in w.docks.items():
        if dock.isVisible() and not dock.isFloating() and not dock.visibleRegion().isEmpty():  # shown, not a tab behind
            assert inside.contains(dock.geometry()), (name, dock.geometry(), inside)
    assert inside.contains(w.statusBar().geometry())


def _open_video(qtbot, w: MainWindow, clip: Path) -> VideoFeature:
    feat = w.findChild(VideoFeature)
    with qtbot.waitSignal(feat.videoOpened, timeout=TIMEOUT):
        feat.open(clip)
    qtbot.waitUntil(lambda: feat.shown_index == 0, timeout=TIMEOUT)
    return feat


def test_the_window_fits_1366x768_in_the_image_and_the_video_view(qtbot, make_window, clip: Path) -> None:
    w = make_window()
    w.resize(FIT_SCREEN)
    w.show()
    qtbot.waitExposed(w)
    _fits(w)
    from PySide6.QtWidgets import QScrollArea

    for name, dock in w.docks.items():  # the side panels on show are whole: none scrolls sideways
        area = dock.widget()
        if dock.isVisible() and isinstance(area, QScrollArea) and not area.visibleRegion().isEmpty():
            assert not area.horizontalScrollBar().isVisible(), name
    feat = _open_video(qtbot, w, clip)
    assert feat.dock.isVisible()
    qtbot.wait(50)  # the layout settles
    _fits(w)
    assert w.size() == FIT_SCREEN, "opening a video must not grow the window"
    assert w.canvas.height() >= 200 and w.canvas.width() >= 400, "the picture keeps a useful size"
    # a job's progress text is on one line, in full
    with qtbot.waitSignal(feat.jobDone, timeout=TIMEOUT):
        assert feat.process_all()
        bar = feat.progress
        assert bar.isVisible()
        bar.setValue(bar.maximum() - 1)
        qtbot.wait(20)
        assert bar.width() >= bar.fontMetrics().horizontalAdvance(bar.text()), (bar.width(), bar.text())
        feat.cancel_job()


def test_the_window_keeps_the_size_the_user_gives_it(qtbot, make_window, clip: Path) -> None:
    first = make_window()
    first.resize(780, 700)  # within the offscreen screen (800 x 800), which Qt fits restored windows to
    first.show()
    qtbot.waitExposed(first)
    first.close()  # saves the geometry and dock layout
    again = make_window()
    again.show()
    qtbot.waitExposed(again)
    assert again.size().toTuple() == (780, 700)
    _open_video(qtbot, again, clip)
    qtbot.wait(50)
    assert again.size().toTuple() == (780, 700)
    again.findChild(VideoFeature).close_video()
    again.close()  # closed in the video view: the next start is an image view without the Video dock
    third = make_window()
    third.show()
    qtbot.waitExposed(third)
    assert not third.docks["Video"].isVisible() and third.docks["Layers"].isVisible()


def test_a_saved_size_larger_than_the_screen_is_fitted(qtbot, make_window) -> None:
    first = make_window()
    first.resize(1297, 1224)  # what an older version grew to with a video open
    first.show()
    qtbot.waitExposed(first)
    first.close()
    again = make_window()
    screen = again.screen().availableGeometry()
    assert again.width() <= screen.width() and again.height() <= screen.height()


def test_layers_keep_six_rows_in_a_full_right_column(qtbot, make_window, tmp_path: Path) -> None:
    models = tuple(f"m{i}" for i in range(5))
    w = make_window(models)
    w.resize(FIT_SCREEN)
    w.show()
    qtbot.waitExposed(w)
    with qtbot.waitSignal(w.session.imageShown, timeout=TIMEOUT):
        w.start([_scene(tmp_path / "a.png", 1)], models=list(models), no_default=True)
    qtbot.waitUntil(lambda: set(models) <= set(w.session.results), timeout=TIMEOUT)
    qtbot.wait(50)
    _fits(w)
    rows = w.panel.rows_scroll
    row = w.panel.checkbox((models[0], "semantic")).sizeHint().height()
    assert rows.height() >= LAYER_ROWS_MIN * row, (rows.height(), row)
    assert rows.widget().height() > rows.height(), "the ten rows scroll inside the panel"


def test_the_inspector_follows_the_image_on_screen(qtbot, make_window, tmp_path: Path) -> None:
    a, b = _scene(tmp_path / "a.png", 1), _scene(tmp_path / "b.png", 2)
    gate = threading.Event()
    gate.set()
    adapter = FakeAdapter("bright", gate=gate)
    w = make_window(("bright",), lambda mid: adapter)
    w.show()
    with qtbot.waitSignal(w.session.resultsChanged, timeout=TIMEOUT):
        w.start([a], models=["bright"], no_default=True)
    w.canvas.hovered.emit((5.0, 5.0))
    assert any(line.startswith("bright:") for line in w.inspector.text().splitlines())
    gate.clear()  # b's result waits
    with qtbot.waitSignal(w.session.imageShown, timeout=TIMEOUT):
        w.session.step(1)
    assert w.session.path == b
    assert w.inspector.text() == "Hover over the image.", "the last image's lines are gone"
    w.canvas.hovered.emit((5.0, 5.0))
    assert "x 5  y 5" in w.inspector.text() and "bright:" not in w.inspector.text()
    # the pointer rests while b's result arrives: the lines now include it
    with qtbot.waitSignal(w.session.resultsChanged, timeout=TIMEOUT):
        gate.set()
    assert "bright:" in w.inspector.text()
