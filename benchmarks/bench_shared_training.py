"""Shared training: the same sweep with every trial alone (`--no-sharing`) and with shared
training, run alternately A B A B on this machine, and the wall-time ratio.

    python benchmarks/bench_shared_training.py [--spec sweeps/smoke.yaml] [--repeats 1]

Both arms pass `--no-reuse` (nothing is copied from earlier sweeps) and run in their own
runs folder. Prints each run's sweep wall time and trial-epochs, then the ratio of the means.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def one(spec: str, sharing: bool, root: Path) -> dict:
    runs = root / ("shared" if sharing else "alone") / str(time.time_ns())
    cmd = [
        sys.executable,
        "-m",
        "orchestration.cli",
        "sweep",
        "run",
        spec,
        "--runs-dir",
        str(runs),
        "--no-reuse",
        "--json",
    ]
    if not sharing:
        cmd.append("--no-sharing")
    t0 = time.perf_counter()
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        sys.exit(f"sweep failed ({'shared' if sharing else 'alone'}):\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
    out = json.loads(res.stdout[res.stdout.rindex("\n{\n") + 1 :])  # the outcome printed last
    planned = next((ln for ln in res.stdout.splitlines() if ln.startswith("shared training")), "")
    epochs = sum(int(t.get("epoch") or 0) for t in out["trials"])
    return {"sweep_wall_s": out["wall_seconds"], "command_wall_s": wall, "plan": planned, "epochs": epochs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spec", default=str(REPO / "sweeps" / "smoke.yaml"))
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    rows: dict[bool, list[dict]] = {False: [], True: []}
    with tempfile.TemporaryDirectory(prefix="bench-shared-") as tmp:
        for i in range(args.repeats):
            for sharing in (False, True):
                r = one(args.spec, sharing, Path(tmp))
                rows[sharing].append(r)
                print(
                    f"run {i + 1} {'shared' if sharing else 'alone ':<6}: sweep wall {r['sweep_wall_s']:.1f} s "
                    f"(command {r['command_wall_s']:.1f} s); {r['plan']}",
                    flush=True,
                )
    alone = statistics.mean(r["sweep_wall_s"] for r in rows[False])
    shared = statistics.mean(r["sweep_wall_s"] for r in rows[True])
    print(f"mean sweep wall: alone {alone:.1f} s, shared {shared:.1f} s; shared/alone = {shared / alone:.2f}")


if __name__ == "__main__":
    main()
