"""Video sources: files OpenCV reads (mp4, avi, mkv, webm, mov) and folders of frames.

A :class:`VideoSource` knows its frame count, size, frame rate and time per frame, and returns any
frame by index as RGB ``uint8 (H, W, 3)`` (BGR stays inside this module). Problems a person can
fix are :class:`VideoError` with one sentence: not a video, no frames, a truncated file, a variable
frame rate (timestamps would not match frame indices), a frame of another size in a folder.

:class:`ReadAhead` decodes the next frames on a plain background thread so a UI thread playing a
video only ever picks frames out of a small buffer; it never blocks on the decoder while the
frame it wants is ready.
"""

from __future__ import annotations

import os
import re
import struct
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from segviewer.core.errors import SegviewerError

__all__ = [
    "VideoError",
    "VideoSource",
    "FileVideoSource",
    "FrameFolderSource",
    "ReadAhead",
    "open_video",
    "check_constant_rate",
    "VIDEO_SUFFIXES",
    "IMAGE_SUFFIXES",
]

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


class VideoError(SegviewerError):
    """A video file or frame folder cannot be played; the message says why and what to do."""


class VideoSource:
    """Random access to the frames of one video; subclasses implement :meth:`_read`."""

    path: Path
    frame_count: int
    fps: float
    size: tuple[int, int]  # (H, W)

    @property
    def frame_time(self) -> float:
        """Seconds between two frames (1 / fps)."""
        return 1.0 / self.fps

    @property
    def duration(self) -> float:
        return self.frame_count / self.fps

    def __len__(self) -> int:
        return self.frame_count

    def timestamp(self, index: int) -> float:
        """Seconds from the start to frame ``index`` (constant frame rate is checked on open)."""
        return self._index(index) * self.frame_time

    def index_at(self, seconds: float) -> int:
        """The frame shown at time ``seconds``, clamped to the video."""
        return int(min(max(np.floor(seconds * self.fps + 1e-6), 0), self.frame_count - 1))

    def _index(self, index: int) -> int:
        i = int(index)
        if not 0 <= i < self.frame_count:
            raise VideoError(f"Frame {i} does not exist; {self.path.name} has frames 0 to {self.frame_count - 1}.")
        return i

    def read(self, index: int) -> np.ndarray:
        """Frame ``index`` as RGB uint8 ``(H, W, 3)``."""
        return self._read(self._index(index))

    def __getitem__(self, index: int) -> np.ndarray:
        return self.read(index)

    def __iter__(self) -> Iterator[np.ndarray]:
        for i in range(self.frame_count):
            yield self.read(i)

    def close(self) -> None:
        """Release the decoder; reading again reopens it."""

    def __enter__(self) -> VideoSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _read(self, index: int) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError


def check_constant_rate(timestamps_ms: np.ndarray | list[float], name: str = "the video") -> float:
    """Median frame interval in ms of decoded timestamps; raise if the rate varies.

    A rate is constant when every interval is within max(2 ms, 20 %) of the median: enough slack
    for 29.97 fps rounded to whole milliseconds (33/34 ms), none for a phone's variable rate.
    """
    ts = np.asarray(timestamps_ms, np.float64)
    if ts.size < 3:
        return float(ts[1] - ts[0]) if ts.size == 2 else 0.0
    d = np.diff(ts)
    med = float(np.median(d))
    if med <= 0 or np.any(np.abs(d - med) > max(2.0, 0.2 * med)):
        raise VideoError(
            f"{name} has a variable frame rate (frame intervals from {d.min():.0f} to {d.max():.0f} ms); "
            "re-encode it at a constant rate, e.g. ffmpeg -i in.mp4 -vsync cfr -r 30 out.mp4."
        )
    return med


