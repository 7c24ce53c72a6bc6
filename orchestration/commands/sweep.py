"""`compact-reid sweep`: validate, show, run, resume and inspect Ray Tune sweeps.

`validate` and `show` import neither Ray nor MLflow.
"""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "sweep",
        help="Ray Tune sweeps of presets / hyperparameters, tracked in MLflow",
        description="Sweeps are YAML specs (sweeps/*.yaml): a dataset, a grid (presets and/or "
        "config fields) x seeds, fixed overrides, resources, optional Optuna search "
        "with ASHA. Each trial is one training run and one MLflow child run.",
    )
    commands = parser.add_subparsers(dest="sweep_command", required=True, metavar="SUBCOMMAND")

    validate = commands.add_parser(
        "validate",
        help="check a spec (every trial's config) without running anything",
        description="Validate a sweep spec: keys, types, presets, dataset path, every trial's "
        "TrainConfig. Errors name the file and the key. Imports neither Ray nor MLflow.",
    )
    validate.add_argument("spec", help="sweep YAML")
    validate.set_defaults(func=run_validate)

    schema = commands.add_parser(
        "schema",
        help="the JSON Schema of sweep YAML files (for editors)",
        description="Print the JSON Schema of a sweep spec: every key, its type, range and "
        "allowed values, and every config field usable in overrides / grid / "
        "search.space. Point an editor's YAML language server at it, e.g. "
        "`# yaml-language-server: $schema=sweep.schema.json` on a spec's first line.",
    )
    schema.add_argument("--out", default=None, help="write it to this file (default: print it)")
    schema.set_defaults(func=run_schema)

    show = commands.add_parser(
        "show",
        help="the expanded trial list of a spec",
        description="Expand a spec into its trials (name, preset, seed, grid values, epochs). "
        "Imports neither Ray nor MLflow.",
    )
    show.add_argument("spec", nargs="+", help="sweep YAML (several with --cost)")
    show.add_argument("--json", action="store_true", help="machine-readable output (the whole expanded spec)")
    show.add_argument(
        "--cost",
        action="store_true",
        help="planned trial-epochs: every trial alone, after shared training, and after reuse of FINISHED "
        "runs (with --tracking-uri); the specs are planned together",
    )
    show.add_argument("--tracking-uri", default=None, help="with --cost: the store to look up reusable runs in")
    show.add_argument(
        "--images-per-second", type=float, default=None, help="with --cost: training throughput, for GPU-hours"
    )
    show.set_defaults(func=run_show)

    run = commands.add_parser(
        "run",
        help="run a sweep (or several specs as one campaign) with Ray Tune (local Ray, or a cluster)",
        description="Validate the specs, check the storage and the tracking store, prepare the data, then run one "
        "trial per grid point x seed with Ray Tune. Several specs run as one campaign: one plan, training "
        "shared across them, each spec in its own MLflow experiment with its own tables. Defaults: storage "
        "<runs-dir>/storage (absolute), tracking URI sqlite:///<abs>/runs/mlflow.db. "
        "A failing trial is retried from its checkpoint (max_failures) and never stops "
        "the sweep; an interrupted sweep continues with `sweep resume`. Exit status: 0 "
        "the sweep ran (see the table for failed trials), 1 every trial failed, 3 "
        "interrupted, 2 bad input.",
    )
    run.add_argument("spec", nargs="+", help="sweep YAML; several: one campaign")
    run.add_argument(
        "--name",
        default=None,
        help="the campaign's name for `sweep status` / `sweep resume` (default: a single spec's own; "
        "several: campaign-<hash>, printed at launch)",
    )
    run.add_argument(
        "--rehearse",
        action="store_true",
        help="run exactly the same plan at tiny scale on generated data (experiments <name>-rehearsal), "
        "then write every table and figure: a spec, report or orchestration bug found in minutes",
    )
    run.add_argument(
        "--tables-out", default=None, help="with --rehearse: where the tables go (default tables/<experiment>/)"
    )
    run.add_argument(
        "--verbose",
        action="store_true",
        help="each trial's own lines (its epochs, MLflow's notices) on the console, not only in its log file",
    )
    run.add_argument(
        "--address",
        default=None,
        help="Ray cluster to join (e.g. ray://head:10001 or auto); default: RAY_ADDRESS, else a local Ray",
    )
    run.add_argument(
        "--gpus-per-trial",
        type=float,
        default=None,
        help="GPUs per trial (fractions allowed); default: the spec's, else 1 where GPUs exist, else 0",
    )
    run.add_argument(
        "--max-concurrent",
        type=int,
        default=None,
        help="trials at once (default: the spec's, else as many as resources allow)",
    )
    run.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow tracking URI: http://host:port, postgresql://..., sqlite:///path/mlflow.db "
        "(default: $MLFLOW_TRACKING_URI, else sqlite:///<abs>/<runs-dir>/mlflow.db)",
    )
    run.add_argument(
        "--storage",
        default=None,
        help="where everything other nodes and later drivers read lives: Ray Tune's state and checkpoints, the "
        "sweep's state, shared-training checkpoints, generated data: a path (default <runs-dir>/storage; on a "
        "cluster one every node mounts) or s3://BUCKET/PREFIX / gs://BUCKET/PREFIX (endpoint and credentials from "
        "AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, or ?endpoint_override=HOST:PORT)",
    )
    run.add_argument("--runs-dir", default="runs", help="folder of the local defaults (default ./runs)")
    run.add_argument(
        "--fresh",
        action="store_true",
        help="if the sweep already has state, keep it under a timestamped folder name and start "
        "over (default: refuse and point to `sweep resume`)",
    )
    run.add_argument(
        "--no-reuse",
        action="store_true",
        help="train every trial even when an identical FINISHED run is in the tracking store",
    )
    run.add_argument(
        "--no-sharing",
        action="store_true",
        help="train every trial from scratch, even where it could start from training another trial "
        "shares with it (e.g. column h from column g's main phase)",
    )
    run.add_argument(
        "--resources",
        choices=["auto", "defaults"],
        default=None,
        help="defaults: the built-in rules (the spec's resources, else 1 GPU per trial where there are "
        "GPUs, else 1 CPU); auto: the choice of `compact-reid probe` (input pipeline, compile mode and "
        "trials per GPU / threads per trial the spec leaves open), measured first when this machine has "
        "none cached (about a minute per kind of node). Default: the spec's `resources`, else defaults",
    )
    run.add_argument("--reprobe", action="store_true", help="with resources auto: ignore the cached probe result")
    run.add_argument("--json", action="store_true", help="print the outcome as JSON at the end")
    run.set_defaults(func=run_run)

    resume = commands.add_parser(
        "resume",
        help="continue an interrupted sweep (finished trials are not re-run)",
        description="Restore the sweep's Ray Tune state: unfinished and errored trials continue "
        "from their last checkpoints and their MLflow runs; finished trials are kept.",
    )
    resume.add_argument("sweep", metavar="NAME|PATH", help="sweep name (under --runs-dir) or its folder")
    resume.add_argument("--address", default=None, help="Ray cluster to join (default: RAY_ADDRESS, else local)")
    resume.add_argument("--runs-dir", default="runs", help="folder of the local defaults (default ./runs)")
    resume.add_argument(
        "--storage",
        default=None,
        metavar="URI",
        help="where the sweep ran, when not the default (<runs-dir>/storage) or the one this machine's cache recorded: "
        "the same --storage URI it ran with (another machine needs only the name, this and the tracking URI)",
    )
    resume.add_argument("--verbose", action="store_true", help="each trial's own lines on the console too")
    resume.add_argument("--json", action="store_true", help="print the outcome as JSON at the end")
    resume.set_defaults(func=run_resume)

    status = commands.add_parser(
        "status",
        help="trials of a sweep: state, last epoch, final metrics",
        description="Read the sweep's Ray state (no Ray cluster is started).",
    )
    status.add_argument("sweep", metavar="NAME|PATH", help="sweep name (under --runs-dir) or its folder")
    status.add_argument("--runs-dir", default="runs", help="folder of the local defaults (default ./runs)")
    status.add_argument(
        "--storage",
        default=None,
        metavar="URI",
        help="where the sweep ran, when not the default (<runs-dir>/storage) or the one this machine's cache recorded: "
        "the same --storage URI it ran with (another machine needs only the name, this and the tracking URI)",
    )
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(func=run_status)


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

    if args.cost:
        from orchestration.sweep.sharing import sweep_cost

        specs = [load_spec(path, check_paths=False) for path in args.spec]
        cost = sweep_cost(specs, args.tracking_uri, args.images_per_second)
        print(json.dumps(cost, indent=2) if args.json else format_cost(cost))
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
    from orchestration.mlflow_log.store import quiet_store_logs
    from orchestration.sweep.runner import SweepOptions, run_sweep

    if not args.verbose:
        quiet_store_logs()
    options = SweepOptions(
        name=args.name,
        rehearse=args.rehearse,
        tables_out=args.tables_out,
        verbose=2 if args.verbose else 1,
        address=args.address,
        gpus_per_trial=args.gpus_per_trial,
        max_concurrent=args.max_concurrent,
        tracking_uri=args.tracking_uri,
        storage=args.storage,
        runs_dir=args.runs_dir,
        fresh=args.fresh,
        reuse=not args.no_reuse,
        share=not args.no_sharing,
        resources=args.resources,
        reprobe=args.reprobe,
    )
    outcome = run_sweep(args.spec, options)
    if args.json:
        print(json.dumps(outcome.to_dict(), indent=2, default=str))
    return _exit_code(outcome)


