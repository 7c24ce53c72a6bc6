"""A throw-away Slurm cluster on this machine for the Slurm tests: its own munge key and
munged socket, slurmctld and one slurmd per node (`slurmd -N n1`, `-N n2`: several Slurm
nodes on one host), each on a free loopback port, with its own state and spool folders.

Every daemon runs in the foreground under a tether (process_tether): it ends with the test
process even when that is killed, and so does everything below it, the jobs' steps and their
Ray processes included (slurmstepd is re-parented to the tether, a subreaper). `stop()`
cancels every job first. Needs root and Debian's slurm-wlm and munge.

Two settings make requeued jobs start again in seconds rather than minutes, both documented
slurm.conf parameters: `AuthInfo=cred_expire=10` (a requeued job waits cred_expire + 1 s
before it is eligible; default 120 s) and `SchedulerParameters=sched_interval=5` (the main
scheduler's pass; default 60 s).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import psutil

from process_tether import tethered

DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "srun", "scontrol", "squeue", "scancel")
CRED_EXPIRE_S = 10
SCHED_INTERVAL_S = 5


def refusal() -> str | None:
    """Why a Slurm cluster cannot be started here (None: it can)."""
    missing = [name for name in DAEMONS if shutil.which(name) is None and not Path(f"/usr/sbin/{name}").exists()]
    if missing:
        return f"not installed: {', '.join(missing)} (apt-get install slurm-wlm munge)"
    if os.geteuid() != 0:
        return "slurmd must run as root"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _binary(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


class SlurmCluster:
    def __init__(self, root: Path, nodes: tuple[str, ...] = ("n1", "n2"), partition: str = "debug") -> None:
        self.root = root
        self.nodes = nodes
        self.partition = partition
        self.cpus = os.cpu_count() or 1
        self.conf = root / "slurm.conf"
        self.munge_socket = root / "munge" / "munge.socket"
        self.procs: list[subprocess.Popen] = []
        self.log = root / "daemons.log"

    # ---- start ----
    def start(self, timeout: float = 60) -> "SlurmCluster":
        self._start_munge()
        self._write_conf()
        self._spawn([_binary("slurmctld"), "-D", "-f", str(self.conf)])
        for node in self.nodes:
            (self.root / node).mkdir(exist_ok=True)
            self._spawn([_binary("slurmd"), "-D", "-N", node, "-f", str(self.conf)])
        deadline = time.monotonic() + timeout
        while True:
            done = self.run(["sinfo", "-h", "-N", "-o", "%N %t"], check=False)
            states = dict(line.split() for line in done.stdout.splitlines() if line.strip())
            if len(states) == len(self.nodes) and all(state == "idle" for state in states.values()):
                return self
            for proc in self.procs:
                assert proc.poll() is None, f"a Slurm daemon exited: {self.tail()}"
            assert time.monotonic() < deadline, f"nodes not idle after {timeout} s: {states}\n{self.tail()}"
            time.sleep(0.5)

    def _start_munge(self) -> None:
        folder = self.munge_socket.parent
        folder.mkdir(parents=True)
        folder.chmod(0o755)  # munged wants its socket's folder reachable by every client
        key = folder / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        self._spawn(
            [
                _binary("munged"),
                "--foreground",
                "--force",
                f"--socket={self.munge_socket}",
                f"--key-file={key}",
                f"--pid-file={folder / 'munged.pid'}",
                f"--log-file={folder / 'munged.log'}",
                f"--seed-file={folder / 'munged.seed'}",
            ]
        )
        deadline = time.monotonic() + 20
        while not self.munge_socket.exists():
            assert time.monotonic() < deadline, f"munged did not start: {self.tail()}"
            time.sleep(0.1)

    def _write_conf(self) -> None:
        host = socket.gethostname()
        memory = max(1024, psutil.virtual_memory().total // (1024 * 1024) // (2 * len(self.nodes)))
        (self.root / "state").mkdir()
        lines = [
            "ClusterName=reidtest",
            f"SlurmctldHost={host}(127.0.0.1)",
            f"SlurmctldPort={_free_port()}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={self.munge_socket},cred_expire={CRED_EXPIRE_S}",
            f"StateSaveLocation={self.root / 'state'}",
            f"SlurmdSpoolDir={self.root}/%n",
            f"SlurmctldPidFile={self.root / 'slurmctld.pid'}",
            f"SlurmdPidFile={self.root}/%n/slurmd.pid",
            f"SlurmctldLogFile={self.root / 'slurmctld.log'}",
            f"SlurmdLogFile={self.root}/%n/slurmd.log",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "JobCompType=jobcomp/none",
            "SchedulerType=sched/backfill",
            f"SchedulerParameters=sched_interval={SCHED_INTERVAL_S},bf_interval={SCHED_INTERVAL_S}",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core",
            "MpiDefault=none",
            "SwitchType=switch/none",
            "ReturnToService=2",
            "MinJobAge=600",
        ]
        for node in self.nodes:
            lines.append(
                f"NodeName={node} NodeHostname={host} NodeAddr=127.0.0.1 Port={_free_port()} "
                f"CPUs={self.cpus} RealMemory={memory} State=UNKNOWN"
            )
        lines.append(
            f"PartitionName={self.partition} Nodes={','.join(self.nodes)} Default=YES MaxTime=INFINITE State=UP"
        )
        self.conf.write_text("\n".join(lines) + "\n")

    def _spawn(self, cmd: list[str]) -> None:
        with open(self.log, "ab") as out:
            self.procs.append(
                subprocess.Popen(
                    tethered(cmd, grace=10),
                    env=self.env(),
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )

    # ---- use ----
    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        return dict(base if base is not None else os.environ, SLURM_CONF=str(self.conf))

    def run(self, cmd: list[str], check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        done = subprocess.run(cmd, env=self.env(), capture_output=True, text=True, timeout=timeout)
        if check:
            assert done.returncode == 0, f"{cmd}: {done.stderr}"
        return done

    def job(self, job_id: str) -> dict[str, str]:
        from orchestration.slurm.status import parse_scontrol

        return parse_scontrol(self.run(["scontrol", "show", "job", "-o", job_id]).stdout)

    def wait_job(self, job_id: str, states: tuple[str, ...], timeout: float) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if job.get("JobState") in states:
                return job
            assert time.monotonic() < deadline, f"job {job_id} still {job.get('JobState')} after {timeout} s"
            time.sleep(1)

    def tail(self, chars: int = 3000) -> str:
        parts = [self.log, self.root / "slurmctld.log", *(self.root / node / "slurmd.log" for node in self.nodes)]
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-chars:]}" for p in parts if p.exists())

    def node_daemon(self, node: str) -> psutil.Process:
        """The slurmd of `node` (below its tether)."""
        for proc in self.procs:
            for child in psutil.Process(proc.pid).children():
                try:
                    if child.cmdline()[-4:-2] == ["-N", node]:
                        return child
                except psutil.Error:  # a job's process the tether has not reaped yet
                    continue
        raise LookupError(f"no slurmd for {node}")

    def descendants(self) -> list[psutil.Process]:
        """Every process below the daemons' tethers (daemons, job steps, Ray)."""
        found: list[psutil.Process] = []
        for proc in self.procs:
            try:
                tether = psutil.Process(proc.pid)
                found += [tether, *tether.children(recursive=True)]
            except psutil.NoSuchProcess:
                pass
        return found

    # ---- stop ----
    def stop(self, timeout: float = 60) -> None:
        """Cancel every job, wait until the queue is empty, then end the daemons (their tethers
        kill whatever is left below them)."""
        if self.procs and all(proc.poll() is None for proc in self.procs):
            self.run(["scancel", "--full", "--partition", self.partition], check=False)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if not self.run(["squeue", "-h", "-o", "%i"], check=False).stdout.strip():
                    break
                time.sleep(1)
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
