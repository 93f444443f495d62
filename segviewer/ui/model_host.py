"""Where the networks live: in the worker thread (:class:`ModelHost`) or in a child process
(:class:`ProcessHost`). No Qt in this module, so the child process never loads it.

Why a process: measured with ``bench/ui_stall.py`` on a loaded 2-core machine, a Mask R-CNN
running in a *thread* of the UI process made the UI thread's 10 ms heartbeat late by ~100 ms at
the median: the Python glue between torch ops holds the GIL, and when that thread is preempted
while holding it, the UI thread waits (a pure-torch matmul thread, which releases the GIL, did
far less harm once reniced). In a child process the UI process has nothing to contend with; the
child is also reniced so the window wins the CPU, and a crashing model cannot take the window down.
The worker thread still owns the request queue, staleness and the cache; it just waits on a pipe
(GIL released) instead of running the network itself.
"""

from __future__ import annotations

import contextlib
import functools
import multiprocessing as mp
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from segviewer.adapters.base import ModelAdapter, PredictParams
from segviewer.core.errors import ModelError, SegviewerError
from segviewer.core.timing import Timings

AdapterFactory = Callable[[str], ModelAdapter]
StateCallback = Callable[[str], None]  # "loading" | "loaded" | "failed"
FrameCallback = Callable[[int, Any], Any]  # (frame index, Detections) of a track; False stops it
PromptSpec = tuple[tuple[tuple[float, float, bool], ...], tuple[float, float, float, float] | None, bool]

CHILD_NICE = 5  # the window keeps priority over inference


def describe_error(err: BaseException, name: str) -> str:
    """One line for a person: a SegviewerError's own sentence, else 'name failed: Type: message'."""
    if isinstance(err, SegviewerError):
        return str(err)
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"{name} failed: {type(err).__name__}: {text}".rstrip(": ")


def registry_factory(model_id: str, random_init: bool = False, torch_threads: int = 0) -> ModelAdapter:
    """The app's adapter factory (module level, so it pickles into the child process)."""
    from segviewer.adapters.registry import create_adapter

    if torch_threads > 0:
        import torch

        torch.set_num_threads(torch_threads)
    if random_init:
        import torch

        torch.manual_seed(0)  # the same random network every time
    return create_adapter(model_id, random_init=random_init)


def random_init_factory(torch_threads: int = 0) -> AdapterFactory:
    """Adapters with random weights (plumbing tests, timing benchmarks); picklable."""
    return functools.partial(registry_factory, random_init=True, torch_threads=torch_threads)


class ModelHost:
    """Adapters by model id, loaded on first use and rebuilt when the device or weights change."""

    def __init__(self, factory: AdapterFactory) -> None:
        self._factory = factory
        self._adapters: dict[str, tuple[tuple[str, str], ModelAdapter]] = {}
        self._lock = threading.Lock()

    def forget(self, model_id: str) -> None:
        with self._lock:
            self._adapters.pop(model_id, None)

    def _adapter(self, model_id: str, device: str, weights: Path | None, on_state: StateCallback) -> ModelAdapter:
        want = (device, str(weights or ""))
        with self._lock:
            have = self._adapters.get(model_id)
        if have is not None and have[0] == want and have[1].loaded:
            return have[1]
        on_state("loading")
        try:
            adapter = self._factory(model_id)
            adapter.load(device, weights=weights)
        except BaseException:
            on_state("failed")
            raise
        with self._lock:
            self._adapters[model_id] = (want, adapter)
        on_state("loaded")
        return adapter

    def predict(self, model_id: str, device: str, weights: Path | None, image: Any, params: PredictParams,
                timings: Timings, on_state: StateCallback) -> Any:
        adapter = self._adapter(model_id, device, weights, on_state)
        return adapter.predict(image, params, timings)

    def predict_capture(self, model_id: str, device: str, weights: Path | None, image: Any, params: PredictParams,
                        timings: Timings, on_state: StateCallback) -> tuple[Any, Any]:
        """``(result, internals)`` from ONE hooked pass (see ``adapters.one_pass.predict_with_internals``):
        the result equals what :meth:`predict` returns; the internals feed the Internals dock."""
        from segviewer.adapters.one_pass import predict_with_internals

        adapter = self._adapter(model_id, device, weights, on_state)
        return predict_with_internals(adapter, image, params, timings)

    def prompt(self, model_id: str, device: str, weights: Path | None, image: Any, prompt: PromptSpec,
               timings: Timings, on_state: StateCallback) -> Any:
        """A promptable model's masks (SAM 2's ``PromptMasks``) for ``prompt`` on ``image``."""
        adapter = self._adapter(model_id, device, weights, on_state)
        run = getattr(adapter, "prompt", None)
        if run is None:
            raise ModelError(f"{model_id} does not take click or box prompts (a SAM 2 model does)")
        points, box, multimask = prompt
        return run(image, points=points, box=box, multimask=multimask, timings=timings)

    def track(self, model_id: str, device: str, weights: Path | None, video: Path, prompts: Any,
              timings: Timings, on_state: StateCallback, on_frame: FrameCallback) -> int:
        """Propagate ``prompts`` through the frames of ``video`` (SAM 2's ``track``); each frame's
        Detections goes to ``on_frame(index, detections)`` as it comes (False from it stops).
        Returns how many frames were tracked."""
        from segviewer.video.source import open_video

        adapter = self._adapter(model_id, device, weights, on_state)
        run = getattr(adapter, "track", None)
        if run is None:
            raise ModelError(f"{model_id} cannot track objects through a video (a SAM 2 model can)")
        with open_video(Path(video)) as source:
            n = 0
            for idx, det in run(iter(source), prompts, timings=timings):
                n += 1
                if on_frame(idx, det) is False:
                    break
            return n

    def close(self, timeout_s: float = 0.0) -> None:
        with self._lock:
            self._adapters.clear()


