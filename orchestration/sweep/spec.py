"""Sweep specifications: YAML -> validated `SweepSpec` -> the list of trials.

A sweep YAML (see `sweeps/*.yaml`) names a dataset, a base preset, a grid of axes
(`preset: [...]` and/or config fields by dotted path or unique leaf name), seeds, fixed
config overrides, per-trial resources and, optionally, an Optuna search with an ASHA
scheduler. `load_spec(path)` validates ALL of it before anything starts: every trial's
TrainConfig is built, and every error is a `reid_core.config.ConfigError` whose message
starts with the file and the key (`sweeps/x.yaml: grid.gem_p_init: ...`).

This module imports neither Ray nor MLflow (nor torch): `compact-reid sweep validate` and
`compact-reid sweep show` stay fast and run where only the spec matters.

Trial names (MLflow run names, Ray trial folders): the grid point, then `-seed<k>`:
  - preset axis only:            `c-seed2`
  - one other axis:              `gem_p_init=4.0-seed0`
  - several axes:                `compact-1x-width_multiplier=0.5-seed1` (preset first,
                                 then the axes in the YAML's order)
  - no grid:                     the base preset, `g-seed0`
  - a search:                    from the sampled values, `lr=0.0213-label_smoothing=0.118-seed0`
The grid point is the name without `-seed<k>`, so seeds pool under one grid point.
"""
from __future__ import annotations

import copy
import itertools
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from reid_core.config import ConfigError, TrainConfig, from_dict, resolve_key, to_dict
from reid_core.metric_keys import EVAL_KEYS, FINAL_KEYS, LOSS_KEYS
from reid_core.presets import PRESETS, preset_config

from .names import format_value, search_trial_name, trial_name

__all__ = [
    "SweepSpec",
    "TrialSpec",
    "DatasetSpec",
    "SearchSpec",
    "SchedulerSpec",
    "load_spec",
    "parse_spec",
    "trial_name",
    "search_trial_name",
    "format_value",
    "DATASET_NAMES",
]

DATASET_NAMES = ("auto", "market1501", "dukemtmcreid", "generic")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")
SEARCH_ALGORITHMS = ("optuna",)
SPACE_TYPES = ("uniform", "loguniform", "int", "choice")
SCHEDULER_TYPES = ("asha",)

_TOP_KEYS = ("name", "description", "dataset", "base_preset", "grid", "seeds", "overrides", "resources",
             "max_concurrent", "max_failures", "checkpoint", "search", "scheduler")
# Keys of dataset.synthetic and the name of the generator's argument each maps to;
# any other key is passed through to reid_core.data.synth.generate unchanged (checked
# against its signature when that module is importable).
_SYNTH_KEYS = {"ids": "num_ids", "train_ids": "num_train_ids", "cameras": "num_cameras",
               "images_per_id": "images_per_id", "seed": "seed"}
_SYNTH_RESERVED = ("out_dir", "overwrite", "progress")


# ---------------------------------------------------------------------------------
# Data classes


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
        config = _plain(d.get("config") or {})
        name, point, overrides = d["trial_name"], d["grid_point"], dict(d.get("overrides", {}))
        if d.get("search_keys"):
            values = {k: _lookup(config, k) for k in d["search_keys"]}
            name, point = search_trial_name(values, int(d["seed"]))
            overrides.update(values)
        return cls(index=int(d.get("index", 0)), name=name, grid_point=point, preset=d["preset"],
                   seed=int(d["seed"]), axes=dict(d.get("axes", {})), overrides=overrides, config_dict=config)


def _plain(v: Any) -> Any:
    """Numpy scalars (Optuna's samples) as Python values, recursively."""
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v.item() if hasattr(v, "item") and not isinstance(v, (int, float, str, bool)) else v


def _lookup(d: Mapping[str, Any], dotted: str) -> Any:
    for k in dotted.split("."):
        d = d[k]
    return d


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


# ---------------------------------------------------------------------------------
# Parsing


