"""The expanded sweep: `SweepSpec` and its `TrialSpec`s (what `spec.load_spec` returns).

Each TrialSpec carries its fully resolved config as a plain dict (`config_dict`, built once
when the spec is expanded); `to_record()` is what travels in Ray's config, `config()` the
TrainConfig the trial trains (reid_core's `from_dict`). Imports neither Ray nor MLflow.
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any, Mapping

from reid_core.config import TrainConfig, from_dict
from reid_core.training.epochs import epoch_counts

from .names import format_value, python_value, record_name, sampled_values


@dataclass(frozen=True)
class DatasetSpec:
    """Either a folder (`path`, optional `name`) or a synthetic dataset generated per sweep."""

    path: str | None = None  # absolute, env vars expanded; None for synthetic data
    name: str = "auto"
    synthetic: dict[str, Any] | None = None  # generator kwargs (num_ids, num_cameras, ...)
    raw_path: str | None = None  # as written in the YAML (e.g. ${MARKET1501_ROOT})

    @property
    def is_synthetic(self) -> bool:
        return self.synthetic is not None


@dataclass(frozen=True)
class SpaceParam:
    key: str  # resolved dotted path, e.g. optim.lr
    written: str  # as written in the YAML
    type: str
    low: float | None = None
    high: float | None = None
    values: tuple[Any, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": self.type}
        if self.type == "choice":
            d["values"] = list(self.values)
        else:
            d["low"], d["high"] = self.low, self.high
        return d


@dataclass(frozen=True)
class SearchSpec:
    algorithm: str
    metric: str
    mode: str
    num_samples: int
    space: tuple[SpaceParam, ...]
    seed: int | None = None


@dataclass(frozen=True)
class SchedulerSpec:
    type: str
    max_t: int  # epochs (Ray's training_iteration: one report per epoch)
    grace_period: int
    reduction_factor: float
    metric: str
    mode: str


@dataclass(frozen=True)
class TrialSpec:
    """One planned trial: a grid point x a seed (or, with a search, the template of a sample),
    with its fully resolved config (`config_dict`, a plain dict: what travels in Ray's config)."""

    index: int
    name: str
    grid_point: str
    preset: str
    seed: int
    axes: dict[str, Any]  # this trial's grid values, keys as written in the YAML
    overrides: dict[str, Any]  # resolved dotted path -> value (fixed overrides + axis values)
    config_dict: dict[str, Any] = field(default_factory=dict, repr=False)  # to_dict(TrainConfig), seed included

    def config(self) -> TrainConfig:
        """The TrainConfig (validated by reid_core's from_dict)."""
        return from_dict(TrainConfig, self.config_dict)

    def to_dict(self) -> dict[str, Any]:
        """The trials.json entry (docs/CONTRACTS.md) plus `index` and `axes`."""
        return {"trial_name": self.name, "grid_point": self.grid_point, "preset": self.preset,
                "seed": self.seed, "overrides": dict(self.overrides), "axes": dict(self.axes),
                "index": self.index}

    def to_record(self) -> dict[str, Any]:
        """The trials.json entry plus `config`: Ray's config of this trial is {"trial": record}."""
        return {**self.to_dict(), "config": copy.deepcopy(self.config_dict)}

    @classmethod
    def from_record(cls, d: Mapping[str, Any]) -> "TrialSpec":
        """A record back; a searched record (`search_keys`) is named after its sampled values."""
        record = {**d, "config": python_value(d.get("config") or {})}
        name, point = record_name(record)
        overrides = {**d.get("overrides", {}), **sampled_values(record)}
        return cls(index=int(d.get("index", 0)), name=name, grid_point=point, preset=d["preset"],
                   seed=int(d["seed"]), axes=dict(d.get("axes", {})), overrides=overrides,
                   config_dict=record["config"])


@dataclass(frozen=True)
class SweepSpec:
    name: str
    description: str
    dataset: DatasetSpec
    base_preset: str | None
    grid: dict[str, list[Any]]  # axis (as written) -> values; `preset` first when present
    grid_keys: dict[str, str]  # axis (as written) -> resolved dotted path ('preset' -> 'preset')
    seeds: tuple[int, ...]
    overrides: dict[str, Any]  # resolved dotted path -> value
    resources: dict[str, Any]  # {"cpu": float | None (auto), "gpu": float | None (auto)}
    max_concurrent: int | None
    max_failures: int
    checkpoint_every: int
    checkpoint_keep: int
    search: SearchSpec | None
    scheduler: SchedulerSpec | None
    trials: tuple[TrialSpec, ...]
    source: str  # the file the spec came from ('<string>' when parsed from text)
    text: str  # the YAML text as read
    raw: dict[str, Any] = field(repr=False, default_factory=dict)

    @property
    def is_search(self) -> bool:
        return self.search is not None

    def planned(self) -> list[dict[str, Any]]:
        """trials.json: the planned trial list (one entry per grid point x seed; a search
        plans `num_samples` trials whose names are known only once sampled: [])."""
        return [t.to_dict() for t in self.trials] if not self.is_search else []

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view (what `sweep show --json` prints)."""
        out: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "source": self.source,
            "dataset": ({"synthetic": self.dataset.synthetic} if self.dataset.is_synthetic
                        else {"path": self.dataset.path, "name": self.dataset.name}),
            "base_preset": self.base_preset,
            "grid": self.grid,
            "seeds": list(self.seeds),
            "overrides": self.overrides,
            "resources": self.resources,
            "max_concurrent": self.max_concurrent,
            "max_failures": self.max_failures,
            "checkpoint": {"every": self.checkpoint_every, "num_to_keep": self.checkpoint_keep},
            "num_trials": self.num_trials,
            "trials": [t.to_dict() for t in self.trials],
        }
        if self.search:
            s = self.search
            out["search"] = {"algorithm": s.algorithm, "metric": s.metric, "mode": s.mode,
                             "num_samples": s.num_samples, "seed": s.seed,
                             "space": {p.key: p.to_dict() for p in s.space}}
        if self.scheduler:
            c = self.scheduler
            out["scheduler"] = {"type": c.type, "max_t": c.max_t, "grace_period": c.grace_period,
                                "reduction_factor": c.reduction_factor, "metric": c.metric, "mode": c.mode}
        return out

    @property
    def num_trials(self) -> int:
        return self.search.num_samples if self.search else len(self.trials)


def describe(spec: SweepSpec) -> str:
    """Human-readable expansion (what `sweep show` prints)."""
    lines = [f"sweep {spec.name} ({spec.source})"]
    if spec.description:
        lines.append("  " + " ".join(spec.description.split()))
    ds = spec.dataset
    lines.append("  dataset: " + (f"synthetic {json.dumps(ds.synthetic)}" if ds.is_synthetic
                                  else f"{ds.path} (name: {ds.name})"))
    if spec.overrides:
        lines.append("  overrides: " + ", ".join(f"{k}={format_value(v)}" for k, v in spec.overrides.items()))
    res = spec.resources
    lines.append(f"  resources/trial: cpu={res['cpu'] if res['cpu'] is not None else 'auto'} "
                 f"gpu={res['gpu'] if res['gpu'] is not None else 'auto'}; max_concurrent="
                 f"{spec.max_concurrent or 'auto'}; max_failures={spec.max_failures}")
    if spec.search:
        s = spec.search
        lines.append(f"  search: {s.algorithm} {s.mode} {s.metric}, {s.num_samples} samples over "
                     + ", ".join(f"{p.key}~{p.type}" + (f"[{p.low}, {p.high}]" if p.type != 'choice' else f"{list(p.values)}")
                                 for p in s.space))
    if spec.scheduler:
        c = spec.scheduler
        lines.append(f"  scheduler: {c.type} max_t={c.max_t} grace_period={c.grace_period} "
                     f"reduction_factor={c.reduction_factor} ({c.mode} {c.metric})")
    n = spec.num_trials
    lines.append(f"  {n} trial(s)" + (" (sampled; template below)" if spec.search else ":"))
    width = max((len(t.name) for t in spec.trials), default=10)
    for t in spec.trials:
        cfg = t.config()
        lines.append(f"    {t.name:<{width}}  preset={t.preset:<13} seed={t.seed}  epochs={epoch_counts(cfg).total_epochs}"
                     + (f"  {', '.join(f'{k}={format_value(v)}' for k, v in t.axes.items())}" if t.axes else ""))
    return "\n".join(lines)
