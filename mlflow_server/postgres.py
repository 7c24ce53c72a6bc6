"""PostgreSQL for the tracking server: a pre-flight check of a backend URI, and a
throw-away local PostgreSQL cluster on loopback (tests, benchmarks, trying the cluster
recipe on one machine).

    from mlflow_server.postgres import local_postgres
    with local_postgres() as pg:                 # initdb + pg_ctl start on a free port
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
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit, urlunsplit

from contextlib import contextmanager

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
    except ImportError as e:
        raise BackendStoreError(
            f"{what} {shown}: its PostgreSQL driver is not installed ({e}); "
            "pip install 'compact-reid[cluster]' (psycopg 3) in the server's environment") from None
    try:
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT 1"))
    except sqlalchemy.exc.OperationalError as e:
        raise BackendStoreError(f"{what} {shown}: {_why(str(e.orig or e))}") from None
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


_PG_TOOLS = ("initdb", "pg_ctl", "createdb")


def find_pg_bin() -> Path | None:
    """The folder holding initdb, pg_ctl and createdb: Debian's newest
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

    @property
    def uri(self) -> str:
        return self.uri_with()

    def uri_with(self, password: str | None = None, database: str | None = None) -> str:
        return (f"postgresql://{self.user}:{password if password is not None else self.password}"
                f"@127.0.0.1:{self.port}/{database or self.database}")

    @property
    def log_path(self) -> Path:
        return self.root / "postgres.log"


def _as_owner(cmd: list[str], owner: str | None) -> list[str]:
    # PostgreSQL refuses to run as root: as root, run its tools as the package's user.
    return ["runuser", "-u", owner, "--", *cmd] if owner else cmd


@contextmanager
def local_postgres(port: int | None = None, user: str = "mlflow", database: str = "mlflow",
                   timeout: float = 60.0) -> Iterator[LocalPostgres]:
    """initdb, start on loopback, create `database` owned by `user`; stop and delete on exit.

    Needs PostgreSQL's server binaries (Debian: apt-get install postgresql).
    """
    from .server import find_free_port

    bin_dir = find_pg_bin()
    if bin_dir is None:
        raise BackendStoreError("PostgreSQL server binaries (initdb, pg_ctl) not found; "
                                "apt-get install postgresql")
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
    def run(cmd: list[str], env: dict[str, str] | None = None) -> None:
        subprocess.run(_as_owner(cmd, owner), check=True, capture_output=True, text=True, timeout=timeout, env=env)

    try:
        run([str(bin_dir / "initdb"), "-D", str(data), "-U", user, "--pwfile", str(pwfile),
             "--auth=scram-sha-256", "-E", "UTF8", "--no-sync"])
        run([str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(pg.log_path), "-w", "-t", str(int(timeout)),
             "-o", f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off", "start"])
        run([str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", user, database],
            env=dict(os.environ, PGPASSWORD=password))
    except subprocess.CalledProcessError as e:
        log = pg.log_path.read_text(errors="replace")[-2000:] if pg.log_path.exists() else ""
        _stop(bin_dir, data, owner)
        shutil.rmtree(root, ignore_errors=True)
        raise BackendStoreError(f"local PostgreSQL did not start: {' '.join(e.cmd)}\n{e.stderr}\n{log}") from None
    try:
        yield pg
    finally:
        _stop(bin_dir, data, owner)
        shutil.rmtree(root, ignore_errors=True)


def _stop(bin_dir: Path, data: Path, owner: str | None) -> None:
    if (data / "postmaster.pid").exists():
        subprocess.run(_as_owner([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"], owner),
                       capture_output=True, timeout=60)
