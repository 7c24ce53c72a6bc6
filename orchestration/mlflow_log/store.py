"""The tracking store: URI rule, reachability check, client, paginated search.

The one tracking-URI rule (`normalize_tracking_uri`): None -> `sqlite:///<abs>/runs/mlflow.db`,
a bare `*.db` path -> sqlite, relative sqlite paths -> absolute (Ray trials run in other
working directories), http(s)/postgresql/... unchanged without a trailing slash.
"""

from __future__ import annotations

import json
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence
from urllib.parse import urlparse

from reid_core.errors import ReIDError

_MAX_TAG_CHARS = 5000


class TrackingError(ReIDError, RuntimeError):
    """The tracking URI cannot be reached or used; the message says which and how to fix it."""


def default_tracking_uri(runs_dir: str | os.PathLike[str] = "runs") -> str:
    """`sqlite:////<abs>/runs/mlflow.db` (four slashes: an absolute path): the store
    `compact-reid server` serves by default (mlflow_server.server.default_store)."""
    from mlflow_server.server import default_store

    return default_store(runs_dir)[0]


def sqlite_path(uri: str) -> Path | None:
    """The database file of a sqlite URI (None for other stores)."""
    if not uri.startswith("sqlite:"):
        return None
    rest = uri[len("sqlite:") :]
    if not rest.startswith("///"):
        raise TrackingError(f"tracking URI {uri!r}: expected sqlite:///relative/path.db or sqlite:////abs/path.db")
    path = rest[3:].split("?", 1)[0]
    if path in ("", ":memory:"):
        raise TrackingError(f"tracking URI {uri!r}: an in-memory database cannot be shared by trials")
    return Path(path)


def normalize_tracking_uri(uri: str | None, runs_dir: str | os.PathLike[str] = "runs") -> str:
    """Absolute form of a tracking URI (module docstring)."""
    if not uri:
        return default_tracking_uri(runs_dir)
    uri = uri.strip()
    if "://" not in uri and not uri.startswith("sqlite:"):
        if uri.endswith((".db", ".sqlite")):
            return "sqlite:///" + str(Path(uri).resolve())
        raise TrackingError(
            f"tracking URI {uri!r}: give sqlite:///path/to/mlflow.db, http://host:port or "
            "a database URI (the MLflow file store is deprecated)"
        )
    path = sqlite_path(uri)
    if path is not None:
        query = uri.split("?", 1)[1] if "?" in uri else ""
        return "sqlite:///" + str(path.resolve()) + (f"?{query}" if query else "")
    if uri.startswith("file:"):
        raise TrackingError(f"tracking URI {uri!r}: the MLflow file store is deprecated; use sqlite:///path/mlflow.db")
    return uri.rstrip("/")


def resolve_tracking_uri(uri: str | None, runs_dir: str | os.PathLike[str] = "runs") -> str:
    """For commands that read a store: --tracking-uri, else $MLFLOW_TRACKING_URI, else the default."""
    return normalize_tracking_uri((uri or os.environ.get("MLFLOW_TRACKING_URI") or "").strip() or None, runs_dir)


def artifact_root_for(uri: str, experiment: str) -> str | None:
    """Artifact location of a new experiment: `mlartifacts/<experiment>` next to the SQLite
    file, so artifacts never land in a trial's working directory (MLflow's default is a
    relative ./mlruns); None (the server's choice: proxied artifacts) for other stores."""
    path = sqlite_path(uri)
    if path is None:
        return None
    return (path.parent / "mlartifacts" / experiment).resolve().as_uri()


@contextmanager
def scoped_env(**values: str) -> Iterator[None]:
    """Set environment variables for a block (MLflow reads its HTTP settings from there)."""
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


def quick_failing(timeout: float = 5) -> Any:
    """No retries and a short timeout: for probes that must not hang on a dead server."""
    return scoped_env(MLFLOW_HTTP_REQUEST_MAX_RETRIES="0", MLFLOW_HTTP_REQUEST_TIMEOUT=str(int(timeout)))


