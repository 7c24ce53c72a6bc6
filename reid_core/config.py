"""Validated configuration: one `TrainConfig` holding every switch of the paper.

Configs are frozen dataclasses built from plain dicts (YAML, JSON, a run's config.json) by
`from_dict`, which rejects unknown keys and wrong types with an error that names the
key path and the allowed values. Presets (see `reid_core.presets`) are data on top.
"""

from __future__ import annotations

import dataclasses
import types
import typing
import warnings
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping

from .errors import ReIDError

__all__ = [
    "ConfigError",
    "ModelConfig",
    "LossConfig",
    "DataConfig",
    "OptimConfig",
    "ScheduleConfig",
    "SwagConfig",
    "EvalConfig",
    "RuntimeConfig",
    "TrainConfig",
    "from_dict",
    "to_dict",
    "flatten",
    "unflatten",
    "resolve_key",
    "with_overrides",
    "SCHEMA_VERSION",
    "RENAMED_SECTIONS",
]

# Bump when a field is renamed or removed, so tables can flag runs of an older schema
# (a section renamed with an alias in RENAMED_SECTIONS still reads: no bump).
SCHEMA_VERSION = 1

# Renamed top-level sections, old name -> new. The old name stays a deprecated alias so
# that checkpoints, config.json files, sweep YAML and `--set` keys written with it load.
RENAMED_SECTIONS = {"train": "runtime"}


class ConfigError(ReIDError, ValueError):
    """A configuration value or key is invalid; the message names the key path."""


def _check(cond: bool, path: str, msg: str) -> None:
    if not cond:
        raise ConfigError(f"{path}: {msg}")


# Table 1 of the paper (and Li et al. 2018 for HA-CNN): the two published sizes.
ARCH_SIZES: dict[str, dict[str, Any]] = {
    "1x": {"stem": 32, "channels": (128, 256, 384), "repeats": (7, 10, 7), "global_dim": 512, "local_dim": 512},
    "2x": {"stem": 36, "channels": (240, 320, 480), "repeats": (8, 11, 8), "global_dim": 960, "local_dim": 700},
}