def _exit_code(outcome: Any) -> int:
    """0: the sweep ran (some trials may have failed: see the table); 1: every trial
    failed; 3: interrupted (resumable)."""
    if outcome.interrupted:
        return 3
    return 1 if outcome.all_failed else 0


def run_resume(args: argparse.Namespace) -> int:
    from orchestration.mlflow_log.store import quiet_store_logs
    from orchestration.sweep.runner import SweepOptions, resume_sweep

    if not args.verbose:
        quiet_store_logs()
    options = SweepOptions(
        address=args.address, runs_dir=args.runs_dir, storage=args.storage, verbose=2 if args.verbose else 1
    )
    outcome = resume_sweep(args.sweep, options)
    if args.json:
        print(json.dumps(outcome.to_dict(), indent=2, default=str))
    return _exit_code(outcome)


def run_status(args: argparse.Namespace) -> int:
    from orchestration.sweep.trial_status import format_table, sweep_status

    status = sweep_status(args.sweep, runs_dir=args.runs_dir, storage=args.storage)
    if args.json:
        print(json.dumps(status, indent=2, default=str))
        return 0
    parents = ", ".join(f"{name}: parent run {run}" for name, run in status["parent_runs"].items())
    print(f"sweep {status['name']} ({status['sweep_dir']}); MLflow {status['tracking_uri']} ({parents})")
    if status.get("slurm"):
        print(status["slurm"])
    print(format_table(status["trials"]))
    print("  " + ", ".join(f"{k}: {v}" for k, v in sorted(status["counts"].items())))
    return 0