class _Ctx:
    def __init__(self, source: str) -> None:
        self.source = source

    def err(self, key: str, msg: str) -> ConfigError:
        return ConfigError(f"{self.source}: {key}: {msg}")

    def check(self, cond: bool, key: str, msg: str) -> None:
        if not cond:
            raise self.err(key, msg)

    def mapping(self, value: Any, key: str, allowed: tuple[str, ...] | None = None) -> dict[str, Any]:
        self.check(isinstance(value, Mapping), key, f"expected a mapping, got {_tname(value)}")
        if allowed is not None:
            unknown = [k for k in value if k not in allowed]
            if unknown:
                raise self.err(f"{key}.{unknown[0]}" if key and key != "(top level)" else str(unknown[0]),
                               f"unknown key; allowed here: {', '.join(allowed)}")
        for k in value:
            self.check(isinstance(k, str), key, f"keys must be strings, got {k!r}")
        return dict(value)

    def integer(self, value: Any, key: str, minimum: int | None = None) -> int:
        self.check(isinstance(value, int) and not isinstance(value, bool), key, f"expected an integer, got {value!r}")
        if minimum is not None:
            self.check(value >= minimum, key, f"must be >= {minimum}, got {value}")
        return int(value)

    def number(self, value: Any, key: str) -> float:
        self.check(isinstance(value, (int, float)) and not isinstance(value, bool), key,
                   f"expected a number, got {value!r}")
        self.check(math.isfinite(float(value)), key, f"must be finite, got {value!r}")
        return float(value)

    def string(self, value: Any, key: str) -> str:
        self.check(isinstance(value, str), key, f"expected a string, got {_tname(value)} {value!r}")
        return value


def _tname(v: Any) -> str:
    return {dict: "mapping", list: "list", str: "string", int: "integer", float: "number", bool: "boolean",
            type(None): "nothing (null)"}.get(type(v), type(v).__name__)


def expand_env(value: str, ctx: _Ctx, key: str) -> str:
    """`${VAR}` / `$VAR` from the environment and a leading `~`; an unset variable is an error."""

    def sub(m: re.Match[str]) -> str:
        var = m.group(1) or m.group(2)
        if var not in os.environ or os.environ[var] == "":
            raise ctx.err(key, f"environment variable {var} is not set (it names the dataset folder: "
                               f"export {var}=/path/to/the/dataset, or write the path here)")
        return os.environ[var]

    return os.path.expanduser(_ENV_RE.sub(sub, value))


def _parse_dataset(raw: Any, ctx: _Ctx, check_paths: bool) -> DatasetSpec:
    d = ctx.mapping(raw, "dataset", ("path", "name", "synthetic"))
    has_path, has_synth = "path" in d, "synthetic" in d
    ctx.check(has_path != has_synth, "dataset", "give exactly one of `path: DIR` or `synthetic: {ids, cameras, ...}`")
    name = "auto"
    if "name" in d:
        name = ctx.string(d["name"], "dataset.name")
        ctx.check(name in DATASET_NAMES, "dataset.name", f"unknown dataset {name!r}; allowed: {', '.join(DATASET_NAMES)}")
    if has_path:
        raw_path = ctx.string(d["path"], "dataset.path")
        ctx.check(raw_path.strip() != "", "dataset.path", "is empty")
        path = Path(expand_env(raw_path, ctx, "dataset.path"))
        path = path if path.is_absolute() else (Path.cwd() / path)
        if check_paths:
            ctx.check(path.exists(), "dataset.path", f"{path} does not exist")
            ctx.check(path.is_dir(), "dataset.path", f"{path} is not a folder")
        return DatasetSpec(path=str(path.resolve() if path.exists() else path), name=name, raw_path=raw_path)
    ctx.check("name" not in d, "dataset.name", "only with `path` (synthetic data is always 'generic')")
    s = ctx.mapping(d["synthetic"], "dataset.synthetic")
    kwargs: dict[str, Any] = {}
    for k, v in s.items():
        key = f"dataset.synthetic.{k}"
        if k == "ids":
            kwargs["num_ids"] = ctx.integer(v, key, minimum=2)
        elif k == "train_ids":
            kwargs["num_train_ids"] = ctx.integer(v, key, minimum=2)
        elif k == "cameras":
            kwargs["num_cameras"] = ctx.integer(v, key, minimum=2)
            ctx.check(kwargs["num_cameras"] <= 9, key, f"must be <= 9, got {v}")
        elif k == "images_per_id":
            kwargs["images_per_id"] = ctx.integer(v, key, minimum=4)
        elif k == "seed":
            kwargs["seed"] = ctx.integer(v, key, minimum=0)
        else:
            ctx.check(k not in _SYNTH_RESERVED, key, "set by the runner, not the spec")
            ok = isinstance(v, (int, float, str, bool)) or v is None or (
                isinstance(v, list) and all(isinstance(x, (int, float)) for x in v))
            ctx.check(ok, key, f"expected a number, string, boolean or list of numbers, got {_tname(v)}")
            kwargs[k] = tuple(v) if isinstance(v, list) else v
    ctx.check("num_ids" in kwargs, "dataset.synthetic.ids", "required (number of identities, train + test)")
    if "num_train_ids" in kwargs:
        ctx.check(kwargs["num_train_ids"] < kwargs["num_ids"], "dataset.synthetic.train_ids",
                  f"must be < ids ({kwargs['num_ids']}): the rest are the test identities")
    _check_synth_kwargs(kwargs, ctx)
    return DatasetSpec(synthetic=kwargs, name="generic")


