"""The choice a sweep with `resources: auto` runs with: `choose_resources` (each kind of node
probed, or read from the cache, then decided), `apply_choice` (the chosen config overrides in
every trial) and `record` (the choice on the sweep's parent MLflow run).

What the spec, `--gpus-per-trial` or `--max-concurrent` set explicitly always wins; the
per-trial resources rule and the max_concurrent precedence are ray_tune's
(`resources_rule`, `max_concurrent`), applied here, never restated.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from reid_core.config import to_dict

from ..mlflow_log.names import PROBE_TAG, RESOURCE_CHOICE_ARTIFACT, RESOURCES_TAG
from ..sweep.ray_tune import max_concurrent as resolve_max_concurrent
from ..sweep.ray_tune import resources_rule
from ..sweep.spec import SweepSpec
from .cache import cache_key, cache_path, read_cache, write_cache
from .cells import COMPILE, PIPELINE, Cell, NodeKind, OpenChoices, cell_resources, decide, default_cell, what_is_open
from .measure import DEFAULT_BUDGET_S, KindProbe, Measure, probe_kind
from .nodes import device_of, is_local, main_kind, node_kinds, remote_probe

Log = Callable[[str], None]
BUDGET_ENV = "COMPACT_REID_PROBE_SECONDS"


@dataclass
class ResourceChoice:
    """What the sweep runs with, and why. `source`: probe | cache | spec | fallback."""

    resources: dict[str, float]
    max_concurrent: int | None
    threads: int
    overrides: dict[str, Any]
    table: list[dict[str, Any]]
    reason: str
    source: str
    device: str = ""
    node_kind: str = ""
    probe_seconds: float = 0.0
    per_kind: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def lines(self) -> list[str]:
        """The table, the choice and why, as printed at a sweep's start."""
        device = f", {self.device}" if self.device else ""
        out = [f"resources ({self.source}{device}):"]
        if self.table:
            out.append(f"  {'pipeline':<12}{'compile':<9}{'trials x threads':>17}{'images/s':>11}{'again':>8}  status")
            for row in self.table:
                figure = f"{row['images_per_second']:.1f}" if row.get("images_per_second") is not None else "-"
                again = f"{row['repeat']:.1f}" if row.get("repeat") is not None else "-"
                status = row["status"] + (f" ({row['note']})" if row.get("note") else "")
                out.append(
                    f"  {row['pipeline']:<12}{row['compile']:<9}{row['processes']:>8} x {row['threads']:<6}"
                    f"{figure:>11}{again:>8}  {status}"
                )
        overrides = ", ".join(f"{key}={value}" for key, value in self.overrides.items())
        concurrent = self.max_concurrent if self.max_concurrent else "as resources allow"
        out.append(
            f"  choice: {self.resources['cpu']:g} CPU + {self.resources['gpu']:g} GPU per trial, "
            f"{self.threads} thread(s), max_concurrent {concurrent}" + (f", {overrides}" if overrides else "")
        )
        out.append(f"  why: {self.reason}")
        for kind, outcome in self.per_kind.items():
            if kind != self.node_kind:
                out.append(f"  node kind {kind}: {outcome.get('summary', '')} (recorded, not applied)")
        return out


def _threads(resources: Mapping[str, float]) -> int:
    return max(1, int(resources["cpu"]))


