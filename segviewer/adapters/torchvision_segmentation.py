"""One adapter for torchvision's semantic segmentation zoo: FCN, DeepLabV3 and LR-ASPP.

Built with ``weights=None, weights_backbone=None`` and loaded from a full state dict (user file,
hub cache, download). The auxiliary classifier that torchvision's released weights carry is loaded
(so the checkpoint fits) and then dropped: it only helps training.

Preprocessing follows the weights' own transform (short side resized to 520 with antialiasing,
ImageNet mean/std). We stop before the model's final upsampling: the low-resolution logits (stride 8
or 16) give ``probs`` (softmax, float32, long side at most 512 px) and are upsampled *once*, straight to
the input image's size, for the argmax labels. torchvision upsamples to the resized input and a
caller would resize again; one bilinear step instead of two is a deliberate, tiny difference.
The same low-resolution logits are kept (float16) as ``SemanticMap.logits`` for UPSNet's head.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from segviewer.adapters._convert import (
    PRESHRINK_BELOW,
    cap_probs,
    check_image,
    compact_logits,
    image_to_tensor,
    labels_from_logits,
    shrink_image,
)
from segviewer.adapters.base import ModelCard, PredictParams, ProgressCallback, TorchAdapterState
from segviewer.adapters.runtime import import_torchvision
from segviewer.adapters.weights import check_state_dict, read_class_names, read_state_dict, resolve_weights
from segviewer.core.errors import CheckpointMismatchError, ModelError, SegviewerError
from segviewer.core.results import SemanticMap
from segviewer.core.timing import Timings

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["TorchvisionSegmenter", "CLASS_KEYS", "RESIZE_SHORT_SIDE"]

#: builder -> the tensor whose first dimension is the number of classes
CLASS_KEYS: dict[str, str] = {
    "fcn_resnet50": "classifier.4.weight",
    "fcn_resnet101": "classifier.4.weight",
    "deeplabv3_resnet50": "classifier.4.weight",
    "deeplabv3_resnet101": "classifier.4.weight",
    "deeplabv3_mobilenet_v3_large": "classifier.4.weight",
    "lraspp_mobilenet_v3_large": "classifier.low_classifier.weight",
}
RESIZE_SHORT_SIDE = 520  # torchvision's SemanticSegmentation preset for these weights
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)
PROBS_MAX_SIDE = 512


class TorchvisionSegmenter(TorchAdapterState):
    """A torchvision semantic segmentation model behind the :class:`ModelAdapter` interface."""
    params_keys: tuple[str, ...] = ("min_size",)  # the PredictParams.extra keys it reads (--set checks them)

    def __init__(self, card: ModelCard) -> None:
        builder = str(card.extra.get("builder", card.id))
        if builder not in CLASS_KEYS:
            raise SegviewerError(f"{card.id!r} is not a torchvision segmentation model segviewer knows")
        self.card = card
        self._base_card = card
        self._builder = builder
        super().__init__()

    def load(self, device: str, weights: Path | None = None, progress: ProgressCallback | None = None,
             *, allow_download: bool | None = None) -> None:
        """Build the network on ``device`` and load weights (user file > hub cache > download)."""
        import_torchvision()  # without TorchDynamo: seconds off the first image
        from torchvision.models import get_model

        base = self._base_card
        state = None
        path: Path | None = None
        if weights is not None or base.weights_source == "torchvision":
            if weights is None and not base.weights_url:
                raise SegviewerError(f"{base.id} has no weights URL")
            path = resolve_weights(base.id, base.weights_url or "", user_file=weights,
                                   allow_download=allow_download, progress=progress)
            state = read_state_dict(path)
        elif base.weights_source != "none":
            raise SegviewerError(f"{base.id}: weights source {base.weights_source!r} is not one a torchvision model uses")

        num_classes, aux = len(base.categories), False
        if state is not None and path is not None:
            key = CLASS_KEYS[self._builder]
            if key not in state:
                raise CheckpointMismatchError(f"{path.name} does not fit {base.id}: tensor {key} is missing from the checkpoint")
            num_classes = int(state[key].shape[0])
            aux = any(k.startswith("aux_classifier.") for k in state)
        kwargs: dict[str, Any] = {"weights": None, "weights_backbone": None, "num_classes": num_classes}
        if not self._builder.startswith("lraspp"):
            kwargs["aux_loss"] = aux
        try:
            model = get_model(self._builder, **kwargs)
        except (ValueError, RuntimeError) as err:
            raise ModelError(f"{base.id} could not be built with {num_classes} classes ({err})") from err
        if state is not None and path is not None:
            check_state_dict(model, state, source=path.name, model_id=base.id)
            model.load_state_dict(state, strict=False)  # strict apart from num_batches_tracked, checked above
        if getattr(model, "aux_classifier", None) is not None:
            model.aux_classifier = None  # training-only head: skip its compute at inference
        model.eval().to(device)
        self.module = model
        self._device = device
        self.weights_path = path
        self.card = self._card_for(path, num_classes, user_file=path is not None and path.name != base.weights_file)

    def _card_for(self, path: Path | None, num_classes: int, user_file: bool) -> ModelCard:
        base = self._base_card
        if path is None:
            return base
        extra = {**base.extra, "weights_path": str(path)}
        if not user_file:
            return dataclasses.replace(base, extra=extra)
        cats, _, names_file = read_class_names(path, num_classes, background=False)
        if names_file is None and num_classes == len(base.categories):
            cats = base.categories
        if names_file is not None:
            extra["names_file"] = str(names_file)
        return dataclasses.replace(base, categories=cats, weights_file=path.name, extra=extra)

    def _low_res_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The classifier's output before torchvision's final upsampling (stride 8, or 16 for LR-ASPP's)."""
        model = self.module
        feats = model.backbone(x)  # type: ignore[union-attr]
        if self._builder.startswith("lraspp"):
            return model.classifier(feats)  # type: ignore[union-attr]
        return model.classifier(feats["out"])  # type: ignore[union-attr]

    def predict(self, image: np.ndarray, params: PredictParams | None = None,
                timings: Timings | None = None) -> SemanticMap:
        """Labels at the image's resolution and softmax probabilities at (at most) 512 px
        (probabilities and logits only when ``params.extras``).

        ``params.extra`` may hold ``min_size``: the short side the image is resized to before the
        network (default 520, as trained); smaller is faster and coarser.
        """
        import torch
        import torchvision.transforms.functional as TF

        if self.module is None or self._device is None:
            raise SegviewerError(f"{self.card.id} is not loaded yet")
        img = check_image(image)
        params = params or PredictParams()
        tm = timings if timings is not None else Timings()
        short = int(dict(params.extra).get("min_size", RESIZE_SHORT_SIDE))
        if short < 16:
            raise SegviewerError(f"min_size must be at least 16 pixels, got {short}")
        h, w = img.shape[:2]
        try:
            with torch.inference_mode():
                with tm.stage("preprocess"):
                    if short < min(h, w) * PRESHRINK_BELOW:  # shrink uint8 on the CPU, not 4x larger floats
                        long = int(short * max(h, w) / min(h, w))  # the size TF.resize([short]) gives
                        img = shrink_image(img, (short, long) if h <= w else (long, short))[0]
                    x = image_to_tensor(img, self._device)
                    if min(img.shape[:2]) != short:
                        x = TF.resize(x, [short], antialias=True)
                    x = TF.normalize(x, list(_MEAN), list(_STD))[None]
                with tm.stage("model"):
                    logits = self._low_res_logits(x)[0]
                    probs = torch.softmax(logits, dim=0) if params.extras else None
                    if self._device.startswith("cuda"):
                        torch.cuda.synchronize()
                with tm.stage("postprocess"):
                    lg = logits.float().cpu().numpy()
                    labels = labels_from_logits(lg, (h, w))
                    if probs is None:  # params.extras False: only the labels are wanted
                        return SemanticMap(labels, self.card.categories)
                    p = cap_probs(probs.float().cpu().numpy(), PROBS_MAX_SIDE)
                    return SemanticMap(labels, self.card.categories, probs=p,
                                       logits=compact_logits(lg, PROBS_MAX_SIDE))
        except torch.cuda.OutOfMemoryError as err:
            raise ModelError(f"{self.card.id} ran out of GPU memory on a {w}x{h} image; try --device cpu") from err
