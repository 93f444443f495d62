"""One adapter for torchvision's detection zoo: Faster/Mask/Keypoint R-CNN, RetinaNet, FCOS, SSDlite.

The network is built with ``weights=None, weights_backbone=None`` (so torchvision never fetches
anything) and the full state dict is loaded here, from the user's file, the hub cache or a download
(:mod:`segviewer.adapters.weights`). A user checkpoint fine-tuned on other classes is built with the
class count read from its own tensors.

Two-stage models (the R-CNNs) are run step by step (transform, backbone, RPN, RoI heads) rather than
through ``forward`` so that masks can be pasted straight into crops: torchvision's own post-processing
pastes N full-frame float masks. One-stage models run through ``forward`` (boxes only, cheap).
Coordinates: boxes xyxy and keypoints (x, y) in the input image's continuous pixel coordinates,
as torchvision returns them. Keypoint scores are torchvision's heatmap logits (not probabilities).
Mask R-CNN results also carry ``mask_logits``: the mask head's raw 28x28 logits of each detection's
class, captured by a forward hook in the same pass (for UPSNet's panoptic head).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from segviewer.adapters._convert import (
    PRESHRINK_BELOW,
    MaskLogitsHook,
    check_image,
    image_to_tensor,
    paste_masks_compact,
    shrink_image,
)
from segviewer.adapters.base import ModelCard, PredictParams, ProgressCallback, TorchAdapterState
from segviewer.adapters.weights import check_state_dict, read_class_names, read_state_dict, resolve_weights
from segviewer.core.errors import ModelError, SegviewerError
from segviewer.core.results import Detections
from segviewer.core.timing import Timings

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["TorchvisionDetector", "SPECS", "DetectorSpec"]

_RCNN_CLS = "roi_heads.box_predictor.cls_score.weight"
_HEAD_CLS = "head.classification_head.cls_logits.weight"
_SSD_CLS = "head.classification_head.module_list.0.1.weight"
_KPS = "roi_heads.keypoint_predictor.kps_score_lowres.weight"


@dataclass(frozen=True)
class DetectorSpec:
    """What differs between the builders, as far as loading and running them goes."""

    class_key: str  # the tensor whose first dimension is anchors_per_location x num_classes
    anchors_per_location: int
    two_stage: bool
    # torchvision sets the backbone's (Frozen)BatchNorm eps to 0 after loading these released
    # COCO_V1 weights (pytorch/vision#2933); our BatchNorm2d build must do the same to match.
    zero_bn_eps: bool = False


SPECS: dict[str, DetectorSpec] = {
    "maskrcnn_resnet50_fpn": DetectorSpec(_RCNN_CLS, 1, True, True),
    "maskrcnn_resnet50_fpn_v2": DetectorSpec(_RCNN_CLS, 1, True),
    "fasterrcnn_resnet50_fpn": DetectorSpec(_RCNN_CLS, 1, True, True),
    "fasterrcnn_resnet50_fpn_v2": DetectorSpec(_RCNN_CLS, 1, True),
    "fasterrcnn_mobilenet_v3_large_fpn": DetectorSpec(_RCNN_CLS, 1, True),
    "keypointrcnn_resnet50_fpn": DetectorSpec(_RCNN_CLS, 1, True, True),
    "retinanet_resnet50_fpn": DetectorSpec(_HEAD_CLS, 9, False, True),
    "retinanet_resnet50_fpn_v2": DetectorSpec(_HEAD_CLS, 9, False),
    "fcos_resnet50_fpn": DetectorSpec(_HEAD_CLS, 1, False),
    "ssdlite320_mobilenet_v3_large": DetectorSpec(_SSD_CLS, 6, False),
}


def _count_from(state: dict[str, Any], key: str, per: int, dim: int, source: str, model_id: str) -> int:
    from segviewer.core.errors import CheckpointMismatchError

    t = state.get(key)
    if t is None or t.ndim <= dim:
        raise CheckpointMismatchError(f"{source} does not fit {model_id}: tensor {key} is missing from the checkpoint")
    rows = int(t.shape[dim])
    if rows % per:
        raise CheckpointMismatchError(
            f"{source} does not fit {model_id}: tensor {key} has {rows} rows, not a multiple of {per} anchors"
        )
    return rows // per


class TorchvisionDetector(TorchAdapterState):
    """A torchvision detection / instance / keypoint model behind the :class:`ModelAdapter` interface."""
    params_keys: tuple[str, ...] = ("min_size", "max_size")  # the PredictParams.extra keys it reads (--set checks them)

    def __init__(self, card: ModelCard) -> None:
        builder = str(card.extra.get("builder", card.id))
        if builder not in SPECS:
            raise SegviewerError(f"{card.id!r} is not a torchvision detection model segviewer knows")
        self.card = card
        self._base_card = card
        self._builder = builder
        self._spec = SPECS[builder]
        super().__init__()
        self._default_sizes: tuple[Any, Any] | None = None

    # ------------------------------------------------------------------ loading

    def _build(self, num_classes: int, num_keypoints: int | None) -> torch.nn.Module:
        from segviewer.adapters.runtime import import_torchvision

        import_torchvision()  # without TorchDynamo: 1.2 s off the load
        from torchvision.models import get_model

        kwargs: dict[str, Any] = {"weights": None, "weights_backbone": None, "num_classes": num_classes}
        if num_keypoints is not None:
            kwargs["num_keypoints"] = num_keypoints
        return get_model(self._builder, **kwargs)

    def load(self, device: str, weights: Path | None = None, progress: ProgressCallback | None = None,
             *, allow_download: bool | None = None) -> None:
        """Build the network on ``device`` and load weights (user file > hub cache > download)."""
        import torch

        base = self._base_card
        state: dict[str, torch.Tensor] | None = None
        path: Path | None = None
        if weights is not None or base.weights_source == "torchvision":
            if weights is None and not base.weights_url:
                raise SegviewerError(f"{base.id} has no weights URL")
            path = resolve_weights(base.id, base.weights_url or "", user_file=weights,
                                   allow_download=allow_download, progress=progress)
            state = read_state_dict(path)
        elif base.weights_source != "none":
            raise SegviewerError(f"{base.id}: weights source {base.weights_source!r} is not one a torchvision model uses")

        is_kp = base.task == "keypoint"
        num_classes, num_kps = len(base.categories), (len(base.keypoint_names) or 17) if is_kp else None
        user_file = weights is not None and path is not None and path.name != base.weights_file
        if state is not None and path is not None:
            num_classes = _count_from(state, self._spec.class_key, self._spec.anchors_per_location, 0, path.name, base.id)
            if is_kp:
                num_kps = _count_from(state, _KPS, 1, 1, path.name, base.id)
        try:
            model = self._build(num_classes, num_kps)
        except (ValueError, RuntimeError) as err:
            raise ModelError(f"{base.id} could not be built with {num_classes} classes ({err})") from err
        if state is not None and path is not None:
            check_state_dict(model, state, source=path.name, model_id=base.id)
            model.load_state_dict(state, strict=False)  # strict apart from num_batches_tracked, checked above
            if self._spec.zero_bn_eps and not user_file:
                for m in model.modules():
                    if isinstance(m, torch.nn.BatchNorm2d):
                        m.eps = 0.0
        model.eval().to(device)
        self.module = model
        self._device = device
        self.weights_path = path
        t = getattr(model, "transform", None)
        self._default_sizes = (t.min_size, t.max_size) if t is not None else None
        self.card = self._card_for(path, num_classes, num_kps, user_file)

    def _card_for(self, path: Path | None, num_classes: int, num_kps: int | None, user_file: bool) -> ModelCard:
        base = self._base_card
        if path is None:
            return base
        extra = {**base.extra, "weights_path": str(path)}
        if not user_file:
            return dataclasses.replace(base, extra=extra)
        cats, kps, names_file = read_class_names(path, num_classes, background=True, num_keypoints=num_kps or 0)
        if names_file is None and num_classes == len(base.categories):
            cats = base.categories  # fine-tuned on the same label space: keep its names
        if kps is None:
            kps = base.keypoint_names if num_kps == len(base.keypoint_names) else tuple(
                f"keypoint {i + 1}" for i in range(num_kps or 0))
        if names_file is not None:
            extra["names_file"] = str(names_file)
        return dataclasses.replace(
            base, categories=cats, keypoint_names=kps if num_kps else (),
            skeleton=base.skeleton if kps == base.keypoint_names else (),
            weights_file=path.name, extra=extra,
        )

    # ------------------------------------------------------------------ predicting

    def _apply(self, params: PredictParams) -> None:
        """Push the parameters that change a prediction into the torch modules."""
        m = self.module
        heads = m.roi_heads if self._spec.two_stage else m  # type: ignore[union-attr]
        heads.score_thresh = float(params.min_score)
        heads.detections_per_img = int(params.max_detections)
        extra = dict(params.extra)
        t = getattr(m, "transform", None)
        if t is not None and self._default_sizes is not None and not getattr(t, "fixed_size", None):
            min_size, max_size = self._default_sizes
            if "min_size" in extra:
                min_size = (int(extra["min_size"]),)
            if "max_size" in extra:
                max_size = int(extra["max_size"])
            if min(min_size) < 16 or max_size < 16:
                raise SegviewerError(f"min_size and max_size must be at least 16 pixels, got {min_size[-1]} and {max_size}")
            t.min_size, t.max_size = min_size, max_size

    def _target_size(self, h: int, w: int) -> tuple[int, int] | None:
        """The (H, W) the model's transform will resize an ``h x w`` image to, when far smaller."""
        t = getattr(self.module, "transform", None)
        if t is None:
            return None
        if getattr(t, "fixed_size", None):
            th, tw = int(t.fixed_size[0]), int(t.fixed_size[1])
            return (th, tw) if th < h * PRESHRINK_BELOW and tw < w * PRESHRINK_BELOW else None
        scale = min(float(t.min_size[-1]) / min(h, w), float(t.max_size) / max(h, w))
        return (round(h * scale), round(w * scale)) if scale < PRESHRINK_BELOW else None

    def predict(self, image: np.ndarray, params: PredictParams | None = None,
                timings: Timings | None = None) -> Detections:
        """Detections above ``params.min_score`` in ``image``'s pixel coordinates (masks as crops).

        ``params.extra`` may hold ``min_size`` / ``max_size`` (the resize of the image's short / long
        side before the network; torchvision's defaults are 800 / 1333) to trade accuracy for speed.
        An image more than twice the network's input size is first shrunk on the CPU by area
        averaging (see :data:`~segviewer.adapters._convert.PRESHRINK_BELOW`); outputs are mapped
        back to the original pixels.
        """
        import torch
        from torchvision.models.detection.transform import resize_boxes, resize_keypoints

        if self.module is None or self._device is None:
            raise SegviewerError(f"{self.card.id} is not loaded yet")
        img = check_image(image)
        params = params or PredictParams()
        tm = timings if timings is not None else Timings()
        model, dev = self.module, self._device
        h, w = img.shape[:2]
        self._apply(params)
        try:
            with torch.inference_mode():
                with tm.stage("preprocess"):
                    target = self._target_size(h, w)
                    small, sx, sy = shrink_image(img, target) if target else (img, 1.0, 1.0)
                    x = image_to_tensor(small, dev)
                    if self._spec.two_stage:
                        images, _ = model.transform([x])
                with tm.stage("model"):
                    if self._spec.two_stage:
                        feats = model.backbone(images.tensors)
                        if isinstance(feats, torch.Tensor):
                            feats = {"0": feats}
                        proposals, _ = model.rpn(images, feats)
                        with MaskLogitsHook(model.roi_heads) as hook:  # same pass, no second run
                            out = model.roi_heads(feats, proposals, images.image_sizes)[0][0]
                        mask_logits = hook.select(out["labels"]) if "masks" in out else None
                    else:
                        out = model([x])[0]
                        mask_logits = None
                    if dev.startswith("cuda"):
                        torch.cuda.synchronize()
                with tm.stage("postprocess"):
                    boxes = out["boxes"]
                    masks = kps = None
                    if not self._spec.two_stage and (sx, sy) != (1.0, 1.0):
                        boxes = boxes * boxes.new_tensor([sx, sy, sx, sy])
                    if self._spec.two_stage:  # from the network's input size straight to the original
                        resized = images.image_sizes[0]
                        boxes = resize_boxes(boxes, resized, (h, w))
                        if "masks" in out:
                            masks = paste_masks_compact(out["masks"], boxes, (h, w))
                        if "keypoints" in out:
                            xy = resize_keypoints(out["keypoints"], resized, (h, w))[..., :2]
                            kps = torch.cat([xy, out["keypoints_scores"][..., None]], dim=-1).cpu().numpy()
                    return Detections(
                        (h, w), boxes.cpu().numpy(), out["scores"].cpu().numpy(),
                        out["labels"].cpu().numpy().astype(np.int32), self.card.categories,
                        masks=masks, keypoints=kps, mask_logits=mask_logits,
                        keypoint_names=self.card.keypoint_names if kps is not None else (),
                        skeleton=self.card.skeleton if kps is not None else (),
                    )
        except torch.cuda.OutOfMemoryError as err:
            raise ModelError(f"{self.card.id} ran out of GPU memory on a {w}x{h} image; try --device cpu") from err
