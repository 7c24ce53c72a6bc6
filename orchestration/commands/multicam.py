"""`compact-reid multicam-eval`: Table 5 (multi-camera person identities with ReID at entries) on the
synthetic LAB-like scene, for checkpoints or for every finished trial of a sweep. `track-eval` is its
deprecated former name: same options, plus a note on stderr."""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

COMMAND = "multicam-eval"
DEPRECATED_ALIAS = "track-eval"
DESCRIPTION = (
    "Simulates a LAB-like room (5x6 m, 4 corner cameras, up to 7 people entering, sitting, leaving "
    "and coming back), tracks people inside with a near-perfect tracker and gives each entering "
    "person a global identity: a new one (No ReID), the model's ReID decision against the people "
    "not inside (threshold calibrated on a separate sequence), or the true one (Oracle). Prints "
    "MOTA, IDF1, ID switches and the entries re-identified correctly. With --experiment, "
    "evaluates every finished trial of a sweep (its weights/final.pt artifact) and logs "
    "track_mota, track_idf1, track_idsw, track_entry_accuracy, track_idf1_noreid and "
    "track_idf1_oracle on the trial's MLflow run."
)


def register(sub: argparse._SubParsersAction) -> None:
    _add_options(
        sub.add_parser(
            COMMAND, help="Table 5: multicam IDF1 with no ReID / a model / the oracle", description=DESCRIPTION
        ),
        run,
    )
    _add_options(
        sub.add_parser(
            DEPRECATED_ALIAS,
            help=f"deprecated: use {COMMAND}",
            description=f"Deprecated name of `compact-reid {COMMAND}`. " + DESCRIPTION,
        ),
        run_deprecated,
    )


def _add_options(p: argparse.ArgumentParser, func) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--checkpoint",
        action="append",
        metavar="FILE",
        help="weights file (weights/final.pt) or checkpoint; repeat for several rows",
    )
    src.add_argument("--experiment", help="a sweep's MLflow experiment: evaluate its finished trials")
    p.add_argument(
        "--train-set",
        action="append",
        metavar="NAME",
        help="training set shown for each --checkpoint, in order (default: what the weights file "
        "records, else '-'); with --experiment the run's data.name param is used",
    )
    p.add_argument(
        "--tracking-uri",
        default=None,
        help="with --experiment: sqlite:///path/mlflow.db, a *.db path or http://host:port "
        "(default: $MLFLOW_TRACKING_URI, else sqlite:///<abs>/runs/mlflow.db)",
    )
    p.add_argument("--force", action="store_true", help="with --experiment: re-evaluate runs that have track_idf1")
    p.add_argument("--seed", type=int, default=0, help="seed of the scored sequence (default 0)")
    p.add_argument(
        "--calibration-seed",
        type=int,
        default=1,
        help="seed of the sequence the threshold is calibrated on; must differ from --seed (default 1)",
    )
    p.add_argument("--minutes", type=float, default=4.0, help="simulated minutes per sequence (default 4)")
    p.add_argument("--fps", type=float, default=15.0, help="simulation rate in Hz (default 15, the LAB's)")
    p.add_argument("--identities", type=int, default=12, help="identities in the pool (default 12)")
    p.add_argument("--max-images-per-id", type=int, default=10, help="gallery images kept per identity (default 10)")
    p.add_argument(
        "--policy",
        choices=("recent", "diverse"),
        default="recent",
        help="which gallery images an identity keeps: the newest (default) or a diverse subset",
    )
    p.add_argument(
        "--threshold", type=float, default=None, help="fixed ReID distance threshold (skips the calibration sequence)"
    )
    p.add_argument("--device", default="auto", help="auto (default), cpu or cuda")
    p.add_argument("--json", action="store_true", help="print the full result as JSON")
    p.set_defaults(func=func)


def run_deprecated(args: argparse.Namespace) -> int:
    print(
        f"compact-reid {DEPRECATED_ALIAS} is deprecated: use compact-reid {COMMAND} (same options)",
        file=sys.stderr,
        flush=True,
    )
    return run(args)


def _pct(x: float) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}"


