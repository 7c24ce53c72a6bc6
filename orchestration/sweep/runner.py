"""Run and resume sweeps with Ray Tune (MLflow through orchestration.mlflow_log).

`run_sweep(spec_path, SweepOptions(...))`: validate and expand the spec, check the tracking
URI, start or join Ray (every node must see the storage), prepare the data, take the
resources (the built-in rules; the resource probe's choice only with `resources: auto`),
plan shared training, create the parent run and `sweep.json`, run the Tuner, then settle
the runs' states. A failing trial never takes the sweep down; `resume_sweep` continues a
stopped one. The steps in full: docs/ARCHITECTURE.md, "Module notes: orchestration/sweep/runner.py".
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from reid_core.config import ConfigError

from ..mlflow_log.names import STORAGE, SWEEP_SUMMARY_ARTIFACT, TRIALS_ARTIFACT
from ..storage import StorageError, StorageURI
from ..storage.check import check_storage
from ..storage.store import Store
from . import ray_tune
from .checkpoints import SharedCheckpoints
from .errors import SweepError
from .live_plan import LivePlan, LivePlanSearcher
from .spec import SweepSpec, load_spec, parse_text
from .storage_check import check_nodes_see, sweep_folders
from .sweep_data import data_location, prepare_data
from .sweep_folder import SweepState, has_state, open_sweep, storage_root
from .trial_status import SUMMARY_FILE, format_table, ray_trials, trial_rows

__all__ = ["SweepError", "SweepOptions", "SweepOutcome", "run_sweep", "resume_sweep"]

Log = Callable[[str], None]


@dataclass(frozen=True)
class SweepOptions:
    """How a sweep runs: `sweep run` / `sweep resume`'s options, with their defaults.

    `fresh`: a sweep that already has state is started over (its old local folder renamed
    `<folder>-<timestamp>`) instead of refused. `reuse`: trials identical to FINISHED runs in
    the tracking store are copied, not trained. `share`: trials start from the training they
    share with others. `resources`: 'auto' (the resource probe's choice, cached) or 'defaults'
    (the built-in rules); None: the spec's. `trial_fn`: the trainable (tests pass a
    fault-injecting wrapper)."""

    address: str | None = None
    gpus_per_trial: float | None = None
    max_concurrent: int | None = None
    tracking_uri: str | None = None
    storage: str | None = None
    runs_dir: str | os.PathLike[str] = "runs"
    fresh: bool = False
    reuse: bool = True
    share: bool = True
    resources: str | None = None
    reprobe: bool = False
    verbose: int = 1
    log: Log = print
    trial_fn: Callable[..., None] | None = None

    def __post_init__(self) -> None:
        if self.gpus_per_trial is not None and self.gpus_per_trial < 0:
            raise ConfigError(f"--gpus-per-trial: must be >= 0, got {self.gpus_per_trial}")
        if self.max_concurrent is not None and self.max_concurrent < 1:
            raise ConfigError(f"--max-concurrent: must be >= 1, got {self.max_concurrent}")
        if self.resources not in (None, "auto", "defaults"):
            raise ConfigError(f"--resources: one of auto, defaults, got {self.resources!r}")


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
        return bool(self.trials) and all(row["status"] == "ERROR" for row in self.trials)

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


def run_sweep(spec_path: str | os.PathLike[str], options: SweepOptions = SweepOptions()) -> SweepOutcome:
    """Validate, prepare and run a sweep (module docstring); returns its outcome. A sweep
    that already has state is refused (resume it), unless `options.fresh`."""
    from ..mlflow_log import SweepTracker, check_tracking_uri, resolve_tracking_uri

    began = time.perf_counter()
    log = options.log
    spec = load_spec(spec_path)
    root = check_storage(storage_root(options.storage, options.runs_dir), log=log)  # before anything is created
    store = Store(root, log=log)
    _check_can_start(spec.file.name, store, options.fresh)
    ray_tune.check_address(options.address)  # an unreachable cluster is refused before the store is touched
    uri = resolve_tracking_uri(options.tracking_uri, options.runs_dir)
    log(f"tracking: {check_tracking_uri(uri)}")  # refused credentials stop here: no Ray, no folder, no run
    started = ray_tune.init_ray(options.address, log)  # before touching any folder: a failed join changes nothing
    tracker, parent = None, None
    try:
        resources = ray_tune.trial_resources(spec, options.gpus_per_trial)
        if options.fresh and has_state(store, spec.file.name):
            _set_aside(root, spec.file.name, log)
        check_nodes_see(sweep_folders(root, data_location(spec, root)), log)  # before any folder or run
        data = prepare_data(spec, root, options.runs_dir, log)
        spec, resources, concurrent, choice = _resources(spec, resources, data.root, data.name, options)
        live_plan, sharing = _live_plan(spec, uri, data.root, store, options)
        tracker = SweepTracker(uri)
        experiment_id = tracker.experiment(spec.file.name, spec.file.description)
        parent = tracker.start_parent(
            experiment_id,
            spec.file.name,
            spec.text,
            spec.planned(),
            extra_tags={STORAGE: root.join(spec.file.name).display},
        )
        if choice is not None:
            from ..probe import record

            record(tracker, parent, choice, log)
        state = SweepState(
            name=spec.file.name,
            spec_source=str(Path(spec.source).resolve()),
            spec_text=spec.text,
            tracking_uri=uri,
            experiment_id=experiment_id,
            parent_run_id=parent,
            storage=str(root),
            data_source=data.source,
            data_name=data.name,
            data_sha256=data.sha256,
            resources=resources,
            max_concurrent=concurrent,
            checkpoint_every=spec.file.checkpoint.every,
            num_trials=spec.num_trials,
            planned=spec.planned(),
            sharing=sharing,
        )
        state.write(store, options.runs_dir)
        log(
            f"sweep {spec.file.name}: {spec.num_trials} trial(s), {resources['cpu']:g} CPU + {resources['gpu']:g} GPU "
            f"each, max_concurrent={concurrent or 'auto'}, max_failures={spec.file.max_failures}; storage "
            f"{state.experiment.display}; MLflow {uri} (experiment {spec.file.name}, parent run {parent})"
        )
        from ray import tune

        tuner = tune.Tuner(
            ray_tune.trainable(state.context(), resources, options.trial_fn),
            param_space=ray_tune.param_space(spec) if live_plan is None else {},
            tune_config=ray_tune.tune_config(spec, concurrent, live_plan and LivePlanSearcher(live_plan)),
            run_config=ray_tune.run_config(spec, root, options.verbose),
        )
    except BaseException as e:
        if parent is not None:  # never leave a parent run RUNNING for a sweep that did not start
            try:
                tracker.fail_parent(parent, f"{type(e).__name__}: {e}")  # type: ignore[union-attr]
            except Exception:
                pass
        ray_tune.shutdown_ray(started)
        raise
    return _fit_and_finish(tuner, state, store, options, began, started)


def _resources(
    spec: SweepSpec, resources: dict[str, float], data_root: str, data_name: str, options: SweepOptions
) -> tuple[SweepSpec, dict[str, float], int | None, Any]:
    """(spec, per-trial resources, max_concurrent, the probe's choice or None): the built-in
    rules, or with `resources: auto` the resource probe's choice (cached per machine)."""
    mode = options.resources or spec.file.resources.mode
    if mode != "auto":
        return spec, resources, ray_tune.max_concurrent(options.max_concurrent, spec), None
    from ..probe import apply_choice, choose_resources

    choice = choose_resources(
        spec,
        data_root,
        data_name,
        default_resources=resources,
        reprobe=options.reprobe,
        gpus_per_trial=options.gpus_per_trial,
        max_concurrent=options.max_concurrent,
        log=options.log,
    )
    for line in choice.lines():
        options.log(line)
    concurrent = ray_tune.max_concurrent(options.max_concurrent, spec, choice.max_concurrent)
    return apply_choice(spec, choice), choice.resources, concurrent, choice


def _live_plan(
    spec: SweepSpec, uri: str, data_root: str, store: Store, options: SweepOptions
) -> tuple[LivePlan | None, dict[str, Any]]:
    """(the live plan, what sharing saves) of a grid sweep. A search samples its trials and
    ASHA stops them early: those run every trial alone, as Ray plans them (None)."""
    if spec.search is not None or spec.scheduler is not None:
        return None, {}
    from .sharing import dataset_fingerprint, keys_of, plan_cost, share_training

    log = options.log
    fingerprint = dataset_fingerprint(spec.dataset, data_root)
    reusable: dict[str, str] = {}
    if options.reuse:
        from ..mlflow_log.reuse import find_reusable

        try:
            reusable = find_reusable(uri, {keys_of(t.config, fingerprint).identity for t in spec.trials})
        except Exception as e:
            raise SweepError(
                f"cannot look up runs to reuse in the tracking store {uri} ({type(e).__name__}: {e}); "
                "fix the store or pass --no-reuse"
            ) from None
    # the driver asks often: a store that fails fast, so its own retries say when storage is away
    checkpoints = SharedCheckpoints(Store(store.uri, log=log, attempts=2))
    stored = checkpoints.available(fresh=True) if options.share else set()
    trials = share_training(spec.trials, fingerprint, reusable, share=options.share, stored=stored)
    cost = plan_cost(share_training(spec.trials, fingerprint), trials)
    sharing = {
        "trial_epochs_alone": cost.naive,
        "trial_epochs_shared": cost.shared,
        "trial_epochs_after_reuse": cost.after_reuse,
        "reused_trials": cost.reused_trials,
        "starts": {t.name: t.to_dict()["start"] for t in trials},
    }
    log(
        f"shared training{'' if options.share else ' OFF (--no-sharing)'}: {cost.naive} trial-epochs if every "
        f"trial trained alone, {cost.shared} after sharing, {cost.after_reuse} to train"
        + (f" ({cost.reused_trials} trial(s) reused from the tracking store)" if options.reuse else " (--no-reuse)")
    )
    for t in trials:
        if t.start.reuse_run:
            log(f"  {t.name}: reuses FINISHED run {t.start.reuse_run}")
        elif t.start.epoch:
            what = "finishes from" if t.start.epoch == t.total_epochs else "starts from"
            source = t.start.from_trial or f"the stored checkpoint {t.start.checkpoint}"
            log(f"  {t.name}: {what} {source} at epoch {t.start.epoch}/{t.total_epochs}")
    policy = None
    if spec.file.adaptive is not None:
        from .adaptive_seeds import AdaptiveSeedsPolicy

        adaptive = spec.file.adaptive
        policy = AdaptiveSeedsPolicy(
            trials,
            adaptive.metric,
            adaptive.max,
            spec.file.reference,
            "preset" in spec.grid,
            fingerprint,
            (store, spec.file.name),
        )
        log(
            f"adaptive seeds: {adaptive.initial} seed(s) each, up to {adaptive.max} where a comparison is not "
            f"resolved on {adaptive.metric}: " + ", ".join(f"{o} vs {r}" for o, r in policy.pairs.items())
        )
    return LivePlan(trials, checkpoints, policy), sharing


def _check_can_start(name: str, store: Store, fresh: bool) -> None:
    if not has_state(store, name):
        return
    where = store.describe(name)
    if not fresh:
        raise SweepError(
            f"sweep {name} already has state in {where}: continue it with `compact-reid sweep resume {name}"
            + ("" if store.uri.is_local else f" --storage {store.uri.display}")
            + "`, start over with --fresh (the old folder is kept under a timestamped name), or pass another --storage"
        )
    if not store.uri.is_local:
        raise SweepError(
            f"--fresh: the state of {name} is in {where}, on object storage (nothing is renamed there); "
            "pass another --storage, or remove that prefix first"
        )


def _set_aside(root: StorageURI, name: str, log: Log) -> None:
    """--fresh on local storage: the old experiment folder is kept under a timestamped name."""
    folder = Path(root.path) / name
    old = folder.with_name(f"{name}-{time.strftime('%Y%m%d-%H%M%S')}")
    folder.rename(old)
    log(f"--fresh: the previous state of {name} moved to {old}")


def resume_sweep(name_or_path: str, options: SweepOptions = SweepOptions()) -> SweepOutcome:
    """Continue a sweep from its Ray state: unfinished and errored trials run on from their
    checkpoints (their MLflow runs continue), finished trials are not re-run. Each trial
    (and so its config) comes back from Ray's own state. `options.storage`: where the sweep
    ran, when not the default (another machine needs only the name and the storage URI)."""
    from ray import tune

    from ..mlflow_log import SweepTracker, check_tracking_uri

    began = time.perf_counter()
    log = options.log
    state = open_sweep(name_or_path, options.runs_dir, options.storage)
    root = check_storage(state.root, log=log)
    store = Store(root, log=log)
    experiment = state.experiment
    filesystem = None if root.is_local else root.filesystem()
    if not tune.Tuner.can_restore(experiment.fs_path, storage_filesystem=filesystem):
        raise SweepError(
            f"{experiment.display}: no Ray Tune state to resume (the driver stopped before Ray "
            "saved any); start over with `compact-reid sweep run SPEC --fresh`"
        )
    ray_tune.check_address(options.address)
    log(f"tracking: {check_tracking_uri(state.tracking_uri)}")
    spec = parse_text(state.spec_text, state.spec_source, check_paths=False)
    if spec.dataset.is_synthetic and "://" not in state.data_source and not Path(state.data_source).is_dir():
        state.data_source = prepare_data(spec, root, options.runs_dir, log).source  # generated data went missing
    started = ray_tune.init_ray(options.address, log)
    try:
        check_nodes_see(sweep_folders(root, state.data_source), log)
        SweepTracker(state.tracking_uri).reopen_parent(state.parent_run_id)
        state.resumed += 1
        state.write(store, options.runs_dir)
        log(f"sweep {state.name}: resuming from {experiment.display} (MLflow parent run {state.parent_run_id})")
        tuner = tune.Tuner.restore(
            experiment.fs_path,
            ray_tune.trainable(state.context(), state.resources, options.trial_fn),
            resume_unfinished=True,
            resume_errored=True,
            storage_filesystem=filesystem,
        )
    except BaseException:
        ray_tune.shutdown_ray(started)
        raise
    return _fit_and_finish(tuner, state, store, options, began, started)


def _fit_and_finish(
    tuner: Any, state: SweepState, store: Store, options: SweepOptions, began: float, started_ray: bool
) -> SweepOutcome:
    from ..mlflow_log import SweepTracker

    log = options.log
    tracker = SweepTracker(state.tracking_uri)
    try:
        try:
            results = tuner.fit()
        except KeyboardInterrupt:
            log(f"interrupted: the sweep stays resumable with `compact-reid sweep resume {state.name}`")
            raise
        _record_added_trials(state, store, options.runs_dir, tracker, log)
        outcomes, rows, interrupted = trial_rows(ray_trials(results.experiment_path, results.filesystem))
        counts = tracker.finalize(state.parent_run_id, state.experiment_id, outcomes, end_parent=not interrupted)
        wall = time.perf_counter() - began
        outcome = SweepOutcome(
            state.name,
            state.experiment.display,
            state.parent_run_id,
            state.tracking_uri,
            rows,
            wall,
            interrupted,
            counts,
        )
        _save_summary(outcome, tracker, store, options.runs_dir, log)
        log("")
        log(format_table(rows))
        failed = sum(1 for row in rows if row["status"] == "ERROR")
        log(
            f"sweep {state.name}: {len(rows)} trial(s), {failed} failed, wall {wall:.1f}s; "
            f"MLflow {state.tracking_uri} (parent run {state.parent_run_id})"
            + (f"; INTERRUPTED: resume with `compact-reid sweep resume {state.name}`" if interrupted else "")
        )
        return outcome
    finally:
        ray_tune.shutdown_ray(started_ray)


def _record_added_trials(
    state: SweepState, store: Store, runs_dir: str | os.PathLike[str], tracker: Any, log: Log
) -> None:
    """Trials adaptive seeds added join the planned list (sweep.json, the parent's trials.json)."""
    from .adaptive_seeds import read_added

    have = {t["trial_name"] for t in state.planned}
    added = [t for t in read_added(store, state.name) if t["trial_name"] not in have]
    if not added:
        return
    state.planned = state.planned + added
    state.num_trials = len(state.planned)
    state.write(store, runs_dir)
    try:
        tracker.log_parent_json(state.parent_run_id, state.planned, TRIALS_ARTIFACT)
    except Exception as e:  # never lose the sweep over an artifact
        log(f"warning: could not update trials.json: {e}")


def _save_summary(
    outcome: SweepOutcome, tracker: Any, store: Store, runs_dir: str | os.PathLike[str], log: Log
) -> None:
    summary = outcome.to_dict()
    text = json.dumps(summary, indent=2, default=str) + "\n"
    try:
        store.write_bytes(f"{outcome.name}/{SUMMARY_FILE}", text.encode())
        (Path(runs_dir) / outcome.name).mkdir(parents=True, exist_ok=True)
        (Path(runs_dir) / outcome.name / SUMMARY_FILE).write_text(text)
    except (OSError, StorageError) as e:  # never lose the sweep over a summary file
        log(f"warning: could not write {SUMMARY_FILE}: {e}")
    try:
        tracker.log_parent_json(outcome.parent_run_id, summary, SWEEP_SUMMARY_ARTIFACT)
    except Exception as e:  # never lose the sweep over a summary artifact
        log(f"warning: could not log sweep_summary.json: {e}")
