"""`compact-reid search`: rank a gallery features file for query images or query features."""

from __future__ import annotations

import argparse
import json
from typing import Any

from .embed import add_model_args, embed_paths, open_model


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "search",
        help="rank a gallery for query crops; --html writes a page of the matches",
        description="Rank the gallery of a features file (`compact-reid embed`) for each query "
        "(images embedded with the given model, or a query features file) by Euclidean "
        "distance. Both must come from the same model (fingerprint and feature size "
        "are checked). --html writes a self-contained page (images embedded).",
    )
    parser.add_argument("--features", required=True, help="gallery features file (.npz or .parquet)")
    query_source = parser.add_mutually_exclusive_group(required=True)
    query_source.add_argument("--query", nargs="+", metavar="IMG", help="query crops (files, folders or globs)")
    query_source.add_argument("--query-features", help="a features file of the queries")
    add_model_args(parser, required=False)
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--html", metavar="OUT", help="write the results as a self-contained HTML page")
    parser.add_argument(
        "--evaluate",
        action="store_true",
        help="instead of listing matches, print rank-1/5/10, mAP, mINP under `compact-reid evaluate`'s "
        "protocol (ids and cameras from Market-1501-style names)",
    )
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from reid_core.deploy.features import load_features
    from reid_core.deploy.gallery_page import write_search_page
    from reid_core.deploy.images import list_images
    from reid_core.deploy.search import evaluate_features, search
    from reid_core.errors import DataError

    gallery = load_features(args.features)
    if args.query_features:
        query, what = load_features(args.query_features), args.query_features
    else:
        if not (args.weights or args.onnx or args.torchscript):
            raise DataError(
                "--query images need the model the gallery was embedded with: --weights, --onnx or --torchscript"
            )
        embedder = open_model(args)
        paths = list_images(args.query)
        query, _ = embed_paths(embedder, paths, args, "queries")
        what = f"the query model ({embedder.backend})"
    if args.evaluate:
        _print_metrics(evaluate_features(query, gallery, what, args.features), args.json)
    if args.evaluate and not args.html:
        return 0
    results = search(query, gallery, args.top_k, what_query=what, what_gallery=args.features)
    if args.html:
        write_search_page(results, gallery.info, len(gallery.paths), args.html)
    if not args.evaluate:
        _print_results(results, args.json)
    if args.html and not args.json:  # keep --json output machine-readable
        print(f"wrote {args.html}")
    return 0


def _print_metrics(res: dict[str, Any], as_json: bool) -> None:
    import numpy as np

    out = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in res.items()}
    if as_json:
        print(json.dumps(out, indent=2))
        return
    print(
        "  ".join(f"{k} {100 * out[k]:.2f}%" for k in ("rank1", "rank5", "rank10", "mAP", "mINP"))
        + f"  ({out['num_valid_queries']} of {out['num_queries']} queries valid)"
    )


def _print_results(results: list[Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps([{"query": r.path, "matches": [vars(m) for m in r.matches]} for r in results], indent=2))
        return
    mark = {True: "same id", False: "other id", None: ""}
    for r in results:
        print(f"query {r.path}")
        for m in r.matches:
            print(f"  #{m.rank:<3} d={m.distance:.4f}  {m.path}  {mark[m.same_id]}")
