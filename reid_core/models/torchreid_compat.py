"""Load weights saved by torchreid's HA-CNN (`torchreid.models.hacnn.HACNN`) into `hacnn`.

torchreid names its modules differently (`inception1.0.stream1.0.conv.weight` here is
`stages.0.0.stream1.0.0.weight`) and its convolutions carry a bias, ours none (BN's shift
makes it redundant). The bias is folded exactly: in train mode BN subtracts the batch mean,
which removes a constant bias; in eval mode BN(x + b) with running mean mu equals BN(x)
with running mean mu - b. tests/core/test_hacnn_reference.py checks the result against an
independent functional re-computation of torchreid's forward.
"""

from __future__ import annotations

import re
from typing import Mapping

import torch

from ..errors import CheckpointError
from .network import HACNNFamily

__all__ = ["torchreid_hacnn_state_dict", "load_torchreid_hacnn"]

# (torchreid module prefix, ours); applied to the part of a key before its last module.
_PREFIXES = [
    (r"^conv\.", "stem."),
    (r"^inception(\d)\.", lambda m: f"stages.{int(m[1]) - 1}."),
    (r"^ha(\d)\.soft_attn\.spatial_attn\.", lambda m: f"soft_attn.{int(m[1]) - 1}.spatial."),
    (r"^ha(\d)\.soft_attn\.channel_attn\.", lambda m: f"soft_attn.{int(m[1]) - 1}.channel."),
    (r"^ha(\d)\.soft_attn\.", lambda m: f"soft_attn.{int(m[1]) - 1}."),
    (r"^ha(\d)\.hard_attn\.", lambda m: f"hard_attn.{int(m[1]) - 1}."),
    (r"^local_conv(\d)\.", lambda m: f"local_blocks.{int(m[1]) - 1}."),
    (r"^fc_global\.", "head_global.fc."),
    (r"^fc_local\.", "head_local.fc."),
]
# torchreid's ConvBlock is (conv, bn); ours a Sequential (0: conv, 1: bn, 2: ReLU).
_CONV_BLOCK = re.compile(r"^(.*)\b(conv|bn)\.(weight|bias|running_mean|running_var|num_batches_tracked)$")


def _rename_prefix(key: str) -> str:
    for pattern, repl in _PREFIXES:
        new, hits = re.subn(pattern, repl, key, count=1)
        if hits:
            return new
    return key  # classifier_global.*, classifier_local.* keep their names


def torchreid_hacnn_state_dict(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """torchreid HA-CNN state dict -> this project's `hacnn` state dict (conv biases folded
    into the following BatchNorm's running mean). A `module.` prefix (DataParallel) is dropped."""
    state = {k.removeprefix("module."): v for k, v in state.items()}
    out: dict[str, torch.Tensor] = {}
    conv_bias: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        match = _CONV_BLOCK.match(key)
        if match is None:  # heads, classifiers, hard attention: plain modules
            out[_rename_prefix(key)] = value
            continue
        block, module, leaf = _rename_prefix(match[1]), match[2], match[3]
        if module == "conv" and leaf == "bias":
            conv_bias[block] = value
        else:
            out[f"{block}{'0' if module == 'conv' else '1'}.{leaf}"] = value
    for block, bias in conv_bias.items():
        key = f"{block}1.running_mean"
        if key not in out:
            raise CheckpointError(f"torchreid HA-CNN state: conv bias of {block!r} has no BatchNorm after it")
        out[key] = out[key] - bias.to(out[key].dtype)
    return out


def load_torchreid_hacnn(model: HACNNFamily, state: Mapping[str, torch.Tensor]) -> None:
    """Load a torchreid HA-CNN state dict into `model` (built from the `hacnn` preset, with
    model.num_classes = the checkpoint's). Raises CheckpointError naming the keys that do
    not fit (another architecture, GeM / BNNeck / bias-free classifiers, ...)."""
    cfg = model.cfg
    if cfg.hard_attention != "hacnn":
        raise CheckpointError(
            "torchreid HA-CNN weights need model.hard_attention='hacnn' "
            f"(got {cfg.hard_attention!r}): its regions use t = tanh(z)"
        )
    mapped = torchreid_hacnn_state_dict(state)
    try:
        model.load_state_dict(mapped, strict=True)
    except RuntimeError as e:
        raise CheckpointError(
            "torchreid HA-CNN weights do not fit this model (build it from the 'hacnn' preset with "
            f"model.num_classes of the checkpoint): {e}"
        ) from e
