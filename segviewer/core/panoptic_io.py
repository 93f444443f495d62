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
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from segviewer.core.errors import BadDatasetError
from segviewer.core.fileio import read_json_object, write_image_atomic, write_json_atomic
from segviewer.core.results import PanopticMap, PanopticSegment, ResultError

__all__ = [
    "rgb2id", "id2rgb", "write_panoptic_png", "read_panoptic_png", "segments_info",
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

    PQ over a folder is bounded by this decode. PNGs as OpenCV writes them (ours: 8-bit RGB, every
    row "None" or "Sub" filtered) take :func:`_decode_sub_png`, about twice as fast as libpng;
    any other PNG (PIL's adaptive filters, palettes, 16 bits, interlacing) goes through OpenCV.
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise BadDatasetError(f"panoptic PNG {p} is missing") from None
    except IsADirectoryError:
        raise BadDatasetError(f"panoptic PNG {p} is a folder, not a file") from None
    except OSError as err:
        raise BadDatasetError(f"panoptic PNG {p} cannot be read ({err.strerror or err})") from None
    ids = _decode_sub_png(data)
    if ids is not None:
        return ids
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED) if data else None
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


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_BAND_PIXELS = (1 << 31) // 256 - 1  # rows per integral band: its int32 sums must not overflow


def _decode_sub_png(data: bytes) -> np.ndarray | None:
    """Ids of an 8-bit RGB, non-interlaced PNG whose rows all use filter 0 (None) or 1 (Sub), else None.

    Why it is faster than libpng: zlib-ng inflates (when installed; 3-4x zlib's speed on these
    highly redundant streams), and the Sub filter's per-row running sum is taken for all rows at
    once from ``cv2.integral`` (vectorised): row ``y`` of the prefix sum is the difference of two
    integral rows, and only its low byte matters, so a uint8 subtraction of the integral's low
    bytes writes the decoded channels straight into an RGBA buffer read as int32 ids.
    Anything unexpected returns None and the caller decodes through OpenCV, which reports errors.
    """
    if sys.byteorder != "little" or not data.startswith(_PNG_SIGNATURE):
        return None
    pos, n = 8, len(data)
    header = None
    parts: list[bytes] = []
    while pos + 8 <= n:
        length, kind = struct.unpack_from(">I4s", data, pos)
        body = pos + 8
        if body + length + 4 > n:
            return None
        if kind == b"IHDR":
            header = struct.unpack_from(">IIBBBBB", data, body)
        elif kind == b"IDAT":
            parts.append(data[body:body + length])
        elif kind == b"IEND":
            break
        elif kind in (b"PLTE", b"tRNS") or not kind[:1].isalpha():
            return None
        pos = body + length + 4
    if header is None or not parts:
        return None
    w, h, depth, color, compression, flt, interlace = header
    if (depth, color, compression, flt, interlace) != (8, 2, 0, 0, 0) or w <= 0 or h <= 0:
        return None
    try:
        raw = _inflate(b"".join(parts))
    except _INFLATE_ERRORS:
        return None
    stride = 3 * w + 1
    if len(raw) != h * stride:
        return None
    rows = np.frombuffer(raw, np.uint8).reshape(h, stride)
    filters = rows[:, 0]
    if int(filters.max()) > 1:
        return None  # Up / Average / Paeth rows: sequential, leave them to libpng
    f = rows[:, 1:].reshape(h, w, 3)
    out = np.zeros((h, w, 4), np.uint8)
    band = max(1, _BAND_PIXELS // (3 * w))
    for y0 in range(0, h, band):
        y1 = min(h, y0 + band)
        integral = cv2.integral(f[y0:y1], sdepth=cv2.CV_32S)  # (rows + 1, w + 1, 3)
        low = integral.view(np.uint8).reshape(y1 - y0 + 1, w + 1, 3, 4)[..., 0]
        np.subtract(low[1:, 1:], low[:-1, 1:], out=out[y0:y1, :, :3])
    plain = np.flatnonzero(filters == 0)
    if plain.size:
        out[plain, :, :3] = f[plain]
    return out.view(np.int32)[..., 0]


try:  # zlib-ng inflates 3-4x faster than zlib here; optional, the stdlib is the fallback
    from zlib_ng import zlib_ng as _zlib_fast

    _inflate = _zlib_fast.decompress
    _INFLATE_ERRORS: tuple[type[Exception], ...] = (zlib.error, _zlib_fast.error, ValueError, MemoryError)
except ImportError:  # pragma: no cover - depends on the environment
    _inflate = zlib.decompress
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
