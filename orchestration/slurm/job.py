"""`python -m orchestration.slurm.job COMMAND`: the steps of the batch script (script.py)
that a shell does badly. Each prints what it does into the job's output.

  node          one node's Ray (node.py), run by an srun step on each node
  head-address  the head's HOST:PORT once it answers (printed for the shell)
  wait-nodes    every node of the job joined Ray (join.py); recorded in slurm.json
  drive         the sweep: run it, or resume it when it has state (driver.py)
  record        an event in slurm.json (record.py)
  why-ended     why Slurm sent SIGTERM: time limit, preempted, cancelled (status.py)
"""

from __future__ import annotations

import argparse
import sys

from .errors import SlurmError


def _nodes(text: str) -> list[str]:
    return [name for name in text.split(",") if name]


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m orchestration.slurm.job", description=__doc__.split("\n\n")[0])
    commands = top.add_subparsers(dest="command", required=True)

    node = commands.add_parser("node")
    node.add_argument("--head", action="store_true")
    node.add_argument("--address", default=None)
    node.add_argument("--job", type=int, required=True)
    node.add_argument("--nodes", type=_nodes, required=True)
    node.add_argument("--work", required=True)
    node.add_argument("--gpus", type=int, default=0)
    node.add_argument("--cpus", default="")
    node.add_argument("--interface", default="")
    node.add_argument("--logs", default=None, help="folder of this node's log, ray-JOB-NODE.log")

    head = commands.add_parser("head-address")
    head.add_argument("work")
    head.add_argument("--node", required=True)
    head.add_argument("--job", type=int, default=None)
    head.add_argument("--timeout", type=float, default=300)
    head.add_argument("--step-pid", type=int, default=None)

    wait = commands.add_parser("wait-nodes")
    wait.add_argument("address")
    wait.add_argument("--nodes", type=_nodes, required=True)
    wait.add_argument("--timeout", type=float, default=300)
    wait.add_argument("--storage", required=True)
    wait.add_argument("--sweep", required=True)
    wait.add_argument("--restart", type=int, default=0)
    wait.add_argument("--step-pids", type=int, nargs="*", default=[])

    drive = commands.add_parser("drive")
    drive.add_argument("sweep")
    drive.add_argument("--spec", required=True)
    drive.add_argument("--address", required=True)
    drive.add_argument("--storage", required=True)
    drive.add_argument("--tracking-uri", required=True)
    drive.add_argument("--runs-dir", required=True)

    record = commands.add_parser("record")
    record.add_argument("storage")
    record.add_argument("sweep")
    record.add_argument("event")
    record.add_argument("--restart", type=int, default=0)
    record.add_argument("--detail", default="")

    why = commands.add_parser("why-ended")
    why.add_argument("job_id")
    return top


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # drive: what follows `--` is `sweep run`'s own options, passed on as they are
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    args = parser().parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    args.sweep_args = extra
    try:
        return _run(args)
    except SlurmError as e:
        print(f"slurm: error: {e}", file=sys.stderr, flush=True)
        return 1


def _run(args: argparse.Namespace) -> int:
    import os

    if args.command == "node":
        from .node import run_node, setup

        if args.logs:
            _log_to(args.logs, args.job)
        node_setup, env = setup(args.job, args.nodes, args.work, args.cpus, args.gpus, args.interface or None)
        return run_node(node_setup, env, args.head, args.address)
    if args.command == "head-address":
        from .join import head_address

        job_id = args.job if args.job is not None else int(os.environ.get("SLURM_JOB_ID", "0"))
        print(head_address(args.work, args.node, job_id, args.timeout, args.step_pid))
        return 0
    if args.command == "wait-nodes":
        return _wait_nodes(args)
    if args.command == "drive":
        from .driver import drive

        return drive(
            args.sweep, args.spec, args.address, args.storage, args.tracking_uri, args.runs_dir, args.sweep_args
        )
    if args.command == "record":
        from .record import add_event

        try:
            job_id = os.environ.get("SLURM_JOB_ID")  # set even if the submitting side could not record it
            add_event(
                args.storage,
                args.sweep,
                args.event,
                args.restart,
                args.detail,
                **({"job_id": job_id} if job_id else {}),
            )
        except Exception as e:  # a record lost is no reason to stop the job
            print(f"slurm: warning: could not record {args.event!r} in slurm.json: {e}", file=sys.stderr)
        return 0
    from .status import why_ended

    print(why_ended(args.job_id))
    return 0


def _log_to(folder: str, job_id: int) -> None:
    """This process's output (and Ray's, started below it) into `<folder>/ray-JOB-NODE.log`:
    one file per Slurm node, also where several share a host."""
    import os
    import socket
    from pathlib import Path

    node = os.environ.get("SLURMD_NODENAME") or socket.gethostname()
    path = Path(folder) / f"ray-{job_id}-{node}.log"
    sys.stdout.flush()
    sys.stderr.flush()
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(descriptor, 1)
    os.dup2(descriptor, 2)
    os.close(descriptor)


def _wait_nodes(args: argparse.Namespace) -> int:
    from .join import JoinError, wait_for_nodes
    from .record import add_event

    try:
        found = wait_for_nodes(args.address, args.nodes, args.timeout, args.step_pids)
    except JoinError as e:
        _record(add_event, args, "failed", str(e), missing_nodes=e.missing)
        raise
    listing = ", ".join(f"{name} ({found[name][:8]})" for name in args.nodes)  # in the job's order
    print(f"ray: every node joined: {listing}", flush=True)
    _record(add_event, args, "ray-ready", listing, ray_nodes=found)
    return 0


def _record(add_event, args: argparse.Namespace, event: str, detail: str, **fields) -> None:
    try:
        add_event(args.storage, args.sweep, event, args.restart, detail, **fields)
    except Exception as e:  # a record lost is no reason to stop the job
        print(f"slurm: warning: could not record {event!r} in slurm.json: {e}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
