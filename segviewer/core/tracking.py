"""Stable instance colors across video frames: each instance gets a track id carried by IoU.

Follows detectron2's ``utils/video_visualizer.py`` idea (match this frame's instances to recent
frames' by mask or box IoU, keep unmatched tracks alive for a few frames, then forget them) with
two deliberate differences: the matching is one-to-one (greedy by descending IoU, so two new
instances never inherit the same color), and the color derives from the track id (set as the
detections' ``instance_ids``, which the renderer jitters the class color by), so it is
deterministic rather than random.

Mask IoU is computed on :class:`~segviewer.core.results.MaskSet` crops, never on full frames.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from segviewer.core.errors import SegviewerError
from segviewer.core.geometry import box_iou
from segviewer.core.results import Detections, MaskSet, PanopticMap

__all__ = ["InstanceTracker", "Track", "box_iou", "mask_iou"]


def _crop_box(crop: np.ndarray, off: np.ndarray) -> tuple[int, int, int, int]:
    x0, y0 = int(off[0]), int(off[1])
    return x0, y0, x0 + crop.shape[1], y0 + crop.shape[0]


def mask_iou(a: list[tuple[np.ndarray, np.ndarray]], b: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """IoU matrix of masks given as ``(crop, (x0, y0))`` pairs; only overlapping crops are compared."""
    out = np.zeros((len(a), len(b)), np.float64)
    area_a = [int(c.sum()) for c, _ in a]
    area_b = [int(c.sum()) for c, _ in b]
    box_b = [_crop_box(c, o) for c, o in b]
    for i, (ca, oa) in enumerate(a):
        if not area_a[i]:
            continue
        ax0, ay0, ax1, ay1 = _crop_box(ca, oa)
        for j, (cb, _) in enumerate(b):
            bx0, by0, bx1, by1 = box_b[j]
            x0, y0, x1, y1 = max(ax0, bx0), max(ay0, by0), min(ax1, bx1), min(ay1, by1)
            if x1 <= x0 or y1 <= y0 or not area_b[j]:
                continue
            inter = int(np.count_nonzero(ca[y0 - ay0 : y1 - ay0, x0 - ax0 : x1 - ax0]
                                         & cb[y0 - by0 : y1 - by0, x0 - bx0 : x1 - bx0]))
            out[i, j] = inter / (area_a[i] + area_b[j] - inter)
    return out


@dataclass
class Track:
    """An instance seen recently: its id, class, last box and mask, and frames left to live."""

    id: int
    category: int
    box: np.ndarray
    mask: tuple[np.ndarray, np.ndarray] | None
    ttl: int


class InstanceTracker:
    """Gives each instance of each frame a track id that stays the same while the object moves.

    ``iou_threshold``: minimum IoU to continue a track (detectron2 uses 0.5). ``ttl``: frames a
    track survives unmatched (occlusions, missed detections). ``match_class``: only instances of
    the same class continue a track. Masks are used when both sides have them, boxes otherwise.
    """

    def __init__(self, iou_threshold: float = 0.5, ttl: int = 8, match_class: bool = True) -> None:
        if not 0 < iou_threshold <= 1:
            raise SegviewerError(f"The tracking IoU threshold must lie in (0, 1]; got {iou_threshold}.")
        if ttl < 1:
            raise SegviewerError(f"The tracks' time to live must be at least 1 frame; got {ttl}.")
        self.iou_threshold = float(iou_threshold)
        self.ttl = int(ttl)
        self.match_class = bool(match_class)
        self.tracks: list[Track] = []
        self._next_id = 1

    def reset(self) -> None:
        """Forget every track (call on a seek, so a jump does not inherit colors by accident)."""
        self.tracks = []
        self._next_id = 1

    def restart(self, previous: Detections | None = None) -> None:
        """Start over after a jump: from ``previous`` (a tracked neighbouring frame, with its
        ``instance_ids``) when known, so its objects keep their ids; else from no tracks. Unlike
        :meth:`reset`, new ids continue after every id given so far, so a new object never
        takes an id (and color) that another object had elsewhere in the video."""
        next_id = self._next_id
        self.reset()
        self._next_id = next_id
        if previous is None or previous.instance_ids is None or not len(previous):
            return
        ms = previous.masks
        for i, tid in enumerate(previous.instance_ids.tolist()):
            mask = None if ms is None else (ms.crops[i], ms.offsets[i])
            self.tracks.append(Track(int(tid), int(previous.class_ids[i]), np.asarray(previous.boxes[i], np.float64),
                                     mask, self.ttl))
        self._next_id = max(next_id, int(previous.instance_ids.max()) + 1)

    def update(self, boxes: np.ndarray, class_ids: np.ndarray, masks: MaskSet | None = None) -> np.ndarray:
        """Match one frame's instances to the live tracks; returns ``(N,)`` int64 track ids."""
        bx = np.asarray(boxes, np.float64).reshape(-1, 4)
        cls = np.asarray(class_ids, np.int64).ravel()
        n = len(bx)
        if len(cls) != n or (masks is not None and len(masks) != n):
            raise SegviewerError(f"Tracking needs one class and one mask per box; got {n} boxes, {len(cls)} classes.")
        new_masks = None if masks is None else [(masks.crops[i], masks.offsets[i]) for i in range(n)]
        ids = np.zeros(n, np.int64)
        matched_new: set[int] = set()
        matched_old: set[int] = set()
        if n and self.tracks:
            iou = box_iou(bx, np.stack([t.box for t in self.tracks]))
            if new_masks is not None:
                have = [j for j, t in enumerate(self.tracks) if t.mask is not None]
                if have:
                    iou[:, have] = mask_iou(new_masks, [self.tracks[j].mask for j in have])  # type: ignore[misc]
            if self.match_class:
                iou[cls[:, None] != np.array([t.category for t in self.tracks])[None, :]] = 0.0
            order = np.argsort(-iou, axis=None, kind="stable")
            for flat in order:
                i, j = divmod(int(flat), len(self.tracks))
                if iou[i, j] < self.iou_threshold:
                    break
                if i in matched_new or j in matched_old:
                    continue
                matched_new.add(i)
                matched_old.add(j)
                t = self.tracks[j]
                t.box, t.mask, t.ttl, t.category = bx[i], None if new_masks is None else new_masks[i], self.ttl, int(cls[i])
                ids[i] = t.id
        survivors = []
        for j, t in enumerate(self.tracks):
            if j not in matched_old:
                t.ttl -= 1
            if t.ttl > 0:
                survivors.append(t)
        self.tracks = survivors
        for i in range(n):
            if i not in matched_new:
                t = Track(self._next_id, int(cls[i]), bx[i], None if new_masks is None else new_masks[i], self.ttl)
                self._next_id += 1
                self.tracks.append(t)
                ids[i] = t.id
        return ids

    def update_detections(self, dets: Detections) -> np.ndarray:
        """Track ids for a :class:`Detections` (its masks are used when present)."""
        return self.update(dets.boxes, dets.class_ids, dets.masks)

    def update_panoptic(self, pmap: PanopticMap) -> dict[int, int]:
        """Track ids for a panoptic map's thing segments: ``{segment id: track id}``."""
        things = [s for s in pmap.segments if s.isthing]
        if not things:
            self.update(np.zeros((0, 4)), np.zeros(0), None)  # still ages the tracks
            return {}
        full = np.stack([pmap.segment_ids == s.id for s in things])
        ms = MaskSet.from_full(full)
        boxes = np.array([[o[0], o[1], o[0] + c.shape[1], o[1] + c.shape[0]] for c, o in zip(ms.crops, ms.offsets)],
                         np.float64).reshape(-1, 4)
        ids = self.update(boxes, np.array([s.category_id for s in things]), ms)
        return {s.id: int(t) for s, t in zip(things, ids)}

    def track(self, dets: Detections) -> Detections:
        """``dets`` with their track ids as ``instance_ids``: the renderer colors each instance by its
        class name jittered by that id, so an object keeps its color from frame to frame."""
        return dataclasses.replace(dets, instance_ids=self.update_detections(dets))
