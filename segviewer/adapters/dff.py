"""Deep Feature Flow (Zhu et al., CVPR 2017): run the expensive feature network on key frames only
and carry its features to the other frames along optical flow.

A segmentation net is split into ``N_feat`` (image -> features) and ``N_task`` (features -> class
logits) by a :class:`SplitNet`. On a key frame k: ``f_k = N_feat(I_k)``, ``y_k = N_task(f_k)``. On
another frame i: ``f_i = W(f_k, M_{i->k}, S_{i->k})``, ``y_i = N_task(f_i)``, where ``M_{i->k}`` is
the flow from frame i to the key frame, resized to each feature map (vectors divided by its
stride), and ``S`` a scale field (ones: we have no network that predicts it).

The warp :func:`warp_features` is ``torch.nn.functional.grid_sample`` in bilinear mode with zero
padding, and sample positions normalised as ``(2 x + 1) / w - 1`` with ``align_corners=False``:
that pairing maps grid index x exactly onto x (pixel centres), so the result equals the paper's
``sum_q G(q, p + dp) f_k(q)`` (tested against :func:`segviewer.analysis.flow.warp`). It is correct
for 1-pixel-wide maps too, which ``align_corners=True`` with ``2 x / (w - 1) - 1`` is not.

Splits offered:

* torchvision DeepLabV3: ``after_aspp`` (default, as the issue asks: warp the ASPP's 256 channels
  and run only the rest of the classifier) or ``before_aspp`` (warp the backbone's 2048 channels,
  run the whole head on every frame);
* torchvision FCN: ``after_conv`` (warp the head's 512-channel conv output) or ``before_head``;
* the bundled shapes FCN (``segviewer.adapters.nets.fcn``): warp pool3, pool4 and the fc7 output,
  run the score layers and the skip fusion (the 8s output) and the fixed bilinear upsampling;
* the bundled shapes U-Net: ``before_head`` (warp the decoder's full-resolution features) or
  ``bottleneck`` (warp every skip and the bottleneck, run the whole decoder).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from segviewer.analysis.flow import resize_flow
from segviewer.analysis.metrics import confusion_matrix, scores_from_confusion
from segviewer.core.errors import SegviewerError
from segviewer.core.results import FlowField, SemanticMap
from segviewer.video.keyframes import AdaptiveSchedule, FixedInterval

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from segviewer.adapters.flow import FlowEstimator

__all__ = [
    "SplitNet",
    "DFFFrame",
    "DeepFeatureFlow",
    "warp_features",
    "split_torchvision",
    "split_shapes_fcn",
    "split_shapes_unet",
    "torchvision_segmentation_model",
    "speedup_bound",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
Features = tuple["torch.Tensor", ...]


def speedup_bound(interval: float, c_prop: float, c_full: float) -> float:
    """DFF's ideal speedup ``l / (1 + (l - 1) c_prop / c_full)`` from measured per-frame costs."""
    return interval / (1.0 + (interval - 1) * c_prop / c_full)


@dataclass
class SplitNet:
    """A segmentation net cut in two. ``n_task(n_feat(x))`` must equal the whole net's logits.

    ``n_feat`` returns a tuple of feature maps (several for skip architectures); ``n_task`` returns
    class logits at any resolution (they are upsampled bilinearly to the input). Images are scaled
    to [0, 1], normalised by ``mean``/``std`` and padded (bottom/right; ``pad_mode``) to a multiple of
    ``divisor``; the padding is cropped off the labels.
    """

    name: str
    split: str
    categories: tuple[str, ...]
    n_feat: Callable[[torch.Tensor], Features]
    n_task: Callable[[Features], torch.Tensor]
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    divisor: int = 1
    modules: tuple[Any, ...] = ()  # the nn.Modules involved, for .to(device) / .eval()
    pad_mode: str = "constant"  # zeros after normalisation (torchvision batching) or "replicate"

    def to(self, device: str) -> SplitNet:
        for m in self.modules:
            m.to(device).eval()
        return self


