"""Model complexity: unique parameters (with and without classifiers) and MACs.

MACs are counted with torch.utils.flop_counter on one image in eval mode (the test-time
network, without classifiers): convolutions and linear layers, FLOPs / 2. This is the
ReID literature's convention (the paper quotes 4.1 G for ResNet-50). `macs_with_bn` adds
one multiply-add per BatchNorm output element (BN folds into the conv at deployment, so
it is reported, not the headline). Parameters are counted once even when a module runs
several times (the shared local-branch blocks run on 4 regions).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .config import ModelConfig
from .models import HACNNFamily, build_model

__all__ = ["count_parameters", "count_macs", "profile_model", "profile_presets", "PAPER_TABLE1"]

# The paper's Table 1 (and the HA-CNN figure quoted in its Table 2 / Figure 1).
PAPER_TABLE1: dict[str, dict[str, float | None]] = {
    "hacnn": {"params_m": 2.7, "macs_g": None},
    "compact-1x": {"params_m": 2.9, "macs_g": 0.72},
    "compact-2x": {"params_m": 6.4, "macs_g": 1.68},
}


def count_parameters(model: HACNNFamily, include_classifiers: bool = True) -> int:
    """Unique parameters (model.parameters() deduplicates shared tensors)."""
    total = sum(p.numel() for p in model.parameters())
    if include_classifiers:
        return total
    return total - sum(p.numel() for p in model.classifier_parameters())


@torch.no_grad()
def count_macs(model: nn.Module, height: int = 160, width: int = 64) -> dict[str, int]:
    """Multiply-accumulates for one image at test time: {'macs', 'macs_with_bn'}."""
    was_training = model.training
    model.eval()
    bn_elements = 0

    def bn_hook(_m: nn.Module, _i: Any, out: torch.Tensor) -> None:
        nonlocal bn_elements
        bn_elements += out.numel()

    hooks = [
        m.register_forward_hook(bn_hook) for m in model.modules() if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))
    ]
    try:
        device = next(model.parameters()).device
        with FlopCounterMode(display=False) as counter:
            model(torch.zeros(1, 3, height, width, device=device))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    macs = counter.get_total_flops() // 2
    return {"macs": int(macs), "macs_with_bn": int(macs + bn_elements)}


def profile_model(cfg: ModelConfig) -> dict[str, Any]:
    model = build_model(cfg)
    macs = count_macs(model, cfg.input_height, cfg.input_width)
    return {
        "params": count_parameters(model, include_classifiers=False),
        "params_with_classifiers": count_parameters(model, include_classifiers=True),
        "num_classes": cfg.num_classes,
        "macs": macs["macs"],
        "macs_with_bn": macs["macs_with_bn"],
        "embedding_dim": cfg.embedding_dim,
        "input": [cfg.input_height, cfg.input_width],
    }


def profile_presets(
    names: tuple[str, ...] = ("hacnn", "compact-1x", "compact-2x"), num_classes: int = 751
) -> dict[str, Any]:
    """Profile of presets, with the paper's figures beside each (None where it gives none)."""
    from .presets import preset_config

    out: dict[str, Any] = {}
    for name in names:
        cfg = preset_config(name, {"model.num_classes": num_classes})
        row = profile_model(cfg.model)
        row["paper"] = PAPER_TABLE1.get(name, {"params_m": None, "macs_g": None})
        out[name] = row
    return out
