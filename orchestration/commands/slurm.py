"""`compact-reid slurm`: run a sweep as a Slurm batch job (submit), and follow it (status).

Imports neither Ray nor MLflow (the spec is validated; Slurm's own commands do the rest).
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "slurm",
        help="run a sweep as a Slurm batch job (Ray on the job's nodes, requeued before its time limit)",
        description="Write a sweep's batch script into its folder (<runs-dir>/<sweep>/slurm/job.sbatch) and submit "
        "it. The job starts Ray on its nodes, runs the sweep (or resumes it when it has state), and, warned "
        "before its time limit, stops the sweep with its trials checkpointed and requeues itself. docs/SLURM.md.",
    )
    commands = parser.add_subparsers(dest="slurm_command", required=True, metavar="SUBCOMMAND")
    submit = commands.add_parser(
        "submit",
        help="submit a sweep as a Slurm job (sbatch)",
        description="Validate the spec, write the batch script into the sweep's folder, submit it with sbatch, "
        "print the job id and how to follow it. A sweep that already has state is resumed by the job. Exit "
        "status: 0 submitted, 2 refused (bad spec or options, no sbatch, Slurm's refusal).",
    )
    submit.add_argument("spec", help="sweep YAML")
    allocation = submit.add_argument_group("the allocation")
    allocation.add_argument("--nodes", type=int, default=1, help="nodes, one Ray node each (default 1)")
    allocation.add_argument("--gpus-per-node", type=int, default=0, help="GPUs per node (default 0)")
    allocation.add_argument(
        "--cpus-per-node", type=int, default=None, help="CPUs per node (default: whole nodes, --exclusive)"
    )
    allocation.add_argument("--partition", default=None, help="partition (default: the cluster's default)")
    allocation.add_argument("--account", default=None, help="account to charge")
    allocation.add_argument(
        "--time", default=None, help="time limit of each run, in Slurm's format (e.g. 4:00:00, 1-00:00:00)"
    )
    allocation.add_argument(
        "--sbatch-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="any other sbatch option, one per flag, e.g. --sbatch-arg=--mem=64G --sbatch-arg=--constraint=a100",
    )
    job = submit.add_argument_group("the job")
    job.add_argument(
        "--signal-lead",
        type=int,
        default=None,
        metavar="SECONDS",
        help="how long before the time limit the job is warned, to stop the sweep and requeue (default: the "
        "smaller of 300 s and a quarter of --time). Slurm may send it up to 60 s earlier than asked",
    )
    job.add_argument("--max-requeues", type=int, default=10, help="requeues at most (default 10)")
    job.add_argument("--join-timeout", type=int, default=300, help="seconds for every node to join Ray (default 300)")
    job.add_argument(
        "--network-interface",
        default=None,
        metavar="NAME",
        help="the interface whose address Ray uses on each node (e.g. ib0); default: the address the node's "
        "hostname resolves to, wrong where that is a loopback or management address",
    )
    job.add_argument("--dry-run", action="store_true", help="print the batch script; write and submit nothing")
    sweep = submit.add_argument_group("the sweep (as `sweep run`)")
    sweep.add_argument("--storage", default=None, help="storage URI every node reaches (default <runs-dir>/storage)")
    sweep.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow tracking URI every node reaches (default: $MLFLOW_TRACKING_URI, else <runs-dir>/mlflow.db)",
    )
    sweep.add_argument("--runs-dir", default="runs", help="folder of the local defaults and the job's files")
    sweep.add_argument("--gpus-per-trial", type=float, default=None, help="GPUs per trial (as `sweep run`)")
    sweep.add_argument("--max-concurrent", type=int, default=None, help="trials at once (as `sweep run`)")
    sweep.add_argument("--resources", choices=["auto", "defaults"], default=None, help="as `sweep run`")
    sweep.add_argument("--no-reuse", action="store_true", help="as `sweep run`")
    sweep.add_argument("--no-sharing", action="store_true", help="as `sweep run`")
    submit.set_defaults(func=run_submit)

    status = commands.add_parser(
        "status",
        help="the sweep's Slurm job: state, requeues, last event",
        description="What Slurm says of the sweep's job (scontrol, sacct), else what the job recorded in the "
        "storage (<storage>/<sweep>/slurm.json).",
    )
    status.add_argument("sweep", metavar="NAME", help="sweep name")
    status.add_argument("--storage", default=None, help="the storage the sweep runs with (default <runs-dir>/storage)")
    status.add_argument("--runs-dir", default="runs", help="folder of the local defaults (default ./runs)")
    status.set_defaults(func=run_status)


def sweep_args(args: argparse.Namespace) -> list[str]:
    """`sweep run`'s own options, as given (the job passes them on)."""
    out: list[str] = []
    if args.gpus_per_trial is not None:
        out += ["--gpus-per-trial", f"{args.gpus_per_trial:g}"]
    if args.max_concurrent is not None:
        out += ["--max-concurrent", str(args.max_concurrent)]
    if args.resources:
        out += ["--resources", args.resources]
    if args.no_reuse:
        out.append("--no-reuse")
    if args.no_sharing:
        out.append("--no-sharing")
    return out


def run_submit(args: argparse.Namespace) -> int:
    from orchestration.slurm.options import SlurmOptions
    from orchestration.slurm.submit import plan_job, submit

    options = SlurmOptions(
        nodes=args.nodes,
        gpus_per_node=args.gpus_per_node,
        cpus_per_node=args.cpus_per_node,
        partition=args.partition,
        account=args.account,
        time=args.time,
        signal_lead=args.signal_lead,
        max_requeues=args.max_requeues,
        sbatch_args=tuple(args.sbatch_arg),
        join_timeout=args.join_timeout,
        network_interface=args.network_interface,
    )
    job = plan_job(args.spec, args.storage, args.tracking_uri, args.runs_dir, sweep_args(args))
    submission = submit(job, options, dry_run=args.dry_run)
    if args.dry_run:
        print(submission.script_text, end="")
        return 0
    print(f"submitted job {submission.job_id}: sweep {job.sweep} on {options.nodes} node(s)")
    print(f"  script:  {job.script_path}")
    print(f"  output:  {submission.output}  (tail -f it; each Ray node logs to ray-{submission.job_id}-NODE.log)")
    print(f"  queue:   squeue -j {submission.job_id}    cancel: scancel {submission.job_id}")
    print(f"  sweep:   compact-reid sweep status {job.sweep} --storage {job.storage}")
    return 0


def run_status(args: argparse.Namespace) -> int:
    from pathlib import Path

    from orchestration.slurm.status import job_line
    from orchestration.sweep.sweep_folder import storage_root

    root = storage_root(args.storage, Path(args.runs_dir).resolve())
    line = job_line(root, args.sweep)
    if line is None:
        print(f"sweep {args.sweep}: no Slurm job recorded in {root.join(args.sweep).display}")
        return 1
    print(line)
    return 0
