"""Mask Scoring R-CNN on the bundled shapes Mask R-CNN: both scoring rules from ONE forward pass.

The card ``shapes_msrcnn`` pairs the frozen ``shapes_maskrcnn.pt`` with a MaskIoU head
(:mod:`segviewer.adapters.nets.maskiou`, file named by the card's ``maskiou_checkpoint``). While
the Mask R-CNN predicts, hooks on its RoI heads catch the mask RoI features (``mask_roi_pool``'s
14 x 14 output for the final detections) and the mask logits; the MaskIoU head then runs on those
same tensors, so nothing is computed twice. Scoring rules (``params.extra["scoring"]``):

* ``"box"`` -- Mask R-CNN: a mask's score is its box's classification score ``s_cls``;
* ``"mask"`` (default) -- Mask Scoring R-CNN: ``s_mask = s_cls * s_iou`` with ``s_iou`` the
  predicted mask IoU of the detection's class.

Detections keep the model's order (index i is the model's i-th detection whatever the rule), so
the Internals dock's views line up with the layers.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import tomllib

from segviewer.adapters.base import ModelCard, PredictParams, ProgressCallback
from segviewer.adapters.internals import DetectorInternals
from segviewer.adapters.shapes import ShapesMaskRCNN
from segviewer.core.errors import CheckpointMismatchError, SegviewerError, WeightsUnavailableError
from segviewer.core.results import Detections
from segviewer.core.timing import Timings

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["MaskScoringHooks", "MaskScores", "MaskScoringInternals", "ShapesMaskScoring", "SCORING_RULES",
           "MASK_SCORING_KINDS"]

SCORING_RULES = ("box", "mask")
MASK_SCORING_KINDS = ("mask_scoring",)


class MaskScoringHooks:
    """Forward hooks on a torchvision Mask R-CNN's RoI heads: the mask RoI features and the mask
    logits of the final detections, as the pass computes them (eval mode: ``mask_roi_pool`` runs
    once, on the detections' boxes, in their order)."""

    def __init__(self, roi_heads: Any) -> None:
        self.got: dict[str, Any] = {}
        if getattr(roi_heads, "mask_roi_pool", None) is None or getattr(roi_heads, "mask_predictor", None) is None:
            raise SegviewerError("Mask scoring needs a Mask R-CNN (a mask head); this model has none.")
        self._mods = (("features", roi_heads.mask_roi_pool), ("logits", roi_heads.mask_predictor))
        self._handles: list[Any] = []

    def __enter__(self) -> dict[str, Any]:
        self.got.clear()

        def keep(key: str):  # noqa: ANN202
            def hook(_mod, _inp, out):  # noqa: ANN001, ANN202
                self.got[key] = out.detach()
            return hook

        self._handles = [m.register_forward_hook(keep(k)) for k, m in self._mods]
        return self.got

    def __exit__(self, *exc: object) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []


def predicted_iou(head: Any, features: torch.Tensor | None, logits: torch.Tensor | None,
                  labels: np.ndarray) -> np.ndarray:
    """(N,) float32 predicted mask IoU of each detection (its class's), from the hooked tensors."""
    import torch

    n = len(labels)
    if n == 0:
        return np.zeros(0, np.float32)
    if features is None or logits is None or features.shape[0] != n or logits.shape[0] != n:
        raise SegviewerError(f"the mask head did not run on the {n} detections")
    lab = torch.as_tensor(np.asarray(labels, np.int64), device=logits.device)
    with torch.inference_mode():
        mask = torch.sigmoid(logits[torch.arange(n, device=logits.device), lab].float())
        p = next(head.parameters())
        iou = head.predict_iou(features.to(p.dtype), mask.to(p.dtype), lab)
    return iou.float().cpu().numpy().astype(np.float32)


@dataclass(frozen=True, eq=False)
class MaskScores:
    """Both scoring rules of one pass, per detection (the model's order)."""

    box_scores: np.ndarray  # (N,) s_cls: Mask R-CNN's score
    mask_iou: np.ndarray  # (N,) s_iou: the MaskIoU head's predicted IoU of the detection's class
    labels: np.ndarray  # (N,) class ids

    @property
    def mask_scores(self) -> np.ndarray:
        """(N,) Mask Scoring R-CNN's score ``s_cls * s_iou``."""
        return (self.box_scores * self.mask_iou).astype(np.float32)

    def scores(self, rule: str) -> np.ndarray:
        if rule not in SCORING_RULES:
            raise SegviewerError(f"unknown scoring rule {rule!r}; use 'box' or 'mask'")
        return self.box_scores.astype(np.float32) if rule == "box" else self.mask_scores


@dataclass(frozen=True, eq=False)
class MaskScoringInternals(DetectorInternals):
    """A two-stage pass's internals plus the MaskIoU head's output (kind ``mask_scoring``)."""

    mask_scoring: MaskScores | None = None
    rule: str = "mask"

    @property
    def kinds(self) -> tuple[str, ...]:
        return super().kinds + MASK_SCORING_KINDS


def _rule(params: PredictParams) -> str:
    rule = str(dict(params.extra).get("scoring", "mask"))
    if rule not in SCORING_RULES:
        raise SegviewerError(f"scoring must be 'box' (Mask R-CNN) or 'mask' (Mask Scoring R-CNN); got {rule!r}")
    return rule


class ShapesMaskScoring(ShapesMaskRCNN):
    """The shapes Mask R-CNN with a MaskIoU head: ``predict`` scores by ``params.extra["scoring"]``."""
    params_keys: tuple[str, ...] = ("min_size", "scoring")  # the PredictParams.extra keys it reads (--set checks them)

    def __init__(self, card: ModelCard) -> None:
        super().__init__(card)
        self.head: Any = None

    def _maskiou_path(self) -> Path | None:
        card_path = self.card.extra.get("card_path")
        if not card_path:
            return None
        data = tomllib.loads(Path(card_path).read_text(encoding="utf-8"))
        name = data.get("maskiou_checkpoint")
        if not name:
            raise CheckpointMismatchError(f"{self.card.id}: the card names no maskiou_checkpoint")
        path = Path(card_path).parent / str(name)
        want = data.get("maskiou_sha256")
        if path.is_file() and want and hashlib.sha256(path.read_bytes()).hexdigest() != want:
            raise CheckpointMismatchError(f"{path.name} does not match the card's maskiou_sha256")
        return path

    def load(self, device: str, weights: Path | None = None, progress: ProgressCallback | None = None) -> None:
        """The Mask R-CNN (bundled or ``weights``), then the MaskIoU head the card names
        (random init when the card's weights are "none": plumbing tests)."""
        from segviewer.adapters.nets import checkpoint
        from segviewer.adapters.nets.maskiou import build_maskiou

        super().load(device, weights, progress)
        if self.card.weights_source == "none":
            head = build_maskiou({"num_classes": len(self.card.categories),
                                  "in_channels": int(self.config.get("fpn_channels", 128))})
        else:
            path = self._maskiou_path()
            if path is None or not path.is_file():
                raise WeightsUnavailableError(f"{self.card.id}: the MaskIoU head's checkpoint is missing from models/")
            ck = checkpoint.load(path)
            if ck.get("model") != "maskiou":
                raise CheckpointMismatchError(f"{path.name} holds a {ck.get('model')!r}, not a MaskIoU head")
            head = build_maskiou(dict(ck.get("config") or {}))
            checkpoint.load_weights(head, ck["state_dict"], path.name)
            if head.num_classes != len(self.card.categories):
                raise CheckpointMismatchError(f"{path.name} scores {head.num_classes} classes, the model has "
                                              f"{len(self.card.categories)}")
        self.head = head.float().eval().to(device)

    def predict_scored(self, image: np.ndarray, params: PredictParams | None = None,
                       timings: Timings | None = None) -> tuple[Detections, MaskScores]:
        """ONE forward pass: the detections scored by the params' rule, and both rules' scores."""
        params = params or PredictParams()
        rule = _rule(params)
        if self.head is None:
            raise SegviewerError(f"{self.card.id} is not loaded yet")
        tm = timings if timings is not None else Timings()
        model, _ = self._require()
        hooks = MaskScoringHooks(model.roi_heads)
        with hooks as got:
            det = super().predict(image, params, tm)
        with tm.stage("maskiou"):
            iou = predicted_iou(self.head, got.get("features"), got.get("logits"), det.class_ids)
        ms = MaskScores(det.scores.astype(np.float32), iou, det.class_ids.astype(np.int64))
        return dataclasses.replace(det, scores=ms.scores(rule)), ms

    def predict(self, image: np.ndarray, params: PredictParams | None = None,
                timings: Timings | None = None) -> Detections:
        return self.predict_scored(image, params, timings)[0]

    def predict_mask_scoring(self, image: np.ndarray, params: PredictParams | None = None,
                             timings: Timings | None = None) -> tuple[Detections, Any]:
        """The Internals dock's pass: the two-stage internals (hooked) plus both scoring rules,
        all from the same forward pass (:class:`MaskScoringInternals`)."""
        from segviewer.adapters.internals import DetectorHooks, build_internals, check_internals_image
        from segviewer.adapters.one_pass import InternalsUnavailable

        params = params or PredictParams()
        tm = timings if timings is not None else Timings()
        img = check_internals_image(image)
        model, _ = self._require()
        hooks = DetectorHooks(model)
        with hooks:
            det, ms = self.predict_scored(img, params, tm)
        try:
            hooks.complete(self.card.id)
            it = build_internals(model, hooks.got, img.shape[:2], self.card.id, tuple(self.card.categories),
                                 Timings(tm))
        except (SegviewerError, RuntimeError, KeyError, IndexError) as err:
            return det, InternalsUnavailable(f"{self.card.id}: the internals could not be rebuilt from its pass ({err}).")
        tm["internals"] = it.timings.get("replay", 0.0)
        fields = {f.name: getattr(it, f.name) for f in dataclasses.fields(DetectorInternals)}
        return det, MaskScoringInternals(**fields, mask_scoring=ms, rule=_rule(params))
