"""Run and resume sweeps with Ray Tune (MLflow through orchestration.mlflow_log).

`run_sweep(spec_paths, SweepOptions(...))`: one spec, or several as one campaign
(campaign.py); `--rehearse` runs the same plan at tiny scale (rehearsal.py). It validates and
expands the specs, checks the storage and the tracking URI, starts or joins Ray (every node
must reach the storage), prepares each spec's data, takes the resources (the built-in rules;
the resource probe's choice only with `resources: auto`), plans shared training across all
the specs, creates each spec's experiment and parent run and the sweep's `sweep.json`, runs
the Tuner, then settles the runs' states (finish.py). A failing trial never takes the sweep
down; `resume_sweep` continues a stopped one. The steps in full: docs/ARCHITECTURE.md,
"Module notes: orchestration/sweep/runner.py".
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from reid_core.config import ConfigError

from ..mlflow_log.names import STORAGE
from ..storage import StorageURI
from ..storage.check import check_storage
from ..storage.store import Store
from . import ray_tune
from .campaign import Campaign, load_campaign
from .errors import SweepError
from .finish import SweepOutcome, fit_and_finish
from .live_plan import LivePlanSearcher, plan_campaign
from .spec import parse_text
from .storage_check import check_nodes_see, sweep_folders
from .sweep_data import data_location, prepare_data
from .sweep_folder import MemberState, SweepState, has_state, open_sweep, storage_root

__all__ = ["SweepError", "SweepOptions", "SweepOutcome", "run_sweep", "resume_sweep"]

Log = Callable[[str], None]


@dataclass(frozen=True)
class SweepOptions:
    """How a sweep runs: `sweep run` / `sweep resume`'s options, with their defaults.

    `name`: a campaign's name (default: a single spec's own, else `campaign-<hash>`).
    `fresh`: a sweep that already has state is started over (its old local folder renamed
    `<folder>-<timestamp>`) instead of refused. `reuse`: trials identical to FINISHED runs in
    the tracking store are copied, not trained. `share`: trials start from the training they
    share with others. `resources`: 'auto' (the resource probe's choice, cached) or 'defaults'
    (the built-in rules); None: the spec's. `rehearse`: the same plan at tiny scale on
    generated data, then every table (`tables_out`, default ./tables). `trial_fn`: the
    trainable (tests pass a fault-injecting wrapper). `verbose`: 2 shows each trial's own
    lines (its epochs, MLflow's notices) on the console, not only in its log file."""

    address: str | None = None
    gpus_per_trial: float | None = None
    max_concurrent: int | None = None
    tracking_uri: str | None = None
    storage: str | None = None
    runs_dir: str | os.PathLike[str] = "runs"
    name: str | None = None
    fresh: bool = False
    reuse: bool = True
    share: bool = True
    resources: str | None = None
    reprobe: bool = False
    rehearse: bool = False
    tables_out: str | os.PathLike[str] | None = None
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


def load(spec_paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], options: SweepOptions) -> Campaign:
    """The campaign of `spec_paths`, at rehearsal scale with `options.rehearse`."""
    paths = [spec_paths] if isinstance(spec_paths, (str, os.PathLike)) else list(spec_paths)
    if not options.rehearse:
        return load_campaign(paths, options.name)
    from .rehearsal import REHEARSAL_SUFFIX, rehearsal_specs

    name = f"{options.name}{REHEARSAL_SUFFIX}" if options.name else None  # never the real run's state
    return load_campaign(paths, name, specs=rehearsal_specs(paths))


def _rehearsal_line(campaign: Campaign) -> str:
    from .rehearsal import REHEARSAL_DATA

    height, width = REHEARSAL_DATA["size"]
    trials = sum(len(spec.trials) for spec in campaign.members)
    return (
        f"rehearsal: {trials} trial(s), the real plan at tiny scale, on generated data in Market-1501 layout "
        f"({REHEARSAL_DATA['ids']} identities, {REHEARSAL_DATA['train_ids']} trained, {height}x{width}) standing in "
        f"for every spec's dataset; experiments " + ", ".join(spec.file.name for spec in campaign.members)
    )


def run_sweep(
    spec_paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], options: SweepOptions = SweepOptions()
) -> SweepOutcome:
    """Validate, prepare and run a sweep or campaign (module docstring); returns its outcome.
    A sweep that already has state is refused (resume it), unless `options.fresh`."""
    from ..mlflow_log import SweepTracker, check_tracking_uri, resolve_tracking_uri

    began = time.perf_counter()
    log = options.log
    campaign = load(spec_paths, options)
    if not campaign.single:
        log(f"campaign {campaign.name}: " + ", ".join(spec.file.name for spec in campaign.members))
    if options.rehearse:
        log(_rehearsal_line(campaign))
    root = check_storage(storage_root(options.storage, options.runs_dir), log=log)  # before anything is created
    store = Store(root, log=log)
    _check_can_start(campaign.name, store, options.fresh)
    ray_tune.check_address(options.address)  # an unreachable cluster is refused before the store is touched
    uri = resolve_tracking_uri(options.tracking_uri, options.runs_dir)
    log(f"tracking: {check_tracking_uri(uri)}")  # refused credentials stop here: no Ray, no folder, no run
    started = ray_tune.init_ray(options.address, log)
    tracker, parents = None, []
    try:
        first = campaign.members[0]
        resources = ray_tune.trial_resources(first, options.gpus_per_trial)
        if options.fresh and has_state(store, campaign.name):
            _set_aside(root, campaign.name, log)
        folders = [f for spec in campaign.members for f in sweep_folders(root, data_location(spec, root))]
        check_nodes_see(list({(f.path, f.uri): f for f in folders}.values()), log)  # before any folder or run
        data = {spec.file.name: prepare_data(spec, root, options.runs_dir, log) for spec in campaign.members}
        campaign, resources, concurrent, choice = _resources(campaign, resources, data[first.file.name], options)
        live_plan, sharing = plan_campaign(campaign, data, uri, store, options.reuse, options.share, log)
        tracker = SweepTracker(uri)
        members = []
        for spec in campaign.members:
            experiment_id = tracker.experiment(spec.file.name, spec.file.description)
            experiment = root.join(campaign.name).display
            parent = tracker.start_parent(
                experiment_id, spec.file.name, spec.text, spec.planned(), extra_tags={STORAGE: experiment}
            )
            parents.append(parent)
            if choice is not None:
                from ..probe import record

                record(tracker, parent, choice, log)
            source = data[spec.file.name]
            members.append(
                MemberState(
                    name=spec.file.name,
                    spec_source=str(Path(spec.source).resolve()),
                    spec_text=spec.text,
                    experiment_id=experiment_id,
                    parent_run_id=parent,
                    data_source=source.source,
                    data_name=source.name,
                    data_sha256=source.sha256,
                    checkpoint_every=spec.file.checkpoint.every,
                    planned=spec.planned(),
                )
            )
        state = SweepState(
            name=campaign.name,
            tracking_uri=uri,
            storage=str(root),
            resources=resources,
            max_concurrent=concurrent,
            members=members,
            sharing=sharing,
            rehearsal=options.rehearse,
        )
        state.write(store, options.runs_dir)
        trials = sum(spec.num_trials for spec in campaign.members)
        log(
            f"sweep {campaign.name}: {trials} trial(s), {resources['cpu']:g} CPU + {resources['gpu']:g} GPU each, "
            f"max_concurrent={concurrent or 'auto'}; storage {state.experiment.display}; MLflow {uri}: "
            + state.tracking_label
        )
        from ray import tune

        tuner = tune.Tuner(
            ray_tune.trainable(state.context(trial_logs=options.verbose < 2), resources, options.trial_fn),
            param_space=ray_tune.param_space(first) if live_plan is None else {},
            tune_config=ray_tune.tune_config(first, concurrent, live_plan and LivePlanSearcher(live_plan)),
            run_config=ray_tune.run_config(campaign, root, options.verbose, state),
        )
    except BaseException as e:
        for parent in parents:  # never leave a parent run RUNNING for a sweep that did not start
            try:
                tracker.fail_parent(parent, f"{type(e).__name__}: {e}")  # type: ignore[union-attr]
            except Exception:
                pass
        ray_tune.shutdown_ray(started)
        raise
    return fit_and_finish(tuner, state, store, options, began, started)


