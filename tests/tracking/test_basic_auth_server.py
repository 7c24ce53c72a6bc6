"""A tracking server that needs credentials (`--app-name basic-auth`), end to end.

- `sweep run` without credentials, without a password, or with a wrong one: refused
  before the sweep starts, naming the variable to set and never the password; no Ray
  session (its temp folder is never created), no sweep folder, no experiment, no run.
- A real 2-trial sweep (Ray Tune) with MLFLOW_TRACKING_USERNAME/PASSWORD of a non-admin
  user: every trial FINISHED; the preflight says which server it reached.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from sweep_yaml import tiny_sweep_yaml

pytestmark = [pytest.mark.e2e]

mlflow = pytest.importorskip("mlflow")
pytest.importorskip("ray")
pytest.importorskip("flask_wtf", reason="MLflow's basic-auth app needs Flask-WTF (the cluster extra)")
requests = pytest.importorskip("requests")

from mlflow.tracking import MlflowClient  # noqa: E402

from mlflow_server.server import start_server  # noqa: E402
from orchestration.mlflow_log import names  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
ADMIN_PW = "admin-pw-for-the-test"
USER, USER_PW, WRONG_PW = "sweeps", "sweeps-pw-for-the-test", "not-the-sweeps-pw"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("basic-auth")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_AUTH_ADMIN_PASSWORD", ADMIN_PW)  # first start: the admin user is created
        srv = start_server(port=0, runs_dir=root / "srv", app_name="basic-auth", workers=2, timeout=180)
    with srv:
        r = requests.post(
            f"{srv.url}/api/2.0/mlflow/users/create",
            json={"username": USER, "password": USER_PW},
            auth=("admin", ADMIN_PW),
            timeout=30,
        )
        r.raise_for_status()
        yield srv


def _admin(monkeypatch: pytest.MonkeyPatch, url: str) -> MlflowClient:
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", ADMIN_PW)
    return MlflowClient(url)


@pytest.fixture
def ray_tmp():
    """A Ray temp folder that does not exist yet, on a short path (Ray's socket paths must
    stay under 108 bytes): Ray creates it when, and only when, it starts."""
    base = Path(tempfile.mkdtemp(prefix="cr-"))
    yield base / "ray"
    shutil.rmtree(base, ignore_errors=True)


def _sweep(url: str, tmp: Path, ray_tmp: Path, name: str, **creds: str) -> subprocess.CompletedProcess:
    spec = tmp / f"{name}.yaml"
    spec.write_text(tiny_sweep_yaml(name, "a sweep logging to a basic-auth server"))
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", PYTHONUNBUFFERED="1", RAY_TMPDIR=str(ray_tmp))
    for var in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"):
        env.pop(var, None)
    env.update(creds)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "orchestration.cli",
            "sweep",
            "run",
            str(spec),
            "--tracking-uri",
            url,
            "--runs-dir",
            str(tmp / "runs"),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def _all_runs(client: MlflowClient) -> int:
    exps = [e.experiment_id for e in client.search_experiments()]
    return len(client.search_runs(exps, max_results=1000)) if exps else 0


@pytest.mark.timeout(600)
def test_missing_or_wrong_credentials_refused_before_anything(
    server, tmp_path: Path, ray_tmp: Path, monkeypatch
) -> None:
    admin = _admin(monkeypatch, server.url)
    runs_before = _all_runs(admin)
    cases = [
        ({}, "needs a user name and password (HTTP 401): set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"),
        ({"MLFLOW_TRACKING_USERNAME": USER}, f"refused user '{USER}' (HTTP 401): MLFLOW_TRACKING_PASSWORD is not set"),
        (
            {"MLFLOW_TRACKING_USERNAME": USER, "MLFLOW_TRACKING_PASSWORD": WRONG_PW},
            f"refused user '{USER}' (HTTP 401): wrong user name or password; check MLFLOW_TRACKING_PASSWORD",
        ),
    ]
    for creds, expected in cases:
        r = _sweep(server.url, tmp_path, ray_tmp, "auth-refused", **creds)
        out = r.stdout + r.stderr
        assert r.returncode == 2, out[-3000:]
        assert expected in r.stderr, r.stderr[-3000:]
        assert WRONG_PW not in out and USER_PW not in out and ADMIN_PW not in out
        print(r.stderr.strip().splitlines()[-1])
    assert not ray_tmp.exists()  # Ray never started: it makes its session folder first
    assert not (tmp_path / "runs").exists()  # no sweep folder, no generated dataset
    assert admin.get_experiment_by_name("auth-refused") is None
    assert _all_runs(admin) == runs_before


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_two_trial_sweep_with_credentials(server, tmp_path: Path, ray_tmp: Path, monkeypatch) -> None:
    r = _sweep(
        server.url, tmp_path, ray_tmp, "auth-sweep", MLFLOW_TRACKING_USERNAME=USER, MLFLOW_TRACKING_PASSWORD=USER_PW
    )
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-4000:]
    assert USER_PW not in out
    reached = next(line for line in r.stdout.splitlines() if line.startswith("tracking: "))
    assert f"tracking: MLflow server {mlflow.__version__} at {server.url}, store SqlStore, as user '{USER}'" == reached
    admin = _admin(monkeypatch, server.url)
    exp = admin.get_experiment_by_name("auth-sweep")
    trials = admin.search_runs([exp.experiment_id], f"tags.`{names.ROLE}` = 'trial'")
    assert sorted(t.info.run_name for t in trials) == ["g-seed0", "g-seed1"]
    assert all(t.info.status == "FINISHED" and "rank1" in t.data.metrics for t in trials)
    (parent,) = admin.search_runs([exp.experiment_id], f"tags.`{names.ROLE}` = 'sweep'")
    assert parent.info.status == "FINISHED"
    print(reached)
    print(
        f"2-trial sweep with credentials: {[(t.info.run_name, t.info.status) for t in trials]}, "
        f"parent {parent.info.status}"
    )
