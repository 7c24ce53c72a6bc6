"""`compact-reid export`: the eval-mode embedding network as ONNX or TorchScript, parity-checked."""

from __future__ import annotations

import argparse
import json
import sys


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "export",
        help="export the embedding network to ONNX or TorchScript (parity-checked)",
        description="Export the eval-mode embedding network of a weights file (global + local "
        "features, L2-normalised, hard attention included; input 'images' [N, 3, H, W] "
        "with a dynamic batch, output 'embedding' [N, D]). The exported file is run "
        "(ONNX Runtime / TorchScript) against PyTorch on random inputs and on real crops "
        "(--images or --data); above --tolerance it is refused and nothing is written.",
    )
    parser.add_argument("--weights", required=True, help="a compact-reid weights file (weights/final.pt) or checkpoint")
    parser.add_argument("--format", required=True, help="onnx or torchscript")
    parser.add_argument("--out", required=True, help="output file (e.g. model.onnx, model.ts)")
    weights_source = parser.add_mutually_exclusive_group()
    weights_source.add_argument("--images", nargs="+", metavar="DIR_OR_GLOB", help="real crops for the parity check")
    weights_source.add_argument(
        "--data", help="a dataset (Market-1501 layout): its query/gallery crops for the parity check"
    )
    parser.add_argument("--crops", type=int, default=32, help="how many real crops the parity check uses (default 32)")
    parser.add_argument(
        "--tolerance", type=float, default=None, help="largest max |exported - pytorch| accepted (1e-3)"
    )
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset (default 18; >= 16 for GridSample)")
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(func=run)


def _real_crops(args: argparse.Namespace, height: int, width: int):  # -> torch.Tensor | None
    import torch

    from reid_core.deploy.images import CropBatches, list_images

    if args.images:
        paths = list_images(args.images)
    elif args.data:
        from reid_core.data import load_dataset

        ds = load_dataset(args.data)
        half = max(1, args.crops // 2)
        paths = [it.path for it in ds.query[:half]] + [it.path for it in ds.gallery[:half]]
    else:
        return None
    batches = CropBatches(paths[: args.crops], height, width, batch_size=max(1, args.crops))
    images = [x for x, _ in batches]
    if len(batches.skipped):
        print(batches.skipped.summary(), file=sys.stderr)
    return torch.cat(images) if images else None


def run(args: argparse.Namespace) -> int:
    from reid_core.config import ConfigError
    from reid_core.deploy.export import ONNX_OPSET, PARITY_TOLERANCE, check_format, export_model
    from reid_core.deploy.model import load_embedding_net

    check_format(args.format)  # before loading anything: unknown format, or a runtime missing here
    if args.crops < 1:
        raise ConfigError(f"--crops: must be >= 1, got {args.crops}")
    net, info = load_embedding_net(args.weights)
    crops = _real_crops(args, info.input_height, info.input_width)
    res = export_model(
        net,
        info,
        args.format,
        args.out,
        crops=crops,
        tolerance=PARITY_TOLERANCE if args.tolerance is None else args.tolerance,
        opset=ONNX_OPSET if args.opset is None else args.opset,
    )
    if args.json:
        print(
            json.dumps(
                {
                    "out": str(res.path),
                    "format": res.format,
                    "fingerprint": info.fingerprint,
                    "embedding_dim": info.embedding_dim,
                    "input": [info.input_height, info.input_width],
                    "max_abs_diff": res.max_abs_diff,
                    "tolerance": res.tolerance,
                    "checks": [vars(c) for c in res.checks],
                    "notes": res.notes,
                },
                indent=2,
            )
        )
        return 0
    for note in res.notes:
        print(f"note: {note}", file=sys.stderr)
    checks = ", ".join(f"{c.label} x{c.batch}: {c.max_abs_diff:.2e}" for c in res.checks)
    print(f"parity {res.format} vs pytorch: max abs diff {res.max_abs_diff:.2e} <= {res.tolerance:g} ({checks})")
    print(
        f"wrote {res.path} ({res.format}, model {info.fingerprint}, {info.embedding_dim}-d embedding, "
        f"input [N, 3, {info.input_height}, {info.input_width}], dynamic batch)"
    )
    return 0