@dataclass(frozen=True)
class ModelConfig:
    """The HA-CNN family. `block='inception'` + `size='1x'` is the original HA-CNN."""

    block: Literal["inception", "shuffle"] = "shuffle"
    size: Literal["1x", "2x"] = "1x"
    width_multiplier: float = 1.0
    depth_multiplier: float = 1.0
    pooling: Literal["avg", "max", "avgmax", "gem"] = "gem"
    gem_p_init: float = 3.0
    gem_trainable: bool = True
    neck: Literal["l2", "bnneck", "none"] = "l2"
    # With neck='l2' the classifiers see l2_scale * (unit feature): unit vectors through a
    # bias-free classifier give logits bounded by |w| (about 0.2 at init), so the CE stays
    # at ln(K) and barely trains (observed); NormFace-style scaling fixes that.
    l2_scale: float = 16.0
    classifier_bias: bool = False
    global_dim: int = 0  # 0 = the size's default (512 for 1x, 960 for 2x)
    local_dim: int = 0  # 0 = the size's default (512 for 1x, 700 for 2x)
    num_classes: int = 751
    input_height: int = 160
    input_width: int = 64
    # Attention variants. 'hacnn' = HA-CNN as torchreid has it: hard attention t = tanh(z),
    # regions sampled at the full map with zero padding then resized; soft mask
    # sigmoid(ReLU(BN(conv))) in [0.5, 1). The `hacnn` and `a` presets use them. The
    # defaults (Compact-ReID columns): 'bounded' t = (1 - s) tanh(z) keeps every crop inside
    # the image, sampled at its size; 'full_range' mask sigmoid(BN(conv)) in (0, 1). Why
    # these are the defaults: measured on the CPU learning check (docs/FIDELITY.md, "Fidelity to the
    # peer implementations").
    hard_attention: Literal["hacnn", "bounded"] = "bounded"
    soft_attention: Literal["hacnn", "full_range"] = "full_range"

    def __post_init__(self) -> None:
        _check(self.width_multiplier > 0, "model.width_multiplier", f"must be > 0, got {self.width_multiplier}")
        _check(self.depth_multiplier > 0, "model.depth_multiplier", f"must be > 0, got {self.depth_multiplier}")
        _check(self.l2_scale > 0, "model.l2_scale", f"must be > 0, got {self.l2_scale}")
        _check(self.gem_p_init >= 1.0, "model.gem_p_init", f"must be >= 1, got {self.gem_p_init}")
        _check(self.global_dim >= 0, "model.global_dim", f"must be >= 0 (0 = default), got {self.global_dim}")
        _check(self.local_dim >= 0, "model.local_dim", f"must be >= 0 (0 = default), got {self.local_dim}")
        _check(self.num_classes >= 2, "model.num_classes", f"must be >= 2, got {self.num_classes}")
        for name in ("input_height", "input_width"):
            size = getattr(self, name)
            _check(size >= 32 and size % 16 == 0, f"model.{name}", f"must be a multiple of 16 and >= 32, got {size}")

    # Resolved architecture -------------------------------------------------------
    def _width(self, c: int, multiple: int) -> int:
        return max(multiple, int(round(c * self.width_multiplier / multiple)) * multiple)

    @property
    def stem_channels(self) -> int:
        return self._width(ARCH_SIZES[self.size]["stem"], 4)

    @property
    def stage_channels(self) -> tuple[int, int, int]:
        # Multiples of 16: Inception splits in quarters, Shuffle units in halves, and
        # channel attention reduces by 16.
        return tuple(self._width(c, 16) for c in ARCH_SIZES[self.size]["channels"])  # type: ignore[return-value]

    @property
    def stage_repeats(self) -> tuple[int, int, int]:
        """Inner repeats per stage: Shuffle-A units, or Inception-A blocks.

        Inception (our choice, the paper is silent): 1 Inception-A per stage at 1x as in
        Li et al., 2 at 2x, mirroring the one extra Shuffle-A per stage of Table 1.
        """
        if self.block == "shuffle":
            base = ARCH_SIZES[self.size]["repeats"]
        else:
            base = (1, 1, 1) if self.size == "1x" else (2, 2, 2)
        return tuple(max(1, int(round(r * self.depth_multiplier))) for r in base)  # type: ignore[return-value]

    @property
    def global_features(self) -> int:
        return self.global_dim or ARCH_SIZES[self.size]["global_dim"]

    @property
    def local_features(self) -> int:
        return self.local_dim or ARCH_SIZES[self.size]["local_dim"]

    @property
    def embedding_dim(self) -> int:
        return self.global_features + self.local_features


TRIPLET_KINDS = ("none", "margin", "batch_hard", "weighted", "weighted_soft")


@dataclass(frozen=True)
class LossConfig:
    """Label-smoothed CE on each branch + a triplet loss on each branch's features.

    triplet: none | margin (eq. 1, all triplets) | batch_hard (eq. 2) |
    weighted (eq. 3, batch soft with margin) | weighted_soft (eq. 4, the paper's).
    """

    label_smoothing: float = 0.1
    triplet: Literal["none", "margin", "batch_hard", "weighted", "weighted_soft"] = "weighted_soft"
    margin: float = 0.3
    ce_weight: float = 1.0
    triplet_weight: float = 1.0
    # How the global and local branches' losses combine: 'mean' as torchreid's
    # DeepSupervision (the `hacnn` and `a` presets); 'sum' (the default, Compact-ReID): each
    # branch gets the gradient of Bag-of-Tricks' single-branch loss at BoT's learning rate.
    branch_reduction: Literal["mean", "sum"] = "sum"

    def __post_init__(self) -> None:
        _check(
            0.0 <= self.label_smoothing < 1.0, "loss.label_smoothing", f"must be in [0, 1), got {self.label_smoothing}"
        )
        _check(self.margin >= 0, "loss.margin", f"must be >= 0, got {self.margin}")
        _check(self.ce_weight >= 0, "loss.ce_weight", f"must be >= 0, got {self.ce_weight}")
        _check(self.triplet_weight >= 0, "loss.triplet_weight", f"must be >= 0, got {self.triplet_weight}")


