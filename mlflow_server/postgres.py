"""PostgreSQL for the tracking server: a pre-flight check of a backend URI, and a
throw-away local PostgreSQL cluster on loopback (tests, benchmarks, trying the cluster
recipe on one machine).

    from mlflow_server.postgres import local_postgres
    with local_postgres() as pg:                 # initdb + postgres on a free port (ends with us)
        print(pg.uri)                             # postgresql://mlflow:...@127.0.0.1:PORT/mlflow

Nothing here imports mlflow; the check uses SQLAlchemy and psycopg 3 (what MLflow's
PostgreSQL store uses: SQLAlchemy 2.1 maps postgresql:// to psycopg 3), imported only
when a postgresql:// URI is checked.
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit, urlunsplit

from process_tether import tethered

from .ports import busy_port_message, find_free_port, port_problem

__all__ = ["BackendStoreError", "check_backend_store", "redact", "find_pg_bin", "LocalPostgres", "local_postgres"]


class BackendStoreError(RuntimeError):
    """The backend store URI cannot be used; the message says what to fix."""


def redact(uri: str) -> str:
    """The URI with its password replaced by ***, for messages and logs."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def check_backend_store(uri: str, timeout: float = 10.0, what: str = "--backend-store-uri") -> None:
    """Refuse a postgresql:// URI that cannot be connected to, naming what to fix.

    Runs before the server starts: `mlflow server` itself would only log the error and
    never answer /health. Other schemes (sqlite, mysql, ...) are left to MLflow. `what`
    names the URI's origin in the message (the server's flag, or a client's tracking URI).
    """
    if not uri.startswith("postgresql"):
        return
    shown = redact(uri)
    try:
        import sqlalchemy
    except ImportError:  # pragma: no cover - installed with mlflow
        raise BackendStoreError("sqlalchemy is missing; it comes with mlflow: pip install mlflow") from None
    try:
        engine = sqlalchemy.create_engine(uri, connect_args={"connect_timeout": int(max(1, timeout))})
    except ImportError as error:
        raise BackendStoreError(
            f"{what} {shown}: its PostgreSQL driver is not installed ({error}); "
            "pip install 'compact-reid[cluster]' (psycopg 3) in the server's environment"
        ) from None
    try:
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT 1"))
    except sqlalchemy.exc.OperationalError as error:
        raise BackendStoreError(f"{what} {shown}: {_why(str(error.orig or error))}") from None
    finally:
        engine.dispose()


def _why(msg: str) -> str:
    first = msg.strip().splitlines()[0] if msg.strip() else msg
    low = msg.lower()
    if "password authentication failed" in low or "no password supplied" in low:
        hint = "fix the user name or password in the URI"
    elif "does not exist" in low and "database" in low:
        hint = "create the database first (CREATE DATABASE ...; see mlflow_server/README.md)"
    elif "connection refused" in low or "could not connect" in low or "timeout" in low:
        hint = "is PostgreSQL running there, and is the host/port right?"
    elif "could not translate host name" in low:
        hint = "the host name does not resolve"
    else:
        hint = "see the PostgreSQL message"
    return f"PostgreSQL refused the connection ({first}); {hint}"


_PG_TOOLS = ("initdb", "postgres", "createdb")