class _RemoteError(SegviewerError):
    """A model failed in the child process; the message was formatted there."""


def _child_main(conn: Any, factory: AdapterFactory, nice: int) -> None:
    """The child process: run requests from the pipe until told to quit or the parent goes away."""
    if nice:
        with contextlib.suppress(OSError):
            os.nice(nice)
    host = ModelHost(factory)
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg[0] == "quit":
            return
        if msg[0] == "forget":
            host.forget(msg[1])
            continue
        if msg[0] == "stop":  # a track's stop that came after it had ended
            continue
        kind, model_id, device, weights, image, params = msg
        timings = Timings()
        run = {"capture": host.predict_capture, "prompt": host.prompt,
               "track": functools.partial(_track_in_child, host, conn)}.get(kind, host.predict)
        try:
            out = run(model_id, device, weights, image, params, timings, lambda s: conn.send(("state", s)))
        except BaseException as err:  # noqa: BLE001 - every failure goes back as one line
            conn.send(("error", describe_error(err, model_id)))
            continue
        result, internals = out if kind == "capture" else (out, None)
        try:
            conn.send(("result", result, timings, internals))
        except Exception as err:  # noqa: BLE001 - e.g. a result that cannot be pickled
            conn.send(("error", describe_error(err, model_id)))


def _track_in_child(host: ModelHost, conn: Any, *args: Any) -> int:
    """:meth:`ModelHost.track` in the child: each frame goes back as it comes; a ``stop`` from the
    parent (its receiver said False) ends the track after the frame in hand."""

    def on_frame(idx: int, det: Any) -> bool:
        conn.send(("frame", idx, det))
        while conn.poll(0):
            if conn.recv()[0] == "stop":
                return False
        return True

    return host.track(*args, on_frame)


def reap_child(proc: Any, timeout_s: float = 5.0) -> int | None:
    """The exit code of a child whose pipe just closed: the pipe can report EOF before the OS has
    reaped the process, and ``exitcode`` reads None until it has, so wait for it briefly."""
    if proc is None:
        return None
    proc.join(timeout_s)
    return proc.exitcode


def stop_child(proc: Any, conn: Any, timeout_s: float) -> None:
    """Ask a child process to quit over its pipe; end it if it is inside a long forward pass."""
    if proc is None:
        return
    with contextlib.suppress(OSError, ValueError):
        conn.send(("quit",))
    proc.join(timeout_s)
    if proc.is_alive():
        proc.terminate()
        proc.join(1.0)
    if proc.is_alive():  # SIGTERM caught or ignored by a library: the window still has to go
        proc.kill()
        proc.join(1.0)