@dataclass(frozen=True)
class DataConfig:
    """PK sampling and augmentation (resize to the model's input size is implied)."""

    p: int = 8
    k: int = 4
    flip: bool = True
    pad_crop: bool = False
    erasing_p: float = 0.5
    erasing_area: tuple[float, float] = (0.02, 0.4)
    erasing_ratio: tuple[float, float] = (0.3, 3.3)
    num_workers: int = 2
    # torchvision: PIL decode + transforms.v2 per image in DataLoader workers (the
    # reference). device: each split decoded once into a uint8 tensor cached beside the
    # dataset, kept on the training device, augmented in batches there
    # (reid_core/data/device_pipeline.py). Default torchvision until measured (docs/BENCHMARKS.md).
    pipeline: Literal["torchvision", "device"] = "torchvision"

    def __post_init__(self) -> None:
        _check(self.p >= 2, "data.p", f"must be >= 2 identities per batch, got {self.p}")
        _check(self.k >= 2, "data.k", f"must be >= 2 images per identity, got {self.k}")
        _check(0.0 <= self.erasing_p <= 1.0, "data.erasing_p", f"must be in [0, 1], got {self.erasing_p}")
        lo, hi = self.erasing_area
        _check(0 < lo < hi <= 1, "data.erasing_area", f"must satisfy 0 < min < max <= 1, got {self.erasing_area}")
        lo, hi = self.erasing_ratio
        _check(0 < lo < hi, "data.erasing_ratio", f"must satisfy 0 < min < max, got {self.erasing_ratio}")
        _check(self.num_workers >= 0, "data.num_workers", f"must be >= 0, got {self.num_workers}")


@dataclass(frozen=True)
class OptimConfig:
    """SGD. GeM's p gets no weight decay (image-retrieval practice)."""

    lr: float = 3e-2
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = False
    gem_p_lr_mult: float = 1.0

    def __post_init__(self) -> None:
        _check(self.lr > 0, "optim.lr", f"must be > 0, got {self.lr}")
        _check(0 <= self.momentum < 1, "optim.momentum", f"must be in [0, 1), got {self.momentum}")
        _check(self.weight_decay >= 0, "optim.weight_decay", f"must be >= 0, got {self.weight_decay}")
        _check(self.gem_p_lr_mult > 0, "optim.gem_p_lr_mult", f"must be > 0, got {self.gem_p_lr_mult}")


@dataclass(frozen=True)
class ScheduleConfig:
    """Eq. 5: linear warm-up to `lr` over `warmup_epochs`, then x`gamma` at each milestone.

    `scale` shortens the whole recipe (main phase and SWAG cycles): every epoch count and
    milestone is multiplied by it and rounded (at least 1 epoch each).
    """

    epochs: int = 350
    warmup_epochs: int = 10
    milestones: tuple[int, ...] = (150, 225)
    gamma: float = 0.1
    scale: float = 1.0

    def __post_init__(self) -> None:
        _check(self.epochs >= 1, "schedule.epochs", f"must be >= 1, got {self.epochs}")
        _check(self.warmup_epochs >= 0, "schedule.warmup_epochs", f"must be >= 0, got {self.warmup_epochs}")
        _check(
            list(self.milestones) == sorted(self.milestones),
            "schedule.milestones",
            f"must be increasing, got {self.milestones}",
        )
        _check(
            all(0 < m < self.epochs for m in self.milestones),
            "schedule.milestones",
            f"must lie in (0, epochs={self.epochs}), got {self.milestones}",
        )
        _check(0 < self.gamma <= 1, "schedule.gamma", f"must be in (0, 1], got {self.gamma}")
        _check(self.scale > 0, "schedule.scale", f"must be > 0, got {self.scale}")


