"""Middlebury ``.flo`` optical-flow files: the format flow benchmarks and FlowNet-style tools share.

Layout (little-endian): float32 magic ``202021.25`` (the bytes spell ``PIEH``), int32 width,
int32 height, then ``H x W x 2`` float32 ``(u, v)`` in row-major order. Writes are atomic;
a bad file raises :class:`BadDatasetError` naming it, never a numpy traceback.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from segviewer.core.errors import BadDatasetError, SegviewerError
from segviewer.core.fileio import write_bytes_atomic

__all__ = ["FLO_MAGIC", "read_flo", "write_flo", "encode_flo", "decode_flo"]

FLO_MAGIC = 202021.25
_HEADER = 12
_MAX_SIDE = 1 << 16  # refuse absurd sizes from corrupt headers before allocating


def encode_flo(flow: np.ndarray) -> bytes:
    """The ``.flo`` bytes of an ``(H, W, 2)`` flow (any float dtype; stored as float32)."""
    f = np.asarray(flow)
    if f.ndim != 3 or f.shape[2] != 2 or f.shape[0] == 0 or f.shape[1] == 0:
        raise SegviewerError(f"a flow field must have shape (H, W, 2) with H, W > 0; got {f.shape}")
    if not np.issubdtype(f.dtype, np.number):
        raise SegviewerError(f"a flow field must be numeric, got {f.dtype}")
    h, w = f.shape[:2]
    head = np.array([FLO_MAGIC], "<f4").tobytes() + np.array([w, h], "<i4").tobytes()
    return head + np.ascontiguousarray(f, "<f4").tobytes()


def decode_flo(data: bytes, name: str = "flow file") -> np.ndarray:
    """``(H, W, 2)`` float32 flow from ``.flo`` bytes; ``name`` is used in error messages."""
    if len(data) < _HEADER:
        raise BadDatasetError(f"{name} is too short to be a .flo file ({len(data)} bytes)")
    magic = float(np.frombuffer(data, "<f4", 1, 0)[0])
    if magic != FLO_MAGIC:
        raise BadDatasetError(f"{name} is not a .flo file (magic {magic!r}, expected {FLO_MAGIC})")
    w, h = (int(v) for v in np.frombuffer(data, "<i4", 2, 4))
    if not (0 < w <= _MAX_SIDE and 0 < h <= _MAX_SIDE):
        raise BadDatasetError(f"{name} has an impossible size {w}x{h} in its header")
    need = _HEADER + h * w * 8
    if len(data) != need:
        raise BadDatasetError(f"{name} holds {len(data)} bytes but a {w}x{h} flow needs {need}")
    return np.frombuffer(data, "<f4", h * w * 2, _HEADER).astype(np.float32).reshape(h, w, 2)


def read_flo(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a Middlebury ``.flo`` file into an ``(H, W, 2)`` float32 array of ``(u, v)``."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise BadDatasetError(f"flow file {p} is missing") from None
    except OSError as err:
        raise BadDatasetError(f"flow file {p} cannot be read ({err.strerror})") from None
    return decode_flo(data, p.name)


def write_flo(path: str | os.PathLike[str], flow: np.ndarray) -> None:
    """Write ``(H, W, 2)`` flow as a ``.flo`` file, atomically (no half-written file on failure)."""
    write_bytes_atomic(path, encode_flo(flow))