def _check_synth_kwargs(kwargs: dict[str, Any], ctx: _Ctx) -> None:
    """Check pass-through keys against reid_core.data.synth.generate's signature when importable."""
    try:
        import inspect

        from reid_core.data.synth import generate  # noqa: PLC0415 (may import torch/PIL)
    except Exception:  # the generator module is optional at validation time
        return
    params = inspect.signature(generate).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    inverse = {v: k for k, v in _SYNTH_KEYS.items()}
    for k in kwargs:
        if k not in params or k in _SYNTH_RESERVED:
            allowed = [inverse.get(p, p) for p in params if p not in _SYNTH_RESERVED]
            raise ctx.err(f"dataset.synthetic.{inverse.get(k, k)}",
                          f"unknown generator option; allowed: {', '.join(allowed)}")


def _resolve(key: str, ctx: _Ctx, where: str) -> str:
    try:
        return resolve_key(key)
    except ConfigError as e:
        raise ctx.err(where, str(e).split(": ", 1)[-1]) from None


def _parse_overrides(raw: Any, ctx: _Ctx) -> tuple[dict[str, Any], dict[str, str]]:
    """(resolved dotted path -> value, resolved path -> key as written)."""
    if raw is None:
        return {}, {}
    d = ctx.mapping(raw, "overrides")
    out: dict[str, Any] = {}
    written: dict[str, str] = {}
    for k, v in d.items():
        key = f"overrides.{k}"
        ctx.check(k not in ("seed", "preset"), key, "set seeds with `seeds: [...]` and presets with "
                                                    "`base_preset` or `grid.preset`")
        full = _resolve(k, ctx, key)
        ctx.check(full not in ("seed", "preset"), key, "set seeds with `seeds:` and presets with `base_preset`/`grid.preset`")
        ctx.check(full not in out, key, f"same field as overrides.{written.get(full)} ({full})")
        out[full], written[full] = v, k
    return out, written


