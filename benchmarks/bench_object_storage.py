"""What object storage costs a sweep, measured against a real S3 endpoint on this machine
(moto's server on loopback, tests/s3_server.py), each figure from one run:

- the smoke sweep's wall time with `--storage s3://...` against local storage (same spec,
  same machine, one after the other), as a ratio;
- the bytes each trial uploads (Ray's checkpoints and state, the shared-training checkpoints
  it stores), and the dataset archive once per sweep;
- checkpoint upload time against epoch time (each trial's `report_s`: checkpoints saved and
  reported, S3 against local, per epoch; against `train_seconds` per epoch);
- staging a generated Market-sized archive (1501 identities, 17 images each; about 150 MB at
  the default 192x96): the first trial on a node (download, checksum, unpack, digest), and
  the ones after it (verification only).

    python benchmarks/bench_object_storage.py [--spec sweeps/smoke.yaml] [--image-size 192x96] [--skip-sweeps] [--out FILE.json]

Loopback S3 has no network latency or bandwidth limit: on a real cluster uploads cost more.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the S3 endpoint the tests use


def _sweep(spec: str, runs: Path, storage: str | None) -> dict:
    from orchestration.sweep.runner import SweepOptions, run_sweep

    began = time.perf_counter()
    outcome = run_sweep(spec, SweepOptions(runs_dir=runs, storage=storage, verbose=0, log=lambda _m: None))
    return {"wall_s": time.perf_counter() - began, "trials": outcome.trials, "counts": outcome.counts}


def _per_epoch(row: dict, key: str) -> float | None:
    value, epochs = row.get(key), row.get("total_epochs") or row.get("epoch")
    return float(value) / epochs if isinstance(value, (int, float)) and epochs else None


def _uploads(storage: str, name: str) -> dict:
    from orchestration.storage.store import Store

    listing = Store(storage).listing()
    per_trial: dict[str, int] = {}
    for path, size in listing.items():
        parts = path.split("/")
        if parts[0] == name and len(parts) > 2:
            trial = parts[1].rsplit("_", 1)[0]
            per_trial[trial] = per_trial.get(trial, 0) + size
    shared = {p: s for p, s in listing.items() if p.startswith("_shared/") and p.endswith(".pt")}
    data = sum(s for p, s in listing.items() if p.startswith("_data/"))
    sweep_files = sum(s for p, s in listing.items() if p.startswith(f"{name}/") and p.count("/") == 1)
    return {"per_trial_ray": per_trial, "shared_checkpoints": shared, "data_archive": data, "sweep_files": sweep_files}


def _staging(image_size: tuple[int, int], work: Path) -> dict:
    from orchestration.storage.staging import file_sha256, stage
    from orchestration.storage.store import Store
    from orchestration.sweep.sweep_data import _zip
    from reid_core.data.synth import generate

    began = time.perf_counter()  # Market-sized: 1501 identities, 17 images each, 6 cameras
    info = generate(
        work / "market",
        num_ids=1501,
        images_per_id=17,
        num_cameras=6,
        seed=3,
        size=image_size,
        workers=os.cpu_count() or 2,
    )
    generated_s = time.perf_counter() - began
    archive = work / "market.zip"
    _zip(work / "market", archive)
    size = archive.stat().st_size
    storage = os.environ["BENCH_STORAGE"]
    began = time.perf_counter()
    Store(storage).upload(archive, "data/market.zip")
    upload_s = time.perf_counter() - began
    checksum = file_sha256(archive)
    first = stage(f"{storage}/data/market.zip", checksum, log=lambda _m: None)
    after = [stage(f"{storage}/data/market.zip", checksum, log=lambda _m: None) for _ in range(3)]
    return {
        "archive_mb": size / 1e6,
        "images": info.get("train_images", 0) + info.get("query_images", 0) + info.get("gallery_images", 0),
        "generate_s": generated_s,
        "upload_s": upload_s,
        "first_stage_s": first.seconds,
        "later_stage_s": [s.seconds for s in after],
        "later_downloaded": [s.downloaded for s in after],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", default=str(REPO / "sweeps" / "smoke.yaml"))
    parser.add_argument(
        "--image-size",
        default="192x96",
        help="HxW of the generated Market-sized archive's images (192x96: about 150 MB; 128x64: about 60 MB)",
    )
    parser.add_argument("--skip-sweeps", action="store_true", help="only the staging figures")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    from s3_server import LocalS3

    from orchestration.sweep.spec import load_spec

    name = load_spec(args.spec).file.name
    results: dict = {"spec": args.spec}
    with tempfile.TemporaryDirectory(prefix="bench-s3-") as tmp:
        work = Path(tmp)
        s3 = LocalS3(work / "s3").start()
        try:
            os.environ.update(s3.env())
            os.environ["COMPACT_REID_CACHE"] = str(work / "cache")
            storage = f"s3://{s3.bucket}/bench"
            os.environ["BENCH_STORAGE"] = storage
            if not args.skip_sweeps:
                local = _sweep(args.spec, work / "local-runs", None)
                print(f"local storage: {local['wall_s']:.1f} s", flush=True)
                remote = _sweep(args.spec, work / "s3-runs", storage)
                print(f"S3 storage:    {remote['wall_s']:.1f} s", flush=True)
                uploads = _uploads(storage, name)
                rows = []
                by_local = {row["trial"]: row for row in local["trials"]}
                for row in remote["trials"]:
                    base = by_local.get(row["trial"], {})
                    rows.append(
                        {
                            "trial": row["trial"],
                            "epochs": row.get("total_epochs"),
                            "epoch_s": _per_epoch(row, "train_seconds"),
                            "report_s_per_epoch_s3": _per_epoch(row, "report_s"),
                            "report_s_per_epoch_local": _per_epoch(base, "report_s"),
                            "uploaded_mb": uploads["per_trial_ray"].get(row["trial"], 0) / 1e6,
                        }
                    )
                results.update(
                    local_wall_s=local["wall_s"],
                    s3_wall_s=remote["wall_s"],
                    ratio=remote["wall_s"] / local["wall_s"],
                    trials=rows,
                    shared_checkpoints_mb={k: v / 1e6 for k, v in uploads["shared_checkpoints"].items()},
                    data_archive_mb=uploads["data_archive"] / 1e6,
                    sweep_files_kb=uploads["sweep_files"] / 1e3,
                )
                print(f"ratio S3/local: {results['ratio']:.2f}")
                for row in rows:
                    print(
                        f"  {row['trial']:<18} {row['epochs']} epochs, {row['uploaded_mb']:.1f} MB uploaded by Ray, "
                        f"epoch {row['epoch_s'] or 0:.1f} s, checkpoint+report per epoch: "
                        f"S3 {row['report_s_per_epoch_s3'] or 0:.2f} s, local {row['report_s_per_epoch_local'] or 0:.2f} s"
                    )
                print(f"  shared checkpoints: {results['shared_checkpoints_mb']}")
                print(f"  dataset archive: {results['data_archive_mb']:.1f} MB once per sweep")
            height, width = (int(v) for v in args.image_size.split("x"))
            staging = _staging((height, width), work)
            results["staging"] = staging
            print(
                f"staging a {staging['archive_mb']:.0f} MB archive ({staging['images']} images): first trial on a node "
                f"{staging['first_stage_s']:.1f} s, later ones {max(staging['later_stage_s']):.1f} s (verification only); "
                f"generating it took {staging['generate_s']:.0f} s"
            )
        finally:
            s3.stop()
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
