"""A small U-Net: encoder-decoder whose decoder *concatenates* the encoder's feature map at each
scale (where FCN adds class scores). Batch norm and padding 1 (the paper used unpadded convs
and cropping). Six scales down to stride 32: telling a star from a ring needs a receptive field
as large as the object (a 4-scale version reached only 0.48 mIoU: stuff fine, things confused),
so inputs must be multiples of 32. Narrow at full resolution, wide only where pixels are few."""

from __future__ import annotations

import torch
from torch import nn

from .common import conv_bn_relu

DEFAULT_WIDTHS: tuple[int, ...] = (8, 16, 32, 64, 128, 192)


def double_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(conv_bn_relu(cin, cout), conv_bn_relu(cout, cout))


class UNetBody(nn.Module):
    """Encoder-decoder returning the full-resolution decoder features (``widths[0]`` channels)."""

    def __init__(self, widths: tuple[int, ...] = DEFAULT_WIDTHS) -> None:
        super().__init__()
        self.widths = tuple(widths)
        self.down = nn.ModuleList()
        cin = 3
        for w in widths:
            self.down.append(double_conv(cin, w))
            cin = w
        self.pool = nn.MaxPool2d(2)
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        for i in range(len(widths) - 1, 0, -1):
            self.up.append(nn.ConvTranspose2d(widths[i], widths[i - 1], 2, stride=2))
            self.dec.append(double_conv(2 * widths[i - 1], widths[i - 1]))

    @property
    def divisor(self) -> int:
        return 2 ** (len(self.widths) - 1)

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The encoder's output at every scale, full resolution first; the last is the bottleneck
        (the U-Net, the PCV net and the DFF bottleneck split all start here)."""
        skips = []
        for i, d in enumerate(self.down):
            x = d(x if i == 0 else self.pool(x))
            skips.append(x)
        return skips

    def forward(self, x: torch.Tensor, with_bottleneck: bool = False):  # noqa: ANN201
        """Full-resolution decoder features (and the bottleneck's, for deep supervision)."""
        skips = self.encode(x)
        x = skips.pop()
        bottleneck = x
        for up, dec in zip(self.up, self.dec):
            x = up(x)
            x = dec(torch.cat([skips.pop(), x], dim=1))
        return (x, bottleneck) if with_bottleneck else x


class UNet(nn.Module):
    """Per-pixel class logits ``(N, C, H, W)``.

    Training adds deep supervision: ``aux_head`` classifies the stride-32 bottleneck and gets its
    own loss (:meth:`forward_train`). Without it the net settles on the easy local answer (stuff
    textures right, every thing one class) because telling shapes apart needs the deep features;
    at inference the aux head is unused.
    """

    def __init__(self, num_classes: int, widths: tuple[int, ...] = DEFAULT_WIDTHS) -> None:
        super().__init__()
        self.body = UNetBody(widths)
        self.head = nn.Conv2d(widths[0], num_classes, 1)
        self.aux_head = nn.Conv2d(widths[-1], num_classes, 1)

    def forward_train(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        feats, bottleneck = self.body(x, with_bottleneck=True)
        return {"out": self.head(feats), "aux": self.aux_head(bottleneck)}

    @property
    def divisor(self) -> int:
        return self.body.divisor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))
