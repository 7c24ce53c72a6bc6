"""`compact-reid sweep`: validate, show, run, resume and inspect Ray Tune sweeps.

`validate` and `show` import neither Ray nor MLflow.
"""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sweep",
        help="Ray Tune sweeps of presets / hyperparameters, tracked in MLflow",
        description="Sweeps are YAML specs (sweeps/*.yaml): a dataset, a grid (presets and/or "
        "config fields) x seeds, fixed overrides, resources, optional Optuna search "
        "with ASHA. Each trial is one training run and one MLflow child run.",
    )
    s = p.add_subparsers(dest="sweep_command", required=True, metavar="SUBCOMMAND")

    v = s.add_parser(
        "validate",
        help="check a spec (every trial's config) without running anything",
        description="Validate a sweep spec: keys, types, presets, dataset path, every trial's "
        "TrainConfig. Errors name the file and the key. Imports neither Ray nor MLflow.",
    )
    v.add_argument("spec", help="sweep YAML")
    v.set_defaults(func=run_validate)

    sc = s.add_parser(
        "schema",
        help="the JSON Schema of sweep YAML files (for editors)",
        description="Print the JSON Schema of a sweep spec: every key, its type, range and "
        "allowed values, and every config field usable in overrides / grid / "
        "search.space. Point an editor's YAML language server at it, e.g. "
        "`# yaml-language-server: $schema=sweep.schema.json` on a spec's first line.",
    )
    sc.add_argument("--out", default=None, help="write it to this file (default: print it)")
    sc.set_defaults(func=run_schema)

    sh = s.add_parser(
        "show",
        help="the expanded trial list of a spec",
        description="Expand a spec into its trials (name, preset, seed, grid values, epochs). "
        "Imports neither Ray nor MLflow.",
    )
    sh.add_argument("spec", nargs="+", help="sweep YAML (several with --cost)")
    sh.add_argument("--json", action="store_true", help="machine-readable output (the whole expanded spec)")
    sh.add_argument(
        "--cost",
        action="store_true",
        help="planned trial-epochs: every trial alone, after shared training, and after reuse of FINISHED "
        "runs (with --tracking-uri); the specs are planned together",
    )
    sh.add_argument("--tracking-uri", default=None, help="with --cost: the store to look up reusable runs in")
    sh.add_argument(
        "--images-per-second", type=float, default=None, help="with --cost: training throughput, for GPU-hours"
    )
    sh.set_defaults(func=run_show)

    r = s.add_parser(
        "run",
        help="run a sweep with Ray Tune (local Ray, or a cluster)",
        description="Validate the spec, check the tracking store, prepare the data, then run one "
        "trial per grid point x seed with Ray Tune. Defaults: storage "
        "./runs/<sweep>/ray (absolute), tracking URI sqlite:///<abs>/runs/mlflow.db. "
        "A failing trial is retried from its checkpoint (max_failures) and never stops "
        "the sweep; an interrupted sweep continues with `sweep resume`. Exit status: 0 "
        "the sweep ran (see the table for failed trials), 1 every trial failed, 3 "
        "interrupted, 2 bad input.",
    )
    r.add_argument("spec", help="sweep YAML")
    r.add_argument(
        "--address",
        default=None,
        help="Ray cluster to join (e.g. ray://head:10001 or auto); default: RAY_ADDRESS, else a local Ray",
    )
    r.add_argument(
        "--gpus-per-trial",
        type=float,
        default=None,
        help="GPUs per trial (fractions allowed); default: the spec's, else 1 where GPUs exist, else 0",
    )
    r.add_argument(
        "--max-concurrent",
        type=int,
        default=None,
        help="trials at once (default: the spec's, else as many as resources allow)",
    )
    r.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow tracking URI: http://host:port, postgresql://..., sqlite:///path/mlflow.db "
        "(default: $MLFLOW_TRACKING_URI, else sqlite:///<abs>/<runs-dir>/mlflow.db)",
    )
    r.add_argument(
        "--storage",
        default=None,
        help="Ray storage path or URI (default ./runs/<sweep>/ray; a shared path or s3:// on clusters)",
    )
    r.add_argument("--runs-dir", default="runs", help="folder of the local defaults (default ./runs)")
    r.add_argument(
        "--fresh",
        action="store_true",
        help="if the sweep already has state, keep it under a timestamped folder name and start "
        "over (default: refuse and point to `sweep resume`)",
    )
    r.add_argument(
        "--no-reuse",
        action="store_true",
        help="train every trial even when an identical FINISHED run is in the tracking store",
    )
    r.add_argument(
        "--no-sharing",
        action="store_true",
        help="train every trial from scratch, even where it could start from training another trial "
        "shares with it (e.g. column h from column g's main phase)",
    )
    r.add_argument(
        "--resources",
        choices=["auto", "defaults"],
        default=None,
        help="auto: a short probe (about a minute per kind of node, cached) picks the input pipeline, "
        "compile mode and trials per GPU / threads per trial that the spec leaves open; defaults: the "
        "built-in rules, no probe (default: the spec's `resources`, auto unless it says defaults)",
    )
    r.add_argument("--reprobe", action="store_true", help="with resources auto: ignore the cached probe result")
    r.add_argument("--json", action="store_true", help="print the outcome as JSON at the end")
    r.set_defaults(func=run_run)

    re_ = s.add_parser(
        "resume",
        help="continue an interrupted sweep (finished trials are not re-run)",
        description="Restore the sweep's Ray Tune state: unfinished and errored trials continue "
        "from their last checkpoints and their MLflow runs; finished trials are kept.",
    )
    re_.add_argument("sweep", metavar="NAME|PATH", help="sweep name (under --runs-dir) or its folder")
    re_.add_argument("--address", default=None, help="Ray cluster to join (default: RAY_ADDRESS, else local)")
    re_.add_argument("--runs-dir", default="runs", help="folder of the local defaults (default ./runs)")
    re_.add_argument("--json", action="store_true", help="print the outcome as JSON at the end")
    re_.set_defaults(func=run_resume)

    st = s.add_parser(
        "status",
        help="trials of a sweep: state, last epoch, final metrics",
        description="Read the sweep's Ray state (no Ray cluster is started).",
    )
    st.add_argument("sweep", metavar="NAME|PATH", help="sweep name (under --runs-dir) or its folder")
    st.add_argument("--runs-dir", default="runs", help="folder of the local defaults (default ./runs)")
    st.add_argument("--json", action="store_true", help="machine-readable output")
    st.set_defaults(func=run_status)


