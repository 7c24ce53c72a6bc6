"""One tracking-URI rule for every command that touches MLflow: --tracking-uri, else
$MLFLOW_TRACKING_URI, else the local default (orchestration.mlflow_log.resolve_tracking_uri).

Each command is pointed at a dead server, once through the environment and once through
the flag (which must win); the error names the URI it actually used, and nothing starts.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mlflow_server.server import find_free_port
from orchestration.cli import main

REPO = Path(__file__).resolve().parents[2]
SMOKE = str(REPO / "sweeps" / "smoke.yaml")


def _commands(tmp: Path) -> dict[str, list[str]]:
    runs = str(tmp / "runs")
    return {
        "sweep run": ["sweep", "run", SMOKE, "--runs-dir", runs],
        "tables": ["tables", "--experiment", "smoke", "--runs-dir", runs, "--out", str(tmp / "tables")],
        "multicam-eval": ["multicam-eval", "--experiment", "smoke"],
    }


@pytest.mark.parametrize("command", ["sweep run", "tables", "multicam-eval"])
def test_env_then_flag(command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # a dead server fails at once
    env_uri = f"http://127.0.0.1:{find_free_port()}"
    flag_uri = f"http://127.0.0.1:{find_free_port()}"
    argv = _commands(tmp_path)[command]

    monkeypatch.setenv("MLFLOW_TRACKING_URI", env_uri)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert env_uri in err, err

    assert main(argv + ["--tracking-uri", flag_uri]) == 2
    err = capsys.readouterr().err
    assert flag_uri in err and env_uri not in err, err

    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())  # nothing started
    assert not (tmp_path / "tables").exists()


def test_unreachable_ray_address_refused_before_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """An --address nothing answers on: a clear error at once (ray.init alone retries for
    minutes), and neither the tracking store nor the sweep folder is created."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    addr = f"127.0.0.1:{find_free_port()}"
    runs = tmp_path / "runs"
    assert main(["sweep", "run", SMOKE, "--runs-dir", str(runs), "--address", addr]) == 2
    err = capsys.readouterr().err
    assert f"cannot reach the Ray cluster at {addr}" in err and "ray start --head" in err, err
    assert main(["sweep", "run", SMOKE, "--runs-dir", str(runs), "--address", "not-an-address"]) == 2
    assert "expected HOST:PORT" in capsys.readouterr().err
    assert not runs.exists()
