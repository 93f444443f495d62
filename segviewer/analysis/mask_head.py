"""The mask head's own choices, in numpy: per-class sigmoid vs softmax across classes, and
Keypoint R-CNN's heatmaps turned into keypoints.

Why numpy and here: the Internals dock draws these numbers for a clicked detection from the
logits its ONE hooked pass captured; the tests recompute them with torch (``torch.sigmoid``,
``torch.softmax``, torchvision's ``heatmaps_to_keypoints``) on the same logits.

* Mask R-CNN predicts one ``M x M`` mask per class and reads only the predicted class's channel
  through a per-pixel sigmoid, so classes never compete for a pixel (mask and class decoupled).
  The paper's ablation trains the alternative, a per-pixel softmax across classes (multinomial
  loss): 24.8 against 30.3 mask AP on COCO. :func:`mask_head_choices` applies both rules to the
  SAME logits of a model trained with the sigmoid. That shows what competition does to these
  channels, not what a softmax-trained model would learn. Channel 0 (background) never gets a
  mask target in torchvision, so the softmax runs over the foreground channels.
* Keypoint R-CNN predicts one ``56 x 56`` logit map per keypoint type (trained as a one-hot mask
  with a cross-entropy over the map's cells); torchvision resizes each map to the box with
  bicubic interpolation and takes the argmax. :func:`heatmaps_to_keypoints` does the same in
  numpy (PyTorch's bicubic: A = -0.75, half-pixel centres, border cells repeated).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from segviewer.core.errors import SegviewerError

__all__ = ["sigmoid", "softmax", "MaskHeadChoices", "mask_head_choices", "spatial_softmax", "bicubic_resize",
           "heatmaps_to_keypoints"]


def sigmoid(x: np.ndarray) -> np.ndarray:
    """``1 / (1 + exp(-x))`` without overflow for large negative logits (float32 out)."""
    v = np.asarray(x, np.float64)
    e = np.exp(-np.abs(v))
    return np.where(v >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(np.float32)


def softmax(x: np.ndarray, axis: int = 0) -> np.ndarray:
    """Softmax along ``axis`` (max subtracted first, as torch does; float32 out)."""
    v = np.asarray(x, np.float64)
    e = np.exp(v - v.max(axis=axis, keepdims=True))
    return (e / e.sum(axis=axis, keepdims=True)).astype(np.float32)


@dataclass(frozen=True)
class MaskHeadChoices:
    """One detection's mask head read two ways (arrays ``(C, M, M)``; channel ``k`` is class ``k``)."""

    logits: np.ndarray  # every class's channel, as captured
    sigmoid: np.ndarray  # per-class sigmoid: each channel alone (Mask R-CNN)
    softmax: np.ndarray  # softmax across the foreground channels per cell (channel 0 left at 0)
    predicted: int  # the box head's class: the channel Mask R-CNN reads
    foreground: int  # first channel the softmax runs over (1: torchvision's background is channel 0)
    threshold: float

    @property
    def sigmoid_mask(self) -> np.ndarray:
        """The predicted class's ``M x M`` mask under the sigmoid rule (what the model outputs)."""
        return self.sigmoid[self.predicted] > self.threshold

    @property
    def softmax_mask(self) -> np.ndarray:
        """The predicted class's mask if classes competed per cell (softmax above the threshold)."""
        return self.softmax[self.predicted] > self.threshold

    def iou(self) -> float:
        """IoU of the two masks on the ``M x M`` grid (1 when both are empty)."""
        a, b = self.sigmoid_mask, self.softmax_mask
        union = int((a | b).sum())
        return 1.0 if union == 0 else float((a & b).sum()) / union

    def winners(self) -> np.ndarray:
        """``(M, M)`` the class with the highest logit per cell among the foreground channels."""
        return (np.argmax(self.logits[self.foreground:], axis=0) + self.foreground).astype(np.int64)

    def other_class_cells(self) -> int:
        """Cells of the sigmoid mask where another class's channel is higher: the cells a softmax
        would give away even though the model's own class says "object"."""
        return int((self.sigmoid_mask & (self.winners() != self.predicted)).sum())