def _resources(
    campaign: Campaign, resources: dict[str, float], data: Any, options: SweepOptions
) -> tuple[Campaign, dict[str, float], int | None, Any]:
    """(campaign, per-trial resources, max_concurrent, the probe's choice or None): the built-in
    rules, or with `resources: auto` the resource probe's choice (cached per machine; the
    first spec's first trial is what is measured)."""
    first = campaign.members[0]
    mode = options.resources or first.file.resources.mode
    if mode != "auto":
        return campaign, resources, ray_tune.max_concurrent(options.max_concurrent, first), None
    from ..probe import apply_choice, choose_resources

    choice = choose_resources(
        first,
        data.root,
        data.name,
        default_resources=resources,
        reprobe=options.reprobe,
        gpus_per_trial=options.gpus_per_trial,
        max_concurrent=options.max_concurrent,
        log=options.log,
    )
    for line in choice.lines():
        options.log(line)
    concurrent = ray_tune.max_concurrent(options.max_concurrent, first, choice.max_concurrent)
    members = tuple(apply_choice(spec, choice) for spec in campaign.members)
    return Campaign(campaign.name, members), choice.resources, concurrent, choice


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
    for member in state.members:
        spec = parse_text(member.spec_text, member.spec_source, check_paths=False)
        if spec.dataset.is_synthetic and "://" not in member.data_source and not Path(member.data_source).is_dir():
            member.data_source = prepare_data(spec, root, options.runs_dir, log).source  # generated data went missing
    started = ray_tune.init_ray(options.address, log)
    try:
        folders = [f for member in state.members for f in sweep_folders(root, member.data_source)]
        check_nodes_see(list({(f.path, f.uri): f for f in folders}.values()), log)
        tracker = SweepTracker(state.tracking_uri)
        for member in state.members:
            tracker.reopen_parent(member.parent_run_id)
        state.resumed += 1
        state.write(store, options.runs_dir)
        log(f"sweep {state.name}: resuming from {experiment.display} (MLflow: {state.tracking_label})")
        tuner = tune.Tuner.restore(
            experiment.fs_path,
            ray_tune.trainable(state.context(trial_logs=options.verbose < 2), state.resources, options.trial_fn),
            resume_unfinished=True,
            resume_errored=True,
            storage_filesystem=filesystem,
        )
    except BaseException:
        ray_tune.shutdown_ray(started)
        raise
    return fit_and_finish(tuner, state, store, options, began, started)
