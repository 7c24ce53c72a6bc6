"""Everything the runner hands to Ray Tune: cluster, resources, param space, configs.

Ray's `config` of a trial is `{"trial": Trial}` (trial.py: the frozen record with its
resolved TrainConfig). A grid sweep is `tune.grid_search` over the trials (or the live
plan's Searcher releasing them); a search sweep is ONE template trial plus `"sampled"`,
Tune's samplers keyed by dotted config path, which Optuna fills in and the trainable
applies with `Trial.sampled`. The per-trial resources rule and the precedence of
max_concurrent are written here once (the resource probe uses them too).
"""

from __future__ import annotations

import logging
import math
import os
import subprocess
from typing import Any, Callable, Mapping

from ..storage import StorageURI
from .errors import SweepError
from .spec import SweepSpec
from .spec_models import ResourcesSection
from .sweep_folder import TrialContext
from .trial import trial_dirname_creator, trial_name_creator


def init_ray(address: str | None, log: Callable[[str], None] = print) -> bool:
    """Join a cluster (address / RAY_ADDRESS) or start a lean local instance; True when
    this process started Ray (and should shut it down)."""
    # Before `import ray`: Ray reads some of these (RAY_DEDUP_LOGS) when it is imported.
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    # Checkpointing every (short) epoch forces frequent experiment snapshots: expected here.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # Ray's classic output engine: it takes the sweep's own console (console.py, run_config)
    # instead of printing each trial's whole config and a TensorBoard hint.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # No per-trial result.json / progress.csv / TensorBoard files: MLflow records every epoch.
    # They grew with trials x epochs, were re-uploaded with every experiment snapshot, and the
    # TensorBoard logger imported torch into the driver (+300 MB).
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    # ... so the analysis Tuner.fit builds at the end would warn, per trial, that they are missing.
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    import ray

    if ray.is_initialized():
        return False
    addr = address or os.environ.get("RAY_ADDRESS")
    if addr and addr != "local":
        log(f"ray: joining the cluster at {addr}")
        try:
            ray.init(address=addr, log_to_driver=True, runtime_env=worker_runtime_env())
        except Exception as e:  # ConnectionError, auth errors, version mismatch...
            first = str(e).strip().splitlines()[0] if str(e).strip() else ""
            raise SweepError(
                f"cannot join the Ray cluster at {addr} ({type(e).__name__}: {first}); check "
                "--address / RAY_ADDRESS (and RAY_AUTH_TOKEN for clusters with token "
                "authentication)"
            ) from None
        return True
    _watch_local_ray()  # before ray.init: a driver killed while Ray starts leaves nothing either
    try:
        ray.init(
            address="local",
            num_cpus=os.cpu_count() or 1,
            include_dashboard=False,
            log_to_driver=True,
            object_store_memory=256 * 1024 * 1024,
            configure_logging=True,
            logging_level="warning",
            runtime_env=worker_runtime_env(),
        )
    except BaseException:
        shutdown_ray(False)
        raise
    return True


def worker_runtime_env() -> dict[str, Any]:
    """The trial workers' environment. glibc gives each thread that allocates its own malloc
    arena (up to 8 per core), and a reused worker runs each trial on a new thread: rehearsal
    workers held 80 arena heaps of 64 MB (5.8 GB resident). Two arenas: 1.8 GB."""
    return {"env_vars": {"MALLOC_ARENA_MAX": os.environ.get("MALLOC_ARENA_MAX", "2")}}


_WATCHER: subprocess.Popen | None = None


def _watch_local_ray() -> None:
    """Ray's own processes of a local instance (GCS, raylet, agents, trial workers and what
    the trials start): ended with this driver even when it is SIGKILLed. Ray ties GCS and
    raylet to the driver, but its agents outlived a killed driver by about a minute; the
    watcher (process_tether, --watch) ends them all within seconds."""
    global _WATCHER
    from process_tether import watcher

    # stdout/stderr inherited: it prints nothing, unless it fails
    _WATCHER = subprocess.Popen(watcher(), stdin=subprocess.DEVNULL, start_new_session=True)


def check_address(address: str | None, timeout: float = 5.0) -> None:
    """Refuse a cluster address nothing answers on, before anything is created: ray.init
    itself retries an unreachable GCS for minutes. 'auto', 'local' and unset are Ray's to resolve."""
    import socket

    addr = address or os.environ.get("RAY_ADDRESS")
    if not addr or addr in ("auto", "local"):
        return
    hostport = addr.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise SweepError(
            f"--address {addr!r}: expected HOST:PORT (the head's GCS port, 6379 by default), ray://HOST:PORT or auto"
        )
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as e:
        raise SweepError(
            f"cannot reach the Ray cluster at {addr} ({e}); is `ray start --head` running there, "
            "and is the address right (--address / RAY_ADDRESS)?"
        ) from None


def shutdown_ray(started: bool) -> None:
    global _WATCHER
    if started:
        import ray

        ray.shutdown()
    if _WATCHER is not None:  # Ray ended its processes itself
        _WATCHER.terminate()
        try:
            _WATCHER.wait(10)
        except subprocess.TimeoutExpired:
            _WATCHER.kill()
        _WATCHER = None


def resources_rule(
    cpus: float, gpus: float, spec_resources: ResourcesSection, gpus_per_trial: float | None
) -> dict[str, float]:
    """Per-trial resources where `cpus`/`gpus` are at hand (a cluster, or one kind of node):
    `--gpus-per-trial`, else the spec's, else 1 GPU where there are GPUs (with 1-4 CPUs of
    the GPU's share for its data loading), else 1 CPU."""
    gpu = gpus_per_trial if gpus_per_trial is not None else spec_resources.gpu
    if gpu is None:
        gpu = 1.0 if gpus >= 1 else 0.0
    cpu = spec_resources.cpu
    if cpu is None:
        cpu = float(max(1, min(4, math.floor(cpus / max(gpus, 1) * gpu)))) if gpu > 0 else 1.0
    return {"cpu": float(cpu), "gpu": float(gpu)}