def check_tracking_uri(uri: str, timeout: float = 10.0) -> str:
    """Fail fast (TrackingError) when the tracking store cannot be reached or refuses this
    client; else one line saying which store was reached (a person can see where a sweep
    will write). Creates only what opening the store creates: the SQLite file (and its
    folder), or MLflow's tables in an empty PostgreSQL database."""
    scheme = urlparse(uri).scheme
    if scheme in ("http", "https"):
        from mlflow_server.server import probe_health

        answer = probe_health(uri, timeout)
        if isinstance(answer, str):
            raise TrackingError(
                f"cannot reach the MLflow tracking server at {uri} ({answer}); start one with "
                "`compact-reid server` or pass --tracking-uri sqlite:///path/mlflow.db"
            )
        if answer != 200:
            raise TrackingError(f"tracking server {uri}: /health answered HTTP {answer}")
        reached = _check_server_access(uri, timeout)
    elif uri.startswith("postgresql"):  # MLflow straight on the database (no server)
        from mlflow_server.postgres import BackendStoreError, check_backend_store, redact

        try:
            check_backend_store(uri, timeout, what="tracking URI")
        except BackendStoreError as e:
            raise TrackingError(str(e)) from None
        reached = f"PostgreSQL database {redact(uri)} (no server)"
    else:
        reached = f"store {uri} (no server)"
    path = sqlite_path(uri)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise TrackingError(f"tracking URI {uri}: cannot create {path.parent} ({e})") from None
        reached = f"SQLite file {path} (no server)"
    try:
        with quick_failing(timeout):
            client_for(uri).search_experiments(max_results=1)
    except TrackingError:
        raise
    except Exception as e:  # mlflow raises MlflowException, sqlalchemy errors, requests errors...
        msg = _scrub(str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__)
        raise TrackingError(f"tracking URI {uri} is not usable: {type(e).__name__}: {msg[:300]}") from None
    return reached


_USER_VAR, _PASSWORD_VAR = "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"


def _scrub(text: str) -> str:
    """`text` without the tracking password, should a message ever echo it."""
    from mlflow.utils.credentials import read_mlflow_creds

    password = read_mlflow_creds().password
    return text.replace(password, "***") if password else text


def _check_server_access(uri: str, timeout: float) -> str:
    """One authenticated request, with the credentials the sweep's trials will use
    (MLflow's own: MLFLOW_TRACKING_USERNAME/PASSWORD or ~/.mlflow/credentials, a token...);
    a refusal names the variable to fix, never the password. Returns what the server says
    about itself: its version (/version) and store kind (server-info, MLflow 3.x)."""
    from mlflow.utils.credentials import get_default_host_creds
    from mlflow.utils.rest_utils import http_request

    creds = get_default_host_creds(uri)

    def get(endpoint: str, **params: Any) -> Any:
        return http_request(
            creds, endpoint, "GET", max_retries=0, timeout=timeout, raise_on_status=False, params=params or None
        )

    try:
        response = get("/api/2.0/mlflow/experiments/search", max_results=1)
    except Exception as e:  # requests' connection errors, TLS errors...
        raise TrackingError(f"tracking server {uri}: {type(e).__name__}: {_scrub(str(e))[:300]}") from None
    user = creds.username
    if response.status_code == 401:
        if creds.token or creds.auth or creds.aws_sigv4:
            raise TrackingError(
                f"tracking server {uri} refused the credentials configured for MLflow (HTTP 401): "
                "check MLFLOW_TRACKING_TOKEN / MLFLOW_TRACKING_AUTH"
            )
        if not user and not creds.password:
            raise TrackingError(
                f"tracking server {uri} needs a user name and password (HTTP 401): set "
                f"{_USER_VAR} and {_PASSWORD_VAR} (here, and for every Ray node)"
            )
        if not creds.password:
            raise TrackingError(f"tracking server {uri} refused user {user!r} (HTTP 401): {_PASSWORD_VAR} is not set")
        if not user:
            raise TrackingError(f"tracking server {uri} refused the password (HTTP 401): {_USER_VAR} is not set")
        raise TrackingError(
            f"tracking server {uri} refused user {user!r} (HTTP 401): wrong user name or password; "
            f"check {_PASSWORD_VAR} (and {_USER_VAR})"
        )
    if response.status_code == 403:
        raise TrackingError(
            f"tracking server {uri}: user {user!r} may not read experiments (HTTP 403); ask the "
            "server's admin for a permission, or use another user"
        )
    if response.status_code != 200:
        raise TrackingError(
            f"tracking server {uri}: searching experiments answered HTTP {response.status_code} "
            f"({_scrub(response.text.strip())[:200]})"
        )
    version = store = None
    try:
        version_info = get("/version")
        version = version_info.text.strip()[:40] if version_info.status_code == 200 else None
        info = get("/api/3.0/mlflow/server-info")
        if info.status_code == 200:
            store = info.json().get("store_type")
    except Exception:  # noqa: BLE001 - older servers lack these: said below
        pass
    as_who = f"as user {user!r}" if user else "without credentials"
    return (
        f"MLflow server {version or '(version not reported)'} at {uri}, store {store or 'kind not reported'}, {as_who}"
    )


