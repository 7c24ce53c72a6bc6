"""The Ray Tune function trainable around reid_core's Trainer (one trial = one training run).

Per epoch: log the epoch to the trial's MLflow child run (one log_batch), then save a
full trainer checkpoint into a temporary folder and `tune.report(metrics, checkpoint=...)`.
A retried trial (FailureConfig) or a resumed sweep restores from `tune.get_checkpoint()`
with `Trainer.resume_from`, reopens ITS MLflow run and backfills / skips epochs so the run
has every step exactly once. At the last epoch the MLflow run is completed (summary at the
final step, artifacts, FINISHED) BEFORE the final report, so a scheduler stopping the trial
on that report cannot leave it half-logged.

What Ray sees each epoch (`RAY_METRICS` in spec.py): the epoch's numbers, the latest
evaluation carried forward (`rank1`, `mAP`, ... from the untrained evaluation until the
first evaluation epoch), `final_*` (the summary at the last epoch; before that the latest
evaluation of the model the run will report: SWAG once collected, else the current
weights), `train_seconds`, `eval_seconds`, `total_epochs`, and this attempt's timings:
`trial_wall_s` (function entry to now), `trainer_init_s` (Trainer construction),
`trainer_run_s` (time inside the trainer's generator: training, every evaluation
including the untrained one, the summary); wall - init - run is what orchestration
(imports, MLflow, checkpoints, reports) costs.

Test-only fault hooks (the runner reads them from its environment and passes them in;
names are trial names, comma-separated):
  COMPACT_REID_FAIL_TRIAL=a-seed0[,..]   raise TrainingError after logging epoch
                                         COMPACT_REID_FAIL_EPOCH (default 1), every attempt
  COMPACT_REID_KILL_TRIAL=a-seed1[,..]   SIGKILL the trial's own worker process after
                                         logging epoch COMPACT_REID_KILL_EPOCH (default 2)
                                         and before that epoch's checkpoint, once: a marker
                                         file `kill-<trial>.marker` in
                                         COMPACT_REID_KILL_MARKER_DIR (default: the sweep
                                         folder) records that it happened.
"""
from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Mapping

__all__ = ["run_trial", "resolve_trial", "hooks_from_env", "CHECKPOINT_FILE"]

CHECKPOINT_FILE = "checkpoint.pt"
_EVAL_KEYS = ("rank1", "rank5", "rank10", "mAP", "mINP")


def hooks_from_env(default_marker_dir: str) -> dict[str, Any]:
    """The fault-injection hooks set in the environment (empty when none is set)."""
    def names(var: str) -> list[str]:
        return [n.strip() for n in os.environ.get(var, "").split(",") if n.strip()]

    hooks: dict[str, Any] = {}
    if names("COMPACT_REID_FAIL_TRIAL"):
        hooks["fail_trials"] = names("COMPACT_REID_FAIL_TRIAL")
        hooks["fail_epoch"] = int(os.environ.get("COMPACT_REID_FAIL_EPOCH", "1"))
    if names("COMPACT_REID_KILL_TRIAL"):
        hooks["kill_trials"] = names("COMPACT_REID_KILL_TRIAL")
        hooks["kill_epoch"] = int(os.environ.get("COMPACT_REID_KILL_EPOCH", "2"))
        hooks["kill_marker_dir"] = os.environ.get("COMPACT_REID_KILL_MARKER_DIR", default_marker_dir)
    return hooks


def resolve_trial(config: Mapping[str, Any], ctx: Mapping[str, Any]) -> dict[str, Any]:
    """The trial dict (trials.json form) of a Ray config: a grid trial as planned (Ray's
    config holds its name, ctx["trials"] the plan), or a search sample from ctx["template"]
    named after its sampled values."""
    from .spec import search_trial_name

    if config.get("trial_name") is not None:
        return dict(ctx["trials"][config["trial_name"]])
    trial = dict(ctx["template"])
    keys: Mapping[str, str] = ctx["search_keys"]  # ray-safe key -> dotted config path
    values = {keys.get(k, k.replace("__", ".")): (v.item() if hasattr(v, "item") else v)
              for k, v in (config.get("space") or {}).items()}
    name, point = search_trial_name(values, int(trial["seed"]))
    trial["trial_name"], trial["grid_point"] = name, point
    trial["overrides"] = {**trial.get("overrides", {}), **values}
    trial["sampled"] = values
    return trial


