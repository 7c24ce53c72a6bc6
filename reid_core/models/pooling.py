"""Global pooling: average, max, their concatenation, and GeM (eq. 6)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["GeM", "build_pooling", "pooled_channels"]


class GeM(nn.Module):
    """Generalised-mean pooling with one trainable exponent p (Radenovic et al.).

    p = 1 is average pooling; p -> inf tends to max pooling. Computed in float32 even
    under autocast: eps**p underflows in half precision and the backward gives NaN.
    """

    def __init__(self, p: float = 3.0, eps: float = 1e-6, trainable: bool = True) -> None:
        super().__init__()
        self.p = nn.Parameter(torch.tensor(float(p)), requires_grad=trainable)
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=x.device.type, enabled=False):
            p = self.p.float()
            x = x.float().clamp(min=self.eps)  # clamp BEFORE the power
            pooled = F.adaptive_avg_pool2d(x.pow(p), 1).pow(1.0 / p).flatten(1)
            if not self.training:
                # x**p can overflow (huge activations: a network without L2 normalisation on
                # little data, seen in a rehearsal): there, the same mean of each map taken
                # relative to its maximum. torch.where, not an `if`, so the graph has no
                # data-dependent branch (torch.export / ONNX) and finite results stay bit for bit.
                scale = x.amax(dim=(2, 3), keepdim=True)
                relative = (F.adaptive_avg_pool2d((x / scale).pow(p), 1).pow(1.0 / p) * scale).flatten(1)
                pooled = torch.where(torch.isfinite(pooled), pooled, relative)
            return pooled

    def extra_repr(self) -> str:
        return f"p={self.p.item():.4f}, eps={self.eps}"


class _AvgPool(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(x, 1).flatten(1)


class _MaxPool(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_max_pool2d(x, 1).flatten(1)


class _AvgMaxPool(nn.Module):
    """Average and max pooling concatenated (Section 3.3: doubles the head's input)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([F.adaptive_avg_pool2d(x, 1), F.adaptive_max_pool2d(x, 1)], dim=1).flatten(1)


def build_pooling(kind: str, p_init: float = 3.0, trainable: bool = True) -> nn.Module:
    if kind == "gem":
        return GeM(p_init, trainable=trainable)
    if kind == "avg":
        return _AvgPool()
    if kind == "max":
        return _MaxPool()
    if kind == "avgmax":
        return _AvgMaxPool()
    raise ValueError(f"model.pooling: invalid value {kind!r}; allowed: 'avg', 'max', 'avgmax', 'gem'")


def pooled_channels(kind: str, channels: int) -> int:
    return 2 * channels if kind == "avgmax" else channels
