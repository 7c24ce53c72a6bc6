"""MLflow tracking of sweeps: a thin layer on `MlflowClient` (docs/CONTRACTS.md).

- one experiment per sweep (tags `mlflow.experimentKind`, `mlflow.note.content`);
- a parent run per sweep (artifacts `spec.yaml`, `trials.json`);
- a child run per trial, FOUND OR CREATED by its tags (parent run + sweep + trial name):
  a retried (FailureConfig) or resumed (`sweep resume`) trial continues ITS run, and
  epochs already logged are skipped, so a run has every step exactly once;
- per-epoch metrics with one `log_batch` call per epoch, step = epoch;
- params = the flattened resolved TrainConfig + `data.name`, `data.root`;
- artifacts `config.json`, `metrics_history.json`, `summary.json`, `weights/final.pt`,
  `weights/best.pt`; status FINISHED / FAILED (`compact_reid.error`) / KILLED (stopped
  early by the scheduler, `compact_reid.stopped`).

Works against a SQLite store (`sqlite:////abs/path/mlflow.db`, the default) and a tracking
server (`http://host:port`). `MLflowLoggerCallback` is deliberately not used (one REST call
per key per step, no parent run, new runs for restored trials).
"""
from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping
from urllib.parse import urlparse

from reid_core.errors import ReIDError

__all__ = [
    "TrackingError",
    "TAG",
    "default_tracking_uri",
    "normalize_tracking_uri",
    "check_tracking_uri",
    "client_for",
    "SweepTracker",
    "TrialRun",
    "numeric_items",
]

TAG = "compact_reid."
ROLE, SWEEP, TRIAL_NAME = f"{TAG}role", f"{TAG}sweep", f"{TAG}trial_name"
PARENT = "mlflow.parentRunId"
ERROR_TAG = f"{TAG}error"
_MAX_TAG_CHARS = 5000
_MAX_PARAMS_PER_BATCH = 100
_MAX_METRICS_PER_BATCH = 1000
STEP_KEY = "epoch"  # logged every epoch: its history tells which steps a run already has


class TrackingError(ReIDError, RuntimeError):
    """The tracking URI cannot be reached or used; the message says which and how to fix it."""


# ---------------------------------------------------------------------------------
# URIs


def default_tracking_uri(runs_dir: str | os.PathLike[str] = "runs") -> str:
    """`sqlite:////<abs>/runs/mlflow.db` (four slashes: an absolute path)."""
    return "sqlite:///" + str((Path(runs_dir) / "mlflow.db").resolve())


def _sqlite_path(uri: str) -> Path | None:
    if not uri.startswith("sqlite:"):
        return None
    rest = uri[len("sqlite:"):]
    if not rest.startswith("///"):
        raise TrackingError(f"tracking URI {uri!r}: expected sqlite:///relative/path.db or sqlite:////abs/path.db")
    path = rest[3:].split("?", 1)[0]
    if path in ("", ":memory:"):
        raise TrackingError(f"tracking URI {uri!r}: an in-memory database cannot be shared by trials")
    return Path(path)


def normalize_tracking_uri(uri: str | None, runs_dir: str | os.PathLike[str] = "runs") -> str:
    """Absolute form of a tracking URI (Ray trials run in other working directories).

    None -> the default SQLite file; a bare `*.db` path -> sqlite; relative sqlite paths ->
    absolute; http(s)/postgresql/... unchanged (trailing slash removed).
    """
    if not uri:
        return default_tracking_uri(runs_dir)
    uri = uri.strip()
    if "://" not in uri and not uri.startswith("sqlite:"):
        if uri.endswith((".db", ".sqlite")):
            return "sqlite:///" + str(Path(uri).resolve())
        raise TrackingError(f"tracking URI {uri!r}: give sqlite:///path/to/mlflow.db, http://host:port or "
                            "a database URI (the MLflow file store is deprecated)")
    p = _sqlite_path(uri)
    if p is not None:
        query = uri.split("?", 1)[1] if "?" in uri else ""
        return "sqlite:///" + str(p.resolve()) + (f"?{query}" if query else "")
    if uri.startswith(("file:",)):
        raise TrackingError(f"tracking URI {uri!r}: the MLflow file store is deprecated; use sqlite:///path/mlflow.db")
    return uri.rstrip("/")


