"""Harmonious attention of HA-CNN (Li et al. 2018): soft spatial x channel, hard regions.

Written to match torchreid's hacnn.py (the public reference implementation), which
tests/core/test_hacnn_reference.py checks numerically (modes 'hacnn', used by the `hacnn` and `a`
presets). The config defaults, used by the Compact-ReID columns, are this project's variants:
`model.hard_attention='bounded'` (see `HardAttention`, `crop_regions`) and
`model.soft_attention='full_range'`.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import ConvBNReLU

__all__ = ["SoftAttention", "HardAttention", "crop_regions", "NUM_REGIONS", "HardAttentionMode", "SoftAttentionMode"]

HardAttentionMode = Literal["hacnn", "bounded"]
SoftAttentionMode = Literal["hacnn", "full_range"]

NUM_REGIONS = 4
# Fixed region scale (x: full width, y: a quarter of the height) and initial centres:
# four horizontal stripes from head to feet, as in HA-CNN.
REGION_SCALE = (1.0, 0.25)
REGION_CENTRES_Y = (-0.75, -0.25, 0.25, 0.75)


class SpatialAttention(nn.Module):
    """Mean over channels -> 3x3 conv stride 2 -> bilinear x2 -> 1x1 conv."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = ConvBNReLU(1, 1, 3, stride=2)
        self.conv2 = ConvBNReLU(1, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv1(x.mean(dim=1, keepdim=True))
        y = F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=True)
        return self.conv2(y)


class ChannelAttention(nn.Module):
    """Squeeze-excitation style: global average -> c/16 -> c."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        mid = max(1, channels // reduction)
        self.conv1 = ConvBNReLU(channels, mid, 1)
        self.conv2 = ConvBNReLU(mid, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(F.adaptive_avg_pool2d(x, 1)))


class SoftAttention(nn.Module):
    """Returns a mask in [0.5, 1) of x's shape: sigmoid(ReLU(BN(1x1 conv(spatial x channel)))).

    The ReLU before the sigmoid is HA-CNN's (torchreid's ConvBlock on the product, and
    Li et al.'s attention range of 0.5 to 1): a feature is at most halved, never zeroed.
    """

    def __init__(self, channels: int, mode: SoftAttentionMode = "hacnn") -> None:
        super().__init__()
        if mode not in ("hacnn", "full_range"):
            raise ValueError(f"soft attention mode {mode!r}; allowed: 'hacnn', 'full_range'")
        self.spatial = SpatialAttention()
        self.channel = ChannelAttention(channels)
        # 'full_range' (no ReLU: a mask in (0, 1) that can switch a feature off) is this
        # project's variant, the config default.
        self.conv = ConvBNReLU(channels, channels, 1, relu=mode == "hacnn")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.conv(self.spatial(x) * self.channel(x)))


class HardAttention(nn.Module):
    """Predicts the translations of 4 regions: global average -> Linear(c, 8) -> [N, 4, 2].

    mode 'hacnn' (HA-CNN, torchreid): t = tanh(z); the Linear starts at zero weights and
    bias (0, -0.75, 0, -0.25, 0, 0.25, 0, 0.75), i.e. stripes centred at tanh(bias).
    mode 'bounded' (this project's variant, the config default): t = (1 - s) * tanh(z), which keeps
    every crop [t - s, t + s] inside the image; the bias puts the stripes at
    (-0.75, -0.25, 0.25, 0.75), the outer ones pulled in slightly (|t| <= 0.95 (1 - s)) so
    that tanh is not saturated.
    """

    def __init__(self, channels: int, mode: HardAttentionMode = "hacnn") -> None:
        super().__init__()
        if mode not in ("hacnn", "bounded"):
            raise ValueError(f"hard attention mode {mode!r}; allowed: 'hacnn', 'bounded'")
        self.mode = mode
        self.fc = nn.Linear(channels, NUM_REGIONS * 2)
        nn.init.zeros_(self.fc.weight)
        sy = REGION_SCALE[1]
        bias = []
        for cy in REGION_CENTRES_Y:
            if mode == "hacnn":
                bias += [0.0, cy]
            else:
                ratio = max(-0.95, min(0.95, cy / (1 - sy)))
                bias += [0.0, math.atanh(ratio)]
        with torch.no_grad():
            self.fc.bias.copy_(torch.tensor(bias))
        self.register_buffer("scale", torch.tensor([REGION_SCALE] * NUM_REGIONS), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[N, 4, 2] region centres (tx, ty) in normalised image coordinates."""
        z = self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1)).view(-1, NUM_REGIONS, 2)
        t = torch.tanh(z)
        return t if self.mode == "hacnn" else (1 - self.scale) * t


def region_thetas(translations: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Affine matrices [N*4, 2, 3] = [[sx, 0, tx], [0, sy, ty]], built on the input's device."""
    n = translations.shape[0]
    s = scale.to(translations.dtype).expand(n, -1, -1)  # [N, 4, 2]
    zero = torch.zeros_like(translations[..., 0])
    row_x = torch.stack([s[..., 0], zero, translations[..., 0]], dim=-1)
    row_y = torch.stack([zero, s[..., 1], translations[..., 1]], dim=-1)
    return torch.stack([row_x, row_y], dim=-2).reshape(n * NUM_REGIONS, 2, 3)


def crop_regions(
    x: torch.Tensor,
    translations: torch.Tensor,
    scale: torch.Tensor,
    size: tuple[int, int],
    mode: HardAttentionMode = "hacnn",
) -> torch.Tensor:
    """Sample the 4 regions of every image to `size`: [N, C, H, W] -> [N*4, C, h, w].

    mode 'hacnn' (torchreid's stn + upsample): sample each region at the full H x W with
    zero padding outside the image, then resize bilinearly (align_corners=True) to `size`.
    mode 'bounded': sample directly at `size` with border padding (one resampling instead
    of two, and 4 x h x w samples instead of 4 x H x W).
    """
    n, c, h, w = x.shape
    theta = region_thetas(translations, scale)
    x4 = x.unsqueeze(1).expand(n, NUM_REGIONS, c, h, w).reshape(n * NUM_REGIONS, c, h, w)
    if mode == "hacnn":
        grid = F.affine_grid(theta, [n * NUM_REGIONS, c, h, w], align_corners=False)
        full = F.grid_sample(x4, grid.to(x4.dtype), mode="bilinear", padding_mode="zeros", align_corners=False)
        return F.interpolate(full, size=size, mode="bilinear", align_corners=True)
    grid = F.affine_grid(theta, [n * NUM_REGIONS, c, size[0], size[1]], align_corners=False)
    return F.grid_sample(x4, grid.to(x4.dtype), mode="bilinear", padding_mode="border", align_corners=False)
