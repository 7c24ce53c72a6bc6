"""`compact-reid data synth` and `compact-reid data summary`."""

from __future__ import annotations

import argparse
import json
import sys
import time


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "data",
        help="datasets: generate a synthetic one, summarise one",
        description="Datasets in the Market-1501 layout.",
    )
    sub = parser.add_subparsers(dest="data_command", required=True, metavar="SUBCOMMAND")

    synth = sub.add_parser(
        "synth",
        help="write a synthetic dataset in the Market-1501 layout",
        description="Write a synthetic person-ReID dataset (Market-1501 folders and file "
        "names). Market-sized: --ids 1501 --images-per-id 17 --distractors 2793 --junk 3819.",
    )
    synth.add_argument("--out", required=True, help="output folder (created; its dataset folders must be empty)")
    synth.add_argument("--ids", type=int, default=100, help="identities in all, half train half test (default 100)")
    synth.add_argument("--cameras", type=int, default=6, help="number of cameras, 2..9 (default 6)")
    synth.add_argument("--images-per-id", type=int, default=12, help="images per identity, >= 4 (default 12)")
    synth.add_argument(
        "--distractors",
        type=int,
        default=None,
        help="distractor images (id 0) in the gallery (default: 22%% of the test images)",
    )
    synth.add_argument(
        "--junk", type=int, default=None, help="junk images (id -1) in the gallery (default: 30%% of the test images)"
    )
    synth.add_argument(
        "--camera-variation",
        type=float,
        default=1.0,
        help="how much cameras differ, 0..1 (default 1 = full strength; lower = easier set)",
    )
    synth.add_argument("--seed", type=int, default=0, help="random seed; same seed, same bytes (default 0)")
    synth.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    synth.add_argument("--overwrite", action="store_true", help="replace the dataset folders if they hold files")
    synth.add_argument("--json", action="store_true", help="print the summary as JSON")
    synth.set_defaults(func=_synth)

    summary = sub.add_parser(
        "summary",
        help="list a dataset: ids, images and cameras per subset",
        description="Summarise a dataset in the Market-1501 layout (the dataset folder or the "
        "folder that contains it).",
    )
    summary.add_argument("dir", help="dataset folder, or a folder containing exactly one")
    summary.add_argument(
        "--name",
        default="auto",
        choices=["auto", "market1501", "dukemtmcreid", "generic"],
        help="dataset kind (default: auto, from the folder name)",
    )
    summary.add_argument("--json", action="store_true", help="print the counts as JSON")
    summary.set_defaults(func=_summary)


def _synth(args: argparse.Namespace) -> int:
    from reid_core.data.datasets import load_dataset
    from reid_core.data.synth import generate

    t0 = time.perf_counter()
    last = [t0]

    def progress(done: int, total: int) -> None:
        now = time.perf_counter()
        if done < total and now - last[0] < 2.0:  # one line every 2 s at most
            return
        last[0] = now
        rate = done / max(now - t0, 1e-9)
        print(
            f"rendered {done}/{total} images ({rate:.0f} images/s)",
            file=sys.stderr if args.json else sys.stdout,
            flush=True,
        )

    summary = generate(
        args.out,
        num_ids=args.ids,
        num_cameras=args.cameras,
        images_per_id=args.images_per_id,
        seed=args.seed,
        num_distractors=args.distractors,
        num_junk=args.junk,
        workers=args.workers,
        camera_variation=args.camera_variation,
        overwrite=args.overwrite,
        progress=progress,
    )
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(load_dataset(args.out, name="generic").summary())
    print(
        f"{summary['total_images']} images in {summary['seconds']:.1f} s "
        f"({summary['images_per_second']:.0f} images/s, {summary['workers']} workers), seed {summary['seed']}"
    )
    return 0


def _summary(args: argparse.Namespace) -> int:
    from reid_core.data.datasets import load_dataset

    ds = load_dataset(args.dir, name=args.name)
    if args.json:
        print(json.dumps(ds.stats(), indent=2))
    else:
        print(ds.summary())
    return 0