def find_pg_bin() -> Path | None:
    """The folder holding initdb, postgres and createdb: Debian's newest
    /usr/lib/postgresql/N/bin, else the folder of `initdb` on PATH."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True)
    if shutil.which("initdb"):
        candidates.append(str(Path(shutil.which("initdb")).resolve().parent))
    for d in candidates:
        if all((Path(d) / tool).exists() for tool in _PG_TOOLS):
            return Path(d)
    return None


class LocalPostgres:
    """A PostgreSQL cluster in a temporary folder, on 127.0.0.1 with password auth."""

    def __init__(self, bin_dir: Path, root: Path, port: int, user: str, password: str, database: str) -> None:
        self.bin_dir, self.root, self.port = bin_dir, root, port
        self.user, self.password, self.database = user, password, database
        self.process: subprocess.Popen | None = None  # the tether running the postmaster

    @property
    def uri(self) -> str:
        return self.uri_with()

    def uri_with(self, password: str | None = None, database: str | None = None) -> str:
        return (
            f"postgresql://{self.user}:{password if password is not None else self.password}"
            f"@127.0.0.1:{self.port}/{database or self.database}"
        )

    @property
    def log_path(self) -> Path:
        return self.root / "postgres.log"


def _as_owner(cmd: list[str], owner: str | None) -> list[str]:
    # PostgreSQL refuses to run as root: as root, run its tools as the package's user.
    # setpriv execs (runuser would stay in between as a parent that turns signals into SIGTERM).
    return ["setpriv", f"--reuid={owner}", f"--regid={owner}", "--init-groups", "--", *cmd] if owner else cmd


def _run(cmd: list[str], cwd: Path, timeout: float, env: dict[str, str] | None = None) -> None:
    """A one-shot tool (initdb, createdb) under a tether: it ends with this process too."""
    proc = subprocess.Popen(
        tethered(cmd, remove_if_orphaned=cwd),
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        out, err = proc.communicate()
        raise subprocess.CalledProcessError(-9, cmd, out, (err or "") + f"\n(killed after {timeout:.0f}s)") from None
    if proc.returncode:
        raise subprocess.CalledProcessError(proc.returncode, cmd, out, err)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # start_new_session: the tether's group
    except (ProcessLookupError, PermissionError):
        pass


def _wait_ready(pg: LocalPostgres, timeout: float) -> None:
    """Until the postmaster accepts connections (pg_isready), or BackendStoreError."""
    assert pg.process is not None
    ready = pg.bin_dir / "pg_isready"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pg.process.poll() is not None:
            raise BackendStoreError(f"local PostgreSQL exited with code {pg.process.returncode} while starting")
        if ready.exists():
            probe = subprocess.run(
                [str(ready), "-q", "-h", "127.0.0.1", "-p", str(pg.port), "-t", "2"], capture_output=True, timeout=30
            )
            if probe.returncode == 0:
                return
        else:
            try:
                socket.create_connection(("127.0.0.1", pg.port), timeout=2).close()
                return
            except OSError:
                pass
        time.sleep(0.25)
    raise BackendStoreError(f"local PostgreSQL did not accept connections within {timeout:.0f}s")


@contextmanager
def local_postgres(
    port: int | None = None, user: str = "mlflow", database: str = "mlflow", timeout: float = 60.0
) -> Iterator[LocalPostgres]:
    """initdb, start on loopback, create `database` owned by `user`; stop and delete on exit.

    The postmaster runs in the foreground under a tether (process_tether/tether.py), not
    daemonized by pg_ctl: it ends with this process even when this process is SIGKILLed
    (the tether then deletes the temporary folder). A `port` in use is refused before
    anything starts. Needs PostgreSQL's server binaries (Debian: apt-get install postgresql).
    """
    if port is not None:
        problem = port_problem(port, "port", allow_zero=False) or busy_port_message(
            "127.0.0.1", port, "port", free_hint="leave port unset for a free one"
        )
        if problem:
            raise BackendStoreError(f"local PostgreSQL: {problem}")
    bin_dir = find_pg_bin()
    if bin_dir is None:
        raise BackendStoreError("PostgreSQL server binaries (initdb, postgres) not found; apt-get install postgresql")
    owner = "postgres" if os.geteuid() == 0 else None
    root = Path(tempfile.mkdtemp(prefix="compact-reid-pg-"))
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    password = secrets.token_hex(8)
    pwfile = root / "pw"
    pwfile.write_text(password + "\n")
    if owner:
        shutil.chown(root, owner)
        shutil.chown(sock, owner)
        shutil.chown(pwfile, owner)
    port = port or find_free_port()
    pg = LocalPostgres(bin_dir, root, port, user, password, database)
    log = None
    try:
        _run(
            _as_owner(
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    user,
                    "--pwfile",
                    str(pwfile),
                    "--auth=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ],
                owner,
            ),
            root,
            timeout,
        )
        log = open(pg.log_path, "ab")  # noqa: SIM115 (the postmaster's output for its lifetime)
        # INT: PostgreSQL's fast shutdown (TERM would wait for every client to disconnect)
        pg.process = subprocess.Popen(
            tethered(
                _as_owner(
                    [
                        str(bin_dir / "postgres"),
                        "-D",
                        str(data),
                        "-p",
                        str(port),
                        "-k",
                        str(sock),
                        "-c",
                        "listen_addresses=127.0.0.1",
                        "-c",
                        "max_connections=200",
                        "-c",
                        "fsync=off",
                    ],
                    owner,
                ),
                stop_signal="INT",
                grace=30,
                remove_if_orphaned=root,
            ),
            cwd=root,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        _wait_ready(pg, timeout)
        _run(
            [str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", user, database],
            root,
            timeout,
            env=dict(os.environ, PGPASSWORD=password),
        )
    except (subprocess.CalledProcessError, BackendStoreError) as error:
        text = pg.log_path.read_text(errors="replace")[-2000:] if pg.log_path.exists() else ""
        _stop(pg)
        if log is not None:
            log.close()
        shutil.rmtree(root, ignore_errors=True)
        what = (
            " ".join(error.cmd) + "\n" + (error.stderr or "")
            if isinstance(error, subprocess.CalledProcessError)
            else str(error)
        )
        raise BackendStoreError(f"local PostgreSQL did not start: {what}\n{text}") from None
    try:
        yield pg
    finally:
        _stop(pg)
        if log is not None:
            log.close()
        shutil.rmtree(root, ignore_errors=True)


def _stop(pg: LocalPostgres, timeout: float = 60.0) -> None:
    """Fast shutdown through the tether (SIGTERM to it: SIGINT to the postmaster), SIGKILL
    to the whole group if it takes longer than `timeout`."""
    proc = pg.process
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        proc.wait(timeout=10)
