"""The Ray Tune function trainable around reid_core's Trainer (one trial = one training run).

`run_trial` is in Ray's own shape: the trial from Ray's config, one branch for "nothing to
train", then `for metrics in epochs: log; checkpoint; report`, with one report site.
`TrialSession` does the work of each step:
- the MLflow run (found or created, waiting for a store that restarts);
- where the Trainer starts: Ray's checkpoint (a retry or `sweep resume`), a producer's
  published checkpoint (shared training), or scratch. Every fallback known only at run time
  (a reuse refused, a producer checkpoint refused) is decided BEFORE the one Trainer is built;
- "nothing to train": a run that already FINISHED, a run copied from an identical one
  (reuse), or a trial that inherits every epoch (re-evaluated only);
- what Ray sees each epoch (`RAY_METRICS` in spec_models.py: the epoch's numbers, the
  latest evaluation carried forward, `final_*`, this attempt's timings);
- the MLflow run completed (summary, artifacts, FINISHED) BEFORE the last report, so a
  scheduler stopping the trial on that report cannot leave it half-logged.
`on_epoch(name, epoch)` is the seam of the test-only fault injection (testing.py): called
after an epoch is handed to MLflow and before its checkpoint.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from reid_core.metric_keys import EVAL_KEYS, FINAL_KEYS, SWAG_PREFIX, final_metrics

from ..mlflow_log.names import (
    ATTEMPT,
    CONFIG_ARTIFACT,
    DATA_NAME_PARAM,
    DATA_ROOT_PARAM,
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
from .sweep_data import local_root
from .sweep_folder import TrialContext
from .trial import Trial, trial_of
from .trial_log import TrialLog, log_path

__all__ = ["run_trial", "TrialSession", "CHECKPOINT_FILE"]

CHECKPOINT_FILE = "checkpoint.pt"
EpochHook = Callable[[str, int], None]


def run_trial(config: dict[str, Any], ctx: TrialContext, on_epoch: EpochHook | None = None) -> None:
    """Ray Tune function trainable: `tune.with_parameters(run_trial, ctx=TrialContext(...))`."""
    from ray import tune

    trial = trial_of(config)
    with TrialSession(trial, ctx) as session:
        recorded = session.nothing_to_train(tune.get_checkpoint())
        if recorded is not None:
            tune.report(recorded)
            return
        for metrics in session.epochs():
            session.log_epoch(metrics)
            if on_epoch is not None:
                on_epoch(trial.name, int(metrics["epoch"]))
            session.complete_if_last(metrics)
            with session.checkpoint_if_due(metrics) as checkpoint:
                tune.report(session.result(metrics), checkpoint=checkpoint)
            session.reported()


class TrialSession:
    """One attempt of one trial: its MLflow run, its Trainer, what it reports (module docstring)."""

    def __init__(self, trial: Trial, ctx: TrialContext) -> None:
        import torch

        from ..mlflow_log import TrialRun
        from ..mlflow_log.outage import store_wait_seconds, wait_for_store

        self.started = time.perf_counter()
        self.trial, self.ctx = trial, ctx
        self.trainer: Any = None
        self.init_s = self.run_s = self.report_s = self.reevaluate_s = 0.0
        self._reporting_since = 0.0
        torch.set_num_threads(max(1, ctx.threads))
        self.member = ctx.members[trial.sweep] if trial.sweep in ctx.members else next(iter(ctx.members.values()))
        tags = _identity_tags(trial)
        if trial.added_because:
            tags[SEED_ADDED] = trial.added_because
        self.run = wait_for_store(
            lambda: TrialRun.open(
                ctx.tracking_uri,
                self.member.experiment_id,
                self.member.parent_run_id,
                trial.sweep or ctx.sweep,
                trial.to_dict(with_config=False),
                trial_id=_ray_trial_id(),
                extra_tags=tags,
            ),
            store_wait_seconds(),
            self.log,
        )

    def log(self, msg: str) -> None:
        print(f"[{self.trial.name}] {msg}", flush=True)

    def __enter__(self) -> "TrialSession":
        from ..storage.store import Store
        from .checkpoints import SharedCheckpoints

        self.workdir = Path(tempfile.mkdtemp(prefix=f"compact-reid-{self.trial.name}-"))
        store = Store(self.ctx.storage, log=self.log)
        self.checkpoints = SharedCheckpoints(store)
        self.output = None
        if self.ctx.trial_logs:
            self.output = TrialLog(store, log_path(self.ctx.sweep, self.trial.name), self.workdir).__enter__()
        self.monitor = None  # MLflow's system metrics, from when this attempt trains
        return self

    def __exit__(self, kind: Any, error: BaseException | None, tb: Any) -> None:
        try:
            if isinstance(error, Exception):
                text = f"{type(error).__name__}: {error}"
                self.log(f"failed: {text}")
                try:
                    self.run.fail(text + "\n" + "".join(traceback.format_exception(kind, error, tb, limit=8)))
                except Exception as mark_error:  # the tracking store itself may be what failed
                    self.log(f"could not mark the MLflow run FAILED: {mark_error}")
        finally:
            if self.monitor is not None:
                self.monitor.finish()
            if self.output is not None:
                self.output.__exit__()
            shutil.rmtree(self.workdir, ignore_errors=True)

    # Nothing to train ----------------------------------------------------------------------
    def nothing_to_train(self, ray_checkpoint: Any) -> dict[str, Any] | None:
        """The result to report when this attempt trains nothing, else None (and the Trainer
        is ready): the run FINISHED before (a driver crash Ray's state missed), it is copied
        from an identical FINISHED run, or it inherits or resumes at its last epoch."""
        finished = self._recorded_result()
        if finished is not None:
            return finished
        start = self.trial.start
        if ray_checkpoint is None and start.reuse_run:
            reused = self._reuse(start.reuse_run)
            if reused is not None:
                return reused
        self.monitor = self.run.start_system_metrics(self.log)
        member = self.member
        self.data_root = local_root(member.data_source, member.data_name, member.data_sha256, self.log)
        self.trainer = self._build_trainer(ray_checkpoint)
        self._publish_due()  # a trial that inherited up to a published epoch
        self._log_start()
        if self.trainer.epoch < self.trainer.total_epochs:
            return None
        if self.run.status != "FINISHED":
            self._complete()
        return self._carried().report(self.trainer.history[-1], self.trainer.summary, self._totals())

    def _recorded_result(self) -> dict[str, Any] | None:
        info = self.run.get_run()
        metrics = info.data.metrics
        if info.info.status != "FINISHED" or "final_mAP" not in metrics:
            return None
        wall = ((info.info.end_time or 0) - (info.info.start_time or 0)) / 1000.0
        return {
            **dict(metrics),
            "epoch": int(metrics.get("epoch", 0)),
            "total_epochs": int(metrics.get("epochs", metrics.get("epoch", 0))),
            "trial_wall_s": max(wall, 0.0),
            "already_finished": 1,
        }

    def _reuse(self, source: str) -> dict[str, Any] | None:
        """Copy an identical FINISHED run into this trial's run; None (the trial trains, and
        its run says why) when that run cannot be copied."""
        from ..mlflow_log.reuse import ReuseError, copy_run

        try:
            metrics = copy_run(self.run.client, source, self.run.run_id)
        except ReuseError as e:
            self.log(f"not reused, training instead: {e}")
            self.run.set_tags({TRAINED_ALONE: f"reuse of {source} refused: {e}"})
            return None
        total = int(metrics.get("epochs", metrics.get("epoch", 0)))
        self.run.set_tags(
            {REUSED_FROM: source, SHARED_FROM: f"{source}@{total}", INHERITED_EPOCHS: total, TOTAL_EPOCHS: total}
        )
        self.run.finish()
        self.log(f"reused run {source}: identical training config, seed and data; every epoch copied, nothing trained")
        return {**metrics, "epoch": int(metrics.get("epoch", total)), "total_epochs": total, "reused": 1}

    # The one Trainer -----------------------------------------------------------------------
    def _build_trainer(self, ray_checkpoint: Any) -> Any:
        """The Trainer, restored from Ray's checkpoint, else started from its producer's
        checkpoint (when that one is accepted), else new."""
        from reid_core.training.trainer import Trainer

        inherited = None if ray_checkpoint is not None else self._producer_checkpoint()
        begun = time.perf_counter()
        trainer = Trainer(
            self.trial.config, self.data_root, self.workdir, dataset_name=self.member.data_name, log=self.log
        )
        self.init_s = time.perf_counter() - begun
        if ray_checkpoint is not None:
            with ray_checkpoint.as_directory() as folder:
                trainer.resume_from(Path(folder) / CHECKPOINT_FILE)
        elif inherited is not None:
            self._start_from(trainer, *inherited)
        elif self.trial.start.alone_because:
            self.run.set_tags({TRAINED_ALONE: self.trial.start.alone_because})
        return trainer

    def _producer_checkpoint(self) -> tuple[Path, dict[str, Any]] | None:
        """(path, checkpoint) of the stored checkpoint this trial starts from, checked against
        this trial's config; None (training alone, the run says why) when missing or refused."""
        from reid_core.checkpoint import check_shareable, load_weights
        from reid_core.errors import ReIDError
        from reid_core.training.epochs import epoch_counts

        start = self.trial.start
        if not start.checkpoint:
            return None
        source = start.from_trial or "the storage"
        try:
            path = self.checkpoints.fetch(start.checkpoint, start.epoch, self.workdir)
            checkpoint = load_weights(path)
            main_epochs = epoch_counts(self.trial.config).main_epochs
            check_shareable(checkpoint, self.trial.config, start.epoch, main_epochs, path)
        except ReIDError as e:
            why = f"checkpoint of {source} at epoch {start.epoch} refused: {e}"
            self.log(f"training alone: {why}")
            self.run.set_tags({TRAINED_ALONE: why})
            return None
        return path, checkpoint

    def _start_from(self, trainer: Any, path: Path, checkpoint: Mapping[str, Any]) -> None:
        start = self.trial.start
        trainer.start_from(path, start.epoch)
        if trainer.epoch == trainer.total_epochs:  # nothing left to train: the final evaluation
            begun = time.perf_counter()
            trainer.finish_inherited(start.reevaluate)
            self.reevaluate_s = time.perf_counter() - begun
        about = self.checkpoints.info(start.checkpoint, start.epoch)
        source = about.get("run_id") or start.from_trial or start.checkpoint
        self.run.set_tags({SHARED_FROM: f"{source}@{start.epoch}", INHERITED_EPOCHS: start.epoch})
        other_sweep = about.get("sweep") not in (None, self.trial.sweep)
        self.log(
            f"inherited epochs 1-{start.epoch} from {about.get('trial') or start.from_trial}"
            + (f" of sweep {about['sweep']}" if other_sweep else "")
            + (" (re-evaluated with this trial's evaluation settings)" if start.reevaluate else "")
        )

    def _log_start(self) -> None:
        """Tags of this attempt, params (for the UI), config.json (what tables read), backfill."""
        from reid_core.config import flatten, to_dict

        trainer, run = self.trainer, self.run
        attempt = int(run.get_run().data.tags.get(ATTEMPT, "0")) + 1
        run.set_tags(
            {ATTEMPT: attempt, RESUMED_FROM: trainer.epoch, TOTAL_EPOCHS: trainer.total_epochs, **_node_tags()}
        )
        data_params = {DATA_NAME_PARAM: trainer.dataset.name, DATA_ROOT_PARAM: trainer.dataset.root}
        run.log_params({**flatten(trainer.cfg), **data_params})
        run.log_json(to_dict(trainer.cfg), CONFIG_ARTIFACT)
        backfilled = run.log_history(trainer.history)
        if backfilled:
            self.log(f"backfilled {backfilled} epoch(s) into MLflow run {run.run_id}")
        if trainer.epoch:
            self.log(
                f"resumed at epoch {trainer.epoch}/{trainer.total_epochs}; MLflow run {run.run_id} "
                f"has epochs up to {run.last_step}"
            )

    # Each epoch ----------------------------------------------------------------------------
    def epochs(self) -> Iterator[dict[str, Any]]:
        """The epochs still to train (the Trainer's own generator, timed)."""
        from ..mlflow_log.outage import EpochLog

        self.epoch_log = EpochLog(self.run, self.log)  # survives a store outage
        self.carried = self._carried()
        generator = self.trainer.run()
        while True:
            begun = time.perf_counter()
            try:
                metrics = next(generator)
            except StopIteration:
                return
            finally:
                self.run_s += time.perf_counter() - begun
            yield metrics

    def log_epoch(self, metrics: Mapping[str, Any]) -> None:
        """Publish a checkpoint consumers wait for (before anything else: they may start at
        once), then the epoch to MLflow (queued while the store is down)."""
        self._publish_due()
        self.epoch_log.epoch(metrics)

    def complete_if_last(self, metrics: Mapping[str, Any]) -> None:
        from ..mlflow_log.outage import store_wait_seconds, wait_for_store

        if int(metrics["epoch"]) != self.trainer.total_epochs:
            return
        self.epoch_log.wait_flushed(store_wait_seconds())
        wait_for_store(self._complete, store_wait_seconds(), log=self.log, what="tracking store (completing the run)")

    @contextlib.contextmanager
    def checkpoint_if_due(self, metrics: Mapping[str, Any]) -> Iterator[Any]:
        """A Ray checkpoint of this epoch (every `checkpoint.every` epochs and the last), else None."""
        from ray import tune

        self._reporting_since = time.perf_counter()
        epoch = int(metrics["epoch"])
        if epoch != self.trainer.total_epochs and epoch % max(1, self.member.checkpoint_every):
            yield None
            return
        if self.output is not None:
            self.output.sync()
        with tempfile.TemporaryDirectory(prefix="ckpt-", dir=self.workdir) as folder:
            self.trainer.save_checkpoint(Path(folder) / CHECKPOINT_FILE)
            yield tune.Checkpoint.from_directory(folder)

    def reported(self) -> None:
        """The checkpoint written and handed to Ray, the report taken (its upload included)."""
        self.report_s += time.perf_counter() - self._reporting_since

    def result(self, metrics: Mapping[str, Any]) -> dict[str, Any]:
        last = int(metrics["epoch"]) == self.trainer.total_epochs
        return self.carried.report(metrics, self.trainer.summary if last else None, self._totals())

    # Helpers -------------------------------------------------------------------------------
    def _carried(self) -> "_Carried":
        return _Carried(self.trainer)

    def _publish_due(self) -> None:
        """Store the checkpoints this trial publishes (for its consumers, and later sweeps)."""
        for epoch, key in self.trial.start.publish:
            if epoch == self.trainer.epoch:
                about = {"trial": self.trial.name, "sweep": self.trial.sweep, "run_id": self.run.run_id}
                began = time.perf_counter()
                size = self.checkpoints.publish(key, epoch, self.trainer.save_checkpoint, self.workdir, about)
                took = time.perf_counter() - began
                self.log(f"stored checkpoint {key} at epoch {epoch} ({size / 1e6:.1f} MB in {took:.1f}s)")

    def _totals(self) -> dict[str, float]:
        history = self.trainer.history
        return {
            "train_seconds": sum(float(h.get("epoch_seconds", 0.0)) for h in history),
            "eval_seconds": sum(float(h.get("eval_seconds", 0.0)) for h in history),
            "trial_wall_s": time.perf_counter() - self.started,
            "trainer_init_s": self.init_s,
            "trainer_run_s": self.run_s,
            "report_s": self.report_s,  # checkpoints saved and reported (stored) by the epochs before
            "reevaluate_s": self.reevaluate_s,  # an inherited run's final evaluation (SWAG: BN pass, samples)
            "total_epochs": self.trainer.total_epochs,
        }

    def _complete(self) -> None:
        """Summary at the final step, artifacts, FINISHED."""
        trainer, run = self.trainer, self.run
        last = trainer.history[-1] if trainer.history else {}
        run.log_summary(trainer.summary, trainer.total_epochs, skip=last.keys())
        run.log_json(trainer.history, HISTORY_ARTIFACT)
        run.log_json(trainer.summary, SUMMARY_ARTIFACT)
        weights = self.workdir / WEIGHTS_DIR
        weights.mkdir(parents=True, exist_ok=True)
        for which in trainer.weight_kinds():  # + swa.pt (the SWA mean) when SWAG ran
            trainer.save_weights(weights / f"{which}.pt", which=which)
            run.log_file(weights / f"{which}.pt", WEIGHTS_DIR)
        run.finish()


