"""A sweep's Slurm job in one line, for `sweep status` (`job_line`), from Slurm itself when
its commands answer here (scontrol, then sacct), else from what the job recorded in the
storage (record.py)."""

from __future__ import annotations

import re
import shutil
import subprocess
from typing import Any

from ..storage import StorageURI
from .record import read_record
from .timespec import format_seconds

ACTIVE = ("PENDING", "RUNNING", "REQUEUED", "CONFIGURING", "COMPLETING", "SUSPENDED", "RESIZING", "REQUEUE_HOLD")
_FIELD = re.compile(r"(\w+)=(\S*)")


def parse_scontrol(text: str) -> dict[str, str]:
    """`scontrol show job -o ID`'s KEY=VALUE fields (values without spaces suffice here)."""
    return dict(_FIELD.findall(text))


def slurm_job(job_id: str, timeout: float = 10.0) -> dict[str, str] | None:
    """What Slurm says of a job now: scontrol's fields, else sacct's (after scontrol forgot
    it: MinJobAge), else None (no Slurm commands here, or no such job)."""
    if shutil.which("scontrol"):
        done = _run(["scontrol", "show", "job", "-o", str(job_id)], timeout)
        if done is not None and done.returncode == 0 and "JobState=" in done.stdout:
            return parse_scontrol(done.stdout)
    if shutil.which("sacct"):
        done = _run(
            ["sacct", "-n", "-P", "-X", "-j", str(job_id), "--format=JobState,Elapsed,Timelimit,NodeList,Partition"],
            timeout,
        )
        if done is not None and done.returncode == 0 and done.stdout.strip():
            state, elapsed, limit, nodes, partition = (done.stdout.strip().splitlines()[-1].split("|") + [""] * 5)[:5]
            return {
                "JobState": state.split()[0] if state else "",
                "RunTime": elapsed,
                "TimeLimit": limit,
                "NodeList": nodes,
                "Partition": partition,
            }
    return None


def _run(cmd: list[str], timeout: float) -> subprocess.CompletedProcess | None:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return None


def why_ended(job_id: str) -> str:
    """Why Slurm sends the job SIGTERM: 'time limit', 'preempted', 'cancelled' or 'unknown'."""
    job = slurm_job(job_id) or {}
    state, reason = job.get("JobState", ""), job.get("Reason", "")
    if state == "CANCELLED":
        return "cancelled"
    if state == "TIMEOUT" or reason == "TimeLimit":
        return "time limit"
    if state == "PREEMPTED" or "Preempt" in reason:
        return "preempted"
    return "unknown"


def job_line(storage: str | StorageURI, name: str) -> str | None:
    """One line on the sweep's Slurm job (None: it never had one), e.g.
    `slurm: job 1234 RUNNING for 0:12:03 of 2:00:00 on n[1-2]; requeued 1 of at most 10 times; last: requeued at ...`."""
    record = read_record(storage, name)
    if record is None or not record.get("job_id"):
        return None
    return format_line(record, slurm_job(str(record["job_id"])))


def format_line(record: dict[str, Any], live: dict[str, str] | None) -> str:
    job_id = record["job_id"]
    restarts = record.get("restart", 0)
    if live is not None:
        state = live.get("JobState", "?")
        restarts = int(live.get("Restarts", restarts) or 0)
        parts = [f"slurm: job {job_id} {state}"]
        if live.get("RunTime") and state not in ("PENDING",):
            parts[0] += f" for {live['RunTime']}" + (f" of {live['TimeLimit']}" if live.get("TimeLimit") else "")
        if live.get("NodeList") and live["NodeList"] != "(null)":
            parts[0] += f" on {live['NodeList']}"
        if state == "PENDING" and live.get("Reason"):
            parts[0] += f" ({live['Reason']})"
    else:
        parts = [f"slurm: job {job_id} {record.get('state', '?')} (as recorded; Slurm does not answer here)"]
    parts.append(f"requeued {restarts} of at most {record.get('max_requeues', '?')} times")
    events = record.get("events") or []
    if events:
        last = events[-1]
        detail = f" ({last['detail']})" if last.get("detail") else ""
        parts.append(f"last: {last['event']} at {last['at']}{detail}")
    if record.get("lead_s"):
        limit = f" of the {format_seconds(record['limit_s'])} limit" if record.get("limit_s") and live is None else ""
        parts.append(f"warned {record['lead_s']} s before the end{limit}")
    if record.get("output"):
        parts.append(f"output {record['output']}")
    return "; ".join(parts)
