"""A small YOLO-style detector for the shapes world (v1's grid and per-cell classes, v2's priors).

The trunk is a ResNet-18 cut after ``layer3`` (stride 16: a 16 x 16 grid on a 256 x 256 scene),
randomly initialised with trainable batch norm, then a narrow head of two 3x3 convolutions and a
1x1 prediction layer. Each grid cell predicts ``5 B + C`` numbers, laid out channel-wise as

* for each prior ``b`` in ``0 .. B-1``: ``t_x, t_y, t_w, t_h, t_o`` at channels ``5b .. 5b+4``
  (v2: ``b_x = sigma(t_x) + c_x``, ``b_w = p_w e^{t_w}``, objectness ``sigma(t_o)``);
* ``C`` class logits at channels ``5B .. 5B+C-1``, shared by the cell's boxes (v1's
  ``Pr(class | object)`` per cell, not per box).

The decoding itself lives in :mod:`segviewer.analysis.yolo` (numpy), used by the adapter, the
training evaluation and the Internals view alike.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from segviewer.adapters.nets.common import conv_bn_relu

#: Priors (width, height in pixels of the 256 px training scale) from k-means with the IoU
#: distance on the boxes of the first 2000 training scenes of seed 0
#: (``segviewer.analysis.yolo.kmeans_priors(wh, 5)``; mean best IoU 0.77 with their boxes).
DEFAULT_PRIORS: list[list[float]] = [[27.4, 27.4], [47.4, 47.2], [75.5, 74.4], [106.1, 111.2], [144.8, 139.1]]

DEFAULT_CONFIG: dict[str, Any] = {
    "priors": DEFAULT_PRIORS,
    "stride": 16,
    "head_width": 128,
    "trunk": "plain",
}


def plain_trunk() -> nn.Sequential:
    """A Darknet-like plain conv net to stride 16 (about 0.5 GMAC at 256 px, a third of the
    ResNet-18 trunk): stride-2 3x3 convolutions between 3x3 ones, then two dilated 3x3 convolutions
    at stride 16 so the receptive field (about 300 px) covers the largest shapes."""
    def dil(cin: int, cout: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=2, dilation=2, bias=False), nn.BatchNorm2d(cout),
                             nn.ReLU(inplace=True))

    def down(cin: int, cout: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(cout),
                             nn.ReLU(inplace=True))

    return nn.Sequential(
        down(3, 16),
        down(16, 32), conv_bn_relu(32, 32),
        down(32, 64), conv_bn_relu(64, 64), conv_bn_relu(64, 64),
        down(64, 128), conv_bn_relu(128, 128), dil(128, 128), conv_bn_relu(128, 256), dil(256, 256),
    )


class YOLO(nn.Module):
    """``forward(x)`` -> ``(N, 5B + C, H/16, W/16)`` raw outputs (no activation applied)."""

    divisor = 16

    def __init__(self, num_classes: int, priors: list[list[float]] | None = None, stride: int = 16,
                 head_width: int = 128, trunk: str = "plain") -> None:
        super().__init__()
        from torchvision.models.resnet import resnet18

        if int(stride) != 16:
            raise ValueError(f"this YOLO's trunk has stride 16, not {stride}")
        self.num_classes = int(num_classes)
        self.priors = [[float(w), float(h)] for w, h in (priors or DEFAULT_PRIORS)]
        self.num_priors = len(self.priors)
        self.stride = 16
        if trunk == "resnet18":
            r = resnet18(weights=None)
            self.trunk = nn.Sequential(r.conv1, r.bn1, r.relu, r.maxpool, r.layer1, r.layer2, r.layer3)
        elif trunk == "plain":
            self.trunk = plain_trunk()
        else:
            raise ValueError(f"the YOLO trunk is 'plain' or 'resnet18', not {trunk!r}")
        w = int(head_width)
        self.head = nn.Sequential(conv_bn_relu(256, w), conv_bn_relu(w, w))
        self.pred = nn.Conv2d(w, 5 * self.num_priors + self.num_classes, 1)
        with torch.no_grad():  # start with few objects everywhere (RetinaNet's prior, pi = 0.01)
            self.pred.bias.zero_()
            for b in range(self.num_priors):
                self.pred.bias[5 * b + 4] = -math.log(99.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pred(self.head(self.trunk(x)))


def build_yolo(num_classes: int, config: dict[str, Any] | None = None) -> YOLO:
    """The net ``config`` describes (missing keys take :data:`DEFAULT_CONFIG`)."""
    cfg = {**DEFAULT_CONFIG, **(config or {})}
    return YOLO(num_classes, cfg["priors"], int(cfg["stride"]), int(cfg["head_width"]), str(cfg["trunk"]))
