"""Run, resume and inspect sweeps with Ray Tune (MLflow tracking through tracking.py).

`run_sweep(spec_path, ...)`:
  1. validate the spec (every trial's config), refuse a sweep that already has state;
  2. check the tracking URI (TrackingError and NO runs when unreachable);
  3. check the dataset folder / generate the synthetic dataset (once per sweep);
  4. join a cluster (`--address` or RAY_ADDRESS) or start Ray locally (lean: no dashboard);
  5. MLflow experiment + parent run (spec.yaml, trials.json); write `sweep.json`;
  6. Tuner: one trial per grid point x seed (`tune.grid_search` over the planned trial
     dicts, so names and seeds are exact) or Optuna (+ ASHA) for a `search`; FailureConfig
     retries a failed trial from its last checkpoint;
  7. after fit: child runs still RUNNING whose trial errored -> FAILED, stopped early ->
     KILLED; the parent run FINISHED (FAILED if every trial failed); a summary table.
A failing trial never takes the sweep down. A driver stopped in the middle (Ctrl+C,
crash) leaves the parent run RUNNING: `compact-reid sweep resume NAME` continues (finished
trials are not re-run; errored ones are retried from their checkpoints).

Layout (defaults; `--storage` moves the Ray part):
  runs/mlflow.db, runs/mlartifacts/<sweep>/     MLflow (default tracking URI)
  runs/<sweep>/ray/<sweep>/                    Ray experiment folder (= the sweep folder):
      sweep.json                               what resume/status need (tracking URI, run ids, data)
      synthetic-data/                          the generated dataset (synthetic specs)
      summary.json                             the last summary table
      <trial folders with checkpoints>
With `--storage s3://...` (a cluster), sweep.json and synthetic data stay in runs/<sweep>/.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from reid_core.config import ConfigError
from reid_core.errors import ReIDError

from .spec import SweepSpec, load_spec, parse_text

__all__ = ["SweepError", "SweepOutcome", "run_sweep", "resume_sweep", "sweep_status", "find_sweep",
           "format_table"]

SWEEP_FILE = "sweep.json"


class SweepError(ReIDError, RuntimeError):
    """The sweep cannot start or resume (existing state, missing state, bad paths)."""


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
        return {"name": self.name, "sweep_dir": self.sweep_dir, "parent_run_id": self.parent_run_id,
                "tracking_uri": self.tracking_uri, "wall_seconds": self.wall_seconds,
                "interrupted": self.interrupted, "counts": self.counts, "trials": self.trials}


# ---------------------------------------------------------------------------------
# Paths


def _is_uri(p: str) -> bool:
    return "://" in p


def _storage_and_dir(name: str, storage: str | None, runs_dir: Path) -> tuple[str, Path, Path]:
    """(Ray storage_path, local sweep folder, Ray experiment path as string-able)."""
    if storage and _is_uri(storage):
        if storage.startswith("file://"):
            storage = storage[len("file://"):]
        else:
            return storage.rstrip("/"), (runs_dir / name).resolve(), Path(storage.rstrip("/")) / name
    st = Path(storage).expanduser().resolve() if storage else (runs_dir / name / "ray").resolve()
    return str(st), st / name, st / name


def find_sweep(name_or_path: str, runs_dir: str | os.PathLike[str] = "runs") -> Path:
    """The folder holding sweep.json, from a sweep name or a path (sweep folder, Ray
    storage folder or runs/<name>)."""
    runs = Path(runs_dir)
    p = Path(name_or_path).expanduser()
    candidates: list[Path] = []
    if p.exists():
        candidates += [p, *sorted(p.glob(f"*/{SWEEP_FILE}")), *sorted(p.glob(f"ray/*/{SWEEP_FILE}"))]
    candidates += [runs / name_or_path / "ray" / name_or_path, runs / name_or_path]
    for c in candidates:
        c = c.parent if c.name == SWEEP_FILE else c
        if (c / SWEEP_FILE).is_file():
            return c.resolve()
    raise SweepError(f"{name_or_path}: no sweep found (looked for {SWEEP_FILE} in {p} and "
                     f"{runs / name_or_path / 'ray' / name_or_path}); start one with `compact-reid sweep run SPEC`")


def _load_meta(sweep_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((sweep_dir / SWEEP_FILE).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise SweepError(f"{sweep_dir / SWEEP_FILE}: unreadable ({e})") from None


def _write_meta(sweep_dir: Path, meta: Mapping[str, Any]) -> None:
    sweep_dir.mkdir(parents=True, exist_ok=True)
    tmp = sweep_dir / (SWEEP_FILE + ".tmp")
    tmp.write_text(json.dumps(meta, indent=2, default=str) + "\n")
    tmp.replace(sweep_dir / SWEEP_FILE)


# ---------------------------------------------------------------------------------
# Data


def prepare_data(spec: SweepSpec, sweep_dir: Path, log: Any = print) -> tuple[str, str]:
    """(data root, dataset name): checks a folder's layout, or generates the synthetic
    dataset into `<sweep_dir>/synthetic-data` (once: reused when complete)."""
    ds = spec.dataset
    if not ds.is_synthetic:
        from reid_core.data.datasets import find_root

        try:
            root = find_root(ds.path, ds.name)  # type: ignore[arg-type]
        except ReIDError as e:
            raise ConfigError(f"{spec.source}: dataset.path: {e}") from None
        return str(root), ds.name
    out = sweep_dir / "synthetic-data"
    done = out / "synth.json"
    if done.is_file():
        try:
            made = json.loads(done.read_text())
        except (OSError, json.JSONDecodeError):
            made = {}
        if made:
            made.setdefault("camera_variation", 1.0)  # written by generate() since it got the knob
        want = dict(ds.synthetic or {})
        same = all(made.get(k) == (list(v) if isinstance(v, tuple) else v) for k, v in want.items()
                   if k in made)
        if same:
            log(f"synthetic dataset: reusing {out}")
            return str(out), "generic"
        shutil.rmtree(out)
    from reid_core.data.synth import generate

    t0 = time.perf_counter()
    kwargs = dict(ds.synthetic or {})
    kwargs.setdefault("workers", max(1, min(4, os.cpu_count() or 1)))
    info = generate(out, overwrite=True, **kwargs)
    log(f"synthetic dataset: {info.get('train_images')} train / {info.get('query_images')} query / "
        f"{info.get('gallery_images')} gallery images in {out} ({time.perf_counter() - t0:.1f}s)")
    return str(out), "generic"


# ---------------------------------------------------------------------------------
# Ray


def _init_ray(address: str | None, log: Any = print) -> bool:
    """Join a cluster (address / RAY_ADDRESS) or start a lean local instance; True when
    this process started Ray (and should shut it down)."""
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    # Checkpointing every (short) epoch forces frequent experiment snapshots: expected here.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    if ray.is_initialized():
        return False
    addr = address or os.environ.get("RAY_ADDRESS")
    if addr and addr != "local":
        log(f"ray: joining the cluster at {addr}")
        try:
            ray.init(address=addr, log_to_driver=True)
        except Exception as e:  # ConnectionError, auth errors, version mismatch...
            raise SweepError(f"cannot join the Ray cluster at {addr} ({type(e).__name__}: "
                             f"{str(e).strip().splitlines()[0] if str(e).strip() else ''}); check --address / "
                             "RAY_ADDRESS (and RAY_AUTH_TOKEN for clusters with token authentication)") from None
        return True
    ray.init(address="local", num_cpus=os.cpu_count() or 1, include_dashboard=False, log_to_driver=True,
             object_store_memory=256 * 1024 * 1024, configure_logging=True, logging_level="warning")
    return True


def _resources(spec: SweepSpec, gpus_per_trial: float | None) -> dict[str, float]:
    """Per-trial resources: the spec's, `--gpus-per-trial`, else 1 GPU where the cluster
    has GPUs (and 1-4 CPUs for its data loading), else 1 CPU."""
    import ray

    total = ray.cluster_resources()
    gpu = gpus_per_trial if gpus_per_trial is not None else spec.resources.get("gpu")
    if gpu is None:
        gpu = 1.0 if total.get("GPU", 0) >= 1 else 0.0
    if gpu > total.get("GPU", 0) + 1e-9:
        raise SweepError(f"trials need {gpu} GPU(s) each but the cluster has {total.get('GPU', 0)}; "
                         "lower resources.gpu / --gpus-per-trial")
    cpu = spec.resources.get("cpu")
    if cpu is None:
        if gpu > 0:
            per_gpu = total.get("CPU", 1) / max(total.get("GPU", 1), 1)
            cpu = float(max(1, min(4, math.floor(per_gpu * gpu))))
        else:
            cpu = 1.0
    if cpu > total.get("CPU", 0) + 1e-9:
        raise SweepError(f"trials need {cpu} CPU(s) each but the cluster has {total.get('CPU', 0)}")
    return {"cpu": float(cpu), "gpu": float(gpu)}


def trial_name_creator(trial: Any) -> str:
    cfg = trial.config or {}
    if cfg.get("trial_name"):
        return str(cfg["trial_name"])
    if cfg.get("space"):
        from .spec import search_trial_name

        values = {k.replace("__", "."): v for k, v in cfg["space"].items()}
        return search_trial_name(values, int(cfg.get("seed", 0)))[0]
    return str(trial.trial_id)


def trial_dirname_creator(trial: Any) -> str:
    base = str(trial.config.get("trial_name") or "sample")
    safe = "".join(ch if ch.isalnum() or ch in "-_.=" else "_" for ch in base)[:80]
    return f"{safe}_{trial.trial_id}"


def _search_keys(spec: SweepSpec) -> dict[str, str]:
    return {p.key.replace(".", "__"): p.key for p in spec.search.space} if spec.search else {}


def _param_space(spec: SweepSpec) -> dict[str, Any]:
    from ray import tune

    if spec.search is None:
        # Grid over the planned trial NAMES (the trial dicts travel in the trainable's ctx):
        # names and seeds stay exact, and Ray's table shows `trial_name`.
        return {"trial_name": tune.grid_search([t.name for t in spec.trials])}
    space: dict[str, Any] = {}
    for p in spec.search.space:
        k = p.key.replace(".", "__")
        if p.type == "uniform":
            space[k] = tune.uniform(p.low, p.high)
        elif p.type == "loguniform":
            space[k] = tune.loguniform(p.low, p.high)
        elif p.type == "int":
            space[k] = tune.randint(int(p.low), int(p.high) + 1)  # type: ignore[arg-type]
        else:
            space[k] = tune.choice(list(p.values))
    return {"space": space, "seed": spec.seeds[0]}


def _tune_config(spec: SweepSpec, max_concurrent: int | None) -> Any:
    from ray import tune

    # reuse_actors: a finished trial's worker process runs the next trial of the same
    # resources, so torch / mlflow / the data listing code are imported once per worker.
    kwargs: dict[str, Any] = {"trial_name_creator": trial_name_creator,
                              "trial_dirname_creator": trial_dirname_creator, "reuse_actors": True}
    if spec.search is not None:
        from ray.tune.search import ConcurrencyLimiter
        from ray.tune.search.optuna import OptunaSearch

        s = spec.search
        searcher: Any = OptunaSearch(metric=s.metric, mode=s.mode, seed=s.seed)
        if max_concurrent:
            searcher = ConcurrencyLimiter(searcher, max_concurrent=max_concurrent)
        kwargs.update(search_alg=searcher, num_samples=s.num_samples)
    elif max_concurrent:
        kwargs["max_concurrent_trials"] = max_concurrent
    if spec.scheduler is not None:
        from ray.tune.schedulers import ASHAScheduler

        c = spec.scheduler
        kwargs["scheduler"] = ASHAScheduler(time_attr="training_iteration", metric=c.metric, mode=c.mode,
                                            max_t=c.max_t, grace_period=c.grace_period,
                                            reduction_factor=c.reduction_factor)
    return tune.TuneConfig(**kwargs)


def _run_config(spec: SweepSpec, name: str, storage: str, verbose: int) -> Any:
    from ray import tune

    return tune.RunConfig(
        name=name,
        storage_path=storage,
        failure_config=tune.FailureConfig(max_failures=spec.max_failures),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=spec.checkpoint_keep),
        verbose=verbose,
    )


def _trainable(ctx: Mapping[str, Any], resources: Mapping[str, float]) -> Any:
    from ray import tune

    from .trial import run_trial

    return tune.with_resources(tune.with_parameters(run_trial, ctx=dict(ctx)), dict(resources))


# ---------------------------------------------------------------------------------
# Results


def _outcomes(results: Any, ctx: Mapping[str, Any]) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]], bool]:
    """(trial name -> outcome, table rows, interrupted) from a ResultGrid."""
    from .trial import resolve_trial

    trials = getattr(getattr(results, "_experiment_analysis", None), "trials", None)
    outcomes: dict[str, dict[str, Any]] = {}
    rows: list[dict[str, Any]] = []
    interrupted = False
    if trials is None:  # pragma: no cover - older/newer Ray without the attribute
        trials = []
    for t in trials:
        cfg = t.config or {}
        try:
            name = resolve_trial(cfg, ctx)["trial_name"]
        except Exception:
            name = t.trial_id
        last = dict(t.last_result or {})
        status = str(t.status)
        total = int(last.get("total_epochs") or 0)
        epoch = int(last.get("epoch") or 0)
        complete = bool(total) and epoch >= total
        error = None
        if status == "ERROR":
            error = _trial_error(t)
        if status not in ("TERMINATED", "ERROR"):
            interrupted = True
        outcomes[name] = {"state": status, "error": error, "complete": complete}
        rows.append({
            "trial": name, "trial_id": t.trial_id, "status": status if status != "TERMINATED" or complete
            else "STOPPED", "epoch": epoch, "total_epochs": total,
            "final_rank1": last.get("final_rank1") if complete else None,
            "final_mAP": last.get("final_mAP") if complete else None,
            "rank1": last.get("rank1"), "mAP": last.get("mAP"),
            "train_seconds": last.get("train_seconds"), "eval_seconds": last.get("eval_seconds"),
            "trial_wall_s": last.get("trial_wall_s"), "time_total_s": last.get("time_total_s"),
            "trainer_init_s": last.get("trainer_init_s"), "trainer_run_s": last.get("trainer_run_s"),
            "error": (error or "").strip().splitlines()[-1][:200] if error else None,
        })
    return outcomes, rows, interrupted


def _trial_error(trial: Any) -> str:
    """The trial's error text (error.txt in its storage folder; no Ray session needed)."""
    try:
        err = trial.get_error()
        if err:
            return str(err)[-4000:]
    except Exception:  # storage unreadable: fall through
        pass
    return "trial errored (see error.txt in its Ray trial folder)"


