"""Qt test set-up: settings in a temporary INI file so tests never touch the user's settings."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """QSettings goes to an INI file under tmp_path (see segviewer.ui.settings)."""
    path = tmp_path / "settings.ini"
    monkeypatch.setenv("SEGVIEWER_SETTINGS_FILE", str(path))
    return path


@pytest.fixture(autouse=True)
def collect_on_the_gui_thread():
    """No automatic cycle collection while a Qt test runs, and a full one on this (the GUI) thread
    after it: otherwise a worker thread of a later test may collect an earlier test's widgets and
    deadlock inside their destructor (as the app avoids with ui.app.GuiThreadGC)."""
    was = gc.isenabled()
    gc.collect()
    gc.disable()
    yield
    gc.collect()
    if was:
        gc.enable()


@pytest.fixture
def show_window(qtbot):
    """``show_window(factory, cards, size=(w, h), process=False)``: a shown MainWindow over an
    InferenceWorker of ``factory``; every window it made is shut down after the test."""
    from segviewer.ui.main_window import MainWindow
    from segviewer.ui.worker import InferenceWorker

    made: list[MainWindow] = []

    def show(factory, cards, size: tuple[int, int] = (1100, 700), process: bool = False) -> MainWindow:
        w = MainWindow(InferenceWorker(factory, process=process), cards=cards)
        qtbot.addWidget(w)
        w.resize(*size)
        w.show()
        qtbot.waitExposed(w)
        made.append(w)
        return w

    yield show
    for w in made:
        w.shutdown()
