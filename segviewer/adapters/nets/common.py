"""Small building blocks shared by the FCN, the U-Net and the PCV net."""

from __future__ import annotations

import torch
from torch import nn


def conv_bn_relu(cin: int, cout: int, k: int = 3) -> nn.Sequential:
    """3x3 conv + BatchNorm + ReLU: batch norm lets these narrow nets train from scratch quickly."""
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


def bilinear_kernel(channels: int, k: int) -> torch.Tensor:
    """Weights that make a (channels -> channels, kernel k) transposed conv a bilinear upsampler.

    The same construction as the FCN paper's ``upsample_filt``: one separable tent per channel,
    zero between channels.
    """
    factor = (k + 1) // 2
    center = factor - 1 if k % 2 == 1 else factor - 0.5
    og = torch.arange(k, dtype=torch.float64)
    filt1 = 1 - (og - center).abs() / factor
    filt = (filt1[:, None] * filt1[None, :]).float()
    w = torch.zeros(channels, channels, k, k)
    for c in range(channels):
        w[c, c] = filt
    return w


def bilinear_upsampler(channels: int, factor: int, learnable: bool = True) -> nn.ConvTranspose2d:
    """A transposed conv that upsamples exactly by ``factor`` (output = input * factor), bilinear at init."""
    k = 2 * factor
    up = nn.ConvTranspose2d(channels, channels, k, stride=factor, padding=factor // 2, bias=False)
    with torch.no_grad():
        up.weight.copy_(bilinear_kernel(channels, k))
    up.weight.requires_grad_(learnable)
    return up
