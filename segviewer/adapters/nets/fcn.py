"""FCN in the paper's style, narrowed for a 2-core CPU: a VGG-like encoder of five conv blocks
(each ending in a 2x2 max pool), fully connected layers made convolutional, 1x1 class scores,
and the 32s / 16s / 8s skip fusion.

Differences from the paper, on purpose: batch norm after every conv (we train from scratch, not
from ImageNet VGG16), "fc6" is a 3x3 conv rather than 7x7 (our images are 256 px), inputs are
padded to a multiple of 32 instead of the paper's 100-pixel padding and crop, and the three
heads are trained jointly (a loss on each) so that all three stages are good enough to show
side by side.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .common import bilinear_upsampler, conv_bn_relu

DEFAULT_WIDTHS: tuple[int, ...] = (16, 32, 48, 64, 96)
DEFAULT_DEPTHS: tuple[int, ...] = (1, 1, 2, 2, 2)
DEFAULT_FC_WIDTH = 128
STAGES: tuple[str, ...] = ("32s", "16s", "8s")


class FCN(nn.Module):
    """Outputs a dict of logits ``{"32s", "16s", "8s"}``, each ``(N, C, H, W)`` at input size.

    The input's H and W must be multiples of 32 (the adapter pads).
    """

    def __init__(self, num_classes: int, widths: tuple[int, ...] = DEFAULT_WIDTHS,
                 depths: tuple[int, ...] = DEFAULT_DEPTHS, fc_width: int = DEFAULT_FC_WIDTH) -> None:
        super().__init__()
        assert len(widths) == 5 and len(depths) == 5
        blocks = []
        cin = 3
        for w, d in zip(widths, depths):
            layers: list[nn.Module] = []
            for _ in range(d):
                layers.append(conv_bn_relu(cin, w))
                cin = w
            layers.append(nn.MaxPool2d(2))
            blocks.append(nn.Sequential(*layers))
        self.blocks = nn.ModuleList(blocks)
        # fc6 / fc7 as convolutions (the "fully convolutional" step), dropout as in the paper.
        self.fc = nn.Sequential(conv_bn_relu(cin, fc_width, 3), nn.Dropout2d(0.1),
                                conv_bn_relu(fc_width, fc_width, 1), nn.Dropout2d(0.1))
        self.score_fr = nn.Conv2d(fc_width, num_classes, 1)
        self.score_pool4 = nn.Conv2d(widths[3], num_classes, 1)
        self.score_pool3 = nn.Conv2d(widths[2], num_classes, 1)
        # Zero-initialised skip scores: at the start FCN-16s/8s equal FCN-32s (the paper's trick).
        for m in (self.score_pool4, self.score_pool3):
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)
        self.upscore2 = bilinear_upsampler(num_classes, 2)
        self.upscore_pool4 = bilinear_upsampler(num_classes, 2)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = []
        for b in self.blocks:
            x = b(x)
            feats.append(x)
        pool3, pool4 = feats[2], feats[3]
        score = self.score_fr(self.fc(x))  # stride 32
        size = x.shape[-2] * 32, x.shape[-1] * 32
        # The final 32x / 16x / 8x upsampling is fixed bilinear (as in the paper, where it was not
        # learned); interpolate is the same operator as a bilinear-initialised frozen transposed
        # conv, only much faster on a CPU.
        out32 = F.interpolate(score, size=size, mode="bilinear", align_corners=False)
        up2 = self.upscore2(score)  # stride 16
        fuse16 = up2 + self.score_pool4(pool4)
        out16 = F.interpolate(fuse16, size=size, mode="bilinear", align_corners=False)
        up4 = self.upscore_pool4(fuse16)  # stride 8
        fuse8 = up4 + self.score_pool3(pool3)
        out8 = F.interpolate(fuse8, size=size, mode="bilinear", align_corners=False)
        return {"32s": out32, "16s": out16, "8s": out8}
