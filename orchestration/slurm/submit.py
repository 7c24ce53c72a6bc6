"""`compact-reid slurm submit`: check the spec and the options, write the batch script into
the sweep's folder, submit it with sbatch and record the job in the sweep's storage.

Refused before anything is written: a spec that fails validation, options Slurm could not
honour, no sbatch here, the sweep already in a queued or running job. A refusal by Slurm
itself (e.g. more nodes than the partition has) is shown with the partition named, and the
script written for it is removed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from .errors import SlurmError
from .options import JobSpec, SlurmOptions
from .record import write_record
from .script import render_script
from .status import ACTIVE, parse_scontrol, slurm_job

Log = Callable[[str], None]
# a pending job's reasons that no wait resolves: Slurm took it but will never start it
# (a cluster without EnforcePartLimits takes a job larger than its partition this way)
NEVER_STARTS = {
    "PartitionConfig",
    "PartitionNodeLimit",
    "PartitionTimeLimit",
    "BadConstraints",
    "InvalidAccount",
    "InvalidQOS",
    "AccountNotAllowed",
    "QOSNotAllowed",
}


@dataclass(frozen=True)
class Submission:
    job: JobSpec
    script_text: str
    job_id: str | None = None  # None: --dry-run

    @property
    def output(self) -> str:
        return str(self.job.folder / f"slurm-{self.job_id or '%j'}.out")


def plan_job(
    spec_path: str,
    storage: str | None = None,
    tracking_uri: str | None = None,
    runs_dir: str = "runs",
    sweep_args: Sequence[str] = (),
) -> JobSpec:
    """The job's sweep, every path absolute; a spec that fails validation raises here."""
    from ..mlflow_log.store import resolve_tracking_uri
    from ..sweep.spec import load_spec
    from ..sweep.sweep_folder import storage_root

    spec = load_spec(spec_path)
    runs = str(Path(runs_dir).resolve())
    return JobSpec(
        sweep=spec.file.name,
        spec_path=str(Path(spec_path).resolve()),
        storage=str(storage_root(storage, runs)),
        tracking_uri=resolve_tracking_uri(tracking_uri, runs),
        runs_dir=runs,
        sweep_args=tuple(sweep_args),
    )


