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
    "QUERY_KINDS",
    "query_fates",
    "query_at",
    "mask_outline_segments",
    "MergeComparison",
    "compare_merges",
]

#: capture kinds a set-prediction pass offers (the Internals dock's views declare which they draw)
QUERY_CLASSES, QUERY_ATTENTION, QUERY_BOXES, QUERY_MASKS, QUERY_MERGE = (
    "query_classes", "query_attention", "query_boxes", "query_masks", "query_merge")
QUERY_KINDS = (QUERY_CLASSES, QUERY_ATTENTION, QUERY_BOXES, QUERY_MASKS, QUERY_MERGE)

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
    def kinds(self) -> tuple[str, ...]:
        """The capture kinds this pass offers (see :data:`QUERY_KINDS`)."""
        have = (True, self.attention is not None or self.sampling is not None, self.boxes is not None,
                self.mask_logits is not None, self.merge is not None)
        return tuple(k for k, ok in zip(QUERY_KINDS, have) if ok)

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

    def attention_map(self, q: int, head: int | None = None, size_hw: tuple[int, int] | None = None) -> np.ndarray:
        """Query ``q``'s cross-attention over the image, float32 summing to 1 (heads averaged unless
        ``head`` picks one), at the image's size or ``size_hw`` (a display grid over the whole image)."""
        h, w = self.image_size if size_hw is None else size_hw
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


# ----------------------------------------------------------------------------- the selection step


def query_fates(it: QueryInternals) -> np.ndarray:
    """``(Q,)`` int8 fate of every query (indices of :data:`FATE_NAMES`): the traced panoptic merge
    where there is one; otherwise "no object" (its most likely class), "kept" (it is behind a
    result item) or "below the score threshold" (everything else the selection left out)."""
    if it.merge is not None:
        return np.asarray(it.merge.fate, np.int8)
    fate = np.full(it.num_queries, BELOW_THRESHOLD, np.int8)
    fate[it.is_no_object()] = NO_OBJECT
    fate[np.asarray(it.selected, np.int64)] = KEPT
    return fate


def _mask_cell(it: QueryInternals, x: float, y: float) -> tuple[int, int]:
    """The mask-logit cell under image point (x, y) (the logits cover the whole image)."""
    assert it.mask_logits is not None
    mh, mw = it.mask_logits.shape[-2:]
    h, w = it.image_size
    return min(max(int(y * mh / h), 0), mh - 1), min(max(int(x * mw / w), 0), mw - 1)


def query_at(it: QueryInternals, x: float, y: float) -> int | None:
    """The query a click at image point (x, y) means, or None.

    Boxes: the smallest kept box under the point, else the most confident real-class query whose
    box holds it. Masks: the kept query that wins the pixel in Mask2Former's own rule (class score
    x mask probability), else the most confident real-class query whose mask covers it.
    """
    fate = query_fates(it)
    labels, scores = it.scores()
    real = fate != NO_OBJECT
    if it.boxes is not None:
        b = it.boxes
        inside = (b[:, 0] <= x) & (x <= b[:, 2]) & (b[:, 1] <= y) & (y <= b[:, 3])
        kept = np.flatnonzero(inside & (fate == KEPT))
        if kept.size:
            area = (b[kept, 2] - b[kept, 0]) * (b[kept, 3] - b[kept, 1])
            return int(kept[np.argmin(area)])
        other = np.flatnonzero(inside & real)
        return int(other[np.argmax(scores[other])]) if other.size else None
    if it.mask_logits is None:
        return None
    r, c = _mask_cell(it, x, y)
    prob = 1.0 / (1.0 + np.exp(-np.asarray(it.mask_logits[:, r, c], np.float32)))
    kept = np.flatnonzero(fate == KEPT)
    if kept.size:
        return int(kept[np.argmax(scores[kept] * prob[kept])])
    cover = np.flatnonzero(real & (prob > 0.5))
    return int(cover[np.argmax(scores[cover])]) if cover.size else None


