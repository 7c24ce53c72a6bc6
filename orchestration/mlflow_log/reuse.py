"""Reuse across sweeps: FINISHED runs found by their identity tag, and copied into a new trial's run.

A trial whose identity (orchestration/sweep/sharing.py: every field that acts, seed,
dataset fingerprint, reid_core's training-semantics version) equals a FINISHED run's in
the store is not trained again: its child run gets that run's params, every metric's whole
history and its artifacts, and a tag naming where they came from. FAILED, KILLED or
running runs are never reused.
"""

from __future__ import annotations

import tempfile
from typing import Any, Iterable

from . import names
from .store import client_for, scoped_env

__all__ = ["ReuseError", "find_reusable", "copy_run"]

_NEEDED = (names.HISTORY_ARTIFACT, names.SUMMARY_ARTIFACT, names.WEIGHTS_DIR)


class ReuseError(RuntimeError):
    """A run found for reuse cannot be copied (its artifacts are gone, ...)."""


def find_reusable(uri: str, identities: Iterable[str]) -> dict[str, str]:
    """identity -> the newest FINISHED run with that identity, in any experiment of the store."""
    from mlflow.entities import ViewType

    want = set(identities)
    if not want:
        return {}
    client = client_for(uri)
    exps = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ACTIVE_ONLY)]
    found: dict[str, str] = {}
    for i in range(0, len(exps), 100):
        token = None
        while True:
            page = client.search_runs(
                exps[i : i + 100],
                filter_string=f"tags.`{names.IDENTITY}` LIKE '%' and attributes.status = 'FINISHED'",
                max_results=1000,
                order_by=["attributes.start_time DESC"],
                page_token=token,
            )
            for r in page:
                ident = r.data.tags.get(names.IDENTITY)
                if ident in want and ident not in found and names.REUSED_FROM not in r.data.tags:
                    found[ident] = r.info.run_id
            token = page.token
            if not token:
                break
    return found


def copy_run(client: Any, source_id: str, target_id: str) -> dict[str, float]:
    """Copy a FINISHED run's params, metric histories and artifacts into `target_id`;
    returns the source's latest metrics. ReuseError when something needed is gone."""
    from mlflow.entities import Metric, Param

    src = client.get_run(source_id)
    if src.info.status != "FINISHED":
        raise ReuseError(f"run {source_id} ended {src.info.status}, not FINISHED")
    try:
        have = {a.path for a in client.list_artifacts(source_id)}
    except Exception as e:  # the artifact store itself is gone
        raise ReuseError(f"the artifacts of run {source_id} cannot be listed ({type(e).__name__}: {e})") from None
    missing = [a for a in _NEEDED if a not in have]
    if missing:
        raise ReuseError(f"run {source_id} lacks {', '.join(missing)} (its artifacts are gone)")
    with tempfile.TemporaryDirectory(prefix="compact-reid-reuse-") as tmp:
        try:
            with scoped_env(MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false"):  # one bar per file in a trial's log
                local = client.download_artifacts(source_id, "", tmp)
        except Exception as e:
            raise ReuseError(f"the artifacts of run {source_id} cannot be read ({type(e).__name__}: {e})") from None
        client.log_artifacts(target_id, local)
    have_params = client.get_run(target_id).data.params
    params = [Param(k, v) for k, v in src.data.params.items() if k not in have_params]
    for i in range(0, len(params), 100):
        client.log_batch(target_id, params=params[i : i + 100])
    metrics = []
    for key in src.data.metrics:
        metrics += [Metric(key, m.value, m.timestamp, m.step) for m in client.get_metric_history(source_id, key)]
    for i in range(0, len(metrics), 1000):
        client.log_batch(target_id, metrics=metrics[i : i + 1000])
    return dict(src.data.metrics)
