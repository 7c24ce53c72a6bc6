"""Times the synthetic dataset generator (plain script, no asserts).

    python benchmarks/bench_synth.py [--ids 1501] [--images-per-id 17] [--workers 2] [--out DIR]

Defaults: a Market-1501-sized set (751 + 750 ids, 2,793 distractors, 3,819 junk: ~32k
images), written to a temporary folder that is removed afterwards.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from reid_core.data.synth import MARKET_SIZED, generate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ids", type=int, default=MARKET_SIZED["num_ids"])
    ap.add_argument("--images-per-id", type=int, default=MARKET_SIZED["images_per_id"])
    ap.add_argument("--cameras", type=int, default=MARKET_SIZED["num_cameras"])
    ap.add_argument("--distractors", type=int, default=None, help="default: Market's 2793 at Market size, else 22%%")
    ap.add_argument("--junk", type=int, default=None, help="default: Market's 3819 at Market size, else 30%%")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default=None, help="keep the dataset here (default: a temporary folder)")
    args = ap.parse_args()
    market = args.ids == MARKET_SIZED["num_ids"] and args.images_per_id == MARKET_SIZED["images_per_id"]
    distractors = (
        args.distractors if args.distractors is not None else (MARKET_SIZED["num_distractors"] if market else None)
    )
    junk = args.junk if args.junk is not None else (MARKET_SIZED["num_junk"] if market else None)

    tmp = None if args.out else tempfile.mkdtemp(prefix="bench_synth_")
    out = Path(args.out or tmp)
    t0 = time.perf_counter()

    quarter = [0]

    def progress(done: int, total: int) -> None:
        if 4 * done >= (quarter[0] + 1) * total:  # one line per quarter
            quarter[0] = 4 * done // total
            print(f"  {done}/{total} images, {time.perf_counter() - t0:.1f} s", flush=True)

    try:
        summary = generate(
            out,
            num_ids=args.ids,
            num_cameras=args.cameras,
            images_per_id=args.images_per_id,
            num_distractors=distractors,
            num_junk=junk,
            workers=args.workers,
            progress=progress,
        )
        wall = time.perf_counter() - t0
        size_mb = sum(f.stat().st_size for f in out.rglob("*.jpg")) / 2**20
        print(
            f"{summary['total_images']} images ({summary['train_images']} train, {summary['query_images']} query, "
            f"{summary['gallery_images']} gallery incl. {summary['num_distractors']} distractors "
            f"and {summary['num_junk']} junk), "
            f"{size_mb:.0f} MiB"
        )
        print(
            f"time {summary['seconds']:.1f} s rendering+writing with {args.workers} workers "
            f"({wall:.1f} s for the whole generate() call): {summary['images_per_second']:.0f} images/s"
        )
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
