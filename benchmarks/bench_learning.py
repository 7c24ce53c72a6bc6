"""How far a short CPU run of `compact` learns on generated data (the learning check, scaled).

Generates a Market-layout set (by default 500 train + 100 test identities, 6 images each,
4 cameras), trains `compact` (2x, every switch, SWAG) shrunk for a CPU, and prints the
untrained, main-phase, SWA and SWAG rank-1 / mAP with the training seconds.
`--camera-variation` sets how much the generated cameras differ (1 = full strength).

`--pipeline torchvision|device|both` sets data.pipeline (`both`: the same generated set and
seed trained with each, one after the other, printed side by side). `--seeds 0,1,2,3,4`
trains every pipeline once per seed and prints the mean and standard deviation of the
SWAG rank-1 / mAP, and with `both` the per-seed (paired) difference device - torchvision:
runs this short differ by several points from seed to seed, so one seed compares nothing.

    python benchmarks/bench_learning.py [--camera-variation 0.5] [--epochs 16] [--cycles 3] [--save-weights DIR]
    python benchmarks/bench_learning.py --pipeline both --seeds 0,1,2,3,4
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runs from a plain checkout too

from reid_core.data.synth import generate  # noqa: E402
from reid_core.presets import preset_config  # noqa: E402
from reid_core.training.trainer import Trainer  # noqa: E402

_KEYS = (
    "untrained_rank1",
    "untrained_mAP",
    "plain_rank1",
    "plain_mAP",
    "swa_rank1",
    "swa_mAP",
    "swag_rank1",
    "swag_mAP",
)


def _config(args: argparse.Namespace, pipeline: str, seed: int) -> object:
    return preset_config(
        "compact",
        {
            "seed": seed,
            "model.width_multiplier": args.width,
            "model.depth_multiplier": 0.3,
            "model.input_height": 80,
            "model.input_width": 32,
            "data.num_workers": 0,
            "data.pipeline": pipeline,
            "schedule.epochs": args.epochs,
            "schedule.warmup_epochs": 2,
            "schedule.milestones": [max(3, round(0.8 * args.epochs))],
            "optim.lr": args.lr,
            "swag.cycles": args.cycles,
            "swag.cycle_epochs": 1,
            "swag.samples": 4,
            "swag.bn_batches": 16,
            "eval.every": 1000,
        },
    )


def _summary(rows: list[dict], pipelines: list[str]) -> dict:
    """Mean / sd of the SWAG figures per pipeline, and the paired device - torchvision differences."""
    out: dict = {}
    for p in pipelines:
        mine = [r for r in rows if r["pipeline"] == p]
        out[p] = {
            k: {
                "mean": round(statistics.mean(r[k] for r in mine), 1),
                "sd": round(statistics.stdev(r[k] for r in mine), 1) if len(mine) > 1 else 0.0,
            }
            for k in ("swag_rank1", "swag_mAP")
        }
    if len(pipelines) == 2:
        by = {(r["pipeline"], r["seed"]): r for r in rows}
        seeds = sorted({r["seed"] for r in rows})
        for k in ("swag_rank1", "swag_mAP"):
            d = [round(by["device", s][k] - by["torchvision", s][k], 1) for s in seeds]
            out[f"device_minus_torchvision_{k}"] = {"per_seed": d, "mean": round(statistics.mean(d), 1)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--camera-variation", type=float, default=0.5)
    ap.add_argument("--train-ids", type=int, default=500)
    ap.add_argument("--test-ids", type=int, default=100)
    ap.add_argument("--images-per-id", type=int, default=6)
    ap.add_argument("--epochs", type=int, default=16, help="main-phase epochs (warm-up 2, x0.1 at 80%%)")
    ap.add_argument("--cycles", type=int, default=3, help="SWAG cycles of one epoch each")
    ap.add_argument("--width", type=float, default=0.25)
    ap.add_argument("--lr", type=float, default=0.03)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--seeds", help="comma-separated training seeds (overrides --seed), e.g. 0,1,2,3,4")
    ap.add_argument(
        "--save-weights",
        metavar="DIR",
        help="write DIR/untrained.pt and DIR/final.pt (last weights), e.g. for multicam-eval "
        "(DIR/<pipeline>/... with --pipeline both; the last seed's)",
    )
    ap.add_argument(
        "--pipeline",
        choices=["torchvision", "device", "both"],
        default="torchvision",
        help="data.pipeline (both: one run with each)",
    )
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    pipelines = ["torchvision", "device"] if args.pipeline == "both" else [args.pipeline]
    try:
        seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else [args.seed]
    except ValueError:
        ap.error(f"--seeds: expected comma-separated integers, got {args.seeds!r}")

    with tempfile.TemporaryDirectory(prefix="bench-learning-") as tmp:
        root = Path(tmp) / "market"
        t0 = time.perf_counter()
        generate(
            root,
            num_ids=args.train_ids + args.test_ids,
            num_train_ids=args.train_ids,
            num_cameras=4,
            images_per_id=args.images_per_id,
            seed=11,
            workers=2,
            camera_variation=args.camera_variation,
        )
        gen_s = time.perf_counter() - t0
        rows = []
        for seed in seeds:
            for pipeline in pipelines:
                trainer = Trainer(
                    _config(args, pipeline, seed),
                    root,
                    Path(tmp) / f"run-{pipeline}-{seed}",
                    log=None if args.json else print,
                )
                wdir = Path(args.save_weights or ".") / (pipeline if len(pipelines) > 1 else "")
                if args.save_weights:
                    trainer.save_weights(wdir / "untrained.pt")
                for _ in trainer.run():
                    pass
                if args.save_weights:
                    trainer.save_weights(wdir / "final.pt")
                s = trainer.summary
                row = {
                    "pipeline": pipeline,
                    "seed": seed,
                    "camera_variation": args.camera_variation,
                    "train_ids": args.train_ids,
                    "epochs": s["epochs"],
                    "generate_seconds": round(gen_s, 1),
                    "train_seconds": round(s["train_seconds"], 1),
                    **{k: round(100 * s[k], 1) for k in _KEYS},
                }
                rows.append(row)
                if not args.json:
                    print(
                        f"[{pipeline} seed {seed}] camera_variation {args.camera_variation}: {args.train_ids} "
                        f"train ids, {row['epochs']} epochs, {row['train_seconds']} s of training "
                        f"({row['generate_seconds']} s generating)"
                    )
                    for name in ("untrained", "plain", "swa", "swag"):
                        print(f"  {name:<9} rank-1 {row[name + '_rank1']:5.1f}%  mAP {row[name + '_mAP']:5.1f}%")
    summary = _summary(rows, pipelines) if len(seeds) > 1 else None
    if args.json:
        out: object = {"runs": rows, "summary": summary} if summary else (rows if len(rows) > 1 else rows[0])
        print(json.dumps(out))
        return
    if summary:
        print(f"SWAG over seeds {seeds}:")
        for p in pipelines:
            r1, m = summary[p]["swag_rank1"], summary[p]["swag_mAP"]
            print(f"  {p:<11} rank-1 {r1['mean']:5.1f} +- {r1['sd']:.1f}%  mAP {m['mean']:5.1f} +- {m['sd']:.1f}%")
        if len(pipelines) == 2:
            for k in ("swag_rank1", "swag_mAP"):
                d = summary[f"device_minus_torchvision_{k}"]
                print(f"  device - torchvision {k}: per seed {d['per_seed']}, mean {d['mean']:+.1f}")


if __name__ == "__main__":
    main()