def format_table(rows: list[dict[str, Any]]) -> str:
    def pct(v: Any) -> str:
        return f"{100 * float(v):.1f}" if isinstance(v, (int, float)) else "-"

    def sec(v: Any) -> str:
        return f"{float(v):.0f}" if isinstance(v, (int, float)) else "-"

    with_mlflow = any("mlflow" in r for r in rows)
    w = max([len("trial")] + [len(r["trial"]) for r in rows])
    head = f"{'trial':<{w}}  {'ray':<10} " + (f"{'mlflow':<9} " if with_mlflow else "")
    lines = [head + f"{'epochs':>7} {'rank1':>6} {'mAP':>6}  {'train_s':>7} {'wall_s':>7}  error"]
    for r in rows:
        ep = f"{r.get('epoch') or 0}/{r.get('total_epochs') or '?'}"
        line = f"{r['trial']:<{w}}  {r['status']:<10} " + (f"{r.get('mlflow') or '-':<9} " if with_mlflow else "")
        lines.append(line + f"{ep:>7} {pct(r.get('final_rank1')):>6} {pct(r.get('final_mAP')):>6}  "
                     f"{sec(r.get('train_seconds')):>7} {sec(r.get('trial_wall_s')):>7}  {r.get('error') or ''}")
    return "\n".join(lines)


