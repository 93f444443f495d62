"""Adapters for the small models we train on the shapes world and bundle in ``models/``.

* :class:`ShapesMaskRCNN` -- instances (boxes, classes, compact masks, the mask head's 28x28 logits);
* :class:`ShapesFCN` -- semantic labels; :meth:`ShapesFCN.predict_stages` gives the 32s, 16s
  and 8s predictions side by side (``params.extra`` ``stage`` picks one for ``predict``);
* :class:`ShapesUNet` -- semantic labels;
* :class:`ShapesPCV` -- semantic labels, and :meth:`ShapesPCV.predict_votes` the voting head's
  per-cell probabilities with the table geometry needed to draw or accumulate them.

All of them take an RGB uint8 image of any size, rescale it so its shorter side is the training
scale (256 px, ``params.extra`` ``min_size`` overrides), and return results in the input's
pixel coordinates. Checkpoints are the ``model.pt`` files ``segviewer train`` writes. Semantic
maps carry ``logits`` (float16, long side at most 512 px) beside ``probs``, for UPSNet's head.
"""

from __future__ import annotations

import dataclasses
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from segviewer.adapters._convert import (
    MaskLogitsHook,
    cap_probs,
    check_image,
    compact_logits,
    labels_from_logits,
    paste_masks_compact,
)
from segviewer.adapters.base import ModelCard, PredictParams, ProgressCallback, TorchAdapterState
from segviewer.adapters.runtime import import_torchvision, no_weight_init
from segviewer.core.errors import CheckpointMismatchError, ModelError, SegviewerError, WeightsUnavailableError
from segviewer.core.results import Detections, SemanticMap
from segviewer.core.timing import Timings

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["ShapesMaskRCNN", "ShapesFCN", "ShapesUNet", "ShapesPCV", "VotePrediction", "TRAIN_SHORT_SIDE"]

TRAIN_SHORT_SIDE = 256  # the shapes world's scale: every bundled model was trained on 256 x 256 scenes
PROBS_MAX_SIDE = 512

#: Kinds whose nets are built from torch alone. Every other kind's net imports torchvision (Mask
#: R-CNN, and the ResNet-18 trunks of YOLO and CenterNet), which the load imports first through
#: :func:`import_torchvision`: a plain ``import torchvision`` also loads TorchDynamo (1.2 s of a
#: 1.4 s load, measured on shapes_yolo). A new kind gets the quick import unless it is listed here.
PLAIN_TORCH_KINDS = frozenset({"fcn", "unet", "pcv"})


#: The longest side the network sees, in multiples of the short side (torchvision's detectors cap
#: theirs the same way, 1333 for 800). Without it a 48 x 3000 strip became 256 x 16000: 16 s.
MAX_LONG_PER_SHORT = 4


def _resize_short(img: np.ndarray, short: int) -> np.ndarray:
    """``img`` scaled so its shorter side is ``short``, unless the longer one would then pass
    ``MAX_LONG_PER_SHORT * short`` (a panorama): then so that the longer side is that (area
    averaging when shrinking)."""
    h, w = img.shape[:2]
    s = min(short / min(h, w), MAX_LONG_PER_SHORT * short / max(h, w))
    nh, nw = max(1, round(h * s)), max(1, round(w * s))
    if (nh, nw) == (h, w):
        return img
    return cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)


def _short_side(params: PredictParams) -> int:
    short = int(dict(params.extra).get("min_size", TRAIN_SHORT_SIDE))
    if short < 32:
        raise SegviewerError(f"min_size must be at least 32 pixels, got {short}")
    return short


