"""`compact-reid train`, `evaluate` and `presets`: single runs without Ray or MLflow."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import yaml


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "train",
        help="train one preset on a dataset folder (no Ray, no MLflow)",
        description="Train one preset; per-epoch progress on the console, metrics.json, "
        "checkpoints/last.pt and weights/{final,best}.pt (+ swa.pt with SWAG) in --out.",
    )
    parser.add_argument("--preset", required=True, help="a preset name (see `compact-reid presets`)")
    parser.add_argument("--data", required=True, help="dataset root (Market-1501 layout) or the folder containing it")
    parser.add_argument("--out", required=True, help="output folder of the run")
    schedule_length = parser.add_mutually_exclusive_group()
    schedule_length.add_argument("--epochs", type=int, help="main-phase epochs (milestones and cycles scaled to match)")
    schedule_length.add_argument(
        "--schedule-scale", type=float, help="multiply every epoch count of the recipe (e.g. 0.02)"
    )
    parser.add_argument("--resume", action="store_true", help="continue from --out/checkpoints/last.pt")
    parser.add_argument("--device", default="auto", help="auto (default), cpu or cuda")
    parser.add_argument("--seed", type=int, help="random seed (default: the preset's)")
    parser.add_argument("--dataset-name", default="auto", help="auto, market1501, dukemtmcreid or generic")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="config override, e.g. --set model.width_multiplier=0.5 (YAML value; repeatable)",
    )
    parser.set_defaults(func=run_train)

    evaluate = sub.add_parser(
        "evaluate",
        help="evaluate a checkpoint or weights file on a dataset",
        description="Rank-1/5/10, mAP and mINP under the standard protocol.",
    )
    evaluate.add_argument("--checkpoint", required=True, help="weights file (weights/final.pt) or checkpoint")
    evaluate.add_argument("--data", required=True, help="dataset root or the folder containing it")
    evaluate.add_argument("--dataset-name", default="auto")
    evaluate.add_argument("--device", default="auto")
    evaluate.add_argument("--flip", action="store_true", help="average the embeddings of each image and its mirror")
    evaluate.add_argument("--json", action="store_true")
    evaluate.set_defaults(func=run_evaluate)

    summary_parser = sub.add_parser(
        "presets",
        help="list the presets (Table 3 columns, Table 4 setups)",
        description="Presets are data: the paper's switches and the resolved config of each.",
    )
    summary_parser.add_argument("name", nargs="?", help="show one preset's full config")
    summary_parser.add_argument("--json", action="store_true")
    summary_parser.set_defaults(func=run_presets)


def parse_overrides(items: list[str]) -> dict[str, Any]:
    from reid_core.config import ConfigError

    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE")
        k, v = item.split("=", 1)
        out[k.strip()] = yaml.safe_load(v)
    return out


def run_train(args: argparse.Namespace) -> int:
    from reid_core.config import ConfigError
    from reid_core.presets import preset_config
    from reid_core.training.trainer import Trainer

    overrides = parse_overrides(args.set)
    if args.seed is not None:
        overrides["seed"] = args.seed
    cfg = preset_config(args.preset, overrides)
    if args.epochs is not None:
        if args.epochs < 1:
            raise ConfigError(f"--epochs: must be >= 1, got {args.epochs}")
        overrides["schedule.scale"] = args.epochs / cfg.schedule.epochs
    elif args.schedule_scale is not None:
        overrides["schedule.scale"] = args.schedule_scale
    cfg = preset_config(args.preset, overrides)

    out = Path(args.out)
    ckpt = out / "checkpoints" / "last.pt"
    if ckpt.exists() and not args.resume:
        raise ConfigError(f"--out {out}: holds a run already ({ckpt}); pass --resume or choose another --out")
    if args.resume and not ckpt.exists():
        raise ConfigError(f"--resume: no checkpoint at {ckpt}")
    trainer = Trainer(cfg, args.data, out, device=args.device, dataset_name=args.dataset_name)
    print(trainer.dataset.summary())
    if args.resume:
        trainer.resume_from(ckpt)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(yaml.safe_dump(_to_dict(trainer.cfg), sort_keys=False))
    for _ in trainer.run():
        trainer.save_checkpoint(ckpt)
        _write_metrics(out, trainer)
    for which in trainer.weight_kinds():  # final, best, and swa (the SWA mean) when SWAG ran
        trainer.save_weights(out / "weights" / f"{which}.pt", which)
    _write_metrics(out, trainer)
    summary = trainer.summary
    print(
        f"done: final rank1 {100 * summary['final_rank1']:.1f}% mAP {100 * summary['final_mAP']:.1f}% "
        f"(untrained {100 * summary.get('untrained_rank1', float('nan')):.1f}% / {100 * summary.get('untrained_mAP', float('nan')):.1f}%) "
        f"-> {out / 'metrics.json'}"
    )
    return 0


def _to_dict(cfg: Any) -> dict[str, Any]:
    from reid_core.config import to_dict

    return to_dict(cfg)


def _write_metrics(out: Path, trainer: Any) -> None:
    data = {"config": _to_dict(trainer.cfg), "history": trainer.history, "summary": trainer.summary}
    tmp = out / "metrics.json.tmp"
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(out / "metrics.json")


def run_evaluate(args: argparse.Namespace) -> int:
    import numpy as np

    from reid_core.checkpoint import build_model_from_weights, load_weights
    from reid_core.data import ImageDataset, build_test_transform, load_dataset
    from reid_core.evaluation import evaluate_model
    from reid_core.training.trainer import pick_device

    device = pick_device(args.device)
    obj = load_weights(args.checkpoint)
    model = build_model_from_weights(obj).to(device).eval()
    ds = load_dataset(args.data, args.dataset_name)
    tf = build_test_transform(model.cfg.input_height, model.cfg.input_width)
    from torch.utils.data import DataLoader

    ql = DataLoader(ImageDataset(ds.query, tf), batch_size=128, num_workers=2)
    gl = DataLoader(ImageDataset(ds.gallery, tf), batch_size=128, num_workers=2)
    res = evaluate_model(model, ql, gl, device, flip=args.flip)
    out = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in res.items()}
    out["checkpoint"] = str(args.checkpoint)
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(
            f"rank1 {100 * out['rank1']:.2f}%  rank5 {100 * out['rank5']:.2f}%  rank10 {100 * out['rank10']:.2f}%  "
            f"mAP {100 * out['mAP']:.2f}%  mINP {100 * out['mINP']:.2f}%"
        )
    return 0


def run_presets(args: argparse.Namespace) -> int:
    from reid_core.presets import SWITCHES, describe_presets

    info = describe_presets()
    if args.name:
        from reid_core.config import ConfigError

        if args.name not in info:
            raise ConfigError(f"preset: unknown preset {args.name!r}; allowed: {', '.join(info)}")
        info = {args.name: info[args.name]}
        if not args.json:
            print(yaml.safe_dump(info, sort_keys=False))
            return 0
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    short = {
        "bot": "BoT",
        "weighted_triplet": "wtri",
        "l2": "L2",
        "shuffle": "shuf",
        "soft_margin": "soft",
        "gem": "GeM",
        "deeper_wider": "2x",
        "swag": "SWAG",
    }
    print(f"{'preset':<14}" + "".join(f"{short[s]:>6}" for s in SWITCHES) + "  description")
    for name, p in info.items():
        marks = "".join(f"{('x' if p['switches'][s] else '.'):>6}" for s in SWITCHES)
        print(f"{name:<14}{marks}  {p['description']}")
    return 0