def _mlflow_rows(meta: Mapping[str, Any]) -> dict[str, dict[str, Any]] | None:
    """Trial name -> MLflow view of its child run (status, epochs logged, final metrics);
    None when the store cannot be read quickly."""
    from .tracking import STEP_KEY, SweepTracker, TRIAL_NAME, _env

    try:
        with _env(MLFLOW_HTTP_REQUEST_MAX_RETRIES="0", MLFLOW_HTTP_REQUEST_TIMEOUT="5"):
            runs = SweepTracker(meta["tracking_uri"]).children(meta["parent_run_id"], meta["experiment_id"])
    except Exception:
        return None
    out = {}
    for r in runs:
        m = r.data.metrics
        out[r.data.tags.get(TRIAL_NAME, r.info.run_name)] = {
            "status": r.info.status, "epoch": int(m.get(STEP_KEY, 0)), "final_rank1": m.get("final_rank1"),
            "final_mAP": m.get("final_mAP"), "train_seconds": m.get("train_seconds"),
            "total_epochs": int(m["epochs"]) if "epochs" in m else None,
            "error": ((r.data.tags.get("compact_reid.error") or "").strip().splitlines() or [None])[0],
        }
    return out


# ---------------------------------------------------------------------------------
# Run / resume


def _fit_and_finish(tuner: Any, meta: dict[str, Any], sweep_dir: Path, t0: float, log: Any,
                    started_ray: bool) -> SweepOutcome:
    from .tracking import SweepTracker

    tracker = SweepTracker(meta["tracking_uri"])
    try:
        try:
            results = tuner.fit()
        except KeyboardInterrupt:
            log("interrupted: the sweep stays resumable with `compact-reid sweep resume "
                f"{meta['name']}`")
            raise
        outcomes, rows, interrupted = _outcomes(results, meta["ctx"])
        counts = tracker.finalize(meta["parent_run_id"], meta["experiment_id"], outcomes, end_parent=not interrupted)
        wall = time.perf_counter() - t0
        out = SweepOutcome(meta["name"], str(sweep_dir), meta["parent_run_id"], meta["tracking_uri"], rows,
                           wall, interrupted, counts)
        summary = out.to_dict()
        try:
            (sweep_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
        except OSError:
            pass
        try:
            tracker.log_parent_json(meta["parent_run_id"], summary, "sweep_summary.json")
        except Exception as e:  # never lose the sweep over a summary artifact
            log(f"warning: could not log sweep_summary.json: {e}")
        log("")
        log(format_table(rows))
        failed = sum(1 for r in rows if r["status"] == "ERROR")
        log(f"sweep {meta['name']}: {len(rows)} trial(s), {failed} failed, wall {wall:.1f}s; "
            f"MLflow {meta['tracking_uri']} (parent run {meta['parent_run_id']})"
            + ("; INTERRUPTED: resume with `compact-reid sweep resume " + meta["name"] + "`" if interrupted else ""))
        return out
    finally:
        if started_ray:
            import ray

            ray.shutdown()


def run_sweep(spec_path: str | os.PathLike[str], address: str | None = None, gpus_per_trial: float | None = None,
              max_concurrent: int | None = None, tracking_uri: str | None = None, storage: str | None = None,
              runs_dir: str | os.PathLike[str] = "runs", verbose: int = 1, log: Any = print,
              fresh: bool = False) -> SweepOutcome:
    """Validate, prepare and run a sweep (module docstring); returns its outcome.

    A sweep that already has state is refused (resume it), unless `fresh`: then its old
    local folder is renamed `<folder>-<timestamp>` and a new sweep (new MLflow parent run in
    the same experiment) starts."""
    from .tracking import SweepTracker, check_tracking_uri, normalize_tracking_uri
    from .trial import hooks_from_env

    t0 = time.perf_counter()
    spec = load_spec(spec_path)
    runs = Path(runs_dir)
    storage_path, sweep_dir, exp_path = _storage_and_dir(spec.name, storage, runs)
    if (sweep_dir / SWEEP_FILE).exists():
        if not fresh:
            raise SweepError(f"sweep {spec.name} already has state in {sweep_dir}: continue it with "
                             f"`compact-reid sweep resume {sweep_dir}`, start over with --fresh (the old "
                             "folder is kept under a timestamped name), or pass another --storage")
        if str(exp_path) != str(sweep_dir):
            raise SweepError(f"--fresh: the Ray state of {spec.name} is at {exp_path}, not a local folder; "
                             "pass another --storage instead")
    if gpus_per_trial is not None and gpus_per_trial < 0:
        raise ConfigError(f"--gpus-per-trial: must be >= 0, got {gpus_per_trial}")
    if max_concurrent is not None and max_concurrent < 1:
        raise ConfigError(f"--max-concurrent: must be >= 1, got {max_concurrent}")
    uri = normalize_tracking_uri(tracking_uri, runs)
    check_tracking_uri(uri)
    started = _init_ray(address, log)  # before touching any folder: a failed join changes nothing
    parent = None
    try:
        resources = _resources(spec, gpus_per_trial)
        if fresh and (sweep_dir / SWEEP_FILE).exists():
            old = sweep_dir.with_name(f"{sweep_dir.name}-{time.strftime('%Y%m%d-%H%M%S')}")
            sweep_dir.rename(old)
            log(f"--fresh: the previous state of {spec.name} moved to {old}")
        data_root, data_name = prepare_data(spec, sweep_dir, log)
        conc = max_concurrent or spec.max_concurrent
        tracker = SweepTracker(uri)
        exp_id = tracker.experiment(spec.name, spec.description)
        parent = tracker.start_parent(exp_id, spec.name, spec.text or json.dumps(spec.raw, indent=2),
                                      spec.planned(), extra_tags={"compact_reid.storage": str(exp_path)})
        ctx = {
            "sweep": spec.name, "tracking_uri": uri, "experiment_id": exp_id, "parent_run_id": parent,
            "data_root": data_root, "data_name": data_name, "threads": max(1, int(resources["cpu"])),
            "checkpoint_every": spec.checkpoint_every, "search_keys": _search_keys(spec),
            "hooks": hooks_from_env(str(sweep_dir)),
            "trials": {t.name: t.to_dict() for t in spec.trials} if not spec.is_search else {},
            "template": spec.trials[0].to_dict(),
        }
        meta = {
            "name": spec.name, "spec_source": str(Path(spec.source).resolve()), "spec_text": spec.text,
            "tracking_uri": uri, "experiment_id": exp_id, "parent_run_id": parent, "storage_path": storage_path,
            "experiment_path": str(exp_path), "data_root": data_root, "data_name": data_name,
            "resources": resources, "max_concurrent": conc, "ctx": ctx, "created": time.time(),
            "num_trials": spec.num_trials,
            "planned": [t.to_dict() for t in spec.trials] if not spec.is_search else [],
        }
        _write_meta(sweep_dir, meta)
        log(f"sweep {spec.name}: {spec.num_trials} trial(s), {resources['cpu']:g} CPU + {resources['gpu']:g} GPU "
            f"each, max_concurrent={conc or 'auto'}, max_failures={spec.max_failures}; storage {exp_path}; "
            f"MLflow {uri} (experiment {spec.name}, parent run {parent})")
        from ray import tune

        tuner = tune.Tuner(_trainable(ctx, resources), param_space=_param_space(spec),
                           tune_config=_tune_config(spec, conc), run_config=_run_config(spec, spec.name,
                                                                                        storage_path, verbose))
    except BaseException as e:
        if parent is not None:  # never leave a parent run RUNNING for a sweep that did not start
            try:
                tracker.client.set_tag(parent, "compact_reid.error", f"{type(e).__name__}: {e}"[:2000])
                tracker.client.set_terminated(parent, "FAILED")
            except Exception:
                pass
        if started:
            import ray

            ray.shutdown()
        raise
    return _fit_and_finish(tuner, meta, sweep_dir, t0, log, started)


def resume_sweep(name_or_path: str, address: str | None = None, runs_dir: str | os.PathLike[str] = "runs",
                 verbose: int = 1, log: Any = print) -> SweepOutcome:
    """Continue a sweep from its Ray state: unfinished and errored trials run on from their
    checkpoints (their MLflow runs continue), finished trials are not re-run."""
    from ray import tune

    from .tracking import SweepTracker, check_tracking_uri
    from .trial import hooks_from_env

    t0 = time.perf_counter()
    sweep_dir = find_sweep(name_or_path, runs_dir)
    meta = _load_meta(sweep_dir)
    exp_path = meta["experiment_path"]
    if not tune.Tuner.can_restore(exp_path):
        raise SweepError(f"{exp_path}: no Ray Tune state to resume (the driver stopped before Ray saved any); "
                         "start over with `compact-reid sweep run SPEC --fresh`")
    check_tracking_uri(meta["tracking_uri"])
    spec = parse_text(meta["spec_text"], meta.get("spec_source", "<sweep.json>"), check_paths=False)
    if spec.dataset.is_synthetic and not (Path(meta["data_root"]) / "synth.json").is_file():
        meta["data_root"], meta["data_name"] = prepare_data(spec, sweep_dir, log)
    ctx = dict(meta["ctx"])
    ctx["data_root"], ctx["data_name"] = meta["data_root"], meta["data_name"]
    ctx["hooks"] = hooks_from_env(str(sweep_dir))
    started = _init_ray(address, log)
    try:
        tracker = SweepTracker(meta["tracking_uri"])
        tracker.reopen_parent(meta["parent_run_id"])
        meta["resumed"] = meta.get("resumed", 0) + 1
        _write_meta(sweep_dir, meta)
        log(f"sweep {meta['name']}: resuming from {exp_path} (MLflow parent run {meta['parent_run_id']})")
        tuner = tune.Tuner.restore(exp_path, _trainable(ctx, meta["resources"]), resume_unfinished=True,
                                   resume_errored=True)
    except BaseException:
        if started:
            import ray

            ray.shutdown()
        raise
    return _fit_and_finish(tuner, meta, sweep_dir, t0, log, started)


def sweep_status(name_or_path: str, runs_dir: str | os.PathLike[str] = "runs", mlflow: bool = True) -> dict[str, Any]:
    """Trial names, states, last epoch and final metrics from the Ray state (no Ray
    cluster is started; planned trials Ray has not created yet are PENDING) and, when the
    tracking store answers, each trial's MLflow run status (`mlflow`), which is current
    even after a driver crash (Ray's state is a periodic snapshot)."""
    sweep_dir = find_sweep(name_or_path, runs_dir)
    meta = _load_meta(sweep_dir)
    rows: list[dict[str, Any]] = []
    exp_path = meta["experiment_path"]
    state_found = False
    try:
        from ray.tune import ExperimentAnalysis

        ea = ExperimentAnalysis(exp_path)
        state_found = True

        class _R:  # ResultGrid-like wrapper for _outcomes
            _experiment_analysis = ea

        _, rows, _ = _outcomes(_R(), meta["ctx"])
    except Exception as e:  # no state yet (or unreadable)
        if (Path(exp_path).exists() and any(Path(exp_path).glob("experiment_state*.json"))):
            raise SweepError(f"{exp_path}: cannot read the Ray state ({type(e).__name__}: {e})") from None
    seen = {r["trial"] for r in rows}
    for t in meta.get("planned", []):
        if t["trial_name"] not in seen:
            rows.append({"trial": t["trial_name"], "trial_id": None, "status": "PENDING", "epoch": 0,
                         "total_epochs": None, "final_rank1": None, "final_mAP": None, "error": None})
    ml = _mlflow_rows(meta) if mlflow else None
    if ml is not None:
        for r in rows:
            m = ml.get(r["trial"])
            r["mlflow"] = m["status"] if m else None
            if m:  # MLflow is written every epoch; Ray's state is a periodic snapshot
                if (m["epoch"] or 0) > (r.get("epoch") or 0):
                    r["epoch"] = m["epoch"]
                for k in ("final_rank1", "final_mAP", "train_seconds", "total_epochs", "error"):
                    if r.get(k) is None and m.get(k) is not None:
                        r[k] = m[k]
        for name, m in ml.items():
            if name not in {r["trial"] for r in rows}:
                rows.append({"trial": name, "status": "-", "mlflow": m["status"], **{k: v for k, v in m.items()
                                                                                       if k != "status"}})
    order = {t["trial_name"]: i for i, t in enumerate(meta.get("planned", []))}
    rows.sort(key=lambda r: order.get(r["trial"], len(order)))
    summary = None
    if (sweep_dir / "summary.json").is_file():
        try:
            summary = json.loads((sweep_dir / "summary.json").read_text())
        except (OSError, json.JSONDecodeError):
            summary = None
    counts: dict[str, int] = {}
    for r in rows:
        key = r.get("mlflow") or r["status"]
        counts[key] = counts.get(key, 0) + 1
    return {"name": meta["name"], "sweep_dir": str(sweep_dir), "experiment_path": exp_path,
            "tracking_uri": meta["tracking_uri"], "parent_run_id": meta["parent_run_id"],
            "ray_state": state_found, "counts": counts, "trials": rows,
            "last_wall_seconds": (summary or {}).get("wall_seconds")}

