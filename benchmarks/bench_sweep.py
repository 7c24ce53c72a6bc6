"""Wall time of a sweep and the orchestration overhead of each trial.

    python benchmarks/bench_sweep.py                   # sweeps/smoke.yaml, in a temporary folder
    python benchmarks/bench_sweep.py SPEC.yaml --runs-dir /tmp/bench --json

Runs the sweep with a fresh local Ray and a fresh SQLite MLflow store (unless --runs-dir
already holds one), then prints per trial:
  wall     the trial function's wall time (entry to its last report: Trainer construction,
           the untrained evaluation, training, evaluations, checkpoints, MLflow logging)
  train    the trainer's own train_seconds (sum of its epochs' training time)
  eval     the trainer's evaluation time (eval_seconds of its epochs; excludes the
           untrained evaluation, which lands in `other`)
  overhead wall - train            (what the brief calls orchestration overhead)
  other    wall - train - eval     (setup, checkpoints, reports, MLflow, untrained eval)
  orch     wall - Trainer construction - time inside the trainer's generator: what the
           orchestration layer itself costs (imports of torch/mlflow in the worker, MLflow
           run lookup and logging, checkpoints, tune.report, artifacts)
  mlflow   duration of the trial's MLflow run (created after the worker's imports)
and for the sweep: wall time (spec validation, data generation, Ray start, all trials,
finalisation), the sum of trial walls, and `sweep wall - sum(trial wall) / concurrency`
as the part no trial accounts for (Ray/actor start-up, scheduling, driver work).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("spec", nargs="?", default=str(REPO / "sweeps" / "smoke.yaml"))
    ap.add_argument("--runs-dir", default=None, help="where runs/ go (default: a temporary folder, removed)")
    ap.add_argument("--max-concurrent", type=int, default=None)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    from mlflow.tracking import MlflowClient

    from orchestration.mlflow_log import SweepTracker
    from orchestration.sweep.runner import SweepOptions, run_sweep
    from orchestration.sweep.spec import load_spec

    spec = load_spec(args.spec)
    tmp = None
    runs_dir = Path(args.runs_dir) if args.runs_dir else Path(tmp := tempfile.mkdtemp(prefix="bench-sweep-")) / "runs"
    t0 = time.perf_counter()
    options = SweepOptions(
        runs_dir=runs_dir, max_concurrent=args.max_concurrent, verbose=0, log=lambda m: print(m, file=sys.stderr)
    )
    out = run_sweep(args.spec, options)
    sweep_wall = time.perf_counter() - t0

    client = MlflowClient(out.tracking_uri)
    exp = client.get_experiment_by_name(spec.file.name)
    mlruns = {r.info.run_name: r for r in SweepTracker(out.tracking_uri).children(out.parent_run_id, exp.experiment_id)}
    rows = []
    for t in out.trials:
        wall, train, ev = t.get("trial_wall_s"), t.get("train_seconds"), t.get("eval_seconds")
        r = mlruns.get(t["trial"])
        mlflow_s = ((r.info.end_time or 0) - r.info.start_time) / 1000.0 if r and r.info.end_time else None
        row = {
            "trial": t["trial"],
            "status": t["status"],
            "epochs": t.get("epoch"),
            "wall_s": wall,
            "train_s": train,
            "eval_s": ev,
            "mlflow_run_s": mlflow_s,
        }
        if isinstance(wall, (int, float)) and isinstance(train, (int, float)):
            row["overhead_s"] = wall - train
            row["other_s"] = wall - train - (ev or 0.0)
        if isinstance(wall, (int, float)) and t.get("trainer_run_s") is not None:
            row["trainer_init_s"], row["trainer_run_s"] = t.get("trainer_init_s"), t.get("trainer_run_s")
            row["orchestration_s"] = wall - (t.get("trainer_init_s") or 0.0) - t["trainer_run_s"]
        rows.append(row)
    conc = args.max_concurrent or spec.file.max_concurrent or (os.cpu_count() or 1)
    sum_wall = sum(r["wall_s"] or 0.0 for r in rows)
    result = {
        "spec": str(args.spec),
        "trials": len(rows),
        "max_concurrent": conc,
        "cpu_count": os.cpu_count(),
        "sweep_wall_s": sweep_wall,
        "sum_trial_wall_s": sum_wall,
        "sum_train_s": sum(r["train_s"] or 0.0 for r in rows),
        "unaccounted_s": sweep_wall - sum_wall / max(1, min(conc, len(rows))),
        "per_trial": rows,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:

        def f(v: object) -> str:
            return f"{v:8.1f}" if isinstance(v, (int, float)) else f"{'-':>8}"

        w = max(len(r["trial"]) for r in rows)
        print(
            f"{'trial':<{w}}  {'status':<10} {'wall':>8} {'train':>8} {'eval':>8} {'overhead':>8} "
            f"{'other':>8} {'orch':>8} {'mlflow':>8}"
        )
        for r in rows:
            print(
                f"{r['trial']:<{w}}  {r['status']:<10} {f(r['wall_s'])} {f(r['train_s'])} {f(r['eval_s'])} "
                f"{f(r.get('overhead_s'))} {f(r.get('other_s'))} {f(r.get('orchestration_s'))} "
                f"{f(r['mlflow_run_s'])}"
            )
        ov = [r["overhead_s"] for r in rows if "overhead_s" in r]
        oth = [r["other_s"] for r in rows if "other_s" in r]
        print(
            f"sweep wall {sweep_wall:.1f}s for {len(rows)} trials ({conc} at a time, {os.cpu_count()} CPUs); "
            f"sum of trial walls {sum_wall:.1f}s, of train_seconds {result['sum_train_s']:.1f}s"
        )
        if ov:
            print(
                f"per-trial overhead (wall - train): mean {sum(ov) / len(ov):.1f}s, max {max(ov):.1f}s; "
                f"without evaluation (wall - train - eval): mean {sum(oth) / len(oth):.1f}s"
            )
        orch = [r["orchestration_s"] for r in rows if "orchestration_s" in r]
        if orch:
            print(
                f"orchestration layer itself (wall - Trainer init - trainer generator): mean "
                f"{sum(orch) / len(orch):.1f}s, max {max(orch):.1f}s per trial"
            )
        print(
            f"not inside any trial (sweep wall - sum of trial walls / {min(conc, len(rows))}): "
            f"{result['unaccounted_s']:.1f}s"
        )
    if tmp:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if not out.interrupted else 3


if __name__ == "__main__":
    sys.exit(main())
