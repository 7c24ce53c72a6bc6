"""The learning check's spread over seeds x threads x BLAS kernels, and the bar it allows.

Trains the recipe of `tests/learning_check.py` (the test's own) once per cell, each cell a
subprocess with its own `OMP_NUM_THREADS` / torch threads and, where asked, its own
`OPENBLAS_CORETYPE`. Cells run side by side while their threads fit the cores. Prints one
row per cell (untrained and SWAG rank-1 / mAP, the gains) and, per metric, the minimum,
mean and standard deviation of the gain and the highest bar that sits 3 sd below the
minimum: the test's MIN_GAIN_* must not exceed it.

    python benchmarks/bench_learning_check.py --seeds 0,1,2,3,4 --threads 1,2 --coretype none,Haswell
    python benchmarks/bench_learning_check.py --seeds 0,1 --set schedule.epochs=16 --data-set camera_variation=0.25
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

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # runs from a plain checkout too

import learning_check  # noqa: E402  (tests/learning_check.py: the recipe)

_METRICS = ("rank1", "mAP")


def _pairs(items: list[str], what: str) -> dict:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"{what}: expected KEY=VALUE, got {item!r}")
        out[key] = yaml.safe_load(value)
    return out


def _one(args: argparse.Namespace) -> None:
    """A single cell, in this process (the parent set the environment)."""
    import torch

    torch.set_num_threads(args.threads_one)
    learning_check.OVERRIDES.update(json.loads(args.overrides))
    t0 = time.perf_counter()
    tag = f"[seed {args.seed} threads {args.threads_one}]"
    log = (lambda m: print(tag, m, file=sys.stderr, flush=True)) if args.verbose else None
    t = learning_check.train(Path(args.data), Path(args.out), seed=args.seed, threads=args.threads_one, log=log)
    s, seconds = t.summary, time.perf_counter() - t0
    track = {}
    if args.track:  # the tracking e2e test's scene and assertion: ReID's IDF1 over no-ReID's
        from reid_core.multicam.evaluate import run_multicam_eval

        weights = t.save_weights(Path(args.out) / "weights" / "final.pt", "final")
        v = run_multicam_eval(weights, seed=0, calibration_seed=1, minutes=3.0, device="cpu")["variants"]
        track = {
            f"{m}_{k}": round(100 * v[k][m], 2)
            for k in ("no_reid", "reid", "oracle")
            for m in ("idf1", "mota", "entry_accuracy")
        }
    losses = [h["loss"] for h in t.history if "loss" in h]  # per epoch, main phase then SWAG
    track["loss_first"], track["loss_last"] = round(losses[0], 4), round(losses[-1], 4)
    row = {
        "seed": args.seed,
        "threads": args.threads_one,
        "coretype": os.environ.get("OPENBLAS_CORETYPE", "none"),
        "seconds": round(seconds, 1),
        **{f"{w}_{m}": round(100 * s[f"{w}_{m}"], 2) for w in ("untrained", "swag") for m in _METRICS},
        **track,
    }
    (Path(args.out) / "row.json").write_text(json.dumps(row) + "\n")
    print("ROW " + json.dumps(row), flush=True)


def _gains(rows: list[dict]) -> dict[str, list[float]]:
    out = {m: [r[f"swag_{m}"] - r[f"untrained_{m}"] for r in rows] for m in _METRICS}
    if all("idf1_reid" in r for r in rows):
        out["idf1"] = [r["idf1_reid"] - r["idf1_no_reid"] for r in rows]
        out["entry_accuracy"] = [r["entry_accuracy_reid"] - r["entry_accuracy_no_reid"] for r in rows]
        out["oracle_idf1"] = [r["idf1_oracle"] - r["idf1_reid"] for r in rows]
        out["mota_oracle_minus_reid"] = [r["mota_oracle"] - r["mota_reid"] for r in rows]
    return out


def _stats(rows: list[dict]) -> dict:
    out = {}
    for m, gains in _gains(rows).items():
        sd = statistics.stdev(gains) if len(gains) > 1 else 0.0
        out[m] = {"min": min(gains), "mean": statistics.mean(gains), "sd": sd, "max_bar": min(gains) - 3 * sd}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--threads", default="1,2", help="comma-separated intra-op thread counts")
    ap.add_argument("--coretype", default="none,Haswell", help="comma-separated OPENBLAS_CORETYPE values; none = unset")
    ap.add_argument("--cores", type=int, default=os.cpu_count() or 1, help="threads running at once, at most")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a training override (explore)")
    ap.add_argument("--data-set", action="append", default=[], metavar="KEY=VALUE", help="a generator option (explore)")
    ap.add_argument(
        "--track",
        action="store_true",
        help="also score each cell's final weights on the tracking test's scene (IDF1 ReID - no-ReID)",
    )
    ap.add_argument("--verbose", action="store_true", help="each cell's per-epoch lines (to stderr)")
    ap.add_argument("--json-out", help="write the rows and statistics here")
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--threads-one", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--overrides", default="{}", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        return _one(args)

    overrides = _pairs(args.set, "--set")
    learning_check.DATA.update(_pairs(args.data_set, "--data-set"))
    seeds = [int(s) for s in args.seeds.split(",")]
    threads = [int(t) for t in args.threads.split(",")]
    coretypes = args.coretype.split(",")
    if max(threads) > args.cores:
        raise SystemExit(f"--threads: {max(threads)} is more than --cores {args.cores}")
    cells = [(s, t, c) for c in coretypes for t in threads for s in seeds]
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="bench-learning-check-") as tmp:
        data = learning_check.generate_data(Path(tmp) / "market")
        print(f"recipe: data {learning_check.DATA}; overrides {overrides or 'none'}; {len(cells)} cells", flush=True)
        running: list[tuple[subprocess.Popen, tuple]] = []
        t0 = time.perf_counter()
        while cells or running:
            used = sum(cell[1] for _, cell in running)
            while cells and used + cells[0][1] <= args.cores:
                s, t, c = cell = cells.pop(0)
                env = {**os.environ, "OMP_NUM_THREADS": str(t), "MKL_NUM_THREADS": str(t)}
                env.pop("OPENBLAS_CORETYPE", None)
                if c != "none":
                    env["OPENBLAS_CORETYPE"] = c
                cmd = (
                    [
                        sys.executable,
                        __file__,
                        "--one",
                        "--data",
                        str(data),
                        "--out",
                        f"{tmp}/run-{s}-{t}-{c}",
                        "--seed",
                        str(s),
                        "--threads-one",
                        str(t),
                        "--overrides",
                        json.dumps(overrides),
                    ]
                    + ["--track"] * args.track
                    + ["--verbose"] * args.verbose
                )
                running.append((subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True), cell))
                used += t
            time.sleep(1)
            for proc, cell in list(running):
                if proc.poll() is None:
                    continue
                running.remove((proc, cell))
                out = proc.stdout.read() if proc.stdout else ""
                row = next((json.loads(line[4:]) for line in out.splitlines() if line.startswith("ROW ")), None)
                if proc.returncode or row is None:
                    print(f"cell seed {cell[0]} threads {cell[1]} coretype {cell[2]} failed (exit {proc.returncode})")
                    continue
                rows.append(row)
                print(
                    f"seed {row['seed']} threads {row['threads']} coretype {row['coretype']:>7}: rank-1 "
                    f"{row['untrained_rank1']:5.1f} -> {row['swag_rank1']:5.1f}  mAP {row['untrained_mAP']:5.1f} -> "
                    f"{row['swag_mAP']:5.1f}"
                    + (
                        f"  IDF1 no-ReID {row['idf1_no_reid']:.1f} ReID {row['idf1_reid']:.1f}"
                        if "idf1_reid" in row
                        else ""
                    )
                    + f"  ({row['seconds']:.0f} s)  [{time.perf_counter() - t0:.0f} s]",
                    flush=True,
                )
    if not rows:
        raise SystemExit("no cell finished")
    stats = _stats(rows)
    print(f"\n{len(rows)} cells; gain of the SWAG model over the untrained one (idf1: ReID over no-ReID), points:")
    for m, st in stats.items():
        print(
            f"  {m:<5} min {st['min']:5.1f}  mean {st['mean']:5.1f}  sd {st['sd']:4.1f}  "
            f"-> a bar of at most {st['max_bar']:5.1f} (min - 3 sd)"
        )
    if args.json_out:
        Path(args.json_out).write_text(
            json.dumps({"data": learning_check.DATA, "overrides": overrides, "rows": rows, "stats": stats}, indent=2)
            + "\n"
        )


if __name__ == "__main__":
    main()
