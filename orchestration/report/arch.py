"""Table 1 (architecture: parameters and multiply-accumulates per distinct model config), and
the parameter count of each group that Table 2 and Figure 1 show (`model_sizes`,
`group_params`: computed here, passed to them, never stored on the data)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Sequence

import pandas as pd

from .cells import fmt_num
from .groups import group_label, group_order
from .sweep_data import MISSING, SweepData, Table, num

__all__ = ["ModelSize", "model_sizes", "group_params", "table1"]

_SIZE_KEYS = ("params", "params_with_classifiers", "macs")  # metrics a run logs, also profile_model's keys


@dataclass(frozen=True)
class ModelSize:
    """One distinct model config of the sweep: the groups that use it and its size."""

    config: Any  # reid_core ModelConfig (frozen: hashable)
    groups: tuple[str, ...]
    params: float | None
    params_with_classifiers: float | None
    macs: float | None
    source: str  # "logged" by a run, or "recomputed" from the config


@functools.lru_cache(maxsize=64)
def _profiled(model_cfg: Any) -> tuple[float, ...]:
    """profile_model's sizes (_SIZE_KEYS), once per config: Table 1 and Figure 1 both ask."""
    from reid_core.complexity import profile_model

    profile = profile_model(model_cfg)
    return tuple(float(profile[key]) for key in _SIZE_KEYS)


def model_sizes(data: SweepData, mode: str, recompute: bool = True) -> list[ModelSize]:
    """Per distinct model config, in group order: the sizes its runs logged, the missing ones
    recomputed with reid_core.complexity.profile_model unless `recompute` is False."""
    runs_of: dict[Any, list[pd.Series]] = {}
    groups_of: dict[Any, list[str]] = {}
    for _, run in data.included.iterrows():
        model_cfg = run["_config"].model
        runs_of.setdefault(model_cfg, []).append(run)
        groups = groups_of.setdefault(model_cfg, [])
        if run["group"] not in groups:
            groups.append(run["group"])
    order = {group: i for i, group in enumerate(group_order(data, mode))}
    sizes = []
    for model_cfg in sorted(runs_of, key=lambda cfg: min(order.get(g, 10**9) for g in groups_of[cfg])):
        measured: dict[str, float | None] = {}
        for key in _SIZE_KEYS:
            logged = [
                value for value in (num(run.get(f"metric.{key}")) for run in runs_of[model_cfg]) if value is not None
            ]
            measured[key] = logged[0] if logged else None
        source = "logged"
        if any(value is None for value in measured.values()) and recompute:
            profiled = dict(zip(_SIZE_KEYS, _profiled(model_cfg)))
            measured = {key: profiled[key] if value is None else value for key, value in measured.items()}
            source = "recomputed"
        sizes.append(ModelSize(model_cfg, tuple(groups_of[model_cfg]), source=source, **measured))
    return sizes


def group_params(sizes: Sequence[ModelSize]) -> dict[str, float]:
    """group -> parameters of its model (Table 2 and Figure 1 use it when a run logged none)."""
    return {group: size.params for size in sizes if size.params is not None for group in size.groups}


# The paper's networks: full width and depth, no extra FC layers, 160x64 input.
_PAPER_GEOMETRY = (1.0, 1.0, 0, 0, 160, 64)


def _paper_arch(model: Any) -> str | None:
    """The paper's name for this model config (Table 1's rows), None for another config."""
    geometry = (
        model.width_multiplier,
        model.depth_multiplier,
        model.global_dim,
        model.local_dim,
        model.input_height,
        model.input_width,
    )
    if geometry != _PAPER_GEOMETRY:
        return None
    return {("inception", "1x"): "hacnn", ("shuffle", "1x"): "compact-1x", ("shuffle", "2x"): "compact-2x"}.get(
        (model.block, model.size)
    )


def _arch_label(model: Any) -> str:
    label = f"{'Shuffle' if model.block == 'shuffle' else 'Inception'} {model.size}"
    extras = []
    if model.width_multiplier != 1.0:
        extras.append(f"width x{model.width_multiplier:g}")
    if model.depth_multiplier != 1.0:
        extras.append(f"depth x{model.depth_multiplier:g}")
    if model.global_dim or model.local_dim:
        extras.append(f"FC {model.global_features}/{model.local_features}")
    if (model.input_height, model.input_width) != (160, 64):
        extras.append(f"{model.input_height}x{model.input_width}")
    extras.append(model.pooling)
    return label + (" (" + ", ".join(extras) + ")" if extras else "")


def _relative(value: float | None, paper: float | None) -> str:
    """The difference to the paper's figure in % of it."""
    return MISSING if value is None or not paper else f"{100 * (value - paper) / paper:+.1f}%"


def _millions(value: float | None, scale: float = 1e6) -> float | None:
    return None if value is None else value / scale


def table1(sizes: Sequence[ModelSize], mode: str) -> Table:
    """Table 1 from `model_sizes`."""
    from reid_core.complexity import PAPER_TABLE1

    rows, records = [], []
    for size in sizes:
        model_cfg = size.config
        arch = _paper_arch(model_cfg)
        paper = PAPER_TABLE1.get(arch or "", {"params_m": None, "macs_g": None})
        params_m = _millions(size.params)
        with_classifiers_m = _millions(size.params_with_classifiers)
        macs_g = _millions(size.macs, 1e9)
        num_classes = model_cfg.num_classes
        rows.append(
            {
                "model": _arch_label(model_cfg),
                "groups": ", ".join(group_label(g, mode) for g in size.groups),
                "params (M)": fmt_num(params_m, 3),
                "+ classifiers (M)": fmt_num(with_classifiers_m, 3)
                + (f" [{num_classes} ids]" if with_classifiers_m is not None else ""),
                "paper params (M)": fmt_num(paper["params_m"]),
                "Δ params": _relative(params_m, paper["params_m"]),
                "MACs (G)": fmt_num(macs_g, 3),
                "paper MACs (G)": fmt_num(paper["macs_g"], 2),
                "Δ MACs": _relative(macs_g, paper["macs_g"]),
            }
        )
        records.append(
            {
                "model": _arch_label(model_cfg),
                "paper_model": arch or "",
                "groups": ";".join(size.groups),
                "num_classes": num_classes,
                "params": size.params,
                "params_with_classifiers": size.params_with_classifiers,
                "macs": size.macs,
                "source": size.source,
                "paper_params_m": paper["params_m"],
                "paper_macs_g": paper["macs_g"],
            }
        )
    notes = [
        "params = unique parameters of the test-time network WITHOUT the two identity classifiers "
        "(+ classifiers: with them, for the run's number of training identities); MACs = "
        "multiply-accumulates of one 160x64 image at test time (conv + linear). Values logged by "
        "the runs (params, params_with_classifiers, macs) or recomputed from the recorded config "
        "with reid_core.complexity.profile_model. The paper quotes 2.7 M for HA-CNN (no MACs)."
    ]
    return Table(
        "table1",
        "Table 1: architecture (parameters and multiply-accumulates)",
        pd.DataFrame(rows),
        pd.DataFrame(records),
        notes,
        colour_deltas=False,
        left_cols=2,
    )
