"""Run and resume sweeps with Ray Tune (MLflow through orchestration.mlflow_log).

`run_sweep`: validate and expand the spec, check the tracking URI, start or join Ray (every
node must see the storage), prepare the data, create the parent run and `sweep.json`, run the
Tuner, then settle the runs' states. A failing trial never takes the sweep down; `sweep
resume` continues a stopped one. The steps in full: docs/ARCHITECTURE.md, "Module notes:
orchestration/sweep/runner.py".
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from reid_core.config import ConfigError

from ..mlflow_log.names import STORAGE, SWEEP_SUMMARY_ARTIFACT
from . import ray_tune, resource_probe
from .errors import SweepError
from .spec import load_spec, parse_text
from .storage_check import check_nodes_see, sweep_folders
from .sweep_folder import SWEEP_FILE, SweepState, find_sweep, prepare_data, storage_and_dir
from .trial_status import format_table, ray_trials, sweep_status, trial_rows

__all__ = ["SweepError", "SweepOutcome", "run_sweep", "resume_sweep", "sweep_status", "find_sweep", "format_table"]

Log = Callable[[str], None]


@dataclass
class SweepOutcome:
    name: str
    sweep_dir: str
    parent_run_id: str
    tracking_uri: str
    trials: list[dict[str, Any]] = field(default_factory=list)
    wall_seconds: float = 0.0
    interrupted: bool = False
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def all_failed(self) -> bool:
        return bool(self.trials) and all(r["status"] == "ERROR" for r in self.trials)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "sweep_dir": self.sweep_dir,
            "parent_run_id": self.parent_run_id,
            "tracking_uri": self.tracking_uri,
            "wall_seconds": self.wall_seconds,
            "interrupted": self.interrupted,
            "counts": self.counts,
            "trials": self.trials,
        }


def run_sweep(
    spec_path: str | os.PathLike[str],
    address: str | None = None,
    gpus_per_trial: float | None = None,
    max_concurrent: int | None = None,
    tracking_uri: str | None = None,
    storage: str | None = None,
    runs_dir: str | os.PathLike[str] = "runs",
    verbose: int = 1,
    log: Log = print,
    fresh: bool = False,
    trial_fn: Callable[..., None] | None = None,
    reuse: bool = True,
    share: bool = True,
    resources_mode: str | None = None,
    reprobe: bool = False,
) -> SweepOutcome:
    """Validate, prepare and run a sweep (module docstring); returns its outcome.

    A sweep that already has state is refused (resume it), unless `fresh`: then its old
    local folder is renamed `<folder>-<timestamp>` and a new sweep (new MLflow parent run in
    the same experiment) starts. `trial_fn`: the trainable (default `run_trial`; tests pass
    a fault-injecting wrapper). `reuse`: copy trials identical to FINISHED runs in the
    tracking store instead of training them (`--no-reuse` turns it off). `share`: trials
    start from the training they share with others (`--no-sharing`: each trains alone).
    `resources_mode` ('auto' | 'defaults', default: the spec's) and `reprobe`:
    resource_probe.choose_resources."""
    from ..mlflow_log import SweepTracker, check_tracking_uri, resolve_tracking_uri

    t0 = time.perf_counter()
    spec = load_spec(spec_path)
    storage_path, sweep_dir, exp_path = storage_and_dir(spec.file.name, storage, Path(runs_dir))
    _check_can_start(spec.file.name, sweep_dir, exp_path, fresh)
    if gpus_per_trial is not None and gpus_per_trial < 0:
        raise ConfigError(f"--gpus-per-trial: must be >= 0, got {gpus_per_trial}")
    if max_concurrent is not None and max_concurrent < 1:
        raise ConfigError(f"--max-concurrent: must be >= 1, got {max_concurrent}")
    ray_tune.check_address(address)  # an unreachable cluster is refused before the store is touched
    uri = resolve_tracking_uri(tracking_uri, runs_dir)  # --tracking-uri, else $MLFLOW_TRACKING_URI, else runs/
    log(f"tracking: {check_tracking_uri(uri)}")  # refused credentials stop here: no Ray, no folder, no run
    started = ray_tune.init_ray(address, log)  # before touching any folder: a failed join changes nothing
    tracker, parent = None, None
    try:
        resources = ray_tune.trial_resources(spec, gpus_per_trial)
        check_nodes_see(sweep_folders(storage_path, sweep_dir, spec.dataset), log)  # before any folder or run
        if fresh and (sweep_dir / SWEEP_FILE).exists():
            old = sweep_dir.with_name(f"{sweep_dir.name}-{time.strftime('%Y%m%d-%H%M%S')}")
            sweep_dir.rename(old)
            log(f"--fresh: the previous state of {spec.file.name} moved to {old}")
        data_root, data_name = prepare_data(spec, sweep_dir, log)
        # resources: auto: what the spec leaves open, measured here (cached); resource_probe.py
        choice = resource_probe.choose_resources(
            spec, data_root, data_name, reprobe=reprobe, mode=resources_mode, default_resources=resources,
            gpus_per_trial=gpus_per_trial, max_concurrent=max_concurrent, log=log,
        )  # fmt: skip
        for line in choice.lines():
            log(line)
        spec, resources = resource_probe.apply_choice(spec, choice), choice.resources
        plan = _live_plan(spec, uri, data_root, sweep_dir, reuse, share, log)
        tracker = SweepTracker(uri)
        exp_id = tracker.experiment(spec.file.name, spec.file.description)
        parent = tracker.start_parent(
            exp_id, spec.file.name, spec.text, spec.planned(), extra_tags={STORAGE: str(exp_path)}
        )
        resource_probe.record(tracker, parent, choice, log)
        state = SweepState(
            name=spec.file.name,
            spec_source=str(Path(spec.source).resolve()),
            spec_text=spec.text,
            tracking_uri=uri,
            experiment_id=exp_id,
            parent_run_id=parent,
            storage_path=storage_path,
            experiment_path=str(exp_path),
            data_root=data_root,
            data_name=data_name,
            resources=resources,
            max_concurrent=max_concurrent or spec.file.max_concurrent or choice.max_concurrent,
            checkpoint_every=spec.file.checkpoint.every,
            num_trials=spec.num_trials,
            planned=spec.planned(),
            shared_dir=str(sweep_dir / SHARED_DIR),
            sharing=plan.summary if plan is not None else {},
        )
        state.write(sweep_dir)
        log(
            f"sweep {spec.file.name}: {spec.num_trials} trial(s), {resources['cpu']:g} CPU + {resources['gpu']:g} GPU "
            f"each, max_concurrent={state.max_concurrent or 'auto'}, max_failures={spec.file.max_failures}; storage "
            f"{exp_path}; MLflow {uri} (experiment {spec.file.name}, parent run {parent})"
        )
        from ray import tune

        tuner = tune.Tuner(
            ray_tune.trainable(state.context(), resources, trial_fn),
            param_space=ray_tune.param_space(spec) if plan is None else {},
            tune_config=ray_tune.tune_config(spec, state.max_concurrent, plan and plan.searcher()),
            run_config=ray_tune.run_config(spec, storage_path, verbose),
        )
    except BaseException as e:
        if parent is not None:  # never leave a parent run RUNNING for a sweep that did not start
            try:
                tracker.fail_parent(parent, f"{type(e).__name__}: {e}")  # type: ignore[union-attr]
            except Exception:
                pass
        ray_tune.shutdown_ray(started)
        raise
    return _fit_and_finish(tuner, state, sweep_dir, t0, log, started)


SHARED_DIR = "shared"  # producers' checkpoints for the trials that start from them


class _Plan:
    """A sweep's live plan and what it saves compared with training every trial alone."""

    def __init__(self, live: Any, summary: dict[str, Any]) -> None:
        self.live, self.summary = live, summary

    def searcher(self) -> Any:
        from .live_plan import LivePlanSearcher

        return LivePlanSearcher(self.live)


def _live_plan(
    spec: Any, uri: str, data_root: str, sweep_dir: Path, reuse: bool, share: bool, log: Log
) -> _Plan | None:
    """Shared training for a grid sweep (a search samples its trials and ASHA stops them
    early: those run every trial alone, as Ray plans them)."""
    if spec.search is not None or spec.scheduler is not None:
        return None
    from .live_plan import LivePlan
    from .shared_plan import dataset_fingerprint, keys_of, plan_cost, plan_sharing

    fp = dataset_fingerprint(spec.dataset, data_root)
    reusable: dict[str, str] = {}
    if reuse:
        from ..mlflow_log.reuse import find_reusable

        try:
            reusable = find_reusable(uri, {keys_of(t.config_dict, fp).identity for t in spec.trials})
        except Exception as e:
            raise SweepError(
                f"cannot look up runs to reuse in the tracking store {uri} ({type(e).__name__}: {e}); "
                "fix the store or pass --no-reuse"
            ) from None
    alone = plan_sharing(spec.trials, fp)
    steps = plan_sharing(spec.trials, fp, reusable, share=share)
    cost = plan_cost(alone, steps)
    summary = {
        "trial_epochs_alone": cost.naive,
        "trial_epochs_shared": cost.shared,
        "trial_epochs_after_reuse": cost.after_reuse,
        "reused_trials": cost.reused_trials,
        "steps": {n: s.to_record() for n, s in steps.items()},
    }
    log(
        f"shared training{'' if share else ' OFF (--no-sharing)'}: {cost.naive} trial-epochs if every trial "
        f"trained alone, {cost.shared} after sharing, "
        f"{cost.after_reuse} to train"
        + (f" ({cost.reused_trials} trial(s) reused from the tracking store)" if reuse else " (--no-reuse)")
    )
    for n, s in steps.items():
        if s.reuse_run:
            log(f"  {n}: reuses FINISHED run {s.reuse_run}")
        elif s.start_from:
            what = "finishes from" if s.start_epoch == s.keys.total_epochs else "starts from"
            log(f"  {n}: {what} {s.start_from} at epoch {s.start_epoch}/{s.keys.total_epochs}")
    records = [{**t.to_record(), "share": steps[t.name].to_record()} for t in spec.trials]
    policy = None
    if spec.file.adaptive is not None:
        from .adaptive_seeds import AdaptiveSeedsPolicy

        a = spec.file.adaptive
        policy = AdaptiveSeedsPolicy(
            spec.trials, a.metric, a.max, spec.file.reference, "preset" in spec.grid, fp, str(sweep_dir)
        )
        log(
            f"adaptive seeds: {a.initial} seed(s) each, up to {a.max} where a comparison is not resolved on "
            f"{a.metric}: " + ", ".join(f"{o} vs {r}" for o, r in policy.pairs.items())
        )
    return _Plan(LivePlan(records, sweep_dir / SHARED_DIR, policy), summary)


def _check_can_start(name: str, sweep_dir: Path, exp_path: Path, fresh: bool) -> None:
    if not (sweep_dir / SWEEP_FILE).exists():
        return
    if not fresh:
        raise SweepError(
            f"sweep {name} already has state in {sweep_dir}: continue it with "
            f"`compact-reid sweep resume {sweep_dir}`, start over with --fresh (the old "
            "folder is kept under a timestamped name), or pass another --storage"
        )
    if str(exp_path) != str(sweep_dir):
        raise SweepError(
            f"--fresh: the Ray state of {name} is at {exp_path}, not a local folder; pass another --storage instead"
        )


def resume_sweep(
    name_or_path: str,
    address: str | None = None,
    runs_dir: str | os.PathLike[str] = "runs",
    verbose: int = 1,
    log: Log = print,
    trial_fn: Callable[..., None] | None = None,
) -> SweepOutcome:
    """Continue a sweep from its Ray state: unfinished and errored trials run on from their
    checkpoints (their MLflow runs continue), finished trials are not re-run. Each trial's
    record (and so its config) comes back from Ray's own state."""
    from ray import tune

    from ..mlflow_log import SweepTracker, check_tracking_uri

    t0 = time.perf_counter()
    sweep_dir = find_sweep(name_or_path, runs_dir)
    state = SweepState.read(sweep_dir)
    if not tune.Tuner.can_restore(state.experiment_path):
        raise SweepError(
            f"{state.experiment_path}: no Ray Tune state to resume (the driver stopped before Ray "
            "saved any); start over with `compact-reid sweep run SPEC --fresh`"
        )
    ray_tune.check_address(address)
    log(f"tracking: {check_tracking_uri(state.tracking_uri)}")
    spec = parse_text(state.spec_text, state.spec_source, check_paths=False)
    if spec.dataset.is_synthetic and not (Path(state.data_root) / "synth.json").is_file():
        state.data_root, state.data_name = prepare_data(spec, sweep_dir, log)
    started = ray_tune.init_ray(address, log)
    try:
        check_nodes_see(sweep_folders(state.storage_path, sweep_dir, spec.dataset, state.data_root), log)
        SweepTracker(state.tracking_uri).reopen_parent(state.parent_run_id)
        state.resumed += 1
        state.write(sweep_dir)
        log(f"sweep {state.name}: resuming from {state.experiment_path} (MLflow parent run {state.parent_run_id})")
        tuner = tune.Tuner.restore(
            state.experiment_path,
            ray_tune.trainable(state.context(), state.resources, trial_fn),
            resume_unfinished=True,
            resume_errored=True,
        )
    except BaseException:
        ray_tune.shutdown_ray(started)
        raise
    return _fit_and_finish(tuner, state, sweep_dir, t0, log, started)


def _fit_and_finish(
    tuner: Any, state: SweepState, sweep_dir: Path, t0: float, log: Log, started_ray: bool
) -> SweepOutcome:
    from ..mlflow_log import SweepTracker

    tracker = SweepTracker(state.tracking_uri)
    try:
        try:
            results = tuner.fit()
        except KeyboardInterrupt:
            log(f"interrupted: the sweep stays resumable with `compact-reid sweep resume {state.name}`")
            raise
        _record_added_trials(state, sweep_dir, tracker, log)
        outcomes, rows, interrupted = trial_rows(ray_trials(results.experiment_path, results.filesystem))
        counts = tracker.finalize(state.parent_run_id, state.experiment_id, outcomes, end_parent=not interrupted)
        wall = time.perf_counter() - t0
        out = SweepOutcome(
            state.name, str(sweep_dir), state.parent_run_id, state.tracking_uri, rows, wall, interrupted, counts
        )
        _save_summary(out, tracker, sweep_dir, log)
        log("")
        log(format_table(rows))
        failed = sum(1 for r in rows if r["status"] == "ERROR")
        log(
            f"sweep {state.name}: {len(rows)} trial(s), {failed} failed, wall {wall:.1f}s; "
            f"MLflow {state.tracking_uri} (parent run {state.parent_run_id})"
            + (f"; INTERRUPTED: resume with `compact-reid sweep resume {state.name}`" if interrupted else "")
        )
        return out
    finally:
        ray_tune.shutdown_ray(started_ray)


def _record_added_trials(state: SweepState, sweep_dir: Path, tracker: Any, log: Log) -> None:
    """Trials adaptive seeds added join the planned list (sweep.json, the parent's trials.json)."""
    from ..mlflow_log.names import TRIALS_ARTIFACT
    from .adaptive_seeds import read_added

    have = {t["trial_name"] for t in state.planned}
    added = [t for t in read_added(sweep_dir) if t["trial_name"] not in have]
    if not added:
        return
    state.planned = state.planned + added
    state.num_trials = len(state.planned)
    state.write(sweep_dir)
    try:
        tracker.log_parent_json(state.parent_run_id, state.planned, TRIALS_ARTIFACT)
    except Exception as e:  # never lose the sweep over an artifact
        log(f"warning: could not update trials.json: {e}")


def _save_summary(out: SweepOutcome, tracker: Any, sweep_dir: Path, log: Log) -> None:
    summary = out.to_dict()
    try:
        (sweep_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    except OSError:
        pass
    try:
        tracker.log_parent_json(out.parent_run_id, summary, SWEEP_SUMMARY_ARTIFACT)
    except Exception as e:  # never lose the sweep over a summary artifact
        log(f"warning: could not log sweep_summary.json: {e}")
