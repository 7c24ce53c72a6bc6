"""`compact-reid profile`: parameters and MACs of HA-CNN and Compact-ReID 1x/2x."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "profile",
        help="parameters and multiply-accumulates at 160x64 (Table 1)",
        description="Parameters (without and with the two identity classifiers) and "
        "multiply-accumulates for one 160x64 image, beside the paper's Table 1.",
    )
    parser.add_argument("--presets", default="hacnn,compact-1x,compact-2x", help="comma-separated preset names")
    parser.add_argument(
        "--num-classes", type=int, default=751, help="identities for the classifiers (Market-1501: 751)"
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=run)


def _pct(measured: float, paper: float | None) -> str:
    return "" if not paper else f"{100 * (measured - paper) / paper:+.1f}%"


def run(args: argparse.Namespace) -> int:
    from reid_core.complexity import profile_presets

    names = tuple(n.strip() for n in args.presets.split(",") if n.strip())
    result = profile_presets(names, args.num_classes)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{'model':<12} {'params':>9} {'+classif.':>10} {'paper':>6} {'MACs':>8} {'+BN':>8} {'paper':>6}")
    for name, r in result.items():
        pp, pm = r["paper"]["params_m"], r["paper"]["macs_g"]
        print(
            f"{name:<12} {r['params'] / 1e6:>8.3f}M {r['params_with_classifiers'] / 1e6:>9.3f}M "
            f"{(f'{pp:.1f}M' if pp else '-'):>6} {r['macs'] / 1e9:>7.3f}G {r['macs_with_bn'] / 1e9:>7.3f}G "
            f"{(f'{pm:.2f}G' if pm else '-'):>6}"
        )
    print(
        f"params: unique, without / with the two {args.num_classes}-way classifiers; "
        "MACs: conv + linear at test time (torch.utils.flop_counter), +BN adds BatchNorm multiply-adds"
    )
    return 0
