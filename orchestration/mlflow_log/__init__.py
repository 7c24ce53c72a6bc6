"""The MLflow layer (docs/CONTRACTS.md): a thin layer on `MlflowClient`.

- `names`: every tag, artifact and metric name written or read, once;
- `store`: the tracking-URI rule, the reachability check, the client, the paginated search;
- `sweep_run.SweepTracker`: experiment (tags `mlflow.experimentKind`, `mlflow.note.content`)
  and parent run per sweep (artifacts `spec.yaml`, `trials.json`), closing what trials left open;
- `trial_run.TrialRun`: the child run per trial, found or created by its tags, per-epoch
  metrics in one `log_batch`, params (for the UI), artifacts;
- `outage.EpochLog`: a trial's epochs queued while the store is down, replayed in order.

Works against a SQLite store (`sqlite:////abs/path/mlflow.db`, the default), a tracking
server (`http://host:port`) and PostgreSQL directly (`postgresql://...`). Ray's `MLflowLoggerCallback` is deliberately not used (one REST
call per key per step, no parent run, new runs for restored trials). Named `mlflow_log`, not
`mlflow`, so that `import mlflow` always means the library. Importing this package does not
import mlflow (`compact-reid --help` stays fast).
"""

from .names import ERROR_TAG, STEP_KEY, TAG
from .store import (
    TrackingError,
    artifact_root_for,
    check_tracking_uri,
    client_for,
    default_tracking_uri,
    normalize_tracking_uri,
    numeric_items,
    resolve_tracking_uri,
    search_all,
)
from .sweep_run import SweepTracker
from .trial_run import TrialRun

__all__ = [
    "TrackingError",
    "TAG",
    "ERROR_TAG",
    "STEP_KEY",
    "default_tracking_uri",
    "normalize_tracking_uri",
    "resolve_tracking_uri",
    "check_tracking_uri",
    "client_for",
    "artifact_root_for",
    "search_all",
    "numeric_items",
    "SweepTracker",
    "TrialRun",
]
