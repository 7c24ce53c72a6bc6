"""`compact-reid train` / `evaluate` end to end on a tiny generated set, and their bad input."""

from __future__ import annotations

import json

import pytest

from orchestration.cli import main

TINY = [
    "--set",
    "model.width_multiplier=0.25",
    "--set",
    "model.depth_multiplier=0.3",
    "--set",
    "data.p=4",
    "--set",
    "data.k=2",
    "--set",
    "data.num_workers=0",
    "--set",
    "schedule.epochs=2",
    "--set",
    "schedule.warmup_epochs=1",
    "--set",
    "schedule.milestones=[1]",
    "--set",
    "swag.cycles=2",
    "--set",
    "swag.cycle_epochs=1",
    "--set",
    "swag.samples=2",
    "--set",
    "swag.bn_batches=1",
    "--set",
    "eval.batch_size=64",
    "--device",
    "cpu",
]


@pytest.fixture(scope="module")
def data(make_tiny_market):
    return make_tiny_market("cli-data", seed=4)


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli-run") / "run"
    assert main(["train", "--preset", "compact-1x", "--data", str(data), "--out", str(out), *TINY]) == 0
    return out


def test_train_writes_metrics_checkpoint_and_weights(trained):
    m = json.loads((trained / "metrics.json").read_text())
    assert [h["epoch"] for h in m["history"]] == [1, 2, 3, 4]  # 2 main epochs + 2 SWAG cycles
    s = m["summary"]
    assert s["final_rank1"] == s["swag_rank1"] and 0.0 <= s["final_mAP"] <= 1.0
    assert m["config"]["preset"] == "compact-1x" and m["config"]["model"]["width_multiplier"] == 0.25
    assert (trained / "checkpoints" / "last.pt").is_file()
    assert {p.name for p in (trained / "weights").iterdir()} == {"final.pt", "best.pt", "swa.pt"}


def test_evaluate_a_weights_file_as_json(trained, data, capsys):
    capsys.readouterr()
    assert (
        main(
            [
                "evaluate",
                "--checkpoint",
                str(trained / "weights" / "swa.pt"),
                "--data",
                str(data),
                "--device",
                "cpu",
                "--json",
            ]
        )
        == 0
    )
    res = json.loads(capsys.readouterr().out)
    assert 0.0 <= res["mAP"] <= 1.0 and res["rank1"] <= res["rank5"] <= res["rank10"]


def test_an_existing_run_is_not_overwritten_without_resume(trained, data, capsys):
    before = (trained / "metrics.json").read_bytes()
    assert main(["train", "--preset", "compact-1x", "--data", str(data), "--out", str(trained), *TINY]) == 2
    assert "--resume" in capsys.readouterr().err
    assert (trained / "metrics.json").read_bytes() == before


def test_unknown_preset_and_bad_override_create_nothing(data, tmp_path, capsys):
    out = tmp_path / "never"
    assert main(["train", "--preset", "nope", "--data", str(data), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "nope" in err and "compact-1x" in err  # names the allowed presets
    assert (
        main(
            ["train", "--preset", "compact-1x", "--data", str(data), "--out", str(out), "--set", "model.pooling=median"]
        )
        == 2
    )
    assert "model.pooling" in capsys.readouterr().err
    assert not out.exists()


def test_evaluate_refuses_a_file_that_is_not_weights(data, tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage")
    assert main(["evaluate", "--checkpoint", str(bad), "--data", str(data), "--device", "cpu"]) == 2
    assert "bad.pt" in capsys.readouterr().err