def _sniff(path: Path) -> str:
    """What the first bytes say the file is: 'mp4', 'avi', 'mkv' or ''."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(12)
    except OSError:
        return ""
    if head[4:8] == b"ftyp":
        return "mp4"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "avi"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "mkv"
    return ""


class FileVideoSource(VideoSource):
    """A video file read through OpenCV's FFmpeg backend.

    On open it decodes up to ``probe`` leading frames to check timestamps and seeks to the last
    frame the container announces, so a truncated file fails now rather than mid-playback.
    Sequential reads reuse the decoder's position; a jump seeks (OpenCV seeks to the previous key
    frame and decodes forward, so random access is exact but costs more than stepping).
    """

    def __init__(self, path: str | os.PathLike[str], probe: int = 16) -> None:
        import cv2

        self.path = Path(path)
        self._lock = threading.Lock()
        if not self.path.is_file():
            raise VideoError(f"{self.path} does not exist or is not a file.")
        if self.path.stat().st_size == 0:
            raise VideoError(f"{self.path.name} is empty (0 bytes); it has no frames.")
        self._cap = cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG)
        if not self._cap.isOpened():
            kind = _sniff(self.path)
            if kind:
                raise VideoError(f"{self.path.name} looks like an {kind.upper()} file but cannot be decoded; "
                                 "it is probably truncated or has no frames.")
            raise VideoError(f"{self.path.name} is not a video OpenCV can read (tried mp4, avi, mkv, webm).")
        count = int(round(self._cap.get(cv2.CAP_PROP_FRAME_COUNT)))
        fps = float(self._cap.get(cv2.CAP_PROP_FPS))
        frames, stamps = [], []
        for _ in range(max(2, probe)):
            ok, bgr = self._cap.read()
            if not ok:
                break
            frames.append(bgr)
            stamps.append(float(self._cap.get(cv2.CAP_PROP_POS_MSEC)))
        if not frames:
            raise VideoError(f"{self.path.name} has no frames that can be decoded.")
        interval = check_constant_rate(stamps, self.path.name)
        if not (np.isfinite(fps) and 0 < fps <= 1000):
            fps = 1000.0 / interval if interval > 0 else 0.0
        if not (0 < fps <= 1000):
            raise VideoError(f"{self.path.name} has no usable frame rate ({fps}).")
        self.fps = fps
        h, w = frames[0].shape[:2]
        self.size = (int(h), int(w))
        if count <= 0:  # some containers do not say; count by decoding (once, at open)
            count = len(frames)
            while self._cap.grab():
                count += 1
        elif len(frames) < min(count, max(2, probe)):
            raise VideoError(f"{self.path.name} announces {count} frames but only {len(frames)} can be decoded; "
                             "the file is probably truncated.")
        self.frame_count = count
        self._next = len(frames)
        self._first = self._convert(frames[0])
        if count > len(frames) and self._seek_read(count - 1) is None:
            raise VideoError(f"{self.path.name} announces {count} frames but its end cannot be decoded; "
                             "the file is probably truncated.")

    @staticmethod
    def _convert(bgr: np.ndarray) -> np.ndarray:
        import cv2

        if bgr.ndim == 2:
            return cv2.cvtColor(bgr, cv2.COLOR_GRAY2RGB)
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def _seek_read(self, index: int) -> np.ndarray | None:
        import cv2

        if self._cap is None:
            self._cap = cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG)
            self._next = 0
        if index != self._next:
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, bgr = self._cap.read()
        if not ok:
            self._next = -1
            return None
        self._next = index + 1
        return bgr

    def _read(self, index: int) -> np.ndarray:
        if index == 0:
            return self._first.copy()
        with self._lock:
            bgr = self._seek_read(index)
        if bgr is None:
            raise VideoError(f"Frame {index} of {self.path.name} cannot be decoded; the file is probably truncated.")
        if bgr.shape[:2] != self.size:
            raise VideoError(f"Frame {index} of {self.path.name} is {bgr.shape[1]}x{bgr.shape[0]}, "
                             f"not {self.size[1]}x{self.size[0]} like the first.")
        return self._convert(bgr)

    def close(self) -> None:
        with self._lock:
            if self._cap is not None:
                self._cap.release()
            self._cap = None


def _natural_key(name: str) -> list[object]:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def _header_size(path: Path) -> tuple[int, int] | None:
    """(H, W) from a PNG or JPEG header without decoding, or None for other formats."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(26)
            if head[:8] == b"\x89PNG\r\n\x1a\n" and len(head) >= 24:
                w, h = struct.unpack(">II", head[16:24])
                return int(h), int(w)
            if head[:2] != b"\xff\xd8":
                return None
            fh.seek(2)
            while True:
                marker = fh.read(2)
                if len(marker) < 2 or marker[0] != 0xFF:
                    return None
                if marker[1] in (0xD8, 0x01) or 0xD0 <= marker[1] <= 0xD7:
                    continue
                seg = fh.read(2)
                if len(seg) < 2:
                    return None
                (length,) = struct.unpack(">H", seg)
                if marker[1] in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
                    data = fh.read(5)
                    if len(data) < 5:
                        return None
                    h, w = struct.unpack(">HH", data[1:5])
                    return int(h), int(w)
                fh.seek(length - 2, 1)
    except OSError:
        return None


