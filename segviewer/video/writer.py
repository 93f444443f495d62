"""Write RGB frames to an .mp4 that browsers and web players play: H.264, yuv420p, constant rate.

:class:`Mp4Writer` encodes with PyAV (the ``av`` package, which bundles FFmpeg and an H.264
encoder: libx264, or libopenh264 in some builds). Frames are RGB ``uint8 (H, W, 3)``; yuv420p
needs even sizes, so an odd height or width is padded by one row or column repeating the edge
pixels. Frame ``i`` is shown at ``i / fps`` (time base ``1 / fps``, 29.97 as 30000/1001); the
stream is tagged BT.601 matrix, limited range (what the RGB -> YUV conversion uses, and what
OpenCV assumes when it reads the file back), BT.709 primaries and transfer; ``faststart`` puts the
index first so a browser can play while loading.

Without PyAV, or without an H.264 encoder in it, the writer falls back to OpenCV's MPEG-4 Part 2
(``mp4v``), which desktop players read but browsers do not, and says so in :attr:`Mp4Writer.note`
for the caller to show.

The file appears only when :meth:`Mp4Writer.close` succeeds: frames go to a temporary file beside
the target that is renamed over it at the end, and removed on any error or :meth:`abort`.
No Qt, no torch.
"""

from __future__ import annotations

import contextlib
import os
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from segviewer.core.errors import SegviewerError
from segviewer.core.fileio import atomic_path

__all__ = ["Mp4Writer", "h264_encoder", "H264_ENCODERS", "frame_rate"]

#: PyAV encoder names tried in order; hardware encoders are left out (they fail without their device).
H264_ENCODERS: tuple[str, ...] = ("libx264", "libopenh264")

# BT.601 matrix (what swscale's RGB -> YUV uses by default), limited range, BT.709 primaries/transfer.
_COLORSPACE_SMPTE170M, _RANGE_MPEG, _PRIMARIES_BT709, _TRC_BT709 = 6, 1, 1, 1


def _write_error(path: Path, err: OSError) -> SegviewerError:
    """One line naming the file and the reason (a full disk, no permission...), not a traceback."""
    reason = err.strerror or str(err) or type(err).__name__
    return SegviewerError(f"cannot write {path}: {reason[:1].lower()}{reason[1:]}")


def frame_rate(fps: float) -> Fraction:
    """``fps`` as an exact rate: 12 -> 12, 29.97... -> 30000/1001, 12.5 -> 25/2."""
    if not np.isfinite(fps) or fps <= 0:
        raise SegviewerError(f"a video needs a positive frame rate, got {fps}")
    return Fraction(float(fps)).limit_denominator(1001)


def h264_encoder() -> tuple[str | None, str]:
    """``(encoder name, "")`` for the first usable PyAV H.264 encoder, or ``(None, why not)``."""
    try:
        import av
    except ImportError:
        return None, "PyAV is not installed (pip install av)"
    for name in H264_ENCODERS:
        try:
            ctx = av.CodecContext.create(name, "w")
            ctx.width, ctx.height, ctx.pix_fmt = 64, 64, "yuv420p"
            ctx.time_base = Fraction(1, 25)
            ctx.open()
        except Exception:  # noqa: BLE001 - an encoder that is missing or refuses to open is not usable
            continue
        return name, ""
    return None, f"PyAV {getattr(av, '__version__', '')} has no H.264 encoder ({', '.join(H264_ENCODERS)})"


