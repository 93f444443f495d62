"""Start-up order: the window paints its first image before the model listing (which imports
torch, seconds of CPU holding the GIL) starts; with no image to show, the listing starts at once."""

from __future__ import annotations

from pathlib import Path

from fakes import FakeAdapter
from PySide6.QtCore import QEvent, QObject

import segviewer.ui.main_window as mw
from segviewer.core.fileio import write_image_atomic
from segviewer.synth.generate import generate_scene
from segviewer.ui.worker import InferenceWorker

TIMEOUT = 60_000


class _Paints(QObject):
    """Counts the canvas' paint events that happen while it holds an image."""

    def __init__(self, canvas) -> None:
        super().__init__(canvas)
        self.canvas, self.count = canvas, 0
        canvas.viewport().installEventFilter(self)

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt override
        if event.type() == QEvent.Type.Paint and self.canvas.image is not None:
            self.count += 1
        return False


def _spy(monkeypatch) -> tuple[list[tuple[str, int]], dict]:
    """Records (job description, image paints so far) of every background job the window starts;
    put a :class:`_Paints` under ``"paints"`` in the returned dict to count paints."""
    started: list[tuple[str, int]] = []
    holder: dict = {}
    real = mw.run_background

    def spy(fn, done, failed, what, *a, **k):
        paints = holder.get("paints")
        started.append((what, paints.count if paints is not None else -1))
        return real(fn, done, failed, what, *a, **k)

    monkeypatch.setattr(mw, "run_background", spy)
    return started, holder


def test_listing_waits_for_the_first_painted_image(qtbot, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(mw, "LISTING_FALLBACK_MS", 600_000)  # only the paint may start it here
    started, holder = _spy(monkeypatch)
    path = tmp_path / "a.png"
    write_image_atomic(path, generate_scene(3, (96, 128)).image)
    w = mw.MainWindow(InferenceWorker(lambda mid: FakeAdapter(mid), process=False))
    qtbot.addWidget(w)
    try:
        holder["paints"] = _Paints(w.canvas)
        w.start([path], no_default=True)
        assert not any(what == "Listing models" for what, _ in started), "listing before any paint"
        w.resize(900, 600)
        w.show()
        qtbot.waitUntil(lambda: any(what == "Listing models" for what, _ in started), timeout=TIMEOUT)
        paints = [n for what, n in started if what == "Listing models"]
        assert len(paints) == 1 and paints[0] >= 1, paints  # after (at least) one paint of the image
        qtbot.waitUntil(lambda: w.cards_ready, timeout=TIMEOUT)
        assert w.card_ids
    finally:
        w.shutdown()


def test_listing_starts_at_once_without_an_image(qtbot, monkeypatch) -> None:
    monkeypatch.setattr(mw, "LISTING_FALLBACK_MS", 600_000)
    started, _ = _spy(monkeypatch)
    w = mw.MainWindow(InferenceWorker(lambda mid: FakeAdapter(mid), process=False))
    qtbot.addWidget(w)
    try:
        w.start([], no_default=True)
        assert [what for what, _ in started].count("Listing models") == 1
        w._start_listing()  # a late paint or the fallback timer: no second listing
        assert [what for what, _ in started].count("Listing models") == 1
        qtbot.waitUntil(lambda: w.cards_ready, timeout=TIMEOUT)
    finally:
        w.shutdown()

