"""One HA-CNN family: the original HA-CNN (Inception) and Compact-ReID (Shuffle, GeM, L2).

Global branch: stem -> 3 x (stage -> soft attention). Local branch (weights shared over
the 4 hard-attention regions): stage s crops its input (the stem output for s=1, else
the previous attended global output), adds the previous local feature map (s > 1) and
applies one down-sampling block. Heads: pool -> Linear -> BN1d -> ReLU per branch, then
the neck (L2, BNNeck or none) and one classifier per branch.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ModelConfig, from_dict
from ..errors import DataError
from .attention import NUM_REGIONS, HardAttention, SoftAttention, crop_regions
from .blocks import ConvBNReLU, make_local_block, make_stage
from .output import ReIDOutput
from .pooling import build_pooling, pooled_channels

__all__ = ["HACNNFamily", "build_model", "local_crop_sizes"]


def local_crop_sizes(height: int, width: int) -> list[tuple[int, int]]:
    """Region sizes per stage: 24x28, 12x14, 6x7 at 160x64 (HA-CNN), scaled otherwise."""
    h, w = max(4, round(height * 24 / 160)), max(4, round(width * 28 / 64))
    sizes = [(h, w)]
    for _ in range(2):
        h, w = math.ceil(h / 2), math.ceil(w / 2)
        sizes.append((h, w))
    return sizes


class _Head(nn.Module):
    """Linear -> BN1d -> ReLU, then the neck; returns (triplet feature, classifier input)."""

    def __init__(self, in_features: int, dim: int, neck: str, l2_scale: float = 16.0) -> None:
        super().__init__()
        self.fc = nn.Sequential(nn.Linear(in_features, dim), nn.BatchNorm1d(dim), nn.ReLU(inplace=True))
        self.neck = neck
        self.l2_scale = l2_scale
        if neck == "bnneck":
            # Bag of Tricks: BN before the classifier, its shift frozen at zero.
            self.bnneck = nn.BatchNorm1d(dim)
            self.bnneck.bias.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feat = self.fc(x)
        if self.neck == "l2":
            feat = F.normalize(feat, dim=1)
            return feat, feat * self.l2_scale  # the triplet sees unit vectors, the classifier scaled ones
        if self.neck == "bnneck":
            return feat, self.bnneck(feat)
        return feat, feat

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Test feature of this branch, L2-normalised."""
        feat, neck_feat = self.forward(x)
        return F.normalize(neck_feat if self.neck == "bnneck" else feat, dim=1)


class HACNNFamily(nn.Module):
    """The network. Train mode returns `ReIDOutput`; eval mode the [N, D] test embedding
    (L2-normalised global and local features, concatenated)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        stem = cfg.stem_channels
        ch = cfg.stage_channels
        reps = cfg.stage_repeats
        self.crop_sizes = local_crop_sizes(cfg.input_height, cfg.input_width)

        self.stem = ConvBNReLU(3, stem, 3, stride=2)
        ins = (stem,) + ch[:-1]
        self.stages = nn.ModuleList(make_stage(cfg.block, i, o, r) for i, o, r in zip(ins, ch, reps))
        self.soft_attn = nn.ModuleList(SoftAttention(c, cfg.soft_attention) for c in ch)
        self.hard_attn = nn.ModuleList(HardAttention(c, cfg.hard_attention) for c in ch)
        self.local_blocks = nn.ModuleList(make_local_block(cfg.block, i, o) for i, o in zip(ins, ch))

        self.pool_global = build_pooling(cfg.pooling, cfg.gem_p_init, cfg.gem_trainable)
        self.pool_local = build_pooling(cfg.pooling, cfg.gem_p_init, cfg.gem_trainable)
        pooled = pooled_channels(cfg.pooling, ch[-1])
        self.head_global = _Head(pooled, cfg.global_features, cfg.neck, cfg.l2_scale)
        self.head_local = _Head(pooled * NUM_REGIONS, cfg.local_features, cfg.neck, cfg.l2_scale)
        self.classifier_global = nn.Linear(cfg.global_features, cfg.num_classes, bias=cfg.classifier_bias)
        self.classifier_local = nn.Linear(cfg.local_features, cfg.num_classes, bias=cfg.classifier_bias)
        self._init_weights()

    def _init_weights(self) -> None:
        for name, m in self.named_modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear) and "hard_attn" not in name:
                if name.startswith("classifier"):
                    nn.init.normal_(m.weight, std=0.01)
                else:
                    nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != 3 or tuple(x.shape[-2:]) != (self.cfg.input_height, self.cfg.input_width):
            raise DataError(
                f"input of shape {tuple(x.shape)}; expected [N, 3, model.input_height={self.cfg.input_height}, "
                f"model.input_width={self.cfg.input_width}] (resize images to the model's input size)"
            )

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pooled global [N, C] and local [N, 4*C] descriptors (before the heads)."""
        self._check_input(x)
        n = x.shape[0]
        x = self.stem(x)
        crop_source = x
        local = None
        for stage, soft, hard, block, size in zip(
            self.stages, self.soft_attn, self.hard_attn, self.local_blocks, self.crop_sizes
        ):
            x = stage(x)
            regions = crop_regions(crop_source, hard(x), hard.scale, size, hard.mode)
            local = block(regions if local is None else regions + local)
            x = x * soft(x)
            crop_source = x
        global_feat = self.pool_global(x)
        local_feat = self.pool_local(local).reshape(n, -1)
        return global_feat, local_feat

    def forward(self, x: torch.Tensor) -> ReIDOutput | torch.Tensor:
        global_feat, local_feat = self.features(x)
        if not self.training:
            return torch.cat([self.head_global.embed(global_feat), self.head_local.embed(local_feat)], dim=1)
        fg, cg = self.head_global(global_feat)
        fl, cl = self.head_local(local_feat)
        return ReIDOutput(logits=(self.classifier_global(cg), self.classifier_local(cl)), features=(fg, fl))

    def classifier_parameters(self) -> list[nn.Parameter]:
        return list(self.classifier_global.parameters()) + list(self.classifier_local.parameters())


def build_model(cfg: ModelConfig | Mapping[str, Any] | None = None, **overrides: Any) -> HACNNFamily:
    """Build the network from a ModelConfig or a dict of its fields (validated)."""
    if cfg is None or isinstance(cfg, Mapping):
        data = dict(cfg or {})
        data.update(overrides)
        cfg = from_dict(ModelConfig, data, "model")
    elif overrides:
        from dataclasses import asdict

        cfg = from_dict(ModelConfig, {**asdict(cfg), **overrides}, "model")
    return HACNNFamily(cfg)
