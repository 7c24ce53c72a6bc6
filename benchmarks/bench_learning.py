"""How far a short CPU run of `compact` learns on generated data (the learning check, scaled).

Generates a Market-layout set (by default 500 train + 100 test identities, 6 images each,
4 cameras), trains `compact` (2x, every switch, SWAG) shrunk for a CPU, and prints the
untrained, main-phase, SWA and SWAG rank-1 / mAP with the training seconds.
`--camera-variation` sets how much the generated cameras differ (1 = full strength).

`--pipeline torchvision|device|both` sets data.pipeline (`both`: the same generated set and
seed trained with each, one after the other, printed side by side).

    python benchmarks/bench_learning.py [--camera-variation 0.5] [--epochs 16] [--cycles 3] [--save-weights DIR]
    python benchmarks/bench_learning.py --pipeline both
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runs from a plain checkout too

from reid_core.data.synth import generate  # noqa: E402
from reid_core.presets import preset_config  # noqa: E402
from reid_core.training.trainer import Trainer  # noqa: E402

_KEYS = ("untrained_rank1", "untrained_mAP", "plain_rank1", "plain_mAP", "swa_rank1", "swa_mAP", "swag_rank1", "swag_mAP")


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
    ap.add_argument("--save-weights", metavar="DIR",
                    help="write DIR/untrained.pt and DIR/final.pt (last weights), e.g. for track-eval "
                         "(DIR/<pipeline>/... with --pipeline both)")
    ap.add_argument("--pipeline", choices=["torchvision", "device", "both"], default="torchvision",
                    help="data.pipeline (both: one run with each)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    pipelines = ["torchvision", "device"] if args.pipeline == "both" else [args.pipeline]

    with tempfile.TemporaryDirectory(prefix="bench-learning-") as tmp:
        root = Path(tmp) / "market"
        t0 = time.perf_counter()
        generate(root, num_ids=args.train_ids + args.test_ids, num_train_ids=args.train_ids, num_cameras=4,
                 images_per_id=args.images_per_id, seed=11, workers=2, camera_variation=args.camera_variation)
        gen_s = time.perf_counter() - t0
        rows = []
        for pipeline in pipelines:
            cfg = preset_config("compact", {
                "seed": args.seed, "model.width_multiplier": args.width, "model.depth_multiplier": 0.3,
                "model.input_height": 80, "model.input_width": 32, "data.num_workers": 0,
                "data.pipeline": pipeline,
                "schedule.epochs": args.epochs, "schedule.warmup_epochs": 2,
                "schedule.milestones": [max(3, round(0.8 * args.epochs))], "optim.lr": args.lr,
                "swag.cycles": args.cycles, "swag.cycle_epochs": 1, "swag.samples": 4, "swag.bn_batches": 16,
                "eval.every": 1000,
            })
            trainer = Trainer(cfg, root, Path(tmp) / f"run-{pipeline}", log=None if args.json else print)
            wdir = Path(args.save_weights or ".") / (pipeline if len(pipelines) > 1 else "")
            if args.save_weights:
                trainer.save_weights(wdir / "untrained.pt")
            for _ in trainer.run():
                pass
            if args.save_weights:
                trainer.save_weights(wdir / "final.pt")
            s = trainer.summary
            rows.append({"pipeline": pipeline, "camera_variation": args.camera_variation, "train_ids": args.train_ids,
                         "epochs": s["epochs"], "generate_seconds": round(gen_s, 1),
                         "train_seconds": round(s["train_seconds"], 1), **{k: round(100 * s[k], 1) for k in _KEYS}})
    if args.json:
        print(json.dumps(rows if len(rows) > 1 else rows[0]))
        return
    for row in rows:
        print(f"[{row['pipeline']}] camera_variation {args.camera_variation}: {args.train_ids} train ids, "
              f"{row['epochs']} epochs, {row['train_seconds']} s of training ({row['generate_seconds']} s generating)")
        for name in ("untrained", "plain", "swa", "swag"):
            print(f"  {name:<9} rank-1 {row[name + '_rank1']:5.1f}%  mAP {row[name + '_mAP']:5.1f}%")


if __name__ == "__main__":
    main()
