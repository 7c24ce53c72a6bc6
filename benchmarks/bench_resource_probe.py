"""`resources: auto` on this machine, in one run: the probe's table and choice, then the same
sweep with the old defaults and with the probe's choice, interleaved, as a throughput ratio.

    python benchmarks/bench_resource_probe.py [--rounds 2] [--scale 0.01] [--seeds 4] [--width 0.25] [--ids 30] [--out FILE.json]

Steps (each sweep is `compact-reid sweep run SPEC --fresh` in a subprocess, its own Ray):
  1. auto with --reprobe (a fresh probe: table, choice and why are printed by the sweep);
  2. `rounds` x (defaults, auto): the auto sweeps find the probe in the cache (their wall
     time is the "cached second sweep"); defaults and auto alternate so a loaded machine
     slows both alike.
The sweep's throughput = training images of all trials / the sweep's wall time; the ratio
auto / defaults is taken over the cached auto sweeps and the defaults sweeps (medians).
The probe cache lives in a temporary folder (COMPACT_REID_CACHE), not the user's.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SPEC = """\
name: bench-resources
description: resources auto vs defaults (benchmarks/bench_resource_probe.py)
dataset:
  synthetic: {{ids: {ids2}, train_ids: {ids}, cameras: 3, images_per_id: 8, seed: 0}}
base_preset: g
seeds: {seeds}
overrides:
  model.width_multiplier: {width}
  model.depth_multiplier: {width}
  schedule.scale: {scale}
  eval.every: 1000
  eval.batch_size: 64
"""


def run_sweep(spec: Path, runs: Path, mode: str, env: dict[str, str], reprobe: bool = False) -> dict:
    cmd = [sys.executable, "-m", "orchestration.cli", "sweep", "run", str(spec), "--runs-dir", str(runs)]
    cmd += ["--fresh", "--json", "--resources", mode] + (["--reprobe"] if reprobe else [])
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - t0
    out = p.stdout
    start = out.rfind('\n{\n  "name"')
    if p.returncode != 0 or start < 0:
        raise SystemExit(f"sweep ({mode}) failed, exit {p.returncode}:\n{out[-3000:]}\n{p.stderr[-3000:]}")
    res = json.loads(out[start:])
    lines = out.splitlines()
    a = next((i for i, ln in enumerate(lines) if ln.startswith("resource probe")), len(lines))
    b = next((i for i, ln in enumerate(lines) if ln.startswith("sweep bench-resources:")), len(lines))
    res["probe_lines"] = lines[a:b]
    res["process_wall_seconds"] = wall
    return res


def images_trained(res: dict, train_images: int, batch: int) -> int:
    steps = train_images // batch  # drop_last P x K batches; the PK sampler's epoch is about this
    return sum(int(r.get("epoch") or 0) for r in res["trials"]) * steps * batch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--scale", type=float, default=0.01)
    ap.add_argument("--width", type=float, default=0.25, help="model width and depth multipliers")
    ap.add_argument("--ids", type=int, default=30, help="training identities (8 images each)")
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-resources-") as tmp:
        t = Path(tmp)
        spec = t / "bench-resources.yaml"
        spec.write_text(
            SPEC.format(
                seeds=list(range(args.seeds)), scale=args.scale, width=args.width, ids=args.ids, ids2=2 * args.ids
            )
        )
        env = {**os.environ, "COMPACT_REID_CACHE": str(t / "cache"), "PYTHONPATH": str(ROOT)}
        env.pop("COMPACT_REID_RESOURCES", None)
        report: dict = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cores": os.cpu_count(), "runs": []}

        def one(mode: str, reprobe: bool = False) -> dict:
            r = run_sweep(spec, t / "runs", mode, env, reprobe)
            imgs = images_trained(r, 8 * args.ids, 32)
            row = {
                "mode": mode + (" (fresh probe)" if reprobe else ""),
                "wall_seconds": r["wall_seconds"],
                "images": imgs,
                "images_per_second": imgs / r["wall_seconds"],
                "failed": sum(1 for x in r["trials"] if x["status"] == "ERROR"),
            }
            cached = [ln for ln in r["probe_lines"] if "cached result" in ln]
            if cached:
                row["probe"] = cached[0]
            report["runs"].append(row)
            print(
                f"sweep {row['mode']:<20} wall {row['wall_seconds']:6.1f} s  {imgs} images  "
                f"{row['images_per_second']:6.1f} img/s (sweep wall)  failed {row['failed']}",
                flush=True,
            )
            if cached:
                print("  " + cached[0], flush=True)
            return r

        first = one("auto", reprobe=True)
        print("\n".join(first["probe_lines"]), flush=True)
        report["probe"] = first["probe_lines"]
        for _ in range(args.rounds):
            one("defaults")
            one("auto")
        d = [r["images_per_second"] for r in report["runs"] if r["mode"] == "defaults"]
        a = [r["images_per_second"] for r in report["runs"] if r["mode"] == "auto"]
        report["ratio_auto_over_defaults"] = statistics.median(a) / statistics.median(d)
        report["pairs"] = [x / y for x, y in zip(a, d)]
        print(
            f"auto / defaults sweep throughput: {report['ratio_auto_over_defaults']:.2f}x (medians of {len(a)} vs "
            f"{len(d)}; per round {', '.join(f'{x:.2f}' for x in report['pairs'])})",
            flush=True,
        )
        if args.out:
            Path(args.out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
