"""Inside a one-stage torchvision detector (RetinaNet, FCOS, SSD): its dense heads, from ONE pass.

Why hooks: the dense-heads view shows what *this* model computed on *this* image. Forward hooks on
the transform, backbone, head and anchor generator record their outputs while the adapter's own
``predict`` runs (never a second run). ``postprocess_detections`` is a plain method in torchvision,
so it is replayed on the captured tensors with torchvision's own ops (score, threshold, top-k per
level, box coder, clip, ``batched_nms``), recording the candidates, and the replay must end where
the model ended (:attr:`DenseInternals.replay_matches`).

Everything is numpy in the model's frame (the transform's resized image); ``scale`` maps to the
input image's pixels. Click-time numbers come from :mod:`segviewer.analysis.dense` and
:mod:`segviewer.analysis.focal`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from segviewer.adapters.internals import ModelFrame, PassHooks, Stage
from segviewer.analysis import dense
from segviewer.analysis.nms import NMSTrace, nms_trace
from segviewer.analysis.roi_align import NothingHereError
from segviewer.core.errors import SegviewerError
from segviewer.core.timing import Timings

__all__ = ["DENSE_KINDS", "dense_kind", "DenseInternals", "DenseHooks", "build_dense_internals",
           "AnchorsHere"]

#: capture kinds a dense-head pass offers (views declare which they draw)
DENSE_KINDS = ("dense_levels", "anchor_grid")


def dense_kind(model: Any) -> str:
    """"retinanet", "fcos", "ssd" or "" for a torch module."""
    name = type(model).__name__.lower()
    if not all(hasattr(model, n) for n in ("transform", "backbone", "head", "anchor_generator")):
        return ""
    for k in ("retinanet", "fcos", "ssd"):
        if name.startswith(k):
            return k
    return ""


@dataclass(frozen=True)
class AnchorsHere:
    """The anchors / default boxes of one location on one level (model frame)."""

    level: int
    row: int
    col: int
    flat_index: np.ndarray  # (A,) rows of the all-level anchor list
    boxes: np.ndarray  # (A, 4) float32
    scores: np.ndarray  # (A,) max class score of each anchor (foreground classes)
    labels: np.ndarray  # (A,) its class


@dataclass(frozen=True, eq=False)
class DenseInternals(ModelFrame):
    """What one pass of a one-stage detector computed; numpy arrays, model coordinates."""

    kind: str  # retinanet / fcos / ssd
    model_name: str
    categories: tuple[str, ...]
    image_size: tuple[int, int]  # (H, W) of the input image
    model_size: tuple[int, int]  # (h, w) after the transform
    padded_size: tuple[int, int]
    grids: tuple[tuple[int, int], ...]  # per level (h, w)
    per_location: tuple[int, ...]  # anchors per location per level
    anchors: np.ndarray  # (N, 4) float32, the head's flattened order
    cls_logits: np.ndarray  # (N, K) float32
    bbox_regression: np.ndarray  # (N, 4) float32
    ctrness: np.ndarray | None  # (N,) FCOS centerness logits
    box_weights: tuple[float, ...]  # BoxCoder weights (RetinaNet, SSD)
    score_thresh: float
    nms_thresh: float
    topk: int
    detections_per_img: int
    candidates: Stage  # after threshold + top-k per level (per class for SSD), decoded and clipped: NMS input
    candidate_levels: np.ndarray  # (C,) level of each candidate
    kept: Stage  # batched_nms survivors
    detections: Stage  # the first detections_per_img: the model's output
    replay_matches: bool
    timings: Timings = field(default_factory=Timings)
    kinds: tuple[str, ...] = DENSE_KINDS
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    def level_slices(self) -> list[slice]:
        """Rows of each level in the flattened anchors / head outputs."""
        out, start = [], 0
        for (h, w), a in zip(self.grids, self.per_location):
            out.append(slice(start, start + h * w * a))
            start += h * w * a
        return out

    def stride(self, level: int) -> tuple[float, float]:
        """``(sy, sx)`` model pixels per cell (SSD: image size / grid, not an integer)."""
        h, w = self.grids[level]
        if self.kind == "ssd":
            return self.model_size[0] / h, self.model_size[1] / w
        return float(self.padded_size[0] // h), float(self.padded_size[1] // w)

    def heatmap_extent(self, level: int) -> tuple[float, float, float, float]:
        """The rectangle (in cells) of a level's map that the input image covers."""
        gh, gw = self.grids[level]
        if self.kind == "ssd":
            return 0.0, 0.0, float(gw), float(gh)
        return 0.0, 0.0, self.model_size[1] * gw / self.padded_size[1], self.model_size[0] * gh / self.padded_size[0]

    # ---------------------------------------------------------------- numbers
    @property
    def foreground(self) -> int:
        """First foreground column of the class scores (SSD's column 0 is background)."""
        return 1 if self.kind == "ssd" else 0

    def scores(self) -> np.ndarray:
        """``(N, K)`` scores the model thresholds (cached)."""
        if "scores" not in self._cache:
            self._cache["scores"] = dense.class_scores(self.cls_logits, self.kind, self.ctrness)
        return self._cache["scores"]

    def score_map(self, level: int, class_id: int | None = None) -> np.ndarray:
        """``(h, w)`` max score over anchors (and classes, or one class) on ``level`` (cached)."""
        if not 0 <= level < len(self.grids):
            raise SegviewerError(f"Level {level} does not exist; the head has {len(self.grids)} levels.")
        key = f"map:{level}:{class_id}"
        if key not in self._cache:
            s = self.scores()[self.level_slices()[level]]
            self._cache[key] = dense.score_map(s, self.grids[level], self.per_location[level], class_id,
                                               skip_background=self.kind == "ssd")
        return self._cache[key]

    def centerness_map(self, level: int) -> np.ndarray:
        """FCOS's ``(h, w)`` centerness probability on ``level``."""
        if self.ctrness is None:
            raise SegviewerError(f"{self.model_name} has no centerness branch (FCOS has).")
        c = self.ctrness[self.level_slices()[level]]
        return dense.sigmoid(c).reshape(*self.grids[level], -1).max(axis=2)

    def level_counts(self) -> list[dense.LevelCounts]:
        """Per level: scores above the threshold and the top-k kept (SSD: per class, summed)."""
        s, sl = self.scores(), self.level_slices()
        if self.kind != "ssd":
            return dense.level_counts([s[x] for x in sl], self.score_thresh, self.topk)
        thr = np.float32(self.score_thresh)  # SSD: top-k is per class over all levels; count its survivors per level
        return [dense.LevelCounts(int(s[x, 1:].size), int((s[x, 1:] > thr).sum()),
                                  int(np.sum(self.candidate_levels == i))) for i, x in enumerate(sl)]

    def anchors_at(self, x: float, y: float, level: int) -> AnchorsHere:
        """The anchors of the location under an input-image click on ``level``: the cell whose
        footprint holds the point (anchors are centred on its corner for AnchorGenerator, on its
        centre for SSD's DefaultBoxGenerator)."""
        if not 0 <= level < len(self.grids):
            raise SegviewerError(f"Level {level} does not exist; the head has {len(self.grids)} levels.")
        mx, my = self.to_model(x, y)
        if not (np.isfinite(mx) and np.isfinite(my) and 0 <= mx < self.model_size[1] and 0 <= my < self.model_size[0]):
            raise NothingHereError(f"({x:.0f}, {y:.0f}) is outside the image; click on the image.")
        sy, sx = self.stride(level)
        gh, gw = self.grids[level]
        row, col = min(int(my // sy), gh - 1), min(int(mx // sx), gw - 1)
        a = self.per_location[level]
        idx = self.level_slices()[level].start + (row * gw + col) * a + np.arange(a, dtype=np.int64)
        s = self.scores()[idx, self.foreground:]
        return AnchorsHere(level, row, col, idx, self.anchors[idx], s.max(axis=1),
                           s.argmax(axis=1).astype(np.int64) + self.foreground)

    def decode(self, flat_index: np.ndarray | int) -> np.ndarray:
        """Boxes the head regresses for anchors ``flat_index`` (model frame, before clipping)."""
        i = np.atleast_1d(np.asarray(flat_index, np.int64))
        if self.kind == "fcos":
            return dense.decode_distances(self.bbox_regression[i], self.anchors[i])
        return dense.decode_deltas(self.bbox_regression[i], self.anchors[i], self.box_weights)

    def ltrb(self, flat_index: int) -> np.ndarray:
        """FCOS's (l, t, r, b) distances in model pixels for one location."""
        a = self.anchors[int(flat_index)]
        w, h = a[2] - a[0], a[3] - a[1]
        return self.bbox_regression[int(flat_index)].astype(np.float64) * np.array([w, h, w, h], np.float64)

    def nms(self, class_id: int | None = None, iou_threshold: float | None = None) -> NMSTrace:
        """The class-wise NMS replayed step by step; ``trace.ids`` are rows of :attr:`candidates`."""
        thr = self.nms_thresh if iou_threshold is None else float(iou_threshold)
        c = self.candidates
        rows = np.arange(len(c)) if class_id is None else np.flatnonzero(c.groups == class_id)
        if class_id is not None and rows.size == 0:
            raise NothingHereError(f"No NMS candidates of class {class_id}.")
        if class_id is not None:
            batch = (len(c), float(c.boxes.max()))
            return nms_trace(c.boxes[rows], c.scores[rows], thr, c.groups[rows], rows, batch)
        return nms_trace(c.boxes, c.scores, thr, c.groups, rows)

    def detection_at(self, x: float, y: float) -> int:
        from segviewer.analysis.roi_align import box_at

        if len(self.detections) == 0:
            raise NothingHereError("The model found no detections in this image.")
        return box_at(self.to_image(self.detections.boxes), x, y)

    def nbytes(self) -> int:
        n = self.anchors.nbytes + self.cls_logits.nbytes + self.bbox_regression.nbytes
        n += sum(v.nbytes for v in self._cache.values() if isinstance(v, np.ndarray))
        return int(n + (0 if self.ctrness is None else self.ctrness.nbytes))


# ------------------------------------------------------------------------- capture

class DenseHooks(PassHooks):
    """Forward hooks on a one-stage detector recording what ONE pass computes (whoever runs it)."""

    required = ("images", "features", "head", "anchors", "output")

    def __init__(self, model: Any) -> None:
        super().__init__(model)
        got, keep = self.got, self.keep

        def transform_hook(_mod, inp, out):  # noqa: ANN001, ANN202
            got["original_size"] = tuple(int(v) for v in inp[0][0].shape[-2:])
            got["images"] = out[0]

        def model_pre(_mod, _args):  # noqa: ANN001, ANN202
            got["thresholds"] = (float(model.score_thresh), float(model.nms_thresh), int(model.topk_candidates),
                                 int(model.detections_per_img))
            got["forward_calls"] = got.get("forward_calls", 0) + 1

        self.handles = [model.register_forward_pre_hook(model_pre),
                        model.register_forward_hook(keep("output")),
                        model.transform.register_forward_hook(transform_hook),
                        model.backbone.register_forward_hook(keep("features")),
                        model.head.register_forward_hook(keep("head")),
                        model.anchor_generator.register_forward_hook(keep("anchors"))]



def _np(t: Any) -> np.ndarray:
    return np.ascontiguousarray(t.detach().float().cpu().numpy())


def _replay(model: Any, kind: str, head: dict[str, Any], anchors: Any, per_level: list[int],
            image_shape: tuple[int, int], thresholds: tuple[float, float, int, int]) -> tuple:
    """torchvision's ``postprocess_detections`` with its own ops, remembering each candidate's
    anchor and level: ``(boxes, scores, labels, anchor_idx, level, keep)``."""
    import torch
    from torchvision.ops import boxes as box_ops

    score_thresh, nms_thresh, topk, _ = thresholds
    cls, reg = head["cls_logits"][0].cpu(), head["bbox_regression"][0].cpu()
    boxes_all, scores_all, labels_all, src_all, lvl_all = [], [], [], [], []
    starts = np.concatenate([[0], np.cumsum(per_level)]).tolist()
    if kind == "ssd":
        scores = torch.softmax(cls, dim=-1)
        boxes = box_ops.clip_boxes_to_image(model.box_coder.decode_single(reg, anchors), image_shape)
        lvl_of = torch.as_tensor(np.repeat(np.arange(len(per_level)), per_level))
        for label in range(1, scores.shape[-1]):
            s = scores[:, label]
            idx = torch.where(s > score_thresh)[0]
            s = s[idx]
            top = min(int(topk), int(s.numel()))
            s, order = s.topk(top)
            idx = idx[order]
            boxes_all.append(boxes[idx])
            scores_all.append(s)
            labels_all.append(torch.full_like(s, label, dtype=torch.int64))
            src_all.append(idx)
            lvl_all.append(lvl_of[idx])
    else:
        ctr = head.get("bbox_ctrness")
        ctr = ctr[0].cpu() if ctr is not None else None
        for lv in range(len(per_level)):
            a, b = starts[lv], starts[lv + 1]
            logits = cls[a:b]
            num_classes = logits.shape[-1]
            if kind == "fcos":
                s = torch.sqrt(torch.sigmoid(logits) * torch.sigmoid(ctr[a:b])).flatten()
            else:
                s = torch.sigmoid(logits).flatten()
            keep = s > score_thresh
            s = s[keep]
            idxs = torch.where(keep)[0]
            top = min(int(topk), int(idxs.numel()))
            s, order = s.topk(top)
            idxs = idxs[order]
            anchor_idx = torch.div(idxs, num_classes, rounding_mode="floor")
            labels = idxs % num_classes
            coder = model.box_coder
            decode = coder.decode if kind == "fcos" else coder.decode_single
            bx = decode(reg[a:b][anchor_idx], anchors[a:b][anchor_idx])
            boxes_all.append(box_ops.clip_boxes_to_image(bx, image_shape))
            scores_all.append(s)
            labels_all.append(labels)
            src_all.append(anchor_idx + a)
            lvl_all.append(torch.full_like(labels, lv))
    boxes, scores = torch.cat(boxes_all), torch.cat(scores_all)
    labels, src, lvl = torch.cat(labels_all), torch.cat(src_all), torch.cat(lvl_all)
    keep = box_ops.batched_nms(boxes, scores, labels, nms_thresh)
    return boxes, scores, labels, src, lvl, keep


def build_dense_internals(model: Any, got: dict[str, Any], image_size: tuple[int, int], name: str,
                          cats: tuple[str, ...], tm: Timings) -> DenseInternals:
    """A :class:`DenseInternals` from what :class:`DenseHooks` recorded (stage ``replay`` in ``tm``)."""
    import torch
    from torchvision.models.detection.transform import resize_boxes

    kind = dense_kind(model)
    if not kind:
        raise SegviewerError(f"{name} is not a RetinaNet, FCOS or SSD.")
    with tm.stage("replay"):
        images, head = got["images"], got["head"]
        feats = got["features"]
        feats = list(feats.values()) if isinstance(feats, dict) else [feats]
        grids = tuple((int(f.shape[-2]), int(f.shape[-1])) for f in feats)
        anchors = got["anchors"][0].detach().cpu()
        n = int(anchors.shape[0])
        hw = [h * w for h, w in grids]
        if n % sum(hw) == 0 and kind != "ssd":
            per_loc = [n // sum(hw)] * len(grids)
        else:
            per_loc = [int(v) for v in model.anchor_generator.num_anchors_per_location()]
        per_level = [h * a for h, a in zip(hw, per_loc)]
        shape = tuple(int(v) for v in images.image_sizes[0])
        thresholds = got.get("thresholds", (float(model.score_thresh), float(model.nms_thresh),
                                            int(model.topk_candidates), int(model.detections_per_img)))
        boxes, scores, labels, src, lvl, keep = _replay(model, kind, head, anchors, per_level, shape, thresholds)
        top = keep[: thresholds[3]]
        out = got["output"]
        out = out[1] if isinstance(out, tuple) else out
        out = out[0]
        mine = resize_boxes(boxes[top], shape, got["original_size"])
        matches = bool(torch.equal(mine, out["boxes"].cpu()) and torch.equal(scores[top], out["scores"].cpu())
                       and torch.equal(labels[top], out["labels"].cpu()))

    def stage(ix: torch.Tensor) -> Stage:
        return Stage(_np(boxes[ix]).reshape(-1, 4), _np(scores[ix]).reshape(-1),
                     labels[ix].numpy().astype(np.int64), src[ix].numpy().astype(np.int64))

    ncls = int(head["cls_logits"].shape[-1])
    if len(cats) != ncls:
        cats = tuple(f"class {i}" for i in range(ncls))
    weights = tuple(float(w) for w in getattr(model.box_coder, "weights", ()))
    ctr = head.get("bbox_ctrness")
    all_rows = torch.arange(len(boxes))
    return DenseInternals(
        kind=kind, model_name=str(name), categories=tuple(cats),
        image_size=(int(image_size[0]), int(image_size[1])), model_size=shape,
        padded_size=(int(images.tensors.shape[-2]), int(images.tensors.shape[-1])),
        grids=grids, per_location=tuple(per_loc), anchors=_np(anchors),
        cls_logits=_np(head["cls_logits"][0]), bbox_regression=_np(head["bbox_regression"][0]),
        ctrness=None if ctr is None else _np(ctr[0]).reshape(-1), box_weights=weights,
        score_thresh=thresholds[0], nms_thresh=thresholds[1], topk=thresholds[2],
        detections_per_img=thresholds[3], candidates=stage(all_rows), candidate_levels=lvl.numpy().astype(np.int64),
        kept=stage(keep), detections=stage(top), replay_matches=matches, timings=tm)
