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


def counting_factory(passes: list[str], hooked=lambda module: module, make=None):  # noqa: ANN001, ANN201
    """A worker factory over the registry's real adapters (or ``make``'s) that appends a model's id
    to ``passes`` at each forward pass of ``hooked(adapter.module)``: the Internals tests count
    passes (the internals come from the one pass that gave the layers)."""
    from segviewer.adapters.registry import create_adapter

    make = make or create_adapter

    def factory(model_id: str):  # noqa: ANN202
        adapter = make(model_id)
        load = adapter.load

        def counted_load(device: str, weights=None, progress=None) -> None:  # noqa: ANN001
            load(device, weights=weights)
            hooked(adapter.module).register_forward_pre_hook(lambda *_: passes.append(model_id))

        adapter.load = counted_load
        return adapter

    return factory


@pytest.fixture
def internals_window(qtbot):  # noqa: ANN001, ANN201
    """``internals_window(model, image, params=None, hooked=..., before_start=None, make=None)`` -> ``(window,
    InternalsFeature)``: a shown 1300x850 window over :func:`counting_factory` (``window.passes``)
    with its Internals dock raised, once the model's capture of ``image`` has arrived."""
    import torch

    from segviewer.adapters.registry import get_card
    from segviewer.ui.features.internals import InternalsFeature
    from segviewer.ui.main_window import MainWindow
    from segviewer.ui.worker import InferenceWorker

    made = []

    def open_window(model: str, image: Path, params=None, hooked=lambda m: m, before_start=None,  # noqa: ANN001, ANN202
                    make=None, timeout: int = 120_000):
        torch.set_num_threads(1)
        passes: list[str] = []
        factory = counting_factory(passes, hooked, make)
        w = MainWindow(InferenceWorker(factory, process=False), cards=[get_card(model)])
        made.append(w)
        w.passes = passes
        if params is not None:
            w.session.params = params
        if before_start is not None:
            before_start(w)
        qtbot.addWidget(w)
        w.resize(1300, 850)
        w.show()
        qtbot.waitExposed(w)
        feat = w.findChild(InternalsFeature)
        feat.dock.show()
        feat.dock.raise_()
        with qtbot.waitSignal(feat.captured, timeout=timeout):
            w.start([image], models=[model])
        return w, feat

    yield open_window
    for w in made:
        w.shutdown()


@pytest.fixture
def msr_window(qtbot, internals_window):  # noqa: ANN001, ANN201
    """The bundled shapes_msrcnn's Internals window on the sample scene with its ground truth loaded
    (the ground-truth feature's own worker on one torch thread): ``(window, internals, gt feature)``."""
    import functools

    from segviewer.ui.features.groundtruth import GroundTruthFeature
    from segviewer.ui.main_window import ASSETS
    from segviewer.ui.model_host import ModelHost, registry_factory

    def worker_threads(w):  # noqa: ANN001, ANN202
        w.findChild(GroundTruthFeature).host_factory = lambda: ModelHost(functools.partial(registry_factory, torch_threads=1))

    w, feat = internals_window("shapes_msrcnn", ASSETS / "scenes" / "scene_000.png", hooked=lambda m: m.backbone,
                               before_start=worker_threads)
    gt_feat = w.findChild(GroundTruthFeature)
    qtbot.waitUntil(lambda: gt_feat.gt is not None, timeout=120_000)
    yield w, feat, gt_feat
    gt_feat.shutdown(30_000)
