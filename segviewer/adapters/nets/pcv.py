"""Pixel Consensus Voting net: one shared encoder-decoder with two heads.

* semantic head: class logits for every pixel at input resolution;
* voting head: for every pixel at stride ``vote_stride``, logits over the K = 17 cells of the
  9 x 9 voting lookup table plus one "abstain" class (stuff pixels abstain). The cell geometry
  lives in :mod:`segviewer.training.pcv_targets` (numpy only, reused by the analysis code).
"""

from __future__ import annotations

import torch
from torch import nn

from .unet import DEFAULT_WIDTHS, UNetBody


class PCVNet(nn.Module):
    """Returns ``{"semantic": (N, C, H, W), "votes": (N, K + 1, H / s, W / s)}``."""

    def __init__(self, num_classes: int, num_vote_classes: int = 18,
                 widths: tuple[int, ...] = DEFAULT_WIDTHS, vote_stride: int = 4) -> None:
        super().__init__()
        self.body = UNetBody(widths)
        self.vote_stride = vote_stride
        levels = vote_stride.bit_length() - 1  # stride 4 -> decoder level 2 from the top
        assert 2**levels == vote_stride and levels < len(widths)
        self.vote_level = levels
        vw = widths[levels]
        self.sem_head = nn.Conv2d(widths[0], num_classes, 1)
        self.aux_head = nn.Conv2d(widths[-1], num_classes, 1)  # deep supervision (see UNet)
        # The voting head sees a wide context: two dilated convs before the classifier, since a
        # pixel must "know" where its instance's centroid is, up to the table's outer ring.
        self.vote_head = nn.Sequential(
            nn.Conv2d(vw, vw, 3, padding=2, dilation=2, bias=False), nn.BatchNorm2d(vw), nn.ReLU(inplace=True),
            nn.Conv2d(vw, vw, 3, padding=4, dilation=4, bias=False), nn.BatchNorm2d(vw), nn.ReLU(inplace=True),
            nn.Conv2d(vw, num_vote_classes, 1),
        )

    @property
    def divisor(self) -> int:
        return self.body.divisor

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        b = self.body
        skips = b.encode(x)
        x = skips.pop()
        bottleneck = x
        depth = len(b.widths) - 1  # current level (0 = full resolution)
        vote_feat = x if depth == self.vote_level else None
        for up, dec in zip(b.up, b.dec):
            x = up(x)
            x = dec(torch.cat([skips.pop(), x], dim=1))
            depth -= 1
            if depth == self.vote_level:
                vote_feat = x
        assert vote_feat is not None
        out = {"semantic": self.sem_head(x), "votes": self.vote_head(vote_feat)}
        if self.training:
            out["aux"] = self.aux_head(bottleneck)
        return out