def client_for(uri: str) -> Any:
    """The client of a store. Artifacts are read through the tracking server's proxy: MLflow
    would otherwise download a server's S3 artifacts straight from presigned S3 URLs, and a
    trial or a `tables` run then needs a route to the bucket, which the proxy exists to spare
    it (a user's MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD wins)."""
    from mlflow.tracking import MlflowClient

    os.environ.setdefault("MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD", "false")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # a bar per file read, in a sweep's log
    return MlflowClient(tracking_uri=uri)


def search_all(
    client: Any, experiment_id: str, filter_string: str = "", order_by: Sequence[str] = ("attributes.start_time ASC",)
) -> list[Any]:
    """Every run matching `filter_string`, following MLflow's page tokens (the one pager)."""
    runs: list[Any] = []
    token = None
    while True:
        page = client.search_runs(
            [experiment_id], filter_string=filter_string, max_results=1000, order_by=list(order_by), page_token=token
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def quote(v: str) -> str:
    """A string literal for an MLflow search filter."""
    return "'" + str(v).replace("\\", "\\\\").replace("'", "\\'") + "'"


def last_step(client: Any, run_id: str, key: str = "epoch") -> int:
    """Highest step logged for `key` (0 = none)."""
    try:
        history = client.get_metric_history(run_id, key)
    except Exception:  # noqa: BLE001 - some stores raise for an unknown key
        return 0
    return max((int(m.step) for m in history), default=0)


def now_ms() -> int:
    return int(time.time() * 1000)


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


def param_value(v: Any) -> str:
    """MLflow params are text (for the UI): booleans as true/false, lists as JSON."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return json.dumps(list(v))
    return str(v)


def short_error(error: str) -> str:
    error = error.strip()
    return error if len(error) <= _MAX_TAG_CHARS else error[: _MAX_TAG_CHARS - 15] + "\n...(truncated)"


def json_default(o: Any) -> Any:
    if hasattr(o, "item"):
        try:
            return o.item()
        except (TypeError, ValueError):
            pass
    if hasattr(o, "tolist"):
        return o.tolist()
    return str(o)


def read_json_artifact(client: Any, run_id: str, path: str) -> Any:
    """A JSON artifact of a run, downloaded to a temporary folder and parsed."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        return json.loads(Path(client.download_artifacts(run_id, path, tmp)).read_text())


def quiet_store_logs() -> None:
    """Keep the store's migration chatter ("Creating initial MLflow database tables...") off a
    command's console; warnings still show."""
    import logging

    for name in ("alembic", "mlflow.store.db.utils", "mlflow.tracking", "mlflow.store"):
        logging.getLogger(name).setLevel(logging.WARNING)
