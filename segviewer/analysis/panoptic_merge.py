"""Instances + semantics -> one :class:`PanopticMap`, two ways.

Category conventions (they bite when ignored):

* :func:`heuristic_merge` names categories by *name*. The output's categories are the semantic
  map's (``semantic.categories``); a category is a thing when ``isthing`` says so, by default
  when its name is also a class of the detections (``"__background__"`` never is). Each detection's
  class name must be one of the output categories. Semantic pixels of thing classes never become
  stuff (the instances speak for things), and the semantic ``ignore_index`` is void.
* :func:`upsnet_merge` takes raw logits. Its output categories are ``stuff_names + thing_names``:
  stuff class ``s`` is category ``s`` and thing class ``t`` is category ``S + t``, which is the
  shapes world's ``CATEGORIES`` order (stuff first). Instance ``classes`` index ``thing_names``.

Segment ids: things get 1, 2, ... in the order they are kept (descending score for the heuristic,
input order for UPSNet), stuff segments follow with the next ids in category order.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from segviewer.core.errors import SegviewerError
from segviewer.core.results import Detections, PanopticMap, PanopticSegment, SemanticMap

__all__ = ["heuristic_merge", "upsnet_merge", "paste_mask_logits"]


def heuristic_merge(instances: Detections, semantic: SemanticMap, *, overlap_thresh: float = 0.5,
                    min_score: float = 0.5, stuff_min_area: int = 1024,
                    isthing: Sequence[bool] | None = None) -> PanopticMap:
    """The panoptic paper's merge (as Panoptic FPN / detectron2 run it).

    Instances are taken by descending score (those under ``min_score`` are skipped); an instance
    is dropped when the part of its mask not yet covered by earlier instances is less than
    ``overlap_thresh`` of its mask, otherwise that free part becomes its segment. Stuff comes from
    the semantic map where no thing is; a stuff region (all pixels of one stuff class) smaller
    than ``stuff_min_area`` pixels is dropped to void (detectron2 uses 4096 at COCO resolution).
    """
    if instances.masks is None:
        raise SegviewerError("the heuristic merge needs instance masks, and these detections have none")
    if instances.image_size != semantic.image_size:
        raise SegviewerError(f"detections are {instances.image_size} but the semantic map is "
                             f"{semantic.image_size}; they must come from the same image size")
    if not 0.0 <= overlap_thresh <= 1.0:
        raise SegviewerError(f"the overlap fraction must lie in [0, 1], got {overlap_thresh}")
    cats = semantic.categories
    det_names = {n for n in instances.categories if n != "__background__"}
    thing = tuple(bool(t) for t in isthing) if isthing is not None else tuple(n in det_names for n in cats)
    if len(thing) != len(cats):
        raise SegviewerError(f"isthing has {len(thing)} flags for {len(cats)} categories")
    index = {n: i for i, n in enumerate(cats)}
    ids = np.zeros(semantic.image_size, np.int32)
    segs: list[PanopticSegment] = []
    next_id = 1
    ms = instances.masks
    for i in np.argsort(-instances.scores, kind="stable"):
        score = float(instances.scores[i])
        if score < min_score:
            break
        name = instances.categories[int(instances.class_ids[i])]
        cat = index.get(name)
        if cat is None or not thing[cat]:
            raise SegviewerError(f"detection class {name!r} is not a thing category of the semantic map")
        crop = ms.crops[i]
        area = int(crop.sum()) if crop.size else 0
        if area == 0:
            continue
        x0, y0 = (int(v) for v in ms.offsets[i])
        region = ids[y0:y0 + crop.shape[0], x0:x0 + crop.shape[1]]
        free = crop & (region == 0)
        n_free = int(free.sum())
        if n_free < overlap_thresh * area or n_free == 0:
            continue
        region[free] = next_id
        segs.append(PanopticSegment(next_id, cat, True, n_free, score))
        next_id += 1
    labels = semantic.labels
    empty = ids == 0
    lab = labels[empty]
    if semantic.ignore_index is not None:
        keep = lab != semantic.ignore_index
    else:
        keep = np.ones(lab.shape, bool)
    counts = np.bincount(lab[keep].astype(np.int64), minlength=len(cats))
    fill = np.zeros(len(cats) + 1, np.int32)  # label -> segment id (0 = void)
    for c in range(len(cats)):
        if thing[c] or counts[c] < stuff_min_area or counts[c] == 0:
            continue
        fill[c] = next_id
        segs.append(PanopticSegment(next_id, c, False, int(counts[c])))
        next_id += 1
    safe = np.where(keep, lab, len(cats)).astype(np.int64)
    ids[empty] = fill[safe]
    return PanopticMap(ids, tuple(segs), cats, thing)


def paste_mask_logits(mask_logits: np.ndarray, box: Sequence[float], image_size: tuple[int, int]
                      ) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Resize an ``(M, M)`` mask-logit map bilinearly onto its box; returns ``(logits, (x0, y0, x1, y1))``
    where the window is the box snapped outwards to whole pixels and clipped to the image."""
    h, w = image_size
    bx0, by0, bx1, by1 = (float(v) for v in box)
    x0, y0 = max(int(np.floor(bx0)), 0), max(int(np.floor(by0)), 0)
    x1, y1 = min(int(np.ceil(bx1)), w), min(int(np.ceil(by1)), h)
    if x1 <= x0 or y1 <= y0:
        return np.zeros((0, 0), np.float32), (x0, y0, x0, y0)
    m = np.asarray(mask_logits, np.float32)
    bw, bh = max(int(np.ceil(bx1) - np.floor(bx0)), 1), max(int(np.ceil(by1) - np.floor(by0)), 1)
    full = cv2.resize(m, (bw, bh), interpolation=cv2.INTER_LINEAR)
    ox, oy = x0 - int(np.floor(bx0)), y0 - int(np.floor(by0))
    return full[oy:oy + (y1 - y0), ox:ox + (x1 - x0)], (x0, y0, x1, y1)