def _ray_metrics(m: Mapping[str, Any], carried: dict[str, float], final: Mapping[str, Any] | None,
                 totals: Mapping[str, float]) -> dict[str, Any]:
    from .tracking import numeric_items

    out: dict[str, Any] = dict(numeric_items(m))
    for k in _EVAL_KEYS:
        if k in m:
            carried[k] = float(m[k])
        if f"swag_{k}" in m:
            carried[f"swag_{k}"] = float(m[f"swag_{k}"])
    out.update({k: v for k, v in carried.items() if not k.startswith("swag_")})
    for k in ("rank1", "rank5", "mAP", "mINP"):
        if final is not None and f"final_{k}" in final:
            out[f"final_{k}"] = float(final[f"final_{k}"])
        elif f"swag_{k}" in carried:
            out[f"final_{k}"] = carried[f"swag_{k}"]
        elif k in carried:
            out[f"final_{k}"] = carried[k]
    out.update(totals)
    return out


def run_trial(config: dict[str, Any], ctx: dict[str, Any]) -> None:
    """Ray Tune function trainable (wrapped with tune.with_parameters(run_trial, ctx=...)).

    ctx: sweep, tracking_uri, experiment_id, parent_run_id, data_root, data_name,
    threads, checkpoint_every, search_keys, hooks.
    """
    t_start = time.perf_counter()
    from ray import tune

    from reid_core.config import flatten, to_dict
    from reid_core.presets import preset_config

    from .tracking import TAG, TrialRun

    trial = resolve_trial(config, ctx)
    name = trial["trial_name"]
    overrides = dict(trial.get("overrides", {}))
    overrides["seed"] = int(trial["seed"])
    cfg = preset_config(trial["preset"], overrides)
    threads = max(1, int(ctx.get("threads") or 1))

    import torch

    torch.set_num_threads(threads)
    trial_id = ""
    try:
        trial_id = tune.get_context().get_trial_id() or ""
    except Exception:  # outside Tune (unit use)
        pass

    run = TrialRun.open(ctx["tracking_uri"], ctx["experiment_id"], ctx["parent_run_id"], ctx["sweep"], trial,
                        trial_id=trial_id)
    info = run.get_run()
    if info.info.status == "FINISHED" and "final_mAP" in info.data.metrics:
        # Completed before a driver crash that Ray's experiment state did not record:
        # report the recorded result, do not train again.
        m = info.data.metrics
        wall = ((info.info.end_time or 0) - (info.info.start_time or 0)) / 1000.0
        tune.report({**dict(m), "epoch": int(m.get("epoch", 0)),
                     "total_epochs": int(m.get("epochs", m.get("epoch", 0))), "trial_wall_s": max(wall, 0.0),
                     "already_finished": 1})
        return

    def log(msg: str) -> None:
        print(f"[{name}] {msg}", flush=True)

    workdir = Path(tempfile.mkdtemp(prefix=f"compact-reid-{name}-"))
    try:
        from reid_core.training.trainer import Trainer

        hooks = ctx.get("hooks") or {}
        t_init = time.perf_counter()
        trainer = Trainer(cfg, ctx["data_root"], workdir, dataset_name=ctx.get("data_name", "auto"), log=log)
        trainer_init_s = time.perf_counter() - t_init
        ckpt = tune.get_checkpoint()
        resumed_from = 0
        if ckpt is not None:
            with ckpt.as_directory() as d:
                trainer.resume_from(Path(d) / CHECKPOINT_FILE)
            resumed_from = trainer.epoch
        attempt = int(info.data.tags.get(f"{TAG}attempt", "0")) + 1
        run.set_tags({f"{TAG}attempt": attempt, f"{TAG}resumed_from_epoch": resumed_from,
                      f"{TAG}total_epochs": trainer.total_epochs})
        params = flatten(trainer.cfg)
        params["data.name"] = trainer.dataset.name
        params["data.root"] = trainer.dataset.root
        run.log_params(params)
        run.log_json(to_dict(trainer.cfg), "config.json")
        backfilled = run.log_history(trainer.history)
        if backfilled:
            log(f"backfilled {backfilled} epoch(s) into MLflow run {run.run_id}")
        if resumed_from:
            log(f"resumed at epoch {resumed_from}/{trainer.total_epochs}; MLflow run {run.run_id} "
                f"has epochs up to {run.last_step}")

        carried: dict[str, float] = {}
        src = trainer.summary
        if "untrained_rank1" in src:
            carried.update({"rank1": src["untrained_rank1"], "mAP": src["untrained_mAP"]})
        for h in trainer.history:
            _ray_metrics(h, carried, None, {})
        every = int(ctx.get("checkpoint_every") or 1)

        trainer_run_s = 0.0  # time inside the trainer's generator (training, evaluations, summary)
        t_gen = time.perf_counter()
        for m in trainer.run():
            trainer_run_s += time.perf_counter() - t_gen
            epoch = int(m["epoch"])
            run.log_epoch(m)
            last = epoch == trainer.total_epochs
            if name in hooks.get("fail_trials", ()) and epoch == hooks.get("fail_epoch", 1):
                from reid_core.errors import TrainingError

                raise TrainingError(f"injected failure (COMPACT_REID_FAIL_TRIAL) at epoch {epoch}")
            if name in hooks.get("kill_trials", ()) and epoch == hooks.get("kill_epoch", 2):
                marker = Path(hooks["kill_marker_dir"]) / f"kill-{name}.marker"
                if not marker.exists():
                    marker.parent.mkdir(parents=True, exist_ok=True)
                    marker.write_text(f"killed at epoch {epoch}, pid {os.getpid()}\n")
                    log(f"injected SIGKILL (COMPACT_REID_KILL_TRIAL) at epoch {epoch}")
                    os.kill(os.getpid(), signal.SIGKILL)
            if last:
                _complete(run, trainer, workdir)
            totals = {
                "train_seconds": sum(float(h.get("epoch_seconds", 0.0)) for h in trainer.history),
                "eval_seconds": sum(float(h.get("eval_seconds", 0.0)) for h in trainer.history),
                "trial_wall_s": time.perf_counter() - t_start,
                "trainer_init_s": trainer_init_s,
                "trainer_run_s": trainer_run_s,
                "total_epochs": trainer.total_epochs,
            }
            result = _ray_metrics(m, carried, trainer.summary if last else None, totals)
            if last or epoch % every == 0:
                with tempfile.TemporaryDirectory(prefix="ckpt-", dir=workdir) as tmp:
                    trainer.save_checkpoint(Path(tmp) / CHECKPOINT_FILE)
                    tune.report(result, checkpoint=tune.Checkpoint.from_directory(tmp))
            else:
                tune.report(result)
            t_gen = time.perf_counter()
        if trainer.epoch >= trainer.total_epochs and run.status != "FINISHED":
            # Resumed from the final checkpoint (nothing left to train): complete the run.
            _complete(run, trainer, workdir)
    except Exception as e:
        err = f"{type(e).__name__}: {e}"
        log(f"failed: {err}")
        try:
            run.fail(err + "\n" + traceback.format_exc(limit=8))
        except Exception as e2:  # the tracking store itself may be what failed
            log(f"could not mark the MLflow run FAILED: {e2}")
        raise
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _complete(run: Any, trainer: Any, workdir: Path) -> None:
    """Summary at the final step, artifacts, FINISHED."""
    last = trainer.history[-1] if trainer.history else {}
    run.log_summary(trainer.summary, trainer.total_epochs, skip=last.keys())
    run.log_json(trainer.history, "metrics_history.json")
    run.log_json(trainer.summary, "summary.json")
    wdir = workdir / "weights"
    wdir.mkdir(parents=True, exist_ok=True)
    for which in trainer.weight_kinds():  # + swa.pt (the SWA mean) when SWAG ran
        trainer.save_weights(wdir / f"{which}.pt", which=which)
        run.log_file(wdir / f"{which}.pt", "weights")
    run.finish()
