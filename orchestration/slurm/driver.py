"""The sweep's driver inside the job: `sweep run`, or `sweep resume` when the sweep already
has state (a requeued run, or a job submitted again), through the CLI as a user would.

Signals: Ray Tune takes SIGUSR1 as a graceful stop (it saves the experiment state; trials
keep their last checkpoint; the sweep exits 3, resumable) but only once its loop runs, and
SIGUSR1 kills a Python process that has no handler. So it is ignored until Tune installs
its own; the job's shell sends it again every few seconds until the driver ends. SIGTERM
(Slurm's time limit, preemption, scancel) takes the same graceful path once Tune runs, and
stops the driver as Ctrl+C would before.
"""

from __future__ import annotations

import os
import signal
from typing import Sequence

from ..storage import StorageURI
from ..storage.store import Store


def sweep_argv(
    name: str,
    spec: str,
    address: str,
    storage: str,
    tracking_uri: str,
    runs_dir: str,
    sweep_args: Sequence[str],
    has_state: bool,
    can_restore: bool,
) -> list[str]:
    """The `compact-reid` arguments that go on with the sweep from where it is."""
    where = ["--address", address, "--storage", storage, "--runs-dir", runs_dir]
    if has_state and can_restore:
        return ["sweep", "resume", name, *where]
    run = ["sweep", "run", spec, *where, "--tracking-uri", tracking_uri, *sweep_args]
    if has_state:  # its driver stopped before Ray Tune saved anything: nothing to resume
        run.append("--fresh")
    return run


def sweep_has_state(storage: str, name: str) -> tuple[bool, bool]:
    """(the sweep has saved state, Ray Tune has state to resume from)."""
    from ..sweep.sweep_folder import has_state

    root = StorageURI.parse(storage)
    if not has_state(Store(root), name):
        return False, False
    from ray import tune

    experiment = root.join(name)
    filesystem = None if root.is_local else root.filesystem()
    return True, bool(tune.Tuner.can_restore(experiment.fs_path, storage_filesystem=filesystem))


def _on_terminate(signum: int, frame: object) -> None:
    if signal.getsignal(signal.SIGUSR1) is signal.SIG_IGN:
        raise KeyboardInterrupt  # Tune is not running yet: stop as Ctrl+C would
    os.kill(os.getpid(), signal.SIGUSR1)  # Tune's graceful stop


def drive(
    name: str, spec: str, address: str, storage: str, tracking_uri: str, runs_dir: str, sweep_args: Sequence[str]
) -> int:
    """Run or resume the sweep; its exit status (0 done, 1 every trial failed, 2 bad input,
    3 interrupted: resumable)."""
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _on_terminate)
    from ..cli import main

    saved, restorable = sweep_has_state(storage, name)
    if saved and not restorable and not StorageURI.parse(storage).is_local:
        print(
            f"slurm: sweep {name} has state but Ray Tune saved none, and --fresh cannot set aside a folder on "
            f"object storage: remove {StorageURI.parse(storage).join(name).display} and submit again",
            flush=True,
        )
        return 2
    argv = sweep_argv(name, spec, address, storage, tracking_uri, runs_dir, sweep_args, saved, restorable)
    print("slurm: compact-reid " + " ".join(argv), flush=True)
    return main(argv)