class _ShapesAdapter(TorchAdapterState):
    """Shared loading (rebuild the architecture a checkpoint names and copy its weights in) and
    the forward pass of our own nets on a rescaled, padded image."""
    params_keys: tuple[str, ...] = ("min_size",)  # the PredictParams.extra keys it reads (--set checks them)

    model_kind = ""  # "maskrcnn", "fcn", "unet" or "pcv": what the checkpoint must say it is
    divisor = 32  # inputs padded to a multiple of this, unless the net names its own ``divisor``

    def __init__(self, card: ModelCard) -> None:
        self.card = card
        super().__init__()
        self.config: dict[str, Any] = {}

    def load(self, device: str, weights: Path | None = None, progress: ProgressCallback | None = None) -> None:
        """Build on ``device`` from the bundled checkpoint (or the user's ``weights`` file).

        Nothing is downloaded, so ``progress`` (bytes of a download) is never called."""
        from segviewer.adapters.nets import checkpoint, registry

        card = self.card
        path: Path | None = Path(weights) if weights is not None else None
        if path is None and card.weights_source == "bundled":
            p = card.extra.get("checkpoint_path")
            if not p or not Path(p).is_file():
                raise WeightsUnavailableError(
                    f"{card.id}: the bundled checkpoint {card.weights_file or '?'} is missing from models/")
            path = Path(p)
        if path is not None:
            ck = checkpoint.load(path)
            if ck.get("model") != self.model_kind:
                raise CheckpointMismatchError(
                    f"{path.name} holds a {ck.get('model')!r} model, but {card.id} is a {self.model_kind!r}")
            cats = list(ck["categories"])
            config = dict(ck.get("config") or {})
        else:  # random init (plumbing tests, timing): the card's classes, default architecture
            cats, config, ck = list(card.categories), dict(card.extra.get("config", {})), None
        if self.model_kind not in PLAIN_TORCH_KINDS:  # its net imports torchvision (a ResNet-18 trunk, RoI ops)
            import_torchvision()  # without TorchDynamo: about 1.2 s off the load, measured
        try:
            config = registry.full_config(self.model_kind, config)
            # load_weights below overwrites every tensor or refuses: no random initial weights first
            with no_weight_init() if ck is not None else nullcontext():
                model = registry.build(self.model_kind, cats, config)
        except (TypeError, ValueError) as err:
            raise CheckpointMismatchError(f"{card.id}: the checkpoint's architecture options do not build ({err})") from err
        if ck is not None:
            checkpoint.load_weights(model, ck["state_dict"], path.name if path else card.id)
        model.eval().to(device)
        self.module, self._device, self.config, self.weights_path = model, device, config, path
        if tuple(cats) != tuple(card.categories):
            self.card = dataclasses.replace(card, categories=tuple(cats))

    def _forward(self, image: np.ndarray, params: PredictParams, tm: Timings) -> tuple[Any, tuple[int, int, int, int]]:
        """Network outputs for the rescaled image, padded (by replication) to the net's divisor, and ``(h, w, rh, rw)``: the input's size
        and the rescaled image's (the valid top-left part of the outputs)."""
        import torch

        from segviewer.adapters.nets.registry import to_tensor

        model, device = self._require()
        img = check_image(image)
        h, w = img.shape[:2]
        with tm.stage("preprocess"):
            small = _resize_short(img, _short_side(params))
            rh, rw = small.shape[:2]
            d = int(getattr(model, "divisor", self.divisor))
            ph, pw = -rh % d, -rw % d
            if ph or pw:  # pad bottom/right by replication; the padding is cropped off afterwards
                small = cv2.copyMakeBorder(small, 0, ph, 0, pw, cv2.BORDER_REPLICATE)
            x = to_tensor([small]).to(device)
        try:
            with tm.stage("model"), torch.inference_mode():
                out = model(x)
                if device.startswith("cuda"):
                    torch.cuda.synchronize()
        except RuntimeError as err:
            raise ModelError(f"{self.card.id} failed on a {w}x{h} image ({str(err).splitlines()[0]})") from err
        return out, (h, w, rh, rw)

    def _require(self) -> tuple[torch.nn.Module, str]:
        if self.module is None or self._device is None:
            raise SegviewerError(f"{self.card.id} is not loaded yet")
        return self.module, self._device


# --------------------------------------------------------------------------- semantic nets