def upsnet_merge(stuff_logits: np.ndarray, thing_logits: np.ndarray, boxes: np.ndarray, classes: np.ndarray,
                 mask_logits: np.ndarray | Sequence[np.ndarray], stuff_names: Sequence[str],
                 thing_names: Sequence[str], scores: np.ndarray | None = None,
                 outside_logit: float = -np.inf) -> PanopticMap:
    """UPSNet's parameter-free panoptic head, in numpy.

    Per pixel, a softmax over ``[stuff logits (S), one logit per instance]``; the instance logit is
    its mask logits pasted in its box plus the semantic head's logit of its class inside the box.
    The argmax (the softmax does not change it) names a stuff class or an instance. Outside its box
    an instance's logit is ``outside_logit``: ``-inf`` (default) keeps instances inside their
    boxes; the paper pads with 0, pass ``0.0`` for that. UPSNet's extra "unknown" channel is not
    modelled. Logits must be at image resolution: ``stuff_logits (S, H, W)``, ``thing_logits (T, H, W)``.
    """
    st = np.asarray(stuff_logits, np.float32)
    th = np.asarray(thing_logits, np.float32)
    if st.ndim != 3 or th.ndim != 3 or st.shape[1:] != th.shape[1:]:
        raise SegviewerError(f"stuff logits {st.shape} and thing logits {th.shape} must be (S, H, W) and (T, H, W)")
    s, h, w = st.shape
    t = th.shape[0]
    if len(stuff_names) != s or len(thing_names) != t:
        raise SegviewerError(f"{s} stuff and {t} thing channels but {len(stuff_names)} and "
                             f"{len(thing_names)} names")
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    classes = np.asarray(classes, np.int64).ravel()
    n = len(boxes)
    if len(classes) != n or len(mask_logits) != n:
        raise SegviewerError(f"{n} boxes, {len(classes)} classes and {len(mask_logits)} mask logit maps")
    if n and (classes.min() < 0 or classes.max() >= t):
        raise SegviewerError(f"instance classes must index the {t} thing classes")
    pasted = [paste_mask_logits(mask_logits[i], boxes[i], (h, w)) for i in range(n)]
    if outside_logit > -np.inf:
        # The paper's literal form: every instance has a logit everywhere; stack and argmax.
        z = np.concatenate([st, np.full((n, h, w), np.float32(outside_logit))])
        for i, (pm, (x0, y0, x1, y1)) in enumerate(pasted):
            if pm.size:
                z[s + i, y0:y1, x0:x1] = pm + th[classes[i], y0:y1, x0:x1]
        winner = z.argmax(axis=0).astype(np.int64)
    else:
        # Instances live only in their boxes: a running max touches each box once (no N x H x W).
        best = st.max(axis=0)
        winner = st.argmax(axis=0).astype(np.int64)  # 0..S-1 stuff, S + i instance i
        for i, (pm, (x0, y0, x1, y1)) in enumerate(pasted):
            if pm.size == 0:
                continue
            logit = pm + th[classes[i], y0:y1, x0:x1]
            b = best[y0:y1, x0:x1]
            better = logit > b  # strict: ties go to the earlier channel, as argmax does
            b[better] = logit[better]
            winner[y0:y1, x0:x1][better] = s + i
    ids = np.zeros((h, w), np.int32)
    segs: list[PanopticSegment] = []
    counts = np.bincount(winner.ravel(), minlength=s + n)
    lut = np.zeros(s + n, np.int32)
    next_id = 1
    for i in range(n):
        if counts[s + i]:
            lut[s + i] = next_id
            sc = 1.0 if scores is None else float(np.asarray(scores).ravel()[i])
            segs.append(PanopticSegment(next_id, s + int(classes[i]), True, int(counts[s + i]), sc))
            next_id += 1
    for c in range(s):
        if counts[c]:
            lut[c] = next_id
            segs.append(PanopticSegment(next_id, c, False, int(counts[c])))
            next_id += 1
    ids[...] = lut[winner]
    cats = tuple(stuff_names) + tuple(thing_names)
    return PanopticMap(ids, tuple(segs), cats, (False,) * s + (True,) * t)
