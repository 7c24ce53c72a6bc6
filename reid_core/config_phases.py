"""When each TrainConfig field acts: the one table shared training is planned from.

Every field belongs to exactly one class:
- `main`: acts from the first epoch (the network, the loss, the data, the optimiser, the
  main-phase schedule, the seed). Two runs that differ here share nothing.
- `swag`: acts only in the cyclic SWAG phase (after the main phase). Runs that differ only
  here share their whole main phase. `swag.cycles` is special: a k-cycle run is the first
  k cycles of a longer one (the cycles repeat the same schedule), so it shares those too.
- `eval`: changes only what is measured (evaluation, SWAG's sampling and BatchNorm
  recomputation), never the weights training reaches. Runs that differ only here share all
  their training and are re-evaluated.
- `none`: no effect on results (workers, compile mode, the preset's label).

Training is deterministic in these: every epoch re-seeds from (seed, epoch), and evaluation
never draws from the training RNG (tests/core/test_config_phases.py checks each class on
CPU). Bump TRAINING_SEMANTICS_VERSION whenever a change to reid_core changes what a given
config trains to: finished runs of an older version are then never reused.
"""

from __future__ import annotations

from typing import Any, Literal, Mapping

from .config import flatten

__all__ = ["FIELD_PHASES", "TRAINING_SEMANTICS_VERSION", "Phase", "phase_of", "fields_of", "prefix_fields"]

TRAINING_SEMANTICS_VERSION = 1

Phase = Literal["main", "swag", "eval", "none"]
PHASES: tuple[Phase, ...] = ("main", "swag", "eval", "none")

_MAIN_SECTIONS = ("model", "loss", "data", "optim", "schedule")

FIELD_PHASES: dict[str, Phase] = {
    "preset": "none",  # a label: `compact-1x` and `h` are the same switches
    "seed": "main",
    **{
        f"model.{k}": "main"
        for k in (
            "block",
            "size",
            "width_multiplier",
            "depth_multiplier",
            "pooling",
            "gem_p_init",
            "gem_trainable",
            "neck",
            "l2_scale",
            "classifier_bias",
            "global_dim",
            "local_dim",
            "num_classes",
            "input_height",
            "input_width",
            "hard_attention",
            "soft_attention",
        )
    },  # fmt: skip
    **{
        f"loss.{k}": "main"
        for k in ("label_smoothing", "triplet", "margin", "ce_weight", "triplet_weight", "branch_reduction")
    },  # fmt: skip
    **{
        f"data.{k}": "main"
        for k in ("p", "k", "flip", "pad_crop", "erasing_p", "erasing_area", "erasing_ratio", "pipeline")
    },  # fmt: skip
    # Each image's augmentation is seeded by (seed, epoch, batch, slot), whatever the worker.
    "data.num_workers": "none",
    **{f"optim.{k}": "main" for k in ("lr", "momentum", "weight_decay", "nesterov", "gem_p_lr_mult")},
    # `scale` also sets the cycle length, but it acts from epoch 1.
    **{f"schedule.{k}": "main" for k in ("epochs", "warmup_epochs", "milestones", "gamma", "scale")},
    **{f"swag.{k}": "swag" for k in ("enabled", "cycles", "cycle_epochs", "decay", "peak_lr", "min_lr")},
    # What SWAG collects each cycle (deviation columns) never feeds back into the weights,
    # but it is collected during the phase: kept with the phase rather than re-evaluated.
    "swag.low_rank": "swag",
    # Sampling the SWAG posterior and recomputing BatchNorm happen at evaluation only.
    **{f"swag.{k}": "eval" for k in ("samples", "scale", "var_clamp", "bn_batches")},
    **{f"eval.{k}": "eval" for k in ("every", "flip", "batch_size", "max_rank")},
    # Same computation, other kernels (compiled numerics may differ in the last bits).
    "runtime.compile": "none",
}


def phase_of(path: str) -> Phase:
    """The class of one flattened field (`model.gem_p_init` -> 'main')."""
    try:
        return FIELD_PHASES[path]
    except KeyError:
        raise KeyError(f"{path}: not classified in reid_core/config_phases.py FIELD_PHASES") from None


def fields_of(config: Mapping[str, Any] | Any, *phases: Phase) -> dict[str, Any]:
    """The flattened fields of `config` (a TrainConfig or its dict) in the given classes.

    With SWAG disabled the SWAG-phase fields act nowhere, so they are left out: a run
    without SWAG is the same run whatever its (unused) SWAG settings say.
    """
    flat = flatten(config) if not isinstance(config, Mapping) else _flat_dict(config)
    swag_on = bool(flat.get("swag.enabled", False))
    out = {}
    for k, v in flat.items():
        phase = phase_of(k)
        if phase not in phases:
            continue
        if not swag_on and k.startswith("swag."):
            continue
        out[k] = list(v) if isinstance(v, tuple) else v
    return out


def prefix_fields(config: Mapping[str, Any] | Any, through: Phase) -> dict[str, Any]:
    """Everything that decides a run's weights up to the end of `through` ('main' or 'swag')."""
    if through == "main":
        return fields_of(config, "main")
    if through == "swag":
        return fields_of(config, "main", "swag")
    raise ValueError(f"through: 'main' or 'swag', got {through!r}")


def _flat_dict(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, Mapping):
            out.update(_flat_dict(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out
