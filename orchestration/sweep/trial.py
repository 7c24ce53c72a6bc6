"""The Ray Tune function trainable around reid_core's Trainer (one trial = one training run).

Resolve the trial's TrainConfig once, open (or reopen) its MLflow run, restore Ray's
checkpoint, then per epoch: log to MLflow, checkpoint, `tune.report`. The MLflow run is
completed BEFORE the last report. `on_epoch` is the test-only fault-injection seam. Phases
and what Ray sees each epoch: docs/ARCHITECTURE.md, "Module notes: orchestration/sweep/trial.py".
"""

from __future__ import annotations

import shutil
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Mapping

from reid_core.metric_keys import EVAL_KEYS, FINAL_KEYS, SWAG_PREFIX, final_metrics

from ..mlflow_log.names import (
    ATTEMPT,
    CONFIG_ARTIFACT,
    HISTORY_ARTIFACT,
    IDENTITY,
    INHERITED_EPOCHS,
    NODE_ID,
    NODE_IP,
    RESUMED_FROM,
    REUSED_FROM,
    SEED_ADDED,
    SEMANTICS_VERSION,
    SHARED_FROM,
    SUMMARY_ARTIFACT,
    TOTAL_EPOCHS,
    TRAINED_ALONE,
    WEIGHTS_DIR,
)
from .sweep_folder import TrialContext
from .trial_plan import TrialSpec

__all__ = ["run_trial", "CHECKPOINT_FILE"]

CHECKPOINT_FILE = "checkpoint.pt"
EpochHook = Callable[[str, int], None]


def run_trial(config: dict[str, Any], ctx: TrialContext, on_epoch: EpochHook | None = None) -> None:
    """Ray Tune function trainable: `tune.with_parameters(run_trial, ctx=TrialContext(...))`."""
    t_start = time.perf_counter()
    from ray import tune

    from ..mlflow_log import TrialRun
    from ..mlflow_log.outage import store_wait_seconds, wait_for_store

    trial = TrialSpec.from_record(config["trial"])
    cfg = trial.config()  # the one TrainConfig of this trial
    share: dict[str, Any] = dict(config["trial"].get("share") or {})  # shared training (shared_plan.py)

    def log(msg: str) -> None:
        print(f"[{trial.name}] {msg}", flush=True)

    import torch

    torch.set_num_threads(max(1, ctx.threads))
    run = wait_for_store(
        lambda: TrialRun.open(
            ctx.tracking_uri,
            ctx.experiment_id,
            ctx.parent_run_id,
            ctx.sweep,
            trial.to_dict(),
            trial_id=_ray_trial_id(),
            extra_tags={
                **_identity_tags(share),
                **({SEED_ADDED: config["trial"]["added_because"]} if config["trial"].get("added_because") else {}),
            },
        ),
        store_wait_seconds(),
        log,
    )
    if _report_if_finished(run):
        return
    if share.get("reuse_run") and tune.get_checkpoint() is None and _reuse(run, share["reuse_run"], log):
        return

    workdir = Path(tempfile.mkdtemp(prefix=f"compact-reid-{trial.name}-"))
    monitor = run.start_system_metrics(log)
    try:
        trainer, init_s = _build_trainer(cfg, ctx, workdir, log, tune.get_checkpoint(), share, run)
        _log_start(run, trainer, log)
        _train(trainer, run, ctx, workdir, trial.name, log, _Timings(t_start, init_s), on_epoch, share)
    except Exception as e:
        err = f"{type(e).__name__}: {e}"
        log(f"failed: {err}")
        try:
            run.fail(err + "\n" + traceback.format_exc(limit=8))
        except Exception as e2:  # the tracking store itself may be what failed
            log(f"could not mark the MLflow run FAILED: {e2}")
        raise
    finally:
        if monitor is not None:
            monitor.finish()
        shutil.rmtree(workdir, ignore_errors=True)


def _ray_trial_id() -> str:
    from ray import tune

    try:
        return tune.get_context().get_trial_id() or ""
    except Exception:  # outside Tune (unit use)
        return ""


def _node_tags() -> dict[str, str]:
    """The Ray node of this attempt (a retried trial may move to another node)."""
    import ray

    try:
        return {NODE_IP: ray.util.get_node_ip_address(), NODE_ID: ray.get_runtime_context().get_node_id()}
    except Exception:  # outside a Ray worker (unit use)
        return {}


def _report_if_finished(run: Any) -> bool:
    """A run that completed before a driver crash Ray's state did not record: report the
    recorded result, do not train again."""
    from ray import tune

    info = run.get_run()
    if info.info.status != "FINISHED" or "final_mAP" not in info.data.metrics:
        return False
    m = info.data.metrics
    wall = ((info.info.end_time or 0) - (info.info.start_time or 0)) / 1000.0
    tune.report(
        {
            **dict(m),
            "epoch": int(m.get("epoch", 0)),
            "total_epochs": int(m.get("epochs", m.get("epoch", 0))),
            "trial_wall_s": max(wall, 0.0),
            "already_finished": 1,
        }
    )
    return True


