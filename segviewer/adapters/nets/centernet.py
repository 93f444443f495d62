"""A small CenterNet ("Objects as Points", Zhou et al. 2019) for the shapes world.

* trunk: a ResNet-18 cut after ``layer3`` (stride 16, 256 channels), random init with trainable
  batch norm (nothing pretrained to freeze), as the bundled Mask R-CNN;
* two upsampling stages back to stride 4 (bilinear x2, plus a 1x1 lateral from ``layer2`` /
  ``layer1`` so the peaks land on the right stride-4 cell, then a 3x3 conv);
* three heads on the stride-4 map, each 3x3 conv + ReLU + 1x1 conv as in the paper: the class
  heatmap logits (one channel per thing class, sigmoid applied by the decoder), the 2-channel
  offset (the stride's rounding, in output cells) and the 2-channel size (w, h in output cells).
  With ``log_size`` (the default) the size head's raw output is ``log w, log h`` and ``forward``
  returns ``exp`` of it: a scale-free target that a short CPU training learns far faster than the
  paper's raw sizes (L1 x 0.1), the same encoding as YOLOv2's ``p e^t`` and Faster R-CNN's deltas.

The forward pass returns the raw head outputs; the decoding (3x3 max-pool peaks, top-k, boxes)
is numpy in :mod:`segviewer.analysis.centernet`, shared by training's evaluation and the adapter.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from segviewer.adapters.nets.common import conv_bn_relu

DEFAULT_CONFIG: dict[str, Any] = {
    "up_channels": [128, 64],
    "head_channels": 64,
    "stride": 4,
    "prior": 0.1,
    "log_size": True,
}
LOG_SIZE_INIT = 2.0  # log of ~7 cells (28 px): the shapes world's typical size, where the size head starts
MAX_LOG_SIZE = 6.0  # exp(6) = 403 cells: no box is bigger; the clamp keeps exp finite


def _head(cin: int, mid: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, mid, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(mid, cout, 1))


class CenterNet(nn.Module):
    """``forward(x)`` -> ``{"heatmap": (N, C, H/4, W/4) logits, "offset": (N, 2, ..), "size": (N, 2, ..)}``
    (size in output cells, ``exp`` of the head with ``log_size``)."""

    def __init__(self, num_classes: int, up_channels: tuple[int, int] | list[int] = (128, 64),
                 head_channels: int = 64, stride: int = 4, prior: float = 0.1, log_size: bool = True) -> None:
        super().__init__()
        from torchvision.models.resnet import resnet18

        if int(stride) != 4:
            raise ValueError("this CenterNet's output stride is 4 (two upsampling stages from stride 16)")
        r = resnet18(weights=None)
        self.stem = nn.Sequential(r.conv1, r.bn1, r.relu, r.maxpool)
        self.layer1, self.layer2, self.layer3 = r.layer1, r.layer2, r.layer3
        c1, c2 = (int(c) for c in up_channels)
        self.lat2 = nn.Conv2d(128, 256, 1)
        self.up1 = conv_bn_relu(256, c1)
        self.lat1 = nn.Conv2d(64, c1, 1)
        self.up2 = conv_bn_relu(c1, c2)
        self.num_classes, self.stride = int(num_classes), int(stride)
        self.heatmap = _head(c2, head_channels, num_classes)
        self.offset = _head(c2, head_channels, 2)
        self.size = _head(c2, head_channels, 2)
        self.log_size = bool(log_size)
        with torch.no_grad():  # the paper's prior: every location starts as background
            self.heatmap[-1].bias.fill_(-float(torch.log(torch.tensor((1 - prior) / prior))))
        if self.log_size:
            self.reset_size_head()

    def reset_size_head(self) -> None:
        """The size head's last layer starts near zero weights and a typical log size."""
        with torch.no_grad():
            self.size[-1].weight.mul_(0.01)
            self.size[-1].bias.fill_(LOG_SIZE_INIT)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        f1 = self.layer1(self.stem(x))
        f2 = self.layer2(f1)
        f3 = self.layer3(f2)
        y = F.interpolate(f3, size=f2.shape[-2:], mode="bilinear", align_corners=False) + self.lat2(f2)
        y = self.up1(y)
        y = F.interpolate(y, size=f1.shape[-2:], mode="bilinear", align_corners=False) + self.lat1(f1)
        return self.up2(y)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        f = self.features(x)
        size = self.size(f)
        if self.log_size:
            size = torch.exp(size.clamp(max=MAX_LOG_SIZE))
        return {"heatmap": self.heatmap(f), "offset": self.offset(f), "size": size}


def build_centernet(config: dict[str, Any] | None = None) -> CenterNet:
    """The net described by ``config`` (``num_classes`` plus :data:`DEFAULT_CONFIG`'s keys)."""
    cfg = {**DEFAULT_CONFIG, **(config or {})}
    return CenterNet(int(cfg["num_classes"]), tuple(cfg["up_channels"]), int(cfg["head_channels"]),
                     int(cfg["stride"]), float(cfg["prior"]), bool(cfg["log_size"]))
