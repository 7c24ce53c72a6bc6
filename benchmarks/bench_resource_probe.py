"""`resources: auto` on this machine, in one run: the probe's table and choice, then the same
sweep with the built-in rules and with the probe's choice, interleaved, as a throughput ratio.

    python benchmarks/bench_resource_probe.py [--rounds 2] [--scale 0.01] [--seeds 4] [--width 0.25] [--ids 30] [--out FILE.json]

Steps (each command in a subprocess with its own Ray):
  1. `compact-reid probe SPEC --reprobe`: a fresh probe (table, choice and why printed), also
     generating the sweep's synthetic data where the sweeps then find it;
  2. `rounds` x (`sweep run --resources defaults`, `sweep run --resources auto`): the auto
     sweeps find the probe in the cache; defaults and auto alternate so a loaded machine
     slows both alike.
The sweep's throughput = training images of all trials / the sweep's wall time; the ratio
auto / defaults is taken over the auto sweeps and the defaults sweeps (medians).
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


def run_probe(spec: Path, runs: Path, env: dict[str, str]) -> dict:
    """`compact-reid probe SPEC --reprobe --json`: the choice, its printed lines and the wall time."""
    command = [sys.executable, "-m", "orchestration.cli", "probe", str(spec), "--runs-dir", str(runs)]
    command += ["--reprobe", "--json"]
    started = time.perf_counter()
    process = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - started
    if process.returncode != 0:
        raise SystemExit(
            f"probe failed, exit {process.returncode}:\n{process.stdout[-3000:]}\n{process.stderr[-3000:]}"
        )
    choice = json.loads(process.stdout)
    return {"choice": choice, "log": process.stderr.splitlines(), "wall_seconds": wall}


def run_sweep(spec: Path, runs: Path, mode: str, env: dict[str, str]) -> dict:
    command = [sys.executable, "-m", "orchestration.cli", "sweep", "run", str(spec), "--runs-dir", str(runs)]
    command += ["--fresh", "--json", "--resources", mode]
    started = time.perf_counter()
    process = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - started
    out = process.stdout
    start = out.rfind('\n{\n  "name"')
    if process.returncode != 0 or start < 0:
        raise SystemExit(f"sweep ({mode}) failed, exit {process.returncode}:\n{out[-3000:]}\n{process.stderr[-3000:]}")
    result = json.loads(out[start:])
    lines = out.splitlines()
    first = next((i for i, line in enumerate(lines) if line.startswith("resource probe")), len(lines))
    last = next((i for i, line in enumerate(lines) if line.startswith("sweep bench-resources:")), len(lines))
    result["probe_lines"] = lines[first:last]
    result["process_wall_seconds"] = wall
    return result


def images_trained(result: dict, train_images: int, batch: int) -> int:
    steps = train_images // batch  # drop_last P x K batches; the PK sampler's epoch is about this
    return sum(int(trial.get("epoch") or 0) for trial in result["trials"]) * steps * batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--scale", type=float, default=0.01)
    parser.add_argument("--width", type=float, default=0.25, help="model width and depth multipliers")
    parser.add_argument("--ids", type=int, default=30, help="training identities (8 images each)")
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-resources-") as tmp:
        folder = Path(tmp)
        spec = folder / "bench-resources.yaml"
        spec.write_text(
            SPEC.format(
                seeds=list(range(args.seeds)), scale=args.scale, width=args.width, ids=args.ids, ids2=2 * args.ids
            )
        )
        env = {**os.environ, "COMPACT_REID_CACHE": str(folder / "cache"), "PYTHONPATH": str(ROOT)}
        report: dict = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cores": os.cpu_count(), "runs": []}

        def one(mode: str) -> dict:
            result = run_sweep(spec, folder / "runs", mode, env)
            images = images_trained(result, 8 * args.ids, 32)
            row = {
                "mode": mode,
                "wall_seconds": result["wall_seconds"],
                "images": images,
                "images_per_second": images / result["wall_seconds"],
                "failed": sum(1 for trial in result["trials"] if trial["status"] == "ERROR"),
            }
            cached = [line for line in result["probe_lines"] if "cached result" in line]
            if cached:
                row["probe"] = cached[0]
            report["runs"].append(row)
            print(
                f"sweep {row['mode']:<10} wall {row['wall_seconds']:6.1f} s  {images} images  "
                f"{row['images_per_second']:6.1f} img/s (sweep wall)  failed {row['failed']}",
                flush=True,
            )
            if cached:
                print("  " + cached[0], flush=True)
            return result

        probe = run_probe(spec, folder / "runs", env)
        choice = probe["choice"]
        print(f"compact-reid probe --reprobe: {probe['wall_seconds']:.1f} s (Ray start and data included)", flush=True)
        print("\n".join(line for line in probe["log"] if line.startswith("  probe ")), flush=True)
        print(f"  choice: {choice['resources']}, max_concurrent {choice['max_concurrent']}, {choice['overrides']}")
        print(f"  why: {choice['reason']}", flush=True)
        report["probe"] = {"wall_seconds": probe["wall_seconds"], "choice": choice}
        for _ in range(args.rounds):
            one("defaults")
            one("auto")
        defaults = [row["images_per_second"] for row in report["runs"] if row["mode"] == "defaults"]
        auto = [row["images_per_second"] for row in report["runs"] if row["mode"] == "auto"]
        report["ratio_auto_over_defaults"] = statistics.median(auto) / statistics.median(defaults)
        report["pairs"] = [auto_rate / defaults_rate for auto_rate, defaults_rate in zip(auto, defaults)]
        print(
            f"auto / defaults sweep throughput: {report['ratio_auto_over_defaults']:.2f}x (medians of {len(auto)} vs "
            f"{len(defaults)}; per round {', '.join(f'{pair:.2f}' for pair in report['pairs'])})",
            flush=True,
        )
        if args.out:
            Path(args.out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