def _parse_grid(raw: Any, ctx: _Ctx, overrides: dict[str, Any]) -> tuple[dict[str, list[Any]], dict[str, str]]:
    if raw is None:
        return {}, {}
    d = ctx.mapping(raw, "grid")
    ctx.check(len(d) > 0, "grid", "is empty: give at least one axis (e.g. `preset: [g, h]`), or remove `grid`")
    grid: dict[str, list[Any]] = {}
    keys: dict[str, str] = {}
    seen: dict[str, str] = {}
    # preset first, then the YAML's order
    order = (["preset"] if "preset" in d else []) + [k for k in d if k != "preset"]
    for k in order:
        v = d[k]
        key = f"grid.{k}"
        ctx.check(isinstance(v, list), key, f"expected a list of values, got {_tname(v)}")
        ctx.check(len(v) > 0, key, "is an empty list: give at least one value")
        for i, x in enumerate(v):
            ctx.check(x is not None and not isinstance(x, Mapping), f"{key}[{i}]",
                      f"expected a value (number, string, boolean or list), got {_tname(x)}")
        formatted = [format_value(x) for x in v]
        dup = [f for f in formatted if formatted.count(f) > 1]
        ctx.check(not dup, key, f"duplicate value {dup[0] if dup else ''}")
        if k == "preset":
            for i, p in enumerate(v):
                ctx.check(isinstance(p, str) and p in PRESETS, f"{key}[{i}]",
                          f"unknown preset {p!r}; allowed: {', '.join(PRESETS)}")
            full = "preset"
        else:
            ctx.check(k != "seed", key, "seeds are not a grid axis: use `seeds: [...]`")
            full = _resolve(k, ctx, key)
            ctx.check(full not in ("seed", "preset"), key, "use `seeds:` / `grid.preset`")
            ctx.check(full not in seen, key, f"same field as grid.{seen.get(full)} ({full})")
            ctx.check(full not in overrides, key, f"{full} is also fixed in `overrides`; keep one")
            seen[full] = k
        grid[k], keys[k] = list(v), full
    return grid, keys


def _parse_seeds(raw: Any, ctx: _Ctx) -> tuple[int, ...]:
    if raw is None:
        return (0,)
    if isinstance(raw, int) and not isinstance(raw, bool):
        raw = [raw]
    ctx.check(isinstance(raw, list) and len(raw) > 0, "seeds", f"expected a non-empty list of integers, got {raw!r}")
    seeds = tuple(ctx.integer(s, f"seeds[{i}]", minimum=0) for i, s in enumerate(raw))
    ctx.check(len(set(seeds)) == len(seeds), "seeds", f"duplicate seed in {list(seeds)}")
    return seeds


def _parse_resources(raw: Any, ctx: _Ctx) -> dict[str, Any]:
    if raw is None:
        return {"cpu": None, "gpu": None}
    d = ctx.mapping(raw, "resources", ("cpu", "gpu"))
    out: dict[str, Any] = {"cpu": None, "gpu": None}
    for k in ("cpu", "gpu"):
        v = d.get(k)
        if v is None or v == "auto":
            continue
        out[k] = ctx.number(v, f"resources.{k}")
        ctx.check(out[k] >= 0, f"resources.{k}", f"must be >= 0, got {v}")
        if out[k] > 1:
            ctx.check(float(out[k]).is_integer(), f"resources.{k}", f"above 1 must be a whole number, got {v}")
    if out["cpu"] is not None:
        ctx.check(out["cpu"] > 0, "resources.cpu", "must be > 0")
    return out


def _parse_space(raw: Any, ctx: _Ctx, taken: set[str]) -> tuple[SpaceParam, ...]:
    d = ctx.mapping(raw, "search.space")
    ctx.check(len(d) > 0, "search.space", "is empty: give at least one parameter")
    params = []
    for k, v in d.items():
        key = f"search.space.{k}"
        full = _resolve(k, ctx, key)
        ctx.check(full not in ("seed", "preset"), key, "seeds and presets are not searched")
        ctx.check(full not in taken, key, f"{full} is also fixed in `overrides`; keep one")
        taken.add(full)
        p = ctx.mapping(v, key, ("type", "low", "high", "values"))
        ctx.check("type" in p, f"{key}.type", f"required; one of {', '.join(SPACE_TYPES)}")
        t = ctx.string(p["type"], f"{key}.type")
        ctx.check(t in SPACE_TYPES, f"{key}.type", f"unknown type {t!r}; allowed: {', '.join(SPACE_TYPES)}")
        if t == "choice":
            ctx.check("values" in p, f"{key}.values", "required for type choice")
            ctx.check("low" not in p and "high" not in p, key, "type choice takes `values`, not low/high")
            vals = p["values"]
            ctx.check(isinstance(vals, list) and len(vals) > 0, f"{key}.values", "expected a non-empty list")
            params.append(SpaceParam(full, k, t, values=tuple(vals)))
            continue
        ctx.check("values" not in p, f"{key}.values", f"only for type choice (type {t} takes low/high)")
        for b in ("low", "high"):
            ctx.check(b in p, f"{key}.{b}", f"required for type {t}")
        if t == "int":
            low, high = ctx.integer(p["low"], f"{key}.low"), ctx.integer(p["high"], f"{key}.high")
        else:
            low, high = ctx.number(p["low"], f"{key}.low"), ctx.number(p["high"], f"{key}.high")
        ctx.check(low < high, f"{key}.high", f"must be > low ({low}), got {high}")
        if t == "loguniform":
            ctx.check(low > 0, f"{key}.low", f"must be > 0 for loguniform, got {low}")
        params.append(SpaceParam(full, k, t, low=low, high=high))
    return tuple(params)