def artifact_root_for(uri: str, experiment: str) -> str | None:
    """Artifact location of a new experiment: `mlartifacts/<experiment>` next to the SQLite
    file, so artifacts never land in a trial's working directory (MLflow's default is a
    relative ./mlruns); None (the server's choice: proxied artifacts) for other stores."""
    p = _sqlite_path(uri)
    if p is None:
        return None
    return (p.parent / "mlartifacts" / experiment).resolve().as_uri()


@contextmanager
def _env(**values: str) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def check_tracking_uri(uri: str, timeout: float = 10.0) -> None:
    """Fail fast (TrackingError) when the tracking store cannot be reached; creates nothing
    but the SQLite file (and its folder) for a sqlite URI."""
    scheme = urlparse(uri).scheme
    if scheme in ("http", "https"):
        url = uri.rstrip("/") + "/health"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 (user-given URL)
                if r.status != 200:
                    raise TrackingError(f"tracking server {uri}: /health answered HTTP {r.status}")
        except urllib.error.HTTPError as e:
            raise TrackingError(f"tracking server {uri}: /health answered HTTP {e.code}") from None
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise TrackingError(
                f"cannot reach the MLflow tracking server at {uri} ({reason}); start one with "
                "`compact-reid server` or pass --tracking-uri sqlite:///path/mlflow.db") from None
    p = _sqlite_path(uri)
    if p is not None:
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise TrackingError(f"tracking URI {uri}: cannot create {p.parent} ({e})") from None
    try:
        with _env(MLFLOW_HTTP_REQUEST_MAX_RETRIES="0", MLFLOW_HTTP_REQUEST_TIMEOUT=str(int(timeout))):
            client_for(uri).search_experiments(max_results=1)
    except TrackingError:
        raise
    except Exception as e:  # mlflow raises MlflowException, sqlalchemy errors, requests errors...
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        hint = ""
        if "401" in msg or "Unauthorized" in msg or "403" in msg:
            hint = " (basic-auth server: set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD)"
        raise TrackingError(f"tracking URI {uri} is not usable: {type(e).__name__}: {msg[:300]}{hint}") from None


def client_for(uri: str) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


# ---------------------------------------------------------------------------------
# Helpers


def numeric_items(d: Mapping[str, Any]) -> dict[str, float]:
    """The numeric (non-bool, non-None) entries of a dict, as floats."""
    out = {}
    for k, v in d.items():
        if isinstance(v, bool) or v is None:
            continue
        if isinstance(v, (int, float)):
            out[k] = float(v)
        elif hasattr(v, "item") and getattr(v, "ndim", 1) == 0:  # numpy / torch scalars
            try:
                out[k] = float(v.item())
            except (TypeError, ValueError):
                continue
    return out


def _q(v: str) -> str:
    return "'" + str(v).replace("\\", "\\\\").replace("'", "\\'") + "'"


def _now_ms() -> int:
    return int(time.time() * 1000)


def _param_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return json.dumps(list(v))
    return str(v)


def _short_error(error: str) -> str:
    error = error.strip()
    return error if len(error) <= _MAX_TAG_CHARS else error[: _MAX_TAG_CHARS - 15] + "\n...(truncated)"


# ---------------------------------------------------------------------------------
# Sweep (driver side)