def _identity_tags(share: Mapping[str, Any]) -> dict[str, str]:
    from reid_core.config_phases import TRAINING_SEMANTICS_VERSION

    if not share.get("identity"):
        return {}
    return {IDENTITY: str(share["identity"]), SEMANTICS_VERSION: str(TRAINING_SEMANTICS_VERSION)}


def _reuse(run: Any, source: str, log: Callable[[str], None]) -> bool:
    """Copy an identical FINISHED run into this trial's run and report its results; False
    (the trial trains instead, and its run says why) when that run cannot be copied."""
    from ray import tune

    from ..mlflow_log.reuse import ReuseError, copy_run

    try:
        m = copy_run(run.client, source, run.run_id)
    except ReuseError as e:
        log(f"not reused, training instead: {e}")
        run.set_tags({TRAINED_ALONE: f"reuse of {source} refused: {e}"})
        return False
    total = int(m.get("epochs", m.get("epoch", 0)))
    run.set_tags({REUSED_FROM: source, SHARED_FROM: f"{source}@{total}", INHERITED_EPOCHS: total, TOTAL_EPOCHS: total})
    run.finish()
    log(f"reused run {source}: identical training config, seed and data; every epoch copied, nothing trained")
    tune.report({**m, "epoch": int(m.get("epoch", total)), "total_epochs": total, "reused": 1})
    return True


def _build_trainer(
    cfg: Any,
    ctx: TrialContext,
    workdir: Path,
    log: Callable[[str], None],
    checkpoint: Any,
    share: Mapping[str, Any] | None = None,
    run: Any = None,
) -> tuple[Any, float]:
    """(Trainer restored from Ray's checkpoint when there is one, else started from its
    producer's shared checkpoint when it has one; seconds its construction took)."""
    from reid_core.training.trainer import Trainer

    t0 = time.perf_counter()
    trainer = Trainer(cfg, ctx.data_root, workdir, dataset_name=ctx.data_name, log=log)
    init_s = time.perf_counter() - t0
    share = share or {}
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            trainer.resume_from(Path(d) / CHECKPOINT_FILE)
    elif share.get("start_from"):
        trainer = _start_shared(trainer, cfg, ctx, workdir, log, share, run)
    elif share.get("alone_because") and run is not None:
        run.set_tags({TRAINED_ALONE: share["alone_because"]})
    return trainer, init_s


def _start_shared(
    trainer: Any, cfg: Any, ctx: TrialContext, workdir: Path, log: Callable[[str], None], share: Mapping, run: Any
) -> Any:
    """Start from the producer's checkpoint; on any problem train alone and say why."""
    from reid_core.errors import ReIDError
    from reid_core.training.trainer import Trainer

    from .live_plan import producer_run, shared_checkpoint

    producer, epoch = share["start_from"], int(share["start_epoch"])
    path = shared_checkpoint(ctx.shared_dir, producer, epoch)
    try:
        trainer.start_from(path, epoch)
    except ReIDError as e:
        log(f"training alone: cannot start from {producer} at epoch {epoch}: {e}")
        if run is not None:
            run.set_tags({TRAINED_ALONE: f"checkpoint of {producer} at epoch {epoch} refused: {e}"})
        return Trainer(cfg, ctx.data_root, workdir, dataset_name=ctx.data_name, log=log)
    if trainer.epoch == trainer.total_epochs:
        trainer.finish_inherited(bool(share.get("reevaluate")))
    if run is not None:
        src = producer_run(ctx.shared_dir, producer) or producer
        run.set_tags({SHARED_FROM: f"{src}@{epoch}", INHERITED_EPOCHS: epoch})
    log(
        f"inherited epochs 1-{epoch} from {producer}"
        + (" (re-evaluated with this trial's evaluation settings)" if share.get("reevaluate") else "")
    )
    return trainer


def _log_start(run: Any, trainer: Any, log: Callable[[str], None]) -> None:
    """Tags of this attempt, params (for the UI), config.json (what tables read), backfill."""
    from reid_core.config import flatten, to_dict

    resumed_from = trainer.epoch
    attempt = int(run.get_run().data.tags.get(ATTEMPT, "0")) + 1
    run.set_tags({ATTEMPT: attempt, RESUMED_FROM: resumed_from, TOTAL_EPOCHS: trainer.total_epochs, **_node_tags()})
    run.log_params({**flatten(trainer.cfg), "data.name": trainer.dataset.name, "data.root": trainer.dataset.root})
    run.log_json(to_dict(trainer.cfg), CONFIG_ARTIFACT)
    backfilled = run.log_history(trainer.history)
    if backfilled:
        log(f"backfilled {backfilled} epoch(s) into MLflow run {run.run_id}")
    if resumed_from:
        log(
            f"resumed at epoch {resumed_from}/{trainer.total_epochs}; MLflow run {run.run_id} "
            f"has epochs up to {run.last_step}"
        )


class _Timings:
    def __init__(self, start: float, init_s: float) -> None:
        self.start, self.init_s, self.run_s = start, init_s, 0.0