def run_validate(args: argparse.Namespace) -> int:
    from orchestration.sweep.spec import load_spec

    spec = load_spec(args.spec)
    extra = f", {len(spec.trials)} grid point x seed" if spec.search is None else " (sampled)"
    print(f"{args.spec}: OK: sweep {spec.file.name}, {spec.num_trials} trial(s){extra}")
    return 0


def run_schema(args: argparse.Namespace) -> int:
    from pathlib import Path

    from orchestration.sweep.spec_models import sweep_json_schema

    text = json.dumps(sweep_json_schema(), indent=2) + "\n"
    if args.out:
        tmp = Path(args.out).with_name(Path(args.out).name + ".tmp")
        tmp.write_text(text)
        tmp.replace(args.out)
    else:
        print(text, end="")
    return 0


def run_show(args: argparse.Namespace) -> int:
    from orchestration.sweep.spec import load_spec
    from orchestration.sweep.trial_plan import describe

    if args.cost:
        from orchestration.sweep.cost import format_cost, sweep_cost

        specs = [load_spec(p, check_paths=False) for p in args.spec]
        c = sweep_cost(specs, args.tracking_uri, args.images_per_second)
        print(json.dumps(c, indent=2) if args.json else format_cost(c))
        return 0
    if len(args.spec) > 1:
        raise SystemExit("sweep show: one spec (several only with --cost)")
    spec = load_spec(args.spec[0])
    if args.json:
        print(json.dumps(spec.to_dict(), indent=2, default=str))
    else:
        print(describe(spec))
    return 0


def run_run(args: argparse.Namespace) -> int:
    from orchestration.sweep.runner import run_sweep

    out = run_sweep(
        args.spec,
        address=args.address,
        gpus_per_trial=args.gpus_per_trial,
        max_concurrent=args.max_concurrent,
        tracking_uri=args.tracking_uri,
        storage=args.storage,
        runs_dir=args.runs_dir,
        fresh=args.fresh,
        reuse=not args.no_reuse,
        share=not args.no_sharing,
        resources_mode=args.resources,
        reprobe=args.reprobe,
    )
    if args.json:
        print(json.dumps(out.to_dict(), indent=2, default=str))
    return _exit_code(out)


def _exit_code(out) -> int:
    """0: the sweep ran (some trials may have failed: see the table); 1: every trial
    failed; 3: interrupted (resumable)."""
    if out.interrupted:
        return 3
    return 1 if out.all_failed else 0


def run_resume(args: argparse.Namespace) -> int:
    from orchestration.sweep.runner import resume_sweep

    out = resume_sweep(args.sweep, address=args.address, runs_dir=args.runs_dir)
    if args.json:
        print(json.dumps(out.to_dict(), indent=2, default=str))
    return _exit_code(out)


def run_status(args: argparse.Namespace) -> int:
    from orchestration.sweep.trial_status import format_table, sweep_status

    st = sweep_status(args.sweep, runs_dir=args.runs_dir)
    if args.json:
        print(json.dumps(st, indent=2, default=str))
        return 0
    print(f"sweep {st['name']} ({st['sweep_dir']}); MLflow {st['tracking_uri']} parent run {st['parent_run_id']}")
    print(format_table(st["trials"]))
    print("  " + ", ".join(f"{k}: {v}" for k, v in sorted(st["counts"].items())))
    return 0
