"""The sweep's trial plan: `SweepSpec` (a validated YAML expanded to trials) and its `TrialSpec`s.

`SweepSpec.file` is the YAML as spec_models.SweepFile validated it: read its plain keys
there (they are described once, in that model). The other fields are what several keys
make together (resolved dataset, overrides, grid order, trials). Each TrialSpec carries its
fully resolved config as a plain dict (`config_dict`, built once when the spec is
expanded); `to_record()` is what travels in Ray's config, `config()` the TrainConfig the
trial trains. Imports neither Ray nor MLflow.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any, Mapping

from reid_core.config import TrainConfig, from_dict
from reid_core.training.epochs import epoch_counts

from .names import format_value, python_value, record_name, sampled_values
from .spec_models import SchedulerSection, SearchSection, SweepFile


@dataclass(frozen=True)
class DatasetSpec:
    """Either a folder (`path`, optional `name`) or a synthetic dataset generated per sweep."""

    path: str | None = None  # absolute, env vars expanded; None for synthetic data
    name: str = "auto"
    synthetic: dict[str, Any] | None = None  # generate()'s keyword arguments (num_ids, num_cameras, ...)

    @property
    def is_synthetic(self) -> bool:
        return self.synthetic is not None


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
        return {
            "trial_name": self.name,
            "grid_point": self.grid_point,
            "preset": self.preset,
            "seed": self.seed,
            "overrides": dict(self.overrides),
            "axes": dict(self.axes),
            "index": self.index,
        }

    def to_record(self) -> dict[str, Any]:
        """The trials.json entry plus `config`: Ray's config of this trial is {"trial": record}."""
        return {**self.to_dict(), "config": copy.deepcopy(self.config_dict)}

    @classmethod
    def from_record(cls, d: Mapping[str, Any]) -> "TrialSpec":
        """A record back; a searched record (`search_keys`) is named after its sampled values."""
        record = {**d, "config": python_value(d.get("config") or {})}
        name, point = record_name(record)
        overrides = {**d.get("overrides", {}), **sampled_values(record)}
        return cls(
            index=int(d.get("index", 0)),
            name=name,
            grid_point=point,
            preset=d["preset"],
            seed=int(d["seed"]),
            axes=dict(d.get("axes", {})),
            overrides=overrides,
            config_dict=record["config"],
        )


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep YAML and its trials (what `spec.load_spec` returns)."""

    file: SweepFile  # every key as validated; plain settings are read here (file.max_failures, ...)
    source: str  # the file the spec came from ('<string>' when parsed from text)
    text: str  # the YAML text as read
    dataset: DatasetSpec  # the folder resolved, or generate()'s arguments
    overrides: dict[str, Any]  # resolved dotted path -> value
    grid: dict[str, list[Any]]  # axis (as written) -> values; `preset` first when present
    search: SearchSection | None  # file.search with `space` keyed by dotted config path
    scheduler: SchedulerSection | None  # file.scheduler with max_t, metric and mode filled in
    trials: tuple[TrialSpec, ...]

    @property
    def num_trials(self) -> int:
        return self.search.num_samples if self.search else len(self.trials)

    def planned(self) -> list[dict[str, Any]]:
        """trials.json: the planned trial list (one entry per grid point x seed; a search
        plans `num_samples` trials whose names are known only once sampled: [])."""
        return [t.to_dict() for t in self.trials] if self.search is None else []

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view (what `sweep show --json` prints): every key of the file, the
        derived ones as resolved, then the trials."""
        keys = self.file.model_dump(mode="json", exclude={"search", "scheduler"})
        out: dict[str, Any] = {
            "name": keys.pop("name"),
            "description": keys.pop("description"),
            "source": self.source,
            **keys,
        }
        out.update(
            dataset=(
                {"synthetic": self.dataset.synthetic}
                if self.dataset.is_synthetic
                else {"path": self.dataset.path, "name": self.dataset.name}
            ),
            grid=self.grid,
            overrides=self.overrides,
            num_trials=self.num_trials,
            trials=[t.to_dict() for t in self.trials],
        )
        if self.search is not None:
            out["search"] = {
                **self.search.model_dump(mode="json", exclude={"space"}),
                "space": {k: p.model_dump(mode="json", exclude_none=True) for k, p in self.search.space.items()},
            }
        if self.scheduler is not None:
            out["scheduler"] = self.scheduler.model_dump(mode="json")
        return out


def describe(spec: SweepSpec) -> str:
    """Human-readable expansion (what `sweep show` prints)."""
    f = spec.file
    lines = [f"sweep {f.name} ({spec.source})"]
    if f.description:
        lines.append("  " + " ".join(f.description.split()))
    ds = spec.dataset
    lines.append(
        "  dataset: " + (f"synthetic {json.dumps(ds.synthetic)}" if ds.is_synthetic else f"{ds.path} (name: {ds.name})")
    )
    if spec.overrides:
        lines.append("  overrides: " + ", ".join(f"{k}={format_value(v)}" for k, v in spec.overrides.items()))
    res = f.resources
    lines.append(
        f"  resources/trial: cpu={res.cpu if res.cpu is not None else 'auto'} "
        f"gpu={res.gpu if res.gpu is not None else 'auto'}; max_concurrent="
        f"{f.max_concurrent or 'auto'}; max_failures={f.max_failures}"
    )
    if spec.search:
        s = spec.search
        lines.append(
            f"  search: {s.algorithm} {s.mode} {s.metric}, {s.num_samples} samples over "
            + ", ".join(
                f"{k}~{p.type}" + (f"[{p.low}, {p.high}]" if p.type != "choice" else f"{p.values}")
                for k, p in s.space.items()
            )
        )
    if spec.scheduler:
        c = spec.scheduler
        lines.append(
            f"  scheduler: {c.type} max_t={c.max_t} grace_period={c.grace_period} "
            f"reduction_factor={c.reduction_factor} ({c.mode} {c.metric})"
        )
    n = spec.num_trials
    lines.append(f"  {n} trial(s)" + (" (sampled; template below)" if spec.search else ":"))
    width = max((len(t.name) for t in spec.trials), default=10)
    for t in spec.trials:
        cfg = t.config()
        lines.append(
            f"    {t.name:<{width}}  preset={t.preset:<13} seed={t.seed}  epochs={epoch_counts(cfg).total_epochs}"
            + (f"  {', '.join(f'{k}={format_value(v)}' for k, v in t.axes.items())}" if t.axes else "")
        )
    return "\n".join(lines)