def choose_resources(
    spec: SweepSpec,
    data_root: str,
    data_name: str,
    *,
    default_resources: Mapping[str, float],
    reprobe: bool = False,
    gpus_per_trial: float | None = None,
    max_concurrent: int | None = None,
    log: Log = print,
    kinds: Sequence[NodeKind] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    budget_s: float | None = None,
    window_s: float | None = None,
    measure: Measure | None = None,
) -> ResourceChoice:
    """The resources, max_concurrent, threads and config overrides of a `resources: auto` sweep.

    The cached choice when there is one (unless `reprobe`), else a probe of each kind of node
    (`budget_s`: its budget, default $COMPACT_REID_PROBE_SECONDS else 60 s). `default_resources`:
    `ray_tune.trial_resources`' answer (the built-in rules; also the fallback).
    `max_concurrent`: the --max-concurrent option. `kinds`: the node kinds (default: Ray's
    nodes). `measure`: measures one cell (tests; default: worker processes). Never raises: a
    probe that fails falls back to the defaults and says why."""
    try:
        return _choose(
            spec, data_root, data_name, dict(default_resources), reprobe, gpus_per_trial, max_concurrent,
            log, kinds, cache_dir, budget_s, window_s, measure,
        )  # fmt: skip
    except Exception as e:  # noqa: BLE001 - whatever went wrong, the sweep goes on with the defaults
        resources = dict(default_resources)
        return ResourceChoice(
            resources,
            resolve_max_concurrent(max_concurrent, spec),
            _threads(resources),
            {},
            [],
            f"probe failed, so the defaults are used: {type(e).__name__}: {e}",
            "fallback",
        )


def _choose(
    spec: SweepSpec,
    data_root: str,
    data_name: str,
    default_resources: dict[str, float],
    reprobe: bool,
    gpus_per_trial: float | None,
    max_concurrent: int | None,
    log: Log,
    kinds: Sequence[NodeKind] | None,
    cache_dir: str | os.PathLike[str] | None,
    budget_s: float | None,
    window_s: float | None,
    measure: Measure | None,
) -> ResourceChoice:
    kinds = list(kinds) if kinds is not None else node_kinds()
    applied = main_kind(kinds)
    left_open = what_is_open(spec, gpus_per_trial, max_concurrent)
    fixed_concurrent = resolve_max_concurrent(max_concurrent, spec)
    started = time.perf_counter()

    def defaults_kept(source: str, reason: str, **extra: Any) -> ResourceChoice:
        threads = _threads(default_resources)
        return ResourceChoice(
            default_resources, fixed_concurrent, threads, {}, extra.pop("table", []), reason, source, **extra
        )

    if not left_open.anything:
        return defaults_kept(
            "spec",
            "the spec sets resources, data.pipeline and runtime.compile: nothing to probe",
            node_kind=applied.key,
        )
    if budget_s is None:
        budget_s = float(os.environ.get(BUDGET_ENV, DEFAULT_BUDGET_S))
    config = to_dict(spec.trials[0].config)
    per_kind: dict[str, dict[str, Any]] = {}
    decisions: dict[str, tuple[Cell | None, str]] = {}
    for kind in kinds:
        # The applied kind's defaults are what the sweep falls back to (the cluster-wide rule);
        # the others' are the same rule on one node of their kind.
        kind_resources = (
            default_resources
            if kind is applied
            else resources_rule(kind.cpus, kind.gpus, spec.file.resources, gpus_per_trial)
        )
        job = KindProbe(
            kind=kind,
            left_open=left_open,
            default=default_cell(kind, left_open, kind_resources),
            config=config,
            data_root=data_root,
            data_name=data_name,
            budget_s=budget_s,
            window_s=window_s,
        )
        try:
            outcome = _cached_or_probed(job, reprobe, cache_dir, measure, log)
        except Exception as e:  # noqa: BLE001 - one kind's probe must never take the sweep down
            outcome = {"table": [], "error": f"{type(e).__name__}: {e}", "source": "probe"}
        if outcome["table"]:
            decisions[kind.key] = decide(outcome["table"], job.default)
        else:
            decisions[kind.key] = (None, outcome.get("error", "the probe failed"))
        winner, why = decisions[kind.key]
        outcome["choice"] = winner.label if winner else None
        outcome["summary"] = f"{winner.label if winner else 'defaults'}: {why}"
        per_kind[kind.key] = outcome
    outcome = per_kind[applied.key]
    winner, reason = decisions[applied.key]
    recorded = {
        "table": outcome["table"],
        "device": outcome.get("device", ""),
        "node_kind": applied.key,
        "probe_seconds": time.perf_counter() - started,
        "per_kind": per_kind,
    }
    if winner is None:
        return defaults_kept("fallback", f"probe failed, so the defaults are used: {reason}", **recorded)
    if left_open.packing:
        resources, probed_concurrent = cell_resources(winner, applied)
    else:
        resources, probed_concurrent = default_resources, None
    return ResourceChoice(
        resources,
        resolve_max_concurrent(max_concurrent, spec, probed_concurrent),
        _threads(resources),
        _config_overrides(winner, left_open),
        reason=reason,
        source=outcome.get("source", "probe"),
        **recorded,
    )


