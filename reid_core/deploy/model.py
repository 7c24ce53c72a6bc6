"""The deployable embedding network and the metadata that travels with every exported
model and features file (so a features file from another model is detected).

`EmbeddingNet` wraps the eval-mode network: one input `images` [N, 3, H, W] (normalised as
by `build_test_transform`), one output `embedding` [N, D] (the L2-normalised global and
local features, concatenated; hard attention included). No classifier, no tuple.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..checkpoint import build_model_from_weights, load_weights
from ..config import to_dict
from ..errors import CheckpointError

__all__ = ["EmbeddingNet", "ModelInfo", "load_embedding_net", "fingerprint_model", "METADATA_KIND"]

METADATA_KIND = "compact-reid-embedding"


class EmbeddingNet(nn.Module):
    """images [N, 3, H, W] -> embedding [N, D] (the model's eval-mode output, float32)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model.eval()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        out = self.model(images)
        if not isinstance(out, torch.Tensor) or out.dim() != 2:
            raise TypeError(f"the eval-mode network must return a [N, D] tensor, got {type(out).__name__}")
        return out.float()

    def train(self, mode: bool = True) -> "EmbeddingNet":
        # Deployment is inference only: BatchNorm statistics and the eval output stay fixed.
        return super().train(False)


@dataclass
class ModelInfo:
    """What identifies an embedding model: fingerprint (config + weights), feature size, input size."""

    fingerprint: str
    embedding_dim: int
    input_height: int
    input_width: int
    preset: str = ""
    source: str = ""  # the weights file it came from
    config: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({"kind": METADATA_KIND, **asdict(self)}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, where: str) -> "ModelInfo":
        try:
            data = json.loads(text)
            if data.pop("kind") != METADATA_KIND:
                raise ValueError("kind")
            return cls(**data)
        except (ValueError, TypeError, KeyError) as e:
            raise CheckpointError(f"{where}: no compact-reid embedding metadata ({type(e).__name__}: {e})") from e


def fingerprint_model(config: dict[str, Any], state: dict[str, torch.Tensor]) -> str:
    """16 hex digits of SHA-256 over the model config and every weight/buffer, in key order."""
    hasher = hashlib.sha256(json.dumps(config.get("model", config), sort_keys=True).encode())
    for key in sorted(state):
        value = state[key]
        hasher.update(key.encode())
        if isinstance(value, torch.Tensor):
            hasher.update(value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return hasher.hexdigest()[:16]


def load_embedding_net(path: str | Path) -> tuple[EmbeddingNet, ModelInfo]:
    """A compact-reid weights file (or full checkpoint) -> (EmbeddingNet on CPU, ModelInfo).

    Raises CheckpointError naming the file when it is not a compact-reid one.
    """
    obj = load_weights(path)
    try:
        model = build_model_from_weights(obj)
    except CheckpointError as e:
        raise CheckpointError(f"{path}: {e}") from e
    except Exception as e:  # a config that no longer validates
        raise CheckpointError(f"{path}: cannot rebuild its network ({type(e).__name__}: {e})") from e
    cfg = model.cfg
    config = obj["config"] if isinstance(obj["config"], dict) else to_dict(obj["config"])
    info = ModelInfo(
        fingerprint=fingerprint_model(config, model.state_dict()),
        embedding_dim=int(cfg.embedding_dim),
        input_height=int(cfg.input_height),
        input_width=int(cfg.input_width),
        preset=str(config.get("preset", "")),
        source=str(path),
        config=config,
    )
    return EmbeddingNet(model), info
