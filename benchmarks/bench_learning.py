"""How far a short CPU run of `compact` learns on generated data (the learning check, scaled).

Generates a Market-layout set (by default 500 train + 100 test identities, 6 images each,
4 cameras), trains `compact` (2x, every switch, SWAG) shrunk for a CPU, and prints the
untrained, main-phase, SWA and SWAG rank-1 / mAP with the training seconds.
`--camera-variation` sets how much the generated cameras differ (1 = full strength).

    python benchmarks/bench_learning.py [--camera-variation 0.5] [--epochs 16] [--cycles 3] [--save-weights DIR]
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from reid_core.data.synth import generate
from reid_core.presets import preset_config
from reid_core.training.trainer import Trainer


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
                    help="write DIR/untrained.pt and DIR/final.pt (last weights), e.g. for track-eval")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-learning-") as tmp:
        root = Path(tmp) / "market"
        t0 = time.perf_counter()
        generate(root, num_ids=args.train_ids + args.test_ids, num_train_ids=args.train_ids, num_cameras=4,
                 images_per_id=args.images_per_id, seed=11, workers=2, camera_variation=args.camera_variation)
        gen_s = time.perf_counter() - t0
        cfg = preset_config("compact", {
            "seed": args.seed, "model.width_multiplier": args.width, "model.depth_multiplier": 0.3,
            "model.input_height": 80, "model.input_width": 32, "data.num_workers": 0,
            "schedule.epochs": args.epochs, "schedule.warmup_epochs": 2,
            "schedule.milestones": [max(3, round(0.8 * args.epochs))], "optim.lr": args.lr,
            "swag.cycles": args.cycles, "swag.cycle_epochs": 1, "swag.samples": 4, "swag.bn_batches": 16,
            "eval.every": 1000,
        })
        trainer = Trainer(cfg, root, Path(tmp) / "run", log=None if args.json else print)
        if args.save_weights:
            trainer.save_weights(Path(args.save_weights) / "untrained.pt")
        for _ in trainer.run():
            pass
        if args.save_weights:
            trainer.save_weights(Path(args.save_weights) / "final.pt")
    s = trainer.summary
    row = {"camera_variation": args.camera_variation, "train_ids": args.train_ids, "epochs": s["epochs"],
           "generate_seconds": round(gen_s, 1), "train_seconds": round(s["train_seconds"], 1),
           **{k: round(100 * s[k], 1) for k in ("untrained_rank1", "untrained_mAP", "plain_rank1", "plain_mAP",
                                                  "swa_rank1", "swa_mAP", "swag_rank1", "swag_mAP")}}
    if args.json:
        print(json.dumps(row))
        return
    print(f"camera_variation {args.camera_variation}: {args.train_ids} train ids, {s['epochs']} epochs, "
          f"{row['train_seconds']} s of training ({row['generate_seconds']} s generating)")
    for name in ("untrained", "plain", "swa", "swag"):
        print(f"  {name:<9} rank-1 {row[name + '_rank1']:5.1f}%  mAP {row[name + '_mAP']:5.1f}%")


if __name__ == "__main__":
    main()
