"""Writing files so that nothing half-written is ever left on disk: write a temp file beside the
target, then rename it over the target (atomic on POSIX and on Windows' same volume).

A write that the file system refuses (the folder is under a regular file, no permission, a full
disk) raises :class:`OutputError`, one sentence naming the path and the reason, so every command
reports it the same way instead of a traceback.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from segviewer.core.errors import SegviewerError


class OutputError(SegviewerError):
    """An output file or folder cannot be written; the message names the path and the reason."""


def _blocking_file(path: Path) -> Path | None:
    """The first existing ancestor of ``path`` that is not a folder (so nothing can go under it)."""
    for parent in [path, *path.parents]:
        if parent.exists():
            return parent if not parent.is_dir() else None
    return None


def output_error(path: str | os.PathLike[str], err: OSError) -> OutputError:
    """One sentence for an ``OSError`` met while writing ``path`` (the reason, not the errno name)."""
    p = Path(path)
    blocker = _blocking_file(p.parent)
    if blocker is not None:
        return OutputError(f"cannot write {p}: {blocker} is a file, not a folder")
    reason = err.strerror or str(err) or type(err).__name__
    return OutputError(f"cannot write {p}: {reason[:1].lower()}{reason[1:]}")


def ensure_dir(path: str | os.PathLike[str], for_file: str | os.PathLike[str] | None = None) -> Path:
    """Create the output folder ``path`` (and its parents) or raise :class:`OutputError` saying why;
    ``for_file`` names the file about to be written there, for the message."""
    p = Path(path)
    what = f"cannot write {for_file}" if for_file is not None else f"cannot create the folder {p}"
    if p.exists() and not p.is_dir():
        raise OutputError(f"{what}: {p} is a file, not a folder")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        blocker = _blocking_file(p)
        if blocker is not None:
            raise OutputError(f"{what}: {blocker} is a file, not a folder") from None
        reason = err.strerror or str(err) or type(err).__name__
        raise OutputError(f"{what}: {reason[:1].lower()}{reason[1:]}") from None
    if not os.access(p, os.W_OK):
        raise OutputError(f"{what}: {p} is not writable (permission denied)")
    return p


def check_output_dir(path: str | os.PathLike[str]) -> None:
    """Raise :class:`OutputError` now when the folder ``path`` could not be created or written into,
    without creating it (so a command fails before its slow part and leaves nothing behind)."""
    p = Path(path)
    for q in [p, *p.parents]:
        if q.exists():
            if not q.is_dir():
                where = "it" if q == p else str(q)
                raise OutputError(f"cannot write into {p}: {where} is a file, not a folder")
            if not os.access(q, os.W_OK | os.X_OK):
                raise OutputError(f"cannot write into {p}: {q} is not writable (permission denied)")
            return


@contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success rename it to ``target``.

    The temporary name keeps the target's suffix so writers that pick a format by extension
    (OpenCV) still work. On any exception the temporary file is removed and the target is untouched.
    """
    target = Path(target)
    ensure_dir(target.parent, target)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=f".part{target.suffix}", dir=target.parent)
    except OSError as err:
        raise output_error(target, err) from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        # mkstemp creates 0600; give the final file the permissions a plain open() would.
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp_path, 0o666 & ~mask)
        yield tmp_path
        try:
            os.replace(tmp_path, target)
        except OSError as err:
            raise output_error(target, err) from None
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def write_bytes_atomic(target: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``target`` atomically; a refused write is an :class:`OutputError`."""
    with atomic_path(target) as tmp:
        try:
            tmp.write_bytes(data)
        except OSError as err:
            raise output_error(target, err) from None


def write_text_atomic(target: str | os.PathLike[str], text: str) -> None:
    write_bytes_atomic(target, text.encode("utf-8"))


def write_json_atomic(target: str | os.PathLike[str], obj: Any, indent: int | None = None) -> None:
    write_text_atomic(target, json.dumps(obj, indent=indent))


def read_json_object(path: str | os.PathLike[str], kind: str) -> dict[str, Any]:
    """A JSON file that must hold an object (``kind`` names it in messages, e.g. "COCO JSON").

    With ``orjson`` installed (the ``fast`` extra) it parses the file, in a third to a half of the
    stdlib's time, into the same objects; anything it refuses (NaN, a broken file) goes to the
    stdlib reader, which accepts or explains it in one sentence."""
    from segviewer.core.errors import BadDatasetError

    p = Path(path)
    try:
        import orjson
    except ImportError:
        orjson = None
    if orjson is not None:
        try:
            fast = orjson.loads(p.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            fast = None
        if isinstance(fast, dict):
            return fast
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadDatasetError(f"{kind} {p} is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BadDatasetError(f"{p.name} is not a readable JSON file ({err})") from None
    if not isinstance(data, dict):
        raise BadDatasetError(f"{p.name} is not a {kind} object")
    return data


def encode_image(image: np.ndarray, suffix: str = ".png", name: str = "image") -> bytes:
    """An RGB(A) uint8/uint16 or single-channel image as file bytes (``suffix`` picks the format),
    so that encoding can run where the image is made and the writing elsewhere."""
    import cv2

    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[2] == 3:
        arr = cv2.cvtColor(arr, cv2.COLOR_RGB2BGR)
    elif arr.ndim == 3 and arr.shape[2] == 4:
        arr = cv2.cvtColor(arr, cv2.COLOR_RGBA2BGRA)
    ok, buf = cv2.imencode(suffix, np.ascontiguousarray(arr))
    if not ok:
        raise SegviewerError(f"could not encode {name} as {suffix}")
    return buf.tobytes()


def write_image_atomic(target: str | os.PathLike[str], image: np.ndarray) -> None:
    """Write an RGB(A) uint8/uint16 or single-channel image; the format follows the suffix."""
    write_bytes_atomic(target, encode_image(image, Path(target).suffix or ".png", Path(target).name))
