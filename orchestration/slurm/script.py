"""The batch script of a sweep's Slurm job: `render_script(job, options)`.

Readable on purpose: the values at the top, then each step commented. The logic a shell
does badly (ports, waiting for nodes, run or resume, recording) is in `python -m
orchestration.slurm.job`; the shell starts the steps, handles the signals and requeues.
"""

from __future__ import annotations

import shlex
import time

from .options import JobSpec, SlurmOptions

HEADER = """\
#!/bin/bash
# compact-reid sweep {sweep!r} as a Slurm job, written by `compact-reid slurm submit` on {date}.
# It starts Ray on its nodes (the head on the first, a worker on each other one), waits until
# every node has joined, runs the sweep (or resumes it when the sweep already has state) and
# stops Ray. Warned {lead} s before its time limit, it stops the sweep with every trial
# checkpointed and requeues itself, at most {max_requeues} times; the next run resumes the sweep.
# Submit it again as it is with `sbatch {script}`. How it works: docs/SLURM.md.
"""

BODY = r"""
set -uo pipefail

# ---- the sweep ----
SWEEP={sweep}
SPEC={spec}
STORAGE={storage}
TRACKING_URI={tracking_uri}
RUNS_DIR={runs_dir}
SWEEP_OPTIONS=({sweep_args})  # `sweep run`'s own options (a resumed sweep keeps its own)

# ---- the job ----
PYTHON={python}  # compact-reid's environment, at this path on every node
GPUS_PER_NODE={gpus}
CPUS_PER_NODE={cpus}  # empty: every CPU Slurm gave the job on the node
MAX_REQUEUES={max_requeues}
JOIN_TIMEOUT={join_timeout}  # seconds for every node to join Ray
NETWORK_INTERFACE={interface}  # empty: the address each node's hostname resolves to
LOGS={logs}  # this job's output, and each Ray node's (ray-JOB-NODE.log)

job() {{ "$PYTHON" -m orchestration.slurm.job "$@"; }}
say() {{ echo "$(date '+%F %T') slurm: $*"; }}

# Slurm's warning (--signal=B:USR1@LEAD) and its SIGTERM (time limit, preemption, scancel).
# Set first: a signal before its trap would end this shell.
RESTART=${{SLURM_RESTART_COUNT:-0}}
WARNED="" TERMINATED="" DRIVER="" RAY_STEPS=""
forward_stop() {{  # Ray Tune stops gracefully on SIGUSR1; the driver ignores it until Tune runs
  while kill -USR1 "$DRIVER" 2>/dev/null; do sleep 10; done
}}
on_warning() {{
  [ -n "$WARNED" ] && return
  WARNED=$(date +%s)
  say "the time limit is near: stopping the sweep (every trial keeps its last checkpoint)"
  [ -n "$DRIVER" ] && forward_stop &
}}
on_terminate() {{
  TERMINATED=1
  why=$(job why-ended "$SLURM_JOB_ID")
  say "SIGTERM from Slurm ($why)"
  if [ "$why" = cancelled ] || [ "$RESTART" -ge "$MAX_REQUEUES" ]; then
    job record "$STORAGE" "$SWEEP" stopped --restart "$RESTART" --detail "$why"
  else  # no time left to stop the sweep first: it resumes from its last saved state
    job record "$STORAGE" "$SWEEP" requeued --restart "$RESTART" --detail "$why"
    scontrol requeue "$SLURM_JOB_ID"
  fi
}}
trap on_warning USR1
trap on_terminate TERM

stop_ray() {{  # SIGTERM to this job's steps (not this shell): each node stops its Ray
  [ -n "$RAY_STEPS" ] || return 0
  scancel --signal=TERM "$SLURM_JOB_ID" 2>/dev/null
  local left="$RAY_STEPS"
  for _ in $(seq 60); do
    left=$(for pid in $left; do kill -0 "$pid" 2>/dev/null && echo "$pid"; done)
    [ -z "$left" ] && break
    sleep 1
  done
  [ -n "$left" ] && kill $left 2>/dev/null  # srun kills what is left of its step
  wait $RAY_STEPS 2>/dev/null
  RAY_STEPS=""
}}
fail() {{  # MESSAGE [recorded: the step that failed wrote why into slurm.json itself]
  say "$1"
  [ -n "${{2:-}}" ] || job record "$STORAGE" "$SWEEP" failed --restart "$RESTART" --detail "$1"
  stop_ray
  exit 1
}}

export PYTHONUNBUFFERED=1 RAY_USAGE_STATS_ENABLED=0
NODES=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | paste -sd, -)
HEAD_NODE=$SLURMD_NODENAME  # this shell runs on the job's first node: Ray's head goes there too
WORK=${{TMPDIR:-/tmp}}/reid-ray-$SLURM_JOB_ID  # Ray's temporary folders, one per job and node
if [ "${{RAY_AUTH_MODE:-token}}" = token ] && [ -z "${{RAY_AUTH_TOKEN:-}}" ]; then
  # one token per job: every Ray process of this job has it, no other job's does
  RAY_AUTH_TOKEN=$("$PYTHON" -c 'import secrets; print(secrets.token_hex(32))')
  export RAY_AUTH_MODE=token RAY_AUTH_TOKEN
fi
NODE_OPTIONS=(--job "$SLURM_JOB_ID" --nodes "$NODES" --work "$WORK" --gpus "$GPUS_PER_NODE"
  --cpus "$CPUS_PER_NODE" --interface "$NETWORK_INTERFACE" --logs "$LOGS")
# Ray's steps share the CPUs of the node with this shell (--overlap) and see all of the job's
# CPUs and GPUs there (--whole); one task per node, which logs to $LOGS/ray-JOB-NODE.log.
STEP=(srun --overlap --whole --ntasks-per-node=1 --kill-on-bad-exit=0)

say "job $SLURM_JOB_ID, run $((RESTART + 1)) (requeued $RESTART of at most $MAX_REQUEUES times), nodes $NODES"
job record "$STORAGE" "$SWEEP" started --restart "$RESTART" --detail "$NODES"

# 1. Ray's head, on this node
"${{STEP[@]}}" --nodes=1 --ntasks=1 --nodelist="$HEAD_NODE" \
  "$PYTHON" -m orchestration.slurm.job node --head "${{NODE_OPTIONS[@]}}" &
RAY_STEPS=$!
ADDRESS=$(job head-address "$WORK" --node "$HEAD_NODE" --timeout "$JOIN_TIMEOUT" --step-pid "$RAY_STEPS") ||
  fail "Ray's head did not start on $HEAD_NODE: see $LOGS/ray-$SLURM_JOB_ID-$HEAD_NODE.log"
say "Ray's head: $ADDRESS"

# 2. a worker on each other node
if [ "$SLURM_JOB_NUM_NODES" -gt 1 ]; then
  "${{STEP[@]}}" --nodes=$((SLURM_JOB_NUM_NODES - 1)) --ntasks=$((SLURM_JOB_NUM_NODES - 1)) \
    --exclude="$HEAD_NODE" "$PYTHON" -m orchestration.slurm.job node --address "$ADDRESS" "${{NODE_OPTIONS[@]}}" &
  RAY_STEPS="$RAY_STEPS $!"
fi

# 3. every node joined (no fixed sleep: it asks Ray, and names the nodes still missing)
job wait-nodes "$ADDRESS" --nodes "$NODES" --timeout "$JOIN_TIMEOUT" --storage "$STORAGE" --sweep "$SWEEP" \
  --restart "$RESTART" --step-pids $RAY_STEPS || fail "not every node joined Ray; the sweep is unchanged" recorded

# 4. the sweep: run it, or resume it when it already has state
STATUS=3
if [ -z "$WARNED$TERMINATED" ]; then
  # Python itself, not through job(): $DRIVER must be the process that gets the signals
  "$PYTHON" -m orchestration.slurm.job drive "$SWEEP" --spec "$SPEC" --address "$ADDRESS" --storage "$STORAGE" \
    --tracking-uri "$TRACKING_URI" --runs-dir "$RUNS_DIR" -- "${{SWEEP_OPTIONS[@]}}" &
  DRIVER=$!
  [ -n "$WARNED" ] && forward_stop &
  while kill -0 "$DRIVER" 2>/dev/null; do wait "$DRIVER"; STATUS=$?; done  # a trap ends a wait early
  wait "$DRIVER" 2>/dev/null; last=$?
  [ "$last" != 127 ] && STATUS=$last
fi
stop_ray

# 5. done, or requeued to go on where it stopped
if [ "$STATUS" = 0 ]; then
  job record "$STORAGE" "$SWEEP" finished --restart "$RESTART"
  say "the sweep is done"
  exit 0
fi
if [ -n "$WARNED$TERMINATED" ] && [ "$STATUS" != 1 ] && [ "$STATUS" != 2 ]; then
  if [ -n "$TERMINATED" ]; then exit 3; fi  # requeued (or not) when the SIGTERM came
  if [ "$RESTART" -ge "$MAX_REQUEUES" ]; then
    job record "$STORAGE" "$SWEEP" stopped --restart "$RESTART" --detail "requeued $RESTART times: the limit"
    say "not requeued: the limit of $MAX_REQUEUES requeues is reached; submit again to go on"
    exit 3
  fi
  job record "$STORAGE" "$SWEEP" requeued --restart "$RESTART" --detail "warned before the time limit"
  say "the sweep stopped (exit $STATUS); requeued: the next run resumes it"
  scontrol requeue "$SLURM_JOB_ID" || fail "scontrol requeue $SLURM_JOB_ID was refused; submit again to go on"
  exit 3
fi
job record "$STORAGE" "$SWEEP" failed --restart "$RESTART" --detail "the sweep's driver exited with $STATUS"
exit "$STATUS"
"""


