"""Many trials logging at once: lost writes, errors and per-epoch logging latency for the
three ways a sweep can reach MLflow.

    python benchmarks/bench_tracking_concurrency.py [--writers 8] [--epochs 40] [--json-out F]

Backends: `sqlite-direct` (every trial opens runs/mlflow.db itself: the local default),
`server/sqlite` (`compact-reid server` over that file) and `server/postgres` (the cluster
recipe, over a throw-away PostgreSQL on loopback; skipped without PostgreSQL's binaries).
Each writer process is one trial: it creates its run, then logs one `log_batch` of a
trial's per-epoch metrics per epoch (what the sweep's trial does), timing each call.
Errors are counted, not retried, so "database is locked" shows; afterwards every run's
history is read back and missing steps are counted as lost writes.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reid_core.metric_keys import EVAL_KEYS, LOSS_KEYS, SWAG_PREFIX  # noqa: E402

# what a trial's epoch logs in one log_batch
KEYS = (*LOSS_KEYS, "lr", "epoch_seconds", "images_per_second", *EVAL_KEYS, SWAG_PREFIX + "rank1")


def _writer(uri: str, experiment_id: str, index: int, epochs: int, start: float, out: "mp.Queue") -> None:
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    errors: list[str] = []
    latencies: list[float] = []
    run_id = None
    while time.time() < start:  # every writer starts at once
        time.sleep(0.001)
    try:
        run_id = client.create_run(experiment_id, run_name=f"w{index}").info.run_id
    except Exception as e:  # noqa: BLE001 - counted, the point of the benchmark
        errors.append(f"create_run: {type(e).__name__}: {str(e)[:160]}")
    for epoch in range(1, epochs + 1):
        if run_id is None:
            break
        now = int(time.time() * 1000)
        metrics = [Metric(k, float(epoch * 0.01 + i), now, epoch) for i, k in enumerate(KEYS)]
        t0 = time.perf_counter()
        try:
            client.log_batch(run_id, metrics=metrics)
        except Exception as e:  # noqa: BLE001
            errors.append(f"log_batch: {type(e).__name__}: {str(e)[:160]}")
        latencies.append(time.perf_counter() - t0)
    out.put({"index": index, "run_id": run_id, "errors": errors, "latencies": latencies})


def measure(label: str, uri: str, writers: int, epochs: int) -> dict:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.create_experiment(f"bench-{label.replace('/', '-')}-{int(time.time())}")  # schema created here
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    start = time.time() + 3.0 + 0.3 * writers  # spawn + import time before the common start
    procs = [ctx.Process(target=_writer, args=(uri, exp, i, epochs, start, q)) for i in range(writers)]
    for p in procs:
        p.start()
    results = [q.get(timeout=900) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    wall = time.time() - start
    lat = np.array([x for r in results for x in r["latencies"]]) * 1000
    errors = [e for r in results for e in r["errors"]]
    lost = 0
    for r in results:
        if r["run_id"] is None:
            lost += epochs * len(KEYS)
            continue
        for key in KEYS:
            steps = {m.step for m in client.get_metric_history(r["run_id"], key)}
            lost += len(set(range(1, epochs + 1)) - steps)
    kinds = sorted(
        {
            e.split(":")[0] + ": " + ("database is locked" if "locked" in e else e.split(":", 2)[1].strip())
            for e in errors
        }
    )
    return {
        "backend": label,
        "writers": writers,
        "epochs": epochs,
        "calls": int(lat.size),
        "errors": len(errors),
        "error_kinds": kinds[:5],
        "lost_points": lost,
        "p50_ms": round(float(np.percentile(lat, 50)), 1) if lat.size else None,
        "p95_ms": round(float(np.percentile(lat, 95)), 1) if lat.size else None,
        "max_ms": round(float(lat.max()), 1) if lat.size else None,
        "wall_s": round(wall, 1),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--writers", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--server-workers", type=int, default=4, help="`mlflow server --workers` (default 4)")
    ap.add_argument("--json-out", default=None)
    args = ap.parse_args()

    from mlflow_server.postgres import find_pg_bin, local_postgres
    from mlflow_server.server import start_server

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        rows.append(measure("sqlite-direct", f"sqlite:///{root}/direct.db", args.writers, args.epochs))
        print(rows[-1], flush=True)
        with start_server(
            port=0,
            backend_store_uri=f"sqlite:///{root}/served.db",
            runs_dir=root,
            artifacts_destination=str(root / "art1"),
            workers=args.server_workers,
        ) as srv:
            rows.append(measure("server/sqlite", srv.url, args.writers, args.epochs))
        print(rows[-1], flush=True)
        if find_pg_bin() is None:
            print("server/postgres: skipped (no PostgreSQL binaries: apt-get install postgresql)")
        else:
            with (
                local_postgres() as pg,
                start_server(
                    port=0,
                    backend_store_uri=pg.uri,
                    runs_dir=root,
                    artifacts_destination=str(root / "art2"),
                    workers=args.server_workers,
                ) as srv,
            ):
                rows.append(measure("server/postgres", srv.url, args.writers, args.epochs))
            print(rows[-1], flush=True)

    print(f"\n{args.writers} writers x {args.epochs} epochs x {len(KEYS)} metrics (one log_batch per epoch)")
    print(f"{'backend':<16} {'errors':>6} {'lost':>6} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'wall s':>7}")
    for r in rows:
        print(
            f"{r['backend']:<16} {r['errors']:>6} {r['lost_points']:>6} {r['p50_ms']:>8} {r['p95_ms']:>8} "
            f"{r['max_ms']:>8} {r['wall_s']:>7}"
        )
        for k in r["error_kinds"]:
            print(f"    {k}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
