"""COCO panoptic files: an RGB PNG of segment ids plus a JSON of ``segments_info`` per image.

Ids are packed as ``id = R + 256 G + 256^2 B`` (panopticapi's ``rgb2id``); 0 is void. In the
JSON, ``category_id`` is the file's id; in memory (:class:`PanopticMap`) it is the index into the
category names ordered by id, so shapes-world files (``id = index + 1``) map back to
``CATEGORIES`` indices. Areas and boxes written here are counted from the id map itself.
"""

from __future__ import annotations

import ctypes
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
    "rgb2id", "id2rgb", "write_panoptic_png", "read_panoptic_png", "read_panoptic_runs", "read_panoptic_ids",
    "IdRuns", "runs_of_map", "keep_freed_memory",
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

    PQ over a folder is bounded by this decode. 8-bit RGB files take :func:`_decode_ids`
    (zlib-ng inflate, libspng unfilter, no per-pixel arithmetic); anything else, or any file that
    path refuses, is read by libpng (OpenCV), which names the problem: BGR(A) -> RGBA, then a
    32-bit view masked to the low 24 bits (little-endian hosts; others take the plain sum).
    """
    p = Path(path)
    parsed = _parse_png(_read_png_bytes(p))
    if parsed is not None:
        ids = _decode_ids(*parsed)
        if ids is not None:
            return ids
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


def runs_of_map(ids: np.ndarray) -> IdRuns:
    """:class:`IdRuns` of an ``(H, W)`` id map (a compare and a scan in OpenCV, no Python loop)."""
    m = np.asarray(ids)
    h, w = m.shape
    if m.dtype == np.int32:
        v = m
    elif m.size == 0 or (int(m.min()) >= 0 and int(m.max()) <= _MAX_ID):
        v = m.astype(np.int32)
    else:  # ids beyond 24 bits: plain numpy
        flat = m.reshape(-1)
        change = np.r_[True, flat[1:] != flat[:-1]]
        change[::w] = True
        starts = np.flatnonzero(change)
        return IdRuns((h, w), starts, flat[starts].astype(np.int64))
    rows = np.arange(h, dtype=np.int64) * w
    if w > 1:
        ne = cv2.compare(v[:, 1:], v[:, :-1], cv2.CMP_NE)
        nz = cv2.findNonZero(ne)
    else:
        nz = None
    if nz is None:
        starts = rows
    else:
        xy = nz.reshape(-1, 2).astype(np.int64)
        change = xy[:, 1] * w + xy[:, 0] + 1  # sorted, never a row start
        starts = np.insert(change, np.searchsorted(change, rows), rows)
    return IdRuns((h, w), starts, v.reshape(-1)[starts].astype(np.int64))


def read_panoptic_runs(path: str | os.PathLike[str]) -> IdRuns | None:
    """The id map of a COCO panoptic PNG as :class:`IdRuns`, or None when no fast path applies
    (then use :func:`read_panoptic_png`, which names any problem).

    Why: PQ only needs how many pixels each (ground truth, prediction) pair shares, and a
    panoptic map is piecewise constant. Two paths, both for 8-bit RGB, non-interlaced PNGs with
    zlib-ng installed (it inflates 3-6x faster than the zlib inside libpng and libspng, which is
    most of their decode time):

    * rows all filtered "None" or "Sub" (what OpenCV writes, ours included): with "Sub", a
      filtered byte is the change from the pixel to the left, so only the non-zero bytes (about
      1%) say where an id changes, and each channel's value at a change is a running sum of them
      along its row; no pixel is decoded;
    * adaptive filters (PIL, panopticapi's converters, libpng's default: "Up", "Paeth" ... rows):
      :func:`_decode_ids`, then :func:`runs_of_map`.

    Chunk CRCs are checked (libpng refuses a corrupted critical chunk, so this must not score
    it); a missing file raises as :func:`read_panoptic_png` does. Maps with more changes than a
    quarter of their bytes (noise, not segments) return None: per-pixel counting is cheaper.
    """
    got = _read_fast(path)
    if got is None or isinstance(got, IdRuns):
        return got
    runs = runs_of_map(got)
    return None if len(runs.starts) > got.size // 4 and got.size > 1 << 14 else runs


def read_panoptic_ids(path: str | os.PathLike[str]) -> IdRuns | np.ndarray:
    """The id map of a COCO panoptic PNG in its cheapest exact form: :class:`IdRuns` when the
    rows are "None"/"Sub" filtered (OpenCV's files: no pixel is decoded), else the ``(H, W)``
    int32 map (:func:`read_panoptic_png`; errors as it raises them)."""
    got = _read_fast(path)
    return got if got is not None else read_panoptic_png(path)


def _read_fast(path: str | os.PathLike[str]) -> IdRuns | np.ndarray | None:
    """Runs of a None/Sub-filtered 8-bit RGB PNG, the int32 map of another one, or None when
    neither fast path applies (see :func:`read_panoptic_runs`)."""
    parsed = _parse_png(_read_png_bytes(Path(path)))
    if parsed is None:
        return None
    header, idat = parsed
    w, h = header[0], header[1]
    stride = 3 * w + 1
    raw = _inflate(idat, h * stride)
    if raw is None:
        return None
    a = np.frombuffer(raw, np.uint8).reshape(h, stride)
    if int(a[:, 0].max()) <= 1:
        return _runs_none_sub(a, h, w)
    return _unfilter(header, raw)


def _runs_none_sub(a: np.ndarray, h: int, w: int) -> IdRuns | None:
    """Runs of inflated rows filtered None (0) or Sub (1): ``a`` is ``(H, 3W + 1)`` with the
    filter byte first. See :func:`read_panoptic_runs`."""
    stride = 3 * w + 1
    none_rows = np.flatnonzero(a[:, 0] == 0)
    if len(none_rows):  # "None" rows hold values: turn them into "Sub" differences
        a = a.copy()
        vals = a[none_rows, 1:]
        a[none_rows, 4:] = vals[:, 3:] - vals[:, :-3]
    body = a[:, 1:]
    nz = cv2.findNonZero(body)  # row-major (x, y) of the non-zero filtered bytes
    rows = np.arange(h, dtype=np.int64) * w
    if nz is None:
        return IdRuns((h, w), rows, np.zeros(h, np.int64))
    if len(nz) > body.size // 4 and body.size > 1 << 16:
        return None  # noise, not segments: per-pixel decoding and counting are cheaper
    xy = nz.reshape(-1, 2)
    px = xy[:, 1].astype(np.int64) * w + xy[:, 0] // 3  # sorted
    change = px[np.r_[True, px[1:] != px[:-1]]]  # pixels where any channel changes
    starts = np.insert(change, np.searchsorted(change, rows), rows)  # a merge of two sorted lists
    starts = starts[np.r_[True, starts[1:] != starts[:-1]]]
    # Each channel's value at a start is the running sum (mod 256) of its changes along the row;
    # between starts nothing changes, so the sums of the bytes at the starts are enough.
    y = starts // w
    base = y * stride + 1 + 3 * (starts - y * w)
    flat = a.reshape(-1)
    diffs = np.stack([flat[base], flat[base + 1], flat[base + 2]], axis=1)  # (K, 3) uint8
    total = np.cumsum(diffs, axis=0, dtype=np.uint8)  # wraps mod 256, as PNG arithmetic does
    first = np.searchsorted(starts, rows)  # each row's first start (rows are all starts)
    before = total[first] - diffs[first]  # the sum over earlier rows
    vals = (total - np.repeat(before, np.diff(first, append=len(starts)), axis=0)).astype(np.int64)
    return IdRuns((h, w), starts, vals[:, 0] | vals[:, 1] << 8 | vals[:, 2] << 16)


def _parse_png(data: bytes) -> tuple[tuple[int, ...], bytes] | None:
    """``(IHDR fields, IDAT bytes)`` of an 8-bit RGB, non-interlaced PNG whose chunk CRCs all
    match, when zlib-ng is installed; else None (libpng then reads or refuses the file)."""
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
    return header, b"".join(parts)


def _inflate(idat: bytes, size: int) -> bytes | None:
    """The inflated IDAT stream when it holds exactly ``size`` bytes, else None."""
    try:
        raw = _inflate_fast(idat)
    except _INFLATE_ERRORS:
        return None
    return raw if len(raw) == size else None


def _decode_ids(header: tuple[int, ...], idat: bytes) -> np.ndarray | None:
    """The ``(H, W)`` int32 id map of a parsed 8-bit RGB PNG, or None (then libpng decides)."""
    w, h = header[0], header[1]
    raw = _inflate(idat, h * (3 * w + 1))
    return None if raw is None else _unfilter(header, raw)


def _unfilter(header: tuple[int, ...], raw: bytes) -> np.ndarray | None:
    """Undo the row filters of inflated 8-bit RGB rows into int32 ids, in C.

    Why this way: a PNG decoder spends most of its time inflating with plain zlib, and undoing
    "Paeth" rows cannot be vectorised in numpy. So zlib-ng inflates (above), and libspng undoes
    the filters of the same rows re-wrapped as a PNG whose deflate stream is "stored" (copied,
    not compressed): its inflate is then a copy. Without pyspng, or for rows libspng refuses,
    None.
    """
    if _spng is None or sys.byteorder != "little":
        return None
    w, h = header[0], header[1]
    try:
        rgb = _spng.load(_stored_png(header, raw), "RGB")
    except Exception:  # noqa: BLE001 - any refusal: libpng reads the original and names it
        return None
    if rgb.shape != (h, w, 3) or rgb.dtype != np.uint8:
        return None
    ids = cv2.cvtColor(rgb, cv2.COLOR_RGB2RGBA).view(np.int32)[..., 0]
    np.bitwise_and(ids, 0xFFFFFF, out=ids)
    return ids


_STORED_BLOCK = 65535  # the largest "stored" deflate block


def _stored_png(header: tuple[int, ...], raw: bytes) -> bytes:
    """A PNG of the inflated rows ``raw`` whose zlib stream stores them uncompressed: one copy of
    ``raw`` in 64 KiB blocks, the checksums computed by zlib-ng."""
    view = memoryview(raw)
    n = len(raw)
    parts: list[bytes | memoryview] = [b"\x78\x01"]
    for pos in range(0, n, _STORED_BLOCK):
        size = min(_STORED_BLOCK, n - pos)
        parts.append(struct.pack("<BHH", pos + size >= n, size, size ^ 0xFFFF))
        parts.append(view[pos:pos + size])
    if not n:
        parts.append(b"\x01\x00\x00\xff\xff")
    parts.append(struct.pack(">I", _adler32(raw)))
    crc = _crc32(b"IDAT")
    for part in parts:
        crc = _crc32(part, crc)
    length = sum(len(part) for part in parts)
    return b"".join([_PNG_SIGNATURE, _chunk(b"IHDR", struct.pack(">IIBBBBB", *header)),
                     struct.pack(">I4s", length, b"IDAT"), *parts, struct.pack(">I", crc),
                     _chunk(b"IEND", b"")])


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", _crc32(body, _crc32(kind)))


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
try:  # optional: without zlib-ng these paths would be no faster than libpng, so they are skipped
    from zlib_ng import zlib_ng as _zlib_ng

    _inflate_fast: Any = _zlib_ng.decompress
    _crc32: Any = _zlib_ng.crc32
    _adler32: Any = _zlib_ng.adler32
    _INFLATE_ERRORS: tuple[type[Exception], ...] = (zlib.error, _zlib_ng.error, ValueError, MemoryError)
except ImportError:  # pragma: no cover - depends on the environment
    _zlib_ng = None
    _inflate_fast = None
    _crc32 = zlib.crc32
    _adler32 = zlib.adler32
    _INFLATE_ERRORS = (zlib.error, ValueError, MemoryError)
try:  # optional: libspng undoes adaptive row filters (PIL's files); without it libpng does
    import pyspng as _spng
except ImportError:  # pragma: no cover - depends on the environment
    _spng = None


_MALLOC_KEPT = False


def keep_freed_memory() -> None:
    """Ask glibc, once per process, to keep freed memory for reuse instead of returning it.

    Why: reading a folder of panoptic PNGs allocates and frees a few 1-10 MB buffers per image
    (the inflated rows, the decoded map). With glibc's defaults those pages go back to the
    system after each image and are faulted in, zeroed, again for the next: 25-45% of the
    decode time in a fresh process, and twice that in a second thread's arena. With this,
    blocks under 32 MiB come from the heap and up to 64 MiB of free heap is kept. A no-op
    where the C library has no ``mallopt`` (not glibc). For batch jobs (``pq_compute``).
    """
    global _MALLOC_KEPT
    if _MALLOC_KEPT:
        return
    _MALLOC_KEPT = True
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # pragma: no cover - not glibc
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    mallopt(m_mmap_threshold, 32 << 20)
    mallopt(m_trim_threshold, 64 << 20)


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
