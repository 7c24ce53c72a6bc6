"""Worker side: the MLflow child run of one trial, found or created, never duplicated.

A retried (FailureConfig) or resumed (`sweep resume`) trial continues ITS run (found by
parent run + sweep + trial name) and epochs already logged are skipped, so a run has every
step exactly once; one `log_batch` call per epoch, step = epoch.
"""

from __future__ import annotations

import json
import os
from typing import Any, Iterable, Mapping

from . import names
from .store import (
    client_for,
    json_default,
    last_step,
    now_ms,
    numeric_items,
    param_value,
    quote,
    search_all,
    short_error,
)

_MAX_PARAMS_PER_BATCH = 100
_MAX_METRICS_PER_BATCH = 1000


class TrialRun:
    """The MLflow child run of one trial."""

    def __init__(self, client: Any, run_id: str, last_step: int, created: bool, uri: str | None = None) -> None:
        self.client = client
        self.uri = uri
        self.run_id = run_id
        self.last_step = last_step  # highest epoch already logged (0 = none)
        self.created = created

    @classmethod
    def open(
        cls,
        uri: str,
        experiment_id: str,
        parent_run_id: str,
        sweep: str,
        trial: Mapping[str, Any],
        trial_id: str = "",
        extra_tags: Mapping[str, str] | None = None,
    ) -> "TrialRun":
        """Find this trial's run (parent + sweep + trial name) or create it; reopen it when an
        earlier attempt ended it (FAILED/KILLED). `trial`: a trials.json entry."""
        from reid_core.config import SCHEMA_VERSION

        client = client_for(uri)
        name = trial["trial_name"]
        filt = (
            f"tags.`{names.PARENT}` = {quote(parent_run_id)} and tags.`{names.SWEEP}` = {quote(sweep)} "
            f"and tags.`{names.TRIAL_NAME}` = {quote(name)}"
        )
        found = search_all(client, experiment_id, filt)
        if not found:
            tags = {
                names.PARENT: parent_run_id,
                names.ROLE: names.ROLE_TRIAL,
                names.SWEEP: sweep,
                names.PRESET: str(trial["preset"]),
                names.COLUMN: str(trial["preset"]),
                names.SEED: str(trial["seed"]),
                names.TRIAL_ID: trial_id,
                names.TRIAL_NAME: name,
                names.GRID_POINT: str(trial["grid_point"]),
                names.SCHEMA_VERSION_TAG: str(SCHEMA_VERSION),
                **(extra_tags or {}),
            }
            run = client.create_run(experiment_id, tags=tags, run_name=name)
            return cls(client, run.info.run_id, 0, True, uri)
        run = found[0]  # the oldest, should a race ever have made two
        rid = run.info.run_id
        if run.info.status not in ("RUNNING", "FINISHED"):
            client.update_run(rid, status="RUNNING")
            for tag in (names.ERROR_TAG, names.STOPPED):
                if tag in run.data.tags:
                    client.delete_tag(rid, tag)
        if trial_id and run.data.tags.get(names.TRIAL_ID) != trial_id:
            client.set_tag(rid, names.TRIAL_ID, trial_id)
        return cls(client, rid, last_step(client, rid, names.STEP_KEY), False, uri)

    def start_system_metrics(self, log: Any = print) -> Any:
        """MLflow's own sampler (CPU, memory, disk, network and, with nvidia-ml-py, each
        GPU's utilisation and memory) logging `system/*` on this run every
        $MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL seconds (default 10) until `.finish()`;
        a retried attempt continues the steps. None when switched off
        (MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING=false) or unavailable."""
        if os.environ.get("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", "true").lower() in ("false", "0", "no"):
            return None
        try:
            from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

            monitor = SystemMetricsMonitor(
                self.run_id, sampling_interval=10, resume_logging=True, tracking_uri=self.uri
            )
            monitor.start()
            return monitor
        except Exception as e:  # never fail a trial for its telemetry
            log(f"system metrics not recorded: {type(e).__name__}: {e}")
            return None

    # Status ----------------------------------------------------------------------------
    def get_run(self) -> Any:
        return self.client.get_run(self.run_id)

    @property
    def status(self) -> str:
        return self.get_run().info.status

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        items = [RunTag(k, str(v)) for k, v in tags.items()]
        for i in range(0, len(items), 100):
            self.client.log_batch(self.run_id, tags=items[i : i + 100])

    def finish(self) -> None:
        self.client.set_terminated(self.run_id, "FINISHED")

    def fail(self, error: str) -> None:
        self.client.set_tag(self.run_id, names.ERROR_TAG, short_error(error))
        self.client.set_terminated(self.run_id, "FAILED")

    # Params and metrics ------------------------------------------------------------------
    def log_params(self, params: Mapping[str, Any]) -> None:
        """Params once (for the UI): a resumed run already has them (MLflow params are immutable)."""
        from mlflow.entities import Param

        have = self.get_run().data.params
        items = [Param(k, param_value(v)) for k, v in params.items() if k not in have]
        for i in range(0, len(items), _MAX_PARAMS_PER_BATCH):
            self.client.log_batch(self.run_id, params=items[i : i + _MAX_PARAMS_PER_BATCH])

    def log_epoch(self, metrics: Mapping[str, Any]) -> bool:
        """One log_batch call for one epoch (step = metrics['epoch']); False when the step
        was logged already (a retried/resumed trial recomputing an epoch)."""
        step = int(metrics[names.STEP_KEY])
        if step <= self.last_step:
            return False
        self._log_metrics(numeric_items(metrics), step)
        self.last_step = step
        return True

    def log_history(self, history: Iterable[Mapping[str, Any]]) -> int:
        """Backfill epochs a checkpoint knows but the run does not (killed between the
        checkpoint and the log); returns how many were logged."""
        return sum(1 for m in history if self.log_epoch(m))

    def log_summary(self, summary: Mapping[str, Any], step: int, skip: Iterable[str] = ()) -> bool:
        """The summary keys once, at the final step (skipped when already logged). `skip`:
        keys the final epoch logged at this step already (e.g. `swag_mAP`, copied into the
        summary), so no step has a key twice."""
        skip = set(skip)
        vals = {k: v for k, v in numeric_items(summary).items() if k not in skip}
        if not vals:
            return False
        probe = "final_mAP" if "final_mAP" in vals else next(iter(vals))
        if self.client.get_metric_history(self.run_id, probe):
            return False
        self._log_metrics(vals, step)
        return True

    def _log_metrics(self, values: Mapping[str, float], step: int) -> None:
        from mlflow.entities import Metric

        ts = now_ms()
        items = [Metric(k, float(v), ts, step) for k, v in values.items()]
        for i in range(0, len(items), _MAX_METRICS_PER_BATCH):
            self.client.log_batch(self.run_id, metrics=items[i : i + _MAX_METRICS_PER_BATCH])

    # Artifacts ------------------------------------------------------------------------
    def log_json(self, obj: Any, artifact_file: str) -> None:
        self.client.log_text(self.run_id, json.dumps(obj, indent=2, default=json_default), artifact_file)

    def log_file(self, path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path)
