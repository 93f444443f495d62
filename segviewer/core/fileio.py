"""Writing files so that nothing half-written is ever left on disk: write a temp file beside the
target, then rename it over the target (atomic on POSIX and on Windows' same volume)."""

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


@contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success rename it to ``target``.

    The temporary name keeps the target's suffix so writers that pick a format by extension
    (OpenCV) still work. On any exception the temporary file is removed and the target is untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=f".part{target.suffix}", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp creates 0600; give the final file the permissions a plain open() would.
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(tmp_path, 0o666 & ~mask)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def write_bytes_atomic(target: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(target: str | os.PathLike[str], text: str) -> None:
    write_bytes_atomic(target, text.encode("utf-8"))


def write_json_atomic(target: str | os.PathLike[str], obj: Any, indent: int | None = None) -> None:
    write_text_atomic(target, json.dumps(obj, indent=indent))


def read_json_object(path: str | os.PathLike[str], kind: str) -> dict[str, Any]:
    """A JSON file that must hold an object (``kind`` names it in messages, e.g. "COCO JSON")."""
    from segviewer.core.errors import BadDatasetError

    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadDatasetError(f"{kind} {p} is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BadDatasetError(f"{p.name} is not a readable JSON file ({err})") from None
    if not isinstance(data, dict):
        raise BadDatasetError(f"{p.name} is not a {kind} object")
    return data


def write_image_atomic(target: str | os.PathLike[str], image: np.ndarray) -> None:
    """Write an RGB(A) uint8/uint16 or single-channel image; the format follows the suffix."""
    import cv2

    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[2] == 3:
        arr = cv2.cvtColor(arr, cv2.COLOR_RGB2BGR)
    elif arr.ndim == 3 and arr.shape[2] == 4:
        arr = cv2.cvtColor(arr, cv2.COLOR_RGBA2BGRA)
    suffix = Path(target).suffix or ".png"
    ok, buf = cv2.imencode(suffix, np.ascontiguousarray(arr))
    if not ok:
        raise SegviewerError(f"could not encode {Path(target).name} as {suffix}")
    write_bytes_atomic(target, buf.tobytes())
