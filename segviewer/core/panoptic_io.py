"""COCO panoptic files: an RGB PNG of segment ids plus a JSON of ``segments_info`` per image.

Ids are packed as ``id = R + 256 G + 256^2 B`` (panopticapi's ``rgb2id``); 0 is void. In the
JSON, ``category_id`` is the file's id; in memory (:class:`PanopticMap`) it is the index into the
category names ordered by id, so shapes-world files (``id = index + 1``) map back to
``CATEGORIES`` indices. Areas and boxes written here are counted from the id map itself.
"""

from __future__ import annotations

import os
import struct
import sys
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from segviewer.core.errors import BadDatasetError
from segviewer.core.fileio import read_json_object, write_image_atomic, write_json_atomic
from segviewer.core.results import PanopticMap, PanopticSegment, ResultError

__all__ = [
    "rgb2id", "id2rgb", "write_panoptic_png", "read_panoptic_png", "read_panoptic_runs", "IdRuns",
    "segments_info",
    "panoptic_annotation", "write_panoptic_json", "read_panoptic", "PanopticDataset",
]

_MAX_ID = 256**3 - 1


def rgb2id(color: np.ndarray) -> np.ndarray:
    """Segment ids (int32) of an ``(..., 3)`` uint8 RGB array: ``R + 256 G + 256^2 B``."""
    c = np.asarray(color)
    if c.shape[-1:] != (3,):
        raise ValueError(f"panoptic colors must have 3 channels last, got shape {c.shape}")
    c = c.astype(np.int32)
    return c[..., 0] + 256 * c[..., 1] + 65536 * c[..., 2]


def id2rgb(ids: np.ndarray) -> np.ndarray:
    """``(..., 3)`` uint8 RGB of segment ids; the inverse of :func:`rgb2id` for ids < 2^24."""
    a = np.asarray(ids, dtype=np.int64)
    if a.size and (a.min() < 0 or a.max() > _MAX_ID):
        raise ValueError(f"panoptic ids must lie in [0, {_MAX_ID}]")
    out = np.empty(a.shape + (3,), np.uint8)
    out[..., 0], out[..., 1], out[..., 2] = a & 255, (a >> 8) & 255, (a >> 16) & 255
    return out


def write_panoptic_png(path: str | os.PathLike[str], segment_ids: np.ndarray) -> None:
    """Write an ``(H, W)`` id map as a COCO panoptic PNG (RGB on disk, atomically)."""
    write_image_atomic(path, id2rgb(segment_ids))


def read_panoptic_png(path: str | os.PathLike[str]) -> np.ndarray:
    """``(H, W)`` int32 segment ids ``R + 256 G + 256^2 B`` of a COCO panoptic PNG.

    PQ over a folder is bounded by this decode, so no per-pixel arithmetic: BGR(A) -> RGBA, then
    a 32-bit view masked to the low 24 bits (little-endian hosts; others take the plain sum).
    """
    p = Path(path)
    if not p.is_file():
        raise BadDatasetError(f"panoptic PNG {p} is missing")
    img = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise BadDatasetError(f"{p.name} is not a readable PNG")
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] not in (3, 4):
        raise BadDatasetError(f"{p.name} is not an 8-bit RGB panoptic PNG (shape {img.shape}, {img.dtype})")
    rgba = cv2.cvtColor(img, cv2.COLOR_BGR2RGBA if img.shape[2] == 3 else cv2.COLOR_BGRA2RGBA)
    if sys.byteorder == "little":
        ids = rgba.view(np.int32)[..., 0]
        np.bitwise_and(ids, 0xFFFFFF, out=ids)
        return ids
    return rgb2id(rgba[..., :3])


@dataclass(frozen=True, eq=False)
class IdRuns:
    """A segment id map as runs along its rows: pixel ``starts[k]`` (flat, row-major) up to the next
    start all hold ``ids[k]``. ``starts`` is sorted, begins at 0 and holds every row's first pixel,
    so no run crosses a row end. A 640x480 panoptic map has a few thousand runs."""

    shape: tuple[int, int]
    starts: np.ndarray  # (K,) int64
    ids: np.ndarray  # (K,) int64

    def to_map(self) -> np.ndarray:
        """The ``(H, W)`` int32 id map (what :func:`read_panoptic_png` returns)."""
        h, w = self.shape
        return np.repeat(self.ids.astype(np.int32), np.diff(self.starts, append=h * w)).reshape(h, w)