def _config_overrides(winner: Cell, left_open: OpenChoices) -> dict[str, Any]:
    """The winner's config keys that the spec left open and that differ from the spec's."""
    overrides: dict[str, Any] = {}
    if left_open.pipeline and winner.pipeline != left_open.base_pipeline:
        overrides[PIPELINE] = winner.pipeline
    if left_open.compile and winner.compile != left_open.base_compile:
        overrides[COMPILE] = winner.compile
    return overrides


def _cached_or_probed(
    job: KindProbe,
    reprobe: bool,
    cache_dir: str | os.PathLike[str] | None,
    measure: Measure | None,
    log: Log,
) -> dict[str, Any]:
    """One kind's {"device", "table", "seconds", "date", "key", "source"}: from the cache, or
    measured (here, or on a node of that kind) and then cached unless nothing worked."""
    kind = job.kind
    path = cache_path(cache_dir)
    device = device_of(kind)
    key = cache_key(device, job.config, kind, job.left_open, job.default)
    if not reprobe:
        hit = read_cache(path, key, log)
        if hit is not None:
            log(
                f"resource probe ({kind.key}, {device}): cached result from {hit.get('date', '?')} ({path}); "
                "--reprobe measures again"
            )
            return {**hit, "source": "cache"}
    log(f"resource probe ({kind.key}, {device}): measuring, up to about {job.budget_s:.0f} s")
    if is_local(kind) or measure is not None:
        outcome = probe_kind(job, measure=measure, log=log)
    else:
        outcome = remote_probe(job)
    entry = {**outcome, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "key": key}
    if any(row["status"] == "ok" for row in outcome["table"]):  # a probe that failed entirely is not cached
        write_cache(path, key, entry, log)
    return {**entry, "source": "probe"}


def apply_choice(spec: SweepSpec, choice: ResourceChoice) -> SweepSpec:
    """The spec with the choice's config overrides in every trial, through `Trial.with_overrides`
    (validated like any override; only keys the spec left open are ever in `choice.overrides`)."""
    if not choice.overrides:
        return spec
    return spec.with_trials([trial.with_overrides(choice.overrides) for trial in spec.trials])


def record(tracker: Any, run_id: str, choice: ResourceChoice, log: Log = print) -> None:
    """On the parent MLflow run: the whole choice (resource_choice.json) and tags: the source,
    the choice, why, and one tag per probed cell."""
    try:
        tracker.log_parent_json(run_id, choice.to_dict(), RESOURCE_CHOICE_ARTIFACT)
        summary = {"resources": choice.resources, "max_concurrent": choice.max_concurrent, **choice.overrides}
        tags = {
            RESOURCES_TAG + "source": choice.source,
            RESOURCES_TAG + "choice": json.dumps(summary),
            RESOURCES_TAG + "reason": choice.reason[:4000],
        }
        for row in choice.table:
            figure = f"{row['images_per_second']:.2f} img/s" if row.get("images_per_second") is not None else None
            tags[PROBE_TAG + Cell.of_row(row).label.replace("/", ".")] = figure or row["status"]
        for name, value in tags.items():
            tracker.client.set_tag(run_id, name, value)
    except Exception as e:  # noqa: BLE001 - never lose the sweep over its record
        log(f"warning: could not record the resource choice on the parent run: {e}")
