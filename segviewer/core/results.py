"""Result types: one frozen, validated dataclass of numpy arrays per output kind.

Conventions that every producer and consumer follows (they bite when ignored):

* Images are RGB ``uint8`` arrays of shape ``(H, W, 3)``, row-major; BGR exists only inside
  the file readers and writers.
* Pixel coordinates are continuous: pixel ``(row, col)`` covers ``[col, col + 1) x [row, row + 1)``,
  so its centre is at ``(col + 0.5, row + 0.5)``. Boxes are ``xyxy`` in these coordinates,
  ``float32``, shape ``(N, 4)``.
* Class ids index into ``categories`` (a tuple of names). Detection models that reserve
  id 0 for background (torchvision's) keep ``categories[0] == "__background__"``.
* Masks are kept compact (:class:`MaskSet`): each instance is a boolean crop plus the integer
  offset of its top-left pixel, never N full-frame arrays.

Nothing here imports Qt or torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "MaskSet",
    "Detections",
    "SemanticMap",
    "PanopticSegment",
    "PanopticMap",
    "FlowField",
    "Result",
    "ResultError",
]


class ResultError(ValueError):
    """A result array has the wrong shape, dtype or range; the message names which."""


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ResultError(msg)


def _as(arr: object, dtype: type, name: str, ndim: int | None = None) -> np.ndarray:
    a = np.ascontiguousarray(np.asarray(arr), dtype=dtype)
    if ndim is not None:
        _check(a.ndim == ndim, f"{name} must have {ndim} dimensions, got shape {a.shape}")
    return a


def _logit_array(arr: object, name: str) -> np.ndarray:
    """A 3-D float16/float32 array (other floats become float32) without NaN."""
    a = np.asarray(arr)
    _check(a.ndim == 3, f"{name} must have 3 dimensions, got shape {a.shape}")
    _check(np.issubdtype(a.dtype, np.floating), f"{name} must be floating point, got {a.dtype}")
    a = np.ascontiguousarray(a, dtype=a.dtype if a.dtype in (np.float16, np.float32) else np.float32)
    _check(not bool(np.isnan(a).any()), f"{name} contain NaN")
    return a


def _frozen(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class MaskSet:
    """N instance masks of an ``(H, W)`` image, each stored as a boolean crop.

    ``offsets[i] = (x0, y0)`` is the integer pixel at which ``crops[i][0, 0]`` sits. A crop may be
    empty (shape ``(0, 0)``) for an instance whose mask vanished after thresholding.
    """

    image_size: tuple[int, int]
    crops: tuple[np.ndarray, ...]
    offsets: np.ndarray  # (N, 2) int32, (x0, y0)

    def __post_init__(self) -> None:
        h, w = (int(v) for v in self.image_size)
        _check(h > 0 and w > 0, f"image_size must be positive, got {self.image_size}")
        object.__setattr__(self, "image_size", (h, w))
        crops = tuple(_frozen(_as(c, bool, f"crops[{i}]", 2)) for i, c in enumerate(self.crops))
        object.__setattr__(self, "crops", crops)
        off = _as(self.offsets, np.int32, "offsets").reshape(-1, 2)
        _check(len(off) == len(crops), f"{len(crops)} crops but {len(off)} offsets")
        for i, (c, (x0, y0)) in enumerate(zip(crops, off)):
            ch, cw = c.shape
            _check(
                ch == 0 or (x0 >= 0 and y0 >= 0 and x0 + cw <= w and y0 + ch <= h),
                f"mask {i} at ({x0}, {y0}) size {cw}x{ch} leaves the {w}x{h} image",
            )
        object.__setattr__(self, "offsets", _frozen(off))

    def __len__(self) -> int:
        return len(self.crops)

    def crop_boxes(self) -> np.ndarray:
        """``(N, 4)`` float32 xyxy of each crop's extent (zeros for an empty crop): a box for
        models that give masks only (SAM 2, Mask2Former's instances)."""
        out = np.zeros((len(self.crops), 4), np.float32)
        for i, c in enumerate(self.crops):
            if c.size:
                x0, y0 = self.offsets[i]
                out[i] = (x0, y0, x0 + c.shape[1], y0 + c.shape[0])
        return out

    @classmethod
    def from_full(cls, masks: np.ndarray | Sequence[np.ndarray]) -> MaskSet:
        """Compact ``(N, H, W)`` masks (bool, or any dtype: non-zero is inside) by cropping each
        to its tight bounding box.

        Why this way: N full-frame masks are N x H x W bytes (100 MB for 50 masks at 1080p), so
        the cost is reading them (the floor: ~7.5 ms for those 100 MB on a 2-core x86, more than
        rendering them). Mask by mask, so that what is read twice comes from the cache: its rows
        are found from 8-byte words (one vectorised OR per row), its columns from the words of
        those rows only, then refined in the two edge words; crops are copied, so later writes to
        ``masks`` do not reach them.
        """
        m = np.asarray(masks)
        _check(m.ndim == 3, f"full masks must be (N, H, W), got {m.shape}")
        n, h, w = m.shape
        if m.dtype != bool:
            m = m != 0
        b = np.ascontiguousarray(m).view(np.uint8)
        word = 8 if w % 8 == 0 else 4 if w % 4 == 0 else 2 if w % 2 == 0 else 1
        wtype = f"u{word}"
        crops, offs = [], []
        for i in range(n):  # one mask at a time: its band and crop are read again from the cache
            mi = b[i]
            rows = np.flatnonzero(np.bitwise_or.reduce(mi.view(wtype), axis=1)) if h and w else ()
            if len(rows) == 0:
                crops.append(np.zeros((0, 0), bool))
                offs.append((0, 0))
                continue
            y0, y1 = int(rows[0]), int(rows[-1]) + 1
            band = mi[y0:y1]
            words = np.flatnonzero(np.bitwise_or.reduce(band.view(wtype), axis=0))  # columns, a word at a time
            lo, hi = int(words[0]) * word, int(words[-1]) * word
            x0 = lo + int(np.flatnonzero(band[:, lo:lo + word].max(axis=0))[0])
            x1 = hi + int(np.flatnonzero(band[:, hi:hi + word].max(axis=0))[-1]) + 1
            crops.append(band[:, x0:x1].view(bool).copy())
            offs.append((x0, y0))
        return cls((h, w), tuple(crops), np.array(offs, np.int32).reshape(-1, 2))

    def full(self, i: int) -> np.ndarray:
        """Instance ``i`` as a full-frame boolean mask (allocates H x W; use sparingly)."""
        out = np.zeros(self.image_size, bool)
        c = self.crops[i]
        if c.size:
            x0, y0 = self.offsets[i]
            out[y0 : y0 + c.shape[0], x0 : x0 + c.shape[1]] = c
        return out

    def to_full(self) -> np.ndarray:
        """All masks as ``(N, H, W)`` bool; for tests and interop, not for rendering."""
        return np.stack([self.full(i) for i in range(len(self))]) if len(self) else np.zeros(
            (0, *self.image_size), bool
        )

    def areas(self) -> np.ndarray:
        return np.array([int(c.sum()) for c in self.crops], np.int64)

    def contains(self, i: int, x: float, y: float) -> bool:
        """Whether image point (x, y) (continuous coordinates) falls inside mask ``i``."""
        c = self.crops[i]
        if not c.size:
            return False
        col, row = int(np.floor(x)) - int(self.offsets[i][0]), int(np.floor(y)) - int(self.offsets[i][1])
        return 0 <= row < c.shape[0] and 0 <= col < c.shape[1] and bool(c[row, col])

    def select(self, keep: np.ndarray) -> MaskSet:
        idx = np.flatnonzero(keep) if np.asarray(keep).dtype == bool else np.asarray(keep, np.int64)
        return MaskSet(self.image_size, tuple(self.crops[i] for i in idx), self.offsets[idx])

    def nbytes(self) -> int:
        return int(sum(c.nbytes for c in self.crops) + self.offsets.nbytes)


@dataclass(frozen=True, eq=False)
class Detections:
    """Boxes with scores and classes, optionally instance masks and keypoints.

    ``keypoints`` is ``(N, K, 3)`` float32 of ``(x, y, score)``; ``keypoint_names`` and
    ``skeleton`` (pairs of keypoint indices) describe them. ``instance_ids`` (``(N,)`` int64) is
    an identity that outlives one frame (a video track id): it picks each instance's color jitter,
    so an object keeps its color while it moves; without it the index in this result does.

    ``mask_logits`` (optional) is ``(N, M, M)`` float16 or float32: each detection's raw mask-head
    logits (before the sigmoid, the channel of its own class) over its box, as Mask R-CNN predicts
    them (M = 28). UPSNet's panoptic head needs them; the thresholded ``masks`` cannot give them
    back. Kept at M x M (1.5 kB per detection in float16), pasted into the box only when used.
    """

    image_size: tuple[int, int]
    boxes: np.ndarray  # (N, 4) float32 xyxy
    scores: np.ndarray  # (N,) float32
    class_ids: np.ndarray  # (N,) int32, index into categories
    categories: tuple[str, ...]
    masks: MaskSet | None = None
    keypoints: np.ndarray | None = None
    keypoint_names: tuple[str, ...] = ()
    skeleton: tuple[tuple[int, int], ...] = ()
    instance_ids: np.ndarray | None = None
    mask_logits: np.ndarray | None = None

    def __post_init__(self) -> None:
        h, w = (int(v) for v in self.image_size)
        _check(h > 0 and w > 0, f"image_size must be positive, got {self.image_size}")
        object.__setattr__(self, "image_size", (h, w))
        boxes = _as(self.boxes, np.float32, "boxes").reshape(-1, 4)
        n = len(boxes)
        scores = _as(self.scores, np.float32, "scores", 1)
        cls = _as(self.class_ids, np.int32, "class_ids", 1)
        _check(len(scores) == n and len(cls) == n, f"{n} boxes, {len(scores)} scores, {len(cls)} class ids")
        _check(bool(np.all(np.isfinite(boxes))), "boxes contain NaN or infinity")
        _check(bool(np.all(boxes[:, 2] >= boxes[:, 0]) and np.all(boxes[:, 3] >= boxes[:, 1])),
               "boxes must be xyxy with x1 >= x0 and y1 >= y0")
        object.__setattr__(self, "categories", tuple(str(c) for c in self.categories))
        _check(n == 0 or (cls.min() >= 0 and cls.max() < len(self.categories)),
               f"class ids must lie in [0, {len(self.categories)}), got {cls.min() if n else ''}..{cls.max() if n else ''}")
        if self.masks is not None:
            _check(isinstance(self.masks, MaskSet), "masks must be a MaskSet (see MaskSet.from_full)")
            _check(len(self.masks) == n, f"{n} boxes but {len(self.masks)} masks")
            _check(self.masks.image_size == (h, w), f"masks are {self.masks.image_size}, image is {(h, w)}")
        if self.keypoints is not None:
            kp = _as(self.keypoints, np.float32, "keypoints", 3)
            _check(kp.shape[0] == n and kp.shape[2] == 3, f"keypoints must be (N={n}, K, 3), got {kp.shape}")
            object.__setattr__(self, "keypoints", _frozen(kp))
        if self.instance_ids is not None:
            ids = _as(self.instance_ids, np.int64, "instance_ids", 1)
            _check(len(ids) == n, f"{n} boxes but {len(ids)} instance ids")
            object.__setattr__(self, "instance_ids", _frozen(ids))
        if self.mask_logits is not None:
            ml = _logit_array(self.mask_logits, "mask_logits")
            _check(ml.shape[0] == n and ml.shape[1] == ml.shape[2] and ml.shape[1] > 0,
                   f"mask_logits must be (N={n}, M, M), got {ml.shape}")
            object.__setattr__(self, "mask_logits", _frozen(ml))
        object.__setattr__(self, "boxes", _frozen(boxes))
        object.__setattr__(self, "scores", _frozen(scores))
        object.__setattr__(self, "class_ids", _frozen(cls))
        object.__setattr__(self, "keypoint_names", tuple(self.keypoint_names))
        object.__setattr__(self, "skeleton", tuple((int(a), int(b)) for a, b in self.skeleton))

    def __len__(self) -> int:
        return len(self.boxes)

    @property
    def names(self) -> tuple[str, ...]:
        """The class name of each detection."""
        return tuple(self.categories[int(c)] for c in self.class_ids)

    def select(self, keep: np.ndarray) -> Detections:
        """A subset (boolean mask or indices), e.g. above a score threshold or of some classes."""
        keep = np.asarray(keep)
        idx = np.flatnonzero(keep) if keep.dtype == bool else keep.astype(np.int64)
        return Detections(
            self.image_size, self.boxes[idx], self.scores[idx], self.class_ids[idx], self.categories,
            masks=None if self.masks is None else self.masks.select(idx),
            keypoints=None if self.keypoints is None else self.keypoints[idx],
            keypoint_names=self.keypoint_names, skeleton=self.skeleton,
            instance_ids=None if self.instance_ids is None else self.instance_ids[idx],
            mask_logits=None if self.mask_logits is None else self.mask_logits[idx],
        )

    def above(self, score_thresh: float) -> Detections:
        return self.select(self.scores >= score_thresh)

    def nbytes(self) -> int:
        n = self.boxes.nbytes + self.scores.nbytes + self.class_ids.nbytes
        n += 0 if self.masks is None else self.masks.nbytes()
        n += 0 if self.keypoints is None else self.keypoints.nbytes
        n += 0 if self.instance_ids is None else self.instance_ids.nbytes
        n += 0 if self.mask_logits is None else self.mask_logits.nbytes
        return int(n)


@dataclass(frozen=True, eq=False)
class SemanticMap:
    """A class id per pixel, optionally the per-class probabilities behind it.

    ``probs`` is ``(C, h, w)`` float32 and may be at the model's own resolution (smaller than
    ``labels``); :meth:`prob_at` maps image coordinates onto it. ``ignore_index`` marks void.

    ``logits`` (optional) is ``(C, h, w)`` float16 or float32: the raw class scores before the
    softmax, for UPSNet's panoptic head (probabilities lose the scale it adds mask logits to).
    Like ``probs`` it covers the whole image at its own, usually smaller, resolution (pixel
    ``(i, j)`` spans ``H / h`` x ``W / w`` image pixels); :meth:`logits_at_image_size` upsamples it.
    """

    labels: np.ndarray  # (H, W) integer class ids
    categories: tuple[str, ...]
    probs: np.ndarray | None = None
    ignore_index: int | None = None
    logits: np.ndarray | None = None

    def __post_init__(self) -> None:
        lab = np.asarray(self.labels)
        _check(lab.ndim == 2 and lab.size > 0, f"labels must be a non-empty (H, W) array, got {lab.shape}")
        _check(np.issubdtype(lab.dtype, np.integer), f"labels must be integers, got {lab.dtype}")
        cats = tuple(str(c) for c in self.categories)
        object.__setattr__(self, "categories", cats)
        dtype = np.uint8 if len(cats) <= 255 and (self.ignore_index is None or self.ignore_index <= 255) else np.int32
        lab = np.ascontiguousarray(lab, dtype=dtype)
        valid = lab if self.ignore_index is None else lab[lab != self.ignore_index]
        _check(valid.size == 0 or (int(valid.min()) >= 0 and int(valid.max()) < len(cats)),
               f"labels must lie in [0, {len(cats)}) or be the ignore index")
        object.__setattr__(self, "labels", _frozen(lab))
        if self.probs is not None:
            p = _as(self.probs, np.float32, "probs", 3)
            _check(p.shape[0] == len(cats), f"probs has {p.shape[0]} channels for {len(cats)} categories")
            object.__setattr__(self, "probs", _frozen(p))
        if self.logits is not None:
            lg = _logit_array(self.logits, "logits")
            _check(lg.shape[0] == len(cats) and lg.shape[1] > 0 and lg.shape[2] > 0,
                   f"logits must be (C={len(cats)}, h, w), got {lg.shape}")
            object.__setattr__(self, "logits", _frozen(lg))

    @property
    def image_size(self) -> tuple[int, int]:
        return (int(self.labels.shape[0]), int(self.labels.shape[1]))

    def logits_at_image_size(self, channels: Sequence[int] | None = None) -> np.ndarray | None:
        """``(len(channels), H, W)`` float32 logits bilinearly upsampled (half-pixel centres) to the
        image, or None when the model gave none. Allocates C x H x W floats: pick the channels."""
        if self.logits is None:
            return None
        import cv2

        h, w = self.image_size
        chans = range(self.logits.shape[0]) if channels is None else channels
        out = np.empty((len(chans), h, w), np.float32)
        for k, c in enumerate(chans):
            plane = np.asarray(self.logits[int(c)], np.float32)
            out[k] = plane if plane.shape == (h, w) else cv2.resize(plane, (w, h), interpolation=cv2.INTER_LINEAR)
        return out

    def prob_at(self, x: float, y: float) -> np.ndarray | None:
        """Class probabilities at image point (x, y), or None when the model gave none."""
        if self.probs is None:
            return None
        h, w = self.image_size
        ph, pw = self.probs.shape[1:]
        r = min(max(int(y * ph / h), 0), ph - 1)
        c = min(max(int(x * pw / w), 0), pw - 1)
        return self.probs[:, r, c]

    def counts(self) -> np.ndarray:
        """Pixels per class (the ignore label excluded)."""
        lab = self.labels.ravel()
        if self.ignore_index is not None:
            lab = lab[lab != self.ignore_index]
        return np.bincount(lab, minlength=len(self.categories))[: len(self.categories)]

    def nbytes(self) -> int:
        return int(self.labels.nbytes + (0 if self.probs is None else self.probs.nbytes)
                   + (0 if self.logits is None else self.logits.nbytes))


@dataclass(frozen=True)
class PanopticSegment:
    """One segment of a panoptic map, as in COCO panoptic's ``segments_info``."""

    id: int
    category_id: int  # index into PanopticMap.categories
    isthing: bool
    area: int
    score: float = 1.0
    iscrowd: bool = False


@dataclass(frozen=True, eq=False)
class PanopticMap:
    """A segment id per pixel (0 = void) and one :class:`PanopticSegment` per id."""

    segment_ids: np.ndarray  # (H, W) int32
    segments: tuple[PanopticSegment, ...]
    categories: tuple[str, ...]
    isthing: tuple[bool, ...] = field(default=())

    def __post_init__(self) -> None:
        ids = _as(self.segment_ids, np.int32, "segment_ids", 2)
        cats = tuple(str(c) for c in self.categories)
        object.__setattr__(self, "categories", cats)
        segs = tuple(self.segments)
        seen = [s.id for s in segs]
        _check(len(set(seen)) == len(seen), "segment ids must be unique")
        _check(0 not in seen, "segment id 0 is reserved for void")
        for s in segs:
            _check(0 <= s.category_id < len(cats), f"segment {s.id} has unknown category {s.category_id}")
        present = np.unique(ids)
        missing = set(present.tolist()) - set(seen) - {0}
        _check(not missing, f"segment ids {sorted(missing)[:5]} appear in the map but have no segment info")
        object.__setattr__(self, "segment_ids", _frozen(ids))
        object.__setattr__(self, "segments", segs)
        object.__setattr__(self, "isthing", tuple(bool(t) for t in self.isthing))

    @property
    def image_size(self) -> tuple[int, int]:
        return (int(self.segment_ids.shape[0]), int(self.segment_ids.shape[1]))

    def segment(self, seg_id: int) -> PanopticSegment | None:
        for s in self.segments:
            if s.id == seg_id:
                return s
        return None

    def nbytes(self) -> int:
        return int(self.segment_ids.nbytes)


@dataclass(frozen=True, eq=False)
class FlowField:
    """Optical flow ``(H, W, 2)`` float32 of ``(u, v)`` pixel displacements, frame t -> t + 1."""

    uv: np.ndarray

    def __post_init__(self) -> None:
        uv = _as(self.uv, np.float32, "uv", 3)
        _check(uv.shape[2] == 2, f"flow must be (H, W, 2), got {uv.shape}")
        object.__setattr__(self, "uv", _frozen(uv))

    @property
    def image_size(self) -> tuple[int, int]:
        return (int(self.uv.shape[0]), int(self.uv.shape[1]))

    def nbytes(self) -> int:
        return int(self.uv.nbytes)


# Later issues add VoteMap and RoIGrid here; every result type has image_size and nbytes().
Result = Detections | SemanticMap | PanopticMap | FlowField
