"""What `compact-reid slurm submit` asks Slurm for (`SlurmOptions`) and what the job runs
(`JobSpec`), checked before anything is written."""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .errors import SlurmError
from .timespec import check_lead, default_lead, parse_time

DEFAULT_MAX_REQUEUES = 10
DEFAULT_JOIN_TIMEOUT_S = 300
# sbatch options the script sets itself: given through --sbatch-arg they would fight it
MANAGED = {
    "--nodes": "--nodes",
    "-N": "--nodes",
    "--time": "--time",
    "-t": "--time",
    "--signal": "--signal-lead",
    "--partition": "--partition",
    "-p": "--partition",
    "--account": "--account",
    "-A": "--account",
    "--gpus-per-node": "--gpus-per-node",
    "--cpus-per-task": "--cpus-per-node",
    "-c": "--cpus-per-node",
    "--ntasks-per-node": "--nodes (one task per node)",
    "--ntasks": "--nodes (one task per node)",
    "-n": "--nodes (one task per node)",
    "--requeue": "--max-requeues",
    "--no-requeue": "--max-requeues 0",
    "--output": "the sweep folder (the job's output goes there)",
    "-o": "the sweep folder (the job's output goes there)",
    "--open-mode": "the sweep folder (the job's output goes there)",
    "--job-name": "the sweep's name",
    "-J": "the sweep's name",
}
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass(frozen=True)
class SlurmOptions:
    """The allocation and the job's behaviour. `time`: Slurm's --time (None: the partition's
    default); `signal_lead`: seconds before the limit the job is warned (None: timespec.default_lead);
    `cpus_per_node`: None takes whole nodes (--exclusive); `network_interface`: the interface
    whose address Ray uses on every node (None: the address the node's hostname resolves to)."""

    nodes: int = 1
    gpus_per_node: int = 0
    cpus_per_node: int | None = None
    partition: str | None = None
    account: str | None = None
    time: str | None = None
    signal_lead: int | None = None
    max_requeues: int = DEFAULT_MAX_REQUEUES
    sbatch_args: tuple[str, ...] = ()
    join_timeout: int = DEFAULT_JOIN_TIMEOUT_S
    network_interface: str | None = None

    def __post_init__(self) -> None:
        if self.nodes < 1:
            raise SlurmError(f"--nodes {self.nodes}: must be at least 1")
        if self.gpus_per_node < 0:
            raise SlurmError(f"--gpus-per-node {self.gpus_per_node}: must be 0 or more")
        if self.cpus_per_node is not None and self.cpus_per_node < 1:
            raise SlurmError(f"--cpus-per-node {self.cpus_per_node}: must be at least 1")
        if self.max_requeues < 0:
            raise SlurmError(f"--max-requeues {self.max_requeues}: must be 0 or more")
        if self.join_timeout < 10:
            raise SlurmError(f"--join-timeout {self.join_timeout}: must be at least 10 seconds")
        for name, value in (("--partition", self.partition), ("--account", self.account)):
            if value is not None and not _NAME.match(value):
                raise SlurmError(f"{name} {value!r}: letters, digits, '_', '.' and '-' only")
        if self.network_interface is not None and not _NAME.match(self.network_interface):
            raise SlurmError(f"--network-interface {self.network_interface!r}: not an interface name")
        check_lead(self.lead_s, self.limit_s)
        for arg in self.sbatch_args:
            flag = arg.split("=", 1)[0]
            if flag in MANAGED or (flag[:2] in MANAGED and len(flag) > 2 and not flag.startswith("--")):
                owner = MANAGED.get(flag) or MANAGED[flag[:2]]
                raise SlurmError(f"--sbatch-arg {arg!r}: the script sets {flag} itself; use {owner}")
            if not arg.startswith("-"):
                raise SlurmError(f"--sbatch-arg {arg!r}: an sbatch option, e.g. --sbatch-arg=--mem=64G")

    @property
    def limit_s(self) -> int | None:
        return None if self.time is None else parse_time(self.time)

    @property
    def lead_s(self) -> int:
        return self.signal_lead if self.signal_lead is not None else default_lead(self.limit_s)


@dataclass(frozen=True)
class JobSpec:
    """What the job runs, with every path absolute (the job starts elsewhere): the sweep's
    name and spec, its storage and tracking URIs, `sweep run`'s own options, the Python that
    has compact-reid installed (the same path on every node) and the working folder."""

    sweep: str
    spec_path: str
    storage: str
    tracking_uri: str
    runs_dir: str
    sweep_args: tuple[str, ...] = ()
    python: str = field(default_factory=lambda: sys.executable)
    workdir: str = field(default_factory=os.getcwd)

    @property
    def folder(self) -> Path:
        """Where the script, the job's output and each Ray node's log go."""
        return Path(self.runs_dir) / self.sweep / "slurm"

    @property
    def script_path(self) -> Path:
        return self.folder / "job.sbatch"