class Mp4Writer:
    """``with Mp4Writer(path, fps) as w: w.write(rgb)`` -- an H.264 .mp4 written atomically.

    ``codec`` is ``"h264"`` or, after a fallback, ``"mpeg4"``; ``note`` is ``None`` or one sentence
    saying why the fallback happened. ``gop`` is the key-frame interval in frames (default one
    second, so seeking stays quick); ``crf`` the x264 quality (lower is better, 18 is visually
    lossless). ``prefer_h264=False`` writes mp4v directly.
    """

    def __init__(self, path: str | os.PathLike[str], fps: float, *, crf: int = 18, gop: int | None = None,
                 prefer_h264: bool = True) -> None:
        self.path = Path(path)
        if self.path.suffix.lower() != ".mp4":
            raise SegviewerError(f"videos are written as .mp4; {self.path.name} has another extension")
        self.rate = frame_rate(fps)
        self.gop = max(1, round(float(self.rate))) if gop is None else int(gop)
        self.crf = int(crf)
        self.frames = 0
        self.size: tuple[int, int] | None = None  # (H, W) of the frames given
        self.note: str | None = None
        self._encoder, why = h264_encoder() if prefer_h264 else (None, "")
        if self._encoder is None and prefer_h264:
            self.note = (f"{why}; wrote MPEG-4 Part 2 (mp4v) instead, which desktop players open but "
                         "web browsers do not")
        self.codec = "h264" if self._encoder is not None else "mpeg4"
        self._atomic = atomic_path(self.path)
        try:
            self._tmp = self._atomic.__enter__()
        except OSError as err:  # (core.fileio reports most of these itself, as one line)
            raise _write_error(self.path, err) from None
        self._container: Any = None
        self._stream: Any = None
        self._cv_writer: Any = None
        self._finished = self._closed = self._renamed = False

    # -- writing
    def write(self, rgb: np.ndarray) -> None:
        """Append one RGB ``uint8 (H, W, 3)`` frame; every frame must have the first one's size."""
        if self._closed or self._finished:
            raise SegviewerError(f"{self.path.name}: the video is already closed")
        arr = np.asarray(rgb)
        if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
            raise SegviewerError(f"a video frame must be RGB uint8 (H, W, 3), got {arr.dtype} {arr.shape}")
        h, w = arr.shape[:2]
        if self.size is None:
            self._open(h, w)
        elif (h, w) != self.size:
            raise SegviewerError(f"frame {self.frames} is {w}x{h}; the video is {self.size[1]}x{self.size[0]}")
        try:
            if self._stream is not None:
                self._write_av(arr)
            else:
                import cv2

                self._cv_writer.write(cv2.cvtColor(np.ascontiguousarray(arr), cv2.COLOR_RGB2BGR))
        except OSError as err:
            self.abort()
            raise _write_error(self.path, err) from None
        self.frames += 1

    def _open(self, h: int, w: int) -> None:
        self.size = (h, w)
        if self._encoder is not None:
            import av

            try:
                self._container = av.open(str(self._tmp), "w", format="mp4", options={"movflags": "+faststart"})
            except OSError as err:
                self.abort()
                raise _write_error(self.path, err) from None
            stream = self._container.add_stream(self._encoder, rate=self.rate)
            stream.width, stream.height = w + w % 2, h + h % 2
            stream.pix_fmt = "yuv420p"
            ctx = stream.codec_context
            ctx.gop_size = self.gop
            with contextlib.suppress(AttributeError, TypeError, ValueError):  # tags only; older PyAV lacks some
                ctx.colorspace, ctx.color_range = _COLORSPACE_SMPTE170M, _RANGE_MPEG
                ctx.color_primaries, ctx.color_trc = _PRIMARIES_BT709, _TRC_BT709
            if self._encoder == "libx264":
                stream.options = {"crf": str(self.crf), "preset": "medium"}
            else:  # openh264 has no crf: a generous bit rate for the frame size instead
                ctx.bit_rate = int(max(1_000_000, 0.2 * stream.width * stream.height * float(self.rate)))
            self._stream = stream
        else:
            import cv2

            self._cv_writer = cv2.VideoWriter(str(self._tmp), cv2.VideoWriter_fourcc(*"mp4v"),
                                              float(self.rate), (w, h))
            if not self._cv_writer.isOpened():
                self.abort()
                raise SegviewerError(f"cannot write {self.path}: OpenCV cannot write mp4 (mp4v) video here")

    def _write_av(self, arr: np.ndarray) -> None:
        import av

        h, w = arr.shape[:2]
        if h % 2 or w % 2:  # yuv420p halves both axes: repeat the last row / column
            arr = np.pad(arr, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(arr), format="rgb24")
        frame.pts = self.frames  # in the stream's time base, 1 / fps
        for packet in self._stream.encode(frame.reformat(format="yuv420p")):
            self._container.mux(packet)

    # -- finishing
    def finish(self) -> Path:
        """Flush the encoder and complete the file at :attr:`temp_path`, not yet moved into place,
        so a caller can check it first; returns the temporary path. Idempotent."""
        if self._closed:
            raise SegviewerError(f"{self.path.name}: the video is already closed")
        if self._finished:
            return self._tmp
        try:
            if self.frames == 0:
                raise SegviewerError(f"{self.path.name}: no frames to write")
            if self._stream is not None:
                for packet in self._stream.encode():
                    self._container.mux(packet)
                self._container.close()
            else:
                self._cv_writer.release()
        except OSError as err:
            self.abort()
            raise _write_error(self.path, err) from None
        except BaseException:
            self.abort()
            raise
        self._finished = True
        return self._tmp

    def close(self) -> Path:
        """Finish the file and move it into place; returns the target path. Idempotent."""
        if self._closed and self._renamed:
            return self.path
        self.finish()
        self._closed = True
        self._atomic.__exit__(None, None, None)
        self._renamed = True
        return self.path

    def abort(self) -> None:
        """Stop writing and remove the temporary file; the target is left as it was."""
        if self._closed:
            return
        self._closed = True
        if not self._finished:
            with contextlib.suppress(Exception):
                if self._container is not None:
                    self._container.close()
            if self._cv_writer is not None:
                self._cv_writer.release()
        err = SegviewerError("aborted")
        with contextlib.suppress(SegviewerError):
            self._atomic.__exit__(SegviewerError, err, None)

    @property
    def temp_path(self) -> Path:
        """Where the frames go until :meth:`close` renames the file into place."""
        return self._tmp

    def __enter__(self) -> Mp4Writer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def __del__(self) -> None:  # a writer dropped without close() leaves no temporary file
        with contextlib.suppress(Exception):
            self.abort()
