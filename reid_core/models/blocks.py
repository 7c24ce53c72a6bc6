"""Convolutional blocks: HA-CNN's Inception-A/B and ShuffleNetV2's units (Shuffle-A/B)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ConvBNReLU", "InceptionA", "InceptionB", "ShuffleUnit", "make_stage", "make_local_block"]


class ConvBNReLU(nn.Sequential):
    """conv -> BN (-> ReLU). Bias-free: BN's shift makes a conv bias redundant."""

    def __init__(self, in_c: int, out_c: int, k: int, stride: int = 1, groups: int = 1, relu: bool = True) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(in_c, out_c, k, stride=stride, padding=k // 2, groups=groups, bias=False),
            nn.BatchNorm2d(out_c),
        ]
        if relu:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class InceptionA(nn.Module):
    """Li et al. 2018: four streams of out/4 channels, size kept.

    Three 1x1 -> 3x3 streams and an avg-pool -> 1x1 stream, as in the public reference
    implementation (torchreid's hacnn.py). A variant with a second 3x3 in one stream
    (as some descriptions draw it) gives 3.05 M parameters instead of 2.92 M, further
    from the 2.7 M quoted for HA-CNN.
    """

    def __init__(self, in_c: int, out_c: int) -> None:
        super().__init__()
        mid = out_c // 4
        self.stream1 = nn.Sequential(ConvBNReLU(in_c, mid, 1), ConvBNReLU(mid, mid, 3))
        self.stream2 = nn.Sequential(ConvBNReLU(in_c, mid, 1), ConvBNReLU(mid, mid, 3))
        self.stream3 = nn.Sequential(ConvBNReLU(in_c, mid, 1), ConvBNReLU(mid, mid, 3))
        self.stream4 = nn.Sequential(nn.AvgPool2d(3, stride=1, padding=1), ConvBNReLU(in_c, mid, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.stream1(x), self.stream2(x), self.stream3(x), self.stream4(x)], dim=1)


class InceptionB(nn.Module):
    """Li et al. 2018: halves the size; streams of out/4, out/4 and out/2 channels."""

    def __init__(self, in_c: int, out_c: int) -> None:
        super().__init__()
        mid = out_c // 4
        self.stream1 = nn.Sequential(ConvBNReLU(in_c, mid, 1), ConvBNReLU(mid, mid, 3, stride=2))
        self.stream2 = nn.Sequential(
            ConvBNReLU(in_c, mid, 1), ConvBNReLU(mid, mid, 3), ConvBNReLU(mid, mid, 3, stride=2)
        )
        self.stream3 = nn.Sequential(nn.MaxPool2d(3, stride=2, padding=1), ConvBNReLU(in_c, out_c - 2 * mid, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.stream1(x), self.stream2(x), self.stream3(x)], dim=1)


class ShuffleUnit(nn.Module):
    """ShuffleNetV2 unit (Ma et al. 2018).

    kind 'A' (basic unit): split channels, transform one half, concatenate, shuffle.
    kind 'B': both branches transform the whole input (stride 2, or a width change at
    stride 1). Written here rather than taken from torchvision because torchvision's
    InvertedResidual cannot change the width at stride 1, which Table 1's first unit of
    every stage does.
    """

    def __init__(self, in_c: int, out_c: int, stride: int = 1, kind: str = "A") -> None:
        super().__init__()
        if out_c % 2:
            raise ValueError(f"ShuffleUnit: out channels must be even, got {out_c}")
        half = out_c // 2
        self.kind = kind
        if kind == "A":
            if in_c != out_c or stride != 1:
                raise ValueError("Shuffle-A keeps width and size: use kind='B' to change them")
            self.branch1 = None
            b2_in = half
        elif kind == "B":
            self.branch1 = nn.Sequential(
                ConvBNReLU(in_c, in_c, 3, stride=stride, groups=in_c, relu=False),
                ConvBNReLU(in_c, half, 1),
            )
            b2_in = in_c
        else:
            raise ValueError(f"ShuffleUnit: kind must be 'A' or 'B', got {kind!r}")
        self.branch2 = nn.Sequential(
            ConvBNReLU(b2_in, half, 1),
            ConvBNReLU(half, half, 3, stride=stride, groups=half, relu=False),
            ConvBNReLU(half, half, 1),
        )
        self.shuffle = nn.ChannelShuffle(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.branch1 is None:
            a, b = x.chunk(2, dim=1)
            out = torch.cat([a, self.branch2(b)], dim=1)
        else:
            out = torch.cat([self.branch1(x), self.branch2(x)], dim=1)
        return self.shuffle(out)


def make_stage(block: str, in_c: int, out_c: int, repeats: int) -> nn.Sequential:
    """One stage of the global branch; down-sampling only in its LAST unit (Table 1).

    shuffle:   Shuffle-B (width) -> Shuffle-A x repeats -> Shuffle-B (stride 2)
    inception: Inception-A x repeats -> Inception-B (stride 2)
    """
    if block == "shuffle":
        units = [ShuffleUnit(in_c, out_c, 1, "B")]
        units += [ShuffleUnit(out_c, out_c, 1, "A") for _ in range(repeats)]
        units.append(ShuffleUnit(out_c, out_c, 2, "B"))
    else:
        units = [InceptionA(in_c, out_c)] + [InceptionA(out_c, out_c) for _ in range(repeats - 1)]
        units.append(InceptionB(out_c, out_c))
    return nn.Sequential(*units)


def make_local_block(block: str, in_c: int, out_c: int) -> nn.Module:
    """The local branch's block (weights shared over the 4 regions): halves the crop size."""
    return ShuffleUnit(in_c, out_c, 2, "B") if block == "shuffle" else InceptionB(in_c, out_c)