def _parse_search(raw: Any, ctx: _Ctx, overrides: dict[str, Any]) -> SearchSpec:
    d = ctx.mapping(raw, "search", ("algorithm", "metric", "mode", "num_samples", "space", "seed"))
    algo = ctx.string(d.get("algorithm", "optuna"), "search.algorithm")
    ctx.check(algo in SEARCH_ALGORITHMS, "search.algorithm", f"unknown algorithm {algo!r}; allowed: {', '.join(SEARCH_ALGORITHMS)}")
    metric = ctx.string(d.get("metric", "final_mAP"), "search.metric")
    _check_metric(metric, ctx, "search.metric")
    mode = ctx.string(d.get("mode", "max"), "search.mode")
    ctx.check(mode in ("max", "min"), "search.mode", f"must be max or min, got {mode!r}")
    ctx.check("num_samples" in d, "search.num_samples", "required (how many configurations to try)")
    n = ctx.integer(d["num_samples"], "search.num_samples", minimum=1)
    ctx.check("space" in d, "search.space", "required: {dotted.key: {type: loguniform|uniform|int|choice, ...}}")
    space = _parse_space(d["space"], ctx, set(overrides))
    seed = ctx.integer(d["seed"], "search.seed", minimum=0) if d.get("seed") is not None else None
    return SearchSpec(algo, metric, mode, n, space, seed)


# Metrics a trial reports to Ray every epoch (eval metrics carry their latest value).
RAY_METRICS = EVAL_KEYS + LOSS_KEYS + tuple(f"final_{k}" for k in FINAL_KEYS)


def _check_metric(metric: str, ctx: _Ctx, key: str) -> None:
    ctx.check(metric in RAY_METRICS, key, f"unknown metric {metric!r}; allowed: {', '.join(RAY_METRICS)}")


def _parse_scheduler(raw: Any, ctx: _Ctx, search: SearchSpec | None, max_epochs: int) -> SchedulerSpec:
    d = ctx.mapping(raw, "scheduler", ("type", "max_t", "grace_period", "reduction_factor", "metric", "mode"))
    t = ctx.string(d.get("type", "asha"), "scheduler.type")
    ctx.check(t in SCHEDULER_TYPES, "scheduler.type", f"unknown scheduler {t!r}; allowed: {', '.join(SCHEDULER_TYPES)}")
    max_t = ctx.integer(d["max_t"], "scheduler.max_t", minimum=1) if d.get("max_t") is not None else max_epochs
    grace = ctx.integer(d.get("grace_period", 1), "scheduler.grace_period", minimum=1)
    ctx.check(grace <= max_t, "scheduler.grace_period", f"must be <= max_t ({max_t}), got {grace}")
    rf = ctx.number(d.get("reduction_factor", 2), "scheduler.reduction_factor")
    ctx.check(rf > 1, "scheduler.reduction_factor", f"must be > 1, got {rf}")
    if "metric" in d:
        metric = ctx.string(d["metric"], "scheduler.metric")
        _check_metric(metric, ctx, "scheduler.metric")
    else:
        ctx.check(search is not None, "scheduler.metric", "required without `search` (e.g. mAP)")
        metric = search.metric  # type: ignore[union-attr]
    mode = ctx.string(d.get("mode", search.mode if search else "max"), "scheduler.mode")
    ctx.check(mode in ("max", "min"), "scheduler.mode", f"must be max or min, got {mode!r}")
    if search is not None:
        ctx.check(metric == search.metric, "scheduler.metric", f"must equal search.metric ({search.metric})")
        ctx.check(mode == search.mode, "scheduler.mode", f"must equal search.mode ({search.mode})")
    return SchedulerSpec(t, max_t, grace, rf, metric, mode)