class _ShapesSemantic(_ShapesAdapter):
    divisor = 32

    def _to_map(self, logits: torch.Tensor, size: tuple[int, int, int, int], extras: bool = True) -> SemanticMap:
        """Labels at the input's size; with ``extras`` also capped probabilities and float16 logits."""
        import torch

        h, w, rh, rw = size
        lg = logits[0, :, :rh, :rw].float()
        raw = lg.cpu().numpy()
        labels = labels_from_logits(raw, (h, w))
        if not extras:
            return SemanticMap(labels, self.card.categories)
        probs = cap_probs(torch.softmax(lg, 0).cpu().numpy(), PROBS_MAX_SIDE)
        return SemanticMap(labels, self.card.categories, probs=probs,
                           logits=compact_logits(raw, PROBS_MAX_SIDE))


class ShapesFCN(_ShapesSemantic):
    """The FCN with 32s / 16s / 8s skip fusion; ``predict`` returns the 8s map by default."""
    params_keys: tuple[str, ...] = ("min_size", "stage")  # the PredictParams.extra keys it reads (--set checks them)

    model_kind = "fcn"
    STAGES = ("32s", "16s", "8s")

    def predict(self, image: np.ndarray, params: PredictParams | None = None,
                timings: Timings | None = None) -> SemanticMap:
        """``params.extra`` may hold ``stage`` ("32s", "16s" or "8s") and ``min_size``."""
        params = params or PredictParams()
        stage = str(dict(params.extra).get("stage", "8s"))
        if stage not in self.STAGES:
            raise SegviewerError(f"the FCN's stages are 32s, 16s and 8s; got {stage!r}")
        tm = timings if timings is not None else Timings()
        out, size = self._forward(image, params, tm)
        with tm.stage("postprocess"):
            return self._to_map(out[stage], size, params.extras)

    def predict_stages(self, image: np.ndarray, params: PredictParams | None = None,
                       timings: Timings | None = None) -> dict[str, SemanticMap]:
        """All three predictions of one forward pass, coarse to fine: ``{"32s", "16s", "8s"}``."""
        params = params or PredictParams()
        tm = timings if timings is not None else Timings()
        out, size = self._forward(image, params, tm)
        with tm.stage("postprocess"):
            return {s: self._to_map(out[s], size, params.extras) for s in self.STAGES}


class ShapesUNet(_ShapesSemantic):
    """The small U-Net (concatenated skips)."""

    model_kind = "unet"
    divisor = 16

    def predict(self, image: np.ndarray, params: PredictParams | None = None,
                timings: Timings | None = None) -> SemanticMap:
        params = params or PredictParams()
        tm = timings if timings is not None else Timings()
        out, size = self._forward(image, params, tm)
        with tm.stage("postprocess"):
            return self._to_map(out, size, params.extras)


@dataclass(frozen=True, eq=False)
class VotePrediction:
    """The PCV net's output for one image.

    ``votes`` is ``(18, h, w)`` float32 softmax probabilities over the 17 cells of the lookup table
    (``segviewer.training.pcv_targets.LOOKUP_TABLE``) and "abstain" (index 17), one per feature pixel.
    Feature pixel ``(i, j)`` covers input pixels ``x in [j * scale_x, (j + 1) * scale_x)``,
    ``y in [i * scale_y, (i + 1) * scale_y)``; one table unit is ``cell_size`` feature pixels.
    """

    semantic: SemanticMap
    votes: np.ndarray
    cell_size: float
    scale_x: float
    scale_y: float


