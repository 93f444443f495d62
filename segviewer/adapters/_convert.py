"""torch <-> numpy conversions shared by the torchvision adapters.

Kept apart from the adapters so the two model families share one tested implementation of the
fiddly parts: pasting 28x28 mask probabilities into *crops* (torchvision pastes N full frames, which
a 12000 x 9000 image cannot afford) and upsampling semantic logits to the image without holding
C full-resolution float maps.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from segviewer.core.errors import SegviewerError
from segviewer.core.results import MaskSet

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["check_image", "image_to_tensor", "shrink_image", "paste_masks_compact", "labels_from_logits", "cap_probs",
           "compact_logits", "MaskLogitsHook"]

#: float16's largest finite value is 65504; logits are clipped well inside it (a sigmoid or softmax
#: of +-1e4 is saturated anyway), so a compact result never holds infinities.
LOGIT_CLIP = 1.0e4

#: Below this scale factor the image is shrunk on the CPU (uint8, area averaging) before it becomes
#: a float tensor: a 12000 x 9000 photo would otherwise cost 1.3 GB of float32 just to be resized,
#: and area averaging aliases less than the networks' own bilinear downscaling.
PRESHRINK_BELOW = 0.5


def check_image(image: np.ndarray) -> np.ndarray:
    """The RGB uint8 ``(H, W, 3)`` contract of ``predict``; anything else is refused in one sentence."""
    a = np.asarray(image)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3 or a.shape[0] < 1 or a.shape[1] < 1:
        raise SegviewerError(f"predict needs an RGB uint8 (H, W, 3) image, got {a.dtype} {a.shape}")
    return a


def image_to_tensor(image: np.ndarray, device: str) -> torch.Tensor:
    """RGB uint8 (H, W, 3) -> float32 (3, H, W) in [0, 1] on ``device`` (converted there: 4x less to copy)."""
    import torch

    t = torch.from_numpy(np.ascontiguousarray(image)).to(device, non_blocking=True)
    return t.permute(2, 0, 1).float().div_(255.0)


def shrink_image(image: np.ndarray, size_hw: tuple[int, int]) -> tuple[np.ndarray, float, float]:
    """``image`` resized to ``size_hw`` by area averaging, and the factors ``(sx, sy)`` that map the
    small image's x / y back to the original's (``x_orig = x_small * sx``)."""
    h, w = image.shape[:2]
    nh, nw = max(1, int(size_hw[0])), max(1, int(size_hw[1]))
    if (nh, nw) == (h, w):
        return image, 1.0, 1.0
    small = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)
    return small, w / nw, h / nh


def paste_masks_compact(mask_probs: torch.Tensor, boxes: torch.Tensor, image_size: tuple[int, int],
                        threshold: float = 0.5) -> MaskSet:
    """Paste Mask R-CNN's ``(N, 1, M, M)`` mask probabilities into their boxes, as crops.

    Pixel for pixel the same as torchvision's ``paste_masks_in_image`` followed by ``> threshold``
    (same 1-pixel padding, box expansion, integer box and bilinear resize), but each mask is written
    only over its box region, so memory is the sum of the box areas rather than N x H x W.
    ``boxes`` are xyxy in the original image's pixels.
    """
    import torch
    import torch.nn.functional as F
    from torchvision.models.detection.roi_heads import expand_boxes, expand_masks

    im_h, im_w = image_size
    n = int(mask_probs.shape[0])
    if n == 0:
        return MaskSet((im_h, im_w), (), np.zeros((0, 2), np.int32))
    padded, scale = expand_masks(mask_probs, padding=1)
    ib = expand_boxes(boxes.to(padded.dtype), scale).to(torch.int64).cpu().tolist()
    crops: list[np.ndarray] = []
    offsets: list[tuple[int, int]] = []
    for m, (bx0, by0, bx1, by1) in zip(padded, ib):
        w = max(int(bx1 - bx0 + 1), 1)
        h = max(int(by1 - by0 + 1), 1)
        x0, x1 = max(bx0, 0), min(bx1 + 1, im_w)
        y0, y1 = max(by0, 0), min(by1 + 1, im_h)
        if x1 <= x0 or y1 <= y0:
            crops.append(np.zeros((0, 0), bool))
            offsets.append((0, 0))
            continue
        up = F.interpolate(m[None], size=(h, w), mode="bilinear", align_corners=False)[0, 0]
        crop = up[y0 - by0 : y1 - by0, x0 - bx0 : x1 - bx0] > threshold
        crops.append(crop.cpu().numpy())
        offsets.append((x0, y0))
    return MaskSet((im_h, im_w), tuple(crops), np.asarray(offsets, np.int32).reshape(-1, 2))


def labels_from_logits(logits: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """Argmax of the logits bilinearly upsampled (half-pixel centres) to ``image_size``.

    Done one class at a time with a running maximum, so a 21-class map for a 100-megapixel image
    needs two float planes, not 21. Ties go to the lower class id, as ``argmax`` does.
    """
    c = int(logits.shape[0])
    h, w = image_size
    dtype = np.uint8 if c <= 256 else np.int32
    lg = np.ascontiguousarray(logits, dtype=np.float32)
    if lg.shape[1:] == (h, w):
        return np.argmax(lg, axis=0).astype(dtype)
    best = cv2.resize(lg[0], (w, h), interpolation=cv2.INTER_LINEAR)
    labels = np.zeros((h, w), dtype)
    for k in range(1, c):
        plane = cv2.resize(lg[k], (w, h), interpolation=cv2.INTER_LINEAR)
        better = plane > best
        np.copyto(best, plane, where=better)
        labels[better] = k
    return labels


def cap_probs(probs: np.ndarray, max_side: int = 512) -> np.ndarray:
    """Shrink ``(C, h, w)`` probabilities (area average) so the long side is at most ``max_side``."""
    c, h, w = probs.shape
    s = max(h, w)
    if s <= max_side:
        return np.ascontiguousarray(probs, np.float32)
    nh, nw = max(1, round(h * max_side / s)), max(1, round(w * max_side / s))
    out = np.empty((c, nh, nw), np.float32)
    for k in range(c):
        out[k] = cv2.resize(probs[k], (nw, nh), interpolation=cv2.INTER_AREA)
    return out


def compact_logits(logits: np.ndarray, max_side: int = 512) -> np.ndarray:
    """``(C, h, w)`` class logits as float16, area-averaged so the long side is at most ``max_side``.

    Why float16 and capped: results cross a process boundary (pickle) and sit in a cache counted in
    bytes; UPSNet only needs the argmax of sums of logits, which float16's 3 significant digits keep.
    """
    lg = np.clip(np.asarray(logits, np.float32), -LOGIT_CLIP, LOGIT_CLIP)
    return cap_probs(lg, max_side).astype(np.float16)


class MaskLogitsHook:
    """Captures a Mask R-CNN mask predictor's output during the ONE forward pass that predicts.

    ``with MaskLogitsHook(model.roi_heads) as hook: ...roi_heads(...)`` then
    :meth:`select` picks each detection's own-class ``(M, M)`` logits, in the order torchvision's
    ``RoIHeads`` returns detections (it runs the mask head on exactly those boxes, in that order).
    Models without a mask head (Faster R-CNN, Keypoint R-CNN) capture nothing and give None.
    """

    def __init__(self, roi_heads: torch.nn.Module | None) -> None:
        # None: capture nothing (a caller that does not want the logits), as for a model without a mask head
        self._module = getattr(roi_heads, "mask_predictor", None)
        self._handle: Any = None
        self.output: torch.Tensor | None = None

    def __enter__(self) -> MaskLogitsHook:
        if self._module is not None:
            self._handle = self._module.register_forward_hook(self._grab)
        return self

    def _grab(self, _module: Any, _inputs: Any, output: torch.Tensor) -> None:
        self.output = output.detach()

    def __exit__(self, *exc: object) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def select(self, labels: torch.Tensor) -> np.ndarray | None:
        """``(N, M, M)`` float16: detection ``i``'s logits of class ``labels[i]``; None without a mask head."""
        import torch

        out = self.output
        n = int(labels.shape[0])
        if self._module is None:
            return None
        if out is None:  # no detection, so the mask head did not run
            if n:
                raise SegviewerError(f"the mask head did not run for {n} detections")
            return np.zeros((0, 28, 28), np.float16)
        if out.ndim != 4 or int(out.shape[0]) != n:
            raise SegviewerError(f"the mask head gave logits of shape {tuple(out.shape)} for {n} detections")
        picked = out[torch.arange(n, device=out.device), labels.to(out.device)] if n else out[:, 0]
        # Not clamp_: with no detection ``out[:, 0]`` is a view of the captured inference tensor, and
        # callers may select outside ``torch.inference_mode`` (an in-place op there raises).
        return picked.float().clamp(-LOGIT_CLIP, LOGIT_CLIP).cpu().numpy().astype(np.float16)