class SweepTracker:
    """Experiment and parent run of one sweep; used by the runner (driver)."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.client = client_for(uri)

    def experiment(self, name: str, description: str = "") -> str:
        """Get or create the sweep's experiment (restoring a deleted one); sets its tags."""
        from mlflow.entities import LifecycleStage

        exp = self.client.get_experiment_by_name(name)
        tags = {"mlflow.experimentKind": "custom_model_development", SWEEP: name}
        if description:
            tags["mlflow.note.content"] = description
        if exp is None:
            try:
                return self.client.create_experiment(name, artifact_location=artifact_root_for(self.uri, name), tags=tags)
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

    def start_parent(self, experiment_id: str, sweep: str, spec_text: str, trials: list[dict[str, Any]],
                     extra_tags: Mapping[str, str] | None = None) -> str:
        from reid_core.config import SCHEMA_VERSION

        tags = {ROLE: "sweep", SWEEP: sweep, f"{TAG}schema_version": str(SCHEMA_VERSION), **(extra_tags or {})}
        run = self.client.create_run(experiment_id, tags=tags, run_name=sweep)
        rid = run.info.run_id
        self.client.log_text(rid, spec_text, "spec.yaml")
        self.client.log_text(rid, json.dumps(trials, indent=2), "trials.json")
        return rid

    def reopen_parent(self, run_id: str) -> None:
        run = self.client.get_run(run_id)
        if run.info.status != "RUNNING":
            self.client.update_run(run_id, status="RUNNING")

    def log_parent_json(self, run_id: str, obj: Any, name: str) -> None:
        self.client.log_text(run_id, json.dumps(obj, indent=2, default=str), name)

    def children(self, parent_run_id: str, experiment_id: str) -> list[Any]:
        return _search_all(self.client, experiment_id, f"tags.`{PARENT}` = {_q(parent_run_id)}")

    def finalize(self, parent_run_id: str, experiment_id: str, outcomes: Mapping[str, Mapping[str, Any]],
                 end_parent: bool = True) -> dict[str, int]:
        """Close what the trials could not close themselves, then the parent run.

        outcomes: trial name -> {"state": "TERMINATED" | "ERROR" | ..., "error": str | None,
        "complete": bool}. A child still RUNNING whose trial errored becomes FAILED (error
        tag); one that Ray terminated before its last epoch (ASHA) becomes KILLED
        (`compact_reid.stopped = early`), one still pending/running when the driver
        stopped KILLED (`interrupted`; a resume reopens it), an unknown one KILLED
        (`unknown`). The parent is FINISHED, or FAILED when every trial failed (only with
        end_parent). Returns counts per final status.
        """
        counts: dict[str, int] = {}
        for run in self.children(parent_run_id, experiment_id):
            name = run.data.tags.get(TRIAL_NAME, run.info.run_name)
            out = outcomes.get(name)
            status = run.info.status
            rid = run.info.run_id
            if out is not None and out.get("state") == "ERROR":
                if status != "FAILED":
                    if out.get("error") and ERROR_TAG not in run.data.tags:
                        self.client.set_tag(rid, ERROR_TAG, _short_error(str(out["error"])))
                    self.client.set_terminated(rid, "FAILED")
                    status = "FAILED"
                elif out.get("error") and ERROR_TAG not in run.data.tags:
                    self.client.set_tag(rid, ERROR_TAG, _short_error(str(out["error"])))
            elif status == "RUNNING":
                if out is not None and out.get("complete"):
                    self.client.set_terminated(rid, "FINISHED")
                    status = "FINISHED"
                else:
                    why = ("early" if out.get("state") == "TERMINATED" else "interrupted") if out is not None else "unknown"
                    self.client.set_tag(rid, f"{TAG}stopped", why)
                    self.client.set_terminated(rid, "KILLED")
                    status = "KILLED"
            counts[status] = counts.get(status, 0) + 1
        if end_parent:
            n_failed = sum(1 for o in outcomes.values() if o.get("state") == "ERROR")
            all_failed = bool(outcomes) and n_failed == len(outcomes)
            self.client.set_tag(parent_run_id, f"{TAG}trials_failed", str(n_failed))
            self.client.set_tag(parent_run_id, f"{TAG}trials_total", str(len(outcomes)))
            self.client.set_terminated(parent_run_id, "FAILED" if all_failed else "FINISHED")
        return counts