def format_table(result: dict[str, Any]) -> str:
    """A Table 5 style text table: No ReID, one row per model, Oracle."""
    sc = result["scene"]
    cfg = sc["config"]
    head = (
        f"Multicam, synthetic LAB-like scene: seed {cfg['seed']}, {cfg['minutes']:g} min at "
        f"{cfg['fps']:g} Hz, {cfg['num_identities']} identities, {sc['visits']} entries "
        f"({sc['re_entries']} re-entries), up to {sc['max_inside']} people inside"
    )
    cal = result.get("calibration_scene")
    if cal is not None:
        head += f"\nthreshold calibrated per model on seed {cal['config']['seed']} (other people, same room)"
    rows = [("No ReID", "-", result["no_reid"], "-")]
    for m in result["models"]:
        info = m["model"]
        rows.append(
            (str(info.get("label", "model")), str(info.get("train_set") or "-"), m["reid"], f"{m['threshold']:.2f}")
        )
    rows.append(("Oracle", "-", result["oracle"], "-"))
    width = max(12, *(len(r[0]) for r in rows))
    wt = max(10, *(len(r[1]) for r in rows))
    lines = [
        head,
        "",
        f"{'Model':<{width}}  {'Trained on':<{wt}}  {'MOTA':>5}  {'IDF1':>5}  {'IDSW':>4}  "
        f"{'Entries re-identified':>22}  {'Thr':>4}",
    ]
    lines.append("-" * len(lines[-1]))
    for name, ts, r, thr in rows:
        ent = f"{r['entries_correct']}/{r['entries']} ({_pct(r['entry_accuracy'])}%)"
        lines.append(
            f"{name:<{width}}  {ts:<{wt}}  {_pct(r['mota']):>5}  {_pct(r['idf1']):>5}  "
            f"{r['num_switches']:>4}  {ent:>22}  {thr:>4}"
        )
    return "\n".join(lines)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if hasattr(obj, "item") and getattr(obj, "ndim", 1) == 0:
        return _jsonable(obj.item())
    return obj


def run(args: argparse.Namespace) -> int:
    from reid_core.config import ConfigError

    if args.threshold is None and args.seed == args.calibration_seed:
        raise ConfigError(
            f"--calibration-seed must differ from --seed ({args.seed}): the threshold is never "
            "chosen on the scored sequence"
        )
    if args.minutes <= 0 or args.identities < 1 or args.max_images_per_id < 1:
        raise ConfigError("--minutes must be > 0, --identities and --max-images-per-id >= 1")
    if not 1 <= args.fps <= 60:
        raise ConfigError(f"--fps must be in [1, 60], got {args.fps}")
    log = (lambda m: print(m, file=sys.stderr, flush=True)) if args.json else (lambda m: print(m, flush=True))
    kwargs: dict[str, Any] = {
        "scene_config": {"fps": args.fps, "num_identities": args.identities},
        "max_images_per_id": args.max_images_per_id,
        "policy": args.policy,
        "threshold": args.threshold,
    }
    device = None if args.device in ("", "auto") else args.device
    if args.experiment:
        from orchestration.multicam_eval import evaluate_experiment

        result = evaluate_experiment(
            args.experiment,
            args.tracking_uri,
            seed=args.seed,
            calibration_seed=args.calibration_seed,
            minutes=args.minutes,
            device=device,
            force=args.force,
            log=log,
            **kwargs,
        )
        if not result["models"]:
            if args.json:
                print(json.dumps(_jsonable(result), indent=2))
            return 0
    else:
        from reid_core.multicam.evaluate import run_multicam_eval_many

        models: list[Any] = list(args.checkpoint)
        if args.train_set:
            if len(args.train_set) != len(models):
                raise ConfigError(f"--train-set: give one per --checkpoint ({len(models)}), got {len(args.train_set)}")
            models = [{"checkpoint": c, "train_set": t} for c, t in zip(models, args.train_set)]
        result = run_multicam_eval_many(
            models,
            seed=args.seed,
            calibration_seed=args.calibration_seed,
            minutes=args.minutes,
            device=device,
            log=log,
            **kwargs,
        )
    if args.json:
        print(json.dumps(_jsonable(result), indent=2))
    else:
        print()
        print(format_table(result))
    return 0
