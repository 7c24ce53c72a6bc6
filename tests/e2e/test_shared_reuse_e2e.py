"""End to end, real Ray Tune + SQLite MLflow: reuse across sweeps and adaptive seeds.

- a sweep of column g, then a second sweep (another name, same store) of g and h: g's
  trial is copied from the first sweep's FINISHED run (every epoch, nothing trained), only h
  trains; `--no-reuse` semantics are the runner's `reuse=False`;
- adaptive seeds on a grid whose two points differ only in evaluation (`eval.max_rank`, so
  rank-1 is identical and the comparison can never resolve): seeds are added live, with
  why, until `max`, and trials.json lists them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sweep_yaml import tiny_sweep_yaml

pytestmark = [pytest.mark.e2e]

ray = pytest.importorskip("ray")
mlflow = pytest.importorskip("mlflow")

from mlflow.tracking import MlflowClient  # noqa: E402

from orchestration.mlflow_log import names  # noqa: E402


def _run(path: Path, runs: Path, **kw):
    from orchestration.sweep.runner import SweepOptions, run_sweep

    try:
        return run_sweep(path, SweepOptions(runs_dir=runs, verbose=0, **kw))
    finally:
        if ray.is_initialized():
            ray.shutdown()


def _children(client: MlflowClient, exp_name: str) -> dict:
    exp = client.get_experiment_by_name(exp_name)
    runs = client.search_runs([exp.experiment_id], f"tags.`{names.ROLE}` = 'trial'")
    return {r.info.run_name: r for r in runs}


def _steps(client: MlflowClient, run_id: str, key: str) -> list[int]:
    return [m.step for m in client.get_metric_history(run_id, key)]


SWAG = {"swag.cycles": 2, "swag.samples": 2, "swag.bn_batches": 1}


@pytest.mark.timeout(900)
def test_a_second_sweep_with_one_more_column_trains_only_that_column(tmp_path):
    runs = tmp_path / "runs"
    first = tmp_path / "one.yaml"
    first.write_text(tiny_sweep_yaml("one", "g alone", grid="grid:\n  preset: [g]", seeds="[0]", extra_overrides=SWAG))
    out1 = _run(first, runs)
    second = tmp_path / "two.yaml"
    second.write_text(
        tiny_sweep_yaml("two", "g and h", grid="grid:\n  preset: [g, h]", seeds="[0]", extra_overrides=SWAG)
    )
    out2 = _run(second, runs)
    client = MlflowClient(out2.tracking_uri)
    g1 = _children(client, "one")["g-seed0"]
    two = _children(client, "two")
    g2, h2 = two["g-seed0"], two["h-seed0"]
    assert g2.info.status == h2.info.status == "FINISHED"
    assert g2.data.tags[names.REUSED_FROM] == g1.info.run_id
    assert g2.data.tags[names.INHERITED_EPOCHS] == "4"
    for key in ("loss", "rank1", "final_mAP"):  # every epoch copied, values equal
        a = [(m.step, m.value) for m in client.get_metric_history(g1.info.run_id, key)]
        b = [(m.step, m.value) for m in client.get_metric_history(g2.info.run_id, key)]
        assert a == b and a, key
    assert {a.path for a in client.list_artifacts(g2.info.run_id)} >= {"weights", "metrics_history.json"}
    # only h trained: 6 epochs of its own (its producer is a store run: no main-phase checkpoint)
    assert names.REUSED_FROM not in h2.data.tags
    assert _steps(client, h2.info.run_id, "loss") == list(range(1, 7))
    rows = {r["trial"]: r for r in out2.trials}
    assert rows["g-seed0"]["status"] == "TERMINATED"
    assert out1.parent_run_id != out2.parent_run_id


@pytest.mark.timeout(900)
def test_adaptive_seeds_are_added_live_until_max(tmp_path):
    spec = tmp_path / "ad.yaml"
    spec.write_text(
        tiny_sweep_yaml(
            "ad",
            "adaptive seeds",
            grid="base_preset: g\ngrid:\n  eval.max_rank: [50, 10]",
            seeds="{initial: 2, max: 3}",
        )
    )
    out = _run(spec, tmp_path / "runs")
    client = MlflowClient(out.tracking_uri)
    runs = _children(client, "ad")
    assert len(runs) == 6 and all(r.info.status == "FINISHED" for r in runs.values())
    added = {n: r.data.tags.get(names.SEED_ADDED) for n, r in runs.items()}
    assert {n for n, why in added.items() if why} == {"eval.max_rank=50-seed2", "eval.max_rank=10-seed2"}
    assert "not resolved at n=2/2" in added["eval.max_rank=10-seed2"]
    # the second point only re-evaluates the first's training
    re_eval = runs["eval.max_rank=10-seed2"]
    assert re_eval.data.tags[names.SHARED_FROM].endswith("@4")
    planned = json.loads(Path(client.download_artifacts(out.parent_run_id, "trials.json")).read_text())
    assert sorted(t["trial_name"] for t in planned) == sorted(runs)
