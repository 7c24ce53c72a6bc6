"""`compact-reid server`: a real MLflow tracking server (UI + REST + proxied artifacts)."""

from __future__ import annotations

import argparse
import os
import signal
import sys


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "server",
        help="start an MLflow tracking server (UI) on the sweeps' store",
        description="Start `mlflow server` in the foreground. Default: SQLite runs/mlflow.db (the store "
        "`compact-reid sweep run` writes by default) and artifacts in runs/mlartifacts, bound to "
        "127.0.0.1. Point sweeps at it with --tracking-uri http://HOST:PORT. Cluster recipe "
        "(PostgreSQL, S3 artifacts, basic auth): mlflow_server/README.md.",
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address of this machine to bind (default 127.0.0.1: this machine only; 0.0.0.0 "
        "exposes it, then use --app-name basic-auth and --allowed-hosts)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=5000,
        help="port (default 5000; 0 = a free port, printed). A port in use is refused, naming the process holding it",
    )
    parser.add_argument(
        "--backend-store-uri",
        default=None,
        help="runs database: sqlite:///, postgresql://, mysql:// or mssql:// (default "
        "sqlite:///<abs>/runs/mlflow.db; cluster: postgresql://...)",
    )
    parser.add_argument(
        "--artifacts-destination",
        default=None,
        help="artifact store behind the proxy (default runs/mlartifacts; cluster: s3://bucket/path "
        "with MLFLOW_S3_ENDPOINT_URL for S3-compatible stores)",
    )
    parser.add_argument("--runs-dir", default="runs", help="folder of the local defaults (default ./runs)")
    parser.add_argument("--workers", type=int, default=2, help="server worker processes (default 2)")
    parser.add_argument(
        "--app-name",
        choices=["basic-auth"],
        default=None,
        help="basic-auth: users and passwords (first start: MLFLOW_AUTH_ADMIN_PASSWORD; users in "
        "<runs-dir>/basic_auth.db unless MLFLOW_AUTH_CONFIG_PATH says otherwise)",
    )
    parser.add_argument(
        "--allowed-hosts", default=None, help="comma-separated Host headers to accept (beyond localhost)"
    )
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for /health (default 120)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mlflow_server.postgres import redact
    from mlflow_server.server import ServerError, start_server
    from reid_core.errors import ReIDError

    if args.host not in ("127.0.0.1", "localhost", "::1") and not args.app_name:
        print(
            f"warning: binding {args.host} exposes the server without authentication; consider "
            "--app-name basic-auth and --allowed-hosts (mlflow_server/README.md)",
            file=sys.stderr,
        )
    try:
        srv = start_server(
            host=args.host,
            port=args.port,
            backend_store_uri=args.backend_store_uri,
            artifacts_destination=args.artifacts_destination,
            runs_dir=args.runs_dir,
            workers=args.workers,
            app_name=args.app_name,
            allowed_hosts=args.allowed_hosts,
            timeout=args.timeout,
            foreground_output=True,
        )
    except ServerError as e:
        raise ReIDError(str(e)) from None
    store = srv.cmd[srv.cmd.index("--backend-store-uri") + 1]
    dest = srv.cmd[srv.cmd.index("--artifacts-destination") + 1]
    # start_server checked that the process answering srv.url is the one it started
    print(
        f"MLflow server at {srv.url}  (store {redact(store)}, artifacts {dest}, pid {srv.server_pid}; it stops "
        f"with this command, pid {os.getpid()})",
        flush=True,
    )
    print(f"  sweeps: compact-reid sweep run SPEC --tracking-uri {srv.url}; Ctrl+C stops the server", flush=True)

    def _term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _term)
    try:
        code = srv.wait()
        print(f"mlflow server exited with code {code}", file=sys.stderr)
        return code or 1
    except KeyboardInterrupt:
        print("stopping the MLflow server", file=sys.stderr)
        return 0
    finally:
        srv.stop()