class ProcessHost:
    """The same interface as :class:`ModelHost`, with the adapters in a spawned child process.

    Used from one thread (the worker's) except :meth:`close`, which may come from any thread and
    ends the child so that a blocked :meth:`predict` returns at once.
    """

    def __init__(self, factory: AdapterFactory, nice: int = CHILD_NICE) -> None:
        self._factory = factory
        self._nice = nice
        self._ctx = mp.get_context("spawn")  # never fork a process that has Qt threads
        self._proc: Any = None
        self._conn: Any = None
        self._closed = False
        self._busy = False  # a request is in the child: close() then ends it without waiting
        self._forget: set[str] = set()

    def _ensure(self) -> None:
        if self._proc is not None and self._proc.is_alive():
            return
        parent, child = self._ctx.Pipe()
        proc = self._ctx.Process(target=_child_main, args=(child, self._factory, self._nice),
                                 name="segviewer-models", daemon=True)
        proc.start()  # may raise; then no half-started child is kept for close() to talk to
        self._proc = proc
        child.close()
        self._conn = parent
        self._forget.clear()  # a fresh child has nothing loaded

    def forget(self, model_id: str) -> None:
        self._forget.add(model_id)

    def predict(self, model_id: str, device: str, weights: Path | None, image: Any, params: PredictParams,
                timings: Timings, on_state: StateCallback) -> Any:
        return self._call("predict", model_id, device, weights, image, params, timings, on_state)[0]

    def predict_capture(self, model_id: str, device: str, weights: Path | None, image: Any, params: PredictParams,
                        timings: Timings, on_state: StateCallback) -> tuple[Any, Any]:
        """:meth:`ModelHost.predict_capture` in the child: one hooked pass, both answers back."""
        return self._call("capture", model_id, device, weights, image, params, timings, on_state)

    def prompt(self, model_id: str, device: str, weights: Path | None, image: Any, prompt: PromptSpec,
               timings: Timings, on_state: StateCallback) -> Any:
        """:meth:`ModelHost.prompt` in the child (the image embedding stays cached there)."""
        return self._call("prompt", model_id, device, weights, image, prompt, timings, on_state)[0]

    def track(self, model_id: str, device: str, weights: Path | None, video: Path, prompts: Any,
              timings: Timings, on_state: StateCallback, on_frame: FrameCallback) -> int:
        """:meth:`ModelHost.track` in the child: the child reads the video itself; frames' results
        come back one message each, and ``on_frame`` returning False stops the child's track (frames
        it made meanwhile are dropped). Returns how many frames went to ``on_frame``."""
        delivered = 0

        def counted(index: int, det: Any) -> Any:
            nonlocal delivered
            delivered += 1
            return on_frame(index, det)

        # the child may have made a frame more before it reads the stop: count what was delivered
        self._call("track", model_id, device, weights, video, prompts, timings, on_state, counted)
        return delivered

    def _call(self, kind: str, model_id: str, device: str, weights: Path | None, image: Any, params: Any,
              timings: Timings, on_state: StateCallback, on_frame: FrameCallback | None = None) -> tuple[Any, Any]:
        if self._closed:
            raise ModelError("The model process has been shut down.")
        self._ensure()
        self._busy = True
        try:
            for mid in list(self._forget):
                self._conn.send(("forget", mid))
            self._forget.clear()
            self._conn.send((kind, model_id, device, weights, image, params))
            stopped = False
            while True:
                msg = self._conn.recv()
                if msg[0] == "state":
                    on_state(msg[1])
                elif msg[0] == "frame":
                    if not stopped and on_frame is not None and on_frame(msg[1], msg[2]) is False:
                        self._conn.send(("stop",))
                        stopped = True
                elif msg[0] == "error":
                    raise _RemoteError(msg[1])
                else:
                    timings.update(msg[2])
                    return msg[1], msg[3]
        except (EOFError, OSError, BrokenPipeError) as err:
            code = reap_child(self._proc)
            self._proc = None
            if self._closed:
                raise ModelError("The model process has been shut down.") from err
            raise ModelError(f"The model process stopped unexpectedly (exit code {code}) while running "
                             f"{model_id}; it restarts with the next request.") from err
        finally:
            self._busy = False

    def close(self, timeout_s: float = 2.0) -> None:
        """Ask an idle child to quit (up to ``timeout_s``); a child inside a forward pass would only
        read the request once the pass is over, seconds later, so it is ended at once instead
        (it holds nothing worth saving: closing the window must not wait for a model)."""
        self._closed = True
        stop_child(self._proc, self._conn, 0.0 if self._busy else timeout_s)