def warp_features(feat: torch.Tensor, flow: torch.Tensor | np.ndarray, scale: torch.Tensor | None = None) -> torch.Tensor:
    """Bilinear warp of ``(N, C, h, w)`` features by a flow ``(h, w, 2)`` in *cells* of this map.

    ``out(p) = sum_q G(q, p + flow(p)) feat(q)``, zero outside; times ``scale`` if given
    (broadcastable to ``(N, C, h, w)``).
    """
    import torch
    import torch.nn.functional as F

    if feat.dim() != 4:
        raise SegviewerError(f"Features to warp must be (N, C, h, w); got {tuple(feat.shape)}.")
    n, _, h, w = feat.shape
    fl = torch.as_tensor(np.asarray(flow) if not isinstance(flow, torch.Tensor) else flow)
    if tuple(fl.shape) != (h, w, 2):
        raise SegviewerError(f"The flow for a {w}x{h} feature map must be ({h}, {w}, 2); got {tuple(fl.shape)}.")
    dtype = feat.dtype if feat.dtype in (torch.float32, torch.float64) else torch.float32
    fl = fl.to(device=feat.device, dtype=dtype)
    ys = torch.arange(h, device=feat.device, dtype=dtype)[:, None].expand(h, w)
    xs = torch.arange(w, device=feat.device, dtype=dtype)[None, :].expand(h, w)
    gx = (2.0 * (xs + fl[..., 0]) + 1.0) / w - 1.0
    gy = (2.0 * (ys + fl[..., 1]) + 1.0) / h - 1.0
    grid = torch.stack([gx, gy], dim=-1)[None].expand(n, h, w, 2)
    out = F.grid_sample(feat.to(dtype), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if scale is not None:
        out = out * scale
    return out


@dataclass
class DFFFrame:
    """The per-frame readout: result, whether it was a key frame, time per stage, agreement."""

    index: int
    key_index: int
    is_key: bool
    result: SemanticMap
    times: dict[str, float] = field(default_factory=dict)  # seconds: features, flow, warp, task
    agreement: float | None = None  # mIoU against the whole model run on this frame
    reason: str = ""
    flow: FlowField | None = None  # M_{i->k} at flow resolution (None on key frames)

    @property
    def total(self) -> float:
        return float(sum(self.times.values()))


class DeepFeatureFlow:
    """Runs a :class:`SplitNet` over a video with key frames and flow-warped features.

    ``schedule`` is a :class:`FixedInterval` or an :class:`AdaptiveSchedule`. ``flow_scale``
    shrinks the frames before flow estimation (the paper ran flow at half resolution).
    ``reference=True`` also runs the whole net on every frame and reports the agreement (mIoU
    with it) in each :class:`DFFFrame`; its time is not counted in ``times``.
    """

    def __init__(self, net: SplitNet, flow: FlowEstimator | None = None,
                 schedule: FixedInterval | AdaptiveSchedule | None = None, device: str = "cpu",
                 flow_scale: float = 1.0, reference: bool = False) -> None:
        if flow is None:
            from segviewer.adapters.flow import DISFlow

            flow = DISFlow()
        if not 0 < flow_scale <= 1:
            raise SegviewerError(f"The flow scale must lie in (0, 1]; got {flow_scale}.")
        self.net = net.to(device)
        self.flow = flow
        self.schedule = schedule if schedule is not None else FixedInterval(10)
        self.device = device
        self.flow_scale = float(flow_scale)
        self.reference = bool(reference)
        self._key: tuple[int, np.ndarray, Features, tuple[int, int]] | None = None

    def reset(self) -> None:
        self._key = None
        if isinstance(self.schedule, AdaptiveSchedule):
            self.schedule.reset()

    # ----------------------------------------------------------------- stages
    def _sync(self) -> None:
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()

    def _input(self, image: np.ndarray) -> tuple[torch.Tensor, tuple[int, int]]:
        import torch
        import torch.nn.functional as F

        img = np.asarray(image)
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise SegviewerError(f"Deep Feature Flow needs RGB uint8 (H, W, 3) frames; got {img.shape} {img.dtype}.")
        x = torch.from_numpy(np.ascontiguousarray(img)).to(self.device).permute(2, 0, 1).float().div_(255.0)
        mean = torch.tensor(self.net.mean, device=self.device)[:, None, None]
        std = torch.tensor(self.net.std, device=self.device)[:, None, None]
        x = ((x - mean) / std)[None]
        h, w = img.shape[:2]
        d = self.net.divisor
        ph, pw = (-h) % d, (-w) % d
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode=self.net.pad_mode)
        return x, (h, w)

    def _labels(self, logits: torch.Tensor, padded: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
        import torch.nn.functional as F

        if tuple(logits.shape[-2:]) != padded:
            logits = F.interpolate(logits, size=padded, mode="bilinear", align_corners=False)
        return logits[0, :, : size[0], : size[1]].argmax(0).to("cpu").numpy().astype(np.uint8)

    def full_labels(self, image: np.ndarray) -> np.ndarray:
        """The whole net on one frame (``n_task(n_feat(x))``): the per-frame baseline."""
        import torch

        with torch.inference_mode():
            x, size = self._input(image)
            return self._labels(self.net.n_task(self.net.n_feat(x)), tuple(x.shape[-2:]), size)

    def _timed(self, times: dict[str, float], stage: str, fn: Callable[[], Any]) -> Any:
        self._sync()
        t0 = time.perf_counter()
        out = fn()
        self._sync()
        times[stage] = times.get(stage, 0.0) + time.perf_counter() - t0
        return out

    def _estimate_flow(self, frame: np.ndarray, key_frame: np.ndarray) -> FlowField:
        import cv2

        if self.flow_scale < 1:
            h, w = frame.shape[:2]
            size = (max(2, round(w * self.flow_scale)), max(2, round(h * self.flow_scale)))
            frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
            key_frame = cv2.resize(key_frame, size, interpolation=cv2.INTER_AREA)
        return self.flow.estimate(frame, key_frame)

    def _warp_all(self, feats: Features, flow: FlowField, size: tuple[int, int], padded: tuple[int, int]) -> Features:
        uv = flow.uv
        fh, fw = uv.shape[:2]
        # flow vectors in image pixels; pad (edge) to the padded input so feature cells line up
        if (fh, fw) != size:
            uv = resize_flow(uv, size)
        if padded != size:
            uv = np.pad(uv, ((0, padded[0] - size[0]), (0, padded[1] - size[1]), (0, 0)), mode="edge")
        return tuple(warp_features(f, resize_flow(uv, tuple(f.shape[-2:]))) for f in feats)

    def step(self, index: int, frame: np.ndarray, get_frame: Callable[[int], np.ndarray] | None = None) -> DFFFrame:
        """Process frame ``index`` (normally in playback order).

        For a fixed schedule, a jump to a frame whose key frame is not the one held needs
        ``get_frame(key_index)`` to compute that key frame's features first (not timed: a seek).
        """
        import torch

        times: dict[str, float] = {}
        x, size = self._input(frame)
        padded = (int(x.shape[-2]), int(x.shape[-1]))
        flow: FlowField | None = None
        with torch.inference_mode():
            if isinstance(self.schedule, FixedInterval):
                key = self.schedule.key_for(index)
                is_key, reason = key == index, ("interval" if index else "first")
                if not is_key and (self._key is None or self._key[0] != key):
                    if get_frame is None:
                        raise SegviewerError(f"Frame {index} needs key frame {key}, which is not loaded; "
                                             "play from the key frame or pass get_frame.")
                    kimg = np.asarray(get_frame(key))
                    kx, _ = self._input(kimg)
                    self._key = (key, kimg, self.net.n_feat(kx), padded)
                if not is_key:
                    assert self._key is not None
                    flow = self._timed(times, "flow", lambda: self._estimate_flow(frame, self._key[1]))
            else:
                sched = self.schedule
                if self._key is None:
                    sched.reset()
                if sched.needs_flow(index) and self._key is not None:
                    kimg = self._key[1]
                    flow = self._timed(times, "flow", lambda: self._estimate_flow(frame, kimg))
                    small = (frame, kimg) if flow.uv.shape[:2] == frame.shape[:2] else (None, None)
                    d = sched.decide(index, flow.uv, small[0], small[1])
                else:
                    d = sched.decide(index)
                is_key, key, reason = d.is_key, d.key_index, d.reason
                if is_key:
                    flow = None
            if is_key:
                feats = self._timed(times, "features", lambda: self.net.n_feat(x))
                self._key = (index, np.asarray(frame), feats, padded)
                logits = self._timed(times, "task", lambda: self.net.n_task(feats))
            else:
                assert self._key is not None and flow is not None
                warped = self._timed(times, "warp", lambda: self._warp_all(self._key[2], flow, size, padded))
                logits = self._timed(times, "task", lambda: self.net.n_task(warped))
            labels = self._timed(times, "task", lambda: self._labels(logits, padded, size))
            agreement = None
            if self.reference:
                ref = labels if is_key else self.full_labels(frame)
                agreement = miou(ref, labels, len(self.net.categories))
        return DFFFrame(int(index), int(key), bool(is_key), SemanticMap(labels, self.net.categories), times,
                        agreement, reason, flow)


def miou(reference: np.ndarray, labels: np.ndarray, num_classes: int) -> float:
    """Mean IoU of ``labels`` against ``reference`` over the classes present in either."""
    return float(scores_from_confusion(confusion_matrix(reference, labels, num_classes, None))["mean_iou"])


# --------------------------------------------------------------------------- splits


def torchvision_segmentation_model(name: str = "deeplabv3_resnet50", num_classes: int | None = None,
                                   weights: str | None = None, random_init: bool = False,
                                   allow_download: bool | None = None) -> Any:
    """Build a torchvision FCN / DeepLabV3 (no aux head). Weights from ``weights`` (a file), the hub
    cache or a download via :mod:`segviewer.adapters.weights`; ``random_init`` skips them (timing).

    ``num_classes`` defaults to the released weights' 21 VOC classes; another number needs
    ``random_init`` (a released checkpoint cannot have a different classifier).
    """
    from torchvision.models import get_model, get_model_weights

    from segviewer.adapters.weights import check_state_dict, read_state_dict, resolve_weights

    if not (name.startswith("fcn_") or name.startswith("deeplabv3_")):
        raise SegviewerError(f"Deep Feature Flow splits torchvision fcn_* and deeplabv3_* models; got {name!r}.")
    default = get_model_weights(name).DEFAULT
    n_released = len(default.meta["categories"])
    n = n_released if num_classes is None else int(num_classes)
    if not random_init and n != n_released:
        raise SegviewerError(f"{name}'s released weights have {n_released} classes, not {n}; "
                             "use random_init for another number.")
    model = get_model(name, weights=None, weights_backbone=None, num_classes=n, aux_loss=False)
    if not random_init:
        path = resolve_weights(name, default.url, user_file=weights, allow_download=allow_download)
        state = {k: v for k, v in read_state_dict(path).items() if not k.startswith("aux_classifier.")}
        check_state_dict(model, state, source=str(getattr(path, "name", path)), model_id=name)
        model.load_state_dict(state)
    return model.eval()


def split_torchvision(model: Any, categories: Sequence[str], at: str | None = None, name: str = "") -> SplitNet:
    """Split a torchvision ``FCN`` or ``DeepLabV3`` (``model.backbone`` + ``model.classifier``)."""
    from torch import nn
    from torchvision.models.segmentation.deeplabv3 import ASPP, DeepLabV3
    from torchvision.models.segmentation.fcn import FCN

    backbone, layers = model.backbone, list(model.classifier)

    def part(a: int, b: int | None = None) -> nn.Module:  # heads subclass Sequential; slicing them fails
        return nn.Sequential(*layers[a:b])

    if isinstance(model, DeepLabV3):
        at = at or "after_aspp"
        if not isinstance(layers[0], ASPP):
            raise SegviewerError("This DeepLabV3 has no ASPP as the first layer of its head; it cannot be split.")
        cut = {"after_aspp": 1, "before_aspp": 0}.get(at)
        if cut is None:
            raise SegviewerError(f"DeepLabV3 splits 'after_aspp' or 'before_aspp'; got {at!r}.")
    elif isinstance(model, FCN):
        at = at or "after_conv"
        cut = {"after_conv": 3, "before_head": 0}.get(at)
        if cut is None:
            raise SegviewerError(f"FCN splits 'after_conv' or 'before_head'; got {at!r}.")
    else:
        raise SegviewerError(f"Deep Feature Flow cannot split a {type(model).__name__}; use FCN or DeepLabV3.")
    feat_head, task_head = part(0, cut), part(cut)

    def n_feat(x: torch.Tensor) -> Features:
        return (feat_head(backbone(x)["out"]),)

    def n_task(f: Features) -> torch.Tensor:
        return task_head(f[0])

    return SplitNet(name or type(model).__name__.lower(), at, tuple(categories), n_feat, n_task,
                    modules=(model,))


def _shapes_norm() -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """The shapes models' input normalisation (a single mean and std for RGB)."""
    from segviewer.adapters.nets.registry import MEAN, STD

    return (float(MEAN),) * 3, (float(STD),) * 3  # type: ignore[return-value]


def split_shapes_fcn(model: Any, categories: Sequence[str], stage: str = "8s") -> SplitNet:
    """Split the bundled shapes FCN after its encoder and fc layers; N_task is score + skip fusion."""
    if stage not in ("8s", "16s", "32s"):
        raise SegviewerError(f"The shapes FCN has stages 8s, 16s and 32s; got {stage!r}.")

    def n_feat(x: torch.Tensor) -> Features:
        feats = []
        for b in model.blocks:
            x = b(x)
            feats.append(x)
        return (feats[2], feats[3], model.fc(x))  # pool3 (/8), pool4 (/16), fc7 (/32)

    def n_task(f: Features) -> torch.Tensor:
        # Low-resolution logits; DeepFeatureFlow upsamples them bilinearly to the input, which is
        # the FCN's own fixed final upsampling (F.interpolate, align_corners=False).
        pool3, pool4, fc7 = f
        score = model.score_fr(fc7)  # stride 32
        if stage == "32s":
            return score
        fuse16 = model.upscore2(score) + model.score_pool4(pool4)
        if stage == "16s":
            return fuse16
        return model.upscore_pool4(fuse16) + model.score_pool3(pool3)  # stride 8

    mean, std = _shapes_norm()
    # replicate padding, as segviewer.adapters.shapes pads the image before the net
    return SplitNet("shapes_fcn", f"after_fc7 ({stage})", tuple(categories), n_feat, n_task, mean, std, 32,
                    modules=(model,), pad_mode="replicate")


def split_shapes_unet(model: Any, categories: Sequence[str], at: str = "before_head") -> SplitNet:
    """Split the bundled shapes U-Net before its 1x1 head, or at the bottleneck (skips warped too)."""
    body = model.body
    if at == "before_head":
        def n_feat(x: torch.Tensor) -> Features:
            return (body(x),)

        def n_task(f: Features) -> torch.Tensor:
            return model.head(f[0])
    elif at == "bottleneck":
        import torch

        def n_feat(x: torch.Tensor) -> Features:
            return tuple(body.encode(x))

        def n_task(f: Features) -> torch.Tensor:
            skips = list(f)
            x = skips.pop()
            for up, dec in zip(body.up, body.dec):
                x = dec(torch.cat([skips.pop(), up(x)], dim=1))
            return model.head(x)
    else:
        raise SegviewerError(f"The shapes U-Net splits 'before_head' or 'bottleneck'; got {at!r}.")
    mean, std = _shapes_norm()
    return SplitNet("shapes_unet", at, tuple(categories), n_feat, n_task, mean, std, int(body.divisor),
                    modules=(model,), pad_mode="replicate")