def sbatch_lines(job: JobSpec, options: SlurmOptions) -> list[str]:
    """The #SBATCH lines: the allocation, the warning, requeue, and where the output goes."""
    lines = [
        f"--job-name=reid-{job.sweep}",
        f"--nodes={options.nodes}",
        "--ntasks-per-node=1",
    ]
    if options.gpus_per_node:
        lines.append(f"--gpus-per-node={options.gpus_per_node}")
    # whole nodes unless a CPU count is given: Ray then takes every CPU of each
    lines.append(f"--cpus-per-task={options.cpus_per_node}" if options.cpus_per_node else "--exclusive")
    if options.partition:
        lines.append(f"--partition={options.partition}")
    if options.account:
        lines.append(f"--account={options.account}")
    if options.time:
        lines.append(f"--time={options.time}")
    lines += [
        f"--signal=B:USR1@{options.lead_s}",  # B: to this shell only, which stops the sweep
        "--requeue",
        "--open-mode=append",  # a requeued run adds to the output instead of replacing it
        f"--output={job.folder / 'slurm-%j.out'}",
        f"--chdir={job.workdir}",
        *options.sbatch_args,
    ]
    return [f"#SBATCH {shlex.quote(line) if ' ' in line else line}" for line in lines]


def render_script(job: JobSpec, options: SlurmOptions, now: float | None = None) -> str:
    """The whole batch script (its values quoted for bash)."""
    header = HEADER.format(
        sweep=job.sweep,
        date=time.strftime("%Y-%m-%d %H:%M", time.localtime(now)),
        lead=options.lead_s,
        max_requeues=options.max_requeues,
        script=job.script_path,
    )
    body = BODY.format(
        sweep=shlex.quote(job.sweep),
        spec=shlex.quote(job.spec_path),
        storage=shlex.quote(job.storage),
        tracking_uri=shlex.quote(job.tracking_uri),
        runs_dir=shlex.quote(job.runs_dir),
        sweep_args=" ".join(shlex.quote(arg) for arg in job.sweep_args),
        python=shlex.quote(job.python),
        gpus=options.gpus_per_node,
        cpus=options.cpus_per_node or "",
        max_requeues=options.max_requeues,
        join_timeout=options.join_timeout,
        interface=shlex.quote(options.network_interface or ""),
        logs=shlex.quote(str(job.folder)),
    )
    return header + "\n".join(sbatch_lines(job, options)) + "\n" + body
