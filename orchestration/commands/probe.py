"""`compact-reid probe`: measure (or read from the cache) what a `resources: auto` sweep
would run with on this machine or cluster, without running the sweep."""

from __future__ import annotations

import argparse
import json
import sys

DESCRIPTION = (
    "Measure which input pipeline (data.pipeline), compile mode (runtime.compile, GPU only) and "
    "trial packing (trials per GPU, or processes x threads per trial on a CPU node) train the "
    "sweep's first trial fastest here (on a cluster: on each kind of node), within a budget, "
    "and cache the result per machine; a cached result is printed without measuring again. "
    "A sweep uses this choice only with `resources: auto` in its spec or `--resources auto` on "
    "`sweep run`; otherwise the built-in rules (the default) apply. Whatever the spec, "
    "--gpus-per-trial or --max-concurrent sets explicitly is not probed. The data is prepared "
    "as `sweep run` prepares it (a synthetic dataset once per recipe in the storage, by default under --runs-dir), "
    "so the sweep reuses it. Exit status: 0 a choice was made (the defaults kept included), "
    "1 nothing measured worked (the defaults apply; why is printed), 2 bad input."
)


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "probe",
        help="measure the resources a `resources: auto` sweep would run with (cached)",
        description=DESCRIPTION,
    )
    parser.add_argument("spec", metavar="SPEC", help="sweep YAML")
    parser.add_argument(
        "--address",
        default=None,
        metavar="ADDR",
        help="Ray cluster to join (e.g. ray://head:10001 or auto); default: RAY_ADDRESS, else a local Ray",
    )
    parser.add_argument(
        "--gpus-per-trial",
        type=float,
        default=None,
        metavar="G",
        help="GPUs per trial, as `sweep run` would be given (then packing is not probed)",
    )
    parser.add_argument(
        "--max-concurrent",
        type=int,
        default=None,
        metavar="N",
        help="trials at once, as `sweep run` would be given (then packing is not probed)",
    )
    parser.add_argument("--reprobe", action="store_true", help="measure again even when the cache has a result")
    parser.add_argument(
        "--budget",
        type=float,
        default=None,
        metavar="SECONDS",
        help="measuring time per kind of node (default: $COMPACT_REID_PROBE_SECONDS, else 60)",
    )
    parser.add_argument(
        "--runs-dir",
        default="runs",
        metavar="DIR",
        help="folder of the local defaults, as `sweep run`'s (default ./runs)",
    )
    parser.add_argument(
        "--storage", default=None, metavar="URI", help="the storage `sweep run` will use (default <runs-dir>/storage)"
    )
    parser.add_argument("--json", action="store_true", help="print the choice as JSON (progress goes to stderr)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:

    from orchestration.probe import cache_path, choose_resources
    from orchestration.sweep import ray_tune
    from orchestration.sweep.spec import load_spec
    from orchestration.sweep.sweep_data import prepare_data
    from orchestration.sweep.sweep_folder import storage_root
    from reid_core.config import ConfigError

    def log(message: str) -> None:
        print(message, file=sys.stderr if args.json else sys.stdout, flush=True)

    spec = load_spec(args.spec)
    if args.gpus_per_trial is not None and args.gpus_per_trial < 0:
        raise ConfigError(f"--gpus-per-trial: must be >= 0, got {args.gpus_per_trial}")
    if args.max_concurrent is not None and args.max_concurrent < 1:
        raise ConfigError(f"--max-concurrent: must be >= 1, got {args.max_concurrent}")
    if args.budget is not None and args.budget <= 0:
        raise ConfigError(f"--budget: must be > 0 seconds, got {args.budget}")
    ray_tune.check_address(args.address)
    started = ray_tune.init_ray(args.address, log)
    try:
        default_resources = ray_tune.trial_resources(spec, args.gpus_per_trial)
        data = prepare_data(spec, storage_root(args.storage, args.runs_dir), args.runs_dir, log)
        choice = choose_resources(
            spec,
            data.root,
            data.name,
            default_resources=default_resources,
            reprobe=args.reprobe,
            gpus_per_trial=args.gpus_per_trial,
            max_concurrent=args.max_concurrent,
            budget_s=args.budget,
            log=log,
        )
    finally:
        ray_tune.shutdown_ray(started)
    cache = cache_path()
    if args.json:
        print(json.dumps({**choice.to_dict(), "cache": str(cache)}, indent=2, default=str))
    else:
        for line in choice.lines():
            print(line)
        print(f"cache: {cache}")
        if spec.file.resources.mode != "auto":
            print(f"note: {args.spec} does not say `resources: auto`; `sweep run --resources auto` uses this choice")
    return 1 if choice.source == "fallback" else 0
