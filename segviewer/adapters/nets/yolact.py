"""YOLACT's mask branch on the bundled YOLO detector: prototypes and per-box coefficients.

YOLACT (Bolya et al., 2019) splits instance segmentation into two parallel jobs: a *protonet*
predicts ``k`` image-sized prototype masks once per image, and the detector predicts, for every
box it could output, ``k`` coefficients in ``[-1, 1]`` (tanh). A detection's mask is assembled
as ``sigmoid(P c)``, cropped to its box and thresholded. No RoI pooling, no second stage.

Here the detector is :class:`segviewer.adapters.nets.yolo.YOLO` (same parameter names, so the
bundled ``shapes_yolo`` weights load unchanged) and YOLACT's two additions sit on it:

* ``proto``: an FPN-like path from the trunk's stride-16 features, up x2 with the stride-8
  features, up x2 with the stride-4 features, two 3x3 convolutions, a 1x1 to ``k`` channels and a
  ReLU (YOLACT keeps prototypes non-negative): ``(N, k, H/4, W/4)``;
* ``coef``: from the YOLO head's features, one 3x3 conv block and a 3x3 conv to ``B k`` outputs
  with tanh: each of the B priors of a cell gets its own ``k`` coefficients (YOLACT's per-anchor
  coefficients), laid out ``b k .. b k + k - 1``.

With ``freeze_detector`` (how the bundled model is trained) the YOLO part keeps its trained
weights and batch-norm statistics, so its boxes are exactly ``shapes_yolo``'s.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from segviewer.adapters.nets.common import conv_bn_relu
from segviewer.adapters.nets.yolo import DEFAULT_CONFIG as YOLO_CONFIG
from segviewer.adapters.nets.yolo import YOLO

DEFAULT_CONFIG: dict[str, Any] = {
    **YOLO_CONFIG,
    "num_prototypes": 16,
    "proto_width": 64,
    "freeze_detector": True,
}

#: Where the stride-4 and stride-8 features leave each trunk (index of the block, its channels).
_TAPS: dict[str, dict[int, tuple[int, int]]] = {
    "plain": {4: (2, 32), 8: (5, 64)},
    "resnet18": {4: (4, 64), 8: (5, 128)},
}


class YOLACT(YOLO):
    """``forward(x)`` -> ``{"out": (N, 5B + C, H/16, W/16), "coef": (N, B k, H/16, W/16),
    "proto": (N, k, H/4, W/4)}`` (``out`` raw as YOLO's; coefficients after tanh, prototypes
    after ReLU)."""

    def __init__(self, num_classes: int, priors: list[list[float]] | None = None, stride: int = 16,
                 head_width: int = 128, trunk: str = "plain", num_prototypes: int = 16,
                 proto_width: int = 64, freeze_detector: bool = True) -> None:
        super().__init__(num_classes, priors, stride, head_width, trunk)
        self.trunk_kind = trunk
        self.num_prototypes = k = int(num_prototypes)
        self.freeze_detector = bool(freeze_detector)
        w = int(proto_width)
        taps = _TAPS[trunk]
        self._tap_at = {taps[4][0]: 4, taps[8][0]: 8}
        self.proto_lat16 = conv_bn_relu(256, w)
        self.proto_lat8 = nn.Conv2d(taps[8][1], w, 1)
        self.proto_lat4 = nn.Conv2d(taps[4][1], w, 1)
        self.proto_fuse8 = conv_bn_relu(w, w)
        self.proto_tower = nn.Sequential(conv_bn_relu(w, w), conv_bn_relu(w, w))
        self.proto_out = nn.Conv2d(w, k, 1)
        hw = int(head_width)
        self.coef = nn.Sequential(conv_bn_relu(hw, hw), nn.Conv2d(hw, self.num_priors * k, 3, padding=1))
        with torch.no_grad():  # small coefficients at first: masks start near sigmoid(0)
            self.coef[-1].weight.mul_(0.1)
            self.coef[-1].bias.zero_()
        if self.freeze_detector:
            for p in self.detector_parameters():
                p.requires_grad_(False)

    def detector_modules(self) -> list[nn.Module]:
        return [self.trunk, self.head, self.pred]

    def detector_parameters(self) -> list[nn.Parameter]:
        return [p for m in self.detector_modules() for p in m.parameters()]

    def train(self, mode: bool = True) -> YOLACT:
        super().train(mode)
        if self.freeze_detector:  # the detector's batch-norm statistics stay the trained ones
            for m in self.detector_modules():
                m.eval()
        return self

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:  # type: ignore[override]
        taps: dict[int, torch.Tensor] = {}
        f = x
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze_detector):
            for i, block in enumerate(self.trunk):
                f = block(f)
                if i in self._tap_at:
                    taps[self._tap_at[i]] = f
            h = self.head(f)
            out = self.pred(h)
        p = self.proto_lat16(f)
        p = F.interpolate(p, size=taps[8].shape[-2:], mode="bilinear", align_corners=False) + self.proto_lat8(taps[8])
        p = self.proto_fuse8(p)
        p = F.interpolate(p, size=taps[4].shape[-2:], mode="bilinear", align_corners=False) + self.proto_lat4(taps[4])
        proto = F.relu(self.proto_out(self.proto_tower(p)))
        coef = torch.tanh(self.coef(h))
        return {"out": out, "coef": coef, "proto": proto}


def build_yolact(num_classes: int, config: dict[str, Any] | None = None) -> YOLACT:
    """The net ``config`` describes (missing keys take :data:`DEFAULT_CONFIG`; other keys, such as
    training options stored beside them, are ignored)."""
    cfg = {**DEFAULT_CONFIG, **(config or {})}
    return YOLACT(num_classes, cfg["priors"], int(cfg["stride"]), int(cfg["head_width"]), str(cfg["trunk"]),
                  int(cfg["num_prototypes"]), int(cfg["proto_width"]), bool(cfg["freeze_detector"]))
