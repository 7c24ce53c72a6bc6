"""Multicam evaluation (Table 5) end to end: the learning check's model on the LAB-like scene, the CLI,
and logging onto a sweep's MLflow trial runs (slow: trains the model once per session)."""

from __future__ import annotations

import json

import pytest
import torch

from orchestration.mlflow_log import names  # noqa: E402
from reid_core.errors import CheckpointError

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def trained_weights(learned_compact):
    """The learning check's model (conftest.learned_compact): weights/final.pt."""
    return learned_compact.weights


def test_reid_beats_no_reid_and_oracle_bounds_it(trained_weights):
    from reid_core.multicam.evaluate import run_multicam_eval

    r = run_multicam_eval(trained_weights, seed=0, calibration_seed=1, minutes=3.0, device="cpu")
    v = r["variants"]
    assert v["reid"]["idf1"] > v["no_reid"]["idf1"], r
    assert v["oracle"]["idf1"] >= v["reid"]["idf1"], r
    assert v["reid"]["entry_accuracy"] > v["no_reid"]["entry_accuracy"]
    assert r["model"]["label"] == "learned-compact" and r["model"]["preset"] == "compact"
    # MOTA: same tracker; only the id switches at entries differ between variants.
    assert abs(v["reid"]["mota"] - v["oracle"]["mota"]) < 0.02


def test_wrong_kind_of_checkpoint_is_a_clear_error(trained_weights, tmp_path):
    from reid_core.multicam.evaluate import run_multicam_eval

    obj = torch.load(trained_weights, weights_only=True)
    torch.save(obj["model"], tmp_path / "bare_state_dict.pt")  # weights without kind/config
    with pytest.raises(CheckpointError, match="not a compact-reid"):
        run_multicam_eval(tmp_path / "bare_state_dict.pt", minutes=0.5)
    bad = dict(obj)
    other = "1x" if obj["config"]["model"]["size"] == "2x" else "2x"
    bad["config"] = {**obj["config"], "model": {**obj["config"]["model"], "size": other}}
    torch.save(bad, tmp_path / "other_arch.pt")  # weights that do not fit the recorded architecture
    with pytest.raises(CheckpointError, match="do not fit"):
        run_multicam_eval(tmp_path / "other_arch.pt", minutes=0.5)


def test_cli_table_and_json(trained_weights, capsys):
    from orchestration.cli import main

    args = [
        "multicam-eval",
        "--checkpoint",
        str(trained_weights),
        "--checkpoint",
        str(trained_weights),
        "--minutes",
        "1",
        "--seed",
        "2",
        "--calibration-seed",
        "3",
        "--device",
        "cpu",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("Model"))
    table = lines[head + 2 :]  # after the header and its rule (progress lines come before)
    assert [line.split()[0] for line in table] == ["No", "learned-compact", "learned-compact", "Oracle"]
    assert "MOTA" in out and "IDF1" in out and "IDSW" in out and "Entries re-identified" in out
    assert main(args + ["--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert len(res["models"]) == 2 and res["models"][0]["reid"] == res["models"][1]["reid"]
    assert res["scene"]["config"]["seed"] == 2 and res["calibration_scene"]["config"]["seed"] == 3
    assert {"mota", "idf1", "num_switches", "entry_accuracy"} <= set(res["no_reid"])


def test_experiment_mode_logs_track_metrics_on_trial_runs(trained_weights, tmp_path):
    from mlflow.tracking import MlflowClient

    from orchestration.multicam_eval import TRACK_METRICS, evaluate_experiment

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("track-sweep", artifact_location=(tmp_path / "artifacts").as_uri())
    parent = client.create_run(exp, run_name="track-sweep", tags={names.ROLE: "sweep"}).info.run_id
    client.set_terminated(parent, "FINISHED")

    def trial(name: str, status: str, weights: bool) -> str:
        rid = client.create_run(
            exp, run_name=name, tags={names.ROLE: names.ROLE_TRIAL, names.PARENT: parent}
        ).info.run_id
        client.log_param(rid, names.DATA_NAME_PARAM, "synth-market")
        for epoch in (1, 2, 3):
            client.log_metric(rid, "epoch", epoch, step=epoch)
        if weights:
            client.log_artifact(rid, str(trained_weights), "weights")
        client.set_terminated(rid, status)
        return rid

    good = trial("compact-seed0", "FINISHED", True)
    no_weights = trial("compact-seed1", "FINISHED", False)
    failed = trial("compact-seed2", "FAILED", True)

    res = evaluate_experiment("track-sweep", uri, seed=0, calibration_seed=1, minutes=1.0, device="cpu", log=None)
    assert [m["run_id"] for m in res["models"]] == [good]
    assert [s["run_id"] for s in res["skipped"]] == [no_weights]
    run = client.get_run(good)
    assert set(TRACK_METRICS) <= set(run.data.metrics)
    m = res["models"][0]
    assert run.data.metrics["track_idf1"] == pytest.approx(m["reid"]["idf1"])
    assert run.data.metrics["track_idsw"] == m["reid"]["num_switches"]
    assert run.data.metrics["track_idf1_noreid"] == pytest.approx(res["no_reid"]["idf1"])
    assert run.data.metrics["track_idf1_oracle"] == pytest.approx(res["oracle"]["idf1"])
    assert client.get_metric_history(good, "track_idf1")[0].step == 3  # the run's last epoch
    assert json.loads(run.data.tags[names.TRACK_EVAL])["seed"] == 0
    assert m["model"]["train_set"] == "synth-market"
    for rid in (parent, no_weights, failed):
        assert "track_idf1" not in client.get_run(rid).data.metrics
    # A second pass skips what is done; --force re-evaluates.
    again = evaluate_experiment("track-sweep", uri, minutes=1.0, device="cpu", log=None)
    assert again["models"] == [] and good in [s["run_id"] for s in again["skipped"]]
    from reid_core.errors import ReIDError

    with pytest.raises(ReIDError, match="not found"):
        evaluate_experiment("no-such-sweep", uri, minutes=1.0, log=None)
