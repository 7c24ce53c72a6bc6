"""Start a real `mlflow server` process (UI + REST API + proxied artifacts).

Local default: SQLite backend `runs/mlflow.db` and artifacts in `runs/mlartifacts`, bound
to 127.0.0.1 (the same store `compact-reid sweep run` writes by default, so the UI shows
the sweeps). The cluster recipe (PostgreSQL, S3 artifacts, basic auth) is in mlflow_server/README.md.

    from mlflow_server import start_server
    with start_server(port=0) as srv:          # port 0 = a free port
        print(srv.url)                          # http://127.0.0.1:PORT, /health answered
    # stopped (the whole process group: uvicorn/gunicorn workers included)

This module does not import mlflow: the server runs as `python -m mlflow server` under a
tether (process_tether/tether.py) in a session of its own, stopped by process-group id. The
tether ends the server and every process below it when this process dies, SIGKILL
included; a port in use is refused before anything starts, and the process answering
/health must be the one started here.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO, Sequence

from process_tether import descendants, tethered

from .ports import busy_port_message, describe, find_free_port, foreign_listeners, host_problem, port_problem
from .postgres import BackendStoreError, check_backend_store, redact

__all__ = [
    "ServerHandle",
    "ServerError",
    "start_server",
    "server_command",
    "default_store",
    "find_free_port",
    "basic_auth_env",
    "store_problem",
    "probe_health",
    "wait_healthy",
]


class ServerError(RuntimeError):
    """The server did not start (the message holds the tail of its log)."""


def default_store(runs_dir: str | os.PathLike[str] = "runs") -> tuple[str, str]:
    """(backend store URI, artifacts folder) of the local default: `runs/mlflow.db`, `runs/mlartifacts`."""
    runs = Path(runs_dir).resolve()
    return "sqlite:///" + str(runs / "mlflow.db"), str(runs / "mlartifacts")


# MLflow's database stores (mlflow.store.db.db_types), each with an optional +driver.
STORE_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")


def store_problem(uri: str, flag: str = "--backend-store-uri") -> str | None:
    """Why `uri` is not a backend store URI MLflow's server can use here, or None."""
    scheme = uri.split("://", 1)[0].split("+", 1)[0].lower() if "://" in uri else ""
    if scheme in STORE_SCHEMES:
        return None
    what = f"unknown scheme {scheme!r}" if scheme else "not a URI (a bare path is MLflow's deprecated file store)"
    return (
        f"{flag} {redact(uri)!r}: {what}; give sqlite:///path/mlflow.db, "
        "postgresql://USER:PASSWORD@HOST:PORT/DB, mysql://... or mssql://..."
    )


def _abs_store(uri: str) -> str:
    """Relative sqlite paths / bare folders made absolute (the server may run elsewhere)."""
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return "sqlite:///" + str(Path(uri[len("sqlite:///") :]).resolve())
    return uri


def _abs_dest(dest: str) -> str:
    return dest if "://" in dest else str(Path(dest).resolve())


def server_command(
    host: str = "127.0.0.1",
    port: int = 5000,
    backend_store_uri: str | None = None,
    artifacts_destination: str | None = None,
    workers: int | None = 1,
    app_name: str | None = None,
    allowed_hosts: str | None = None,
    extra_args: Sequence[str] = (),
    runs_dir: str | os.PathLike[str] = "runs",
) -> list[str]:
    """The `python -m mlflow server ...` argv."""
    store, dest = default_store(runs_dir)
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        _abs_store(backend_store_uri or store),
        "--artifacts-destination",
        _abs_dest(artifacts_destination or dest),
        "--host",
        host,
        "--port",
        str(port),
    ]
    if workers:
        cmd += ["--workers", str(workers)]
    if app_name:
        cmd += ["--app-name", app_name]
    if allowed_hosts:
        cmd += ["--allowed-hosts", allowed_hosts]
    return cmd + list(extra_args)