@dataclass(frozen=True)
class SwagConfig:
    """Cyclic phase after convergence: cosine restarts, peak x`decay` per cycle.

    SWA/SWAG moments are collected at the end of each cycle. `enabled=False` skips the
    phase entirely (Table 3 columns without SWAG).
    """

    enabled: bool = False
    cycles: int = 15
    cycle_epochs: int = 35
    decay: float = 0.7
    peak_lr: float = 3e-3
    min_lr: float = 0.0
    samples: int = 10
    # Sample w = mean + sqrt(scale) * (...). Maddox et al.'s experiments: 1.0 for
    # SWAG-diagonal, 0.5 with the low-rank part (set swag.scale=0.5 with swag.low_rank).
    scale: float = 1.0
    var_clamp: float = 1e-30
    bn_batches: int = 0  # 0 = a full pass over the training data
    # K deviation columns of the SWAG low-rank covariance (the SWAG authors use 20);
    # 0 = diagonal only (the Compact-ReID paper's "diagonal Gaussian").
    low_rank: int = 0

    def __post_init__(self) -> None:
        _check(self.cycles >= 1, "swag.cycles", f"must be >= 1, got {self.cycles}")
        _check(self.cycle_epochs >= 1, "swag.cycle_epochs", f"must be >= 1, got {self.cycle_epochs}")
        _check(0 < self.decay <= 1, "swag.decay", f"must be in (0, 1], got {self.decay}")
        _check(self.peak_lr > 0, "swag.peak_lr", f"must be > 0, got {self.peak_lr}")
        _check(0 <= self.min_lr < self.peak_lr, "swag.min_lr", f"must be in [0, peak_lr), got {self.min_lr}")
        _check(self.samples >= 1, "swag.samples", f"must be >= 1, got {self.samples}")
        _check(self.scale >= 0, "swag.scale", f"must be >= 0, got {self.scale}")
        _check(self.var_clamp >= 0, "swag.var_clamp", f"must be >= 0, got {self.var_clamp}")
        _check(self.bn_batches >= 0, "swag.bn_batches", f"must be >= 0, got {self.bn_batches}")
        _check(
            self.low_rank == 0 or self.low_rank >= 2,
            "swag.low_rank",
            f"must be 0 (diagonal only) or >= 2 deviation columns, got {self.low_rank}",
        )


@dataclass(frozen=True)
class EvalConfig:
    every: int = 10  # evaluate every `every` epochs (after scaling), and always at the end
    flip: bool = False
    batch_size: int = 128
    max_rank: int = 50

    def __post_init__(self) -> None:
        _check(self.every >= 1, "eval.every", f"must be >= 1, got {self.every}")
        _check(self.batch_size >= 1, "eval.batch_size", f"must be >= 1, got {self.batch_size}")
        _check(self.max_rank >= 1, "eval.max_rank", f"must be >= 1, got {self.max_rank}")


@dataclass(frozen=True)
class RuntimeConfig:
    """How the training step runs (not what it computes): torch.compile of the model.

    off: eager. default / reduce-overhead: torch.compile modes (reduce-overhead = CUDA
    graphs on GPU). Off by default: on CPU compiling costs more than it saves, and the GPU
    default awaits a measurement (benchmarks/bench_gpu.py).
    """

    compile: Literal["off", "default", "reduce-overhead"] = "off"


@dataclass(frozen=True)
class TrainConfig:
    preset: str = "custom"
    seed: int = 0
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    swag: SwagConfig = field(default_factory=SwagConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)