def _build_config(preset: str, overrides: Mapping[str, Any], ctx: _Ctx, where: str) -> TrainConfig:
    try:
        return preset_config(preset, overrides)
    except ConfigError as e:
        raise ctx.err(where, str(e)) from None


def parse_spec(data: Any, source: str = "<string>", text: str = "", check_paths: bool = True) -> SweepSpec:
    """Validate a loaded YAML mapping; `source` names the file in every error message."""
    ctx = _Ctx(source)
    if data is None:
        raise ctx.err("(top level)", "the file is empty")
    d = ctx.mapping(data, "(top level)", _TOP_KEYS)
    ctx.check("name" in d, "name", "required (the sweep's name: MLflow experiment and storage folder)")
    name = ctx.string(d["name"], "name")
    ctx.check(bool(_NAME_RE.match(name)), "name", f"{name!r}: use letters, digits, '_', '-', '.' (it names folders)")
    description = ctx.string(d.get("description", ""), "description").strip()
    ctx.check("dataset" in d, "dataset", "required: `path: DIR` or `synthetic: {ids: N, ...}`")
    dataset = _parse_dataset(d["dataset"], ctx, check_paths)

    overrides, written = _parse_overrides(d.get("overrides"), ctx)
    grid, grid_keys = _parse_grid(d.get("grid"), ctx, overrides) if "grid" in d else ({}, {})
    ctx.check(not ("grid" in d and d["grid"] is None), "grid", "is empty: give at least one axis or remove `grid`")
    seeds = _parse_seeds(d.get("seeds"), ctx)

    base = d.get("base_preset")
    if base is not None:
        base = ctx.string(base, "base_preset")
        ctx.check(base in PRESETS, "base_preset", f"unknown preset {base!r}; allowed: {', '.join(PRESETS)}")
        ctx.check("preset" not in grid, "base_preset", "not used when `grid.preset` is given; remove one of them")
    else:
        ctx.check("preset" in grid, "base_preset", "required unless the grid has a `preset` axis")

    # Each override alone on the first preset (names the key), then all of them together.
    first = grid["preset"][0] if "preset" in grid else base
    for full, v in overrides.items():
        _build_config(first, {full: v}, ctx, f"overrides.{written[full]}")
    _build_config(first, overrides, ctx, "overrides")

    search = _parse_search(d["search"], ctx, overrides) if d.get("search") is not None else None
    if search is not None:
        ctx.check(not grid, "grid", "not supported together with `search` (Optuna samples the space; "
                                    "fix other fields in `overrides`)")
        ctx.check(len(seeds) == 1, "seeds", "a search trains each sample once: give one seed")
        for p in search.space:
            ctx.check(p.key not in grid_keys.values(), f"search.space.{p.written}", "also a grid axis")

    resources = _parse_resources(d.get("resources"), ctx)
    max_conc = d.get("max_concurrent")
    max_conc = ctx.integer(max_conc, "max_concurrent", minimum=1) if max_conc is not None else None
    max_failures = ctx.integer(d.get("max_failures", 2), "max_failures", minimum=0)
    ck = ctx.mapping(d.get("checkpoint") or {}, "checkpoint", ("every", "num_to_keep"))
    ck_every = ctx.integer(ck.get("every", 1), "checkpoint.every", minimum=1)
    ck_keep = ctx.integer(ck.get("num_to_keep", 2), "checkpoint.num_to_keep", minimum=1)

    # Expand and validate every trial's config.
    trials: list[TrialSpec] = []
    axes_names = [k for k in grid if k != "preset"]
    presets = grid.get("preset", [base])
    value_lists = [grid[k] for k in axes_names]
    idx = 0
    max_epochs = 1
    for preset in presets:
        for combo in itertools.product(*value_lists):
            axes = dict(zip(axes_names, combo))
            ov = dict(overrides)
            ov.update({grid_keys[k]: v for k, v in axes.items()})
            if "preset" in grid or axes:
                label = ", ".join(([f"preset={preset}"] if "preset" in grid else [])
                                  + [f"{k}={format_value(v)}" for k, v in axes.items()])
                where = f"grid ({label})"
            else:
                where = "overrides"
            cfg = _build_config(preset, {**ov, "seed": seeds[0]}, ctx, where)
            if search is not None:
                for p in search.space:
                    probes = list(p.values) if p.type == "choice" else [p.low, p.high]
                    for val in probes:
                        _build_config(preset, {**ov, p.key: val}, ctx, f"search.space.{p.written}")
            max_epochs = max(max_epochs, _total_epochs(cfg))
            for seed in seeds:
                nm, point = trial_name(preset if ("preset" in grid or not axes) else None, axes, seed)
                resolved = cfg if seed == seeds[0] else preset_config(preset, {**ov, "seed": seed})
                trials.append(TrialSpec(idx, nm, point, preset, seed, axes, ov, to_dict(resolved)))
                idx += 1
    names = [t.name for t in trials]
    dup = sorted({n for n in names if names.count(n) > 1})
    ctx.check(not dup, "grid", f"two trials would share the name {dup[0] if dup else ''}")

    scheduler = _parse_scheduler(d["scheduler"], ctx, search, max_epochs) if d.get("scheduler") is not None else None
    return SweepSpec(
        name=name, description=description, dataset=dataset, base_preset=base, grid=grid, grid_keys=grid_keys,
        seeds=seeds, overrides=overrides, resources=resources, max_concurrent=max_conc, max_failures=max_failures,
        checkpoint_every=ck_every, checkpoint_keep=ck_keep, search=search, scheduler=scheduler,
        trials=tuple(trials), source=source, text=text, raw=copy.deepcopy(d),
    )