class _Carried:
    """The latest evaluation of each key, carried to epochs without one (Ray sees every key
    every epoch, which ASHA and Optuna need)."""

    def __init__(self, trainer: Any) -> None:
        self.trainer = trainer
        self.latest: dict[str, float] = {}
        for metrics in trainer.history:
            self.update(metrics)

    def update(self, metrics: Mapping[str, Any]) -> None:
        for key in EVAL_KEYS:
            for name in (key, SWAG_PREFIX + key):
                if name in metrics:
                    self.latest[name] = float(metrics[name])

    def report(self, metrics: Mapping[str, Any], final: Mapping[str, Any] | None, totals: Mapping[str, float]) -> dict:
        from ..mlflow_log import numeric_items

        summary = self.trainer.summary  # the untrained evaluation, made when run() starts
        if "untrained_rank1" in summary and "rank1" not in self.latest:
            self.latest.update({"rank1": summary["untrained_rank1"], "mAP": summary["untrained_mAP"]})
        self.update(metrics)
        out: dict[str, Any] = dict(numeric_items(metrics))
        out.update({k: v for k, v in self.latest.items() if not k.startswith(SWAG_PREFIX)})
        out.update(final_metrics(self.latest))
        if final is not None:
            out.update({f"final_{k}": float(final[f"final_{k}"]) for k in FINAL_KEYS if f"final_{k}" in final})
        out.update(totals)
        return out


def _identity_tags(trial: Trial) -> dict[str, str]:
    from reid_core.config_phases import TRAINING_SEMANTICS_VERSION

    if not trial.start.identity:
        return {}
    return {IDENTITY: trial.start.identity, SEMANTICS_VERSION: str(TRAINING_SEMANTICS_VERSION)}


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