def describe(spec: Any) -> str:
    """A spec's expansion, human-readable (what `sweep show` prints)."""
    from orchestration.sweep.trial import format_value

    file = spec.file
    lines = [f"sweep {file.name} ({spec.source})"]
    if file.description:
        lines.append("  " + " ".join(file.description.split()))
    dataset = spec.dataset
    lines.append(
        "  dataset: "
        + (
            f"synthetic {json.dumps(dataset.synthetic)}"
            if dataset.is_synthetic
            else f"{dataset.path} (name: {dataset.name})"
        )
    )
    if spec.overrides:
        lines.append("  overrides: " + ", ".join(f"{k}={format_value(v)}" for k, v in spec.overrides.items()))
    resources = file.resources
    lines.append(
        f"  resources/trial: cpu={resources.cpu if resources.cpu is not None else 'auto'} "
        f"gpu={resources.gpu if resources.gpu is not None else 'auto'} ({resources.mode}); max_concurrent="
        f"{file.max_concurrent or 'auto'}; max_failures={file.max_failures}"
    )
    if spec.search:
        search = spec.search
        lines.append(
            f"  search: {search.algorithm} {search.mode} {search.metric}, {search.num_samples} samples over "
            + ", ".join(
                f"{k}~{p.type}" + (f"[{p.low}, {p.high}]" if p.type != "choice" else f"{p.values}")
                for k, p in search.space.items()
            )
        )
    if spec.scheduler:
        scheduler = spec.scheduler
        lines.append(
            f"  scheduler: {scheduler.type} max_t={scheduler.max_t} grace_period={scheduler.grace_period} "
            f"reduction_factor={scheduler.reduction_factor} ({scheduler.mode} {scheduler.metric})"
        )
    lines.append(f"  {spec.num_trials} trial(s)" + (" (sampled; template below)" if spec.search else ":"))
    width = max((len(t.name) for t in spec.trials), default=10)
    for t in spec.trials:
        axes = f"  {', '.join(f'{k}={format_value(v)}' for k, v in t.axes.items())}" if t.axes else ""
        lines.append(f"    {t.name:<{width}}  preset={t.preset:<13} seed={t.seed}  epochs={t.total_epochs}{axes}")
    return "\n".join(lines)


def format_cost(cost: dict[str, Any]) -> str:
    """`sweep show --cost`: trial-epochs per spec, then all specs planned together."""
    lines = [f"{'spec':<20} {'trials':>6} {'alone':>9} {'shared':>9}  (trial-epochs; each spec on its own)"]
    for row in cost["specs"]:
        lines.append(f"{row['spec']:<20} {row['trials']:>6} {row['alone']:>9} {row['shared']:>9}")

    def share(value: float) -> str:
        return f"{100.0 * value / cost['alone']:.0f}%" if cost["alone"] else "-"

    lines += [
        "",
        f"all {len(cost['specs'])} spec(s) together, {cost['trials']} trials:",
        f"  trial-epochs alone:        {cost['alone']:>9}",
        f"  after sharing:             {cost['shared']:>9}  ({share(cost['shared'])} of alone)",
    ]
    if cost["store"]:
        lines.append(
            f"  after reuse from the store: {cost['after_reuse']:>8}  ({share(cost['after_reuse'])}; "
            f"{cost['reused_trials']} trial(s) FINISHED in {cost['store']})"
        )
    else:
        lines.append("  after reuse: pass --tracking-uri to look up FINISHED runs")
    if cost["gpu_hours"]:
        hours = cost["gpu_hours"]
        lines.append(
            f"  GPU-hours at {cost['images_per_second']:g} images/s: alone {hours['alone']:.1f}, "
            f"shared {hours['shared']:.1f}, after reuse {hours['after_reuse']:.1f}"
        )
    else:
        lines.append("  GPU-hours: pass --images-per-second (a bench_gpu.py figure) to convert")
    return "\n".join(lines)