def _total_epochs(cfg: TrainConfig) -> int:
    """Epochs of a run after schedule.scale (mirrors reid_core.training.schedules.Plan
    without importing torch)."""

    def scaled(n: int, s: float) -> int:
        return max(1, int(math.floor(n * s + 0.5 + 1e-9)))

    s = cfg.schedule.scale
    main = scaled(cfg.schedule.epochs, s)
    if not cfg.swag.enabled:
        return main
    return main + cfg.swag.cycles * scaled(cfg.swag.cycle_epochs, s)


def load_spec(path: str | os.PathLike[str], check_paths: bool = True) -> SweepSpec:
    """Read and validate a sweep YAML; every error names the file and the key."""
    p = Path(path)
    src = str(path)
    if not p.exists():
        raise ConfigError(f"{src}: no such sweep file")
    if not p.is_file():
        raise ConfigError(f"{src}: not a file")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{src}: cannot read ({e})") from e
    return parse_text(text, src, check_paths=check_paths)


def parse_text(text: str, source: str = "<string>", check_paths: bool = True) -> SweepSpec:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "(yaml)"
        problem = getattr(e, "problem", None) or str(e)
        raise ConfigError(f"{source}: {where}: malformed YAML: {problem}") from None
    return parse_spec(data, source, text, check_paths=check_paths)


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
        lines.append(f"    {t.name:<{width}}  preset={t.preset:<13} seed={t.seed}  epochs={_total_epochs(cfg)}"
                     + (f"  {', '.join(f'{k}={format_value(v)}' for k, v in t.axes.items())}" if t.axes else ""))
    return "\n".join(lines)