def mask_outline_segments(mask_logits: np.ndarray, image_size: tuple[int, int]) -> list[np.ndarray]:
    """Each query's mask (logit > 0) outlined: ``(N, 2, 2)`` float32 segments in image pixels, one
    array per query, traced at the logits' own resolution and scaled to the image (pixel centres at
    ``(i + 0.5) * image / mask``). A noisy mask has thousands of small contours, so each query's
    contours become segments in one vectorised step (no Python loop over contours)."""
    lg = np.asarray(mask_logits)
    mh, mw = lg.shape[-2:]
    h, w = image_size
    scale = np.array([w / mw, h / mh], np.float32)
    inside = (lg > 0).view(np.uint8)
    out: list[np.ndarray] = []
    for plane in inside:
        found, _ = cv2.findContours(np.ascontiguousarray(plane), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        if not found:
            out.append(np.zeros((0, 2, 2), np.float32))
            continue
        lens = np.fromiter((len(c) for c in found), np.int64, len(found))
        pts = (np.concatenate(found).reshape(-1, 2).astype(np.float32) + 0.5) * scale
        start = np.repeat(np.cumsum(lens) - lens, lens)
        size = np.repeat(lens, lens)
        nxt = start + (np.arange(len(pts)) - start + 1) % size  # each contour closes on itself
        out.append(np.stack([pts, pts[nxt]], axis=1))
    return out


# ----------------------------------------------------------------------------- merges side by side


@dataclass(frozen=True, eq=False)
class MergeComparison:
    """The same queries merged into a panoptic map three ways, at the mask logits' resolution.

    ``maps[name]`` is a PanopticMap (or None, with the reason in ``notes[name]``) for ``"model"``
    (the network's own merge, resized), ``"heuristic"`` and ``"upsnet"``; ``agreement[name]`` is
    the fraction of pixels whose category (void included) equals the model's merge.
    """

    maps: dict[str, object]
    notes: dict[str, str]
    agreement: dict[str, float]


def _names_map(pm: object, index: dict[str, int]) -> np.ndarray:
    """Per pixel the index in ``index`` of its segment's category *name* (-1 void): UPSNet's
    output orders the categories stuff first, so ids are compared by name."""
    ids = pm.segment_ids  # type: ignore[attr-defined]
    lut = np.full(int(ids.max(initial=0)) + 1, -1, np.int64)
    for s in pm.segments:  # type: ignore[attr-defined]
        lut[s.id] = index.get(pm.categories[s.category_id], -2)  # type: ignore[attr-defined]
    return lut[ids]


def compare_merges(it: QueryInternals, isthing: tuple[bool, ...], model_map: object | None = None,
                   threshold: float = 0.5, overlap_thresh: float = 0.5) -> MergeComparison:
    """Mask2Former's queries through our two merges (:mod:`segviewer.analysis.panoptic_merge`)
    beside the model's own, all from the one pass's class and mask logits.

    The queries become what those merges take: instances (thing-class queries whose best real
    class beats ``threshold``, mask = logit > 0) and a semantic map / per-class logits (each
    pixel's query mixture ``sum_q p_q(class) sigmoid(mask_q)``, as the semantic post-processing
    forms it; UPSNet reads its log as logits). Stuff regions smaller than 4096 / (480 x 640) of the
    image are void in the heuristic (detectron2's area at COCO size).
    """
    from segviewer.analysis.panoptic_merge import heuristic_merge, upsnet_merge
    from segviewer.core.results import Detections, MaskSet, PanopticMap, SemanticMap

    if it.mask_logits is None:
        raise ValueError(f"{it.family} predicts boxes, not masks: there is no panoptic merge to compare")
    cats = it.categories
    thing = tuple(bool(t) for t in isthing) if len(isthing) == len(cats) else (True,) * len(cats)
    lg = np.asarray(it.mask_logits, np.float32)
    q, mh, mw = lg.shape
    probs = class_distribution(it.class_logits, it.no_object)
    real = probs[:, :-1] if it.no_object else probs
    sig = 1.0 / (1.0 + np.exp(-lg))
    mix = np.tensordot(real.T, sig, axes=1)  # (K, mh, mw)
    labels = mix.argmax(axis=0).astype(np.int32)
    maps: dict[str, object] = {}
    notes: dict[str, str] = {}
    if model_map is not None:
        ids = cv2.resize(model_map.segment_ids, (mw, mh), interpolation=cv2.INTER_NEAREST)  # type: ignore[attr-defined]
        maps["model"] = PanopticMap(ids, model_map.segments, model_map.categories,  # type: ignore[attr-defined]
                                    model_map.isthing)  # type: ignore[attr-defined]
    else:
        notes["model"] = "no panoptic result of this pass"
    best, score = real.argmax(axis=1), real.max(axis=1)
    no_obj = it.is_no_object()
    pick = np.flatnonzero(~no_obj & (score > threshold) & np.array([thing[int(c)] for c in best], bool))
    pick = pick[(lg[pick] > 0).any(axis=(1, 2))]
    full = lg[pick] > 0
    masks = MaskSet.from_full(full) if len(pick) else MaskSet((mh, mw), (), np.zeros((0, 2), np.int32))
    boxes = masks.crop_boxes() if len(pick) else np.zeros((0, 4), np.float32)
    dets = Detections((mh, mw), boxes, score[pick].astype(np.float32), best[pick].astype(np.int32), cats, masks=masks)
    area = max(1, int(round(4096 / (480 * 640) * mh * mw)))
    maps["heuristic"] = heuristic_merge(dets, SemanticMap(labels, cats), overlap_thresh=overlap_thresh,
                                        min_score=threshold, stuff_min_area=area, isthing=thing)
    stuff = [k for k in range(len(cats)) if not thing[k]]
    things = [k for k in range(len(cats)) if thing[k]]
    if not stuff:
        notes["upsnet"] = "UPSNet's head needs stuff classes; this model has none"
    else:
        logit = np.log(np.maximum(mix, 1e-6))
        tpos = {k: i for i, k in enumerate(things)}
        crops = [lg[j, int(b[1]):int(b[3]), int(b[0]):int(b[2])] for j, b in zip(pick, boxes)]
        maps["upsnet"] = upsnet_merge(logit[stuff], logit[things] if things else np.zeros((0, mh, mw), np.float32),
                                      boxes, np.array([tpos[int(c)] for c in best[pick]], np.int64), crops,
                                      [cats[k] for k in stuff], [cats[k] for k in things], scores=score[pick])
    agreement: dict[str, float] = {}
    if "model" in maps:
        index = {n: i for i, n in enumerate(cats)}
        ref = _names_map(maps["model"], index)
        for name, pm in maps.items():
            agreement[name] = float((_names_map(pm, index) == ref).mean())
    return MergeComparison(maps, notes, agreement)