def read_panoptic_runs(path: str | os.PathLike[str]) -> IdRuns | None:
    """The id map of a COCO panoptic PNG as :class:`IdRuns`, straight from the compressed bytes,
    or None when this fast path does not apply (then use :func:`read_panoptic_png`).

    Why: decoding a panoptic PNG is mostly zlib inflating long runs, then libpng undoing the
    filters and OpenCV converting colors, all per pixel, while the map is piecewise constant. This
    path applies to 8-bit RGB, non-interlaced PNGs whose rows are all filtered "None" or "Sub"
    (what OpenCV writes for panoptic maps, ours included) when zlib-ng is installed (it inflates
    3-4x faster than zlib). With "Sub", a filtered byte is the change from the pixel to the left,
    so only the non-zero bytes (about 1%) say where an id changes; each channel's value at a change
    is a running sum of them along its row. A missing file raises as :func:`read_panoptic_png`
    does; anything else unexpected returns None, and the plain decoder then names the problem:
    a chunk whose CRC does not match included (libpng refuses a critical one, so this path must
    not score it). Adaptive encoders (PIL) are found from their first rows with data, before the
    whole image is inflated (see :func:`_inflate_none_sub`).
    """
    p = Path(path)
    data = _read_png_bytes(p)
    if _inflate_fast is None or not data.startswith(_PNG_SIGNATURE):
        return None
    pos, n = 8, len(data)
    header = None
    parts: list[bytes] = []
    view = memoryview(data)
    while pos + 8 <= n:
        length, kind = struct.unpack_from(">I4s", data, pos)
        if pos + 12 + length > n:
            return None
        if _crc32(view[pos + 4:pos + 8 + length]) != struct.unpack_from(">I", data, pos + 8 + length)[0]:
            return None  # corrupted: libpng refuses it (critical chunk) or drops it (ancillary)
        if kind == b"IHDR" and length == 13:
            header = struct.unpack_from(">IIBBBBB", data, pos + 8)
        elif kind == b"IDAT":
            parts.append(data[pos + 8:pos + 8 + length])
        elif kind == b"IEND":
            break
        elif kind[:1].isupper() or not kind.isalpha():
            return None  # PLTE or an unknown critical chunk: not ours to interpret
        pos += 12 + length
    if header is None or not parts:
        return None
    w, h, depth, color, compression, flt, interlace = header
    if (depth, color, compression, flt, interlace) != (8, 2, 0, 0, 0) or w <= 0 or h <= 0:
        return None
    stride = 3 * w + 1
    raw = _inflate_none_sub(b"".join(parts), h, stride)
    if raw is None or len(raw) != h * stride:
        return None
    a = np.frombuffer(raw, np.uint8)
    filters = a[::stride]
    if int(filters.max()) > 1:
        return None  # Up / Average / Paeth rows: leave them to libpng
    if int(filters.min()) == 0:  # "None" rows hold values: turn them into "Sub" differences
        a = a.copy()
        rows = a.reshape(h, stride)
        plain = rows[filters == 0, 1:]
        plain[:, 3:] -= rows[filters == 0, 1:-3]
        rows[filters == 0, 1:] = plain
        rows[:, 0] = 1
    # Non-zero bytes, found 8 at a time (most 8-byte words of a panoptic map are all zero).
    whole = len(a) // 8 * 8
    words = np.flatnonzero(a[:whole].view(np.uint64))
    r, c = np.nonzero(a[:whole].reshape(-1, 8)[words])
    q = words[r] * 8 + c
    if whole < len(a):
        q = np.concatenate([q, whole + np.flatnonzero(a[whole:])])
    if len(q) > len(a) // 4 and len(a) > 1 << 16:
        return None  # noise, not segments: per-pixel decoding and counting are cheaper
    y, b = np.divmod(q, stride)
    keep = b > 0  # not the filter bytes
    q, y, b = q[keep], y[keep], b[keep] - 1
    x, ch = np.divmod(b, 3)
    change = y * w + x  # sorted: bytes are in row-major order
    rows = np.arange(h, dtype=np.int64) * w
    starts = np.insert(change, np.searchsorted(change, rows), rows)  # a merge of two sorted lists
    if len(starts) > 1:
        starts = starts[np.concatenate([[True], starts[1:] != starts[:-1]])]
    start_row = starts // w
    ids = np.zeros(len(starts), np.int64)
    vals = a[q].astype(np.int64)
    for k in range(3):  # channel k: a running sum along each row, mod 256, at its own changes
        sel = ch == k
        if not sel.any():
            continue
        yk, pk, vk = y[sel], change[sel], vals[sel]
        total = np.cumsum(vk)
        first = np.flatnonzero(np.concatenate([[True], yk[1:] != yk[:-1]]))
        before = total[first] - vk[first]  # the sum over earlier rows
        value = (total - np.repeat(before, np.diff(first, append=len(vk)))) & 255
        at = np.searchsorted(pk, starts, side="right") - 1  # this channel's last change so far
        atc = np.maximum(at, 0)
        same_row = (at >= 0) & (yk[atc] == start_row)
        ids |= np.where(same_row, value[atc], 0) << (8 * k)
    return IdRuns((int(h), int(w)), starts, ids)