# ---------------------------------------------------------------------------------
# dict <-> dataclass
#
# A small hand-written validator rather than pydantic: reid_core must import and train on a
# GPU machine that has only torch/torchvision/numpy/pyyaml (pydantic is not there). The
# sweep specs (orchestration) use pydantic and export these dataclasses' JSON Schema with
# pydantic's TypeAdapter.


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin is tuple:
        return "a list of " + _describe(typing.get_args(tp)[0])
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, path)
    if origin is Literal:
        choices = typing.get_args(tp)
        _check(value in choices, path, f"invalid value {value!r}; allowed: {', '.join(map(repr, choices))}")
        return value
    if origin is tuple:
        args = typing.get_args(tp)
        _check(isinstance(value, (list, tuple)), path, f"expected {_describe(tp)}, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{path}[{i}]") for i, v in enumerate(value))
        _check(len(value) == len(args), path, f"expected {len(args)} values, got {len(value)}")
        return tuple(_coerce(v, a, f"{path}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if origin in (typing.Union, types.UnionType):
        errors = []
        for a in typing.get_args(tp):
            if a is type(None) and value is None:
                return None
            try:
                return _coerce(value, a, path)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError("; ".join(errors))
    if tp is bool:
        _check(isinstance(value, bool), path, f"expected true/false, got {value!r}")
        return value
    if tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        if not ok and isinstance(value, float) and value.is_integer():
            return int(value)
        _check(ok, path, f"expected an integer, got {value!r}")
        return value
    if tp is float:
        _check(
            isinstance(value, (int, float)) and not isinstance(value, bool), path, f"expected a number, got {value!r}"
        )
        return float(value)
    if tp is str:
        _check(isinstance(value, str), path, f"expected a string, got {value!r}")
        return value
    raise ConfigError(f"{path}: unsupported field type {tp!r}")  # pragma: no cover - programming error


def from_dict(cls: type, data: Mapping[str, Any] | None, path: str = "") -> Any:
    """Build dataclass `cls` from a mapping, validating keys, types and ranges."""
    where = path or cls.__name__
    if data is None:
        data = {}
    if dataclasses.is_dataclass(data) and isinstance(data, cls):
        return data
    _check(isinstance(data, Mapping), where, f"expected a mapping of keys, got {type(data).__name__}")
    if cls is TrainConfig:
        data = _renamed(data)
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in data if k not in names]
    _check(not unknown, where, f"unknown key(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(names)}")
    kwargs = {k: _coerce(v, hints[k], f"{path}.{k}" if path else k) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as e:  # pragma: no cover - defensive
        raise ConfigError(f"{where}: {e}") from e


def _renamed(data: Mapping[str, Any]) -> dict[str, Any]:
    """A TrainConfig mapping with its renamed sections under their current names."""
    out = dict(data)
    for old, new in RENAMED_SECTIONS.items():
        if old in out:
            _check(new not in out, old, f"the deprecated name of {new!r}, which is given too; keep only {new!r}")
            out[new] = out.pop(old)
    return out


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain, JSON/YAML-ready dict (tuples become lists)."""

    def conv(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [conv(x) for x in v]
        return v

    return conv(dataclasses.asdict(cfg))


def flatten(cfg: Any) -> dict[str, Any]:
    """{'model.block': 'shuffle', ...}: one entry per leaf field (MLflow params, sweeps)."""
    out: dict[str, Any] = {}

    def walk(d: Mapping[str, Any], prefix: str) -> None:
        for k, v in d.items():
            key = f"{prefix}{k}"
            if isinstance(v, Mapping):
                walk(v, key + ".")
            else:
                out[key] = v

    walk(to_dict(cfg) if dataclasses.is_dataclass(cfg) else cfg, "")
    return out


def unflatten(flat: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, v in flat.items():
        parts = key.split(".")
        node = out
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = v
    return out


def resolve_key(key: str) -> str:
    """Full dotted path for `key`; a unique leaf name is accepted as a shortcut.

    `gem_p_init` -> `model.gem_p_init`, `swag.cycles` -> `swag.cycles`. A renamed
    section's old name is accepted with a FutureWarning: `train.compile` -> `runtime.compile`.
    """
    written = key
    head, _, rest = key.partition(".")
    if rest and head in RENAMED_SECTIONS:
        key = f"{RENAMED_SECTIONS[head]}.{rest}"
        warnings.warn(f"config key {written!r} is deprecated; use {key!r}", FutureWarning, stacklevel=2)
    leaves = list(flatten(TrainConfig()).keys())
    if key in leaves:
        return key
    matches = [p for p in leaves if p.endswith("." + key)]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise ConfigError(f"{key}: ambiguous config key; say one of {', '.join(matches)}")
    raise ConfigError(f"{written}: unknown config key; allowed: {', '.join(leaves)}")


def with_overrides(cfg: TrainConfig, overrides: Mapping[str, Any]) -> TrainConfig:
    """A new validated config with dotted-path (or shortcut) overrides applied."""
    flat = flatten(cfg)
    for k, v in overrides.items():
        flat[resolve_key(k)] = v
    return from_dict(TrainConfig, unflatten(flat))
