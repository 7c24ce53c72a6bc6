"""`compact-reid embed`: features of a folder (or glob) of crops, with PyTorch weights,
an exported ONNX file (ONNX Runtime) or a TorchScript file."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_model_args(p: argparse.ArgumentParser, required: bool) -> None:
    source = p.add_mutually_exclusive_group(required=required)
    source.add_argument("--weights", help="a compact-reid weights file (PyTorch)")
    source.add_argument("--onnx", help="a model written by `compact-reid export --format onnx` (ONNX Runtime)")
    source.add_argument("--torchscript", help="a model written by `compact-reid export --format torchscript`")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers decoding the images")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def open_model(args: argparse.Namespace) -> Any:
    from reid_core.deploy.runtime import open_embedder

    return open_embedder(weights=args.weights, onnx=args.onnx, torchscript=args.torchscript, device=args.device)


def embed_paths(embedder: Any, paths: list, args: argparse.Namespace, what: str) -> Any:
    """Embed with a tqdm bar; report the skipped files on stderr."""
    from tqdm.auto import tqdm

    from reid_core.deploy.embed import embed_images

    with tqdm(
        total=len(paths),
        unit="img",
        desc=f"embed {what} ({embedder.backend})",
        disable=args.no_progress,
        file=sys.stderr,
    ) as bar:
        fs, skipped = embed_images(
            embedder, paths, args.batch_size, args.workers, progress=lambda done, _total: bar.update(done - bar.n)
        )
    if len(skipped):
        print(skipped.summary(), file=sys.stderr)
    return fs, skipped


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "embed",
        help="embed a folder or glob of person crops into a features file",
        description="Features of every crop (the evaluation's preprocessing: resize to the model's "
        "input, ImageNet normalisation) with their file names and the model's fingerprint, "
        "as .npz or .parquet (by the --out suffix; Parquet needs pyarrow). Files that are "
        "not readable images (non-images, truncated JPEGs) are counted, named and skipped.",
    )
    add_model_args(parser, required=True)
    parser.add_argument("--images", required=True, nargs="+", metavar="DIR_OR_GLOB", help="folder(s), glob(s) or files")
    parser.add_argument("--out", required=True, help="features file: .npz or .parquet")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from reid_core.deploy.features import check_writable_suffix, save_features
    from reid_core.deploy.images import list_images

    check_writable_suffix(args.out)  # before any work
    paths = list_images(args.images)
    embedder = open_model(args)
    fs, skipped = embed_paths(embedder, paths, args, "images")
    save_features(fs, args.out)
    print(
        f"wrote {args.out}: {len(fs.paths)} x {fs.dim} features (model {fs.info.fingerprint}, {embedder.backend}); "
        f"skipped {len(skipped)} unreadable file(s)"
    )
    return 0