def _inflate_none_sub(blob: bytes, h: int, stride: int) -> bytes | None:
    """The inflated rows of ``blob``, or None when its first rows with data use a filter other
    than None/Sub (or the stream is broken).

    Adaptive encoders (PIL, libpng's default) filter a row "Up" as soon as it repeats the one
    above, which panoptic rows do; all-zero rows (void) tie and stay "None". So a probe inflates
    2, 4, 8, ... rows until four rows hold data: an adaptive file is left there, for a few
    microseconds instead of a full inflate (+11% on a 640x480 PIL file otherwise). The probe is
    then thrown away and the stream inflated in one call (cheaper than joining pieces), so the
    result is what one ``decompress`` gives; rows further down are still checked by the caller.
    """
    try:
        d = _decompressobj()
        tail, rows, want, data_rows = blob, 0, 2, 0
        while rows < h and data_rows < 4:
            piece = d.decompress(tail, want * stride)
            tail = d.unconsumed_tail
            if len(piece) < want * stride and rows + len(piece) // stride < h:
                return None  # the stream ended early
            block = np.frombuffer(piece, np.uint8)[: len(piece) // stride * stride].reshape(-1, stride)
            if block.size and int(block[:, 0].max()) > 1:
                return None  # Up / Average / Paeth rows: leave them to libpng
            data_rows += int(block[:, 1:].any(axis=1).sum())
            rows += len(block)
            want = min(2 * want, h - rows) if rows < h else want
        return _inflate_fast(blob)
    except _INFLATE_ERRORS:
        return None


def _read_png_bytes(p: Path) -> bytes:
    try:
        return p.read_bytes()
    except FileNotFoundError:
        raise BadDatasetError(f"panoptic PNG {p} is missing") from None
    except IsADirectoryError:
        raise BadDatasetError(f"panoptic PNG {p} is a folder, not a file") from None
    except OSError as err:
        raise BadDatasetError(f"panoptic PNG {p} cannot be read ({err.strerror or err})") from None


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
try:  # optional: without zlib-ng the runs path would be no faster than libpng, so it is skipped
    from zlib_ng import zlib_ng as _zlib_ng

    _inflate_fast: Any = _zlib_ng.decompress
    _decompressobj: Any = _zlib_ng.decompressobj
    _crc32: Any = _zlib_ng.crc32
    _INFLATE_ERRORS: tuple[type[Exception], ...] = (zlib.error, _zlib_ng.error, ValueError, MemoryError)
except ImportError:  # pragma: no cover - depends on the environment
    _inflate_fast = None
    _decompressobj = zlib.decompressobj
    _crc32 = zlib.crc32
    _INFLATE_ERRORS = (zlib.error, ValueError, MemoryError)


def _bbox(rows: np.ndarray, cols: np.ndarray) -> list[int]:
    return [int(cols.min()), int(rows.min()), int(cols.max() - cols.min() + 1), int(rows.max() - rows.min() + 1)]


def segments_info(segment_ids: np.ndarray, segments: Sequence[PanopticSegment],
                  category_ids: Sequence[int] | None = None) -> list[dict[str, Any]]:
    """COCO ``segments_info`` for an id map: area and bbox counted from the pixels.

    ``category_ids[k]`` is the file id of category index ``k`` (default ``k + 1``). Segments with
    no pixels are left out, as COCO panoptic files never list empty segments.
    """
    ids = np.asarray(segment_ids)
    flat = ids.ravel()
    order = np.argsort(flat, kind="stable")
    sorted_ids = flat[order]
    out = []
    w = ids.shape[1]
    for s in segments:
        lo, hi = np.searchsorted(sorted_ids, [s.id, s.id + 1])
        if hi <= lo:
            continue
        idx = order[lo:hi]
        cid = s.category_id + 1 if category_ids is None else int(category_ids[s.category_id])
        out.append({"id": int(s.id), "category_id": cid, "iscrowd": int(bool(s.iscrowd)),
                    "area": int(hi - lo), "bbox": _bbox(idx // w, idx % w)})
    return out


def panoptic_annotation(image_id: int, file_name: str, panoptic: PanopticMap,
                        category_ids: Sequence[int] | None = None) -> dict[str, Any]:
    """One entry of the panoptic JSON's ``annotations`` (``file_name`` is the PNG's name)."""
    return {"image_id": int(image_id), "file_name": str(file_name),
            "segments_info": segments_info(panoptic.segment_ids, panoptic.segments, category_ids)}


def write_panoptic_json(path: str | os.PathLike[str], images: Sequence[Mapping[str, Any]],
                        annotations: Sequence[Mapping[str, Any]], categories: Sequence[Mapping[str, Any]],
                        info: Mapping[str, Any] | None = None) -> None:
    """Write a COCO panoptic JSON atomically (categories need ``isthing``)."""
    doc = {"info": dict(info or {}), "images": list(images), "annotations": list(annotations),
           "categories": list(categories)}
    write_json_atomic(path, doc)


class PanopticDataset:
    """A COCO panoptic JSON plus its PNG folder; :meth:`panoptic` gives a :class:`PanopticMap`."""

    def __init__(self, data: Mapping[str, Any], png_dir: Path, name: str = "panoptic JSON") -> None:
        self.name, self.png_dir = name, png_dir
        for key in ("annotations", "categories"):
            if not isinstance(data.get(key), list):
                raise BadDatasetError(f"{name} has no '{key}' list, so it is not COCO panoptic JSON")
        try:
            cats = sorted(data["categories"], key=lambda c: int(c["id"]))
            self.category_ids: tuple[int, ...] = tuple(int(c["id"]) for c in cats)
            self.categories: tuple[str, ...] = tuple(str(c["name"]) for c in cats)
            self.isthing: tuple[bool, ...] = tuple(bool(c["isthing"]) for c in cats)
            self._anns = {int(a["image_id"]): a for a in data["annotations"]}
        except (KeyError, TypeError, ValueError) as err:
            raise BadDatasetError(f"{name} has a category or annotation without a valid {err}") from None
        self._index = {cid: i for i, cid in enumerate(self.category_ids)}
        self.images = {int(im["id"]): dict(im) for im in data.get("images", []) if "id" in im}

    @property
    def image_ids(self) -> list[int]:
        return sorted(self._anns)

    def annotation(self, image_id: int) -> dict[str, Any]:
        ann = self._anns.get(int(image_id))
        if ann is None:
            raise BadDatasetError(f"{self.name} has no annotation for image {image_id}")
        return dict(ann)

    def panoptic(self, image_id: int) -> PanopticMap:
        """Decode image ``image_id``'s PNG and segments into a :class:`PanopticMap`."""
        ann = self.annotation(image_id)
        png = self.png_dir / str(ann.get("file_name", ""))
        ids = read_panoptic_png(png)
        segs = []
        for k, s in enumerate(ann.get("segments_info", [])):
            try:
                cat = self._index[s["category_id"]]
                segs.append(PanopticSegment(int(s["id"]), cat, self.isthing[cat], int(s.get("area", 0)),
                                            float(s.get("score", 1.0)), bool(s.get("iscrowd", 0))))
            except (KeyError, TypeError, ValueError):
                raise BadDatasetError(f"{self.name}: segment #{k} of {png.name} has a missing or unknown "
                                      "id or category") from None
        try:
            return PanopticMap(ids, tuple(segs), self.categories, self.isthing)
        except ResultError as err:
            raise BadDatasetError(f"{png.name} does not match its segments_info: {err}") from None


def read_panoptic(json_path: str | os.PathLike[str], png_dir: str | os.PathLike[str] | None = None) -> PanopticDataset:
    """Open a COCO panoptic JSON; PNGs default to the folder named like the JSON without suffix."""
    p = Path(json_path)
    data = read_json_object(p, "panoptic JSON")
    folder = Path(png_dir) if png_dir is not None else p.with_suffix("")
    return PanopticDataset(data, folder, p.name)