def mask_head_choices(logits: np.ndarray, predicted: int, threshold: float = 0.5,
                      foreground: int = 1) -> MaskHeadChoices:
    """Both readings of one detection's ``(C, M, M)`` mask logits (see the module docstring)."""
    lg = np.asarray(logits, np.float32)
    if lg.ndim != 3 or lg.shape[0] < 1:
        raise SegviewerError(f"The mask head's logits must be (classes, M, M); got shape {lg.shape}.")
    c = lg.shape[0]
    fg = int(foreground) if c > 1 else 0
    if not fg <= predicted < c:
        raise SegviewerError(f"Class {predicted} is not one of the mask head's {c - fg} foreground channels.")
    soft = np.zeros_like(lg)
    soft[fg:] = softmax(lg[fg:], axis=0)
    return MaskHeadChoices(lg, sigmoid(lg), soft, int(predicted), fg, float(threshold))


def spatial_softmax(logits: np.ndarray) -> np.ndarray:
    """``(K, H, W)`` keypoint logits -> per keypoint a distribution over its ``H x W`` cells (the
    cross-entropy Keypoint R-CNN is trained with: one target cell per keypoint)."""
    lg = np.asarray(logits, np.float32)
    if lg.ndim != 3:
        raise SegviewerError(f"Keypoint heatmaps must be (keypoints, H, W); got shape {lg.shape}.")
    k = lg.shape[0]
    return softmax(lg.reshape(k, -1), axis=1).reshape(lg.shape)


def _cubic_taps(size_in: int, size_out: int) -> tuple[np.ndarray, np.ndarray]:
    """PyTorch's bicubic resize along one axis (``align_corners=False``, A = -0.75, indices
    clamped to the border): for each output position its 4 input indices and weights."""
    a = -0.75
    scale = size_in / size_out
    src = (np.arange(size_out, dtype=np.float64) + 0.5) * scale - 0.5  # not clamped at 0 for cubic
    i0 = np.floor(src).astype(np.int64)
    t = src - i0

    def near(x: np.ndarray) -> np.ndarray:  # |x| <= 1
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x: np.ndarray) -> np.ndarray:  # 1 < |x| < 2
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    w = np.stack([far(t + 1), near(t), near(1 - t), far(2 - t)], 1)
    idx = np.clip(i0[:, None] + np.arange(-1, 3)[None, :], 0, size_in - 1)
    return idx, w


def bicubic_resize(maps: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """``(K, h, w)`` maps resized to ``size_hw`` as ``F.interpolate(mode="bicubic")`` does (float64).

    Four gathered taps per axis, no matrix product: BLAS threads stalled a busy 2-core machine
    for ~90 ms on a 17-map person box, the taps take a few ms."""
    m = np.asarray(maps, np.float64)
    iy, wy = _cubic_taps(m.shape[1], int(size_hw[0]))
    ix, wx = _cubic_taps(m.shape[2], int(size_hw[1]))
    rows = sum(wy[:, j, None] * m[:, iy[:, j], :] for j in range(4))
    return sum(wx[:, j] * rows[:, :, ix[:, j]] for j in range(4))


def heatmaps_to_keypoints(logits: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One detection's ``(K, H, W)`` keypoint logits and its xyxy box (the frame the head saw) ->
    ``(K, 2)`` keypoint x, y and ``(K,)`` scores, as torchvision's ``heatmaps_to_keypoints``: each
    map resized bicubically to ``ceil(box size)`` pixels, argmax, the pixel's centre mapped back
    into the box; the score is the resized logit there."""
    lg = np.asarray(logits, np.float32)
    if lg.ndim != 3:
        raise SegviewerError(f"Keypoint heatmaps must be (keypoints, H, W); got shape {lg.shape}.")
    x0, y0, x1, y1 = (float(v) for v in np.asarray(box, np.float32).reshape(4))
    bw, bh = max(np.float32(x1 - x0), 1.0), max(np.float32(y1 - y0), 1.0)
    rw, rh = int(np.ceil(bw)), int(np.ceil(bh))
    big = bicubic_resize(lg, (rh, rw)).astype(np.float32)  # torch computes the map in float32
    k = lg.shape[0]
    pos = big.reshape(k, -1).argmax(1)
    yi, xi = pos // rw, pos % rw
    x = (xi.astype(np.float32) + 0.5) * np.float32(bw / rw) + np.float32(x0)
    y = (yi.astype(np.float32) + 0.5) * np.float32(bh / rh) + np.float32(y0)
    return np.stack([x, y], 1).astype(np.float32), big[np.arange(k), yi, xi].astype(np.float32)