def basic_auth_env(runs_dir: str | os.PathLike[str] = "runs", environ: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for `mlflow server --app-name basic-auth`, checked before it starts.

    - MLFLOW_AUTH_CONFIG_PATH unset: `<runs_dir>/basic_auth.ini` (written once) keeps the
      user database in `<runs_dir>/basic_auth.db`; MLflow's own default is basic_auth.db
      in whatever folder the server was started from.
    - The first start creates the admin user and needs MLFLOW_AUTH_ADMIN_PASSWORD (MLflow
      ships no default): refused here, naming the variable, when it is missing.
    - MLFLOW_FLASK_SERVER_SECRET_KEY unset: a random key for this run (the workers share
      it; set it yourself to keep browser sessions across restarts or several servers).
    """
    import importlib.util

    if importlib.util.find_spec("flask_wtf") is None:  # the server runs on this interpreter
        raise ServerError(
            "--app-name basic-auth: MLflow's auth app needs Flask-WTF, not installed here: "
            "pip install 'compact-reid[cluster]' (or pip install 'mlflow[auth]')"
        )
    env = dict(os.environ if environ is None else environ)
    out: dict[str, str] = {}
    if not env.get("MLFLOW_AUTH_CONFIG_PATH"):
        runs = Path(runs_dir).resolve()
        db = runs / "basic_auth.db"
        admin = env.get("MLFLOW_AUTH_ADMIN_USERNAME") or "admin"
        if not db.exists() and not env.get("MLFLOW_AUTH_ADMIN_PASSWORD"):
            raise ServerError(
                f"--app-name basic-auth: the first start creates the admin user '{admin}' in {db} and needs "
                "its password: set MLFLOW_AUTH_ADMIN_PASSWORD (MLflow ships no default; at least 12 characters), "
                "or point MLFLOW_AUTH_CONFIG_PATH at your basic_auth.ini"
            )
        ini = runs / "basic_auth.ini"
        if not ini.exists():
            runs.mkdir(parents=True, exist_ok=True)
            ini.write_text(
                "[mlflow]\n# written by compact-reid server --app-name basic-auth (mlflow_server/README.md)\n"
                f"default_permission = READ\ndatabase_uri = sqlite:///{db}\nadmin_username = admin\n"
            )
        out["MLFLOW_AUTH_CONFIG_PATH"] = str(ini)
    if not env.get("MLFLOW_FLASK_SERVER_SECRET_KEY"):
        out["MLFLOW_FLASK_SERVER_SECRET_KEY"] = secrets.token_hex(32)
    return out


def probe_health(url: str, timeout: float = 2.0) -> int | str:
    """One GET of `url/health`: the HTTP status when the server answered, else why not."""
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/health", timeout=timeout) as response:  # noqa: S310 (user-given URL)
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except (urllib.error.URLError, OSError) as error:
        return str(getattr(error, "reason", error))


def wait_healthy(
    url: str, timeout: float = 90.0, process: subprocess.Popen | None = None, interval: float = 0.25
) -> None:
    """Poll `url/health` until it answers 200; ServerError on timeout or if `process` exits."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise ServerError(f"mlflow server exited with code {process.returncode} before answering /health")
        answer = probe_health(url)
        if answer == 200:
            return
        last = f"HTTP {answer}" if isinstance(answer, int) else answer
        time.sleep(interval)
    raise ServerError(f"mlflow server at {url} did not answer /health within {timeout:.0f}s ({last})")


class ServerHandle:
    """A running `mlflow server`: `.url`, `.stop()`; a context manager."""

    def __init__(
        self,
        process: subprocess.Popen,
        url: str,
        log_path: Path | None,
        cmd: list[str],
        log_file: IO[bytes] | None = None,
    ) -> None:
        self.process = process
        self.url = url
        self.log_path = log_path
        self.cmd = cmd
        self._log_file = log_file

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-chars:]

    @property
    def server_pid(self) -> int | None:
        """The `mlflow server` process (the tether's child); None once it is gone."""
        below = descendants(self.process.pid) if self.alive else []
        return below[0] if below else None

    def processes(self) -> list[int]:
        """The tether's pid and every live process below it (server, workers, job runners)."""
        return [self.process.pid, *descendants(self.process.pid)] if self.alive else []

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the server's process group (the tether's session), then SIGKILL whatever
        is left after `timeout` seconds."""
        if self.process.poll() is None:
            pgid = self.process.pid  # start_new_session: the group id is the tether's pid
            try:
                os.killpg(pgid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(pgid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.process.wait(timeout=10)
        # workers of the group may outlive the leader for a moment
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def wait(self) -> int:
        return self.process.wait()

    def __enter__(self) -> "ServerHandle":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"ServerHandle(url={self.url!r}, pid={self.process.pid}, alive={self.alive})"


def start_server(
    host: str = "127.0.0.1",
    port: int = 0,
    backend_store_uri: str | None = None,
    artifacts_destination: str | None = None,
    runs_dir: str | os.PathLike[str] = "runs",
    workers: int | None = 1,
    app_name: str | None = None,
    allowed_hosts: str | None = None,
    extra_args: Sequence[str] = (),
    timeout: float = 120.0,
    log_path: str | os.PathLike[str] | None = None,
    foreground_output: bool = False,
) -> ServerHandle:
    """Start `mlflow server` and wait until /health answers; returns a ServerHandle.

    port 0 picks a free port. The server's output goes to `log_path` (default
    `<runs_dir>/mlflow-server-<port>.log`), or to this process's terminal with
    `foreground_output=True`. The SQLite folder and artifacts folder are created.

    Refused (ServerError naming the flag of `compact-reid server`) before anything starts:
    a port outside 0-65535, a host that is not this machine's, a store URI of an unknown
    scheme or that cannot be connected to, a port something already listens on (naming
    the pid and command). The server ends with this process (under a tether), and the
    process answering /health must be the one started here.
    """
    for problem in (
        port_problem(port),
        host_problem(host),
        store_problem(backend_store_uri) if backend_store_uri else None,
    ):
        if problem:
            raise ServerError(problem)
    if port == 0:
        port = find_free_port(host if host not in ("0.0.0.0", "::") else "127.0.0.1")
    else:
        busy = busy_port_message(host, port)
        if busy:
            raise ServerError(busy)
    cmd = server_command(
        host, port, backend_store_uri, artifacts_destination, workers, app_name, allowed_hosts, extra_args, runs_dir
    )
    store = cmd[cmd.index("--backend-store-uri") + 1]
    try:
        check_backend_store(store)
    except BackendStoreError as error:
        raise ServerError(str(error)) from None
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    if app_name == "basic-auth":
        env.update(basic_auth_env(runs_dir, env))  # before any folder or log: a refusal leaves nothing
    if store.startswith("sqlite:///"):
        Path(store[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    dest = cmd[cmd.index("--artifacts-destination") + 1]
    if "://" not in dest:
        Path(dest).mkdir(parents=True, exist_ok=True)
    log_file = None
    server_log: Path | None = None
    if foreground_output:
        stdout = stderr = None
    else:
        server_log = Path(log_path) if log_path else Path(runs_dir).resolve() / f"mlflow-server-{port}.log"
        server_log.parent.mkdir(parents=True, exist_ok=True)
        log_file = open(server_log, "wb")  # noqa: SIM115 (kept open for the server's lifetime)
        stdout, stderr = log_file, subprocess.STDOUT
    # Its own session: Ctrl+C at the terminal reaches this process only, which stops the
    # server in order; the tether ends it if this process dies without a word.
    proc = subprocess.Popen(
        tethered(cmd), stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL, env=env, start_new_session=True
    )
    connect_host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    url = f"http://{connect_host}:{port}"
    handle = ServerHandle(proc, url, server_log, cmd, log_file)
    try:
        wait_healthy(url, timeout, proc)
        _check_answered_by(handle, port)
    except ServerError as error:
        tail = handle.log_tail()
        handle.stop()
        raise ServerError(f"{error}\ncommand: {' '.join(cmd)}" + (f"\nlog tail:\n{tail}" if tail else "")) from None
    return handle


def _check_answered_by(handle: ServerHandle, port: int) -> None:
    """/health answered: make sure the process listening is ours, not one left on the port
    (a server whose launcher was killed answers /health just as well)."""
    deadline = time.monotonic() + 10
    while True:
        foreign, ours = foreign_listeners(port, handle.processes())
        if foreign:
            shown = describe(foreign)[0]
            raise ServerError(
                f"--port {port}: /health was answered by {shown}, not by the server started here; "
                "nothing of ours serves this port: stop that process or choose another port"
            )
        if ours or time.monotonic() > deadline:
            return  # none visible at all (no permission to see sockets): /health is all there is
        time.sleep(0.2)
