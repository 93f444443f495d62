"""Inside a torchvision Faster/Mask R-CNN: everything the internals views show, from ONE pass.

Why hooks: the views (FPN maps, RPN objectness and anchors, proposals before/after NMS, the box
head's detections before/after its NMS, raw 28 x 28 mask logits, RoIAlign grids) must show what
*this* model computed on *this* image, not a re-implementation. Forward hooks on the RPN head,
the anchor generator, the box and mask predictors (and optionally the poolers) record their
outputs while the model runs once, stage by stage (transform, backbone, RPN, RoI heads; the same
path as ``TorchvisionDetector.predict``, which avoids torchvision pasting N full-frame masks).
The steps between hooked modules (top-k per level, clipping, NMS, score filtering) are plain
methods in torchvision, so we replay them on the captured tensors with the same torchvision ops,
recording each stage, and check that the replay ends exactly where the model ended
(:attr:`DetectorInternals.replay_matches`).

Coordinates: everything captured is in the *model's* frame (the resized image, top-left part of
the padded batch tensor). :attr:`DetectorInternals.scale` ``(sx, sy)`` converts to the input
image's pixels (multiply), as torchvision's ``resize_boxes`` does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from segviewer.analysis.anchors import AnchorsAt, anchors_at
from segviewer.analysis.nms import NMSTrace, nms_trace
from segviewer.analysis.roi_align import (
    NothingHereError,
    RoIAlignGrid,
    RoIPoolGrid,
    box_at,
    fpn_levels,
    roi_align_grid,
    roi_pool_grid,
)
from segviewer.core.errors import ModelError, SegviewerError
from segviewer.core.results import MaskSet
from segviewer.core.timing import Timings

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["HEAD_BYTES", "NoRPNError", "Stage", "PoolerInfo", "DetectorInternals", "capture_internals", "paste_mask",
           "capture_activations", "DetectorHooks", "build_internals", "check_internals_image"]


#: above this many bytes as float32, all-class mask logits / keypoint logits are kept as float16
#: (COCO Mask R-CNN, 100 detections x 91 classes x 28 x 28: 28.5 MB -> 14.3 MB; the shapes model's
#: 6 classes stay float32, so its gallery shows exactly the logits the sigmoid read)
HEAD_BYTES = 4 << 20


def _head_array(t: torch.Tensor) -> np.ndarray:
    """A captured head output as float32, or float16 (clipped to its range) past :data:`HEAD_BYTES`."""
    a = _np(t)
    if a.nbytes <= HEAD_BYTES:
        return a
    from segviewer.adapters._convert import LOGIT_CLIP

    return np.clip(a, -LOGIT_CLIP, LOGIT_CLIP).astype(np.float16)


class NoRPNError(SegviewerError):
    """The model has no region proposal network, so there are no RoI internals to show."""


@dataclass(frozen=True, eq=False)
class Stage:
    """A set of boxes at one point of the pipeline (model coordinates).

    ``source`` links each box to where it came from: the flat anchor index for RPN stages, the
    proposal index for box-head stages. ``groups`` is what NMS separates by: the FPN level for
    proposals, the class for detections.
    """

    boxes: np.ndarray  # (N, 4) float32
    scores: np.ndarray  # (N,) float32
    groups: np.ndarray  # (N,) int64
    source: np.ndarray  # (N,) int64

    def __len__(self) -> int:
        return len(self.boxes)

    def select(self, idx: np.ndarray) -> Stage:
        return Stage(self.boxes[idx], self.scores[idx], self.groups[idx], self.source[idx])


@dataclass(frozen=True)
class PoolerInfo:
    """How a ``MultiScaleRoIAlign`` pools: which maps, bins and sampling."""

    featmap_names: tuple[str, ...]
    output_size: tuple[int, int]
    sampling_ratio: int
    canonical_scale: int = 224
    canonical_level: int = 4


class ModelFrame:
    """Coordinates between the input image and the model's (resized) frame, for a capture with
    ``image_size`` and ``model_size`` (each ``(H, W)``): shared by every internals bundle."""

    image_size: tuple[int, int]
    model_size: tuple[int, int]

    @property
    def scale(self) -> tuple[float, float]:
        """``(sx, sy)``: input-image pixels per model pixel."""
        return self.image_size[1] / self.model_size[1], self.image_size[0] / self.model_size[0]

    def to_image(self, boxes: np.ndarray) -> np.ndarray:
        """Model-frame xyxy boxes -> input-image xyxy boxes."""
        sx, sy = self.scale
        return np.asarray(boxes, np.float32).reshape(-1, 4) * np.array([sx, sy, sx, sy], np.float32)

    def to_model(self, x: float, y: float) -> tuple[float, float]:
        """An input-image point (a click) -> the model frame."""
        sx, sy = self.scale
        return x / sx, y / sy


@dataclass(frozen=True, eq=False)
class DetectorInternals(ModelFrame):
    """What one pass of a two-stage detector computed; numpy arrays, model coordinates."""

    model_name: str
    categories: tuple[str, ...]
    image_size: tuple[int, int]  # (H, W) of the input image
    model_size: tuple[int, int]  # (h, w) after the transform's resize
    padded_size: tuple[int, int]  # (h, w) of the batch tensor (multiple of the size divisor)
    features: dict[str, np.ndarray]  # FPN maps (C, h, w), finest first
    objectness: tuple[np.ndarray, ...]  # per RPN level (A, h, w) logits
    anchor_sizes: tuple[tuple[float, ...], ...]
    aspect_ratios: tuple[tuple[float, ...], ...]
    anchors: np.ndarray  # (total, 4) float32, the RPN's flattened order
    rpn_candidates: Stage  # per-level top-k, clipped, small and low boxes removed: NMS input
    rpn_kept: Stage  # survivors of the RPN NMS, by score
    proposals: Stage  # the first post_nms_top_n survivors: what the box head sees
    rpn_nms_thresh: float
    det_candidates: Stage  # class-specific boxes above the score threshold: second NMS input
    det_kept: Stage  # survivors of the second NMS
    detections: Stage  # the first detections_per_img survivors: the model's output
    box_nms_thresh: float
    score_thresh: float
    mask_logits: np.ndarray | None  # (N, M, M) logits of each detection's own class
    box_pooler: PoolerInfo | None
    mask_pooler: PoolerInfo | None
    replay_matches: bool
    counts: dict[str, int] = field(default_factory=dict)
    timings: Timings = field(default_factory=Timings)
    pooled_box_features: np.ndarray | None = None  # (P, C, 7, 7) when captured with keep_pooled
    #: (N, C, M, M) every class's mask logits (the mask head predicts one mask per class); float32,
    #: or float16 when that would pass :data:`HEAD_BYTES` (COCO's 91 classes x 100 detections)
    mask_logits_all: np.ndarray | None = None
    #: Keypoint R-CNN: (N, K, 56, 56) keypoint logits, one map per keypoint type (same dtype rule)
    keypoint_logits: np.ndarray | None = None
    keypoints: np.ndarray | None = None  # (N, K, 3) the model's keypoints (x, y, score), model frame
    keypoint_names: tuple[str, ...] = ()
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)  # derived maps, computed once

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(self.features)

    @property
    def kinds(self) -> tuple[str, ...]:
        """The capture kinds this pass holds (the dock lists the tabs that draw them)."""
        return ("roi", "rpn") + (("mask_logits",) if self.mask_logits is not None else ()) + \
            (("keypoint_heatmaps",) if self.keypoint_logits is not None else ())

    def stride(self, name: str) -> tuple[int, int]:
        """``(sy, sx)`` of a feature map: padded size // map size, as the anchor generator uses."""
        h, w = self.features[name].shape[-2:]
        return self.padded_size[0] // h, self.padded_size[1] // w

    def heatmap_extent(self, grid_size: tuple[int, int]) -> tuple[float, float, float, float]:
        """The rectangle of a ``grid_size`` map (in cells) that the input image covers, for
        :func:`segviewer.render.heatmap.resample_grid` (the rest of the map is padding)."""
        gh, gw = grid_size
        return 0.0, 0.0, self.model_size[1] * gw / self.padded_size[1], self.model_size[0] * gh / self.padded_size[0]

    # ---------------------------------------------------------------- picking

    def detection_at(self, x: float, y: float) -> int:
        """The detection under an input-image click (smallest box); empty space raises."""
        if len(self.detections) == 0:
            raise NothingHereError("The model found no detections in this image.")
        return box_at(self.to_image(self.detections.boxes), x, y)

    def anchors_at(self, x: float, y: float, level: int) -> AnchorsAt:
        """The anchors of the RPN cell under an input-image click on ``level`` (model frame)."""
        mx, my = self.to_model(x, y)
        if not (0 <= mx < self.model_size[1] and 0 <= my < self.model_size[0]):
            raise NothingHereError(f"({x:.0f}, {y:.0f}) is outside the image; click on the image to see anchors.")
        grids = [o.shape[-2:] for o in self.objectness]
        return anchors_at(mx, my, level, grids, self.padded_size, self.anchor_sizes, self.aspect_ratios)

    def anchor_objectness(self, at: AnchorsAt) -> np.ndarray:
        """Objectness probabilities of the anchors in ``at``."""
        logits = self.objectness[at.level][:, at.row, at.col]
        return (1.0 / (1.0 + np.exp(-logits.astype(np.float64)))).astype(np.float32)

    # ---------------------------------------------------------------- views

    def objectness_map(self, level: int, anchor: int | None = None) -> np.ndarray:
        """``(h, w)`` objectness probability on a level: one anchor's, or the max over anchors."""
        if not 0 <= level < len(self.objectness):
            raise SegviewerError(f"Level {level} does not exist; the RPN has {len(self.objectness)} levels.")
        o = self.objectness[level]
        logit = o.max(axis=0) if anchor is None else o[anchor]
        return (1.0 / (1.0 + np.exp(-logit.astype(np.float64)))).astype(np.float32)

    def feature_energy(self, name: str) -> np.ndarray:
        """``(h, w)`` L2 norm over channels of an FPN map: where the level responds (cached)."""
        if name not in self.features:
            raise SegviewerError(f"No feature map {name!r}; the model has {', '.join(self.features)}.")
        key = f"energy:{name}"
        if key not in self._cache:
            f = self.features[name]
            self._cache[key] = np.sqrt(np.einsum("chw,chw->hw", f, f)).astype(np.float32)
        return self._cache[key]

    def _pooler_levels(self, pooler: PoolerInfo) -> tuple[list[tuple[int, int]], int]:
        sizes = [tuple(self.features[n].shape[-2:]) for n in pooler.featmap_names]
        # torchvision infers each level's scale as 2 ** round(log2(map height / resized image height))
        scales = [2.0 ** round(float(np.log2(np.float32(s[0]) / np.float32(self.model_size[0])))) for s in sizes]
        k_min = int(round(-np.log2(scales[0])))
        return sizes, k_min

    def roi_align(self, index: int, head: str = "box", aligned: bool = False) -> tuple[str, RoIAlignGrid]:
        """The RoIAlign grid of detection ``index`` in the box (7x7) or mask (14x14) head:
        ``(feature map name, grid)``; the grid is in the model frame (see :attr:`scale`)."""
        return self.roi_align_box(self._detection_box(index), head, aligned)

    def roi_align_box(self, box: np.ndarray, head: str = "box", aligned: bool = False) -> tuple[str, RoIAlignGrid]:
        """Like :meth:`roi_align` for any model-frame xyxy box (a proposal, a dragged box)."""
        if head not in ("box", "mask"):
            raise SegviewerError(f"Unknown RoI head {head!r}; use 'box' or 'mask'.")
        pooler = self.box_pooler if head == "box" else self.mask_pooler
        if pooler is None:
            raise SegviewerError(f"{self.model_name} has no {head} head pooler.")
        box = np.asarray(box, np.float64).reshape(4)
        sizes, k_min = self._pooler_levels(pooler)
        lvl = int(fpn_levels(box[None], k_min, k_min + len(sizes) - 1, pooler.canonical_scale,
                             pooler.canonical_level)[0]) - k_min
        scale = 2.0 ** -(k_min + lvl)
        grid = roi_align_grid(box, sizes[lvl], scale, pooler.output_size, pooler.sampling_ratio, aligned)
        return pooler.featmap_names[lvl], grid

    def roi_pool(self, index: int) -> tuple[str, RoIPoolGrid]:
        """RoIPool's quantised grid for detection ``index`` on the level RoIAlign would use."""
        name, grid = self.roi_align(index, "box")
        return name, roi_pool_grid(grid.box, grid.feature_size, grid.spatial_scale, grid.output_size)

    def _detection_box(self, index: int) -> np.ndarray:
        if not 0 <= index < len(self.detections):
            raise NothingHereError(f"Detection {index} does not exist; there are {len(self.detections)}.")
        return self.detections.boxes[index].astype(np.float64)

    def rpn_nms(self, level: int | None = None, iou_threshold: float | None = None) -> NMSTrace:
        """The RPN's NMS (per FPN level: torchvision calls ``batched_nms`` with the level as the
        group) replayed step by step on its candidates; with ``level``, only that level's boxes
        (levels never suppress each other). ``iou_threshold`` defaults to the model's.
        ``trace.ids`` are rows of :attr:`rpn_candidates`."""
        thr = self.rpn_nms_thresh if iou_threshold is None else float(iou_threshold)
        return self._trace(self.rpn_candidates, thr, level, "level")

    def box_nms(self, class_id: int | None = None, iou_threshold: float | None = None) -> NMSTrace:
        """The box head's per-class NMS replayed step by step; with ``class_id``, that class only
        (the fast path for a view: one class has at most one box per proposal)."""
        thr = self.box_nms_thresh if iou_threshold is None else float(iou_threshold)
        return self._trace(self.det_candidates, thr, class_id, "class")

    def _trace(self, c: Stage, thr: float, group: int | None, what: str) -> NMSTrace:
        rows = np.arange(len(c)) if group is None else np.flatnonzero(c.groups == group)
        if group is not None and rows.size == 0:
            raise NothingHereError(f"No NMS candidates of {what} {group}.")
        if group is not None:  # one group, with the full call's class offsets: identical decisions
            batch = (len(c), float(c.boxes.max()))
            return nms_trace(c.boxes[rows], c.scores[rows], thr, c.groups[rows], rows, batch)
        return nms_trace(c.boxes, c.scores, thr, c.groups, rows)

    def mask_probs(self, index: int) -> tuple[np.ndarray, tuple[int, int]]:
        """Detection ``index``'s mask probabilities pasted into its box at input-image resolution:
        ``(crop float32, (x0, y0))``, exactly as torchvision's ``paste_masks_in_image``."""
        if self.mask_logits is None:
            raise SegviewerError(f"{self.model_name} has no mask head.")
        box = self.to_image(self._detection_box(index))[0]
        return paste_mask(self.mask_logits[index], box, self.image_size)

    def paste_probs(self, index: int, probs: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
        """Any ``(M, M)`` probabilities of detection ``index`` (another class's channel, a softmax
        across classes) pasted into its box as :meth:`mask_probs` pastes the model's own."""
        box = self.to_image(self._detection_box(index))[0]
        return paste_mask(probs, box, self.image_size, probabilities=True)

    def masks(self, threshold: float = 0.5) -> MaskSet:
        """All detections' masks thresholded at input-image resolution, as compact crops."""
        h, w = self.image_size
        crops, offs = [], []
        for i in range(len(self.detections)):
            p, (x0, y0) = self.mask_probs(i)
            m = p > threshold
            crops.append(m if m.size else np.zeros((0, 0), bool))
            offs.append((x0, y0) if m.size else (0, 0))
        return MaskSet((h, w), tuple(crops), np.asarray(offs, np.int32).reshape(-1, 2))

    def nbytes(self) -> int:
        n = sum(f.nbytes for f in self.features.values()) + sum(o.nbytes for o in self.objectness)
        n += self.anchors.nbytes + sum(0 if a is None else a.nbytes for a in (
            self.mask_logits, self.mask_logits_all, self.keypoint_logits, self.keypoints))
        return int(n + (0 if self.pooled_box_features is None else self.pooled_box_features.nbytes))


def paste_mask(logits: np.ndarray, box: np.ndarray, image_size: tuple[int, int],
               probabilities: bool = False) -> tuple[np.ndarray, tuple[int, int]]:
    """Paste one ``(M, M)`` mask-logit map into an input-image box as probabilities
    (``probabilities``: the map already holds them, e.g. a softmax across classes).

    Same arithmetic as torchvision's ``paste_masks_in_image``: pad the mask by one cell, grow the
    box by ``(M + 2) / M``, truncate it to integers, resize bilinearly (``align_corners=False``) to
    ``x1 - x0 + 1`` by ``y1 - y0 + 1`` pixels, clip to the image. Returns the clipped crop and its
    top-left pixel; an empty crop when the box leaves the image.
    """
    import torch
    import torch.nn.functional as F
    from torchvision.models.detection.roi_heads import expand_boxes, expand_masks

    im_h, im_w = image_size
    probs = torch.as_tensor(np.asarray(logits, np.float32))
    probs = (probs if probabilities else torch.sigmoid(probs))[None, None]
    padded, scale = expand_masks(probs, padding=1)
    b = expand_boxes(torch.as_tensor(np.asarray(box, np.float32).reshape(1, 4)), scale).to(torch.int64)[0].tolist()
    w, h = max(int(b[2] - b[0] + 1), 1), max(int(b[3] - b[1] + 1), 1)
    x0, x1, y0, y1 = max(b[0], 0), min(b[2] + 1, im_w), max(b[1], 0), min(b[3] + 1, im_h)
    if x1 <= x0 or y1 <= y0:
        return np.zeros((0, 0), np.float32), (0, 0)
    up = F.interpolate(padded, size=(h, w), mode="bilinear", align_corners=False)[0, 0]
    return up[y0 - b[1]: y1 - b[1], x0 - b[0]: x1 - b[0]].numpy().astype(np.float32), (int(x0), int(y0))


# ------------------------------------------------------------------------- capture

def _module_of(model_or_adapter: Any) -> Any:
    import torch

    m = getattr(model_or_adapter, "module", model_or_adapter)
    if m is None:
        raise SegviewerError("The model is not loaded yet; load it before opening the internals view.")
    if not isinstance(m, torch.nn.Module):
        raise SegviewerError(f"Internals need a torch model; got {type(m).__name__}.")
    return m


def _check_two_stage(model: Any) -> None:
    missing = [n for n in ("transform", "backbone", "rpn", "roi_heads") if not hasattr(model, n)]
    if missing:
        kind = type(model).__name__
        raise NoRPNError(f"{kind} has no region proposal network, so there are no proposals, RoIs or "
                         "mask logits to show; open a Faster or Mask R-CNN for the internals view.")


def _pooler_info(pooler: Any) -> PoolerInfo | None:
    if pooler is None:
        return None
    size = pooler.output_size
    size = (int(size[0]), int(size[1])) if isinstance(size, (tuple, list)) else (int(size), int(size))
    return PoolerInfo(tuple(pooler.featmap_names), size, int(pooler.sampling_ratio),
                      int(getattr(pooler, "canonical_scale", 224)), int(getattr(pooler, "canonical_level", 4)))


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().float().cpu().numpy()


def _stage(boxes: torch.Tensor, scores: torch.Tensor, groups: torch.Tensor, source: torch.Tensor) -> Stage:
    return Stage(_np(boxes).reshape(-1, 4), _np(scores).reshape(-1), groups.cpu().numpy().astype(np.int64),
                 source.cpu().numpy().astype(np.int64))


def _replay_rpn(rpn: Any, objectness: list[torch.Tensor], deltas: list[torch.Tensor], anchors: torch.Tensor,
                image_shape: tuple[int, int]) -> tuple[Stage, Stage, Stage]:
    """torchvision's ``RegionProposalNetwork.filter_proposals`` for one image, stage by stage."""
    import torch
    from torchvision.models.detection.rpn import concat_box_prediction_layers
    from torchvision.ops import boxes as box_ops

    per_level = [int(o[0].numel()) for o in objectness]
    obj, reg = concat_box_prediction_layers(objectness, deltas)
    proposals = rpn.box_coder.decode(reg.detach(), [anchors]).view(-1, 4)
    obj = obj.detach().reshape(-1)
    levels = torch.cat([torch.full((n,), i, dtype=torch.int64) for i, n in enumerate(per_level)])
    idx, offset = [], 0
    for ob in obj.split(per_level):
        k = min(int(rpn.pre_nms_top_n()), int(ob.numel()))
        idx.append(ob.topk(k)[1] + offset)
        offset += int(ob.numel())
    top = torch.cat(idx)
    boxes = box_ops.clip_boxes_to_image(proposals[top], image_shape)
    scores, lvl, src = torch.sigmoid(obj[top]), levels[top], top
    keep = box_ops.remove_small_boxes(boxes, rpn.min_size)
    boxes, scores, lvl, src = boxes[keep], scores[keep], lvl[keep], src[keep]
    keep = torch.where(scores >= rpn.score_thresh)[0]
    boxes, scores, lvl, src = boxes[keep], scores[keep], lvl[keep], src[keep]
    candidates = _stage(boxes, scores, lvl, src)
    keep = box_ops.batched_nms(boxes, scores, lvl, rpn.nms_thresh)
    kept = _stage(boxes[keep], scores[keep], lvl[keep], src[keep])
    top_n = keep[: rpn.post_nms_top_n()]
    return candidates, kept, _stage(boxes[top_n], scores[top_n], lvl[top_n], src[top_n])


def _replay_box_head(heads: Any, class_logits: torch.Tensor, box_regression: torch.Tensor,
                     proposals: torch.Tensor, image_shape: tuple[int, int], score_thresh: float,
                     nms_thresh: float, detections_per_img: int) -> tuple[Stage, Stage, Stage]:
    """torchvision's ``RoIHeads.postprocess_detections`` for one image, stage by stage, with the
    thresholds the pass ran with."""
    import torch
    import torch.nn.functional as F
    from torchvision.ops import boxes as box_ops

    num_classes = class_logits.shape[-1]
    boxes = heads.box_coder.decode(box_regression, [proposals])
    scores = F.softmax(class_logits, -1)
    boxes = box_ops.clip_boxes_to_image(boxes.reshape(len(proposals), -1, 4), image_shape)
    labels = torch.arange(num_classes).view(1, -1).expand_as(scores)
    src = torch.arange(len(proposals)).view(-1, 1).expand_as(scores)
    boxes, scores, labels, src = boxes[:, 1:].reshape(-1, 4), scores[:, 1:].reshape(-1), \
        labels[:, 1:].reshape(-1), src[:, 1:].reshape(-1)
    inds = torch.where(scores > score_thresh)[0]
    boxes, scores, labels, src = boxes[inds], scores[inds], labels[inds], src[inds]
    keep = box_ops.remove_small_boxes(boxes, min_size=1e-2)
    boxes, scores, labels, src = boxes[keep], scores[keep], labels[keep], src[keep]
    candidates = _stage(boxes, scores, labels, src)
    keep = box_ops.batched_nms(boxes, scores, labels, nms_thresh)
    kept = _stage(boxes[keep], scores[keep], labels[keep], src[keep])
    top = keep[:detections_per_img]
    return candidates, kept, _stage(boxes[top], scores[top], labels[top], src[top])


class PassHooks:
    """Forward hooks, registered at construction, that record what ONE pass of a model computes
    into ``got`` (a context manager: leaving it removes them). A subclass registers its hooks
    (``keep(key)`` stores a module's output) and names the ``required`` keys a complete pass fills."""

    required: tuple[str, ...] = ()

    def __init__(self, model: Any) -> None:
        self.model, self.got, self.handles = model, {}, []

    def keep(self, key: str):  # noqa: ANN201
        got = self.got

        def hook(_mod, _inp, out):  # noqa: ANN001, ANN202
            got[key] = out
        return hook

    def __enter__(self) -> dict[str, Any]:
        return self.got

    def __exit__(self, *exc: object) -> None:
        for h in self.handles:
            h.remove()

    def complete(self, name: str) -> None:
        missing = [k for k in self.required if k not in self.got]
        if missing:
            raise SegviewerError(f"{name}'s forward pass did not run its {missing[0]} stage, so there are no "
                                 "internals to show.")


class DetectorHooks(PassHooks):
    """Forward hooks on a two-stage detector that record what ONE pass computes, whoever runs it
    (our manual stage-by-stage run, or an adapter's own ``predict``). The RoI heads' thresholds
    are read while they run: an adapter sets them from its ``PredictParams`` and restores them
    afterwards, and the replay must use the values the pass used."""

    required = ("images", "rpn_head", "anchors", "detections", "box_predictor")

    def __init__(self, model: Any, keep_pooled: bool = False) -> None:
        super().__init__(model)
        rpn, heads = model.rpn, model.roi_heads
        got, keep = self.got, self.keep

        def rpn_hook(_mod, args, kwargs, out):  # noqa: ANN001, ANN202
            got["images"] = args[0] if args else kwargs["images"]
            got["features"] = args[1] if len(args) > 1 else kwargs["features"]
            got["proposals"] = out[0]

        def heads_pre(_mod, _args):  # noqa: ANN001, ANN202
            got["thresholds"] = (float(heads.score_thresh), float(heads.nms_thresh), int(heads.detections_per_img))

        def heads_hook(_mod, _inp, out):  # noqa: ANN001, ANN202
            got["detections"] = out[0][0]

        self.handles = [rpn.register_forward_hook(rpn_hook, with_kwargs=True),
                        rpn.head.register_forward_hook(keep("rpn_head")),
                        rpn.anchor_generator.register_forward_hook(keep("anchors")),
                        heads.register_forward_pre_hook(heads_pre),
                        heads.register_forward_hook(heads_hook),
                        heads.box_predictor.register_forward_hook(keep("box_predictor"))]
        if getattr(heads, "mask_predictor", None) is not None:
            self.handles.append(heads.mask_predictor.register_forward_hook(keep("mask_logits")))
        if getattr(heads, "keypoint_predictor", None) is not None:
            self.handles.append(heads.keypoint_predictor.register_forward_hook(keep("keypoint_logits")))
        if keep_pooled:
            self.handles.append(heads.box_roi_pool.register_forward_hook(keep("box_pooled")))



def build_internals(model: Any, got: dict[str, Any], image_size: tuple[int, int], name: str,
                     cats: tuple[str, ...], tm: Timings, keep_pooled: bool = False,
                     keypoint_names: tuple[str, ...] = ()) -> DetectorInternals:
    """A :class:`DetectorInternals` from what :class:`DetectorHooks` recorded: the steps between
    hooked modules replayed with torchvision's own ops (stage ``replay`` in ``tm``)."""
    import torch

    rpn, heads = model.rpn, model.roi_heads
    images, dets = got["images"], got["detections"]
    score_thresh, nms_thresh, per_img = got.get(
        "thresholds", (float(heads.score_thresh), float(heads.nms_thresh), int(heads.detections_per_img)))
    with tm.stage("replay"):
        feats = got["features"]
        if isinstance(feats, torch.Tensor):
            feats = {"0": feats}
        cpu = {k: v.detach().cpu() for k, v in feats.items()}
        shape = tuple(int(v) for v in images.image_sizes[0])
        obj, deltas = (list(t) for t in got["rpn_head"])
        obj, deltas = [o.cpu() for o in obj], [d.cpu() for d in deltas]
        anchors = got["anchors"][0].cpu()
        rpn_cand, rpn_kept, rpn_top = _replay_rpn(rpn, obj, deltas, anchors, shape)
        logits, regression = (t.cpu() for t in got["box_predictor"])
        det_cand, det_kept, det_top = _replay_box_head(heads, logits, regression, got["proposals"][0].cpu(), shape,
                                                       score_thresh, nms_thresh, per_img)
        mask_logits = mask_all = kp_logits = kps = None
        if "mask_logits" in got:
            ml = got["mask_logits"].cpu()
            lab = dets["labels"].cpu()
            mask_logits = _np(ml[torch.arange(len(lab)), lab]) if len(lab) else np.zeros((0, *ml.shape[-2:]), np.float32)
            mask_all = _head_array(ml[: len(lab)])
        if getattr(heads, "keypoint_predictor", None) is not None and "keypoints" in dets:
            n_det = len(dets["boxes"])
            kl = got.get("keypoint_logits")
            if kl is None and n_det:
                raise SegviewerError(f"the keypoint head did not run for {n_det} detections")
            kp_logits = _head_array(kl[:n_det].cpu()) if kl is not None else np.zeros(
                (0, dets["keypoints"].shape[1], 56, 56), np.float32)
            kps = np.concatenate([_np(dets["keypoints"])[..., :2], _np(dets["keypoints_scores"])[..., None]], -1)
        matches = bool(
            np.array_equal(rpn_top.boxes, _np(got["proposals"][0]).reshape(-1, 4))
            and np.array_equal(det_top.boxes, _np(dets["boxes"]).reshape(-1, 4))
            and np.array_equal(det_top.scores, _np(dets["scores"]).reshape(-1))
            and np.array_equal(det_top.groups, dets["labels"].cpu().numpy())
        )
    gen = rpn.anchor_generator
    kp_names = tuple(keypoint_names)
    if kp_logits is not None and len(kp_names) != kp_logits.shape[1]:
        kp_names = tuple(f"keypoint {i + 1}" for i in range(kp_logits.shape[1]))
    ncls = int(got["box_predictor"][0].shape[-1])
    if len(cats) != ncls:
        cats = ("__background__",) + tuple(f"class {i}" for i in range(1, ncls))
    counts = {
        "anchors": len(anchors), "rpn_candidates": len(rpn_cand), "rpn_kept": len(rpn_kept),
        "proposals": len(rpn_top), "det_candidates": len(det_cand), "det_kept": len(det_kept),
        "detections": len(det_top),
    }
    return DetectorInternals(
        model_name=str(name), categories=tuple(cats), image_size=(int(image_size[0]), int(image_size[1])),
        model_size=shape, padded_size=(int(images.tensors.shape[-2]), int(images.tensors.shape[-1])),
        features={k: _np(v[0]) for k, v in cpu.items()}, objectness=tuple(_np(o[0]) for o in obj),
        anchor_sizes=tuple(tuple(float(s) for s in sz) for sz in gen.sizes),
        aspect_ratios=tuple(tuple(float(r) for r in ar) for ar in gen.aspect_ratios),
        anchors=_np(anchors), rpn_candidates=rpn_cand, rpn_kept=rpn_kept, proposals=rpn_top,
        rpn_nms_thresh=float(rpn.nms_thresh), det_candidates=det_cand, det_kept=det_kept, detections=det_top,
        box_nms_thresh=nms_thresh, score_thresh=score_thresh,
        mask_logits=mask_logits, box_pooler=_pooler_info(heads.box_roi_pool),
        mask_pooler=_pooler_info(getattr(heads, "mask_roi_pool", None)), replay_matches=matches,
        counts=counts, timings=tm,
        pooled_box_features=_np(got["box_pooled"]) if keep_pooled and "box_pooled" in got else None,
        mask_logits_all=mask_all, keypoint_logits=kp_logits, keypoints=kps, keypoint_names=kp_names,
    )


def check_internals_image(img: Any) -> np.ndarray:
    img = np.asarray(img)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3 or min(img.shape[:2]) < 1:
        raise SegviewerError(f"The internals view needs an RGB uint8 (H, W, 3) image; got {img.dtype} {img.shape}.")
    return img


def capture_internals(model_or_adapter: Any, image: np.ndarray, score_thresh: float | None = None,
                      keep_pooled: bool = False, categories: tuple[str, ...] | None = None) -> DetectorInternals:
    """Run a two-stage torchvision detector once on an RGB uint8 image and record its internals.

    ``model_or_adapter`` is a ``TorchvisionDetector`` (its ``.module``) or the torch model itself;
    the pass is torchvision's own (its transform's resize). The app uses
    ``adapters.one_pass.predict_with_internals`` instead, which hooks the adapter's ``predict`` so the layers
    and the internals come from the same pass. ``score_thresh`` temporarily overrides the box
    head's threshold (random-init models score everything low). A model without an RPN raises
    :class:`NoRPNError`.
    """
    import torch

    model = _module_of(model_or_adapter)
    _check_two_stage(model)
    img = check_internals_image(image)
    card = getattr(model_or_adapter, "card", None)
    name = getattr(card, "id", type(model).__name__)
    cats = categories or tuple(getattr(card, "categories", ()))
    rpn, heads = model.rpn, model.roi_heads
    device = next(model.parameters()).device
    tm = Timings()
    old_thresh = heads.score_thresh
    was_training = model.training
    hooks = DetectorHooks(model, keep_pooled)
    try:
        if score_thresh is not None:
            heads.score_thresh = float(score_thresh)
        model.eval()
        with hooks as got, torch.inference_mode():
            with tm.stage("preprocess"):
                x = torch.from_numpy(np.ascontiguousarray(img)).to(device).permute(2, 0, 1).float().div_(255.0)
                images, _ = model.transform([x])
            with tm.stage("model"):
                feats = model.backbone(images.tensors)
                if isinstance(feats, torch.Tensor):
                    feats = {"0": feats}
                proposals, _ = rpn(images, feats)
                heads(feats, proposals, images.image_sizes)
            hooks.complete(str(name))
            return build_internals(model, got, img.shape[:2], str(name), cats, tm, keep_pooled,
                                   tuple(getattr(card, "keypoint_names", ())))
    except RuntimeError as err:
        raise ModelError(f"{name} failed while capturing internals ({str(err).splitlines()[0]})") from err
    finally:
        heads.score_thresh = old_thresh
        model.train(was_training)


def capture_activations(model_or_adapter: Any, inputs: Any, module_names: list[str] | tuple[str, ...],
                        reduce: str | None = None) -> dict[str, np.ndarray]:
    """Outputs of named submodules from one forward pass (e.g. an FCN's ``score_pool4`` and
    ``score_pool3`` skip scores, a U-Net's decoder stages), as float32 numpy arrays of the first
    batch item.

    ``inputs`` is what the model's ``forward`` takes (a tensor, or a list for detectors).
    ``reduce="norm"`` turns ``(C, h, w)`` maps into ``(h, w)`` channel L2 norms (cheap heatmaps).
    An unknown module name is refused before anything runs, naming the first few valid ones.
    """
    import torch

    model = _module_of(model_or_adapter)
    modules = dict(model.named_modules())
    missing = [n for n in module_names if n not in modules or not n]
    if missing:
        some = ", ".join([n for n in modules if n][:8])
        raise SegviewerError(f"{type(model).__name__} has no submodule {missing[0]!r}; some that exist: {some}.")
    if reduce not in (None, "norm"):
        raise SegviewerError(f"Unknown reduction {reduce!r}; use None or 'norm'.")
    got: dict[str, Any] = {}

    def keep(name: str):  # noqa: ANN202
        def hook(_mod, _inp, out):  # noqa: ANN001, ANN202
            if isinstance(out, dict):
                out = next(iter(out.values()))
            elif isinstance(out, (tuple, list)):
                out = out[0]
            got[name] = out.detach()
        return hook

    hooks = [modules[n].register_forward_hook(keep(n)) for n in module_names]
    was_training = model.training
    try:
        model.eval()
        with torch.inference_mode():
            model(inputs)
    except RuntimeError as err:
        raise ModelError(f"{type(model).__name__} failed while capturing activations ({str(err).splitlines()[0]})") from err
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    out: dict[str, np.ndarray] = {}
    for n in module_names:
        if n not in got:
            raise SegviewerError(f"Submodule {n!r} did not run in this forward pass.")
        t = got[n].float().cpu()
        a = t[0].numpy() if t.ndim >= 1 and t.shape[0] >= 1 else t.numpy()
        if reduce == "norm" and a.ndim == 3:
            a = np.sqrt(np.einsum("chw,chw->hw", a, a)).astype(np.float32)
        out[n] = np.ascontiguousarray(a, np.float32)
    return out