def _search_all(client: Any, experiment_id: str, filter_string: str) -> list[Any]:
    runs: list[Any] = []
    token = None
    while True:
        page = client.search_runs([experiment_id], filter_string=filter_string, max_results=1000,
                                  order_by=["attributes.start_time ASC"], page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


# ---------------------------------------------------------------------------------
# Trial (worker side)


class TrialRun:
    """The MLflow child run of one trial; found or created, never duplicated."""

    def __init__(self, client: Any, run_id: str, last_step: int, created: bool) -> None:
        self.client = client
        self.run_id = run_id
        self.last_step = last_step  # highest epoch already logged (0 = none)
        self.created = created

    @classmethod
    def open(cls, uri: str, experiment_id: str, parent_run_id: str, sweep: str, trial: Mapping[str, Any],
             trial_id: str = "", extra_tags: Mapping[str, str] | None = None) -> "TrialRun":
        """Find this trial's run (parent + sweep + trial name) or create it; reopen it when an
        earlier attempt ended it (FAILED/KILLED)."""
        from reid_core.config import SCHEMA_VERSION

        client = client_for(uri)
        name = trial["trial_name"]
        filt = (f"tags.`{PARENT}` = {_q(parent_run_id)} and tags.`{SWEEP}` = {_q(sweep)} "
                f"and tags.`{TRIAL_NAME}` = {_q(name)}")
        found = _search_all(client, experiment_id, filt)
        tags = {
            PARENT: parent_run_id,
            ROLE: "trial",
            SWEEP: sweep,
            f"{TAG}preset": str(trial["preset"]),
            f"{TAG}column": str(trial["preset"]),
            f"{TAG}seed": str(trial["seed"]),
            f"{TAG}trial_id": trial_id,
            TRIAL_NAME: name,
            f"{TAG}grid_point": str(trial["grid_point"]),
            f"{TAG}schema_version": str(SCHEMA_VERSION),
            **(extra_tags or {}),
        }
        if not found:
            run = client.create_run(experiment_id, tags=tags, run_name=name)
            return cls(client, run.info.run_id, 0, True)
        run = found[0]  # the oldest, should a race ever have made two
        rid = run.info.run_id
        if run.info.status != "RUNNING" and run.info.status != "FINISHED":
            client.update_run(rid, status="RUNNING")
            if ERROR_TAG in run.data.tags:
                client.delete_tag(rid, ERROR_TAG)
            if f"{TAG}stopped" in run.data.tags:
                client.delete_tag(rid, f"{TAG}stopped")
        if run.data.tags.get(f"{TAG}trial_id") != trial_id and trial_id:
            client.set_tag(rid, f"{TAG}trial_id", trial_id)
        history = client.get_metric_history(rid, STEP_KEY)
        last = max((int(m.step) for m in history), default=0)
        return cls(client, rid, last, False)

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
            self.client.log_batch(self.run_id, tags=items[i:i + 100])

    def finish(self) -> None:
        self.client.set_terminated(self.run_id, "FINISHED")

    def fail(self, error: str) -> None:
        self.client.set_tag(self.run_id, ERROR_TAG, _short_error(error))
        self.client.set_terminated(self.run_id, "FAILED")

    # Params and metrics ------------------------------------------------------------------
    def log_params(self, params: Mapping[str, Any]) -> None:
        """Params once: a resumed run already has them (MLflow params are immutable)."""
        from mlflow.entities import Param

        have = self.get_run().data.params
        items = [Param(k, _param_value(v)) for k, v in params.items() if k not in have]
        for i in range(0, len(items), _MAX_PARAMS_PER_BATCH):
            self.client.log_batch(self.run_id, params=items[i:i + _MAX_PARAMS_PER_BATCH])

    def log_epoch(self, metrics: Mapping[str, Any]) -> bool:
        """One log_batch call for one epoch (step = metrics['epoch']); False when the step
        was logged already (a retried/resumed trial recomputing an epoch)."""
        step = int(metrics[STEP_KEY])
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

        ts = _now_ms()
        items = [Metric(k, float(v), ts, step) for k, v in values.items()]
        for i in range(0, len(items), _MAX_METRICS_PER_BATCH):
            self.client.log_batch(self.run_id, metrics=items[i:i + _MAX_METRICS_PER_BATCH])

    # Artifacts ------------------------------------------------------------------------
    def log_json(self, obj: Any, artifact_file: str) -> None:
        self.client.log_text(self.run_id, json.dumps(obj, indent=2, default=_json_default), artifact_file)

    def log_file(self, path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path)


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):
        try:
            return o.item()
        except (TypeError, ValueError):
            pass
    if hasattr(o, "tolist"):
        return o.tolist()
    return str(o)
