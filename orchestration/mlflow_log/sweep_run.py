"""Driver side: the sweep's experiment and parent run, and closing what trials left open."""

from __future__ import annotations

import json
from typing import Any, Mapping

from . import names
from .store import artifact_root_for, client_for, quote, search_all, short_error


class SweepTracker:
    """Experiment and parent run of one sweep; used by the runner (driver)."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.client = client_for(uri)

    def experiment(self, name: str, description: str = "") -> str:
        """Get or create the sweep's experiment (restoring a deleted one); sets its tags."""
        from mlflow.entities import LifecycleStage

        exp = self.client.get_experiment_by_name(name)
        tags = {names.EXPERIMENT_KIND: names.EXPERIMENT_KIND_VALUE, names.SWEEP: name}
        if description:
            tags[names.NOTE] = description
        if exp is None:
            try:
                return self.client.create_experiment(
                    name, artifact_location=artifact_root_for(self.uri, name), tags=tags
                )
            except Exception:  # created concurrently by another driver: fall through to get
                exp = self.client.get_experiment_by_name(name)
                if exp is None:
                    raise
        if exp.lifecycle_stage == LifecycleStage.DELETED:
            self.client.restore_experiment(exp.experiment_id)
        for k, v in tags.items():
            if exp.tags.get(k) != v:
                self.client.set_experiment_tag(exp.experiment_id, k, v)
        return exp.experiment_id

    def start_parent(
        self,
        experiment_id: str,
        sweep: str,
        spec_text: str,
        trials: list[dict[str, Any]],
        extra_tags: Mapping[str, str] | None = None,
    ) -> str:
        from reid_core.config import SCHEMA_VERSION

        tags = {
            names.ROLE: names.ROLE_SWEEP,
            names.SWEEP: sweep,
            names.SCHEMA_VERSION_TAG: str(SCHEMA_VERSION),
            **(extra_tags or {}),
        }
        run = self.client.create_run(experiment_id, tags=tags, run_name=sweep)
        rid = run.info.run_id
        self.client.log_text(rid, spec_text, names.SPEC_ARTIFACT)
        self.client.log_text(rid, json.dumps(trials, indent=2), names.TRIALS_ARTIFACT)
        return rid

    def reopen_parent(self, run_id: str) -> None:
        run = self.client.get_run(run_id)
        if run.info.status != "RUNNING":
            self.client.update_run(run_id, status="RUNNING")

    def fail_parent(self, run_id: str, error: str) -> None:
        self.client.set_tag(run_id, names.ERROR_TAG, error[:2000])
        self.client.set_terminated(run_id, "FAILED")

    def log_parent_json(self, run_id: str, obj: Any, name: str) -> None:
        self.client.log_text(run_id, json.dumps(obj, indent=2, default=str), name)

    def children(self, parent_run_id: str, experiment_id: str) -> list[Any]:
        return search_all(self.client, experiment_id, f"tags.`{names.PARENT}` = {quote(parent_run_id)}")

    def finalize(
        self, parent_run_id: str, experiment_id: str, outcomes: Mapping[str, Mapping[str, Any]], end_parent: bool = True
    ) -> dict[str, int]:
        """Close what the trials could not close themselves, then the parent run.

        outcomes: trial name -> {"state": "TERMINATED" | "ERROR" | ..., "error": str | None,
        "complete": bool}. A child still RUNNING whose trial errored becomes FAILED (error
        tag); one that Ray terminated before its last epoch (ASHA) becomes KILLED
        (tag `names.STOPPED` = early), one still pending/running when the driver
        stopped KILLED (`interrupted`; a resume reopens it), an unknown one KILLED
        (`unknown`). The parent is FINISHED, or FAILED when every trial failed (only with
        end_parent). Returns counts per final status.
        """
        counts: dict[str, int] = {}
        for run in self.children(parent_run_id, experiment_id):
            out = outcomes.get(run.data.tags.get(names.TRIAL_NAME, run.info.run_name))
            status = self._close_child(run, out)
            counts[status] = counts.get(status, 0) + 1
        if end_parent:
            n_failed = sum(1 for o in outcomes.values() if o.get("state") == "ERROR")
            all_failed = bool(outcomes) and n_failed == len(outcomes)
            self.client.set_tag(parent_run_id, names.TRIALS_FAILED, str(n_failed))
            self.client.set_tag(parent_run_id, names.TRIALS_TOTAL, str(len(outcomes)))
            self.client.set_terminated(parent_run_id, "FAILED" if all_failed else "FINISHED")
        return counts

    def _close_child(self, run: Any, out: Mapping[str, Any] | None) -> str:
        status, rid, tags = run.info.status, run.info.run_id, run.data.tags
        if out is not None and out.get("state") == "ERROR":
            if out.get("error") and names.ERROR_TAG not in tags:
                self.client.set_tag(rid, names.ERROR_TAG, short_error(str(out["error"])))
            if status != "FAILED":
                self.client.set_terminated(rid, "FAILED")
            return "FAILED"
        if status != "RUNNING":
            return status
        if out is not None and out.get("complete"):
            self.client.set_terminated(rid, "FINISHED")
            return "FINISHED"
        why = ("early" if out.get("state") == "TERMINATED" else "interrupted") if out is not None else "unknown"
        self.client.set_tag(rid, names.STOPPED, why)
        self.client.set_terminated(rid, "KILLED")
        return "KILLED"
