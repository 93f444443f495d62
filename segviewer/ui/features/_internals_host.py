"""The internals view's own forward pass, in a spawned child process (no Qt here).

Why a separate child: the window's model process answers ``predict`` requests only, and the
internals need one hooked pass (``capture_internals``) whose result is a big bundle of numpy
arrays. Running it in the UI process would hold the GIL for seconds (see ``ui.model_host``), so it
runs in a reniced child that keeps the loaded adapters between images. :class:`InlineHost` does the
same work in the calling thread (tests, and ``capture`` from a background job without a process).
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
from pathlib import Path
from typing import Any, NamedTuple

from segviewer.core.errors import ModelError, SegviewerError
from segviewer.ui.model_host import CHILD_NICE, describe_error, reap_child, registry_factory, stop_child

__all__ = ["CaptureRequest", "capture", "InlineHost", "ProcessCaptureHost", "FCN_STAGES"]

FCN_STAGES = ("32s", "16s", "8s")


class CaptureRequest(NamedTuple):
    """What to capture: ``kind`` is "detector" (``capture_internals``) or "fcn" (its stages)."""

    kind: str
    model_id: str
    device: str
    weights: Path | None
    image: Any
    torch_threads: int = 1


def _load(cache: dict[str, Any], model_id: str, device: str, weights: Path | None, threads: int) -> Any:
    want = (device, str(weights or ""))
    have = cache.get(model_id)
    if have is not None and have[0] == want:
        return have[1]
    adapter = registry_factory(model_id, torch_threads=threads)
    adapter.load(device, weights=weights)
    cache[model_id] = (want, adapter)
    return adapter


def _short_side_transform(adapter: Any, image: Any) -> contextlib.AbstractContextManager:
    """The bundled Mask R-CNN's adapter scales the *shorter* side to 256 px (its own resize), while
    its torch transform caps both sides at 256: borrow the adapter's scale for the hooked pass so
    the boxes the view explains are the ones the window shows."""
    @contextlib.contextmanager
    def cm():  # noqa: ANN202
        tr = getattr(getattr(adapter, "module", None), "transform", None)
        if getattr(adapter, "model_kind", "") != "maskrcnn" or tr is None:
            yield
            return
        old = (tr.min_size, tr.max_size)
        from segviewer.adapters.shapes import TRAIN_SHORT_SIDE

        tr.min_size, tr.max_size = (TRAIN_SHORT_SIDE,), 10 ** 6
        try:
            yield
        finally:
            tr.min_size, tr.max_size = old
    return cm()


def capture(req: CaptureRequest, cache: dict[str, Any]) -> Any:
    """Run one request: ``DetectorInternals`` for "detector", ``{stage: SemanticMap}`` for "fcn"."""
    kind, model_id, device, weights, image, threads = req
    adapter = _load(cache, model_id, device, weights, threads)
    if kind == "fcn":
        stages = getattr(adapter, "predict_stages", None)
        if stages is None:
            raise SegviewerError(f"{model_id} is not an FCN with skip stages; select the bundled shapes_fcn.")
        return stages(image)
    from segviewer.adapters.internals import capture_internals

    with _short_side_transform(adapter, image):
        return capture_internals(adapter, image)


class InlineHost:
    """Captures in the calling thread (a test, or a background job when no process is wanted)."""

    def __init__(self) -> None:
        self._cache: dict[str, Any] = {}

    def run(self, req: CaptureRequest) -> Any:
        return capture(req, self._cache)

    def close(self, timeout_s: float = 0.0) -> None:
        self._cache.clear()


def _child_main(conn: Any, nice: int) -> None:
    if nice:
        with contextlib.suppress(OSError):
            os.nice(nice)
    cache: dict[str, Any] = {}
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg[0] == "quit":
            return
        req = msg[1]
        try:
            out = ("ok", capture(req, cache))
        except BaseException as err:  # noqa: BLE001 - every failure goes back as one line
            out = ("error", describe_error(err, req[1]), isinstance(err, SegviewerError) and
                   type(err).__name__ == "NoRPNError")
        try:
            conn.send(out)
        except Exception as err:  # noqa: BLE001 - e.g. something that does not pickle
            conn.send(("error", describe_error(err, req[1]), False))


class RemoteCaptureError(SegviewerError):
    """A capture failed in the child; ``no_rpn`` says the model simply has no RPN."""

    def __init__(self, message: str, no_rpn: bool = False) -> None:
        super().__init__(message)
        self.no_rpn = no_rpn


class ProcessCaptureHost:
    """Captures in one spawned, reniced child process that keeps its models loaded.

    ``run`` blocks (call it from a background thread; the pipe wait releases the GIL); ``close``
    may come from any thread and ends the child, so a blocked ``run`` returns with an error.
    """

    def __init__(self, nice: int = CHILD_NICE) -> None:
        self._ctx = mp.get_context("spawn")  # never fork a process that has Qt threads
        self._nice = nice
        self._proc: Any = None
        self._conn: Any = None
        self._closed = False

    def _ensure(self) -> None:
        if self._proc is not None and self._proc.is_alive():
            return
        parent, child = self._ctx.Pipe()
        self._proc = self._ctx.Process(target=_child_main, args=(child, self._nice),
                                       name="segviewer-internals", daemon=True)
        self._proc.start()
        child.close()
        self._conn = parent

    def run(self, req: CaptureRequest) -> Any:
        if self._closed:
            raise ModelError("The internals process has been shut down.")
        self._ensure()
        try:
            self._conn.send(("capture", req))
            msg = self._conn.recv()
        except (EOFError, OSError) as err:
            code = reap_child(self._proc)
            self._proc = None
            if self._closed:
                raise ModelError("The internals process has been shut down.") from err
            raise ModelError(f"The internals process stopped unexpectedly (exit code {code}); "
                             "it restarts with the next request.") from err
        if msg[0] == "error":
            raise RemoteCaptureError(msg[1], bool(msg[2]))
        return msg[1]

    def close(self, timeout_s: float = 2.0) -> None:
        self._closed = True
        stop_child(self._proc, self._conn, timeout_s)
