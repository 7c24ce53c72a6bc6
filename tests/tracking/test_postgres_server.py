"""The cluster recipe's tracking server for real: `compact-reid server` over a PostgreSQL
server that the test starts on loopback (Debian's postgresql package; .ci/run installs it).

- the whole parent/child/resume tracking protocol through the PostgreSQL-backed server;
- a real 2-trial sweep (Ray Tune) logging through it: every run FINISHED, each epoch once;
- a wrong password / a missing database: refused before the server starts, naming what
  to fix, and nothing created in the database.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sweep_yaml import tiny_sweep_yaml

pytestmark = [pytest.mark.e2e]

mlflow = pytest.importorskip("mlflow")
sqlalchemy = pytest.importorskip("sqlalchemy")
pytest.importorskip("psycopg", reason="psycopg 3 (the server's PostgreSQL driver) is in the test extra")

from mlflow.tracking import MlflowClient  # noqa: E402
from test_tracking import exercise_store  # noqa: E402

from mlflow_server.postgres import BackendStoreError, find_pg_bin, local_postgres  # noqa: E402
from mlflow_server.server import ServerError, start_server  # noqa: E402
from orchestration.mlflow_log import names  # noqa: E402

REPO = Path(__file__).resolve().parents[2]

if find_pg_bin() is None:
    pytest.skip(
        "PostgreSQL server binaries (initdb, postgres) not installed: apt-get install postgresql (.ci/run does)",
        allow_module_level=True,
    )


@pytest.fixture(scope="module")
def pg():
    with local_postgres() as server:
        yield server


def _tables(uri: str) -> list[str]:
    engine = sqlalchemy.create_engine(uri)
    try:
        return sqlalchemy.inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_protocol_through_server_over_postgres(pg, tmp_path: Path) -> None:
    with start_server(
        port=0, backend_store_uri=pg.uri, artifacts_destination=str(tmp_path / "art"), runs_dir=tmp_path, workers=2
    ) as srv:
        exercise_store(srv.url, sweep="pg-protocol")
    assert "runs" in _tables(pg.uri) and "metrics" in _tables(pg.uri)  # MLflow's schema, in PostgreSQL


@pytest.mark.slow
def test_sweep_logs_through_server_over_postgres(pg, tmp_path: Path) -> None:
    spec = tmp_path / "pg.yaml"
    spec.write_text(tiny_sweep_yaml("pg-sweep", "a sweep logging through the PostgreSQL-backed server"))
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", PYTHONUNBUFFERED="1")
    with start_server(
        port=0, backend_store_uri=pg.uri, artifacts_destination=str(tmp_path / "art"), runs_dir=tmp_path, workers=2
    ) as srv:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "orchestration.cli",
                "sweep",
                "run",
                str(spec),
                "--fresh",
                "--tracking-uri",
                srv.url,
                "--runs-dir",
                str(tmp_path / "runs"),
            ],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        client = MlflowClient(srv.url)
        exp = client.get_experiment_by_name("pg-sweep")
        trials = client.search_runs([exp.experiment_id], f"tags.`{names.ROLE}` = 'trial'")
        assert sorted(r.info.run_name for r in trials) == ["g-seed0", "g-seed1"]
        for r in trials:
            assert r.info.status == "FINISHED"
            steps = [m.step for m in client.get_metric_history(r.info.run_id, "loss")]
            assert steps == sorted(set(steps)) and steps[0] == 1 and len(steps) == steps[-1], steps
            assert "rank1" in r.data.metrics and "model.block" in r.data.params


def test_wrong_password_refused_before_start(pg, tmp_path: Path) -> None:
    bad = pg.uri_with(password="not-the-password")
    with pytest.raises(ServerError, match="password authentication failed.*fix the user name or password"):
        start_server(port=0, backend_store_uri=bad, runs_dir=tmp_path, timeout=30)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "orchestration.cli",
            "server",
            "--port",
            "0",
            "--backend-store-uri",
            bad,
            "--runs-dir",
            str(tmp_path),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "password authentication failed" in proc.stderr and "not-the-password" not in proc.stderr
    assert "***" in proc.stderr  # the URI is named, its password redacted


def test_missing_database_refused_and_nothing_created(pg, tmp_path: Path) -> None:
    with local_postgres() as fresh:  # an empty database: nothing must be migrated into it
        with pytest.raises(ServerError, match='database "absent" does not exist.*create the database'):
            start_server(port=0, backend_store_uri=fresh.uri_with(database="absent"), runs_dir=tmp_path)
        with pytest.raises(ServerError, match="password authentication failed"):
            start_server(port=0, backend_store_uri=fresh.uri_with(password="x"), runs_dir=tmp_path)
        assert _tables(fresh.uri) == []


def test_unreachable_postgres_named(tmp_path: Path) -> None:
    from mlflow_server.server import find_free_port

    uri = f"postgresql://mlflow:pw@127.0.0.1:{find_free_port()}/mlflow"
    with pytest.raises(ServerError, match="is PostgreSQL running there"):
        start_server(port=0, backend_store_uri=uri, runs_dir=tmp_path)
    assert not list(tmp_path.glob("mlflow-server-*.log"))  # refused before a server process was started


def test_local_postgres_needs_binaries(monkeypatch) -> None:
    from mlflow_server import postgres

    monkeypatch.setattr(postgres, "find_pg_bin", lambda: None)
    with pytest.raises(BackendStoreError, match="apt-get install postgresql"):
        with postgres.local_postgres():
            pass


def test_sweep_refuses_wrong_postgres_password(tmp_path: Path) -> None:
    """`sweep run --tracking-uri postgresql://...` (MLflow straight on the database): a wrong
    password is refused before Ray starts or anything is written, in the store or on disk."""
    with local_postgres() as fresh:
        bad = fresh.uri_with(password="wrong-pw")
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "orchestration.cli",
                "sweep",
                "run",
                str(REPO / "sweeps" / "smoke.yaml"),
                "--tracking-uri",
                bad,
                "--runs-dir",
                str(tmp_path / "runs"),
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
        assert "password authentication failed" in proc.stderr and "wrong-pw" not in proc.stderr
        assert _tables(fresh.uri) == []
        assert not (tmp_path / "runs" / "smoke").exists()