class FrameFolderSource(VideoSource):
    """A folder of numbered images (``frame_0001.png`` ...), in natural sort order, at ``fps``.

    Every frame must have the first frame's size; PNG and JPEG headers are checked on open (cheap),
    other formats when read.
    """

    def __init__(self, path: str | os.PathLike[str], fps: float = 30.0) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise VideoError(f"{self.path} is not a folder.")
        if not (np.isfinite(fps) and 0 < fps <= 1000):
            raise VideoError(f"The frame rate of a frame folder must lie in (0, 1000]; got {fps}.")
        self.files = sorted((p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()),
                            key=lambda p: _natural_key(p.name))
        if not self.files:
            raise VideoError(f"{self.path.name} holds no frames (no {', '.join(IMAGE_SUFFIXES)} files).")
        self.fps = float(fps)
        self.frame_count = len(self.files)
        first = self._decode(self.files[0])
        self.size = (int(first.shape[0]), int(first.shape[1]))
        for p in self.files[1:]:
            hw = _header_size(p)
            if hw is not None and hw != self.size:
                self._size_error(p, hw)

    def _size_error(self, p: Path, hw: tuple[int, int]) -> None:
        raise VideoError(f"{p.name} is {hw[1]}x{hw[0]} but the first frame is {self.size[1]}x{self.size[0]}; "
                         "all frames of a folder must have one size.")

    @staticmethod
    def _decode(p: Path) -> np.ndarray:
        import cv2

        data = np.fromfile(str(p), np.uint8)
        bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
        if bgr is None:
            raise VideoError(f"{p.name} is not an image that can be decoded (empty, truncated or another format).")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def _read(self, index: int) -> np.ndarray:
        p = self.files[index]
        rgb = self._decode(p)
        if rgb.shape[:2] != self.size:
            self._size_error(p, rgb.shape[:2])
        return rgb


def open_video(path: str | os.PathLike[str], fps: float = 30.0) -> VideoSource:
    """Open a video file or a frame folder (``fps`` applies to folders only)."""
    p = Path(path)
    if p.is_dir():
        return FrameFolderSource(p, fps)
    return FileVideoSource(p)


class ReadAhead:
    """Keeps the next ``depth`` frames after the current one decoded, on one background thread.

    The UI thread calls :meth:`get` (returns the frame if buffered, else decodes it synchronously)
    and :meth:`seek` when the user jumps; decoding always runs ahead of the last position asked
    for. ``start=False`` makes it synchronous (tests, CLI). Errors from the decoder are re-raised
    by :meth:`get` for the frame that failed. ``on_ready(index)`` is called *on the read-ahead
    thread* after each frame it buffers: a Qt caller emits a queued signal from it.
    """

    def __init__(self, source: VideoSource, depth: int = 8, start: bool = True,
                 on_ready: Callable[[int], None] | None = None) -> None:
        if depth < 1:
            raise VideoError(f"The read-ahead depth must be at least 1; got {depth}.")
        self.source = source
        self.depth = int(depth)
        self.on_ready = on_ready
        self._buf: OrderedDict[int, np.ndarray | BaseException] = OrderedDict()
        self._pos = 0
        self._cv = threading.Condition()
        self._stop = False
        self._src_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        if start:
            self._thread = threading.Thread(target=self._run, name="segviewer-readahead", daemon=True)
            self._thread.start()

    def _wanted(self) -> int | None:
        for i in range(self._pos, min(self._pos + self.depth + 1, self.source.frame_count)):
            if i not in self._buf:
                return i
        return None

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._stop and self._wanted() is None:
                    self._cv.wait()
                if self._stop:
                    return
                i = self._wanted()
            assert i is not None
            try:
                with self._src_lock:
                    frame: np.ndarray | BaseException = self.source.read(i)
            except SegviewerError as err:
                frame = err
            with self._cv:
                keep = self._pos <= i <= self._pos + self.depth
                if keep:
                    self._buf[i] = frame
                self._cv.notify_all()
            if keep and self.on_ready is not None:
                self.on_ready(i)

    def seek(self, index: int) -> None:
        """Make ``index`` the current position: drop buffered frames outside the new window."""
        i = self.source._index(index)
        with self._cv:
            self._pos = i
            for k in [k for k in self._buf if not i <= k <= i + self.depth]:
                del self._buf[k]
            self._cv.notify_all()

    def buffered(self) -> list[int]:
        with self._cv:
            return sorted(self._buf)

    def get(self, index: int, timeout: float = 10.0) -> np.ndarray:
        """Frame ``index``; moves the read-ahead window there.

        With the background thread running it waits (up to ``timeout`` seconds) for the thread,
        which always decodes the current position first; without it, decodes here.
        """
        self.seek(index)
        with self._cv:
            if index not in self._buf and self._thread is not None and timeout:
                self._cv.wait_for(lambda: index in self._buf, timeout)
            item = self._buf.get(index)
        if item is None:
            with self._src_lock:
                try:
                    item = self.source.read(index)
                except SegviewerError as err:
                    item = err
            with self._cv:
                if self._pos <= index <= self._pos + self.depth:
                    self._buf[index] = item
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        """Stop the thread (the source stays open; the caller owns it)."""
        with self._cv:
            self._stop = True
            self._cv.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
