"""Worker plumbing through the real thread: stale results dropped, one pending request per model,
errors become one-line messages, results cached by key. Fake adapters are fine here (plumbing)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from fakes import FakeAdapter

from segviewer.adapters.base import PredictParams
from segviewer.core.errors import WeightsUnavailableError
from segviewer.ui.worker import InferenceWorker, Prediction, PredictRequest, describe_error

TIMEOUT = 20000


def _img(value: int) -> np.ndarray:
    return np.full((8, 12, 3), value, np.uint8)


def _req(gen: int, value: int, model: str = "fake", params: PredictParams | None = None) -> PredictRequest:
    return PredictRequest(gen, (f"img{value}", 0), _img(value), model, "cpu", None, params or PredictParams())


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


def test_stale_result_is_dropped_and_only_newest_pending_runs(qtbot, make_worker) -> None:
    gate = threading.Event()
    adapter = FakeAdapter("fake", gate=gate)
    worker = make_worker(lambda mid: adapter)
    got: list[Prediction] = []
    dropped: list[tuple[int, str]] = []
    worker.resultReady.connect(got.append)
    worker.staleDropped.connect(lambda g, s: dropped.append((g, s)))

    with qtbot.waitSignal(worker.jobStarted, timeout=TIMEOUT):
        worker.request_prediction(_req(1, 10))
    assert adapter.started.wait(TIMEOUT / 1000)
    # The user moves on twice while generation 1 is still running.
    worker.request_prediction(_req(2, 20))
    worker.request_prediction(_req(3, 200))
    assert worker.pending_slots() == ["model:fake"]  # at most one pending request per model
    with qtbot.waitSignal(worker.resultReady, timeout=TIMEOUT) as blocker:
        gate.set()
    pred = blocker.args[0]
    assert pred.gen == 3 and pred.image_key == ("img200", 0)
    assert [p.gen for p in got] == [3]  # generation 1's result never reached the UI
    assert (1, "model:fake") in dropped
    assert adapter.calls == [10.0, 200.0]  # generation 2 was replaced before it ran
    # The stale result was still cached: asking for it again costs no model call.
    assert worker.cached_prediction(_req(1, 10)) is not None


def test_model_exception_becomes_a_message_and_worker_keeps_going(qtbot, make_worker) -> None:
    adapters = {"boom": FakeAdapter("boom", fail=RuntimeError("kaboom\nsecond line")),
                "noweights": FakeAdapter("noweights", fail=WeightsUnavailableError(
                    "noweights has no weights here; pick a file with File > Load weights.")),
                "ok": FakeAdapter("ok")}
    worker = make_worker(lambda mid: adapters[mid])
    with qtbot.waitSignal(worker.predictionFailed, timeout=TIMEOUT) as blocker:
        worker.request_prediction(_req(1, 10, "boom"))
    assert blocker.args == [1, "boom", "boom failed: RuntimeError: kaboom"]
    with qtbot.waitSignal(worker.predictionFailed, timeout=TIMEOUT) as blocker:
        worker.request_prediction(_req(1, 10, "noweights"))
    assert blocker.args[2] == "noweights has no weights here; pick a file with File > Load weights."
    with qtbot.waitSignal(worker.resultReady, timeout=TIMEOUT) as blocker:
        worker.request_prediction(_req(1, 200, "ok"))
    assert int(blocker.args[0].result.labels.max()) == 1


def test_load_failure_is_reported_with_model_state(qtbot, make_worker) -> None:
    class NoLoad(FakeAdapter):
        def load(self, device, weights=None):
            raise WeightsUnavailableError("fake weights are not cached; they cannot be downloaded here.")

    worker = make_worker(lambda mid: NoLoad(mid))
    states: list[tuple[str, str]] = []
    worker.modelStateChanged.connect(lambda m, s: states.append((m, s)))
    with qtbot.waitSignal(worker.predictionFailed, timeout=TIMEOUT) as blocker:
        worker.request_prediction(_req(1, 10))
    assert "cannot be downloaded" in blocker.args[2]
    assert states == [("fake", "loading"), ("fake", "failed")]


def test_cache_hit_skips_the_model_and_params_are_part_of_the_key(qtbot, make_worker) -> None:
    adapter = FakeAdapter("fake")
    worker = make_worker(lambda mid: adapter)
    for expect_cached in (False, True):
        with qtbot.waitSignal(worker.resultReady, timeout=TIMEOUT) as blocker:
            worker.request_prediction(_req(1, 50))
        assert blocker.args[0].cached is expect_cached
    assert len(adapter.calls) == 1
    with qtbot.waitSignal(worker.resultReady, timeout=TIMEOUT) as blocker:
        worker.request_prediction(_req(1, 50, params=PredictParams(min_score=0.3)))
    assert blocker.args[0].cached is False and len(adapter.calls) == 2


def test_cache_is_bounded_by_bytes(qtbot, make_worker) -> None:
    adapter = FakeAdapter("fake")
    one = 8 * 12  # a SemanticMap of an 8x12 image, uint8 labels
    worker = make_worker(lambda mid: adapter, cache_bytes=2 * one)
    for v in (1, 2, 3):
        with qtbot.waitSignal(worker.resultReady, timeout=TIMEOUT):
            worker.request_prediction(_req(1, v))
    assert worker.cache.total_bytes <= 2 * one
    assert worker.cached_prediction(_req(1, 1)) is None  # least recently used went first
    assert worker.cached_prediction(_req(1, 3)) is not None


def test_synchronous_mode_runs_inline(qtbot) -> None:
    adapter = FakeAdapter("fake")
    worker = InferenceWorker(lambda mid: adapter, synchronous=True)
    got: list[Prediction] = []
    worker.resultReady.connect(got.append)
    worker.request_prediction(_req(1, 200))
    assert len(got) == 1 and got[0].result.labels.shape == (8, 12)


def test_describe_error() -> None:
    assert describe_error(ValueError("bad\nmore"), "m") == "m failed: ValueError: bad"
    assert describe_error(KeyError(), "m") == "m failed: KeyError"
    assert describe_error(WeightsUnavailableError("one sentence."), "m") == "one sentence."


def test_process_host_errors_crashes_and_results(qtbot, make_worker) -> None:
    """The app's configuration: networks in a child process, driven by the worker thread."""
    from fakes import bright_factory, crashing_factory, raising_factory

    worker = make_worker(raising_factory, process=True)
    with qtbot.waitSignal(worker.predictionFailed, timeout=TIMEOUT * 6) as blocker:
        worker.request_prediction(_req(1, 10))
    assert blocker.args[2] == "fake failed: RuntimeError: kaboom"

    worker = make_worker(crashing_factory, process=True)
    with qtbot.waitSignal(worker.predictionFailed, timeout=TIMEOUT * 6) as blocker:
        worker.request_prediction(_req(1, 10))
    assert "stopped unexpectedly (exit code 3)" in blocker.args[2]

    worker = make_worker(bright_factory, process=True)
    states: list[str] = []
    worker.modelStateChanged.connect(lambda m, s: states.append(s))
    with qtbot.waitSignal(worker.resultReady, timeout=TIMEOUT * 6) as blocker:
        worker.request_prediction(_req(1, 200))
    assert int(blocker.args[0].result.labels.min()) == 1 and "model" in blocker.args[0].timings
    assert states == ["loading", "loaded"]


def test_stop_during_a_pass_in_the_model_process_is_prompt_and_reports_nothing(qtbot, make_worker) -> None:
    """Issue #10: closing the window mid-pass ends the model process at once (it used to wait for
    the pass) and reports no "model process has been shut down" failure (a dialog after close)."""
    import time

    from fakes import sleeping_factory

    worker = make_worker(sleeping_factory, process=True)
    failed: list[str] = []
    worker.predictionFailed.connect(lambda g, m, msg: failed.append(msg))
    with qtbot.waitSignal(worker.modelStateChanged, timeout=TIMEOUT * 6, check_params_cb=lambda m, s: s == "loaded"):
        worker.request_prediction(_req(1, 10))
    qtbot.wait(200)  # now inside predict, in the child
    t0 = time.monotonic()
    assert worker.stop(10_000)
    took = time.monotonic() - t0
    qtbot.wait(200)  # anything queued by the worker thread would arrive now
    assert took < 1.5 and failed == [], (took, failed)
    assert worker.host._proc is None or not worker.host._proc.is_alive()
