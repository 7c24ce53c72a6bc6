"""Sweep specifications: YAML -> validated `SweepSpec` with its trials (`Trial`, trial.py).

A sweep YAML (see `sweeps/*.yaml`, schema: `compact-reid sweep schema`) names a dataset, a
base preset, a grid of axes (`preset: [...]` and/or config fields by dotted path or unique
leaf name), seeds, fixed config overrides, per-trial resources and, optionally, an Optuna
search with an ASHA scheduler. `load_spec(path)` validates ALL of it before anything
starts, in two steps: the pydantic models of spec_models.py check each key (types, ranges,
unknown keys), then this module checks what keys say together (config keys, presets, the
generator's own rules for synthetic data) and builds every trial's TrainConfig once (in its
frozen `Trial`, trial.py). Every error is a `reid_core.config.ConfigError` whose
message starts with the file and the dotted key (`sweeps/x.yaml: grid.gem_p_init: ...`)
and, where there is a choice, the allowed values.

This module imports neither Ray nor MLflow (nor torch): `compact-reid sweep validate` and
`compact-reid sweep show` stay fast and run where only the spec matters.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml
from pydantic import ValidationError

from reid_core.config import ConfigError, TrainConfig, resolve_key
from reid_core.presets import PRESETS, preset_config
from reid_core.synth_options import SynthOptionError, check_options
from reid_core.training.epochs import epoch_counts

from .spec_models import RESERVED_KEYS, SchedulerSection, SearchSection, SweepFile, SyntheticSpec, error_message
from .trial import Trial, format_value, trial_name

__all__ = ["load_spec", "parse_text", "parse_spec", "SweepSpec", "DatasetSpec"]


@dataclass(frozen=True)
class DatasetSpec:
    """Either a folder (`path`, optional `name`) or a synthetic dataset generated per sweep."""

    path: str | None = None  # absolute, env vars expanded (or a storage URI); None for synthetic data
    name: str = "auto"
    synthetic: dict[str, Any] | None = None  # generate()'s keyword arguments (num_ids, num_cameras, ...)
    sha256: str | None = None  # an archive's expected checksum (object storage)

    @property
    def is_synthetic(self) -> bool:
        return self.synthetic is not None


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep YAML and its trials (what `load_spec` returns). `file` is the YAML as
    spec_models.SweepFile validated it (plain keys are read there); the other fields are what
    several keys make together."""

    file: SweepFile
    source: str  # the file the spec came from ('<string>' when parsed from text)
    text: str  # the YAML text as read
    dataset: DatasetSpec  # the folder resolved, or generate()'s arguments
    overrides: dict[str, Any]  # resolved dotted path -> value
    grid: dict[str, list[Any]]  # axis (as written) -> values; `preset` first when present
    search: SearchSection | None  # file.search with `space` keyed by dotted config path
    scheduler: SchedulerSection | None  # file.scheduler with max_t, metric and mode filled in
    trials: tuple[Trial, ...]  # a search: one template trial, sampled by Optuna

    @property
    def num_trials(self) -> int:
        return self.search.num_samples if self.search else len(self.trials)

    def with_trials(self, trials: Sequence[Trial]) -> "SweepSpec":
        return dataclasses.replace(self, trials=tuple(trials))

    def planned(self) -> list[dict[str, Any]]:
        """trials.json: the planned trial list (a search plans `num_samples` trials whose
        names are known only once sampled: [])."""
        return [t.to_dict(with_config=False) for t in self.trials] if self.search is None else []

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view (`sweep show --json`): every key of the file, the derived ones as
        resolved, then the trials."""
        keys = self.file.model_dump(mode="json", exclude={"search", "scheduler"})
        out: dict[str, Any] = {"name": keys.pop("name"), "description": keys.pop("description")}
        out.update(source=self.source, **keys)
        dataset = self.dataset
        out.update(
            dataset={"synthetic": dataset.synthetic}
            if dataset.is_synthetic
            else {"path": dataset.path, "name": dataset.name},
            grid=self.grid,
            overrides=self.overrides,
            num_trials=self.num_trials,
            trials=[t.to_dict(with_config=False) for t in self.trials],
        )
        if self.search is not None:
            out["search"] = {
                **self.search.model_dump(mode="json", exclude={"space"}),
                "space": {k: p.model_dump(mode="json", exclude_none=True) for k, p in self.search.space.items()},
            }
        if self.scheduler is not None:
            out["scheduler"] = self.scheduler.model_dump(mode="json")
        return out


_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


class _Ctx:
    """Names the file in every error."""

    def __init__(self, source: str) -> None:
        self.source = source

    def err(self, key: str, msg: str) -> ConfigError:
        return ConfigError(f"{self.source}: {key}: {msg}")

    def check(self, cond: bool, key: str, msg: str) -> None:
        if not cond:
            raise self.err(key, msg)

    def resolve(self, key: str, where: str) -> str:
        """The dotted config path of a key as written (a unique leaf name is a shortcut)."""
        try:
            full = resolve_key(key)
        except ConfigError as e:
            raise self.err(where, str(e).split(": ", 1)[-1]) from None
        self.check(
            full not in RESERVED_KEYS and key not in RESERVED_KEYS,
            where,
            "set seeds with `seeds: [...]` and presets with `base_preset` or `grid.preset`",
        )
        return full

    def config(
        self, preset: str, overrides: Mapping[str, Any], where: str, written: Mapping[str, str] | None = None
    ) -> TrainConfig:
        """The preset with the overrides; an error names `where`, or `where.<key as written>`
        when the field it is about is one of `written` (dotted path -> key as written)."""
        try:
            return preset_config(preset, overrides)
        except ConfigError as e:
            field = str(e).split(":", 1)[0]
            raise self.err(f"{where}.{written[field]}" if written and field in written else where, str(e)) from None


def load_spec(path: str | os.PathLike[str], check_paths: bool = True) -> SweepSpec:
    """Read and validate a sweep YAML; every error names the file and the key."""
    p, src = Path(path), str(path)
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
        raise ConfigError(f"{source}: {where}: malformed YAML: {getattr(e, 'problem', None) or e}") from None
    return parse_spec(data, source, text, check_paths=check_paths)


def parse_spec(data: Any, source: str = "<string>", text: str = "", check_paths: bool = True) -> SweepSpec:
    """Validate a loaded YAML mapping; `source` names the file in every error message."""
    ctx = _Ctx(source)
    if data is None:
        raise ctx.err("(top level)", "the file is empty")
    try:
        file = SweepFile.model_validate(data)
    except ValidationError as e:
        raise ctx.err(*error_message(e)) from None
    dataset = _dataset(file, ctx, check_paths)
    overrides, written = _overrides(file, ctx)
    grid, grid_keys = _grid(file, ctx, overrides)
    base = file.base_preset
    if base is not None:
        ctx.check("preset" not in grid, "base_preset", "not used when `grid.preset` is given; remove one of them")
    else:
        ctx.check("preset" in grid, "base_preset", "required unless the grid has a `preset` axis")
    first = grid["preset"][0] if "preset" in grid else base
    # All together, as `train --set` applies them: one at a time, `epochs: 10` would be
    # checked against the preset's milestones before `milestones: [8]` could move them.
    ctx.config(first, overrides, "overrides", written)
    search = _search(file, ctx, base, overrides, grid_keys) if file.search is not None else None
    trials, max_epochs = _expand(ctx, grid, grid_keys, base, tuple(file.seed_list), overrides, file.name)
    _check_comparison(file, ctx, trials)
    scheduler = _scheduler(file, ctx, search, max_epochs) if file.scheduler is not None else None
    return SweepSpec(
        file=file,
        source=source,
        text=text or yaml.safe_dump(data, sort_keys=False),
        dataset=dataset,
        overrides=overrides,
        grid=grid,
        search=search,
        scheduler=scheduler,
        trials=tuple(trials),
    )


def _expand_env(value: str, ctx: _Ctx, key: str) -> str:
    """`${VAR}` / `$VAR` from the environment and a leading `~`; an unset variable is an error."""

    def sub(m: re.Match[str]) -> str:
        var = m.group(1) or m.group(2)
        if not os.environ.get(var):
            raise ctx.err(
                key,
                f"environment variable {var} is not set (it names the dataset folder: "
                f"export {var}=/path/to/the/dataset, or write the path here)",
            )
        return os.environ[var]

    return os.path.expanduser(_ENV_RE.sub(sub, value))


def _dataset(file: SweepFile, ctx: _Ctx, check_paths: bool) -> DatasetSpec:
    dataset = file.dataset
    ctx.check(
        (dataset.path is None) != (dataset.synthetic is None),
        "dataset",
        "give exactly one of `path: DIR` or `synthetic: {ids, cameras, ...}`",
    )
    if dataset.synthetic is not None:
        ctx.check(dataset.name is None, "dataset.name", "only with `path` (synthetic data is always 'generic')")
        ctx.check(dataset.sha256 is None, "dataset.sha256", "only with an object-storage `path` (s3://, gs://)")
        options = dataset.synthetic.generator_kwargs()
        try:  # the generator's own rules, before anything is drawn
            check_options(options)
        except SynthOptionError as e:
            raise ctx.err(f"dataset.synthetic.{SyntheticSpec.key_of(e.option)}", e.problem) from None
        return DatasetSpec(synthetic=options, name="generic")
    ctx.check(dataset.path.strip() != "", "dataset.path", "is empty")  # type: ignore[union-attr]
    expanded = _expand_env(dataset.path, ctx, "dataset.path")  # type: ignore[arg-type]
    if "://" in expanded:  # object storage: staged on each node (sweep_data.py)
        from ..storage import StorageError, StorageURI

        try:
            StorageURI.parse(expanded)
        except StorageError as e:
            raise ctx.err("dataset.path", str(e)) from None
        return DatasetSpec(path=expanded, name=dataset.name or "auto", sha256=dataset.sha256)
    ctx.check(dataset.sha256 is None, "dataset.sha256", "only for an object-storage path (s3://, gs://)")
    path = Path(expanded)
    path = path if path.is_absolute() else Path.cwd() / path
    if check_paths:
        ctx.check(path.exists(), "dataset.path", f"{path} does not exist")
        ctx.check(path.is_dir(), "dataset.path", f"{path} is not a folder")
    return DatasetSpec(path=str(path.resolve() if path.exists() else path), name=dataset.name or "auto")


def _overrides(file: SweepFile, ctx: _Ctx) -> tuple[dict[str, Any], dict[str, str]]:
    """(resolved dotted path -> value, resolved path -> key as written)."""
    out: dict[str, Any] = {}
    written: dict[str, str] = {}
    for k, v in file.overrides.items():
        full = ctx.resolve(k, f"overrides.{k}")
        ctx.check(full not in out, f"overrides.{k}", f"same field as overrides.{written.get(full)} ({full})")
        out[full], written[full] = v, k
    return out, written


def _grid(file: SweepFile, ctx: _Ctx, overrides: Mapping[str, Any]) -> tuple[dict[str, list[Any]], dict[str, str]]:
    """(axis as written -> values, preset first; axis as written -> resolved dotted path)."""
    if "grid" in file.model_fields_set and not file.grid:
        raise ctx.err("grid", "is empty: give at least one axis (e.g. `preset: [g, h]`), or remove `grid`")
    axes = file.grid or {}
    grid: dict[str, list[Any]] = {}
    keys: dict[str, str] = {}
    for k in (["preset"] if "preset" in axes else []) + [k for k in axes if k != "preset"]:  # preset first
        v, key = axes[k], f"grid.{k}"
        formatted = [format_value(x) for x in v]
        dup = [f for f in formatted if formatted.count(f) > 1]
        ctx.check(not dup, key, f"duplicate value {dup[0] if dup else ''}")
        if k == "preset":
            for i, p in enumerate(v):
                ctx.check(
                    isinstance(p, str) and p in PRESETS,
                    f"{key}[{i}]",
                    f"unknown preset {p!r}; allowed: {', '.join(PRESETS)}",
                )
            full = "preset"
        else:
            full = ctx.resolve(k, key)
            ctx.check(full not in keys.values(), key, f"same field as another grid axis ({full})")
            ctx.check(full not in overrides, key, f"{full} is also fixed in `overrides`; keep one")
        grid[k], keys[k] = list(v), full
    return grid, keys


def _search(
    file: SweepFile, ctx: _Ctx, base: str | None, overrides: Mapping[str, Any], grid_keys: Mapping[str, str]
) -> SearchSection:
    """file.search with its space keyed by dotted config path; every bound (or choice) must
    make a valid config with the overrides."""
    search = file.search
    assert search is not None
    ctx.check(
        not grid_keys,
        "grid",
        "not supported together with `search` (Optuna samples the space; fix other fields in `overrides`)",
    )
    ctx.check(
        len(file.seed_list) == 1 and file.adaptive is None, "seeds", "a search trains each sample once: give one seed"
    )
    space = {}
    for k, p in search.space.items():
        key = f"search.space.{k}"
        full = ctx.resolve(k, key)
        ctx.check(full not in overrides, key, f"{full} is also fixed in `overrides`; keep one")
        ctx.check(full not in space, key, f"same field as another search key ({full})")
        if p.type == "choice":
            ctx.check(p.values is not None, f"{key}.values", "required for type choice")
            ctx.check(p.low is None and p.high is None, key, "type choice takes `values`, not low/high")
        else:
            ctx.check(p.values is None, f"{key}.values", f"only for type choice (type {p.type} takes low/high)")
            for b in ("low", "high"):
                ctx.check(getattr(p, b) is not None, f"{key}.{b}", f"required for type {p.type}")
                if p.type == "int":
                    ctx.check(
                        float(getattr(p, b)).is_integer(), f"{key}.{b}", f"expected an integer, got {getattr(p, b)}"
                    )
            low, high = (int(p.low), int(p.high)) if p.type == "int" else (p.low, p.high)  # type: ignore[arg-type]
            ctx.check(low < high, f"{key}.high", f"must be > low ({low}), got {high}")  # type: ignore[operator]
            if p.type == "loguniform":
                ctx.check(low > 0, f"{key}.low", f"must be > 0 for loguniform, got {low}")  # type: ignore[operator]
            p = p.model_copy(update={"low": low, "high": high})
        for value in p.values or [p.low, p.high]:
            ctx.config(base, {**overrides, full: value}, key)  # type: ignore[arg-type]
        space[full] = p
    return search.model_copy(update={"space": space})


def _check_comparison(file: SweepFile, ctx: _Ctx, trials: list[Trial]) -> None:
    """`reference` names a grid point; adaptive seeds need something to compare with."""
    points = list(dict.fromkeys(t.grid_point for t in trials))
    if file.reference is not None:
        ctx.check(
            file.reference in points, "reference", f"no grid point {file.reference!r}; allowed: {', '.join(points)}"
        )
    adaptive = file.adaptive
    if adaptive is None:
        return
    ctx.check(
        adaptive.max >= adaptive.initial,
        "seeds.max",
        f"must be >= seeds.initial ({adaptive.initial}), got {adaptive.max}",
    )
    ctx.check(
        file.search is None and file.scheduler is None, "seeds", "adaptive seeds need a grid (no search, no scheduler)"
    )
    ctx.check(
        len(points) >= 2,
        "reference",
        f"adaptive seeds compare grid points with a reference group, but this grid has one point ({points[0]}); "
        "add a grid axis (e.g. grid.preset) with the reference among its values",
    )


def _scheduler(file: SweepFile, ctx: _Ctx, search: SearchSection | None, max_epochs: int) -> SchedulerSection:
    """file.scheduler with max_t (default: the longest trial), metric and mode (default: the search's)."""
    scheduler = file.scheduler
    assert scheduler is not None
    max_t = scheduler.max_t if scheduler.max_t is not None else max_epochs
    ctx.check(
        scheduler.grace_period <= max_t,
        "scheduler.grace_period",
        f"must be <= max_t ({max_t}), got {scheduler.grace_period}",
    )
    ctx.check(
        scheduler.metric is not None or search is not None, "scheduler.metric", "required without `search` (e.g. mAP)"
    )
    metric = scheduler.metric or search.metric  # type: ignore[union-attr]
    mode = scheduler.mode or (search.mode if search else "max")
    if search is not None:
        ctx.check(metric == search.metric, "scheduler.metric", f"must equal search.metric ({search.metric})")
        ctx.check(mode == search.mode, "scheduler.mode", f"must equal search.mode ({search.mode})")
    return scheduler.model_copy(update={"max_t": max_t, "metric": metric, "mode": mode})


def _expand(
    ctx: _Ctx,
    grid: Mapping[str, list[Any]],
    grid_keys: Mapping[str, str],
    base: str | None,
    seeds: tuple[int, ...],
    overrides: Mapping[str, Any],
    sweep: str,
) -> tuple[list[Trial], int]:
    """Every (preset, axis values, seed): its name and its resolved config, built once here."""
    trials: list[Trial] = []
    axes_names = [k for k in grid if k != "preset"]
    max_epochs = 1
    for preset in grid.get("preset", [base]):
        for combo in itertools.product(*(grid[k] for k in axes_names)):
            axes = dict(zip(axes_names, combo))
            ov = {**overrides, **{grid_keys[k]: v for k, v in axes.items()}}
            label = ", ".join(
                ([f"preset={preset}"] if "preset" in grid else []) + [f"{k}={format_value(v)}" for k, v in axes.items()]
            )
            where = f"grid ({label})" if label else "overrides"
            for seed in seeds:
                cfg = ctx.config(preset, {**ov, "seed": seed}, where)
                max_epochs = max(max_epochs, epoch_counts(cfg).total_epochs)
                name, point = trial_name(preset if ("preset" in grid or not axes) else None, axes, seed)
                trials.append(Trial(len(trials), name, point, preset, seed, axes, ov, cfg, sweep=sweep))
    names = [t.name for t in trials]
    dup = sorted({x for x in names if names.count(x) > 1})
    ctx.check(not dup, "grid", f"two trials would share the name {dup[0] if dup else ''}")
    return trials, max_epochs