def trial_resources(spec: SweepSpec, gpus_per_trial: float | None) -> dict[str, float]:
    """`resources_rule` on the connected Ray cluster; refused when no node could run a trial."""
    import ray

    total = ray.cluster_resources()
    resources = resources_rule(total.get("CPU", 1), total.get("GPU", 0), spec.file.resources, gpus_per_trial)
    if resources["gpu"] > total.get("GPU", 0) + 1e-9:
        raise SweepError(
            f"trials need {resources['gpu']} GPU(s) each but the cluster has {total.get('GPU', 0)}; "
            "lower resources.gpu / --gpus-per-trial"
        )
    if resources["cpu"] > total.get("CPU", 0) + 1e-9:
        raise SweepError(f"trials need {resources['cpu']} CPU(s) each but the cluster has {total.get('CPU', 0)}")
    return resources


def max_concurrent(option: int | None, spec: SweepSpec, probed: int | None = None) -> int | None:
    """Trials at once: `--max-concurrent`, else the spec's, else the resource probe's choice,
    else None (as many as the resources allow)."""
    return option or spec.file.max_concurrent or probed


def param_space(spec: SweepSpec) -> dict[str, Any]:
    """Ray's param space when no live plan releases the trials: the grid's trials, or a
    search's template trial and Tune's samplers (`"sampled"`, keyed by dotted config path)."""
    from ray import tune

    if spec.search is None:
        return {"trial": tune.grid_search(list(spec.trials))}
    domains = {
        "uniform": lambda p: tune.uniform(p.low, p.high),
        "loguniform": lambda p: tune.loguniform(p.low, p.high),
        "int": lambda p: tune.randint(int(p.low), int(p.high) + 1),
        "choice": lambda p: tune.choice(list(p.values)),
    }
    return {"trial": spec.trials[0], "sampled": {key: domains[p.type](p) for key, p in spec.search.space.items()}}


def tune_config(spec: SweepSpec, concurrent: int | None, live_plan: Any = None) -> Any:
    """`live_plan`: a LivePlanSearcher (shared training, adaptive seeds) releasing the grid's
    trials as their inputs appear; None: Ray's grid (or the search) plans every trial."""
    from ray import tune

    # reuse_actors: a finished trial's worker process runs the next trial of the same
    # resources, so torch / mlflow / the data listing code are imported once per worker.
    kwargs: dict[str, Any] = {
        "trial_name_creator": trial_name_creator,
        "trial_dirname_creator": trial_dirname_creator,
        "reuse_actors": True,
    }
    if live_plan is not None:
        kwargs.update(search_alg=live_plan, num_samples=-1)  # the plan says when it is FINISHED
        if concurrent:
            kwargs["max_concurrent_trials"] = concurrent
    elif spec.search is not None:
        from ray.tune.search import ConcurrencyLimiter
        from ray.tune.search.optuna import OptunaSearch

        search = spec.search
        searcher: Any = OptunaSearch(metric=search.metric, mode=search.mode, seed=search.seed)
        if concurrent:
            searcher = ConcurrencyLimiter(searcher, max_concurrent=concurrent)
        kwargs.update(search_alg=searcher, num_samples=search.num_samples)
    elif concurrent:
        kwargs["max_concurrent_trials"] = concurrent
    if spec.scheduler is not None:
        from ray.tune.schedulers import ASHAScheduler

        scheduler = spec.scheduler
        kwargs["scheduler"] = ASHAScheduler(
            time_attr="training_iteration",
            metric=scheduler.metric,
            mode=scheduler.mode,
            max_t=scheduler.max_t,
            grace_period=scheduler.grace_period,
            reduction_factor=scheduler.reduction_factor,
        )
    return tune.TuneConfig(**kwargs)


def run_config(campaign: Any, root: StorageURI, verbose: int, state: Any) -> Any:
    """Tune's run config for a campaign (one spec or several). Object storage gets the
    filesystem storage/uri.py builds (endpoint from the environment, long retries), which Ray
    sends to every node without credentials."""
    from ray import tune

    from .console import ConsolePlan, SweepConsole
    from .verdicts import verdicts_for

    members = campaign.members
    plan = ConsolePlan(
        campaign.name,
        trials=len(state.planned),
        epochs_to_train=(state.sharing or {}).get("trial_epochs_after_reuse"),
        logs=root.display if verbose < 2 else "",  # verbose 2: the trials' lines are on the console
        verdicts=verdicts_for(members),
    )
    return tune.RunConfig(
        name=campaign.name,
        storage_path=root.fs_path,
        storage_filesystem=None if root.is_local else root.filesystem(),
        failure_config=tune.FailureConfig(max_failures=max(spec.file.max_failures for spec in members)),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=max(spec.file.checkpoint.num_to_keep for spec in members)),
        verbose=min(verbose, 1),
        progress_reporter=SweepConsole(plan, verbose=verbose),  # console.py
    )


def trainable(ctx: TrialContext, resources: Mapping[str, float], trial_fn: Callable[..., None] | None = None) -> Any:
    """`trial_fn` (default: the production `run_trial`) with the sweep context and resources;
    tests pass `orchestration.sweep.testing.fault_injecting_trial(...)`."""
    from ray import tune

    if trial_fn is None:
        from .trainable import run_trial

        trial_fn = run_trial
    return tune.with_resources(tune.with_parameters(trial_fn, ctx=ctx), dict(resources))