class ShapesPCV(_ShapesSemantic):
    """Pixel Consensus Voting net: ``predict`` gives the semantic map, ``predict_votes`` the votes too."""

    model_kind = "pcv"
    divisor = 16

    def predict(self, image: np.ndarray, params: PredictParams | None = None,
                timings: Timings | None = None) -> SemanticMap:
        """The semantic map only: the votes' softmax is not computed (``predict_votes`` gives it)."""
        params = params or PredictParams()
        tm = timings if timings is not None else Timings()
        out, size = self._forward(image, params, tm)
        with tm.stage("postprocess"):
            return self._to_map(out["semantic"], size, params.extras)

    def predict_votes(self, image: np.ndarray, params: PredictParams | None = None,
                      timings: Timings | None = None) -> VotePrediction:
        import torch

        params = params or PredictParams()
        tm = timings if timings is not None else Timings()
        out, size = self._forward(image, params, tm)
        with tm.stage("postprocess"):
            sem = self._to_map(out["semantic"], size, params.extras)
            h, w, rh, rw = size
            stride = int(self.config.get("vote_stride", 4))
            vh, vw = -(-rh // stride), -(-rw // stride)
            votes = torch.softmax(out["votes"][0, :, :vh, :vw].float(), 0).cpu().numpy()
            # Feature pixels map onto the rescaled image at `stride`; the rescale maps that to the input.
            return VotePrediction(sem, np.ascontiguousarray(votes, np.float32),
                                  float(self.config.get("cell_size", 3.0)),
                                  stride * w / rw, stride * h / rh)


# --------------------------------------------------------------------------- Mask R-CNN


class ShapesMaskRCNN(_ShapesAdapter):
    """The small Mask R-CNN; returns every detection above ``params.min_score`` with compact masks."""

    model_kind = "maskrcnn"

    def predict(self, image: np.ndarray, params: PredictParams | None = None,
                timings: Timings | None = None) -> Detections:
        import torch
        from torchvision.models.detection.image_list import ImageList

        model, device = self._require()
        params = params or PredictParams()
        tm = timings if timings is not None else Timings()
        img = check_image(image)
        h, w = img.shape[:2]
        with tm.stage("preprocess"):
            small = _resize_short(img, _short_side(params))
            rh, rw = small.shape[:2]
            t = torch.from_numpy(np.ascontiguousarray(small)).to(device).permute(2, 0, 1).float().div_(255.0)
            tr = model.transform
            mean = torch.tensor(tr.image_mean, device=device)[:, None, None]
            std = torch.tensor(tr.image_std, device=device)[:, None, None]
            x = (t - mean) / std
            ph, pw = -rh % 32, -rw % 32  # torchvision batches images padded to a multiple of 32
            x = torch.nn.functional.pad(x, (0, pw, 0, ph))[None]
            images = ImageList(x, [(rh, rw)])
        rh_ = model.roi_heads
        old = (rh_.score_thresh, rh_.detections_per_img)
        try:
            rh_.score_thresh, rh_.detections_per_img = float(params.min_score), int(params.max_detections)
            hook = MaskLogitsHook(rh_ if params.extras else None)  # mask logits: UPSNet and the window
            with tm.stage("model"), torch.inference_mode(), hook:
                feats = model.backbone(images.tensors)
                proposals, _ = model.rpn(images, feats)
                dets, _ = rh_(feats, proposals, images.image_sizes)
                det = dets[0]
                if device.startswith("cuda"):
                    torch.cuda.synchronize()
        except RuntimeError as err:
            raise ModelError(f"{self.card.id} failed on a {w}x{h} image ({str(err).splitlines()[0]})") from err
        finally:
            rh_.score_thresh, rh_.detections_per_img = old
        with tm.stage("postprocess"):
            sx, sy = w / rw, h / rh
            boxes = det["boxes"].float() * torch.tensor([sx, sy, sx, sy], device=det["boxes"].device)
            boxes[:, 0::2] = boxes[:, 0::2].clamp(0, w)
            boxes[:, 1::2] = boxes[:, 1::2].clamp(0, h)
            masks = paste_masks_compact(det["masks"].float(), boxes, (h, w))
            return Detections((h, w), boxes.cpu().numpy(), det["scores"].float().cpu().numpy(),
                              det["labels"].cpu().numpy().astype(np.int32), self.card.categories, masks=masks,
                              mask_logits=hook.select(det["labels"]))
