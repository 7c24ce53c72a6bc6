"""The A/A check of the report's comparisons (orchestration/report/compare.py): which interval
method says "not resolved" about 95 % of the time when nothing differs.

Step 1, `pool`: trains one tiny CPU configuration over many seeds, and a second one that
differs only in its schedule (a real difference), on one generated data set; one JSON line
per finished run in --pool (resumable: seeds already there are skipped).

Step 2, `check`: from the pool,
- A/A: per configuration, draws two disjoint sets of k seeds (unpaired, as seeds 0-4 against
  5-9 would be) --repeats times and compares them with each method (t = Student/Welch,
  percentile and BCa bootstrap, scipy.stats); prints how often each said "resolved"
  (nominal 5 %), per metric and k;
- real difference: the short schedule against the long one on the same k seeds (paired) and
  on disjoint seeds (unpaired), --repeats draws; prints how often each method resolved it and
  the verdict on the first k seeds.

    python benchmarks/bench_comparisons.py pool --seeds 0-19 --pool runs/aa/pool.jsonl --jobs 2
    python benchmarks/bench_comparisons.py check --pool runs/aa/pool.jsonl --k 3,5 --repeats 500
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

# A small generated set, and column g (no SWAG: the final model is the last weights) at a
# sixteenth of its width/depth on 64x32 input: seconds per epoch on one CPU thread.
DATA = {"num_ids": 150, "num_train_ids": 100, "num_cameras": 3, "images_per_id": 8, "seed": 5}
DATA_SIZE = (64, 32)
BASE = {
    "model.width_multiplier": 0.25,
    "model.depth_multiplier": 0.25,
    "model.input_height": 64,
    "model.input_width": 32,
    "data.num_workers": 0,
    "data.p": 8,
    "data.k": 4,
    "schedule.warmup_epochs": 0,
    "optim.lr": 0.03,
    "eval.every": 100,
    "eval.batch_size": 128,
}
CONFIGS = {
    "short": {**BASE, "schedule.epochs": 2, "schedule.milestones": [1]},
    "long": {**BASE, "schedule.epochs": 10, "schedule.milestones": [8]},
}
PRESET = "g"
METRICS = ("final_rank1", "final_mAP")


def _seeds(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        a, _, b = part.partition("-")
        out += list(range(int(a), int(b) + 1)) if b else [int(a)]
    return out


# ---------------------------------------------------------------------------------
# pool


def _train_one(config: str, seed: int, data: str, out: str) -> dict:
    """One run in this process (a subprocess of `pool`, one torch thread)."""
    import torch

    from reid_core.presets import preset_config
    from reid_core.training.trainer import Trainer

    torch.set_num_threads(1)
    cfg = preset_config(PRESET, {**CONFIGS[config], "seed": seed})
    t0 = time.perf_counter()
    t = Trainer(cfg, Path(data), Path(out), log=None)
    for _ in t.run():
        pass
    s = t.summary
    return {
        "config": config,
        "seed": seed,
        "seconds": round(time.perf_counter() - t0, 1),
        **{k: float(s[k]) for k in ("untrained_rank1", "untrained_mAP", *METRICS)},
    }


def _data_root(work: Path) -> Path:
    from reid_core.data.synth import generate

    root = work / "data" / "market"
    if not (root / "bounding_box_test").exists():
        generate(root, workers=1, size=DATA_SIZE, overwrite=True, **DATA)
    return root


def cmd_pool(args: argparse.Namespace) -> None:
    pool = Path(args.pool)
    work = pool.parent
    work.mkdir(parents=True, exist_ok=True)
    data = _data_root(work)
    done = set()
    if pool.exists():
        for line in pool.read_text().splitlines():
            r = json.loads(line)
            done.add((r["config"], r["seed"]))
    todo = [(c, s) for s in _seeds(args.seeds) for c in args.configs.split(",") if (c, s) not in done]
    print(f"{len(done)} runs in {pool}; {len(todo)} to train with {args.jobs} job(s)", flush=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}

    def run(cs: tuple[str, int]) -> dict:
        c, s = cs
        out = work / "runs" / f"{c}_s{s}"
        cmd = [sys.executable, __file__, "one", "--config", c, "--seed", str(s), "--data", str(data), "--out", str(out)]
        p = subprocess.run(cmd, env=env, capture_output=True, text=True)
        rows = [ln[4:] for ln in p.stdout.splitlines() if ln.startswith("ROW ")]
        if p.returncode or not rows:
            raise RuntimeError(f"{c} seed {s} failed:\n{p.stderr[-2000:]}")
        return json.loads(rows[-1])

    with cf.ThreadPoolExecutor(args.jobs) as ex, pool.open("a") as f:
        for row in ex.map(run, todo):
            f.write(json.dumps(row) + "\n")
            f.flush()
            print(
                f"{row['config']:>5} seed {row['seed']:>2}: rank-1 {100 * row['final_rank1']:5.1f} "
                f"mAP {100 * row['final_mAP']:5.1f} ({row['seconds']} s)",
                flush=True,
            )


def cmd_one(args: argparse.Namespace) -> None:
    print("ROW " + json.dumps(_train_one(args.config, args.seed, args.data, args.out)), flush=True)


# ---------------------------------------------------------------------------------
# check


def _load(pool: Path) -> dict[str, dict[str, dict[int, float]]]:
    """config -> metric -> {seed: value} (latest row per config and seed)."""
    out: dict[str, dict[str, dict[int, float]]] = {}
    for line in pool.read_text().splitlines():
        r = json.loads(line)
        for m in METRICS:
            out.setdefault(r["config"], {}).setdefault(m, {})[int(r["seed"])] = float(r[m])
    return out


def _describe(vals: dict[int, float]) -> str:
    import numpy as np

    v = np.array(list(vals.values())) * 100
    return f"n={len(v)} mean {v.mean():.2f} sd {v.std(ddof=1):.2f} min {v.min():.2f} max {v.max():.2f}"


def cmd_check(args: argparse.Namespace) -> None:
    import numpy as np

    from orchestration.report import compare as compare_mod
    from orchestration.report.compare import compare

    compare_mod.N_RESAMPLES = args.resamples
    pool = _load(Path(args.pool))
    methods = args.methods.split(",")
    ks = [int(k) for k in args.k.split(",")]
    rng = np.random.default_rng(args.rng_seed)
    result: dict = {"aa": [], "real": [], "pool": {}}
    print("pool:")
    for c, per in pool.items():
        for m, vals in per.items():
            print(f"  {c:>5} {m:<12} {_describe(vals)}")
            result["pool"][f"{c}/{m}"] = {str(s): v for s, v in vals.items()}

    print(f"\nA/A: two disjoint sets of k seeds of the same configuration, unpaired, {args.repeats} draws")
    print(f"{'config':>6} {'metric':<12} {'k':>2}  " + "  ".join(f"{m:>18}" for m in methods))
    for c, per in pool.items():
        for m, vals in per.items():
            seeds = sorted(vals)
            for k in ks:
                if 2 * k > len(seeds):
                    continue
                hits = dict.fromkeys(methods, 0)
                for _ in range(args.repeats):
                    pick = rng.permutation(seeds)[: 2 * k]
                    a = {int(s): vals[int(s)] for s in pick[:k]}
                    b = {int(s): vals[int(s)] for s in pick[k:]}
                    for meth in methods:
                        hits[meth] += compare(a, b, method=meth).resolved
                rates = {meth: hits[meth] / args.repeats for meth in methods}
                result["aa"].append({"config": c, "metric": m, "k": k, "repeats": args.repeats, "resolved": rates})
                print(
                    f"{c:>6} {m:<12} {k:>2}  " + "  ".join(f"{100 * rates[meth]:6.1f} % resolved" for meth in methods),
                    flush=True,
                )

    if {"short", "long"} <= set(pool):
        print(f"\nReal difference: long schedule against short, {args.repeats} draws of k seeds")
        for m in METRICS:
            short, long_ = pool["short"][m], pool["long"][m]
            shared = sorted(set(short) & set(long_))
            for k in ks:
                if k > len(shared):
                    continue
                first = shared[:k]
                c0 = compare({s: short[s] for s in first}, {s: long_[s] for s in first}, method="t")
                line = {"metric": m, "k": k, "first_seeds": first, "first": c0.verdict, "diff": c0.diff_text()}
                for paired in (True, False):
                    if not paired and 2 * k > len(shared):
                        continue
                    hits = dict.fromkeys(methods, 0)
                    for _ in range(args.repeats):
                        pick = [int(s) for s in rng.permutation(shared)]
                        a_seeds, b_seeds = (pick[:k], pick[:k]) if paired else (pick[:k], pick[k : 2 * k])
                        a = {s: short[s] for s in a_seeds}
                        b = {s: long_[s] for s in b_seeds}
                        for meth in methods:
                            hits[meth] += compare(a, b, method=meth).verdict == "better"
                    line["paired" if paired else "unpaired"] = {meth: hits[meth] / args.repeats for meth in methods}
                result["real"].append(line)
                print(
                    f"  {m:<12} k={k}: seeds {first}: {c0.diff_text()} -> {c0.verdict_text()}; 'better' in "
                    + "; ".join(
                        f"{p}: " + ", ".join(f"{meth} {100 * r:.1f} %" for meth, r in line[p].items())
                        for p in ("paired", "unpaired")
                        if p in line
                    ),
                    flush=True,
                )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
        print(f"\nwritten {args.json}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pool", help="train the pool of runs")
    p.add_argument("--seeds", default="0-19")
    p.add_argument("--configs", default="short,long")
    p.add_argument("--pool", default="runs/bench_comparisons/pool.jsonl")
    p.add_argument("--jobs", type=int, default=1)
    p.set_defaults(func=cmd_pool)
    o = sub.add_parser("one", help=argparse.SUPPRESS)
    o.add_argument("--config", required=True)
    o.add_argument("--seed", type=int, required=True)
    o.add_argument("--data", required=True)
    o.add_argument("--out", required=True)
    o.set_defaults(func=cmd_one)
    c = sub.add_parser("check", help="the A/A check and the real difference, from the pool")
    c.add_argument("--pool", default="runs/bench_comparisons/pool.jsonl")
    c.add_argument("--k", default="3,5")
    c.add_argument("--repeats", type=int, default=500)
    c.add_argument("--methods", default="t,percentile,bca")
    c.add_argument("--rng-seed", type=int, default=0)
    c.add_argument("--resamples", type=int, default=9999, help="bootstrap resamples per interval")
    c.add_argument("--json", help="also write the figures to this JSON file")
    c.set_defaults(func=cmd_check)
    args = ap.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
