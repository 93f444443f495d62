"""Set prediction made visible: what DETR, RT-DETR, Mask2Former and OneFormer computed for *all*
their object queries in one pass, and the pure functions a view draws from it.

A set-prediction model has no proposals or NMS: it predicts a fixed number of queries, each with a
class distribution (DETR and Mask2Former include a "no object" class; RT-DETR scores every class
with its own sigmoid) and a box or a mask, then keeps the confident ones. :class:`QueryInternals`
holds every query's prediction before that selection, the last decoder layer's cross-attention of
every query over the image, and which query each kept detection or segment came from.

Attention comes in two shapes:

* dense (DETR, Mask2Former, OneFormer): ``attention`` is ``(Q, heads, fh, fw)`` over the feature map
  the last decoder layer attends to, cropped to the part that covers the image (no padding);
* deformable (RT-DETR): each query samples a few points per head and level; ``sampling`` holds
  their locations (normalised ``[0, 1]`` over the image) and weights, and :func:`splat_points`
  draws them as a map.

Coordinates: boxes are xyxy in the input image's pixels; maps cover the whole image.
numpy (and OpenCV for resizing) only.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = [
    "DeformableSampling",
    "MergeTrace",
    "QueryInternals",
    "class_distribution",
    "splat_points",
    "resize_map",
    "match_segments",
    "FATE_NAMES",
]

NO_OBJECT, BELOW_THRESHOLD, DROPPED_OVERLAP, KEPT = 0, 1, 2, 3
FATE_NAMES = ("no object", "below the score threshold", "lost to overlapping queries", "kept")


def _softmax(x: np.ndarray) -> np.ndarray:
    z = x - x.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def class_distribution(logits: np.ndarray, no_object: bool) -> np.ndarray:
    """Class probabilities of query logits ``(..., K)``: a softmax over the classes and "no object"
    (last column) when ``no_object``, else one sigmoid per class (RT-DETR's focal-loss scores)."""
    x = np.asarray(logits, np.float64)
    p = _softmax(x) if no_object else 1.0 / (1.0 + np.exp(-x))
    return p.astype(np.float32)


def resize_map(plane: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """A float map bilinearly resized (half-pixel centres) to ``size_hw``."""
    h, w = size_hw
    p = np.ascontiguousarray(plane, np.float32)
    return p if p.shape == (h, w) else cv2.resize(p, (w, h), interpolation=cv2.INTER_LINEAR)


def splat_points(xy: np.ndarray, weights: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """Deformable attention as a map: each sampling point ``xy`` (normalised ``[0, 1]``, x then y)
    adds its weight to the four pixels around it (bilinear, as the sampling itself reads them).

    Points outside the image add nothing (deformable attention reads zeros there). Returns an
    ``(h, w)`` float32 map whose sum is the weight that fell inside.
    """
    h, w = size_hw
    pts = np.asarray(xy, np.float64).reshape(-1, 2)
    wts = np.asarray(weights, np.float64).reshape(-1)
    out = np.zeros(h * w, np.float64)
    x = pts[:, 0] * w - 0.5  # grid_sample(align_corners=False): pixel centres at (i + 0.5) / w
    y = pts[:, 1] * h - 0.5
    x0, y0 = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    fx, fy = x - x0, y - y0
    for dx, dy, f in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        xi, yi = x0 + dx, y0 + dy
        ok = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
        np.add.at(out, yi[ok] * w + xi[ok], (wts * f)[ok])
    return out.reshape(h, w).astype(np.float32)


@dataclass(frozen=True, eq=False)
class DeformableSampling:
    """Where the last decoder layer's deformable cross-attention looked, for every query.

    ``locations`` ``(Q, heads, levels, points, 2)`` float32, x and y normalised over the image;
    ``weights`` ``(Q, heads, levels, points)`` float32 (they sum to 1 per query and head);
    ``level_shapes`` the ``(h, w)`` of each feature level.
    """

    locations: np.ndarray
    weights: np.ndarray
    level_shapes: tuple[tuple[int, int], ...]

    def nbytes(self) -> int:
        return int(self.locations.nbytes + self.weights.nbytes)


@dataclass(frozen=True, eq=False)
class MergeTrace:
    """Mask2Former-style panoptic inference, query by query: ``fate[q]`` is one of
    :data:`FATE_NAMES` (by index) and ``segment_id[q]`` the segment a kept query became (0 otherwise;
    fused stuff queries share one id)."""

    fate: np.ndarray  # (Q,) int8
    segment_id: np.ndarray  # (Q,) int32
    threshold: float
    overlap_threshold: float

    def describe(self, q: int) -> str:
        fate = FATE_NAMES[int(self.fate[q])]
        return f"{fate} (segment {int(self.segment_id[q])})" if self.fate[q] == KEPT else fate


def match_segments(query_labels: np.ndarray, query_scores: np.ndarray, kept: np.ndarray,
                   segments: list[tuple[int, int, float]], tol: float = 2e-6) -> np.ndarray:
    """Which segment each query became, from a merge that reports segments but not their queries.

    transformers' ``compute_segments`` walks the kept queries in order and appends a segment
    ``(id, label, score rounded to 6 decimals)`` for each one that survives the overlap test, so the
    segments are a subsequence of the kept queries: matched greedily, in order (scores within
    ``tol``: the rounding and float32 arithmetic differ from ours). Returns ``(Q,)``
    int32 segment ids, 0 for queries that became none.
    """
    out = np.zeros(len(query_labels), np.int32)
    order = np.flatnonzero(kept)
    j = 0
    for q in order:
        if j >= len(segments):
            break
        sid, label, score = segments[j]
        if int(query_labels[q]) == int(label) and abs(float(query_scores[q]) - float(score)) <= tol:
            out[q] = int(sid)
            j += 1
    if j != len(segments):
        raise ValueError(f"{len(segments) - j} of {len(segments)} segments match no kept query in order")
    return out


@dataclass(frozen=True, eq=False)
class QueryInternals:
    """Every query of one pass of a set-prediction model (see the module docstring).

    ``selected[i]`` is the query behind item ``i`` of the result (detection ``i``; for a panoptic
    map, ``merge.segment_id`` says which queries made which segment). ``input_size`` is the
    ``(h, w)`` the image was resized to before the network (padding excluded).
    """

    family: str
    image_size: tuple[int, int]
    input_size: tuple[int, int]
    categories: tuple[str, ...]
    class_logits: np.ndarray  # (Q, K) float32; K = classes (+ 1 "no object" when no_object)
    no_object: bool
    selected: np.ndarray  # (N,) int64
    boxes: np.ndarray | None = None  # (Q, 4) float32 xyxy, image pixels
    mask_logits: np.ndarray | None = None  # (Q, mh, mw) float16 over the image
    attention: np.ndarray | None = None  # (Q, heads, fh, fw) float16 over the image
    sampling: DeformableSampling | None = None
    layer: int = -1
    merge: MergeTrace | None = None

    @property
    def num_queries(self) -> int:
        return int(self.class_logits.shape[0])

    def class_names(self) -> tuple[str, ...]:
        """Names of the columns of :meth:`distribution` (``"no object"`` last where the model has it)."""
        return (*self.categories, "no object") if self.no_object else self.categories

    def distribution(self, q: int) -> np.ndarray:
        """Query ``q``'s class probabilities, "no object" included where the model has it."""
        return class_distribution(self.class_logits[q], self.no_object)

    def scores(self) -> tuple[np.ndarray, np.ndarray]:
        """Each query's best real class and its probability (``(Q,)`` int64, ``(Q,)`` float32)."""
        p = class_distribution(self.class_logits, self.no_object)
        if self.no_object:
            p = p[:, :-1]
        return p.argmax(axis=1).astype(np.int64), p.max(axis=1)

    def is_no_object(self) -> np.ndarray:
        """``(Q,)`` bool: queries whose most likely class is "no object" (all False without that class)."""
        if not self.no_object:
            return np.zeros(self.num_queries, bool)
        return self.class_logits.argmax(axis=1) == self.class_logits.shape[1] - 1

    def query_of(self, index: int) -> int:
        """The query behind result item ``index`` (a detection)."""
        return int(self.selected[index])

    def attention_map(self, q: int, head: int | None = None) -> np.ndarray:
        """Query ``q``'s cross-attention over the image at the image's size, float32 summing to 1
        (heads averaged unless ``head`` picks one)."""
        h, w = self.image_size
        if self.attention is not None:
            a = np.asarray(self.attention[q], np.float32)
            plane = a.mean(axis=0) if head is None else a[head]
            out = np.maximum(resize_map(plane, (h, w)), 0.0)
        elif self.sampling is not None:
            s = self.sampling
            loc, wt = s.locations[q], s.weights[q]  # (heads, levels, points, 2), (heads, levels, points)
            if head is not None:
                loc, wt = loc[head:head + 1], wt[head:head + 1]
            out = np.zeros((h, w), np.float32)
            for lvl, (lh, lw) in enumerate(s.level_shapes):  # each level reads its own grid: splat there
                grid = splat_points(loc[:, lvl], wt[:, lvl], (lh, lw))
                out += resize_map(grid, (h, w)) * np.float32(lh * lw / (h * w))
        else:
            raise ValueError(f"{self.family} captured no attention")
        total = float(out.sum())
        return out / total if total > 0 else out

    def heads(self) -> int:
        if self.attention is not None:
            return int(self.attention.shape[1])
        return int(self.sampling.weights.shape[1]) if self.sampling is not None else 0

    def mask_probs(self, q: int) -> np.ndarray:
        """Query ``q``'s mask probability over the image (sigmoid of its logits, image size)."""
        if self.mask_logits is None:
            raise ValueError(f"{self.family} predicts boxes, not masks")
        lg = resize_map(np.asarray(self.mask_logits[q], np.float32), self.image_size)
        return (1.0 / (1.0 + np.exp(-lg))).astype(np.float32)

    def nbytes(self) -> int:
        n = self.class_logits.nbytes + self.selected.nbytes
        for a in (self.boxes, self.mask_logits, self.attention):
            n += 0 if a is None else a.nbytes
        n += 0 if self.sampling is None else self.sampling.nbytes()
        return int(n)