class _Carried:
    """The latest evaluation of each key, carried to epochs without one (Ray sees every key
    every epoch, which ASHA and Optuna need)."""

    def __init__(self, trainer: Any) -> None:
        self.trainer = trainer
        self.latest: dict[str, float] = {}
        for h in trainer.history:
            self.update(h)

    def update(self, m: Mapping[str, Any]) -> None:
        for k in EVAL_KEYS:
            for key in (k, SWAG_PREFIX + k):
                if key in m:
                    self.latest[key] = float(m[key])

    def report(self, m: Mapping[str, Any], final: Mapping[str, Any] | None, totals: Mapping[str, float]) -> dict:
        from ..mlflow_log import numeric_items

        src = self.trainer.summary  # the untrained evaluation, made when run() starts
        if "untrained_rank1" in src and "rank1" not in self.latest:
            self.latest.update({"rank1": src["untrained_rank1"], "mAP": src["untrained_mAP"]})
        self.update(m)
        out: dict[str, Any] = dict(numeric_items(m))
        out.update({k: v for k, v in self.latest.items() if not k.startswith(SWAG_PREFIX)})
        out.update(final_metrics(self.latest))
        if final is not None:
            out.update({f"final_{k}": float(final[f"final_{k}"]) for k in FINAL_KEYS if f"final_{k}" in final})
        out.update(totals)
        return out


def _train(
    trainer: Any,
    run: Any,
    ctx: TrialContext,
    workdir: Path,
    name: str,
    log: Callable[[str], None],
    timings: _Timings,
    on_epoch: EpochHook | None,
    share: Mapping[str, Any] | None = None,
) -> None:
    from ray import tune

    from ..mlflow_log.outage import EpochLog, store_wait_seconds, wait_for_store
    from .live_plan import publish

    carried = _Carried(trainer)
    every = max(1, ctx.checkpoint_every)
    epochs = EpochLog(run, log)  # survives a store outage
    publish_at = {int(e) for e in (share or {}).get("publish", ())}

    def publish_now() -> None:
        if trainer.epoch in publish_at:
            publish(ctx.shared_dir, name, trainer.epoch, trainer.save_checkpoint, run.run_id)

    publish_now()  # a trial that inherited up to a published epoch
    reported = False
    t_gen = time.perf_counter()
    for m in trainer.run():
        timings.run_s += time.perf_counter() - t_gen
        epoch = int(m["epoch"])
        publish_now()  # before the report: consumers may start as soon as it exists
        epochs.epoch(m)
        if on_epoch is not None:
            on_epoch(name, epoch)
        last = epoch == trainer.total_epochs
        if last:
            epochs.wait_flushed(store_wait_seconds())
            wait_for_store(
                lambda: _complete(run, trainer, workdir),
                store_wait_seconds(),
                log=log,
                what="tracking store (completing the run)",
            )
        result = carried.report(m, trainer.summary if last else None, _totals(trainer, timings))
        if last or epoch % every == 0:
            with tempfile.TemporaryDirectory(prefix="ckpt-", dir=workdir) as tmp:
                trainer.save_checkpoint(Path(tmp) / CHECKPOINT_FILE)
                tune.report(result, checkpoint=tune.Checkpoint.from_directory(tmp))
        else:
            tune.report(result)
        reported = True
        t_gen = time.perf_counter()
    if trainer.epoch >= trainer.total_epochs and run.status != "FINISHED":
        # Resumed from the final checkpoint, or inherited every epoch: complete the run.
        _complete(run, trainer, workdir)
    if not reported and trainer.history:
        result = carried.report(trainer.history[-1], trainer.summary, _totals(trainer, timings))
        with tempfile.TemporaryDirectory(prefix="ckpt-", dir=workdir) as tmp:
            trainer.save_checkpoint(Path(tmp) / CHECKPOINT_FILE)
            tune.report(result, checkpoint=tune.Checkpoint.from_directory(tmp))


def _totals(trainer: Any, timings: _Timings) -> dict[str, float]:
    return {
        "train_seconds": sum(float(h.get("epoch_seconds", 0.0)) for h in trainer.history),
        "eval_seconds": sum(float(h.get("eval_seconds", 0.0)) for h in trainer.history),
        "trial_wall_s": time.perf_counter() - timings.start,
        "trainer_init_s": timings.init_s,
        "trainer_run_s": timings.run_s,
        "total_epochs": trainer.total_epochs,
    }


def _complete(run: Any, trainer: Any, workdir: Path) -> None:
    """Summary at the final step, artifacts, FINISHED."""
    last = trainer.history[-1] if trainer.history else {}
    run.log_summary(trainer.summary, trainer.total_epochs, skip=last.keys())
    run.log_json(trainer.history, HISTORY_ARTIFACT)
    run.log_json(trainer.summary, SUMMARY_ARTIFACT)
    wdir = workdir / WEIGHTS_DIR
    wdir.mkdir(parents=True, exist_ok=True)
    for which in trainer.weight_kinds():  # + swa.pt (the SWA mean) when SWAG ran
        trainer.save_weights(wdir / f"{which}.pt", which=which)
        run.log_file(wdir / f"{which}.pt", WEIGHTS_DIR)
    run.finish()