def submit(job: JobSpec, options: SlurmOptions, dry_run: bool = False, log: Log = print) -> Submission:
    """Write and submit the job (module docstring); with `dry_run` only render the script."""
    sbatch = None if dry_run else shutil.which("sbatch")
    if not dry_run and sbatch is None:
        raise SlurmError(
            "sbatch is not installed here (or not on PATH): submit from a machine of the Slurm cluster "
            "(a login node); --dry-run prints the script without it. Nothing was written."
        )
    text = render_script(job, options)
    if dry_run:
        return Submission(job, text)
    previous = _refuse_if_queued(job)
    _say_if_resumed(job, log)
    job.folder.mkdir(parents=True, exist_ok=True)
    existed = job.script_path.exists()
    job.script_path.write_text(text)
    job.script_path.chmod(0o755)
    # recorded before sbatch: the job adds its events to this record from its first second on
    _write_submission(job, options)

    def undo() -> None:
        if not existed:
            job.script_path.unlink(missing_ok=True)
        _restore(job, previous)

    try:
        done = subprocess.run([sbatch, "--parsable", str(job.script_path)], capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        undo()
        raise SlurmError("sbatch did not answer within 120 s: is slurmctld up? (scontrol ping)") from None
    if done.returncode != 0:
        undo()
        said = " ".join(line.strip() for line in (done.stderr or done.stdout).splitlines() if line.strip())
        raise SlurmError(_refusal(f"Slurm refused the job ({said or 'no message'})", options))
    job_id = done.stdout.strip().split(";")[0]
    _set_job_id(job, job_id, log)
    held = _never_starts(job_id)
    if held:
        subprocess.run(["scancel", job_id], capture_output=True, timeout=60)
        undo()
        raise SlurmError(
            _refusal(f"Slurm would never start job {job_id} (pending, reason {held}), so it is cancelled", options)
        )
    submission = Submission(job, text, job_id)
    return submission


def _never_starts(job_id: str, wait_s: float = 3.0) -> str | None:
    """The reason Slurm gives for never starting the job, once it has looked at it; None
    when it runs, may run later, or Slurm does not say within `wait_s`."""
    deadline = time.monotonic() + wait_s
    while True:
        job = slurm_job(job_id) or {}
        reason = job.get("Reason", "")
        if job.get("JobState") != "PENDING" or reason not in ("", "None"):
            return reason if job.get("JobState") == "PENDING" and reason in NEVER_STARTS else None
        if time.monotonic() > deadline:
            return None
        time.sleep(0.5)


def _refuse_if_queued(job: JobSpec) -> dict | None:
    """The sweep's job record so far (None: none); refused while that job is queued or runs."""
    from .record import read_record

    record = read_record(job.storage, job.sweep)
    if not record or not record.get("job_id"):
        return record
    live = slurm_job(str(record["job_id"]))
    if live and live.get("JobState") in ACTIVE:
        raise SlurmError(
            f"sweep {job.sweep} is already in job {record['job_id']} ({live['JobState']}): follow it with "
            f"`compact-reid slurm status {job.sweep} --storage {job.storage}`, or cancel it (scancel "
            f"{record['job_id']}) before submitting again"
        )
    return record


def _say_if_resumed(job: JobSpec, log: Log) -> None:
    from ..storage import StorageURI
    from ..storage.store import Store
    from ..sweep.sweep_folder import has_state

    root = StorageURI.parse(job.storage)
    if has_state(Store(root, attempts=3, wait_s=30), job.sweep):
        log(
            f"sweep {job.sweep} already has state in {root.join(job.sweep).display}: the job resumes it "
            "(with the spec it was started with)"
        )


def partition_nodes(name: str | None) -> tuple[str, int] | None:
    """(the partition, its node count): `name`, or the cluster's default; None if unknown."""
    if not shutil.which("scontrol"):
        return None
    try:
        done = subprocess.run(["scontrol", "show", "partition", "-o"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    for line in done.stdout.splitlines():
        fields = parse_scontrol(line)
        if (name and fields.get("PartitionName") == name) or (not name and fields.get("Default") == "YES"):
            return fields.get("PartitionName", "?"), int(fields.get("TotalNodes", "0") or 0)
    return None


def _refusal(what: str, options: SlurmOptions) -> str:
    known = partition_nodes(options.partition)
    if known is None:
        where = f"partition {options.partition}" if options.partition else "the default partition"
    else:
        name, count = known
        where = f"partition {name}{'' if options.partition else ' (the default)'}, which has {count} node(s)"
    return (
        f"{what}. Asked: {options.nodes} node(s)"
        + (f" x {options.gpus_per_node} GPU(s)" if options.gpus_per_node else "")
        + (f" x {options.cpus_per_node} CPU(s)" if options.cpus_per_node else "")
        + f" in {where}. Nothing is queued."
    )


def _write_submission(job: JobSpec, options: SlurmOptions) -> None:
    now = time.strftime("%Y-%m-%dT%H:%M:%S")
    record = {
        "job_id": None,
        "sweep": job.sweep,
        "script": str(job.script_path),
        "output": str(job.folder / "slurm-%j.out"),
        "nodes": options.nodes,
        "gpus_per_node": options.gpus_per_node,
        "cpus_per_node": options.cpus_per_node,
        "partition": options.partition,
        "limit_s": options.limit_s,
        "lead_s": options.lead_s,
        "max_requeues": options.max_requeues,
        "submitted_at": now,
        "submitted_from": os.uname().nodename,
        "state": "PENDING",
        "restart": 0,
        "events": [{"at": now, "event": "submitted", "restart": 0, "detail": ""}],
    }
    write_record(job.storage, job.sweep, record)


def _set_job_id(job: JobSpec, job_id: str, log: Log) -> None:
    from .record import read_record

    try:
        record = read_record(job.storage, job.sweep) or {}
        record["job_id"] = job_id
        record["output"] = str(job.folder / f"slurm-{job_id}.out")
        write_record(job.storage, job.sweep, record)
    except Exception as e:  # the job is queued: say so rather than fail (it records its id itself)
        log(f"warning: job {job_id} is submitted but could not be recorded in the storage: {e}")


def _restore(job: JobSpec, previous: dict | None) -> None:
    from ..storage import StorageURI
    from ..storage.store import Store
    from .record import RECORD_FILE

    if previous is None:
        Store(StorageURI.parse(job.storage), attempts=3, wait_s=30).delete(f"{job.sweep}/{RECORD_FILE}")
    else:
        write_record(job.storage, job.sweep, previous)
