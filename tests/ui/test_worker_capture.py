"""Capture requests through the worker's real thread (plumbing; a fake with stages is fine here):
one hooked pass gives both the result and the internals, a capture after a plain pass replaces
the cached entry with one hooked pass, a plain request after a capture is a cache hit, pending
requests for the same key merge their wishes, and a dock-only request fails quietly."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from fakes import FakeAdapter

from segviewer.adapters.base import PredictParams
from segviewer.adapters.one_pass import InternalsUnavailable
from segviewer.core.results import SemanticMap
from segviewer.core.timing import Timings
from segviewer.ui.worker import InferenceWorker, Prediction, PredictRequest

TIMEOUT = 20000


class StagedFake(FakeAdapter):
    """An FCN-shaped plumbing fake: ``predict_stages`` is its one pass; ``passes`` counts them."""

    def __init__(self, model_id: str, gate: threading.Event | None = None) -> None:
        super().__init__(model_id, gate)
        self.passes = 0

    def predict_stages(self, image: np.ndarray, params: PredictParams | None = None,
                       timings: Timings | None = None) -> dict[str, SemanticMap]:
        self.passes += 1
        base = super().predict(image, params, timings)
        return {"32s": SemanticMap(np.zeros_like(base.labels), base.categories), "8s": base}

    def predict(self, image: np.ndarray, params: PredictParams | None = None,
                timings: Timings | None = None) -> SemanticMap:
        return self.predict_stages(image, params, timings)["8s"]


def _img(value: int) -> np.ndarray:
    img = np.full((8, 12, 3), value, np.uint8)
    img[:, :6] = 255 - value  # two halves, so the result is not uniform
    return img


def _req(gen: int, value: int, model: str = "fake", **kw: object) -> PredictRequest:
    return PredictRequest(gen, (f"img{value}", 0), _img(value), model, "cpu", None, PredictParams(), **kw)


@pytest.fixture
def make_worker(qtbot):
    made: list[InferenceWorker] = []

    def make(factory, **kw) -> InferenceWorker:
        w = InferenceWorker(factory, **kw)
        made.append(w)
        return w

    yield make
    for w in made:
        w.stop()


def _run(qtbot, worker: InferenceWorker, req: PredictRequest) -> Prediction:
    with qtbot.waitSignal(worker.resultReady, timeout=TIMEOUT) as blocker:
        worker.request_prediction(req)
    return blocker.args[0]


def test_capture_returns_result_and_internals_of_one_pass(qtbot, make_worker) -> None:
    fake = StagedFake("fake")
    worker = make_worker(lambda mid: fake)
    pred = _run(qtbot, worker, _req(1, 40, capture=True))
    assert fake.passes == 1 and not pred.cached
    assert set(pred.internals) == {"32s", "8s"}
    assert pred.result is pred.internals["8s"]  # the result IS the pass's 8s map
    plain = StagedFake("other").predict(_img(40))
    np.testing.assert_array_equal(pred.result.labels, plain.labels)
    assert worker.cached_internals(_req(1, 40)) is pred.internals
    # a plain request afterwards: a cache hit that carries the internals too
    again = _run(qtbot, worker, _req(1, 40))
    assert again.cached and again.internals is pred.internals and fake.passes == 1


def test_capture_after_a_plain_pass_replaces_it_once(qtbot, make_worker) -> None:
    fake = StagedFake("fake")
    worker = make_worker(lambda mid: fake)
    first = _run(qtbot, worker, _req(1, 40))
    assert first.internals is None and worker.cached_internals(_req(1, 40)) is None
    hooked = _run(qtbot, worker, _req(1, 40, capture=True))
    assert fake.passes == 2 and not hooked.cached and hooked.internals is not None
    assert worker.cached_prediction(_req(1, 40)) is hooked.result  # the hooked entry replaced the plain one
    hit = _run(qtbot, worker, _req(1, 40, capture=True))
    assert hit.cached and fake.passes == 2
    # the cache counts the internals' bytes: result (96) + two stage maps (2 x 96)
    assert worker.cache.total_bytes == 3 * 8 * 12


def test_pending_requests_for_the_same_key_merge_into_one_pass(qtbot, make_worker) -> None:
    gate = threading.Event()
    blocker_model = FakeAdapter("busy", gate=gate)
    fake = StagedFake("fake")
    worker = make_worker(lambda mid: blocker_model if mid == "busy" else fake)
    worker.request_prediction(_req(1, 1, model="busy"))
    assert blocker_model.started.wait(10)
    got: list[Prediction] = []
    worker.resultReady.connect(got.append)
    # the dock's capture request first, then the session's plain one for the same image and model
    worker.request_prediction(_req(1, 40, capture=True, show=False))
    worker.request_prediction(_req(1, 40))
    pending = worker.pending_slots()
    assert pending == ["model:fake"]
    gate.set()
    qtbot.waitUntil(lambda: any(p.model_id == "fake" for p in got), timeout=TIMEOUT)
    pred = next(p for p in got if p.model_id == "fake")
    assert fake.passes == 1 and pred.internals is not None


def test_a_dock_capture_after_a_plain_request_keeps_the_show_wish(qtbot, make_worker) -> None:
    """The reverse order: the session's plain request is pending when the dock asks for a capture
    of the same model and image (``show=False``). The merged pass still reports its failure to the
    session (``predictionFailed``) as well as to the dock (``captureFailed``), once each."""
    gate = threading.Event()
    busy = FakeAdapter("busy", gate=gate)
    boom = FakeAdapter("fake", fail=RuntimeError("kaboom"))
    worker = make_worker(lambda mid: busy if mid == "busy" else boom)
    shown: list[tuple] = []
    docked: list[tuple] = []
    worker.predictionFailed.connect(lambda *a: shown.append(a))
    worker.captureFailed.connect(lambda *a: docked.append(a))
    worker.request_prediction(_req(1, 1, model="busy"))
    assert busy.started.wait(10)
    worker.request_prediction(_req(1, 40))  # the session's plain request
    worker.request_prediction(_req(1, 40, capture=True, show=False))  # then the dock's
    assert worker.pending_slots() == ["model:fake"]
    gate.set()
    qtbot.waitUntil(lambda: bool(shown) and bool(docked), timeout=TIMEOUT)
    assert len(boom.calls) == 1  # one (hooked) pass for both
    assert shown == [(1, "fake", "fake failed: RuntimeError: kaboom")]
    assert docked == shown


def test_a_new_image_does_not_inherit_the_capture_wish(qtbot, make_worker) -> None:
    gate = threading.Event()
    busy = FakeAdapter("busy", gate=gate)
    fake = StagedFake("fake")
    worker = make_worker(lambda mid: busy if mid == "busy" else fake)
    got: list[Prediction] = []
    worker.resultReady.connect(got.append)
    worker.request_prediction(_req(1, 1, model="busy"))
    assert busy.started.wait(10)
    worker.request_prediction(_req(1, 40, capture=True))
    worker.request_prediction(_req(2, 41))  # another image replaces it, plainly
    gate.set()
    qtbot.waitUntil(lambda: any(p.model_id == "fake" for p in got), timeout=TIMEOUT)
    pred = next(p for p in got if p.model_id == "fake")
    assert pred.gen == 2 and pred.internals is None and fake.passes == 1


def test_models_without_internals_still_give_their_result(qtbot, make_worker) -> None:
    plain = FakeAdapter("fake")
    worker = make_worker(lambda mid: plain)
    pred = _run(qtbot, worker, _req(1, 40, capture=True))
    assert isinstance(pred.internals, InternalsUnavailable)
    assert "no region proposal network" in pred.internals.message
    assert pred.result.labels.shape == (8, 12) and len(plain.calls) == 1


def test_a_dock_only_request_fails_quietly(qtbot, make_worker) -> None:
    boom = FakeAdapter("fake", fail=RuntimeError("kaboom"))
    worker = make_worker(lambda mid: boom)
    shown: list[str] = []
    worker.predictionFailed.connect(lambda g, m, msg: shown.append(msg))
    with qtbot.waitSignal(worker.captureFailed, timeout=TIMEOUT) as blocker:
        worker.request_prediction(_req(1, 40, capture=True, show=False))
    assert blocker.args[1:] == ["fake", "fake failed: RuntimeError: kaboom"]
    assert shown == []  # the session (its dialog) never hears of it
    with qtbot.waitSignal(worker.predictionFailed, timeout=TIMEOUT):
        worker.request_prediction(_req(1, 41, capture=True))  # a shown one still reaches the session
