"""Run a command that ends with the process that started it, even when that one is SIGKILLed.

    python -I /path/to/tether.py --parent PID [--stop-signal TERM] [--grace 10] -- CMD ARGS...
    python -I /path/to/tether.py --parent PID --watch

A small supervisor between the launcher and a long-running service (`mlflow server`,
PostgreSQL). The service's own workers are grandchildren of the launcher (uvicorn workers,
MLflow's job runners, PostgreSQL backends), and a parent-death signal reaches only a
direct child; so the tether:

1. checks that its parent is still PID, after asking the kernel for a signal when the
   parent dies (PR_SET_PDEATHSIG): a launcher that died before then is seen here, and then
   nothing starts;
2. becomes a child subreaper (PR_SET_CHILD_SUBREAPER): every process below it that loses
   its parent, or daemonizes, is re-parented to the tether instead of init, so it stays
   findable;
3. runs CMD and waits. When its parent dies (getppid() is no longer PID, looked at every
   0.25 s and on the death signal) or it gets SIGTERM/SIGINT/SIGHUP, it sends
   --stop-signal to its process group (to CMD alone when the tether does not lead a
   group), waits --grace seconds for CMD, then SIGKILLs every process still below it.
   When CMD exits on its own, whatever CMD left behind is killed too. Its exit status is
   CMD's (128 + signal when CMD was killed). With --remove-if-orphaned DIR, DIR is deleted
   afterwards when the launcher died (nobody else is left to do it).

`--watch` (no CMD) is for a launcher that starts processes it cannot put under a tether
(Ray starts its own): it remembers, every second, the processes below the launcher and
ends them when the launcher dies.

A tether and every process below it carry COMPACT_REID_TETHER=<the tether's pid> in their
environment: `tether_of()` and `is_tether()` recognise them (see MARKER).

Run as a script with `python -I` (not `-m`), so it starts without importing this package
or whatever the interpreter's working directory holds; it needs only the standard library
and psutil, which -I still finds in the interpreter's own site-packages (not in the user's:
~/.local). Processes are read through psutil; Linux gets both prctl calls (ctypes),
elsewhere only the getppid() poll and the process group.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

try:
    import psutil
except ImportError:  # as a script under -I, which leaves out the user's site-packages: say so
    if __name__ != "__main__":
        raise
    sys.exit(f"tether: psutil is not importable by {sys.executable} -I; install it into that interpreter's environment")

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
PARENT_GONE = 111  # exit status when the launcher died before the tether was armed
POLL_S = 0.25

# How a tether and the processes below it are recognised (mlflow_server/ports.py names the
# server behind a tether): an environment variable, not a command line. The kernel copies the
# environment to every process below the tether (through fork, exec, setsid, daemonizing), and
# a command line that merely mentions this file does not carry it. The value is the tether's
# pid: a process tells which tether it runs under, and a tether is the process whose value is
# its own pid. /proc/PID/environ shows the environment a process was started with, so the
# tether re-executes itself once with the variable set (_mark_self; exec keeps the pid). Another
# user's environment may not be readable (psutil.AccessDenied): such a process is not
# recognised, which only loses the "under its tether" detail in a message.
MARKER = "COMPACT_REID_TETHER"

_GONE_STATUSES = (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)


def prctl(option: int, arg: int) -> bool:
    """One prctl(2) call; False where there is no prctl (not Linux) or it failed."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(option, arg, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def tether_of(pid: int | None) -> int | None:
    """The pid of the tether `pid` runs under (its own pid when it is a tether), read from
    MARKER in its environment; None when it carries none, is gone, or its environment cannot
    be read (psutil.AccessDenied: another user's process)."""
    if pid is None:
        return None
    try:
        value = psutil.Process(pid).environ().get(MARKER, "")
    except psutil.Error:
        return None
    return int(value) if value.isdigit() else None


def is_tether(pid: int | None) -> bool:
    """True when `pid` is a tether (started from this module, marked by MARKER)."""
    return pid is not None and tether_of(pid) == pid


def _below(pid: int) -> list[psutil.Process]:
    """Every process below `pid` (children first, zombies included); [] when it is gone."""
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def descendants(pid: int) -> list[int]:
    """The pids of every process below `pid` (children first, zombies not yet collected
    included); [] when `pid` is gone."""
    return [process.pid for process in _below(pid)]


def _is_live(process: psutil.Process) -> bool:
    """Still running: not exited, not a zombie, and its pid not reused by another process."""
    try:
        return process.is_running() and process.status() not in _GONE_STATUSES
    except psutil.Error:
        return False


def _reap(keep: int | None = None) -> None:
    """Collect exited children other than `keep` (as a subreaper, re-parented orphans are
    ours to wait for; `keep`, the command, is left to Popen.wait so its status is not lost)."""
    try:
        children = psutil.Process().children()
    except psutil.Error:
        return
    for child in children:
        if child.pid != keep:
            try:
                os.waitpid(child.pid, os.WNOHANG)
            except ChildProcessError:
                pass


def _kill_all_below(pid: int, timeout: float = 10.0) -> None:
    """SIGKILL every process below `pid` until none is left (re-parented ones included)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = _below(pid)
        if not left:
            return
        for process in left:
            try:
                process.kill()
            except psutil.Error:
                pass
        time.sleep(0.05)
        _reap()


def _ask_to_stop(child: subprocess.Popen, stop_signal: int) -> None:
    """`stop_signal` to the whole process group when the tether leads it (what Ctrl+C does
    at a terminal: MLflow's job runners stop at once then, not only when uvicorn is done),
    else to CMD alone (the group is then the launcher's, not ours to signal)."""
    try:
        if os.getpgrp() == os.getpid():
            signal.signal(stop_signal, signal.SIG_IGN)  # the tether waits; it is not asked twice
            os.killpg(os.getpid(), stop_signal)
        else:
            child.send_signal(stop_signal)
    except ProcessLookupError:
        pass


def run(parent: int, cmd: list[str], stop_signal: int, grace: float, remove_if_orphaned: str | None = None) -> int:
    asked: list[int] = []

    def on_stop(signum: int, frame: object) -> None:
        asked.append(signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, on_stop)
    # The death signal also fires when only the launcher's *thread* that started us ends (the
    # launcher lives on): so it is a dedicated signal that only makes us look at getppid().
    signal.signal(signal.SIGUSR1, lambda signum, frame: os.getppid() != parent and asked.append(signum))
    prctl(PR_SET_PDEATHSIG, signal.SIGUSR1)
    if os.getppid() != parent:  # the launcher died before the death signal was armed
        return PARENT_GONE
    prctl(PR_SET_CHILD_SUBREAPER, 1)
    if asked:
        return 128 + asked[0]
    os.environ[MARKER] = str(os.getpid())  # inherited by CMD and all below it (already so when marked)
    child = subprocess.Popen(cmd)  # same stdio and process group as the tether
    code: int | None = None
    last_reap = time.monotonic()
    try:
        while code is None:
            try:
                code = child.wait(timeout=POLL_S)
                break
            except subprocess.TimeoutExpired:
                pass
            if asked or os.getppid() != parent:
                _ask_to_stop(child, stop_signal)
                try:
                    code = child.wait(timeout=grace)
                except subprocess.TimeoutExpired:
                    child.kill()
                    code = child.wait()
            elif time.monotonic() - last_reap > 5:
                _reap(keep=child.pid)
                last_reap = time.monotonic()
    finally:
        _kill_all_below(os.getpid())
        if remove_if_orphaned and os.getppid() != parent:  # nobody is left to clean up after CMD
            shutil.rmtree(remove_if_orphaned, ignore_errors=True)
    return code if code >= 0 else 128 - code


class _ParentGone(Exception):
    pass


def watch(parent: int, grace: float, interval: float = 1.0) -> int:
    """--watch, no command: for a launcher whose processes are not ours to start (Ray
    starts its own). Every `interval` s, remember the processes below the launcher; when it
    dies, SIGTERM those still running (psutil.Process keeps each one's start time: a reused
    pid is not signalled), and SIGKILL them after `grace` s. SIGTERM to the watcher: the
    launcher ended them itself; leave."""

    def on_death(signum: int, frame: object) -> None:
        if os.getppid() != parent:
            raise _ParentGone

    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    signal.signal(signal.SIGUSR1, on_death)
    prctl(PR_SET_PDEATHSIG, signal.SIGUSR1)
    if os.getppid() != parent:
        return PARENT_GONE
    own_pid = os.getpid()
    known: dict[int, psutil.Process] = {}
    try:
        while True:
            seen = {process.pid: process for process in _below(parent) if process.pid != own_pid and _is_live(process)}
            if os.getppid() != parent:  # died during the scan: keep what the last full scan saw too
                known.update(seen)
                break
            known = seen
            time.sleep(interval)
    except _ParentGone:
        pass
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)

    def running() -> list[psutil.Process]:
        return [process for process in known.values() if _is_live(process)]

    for stop_signal, wait_s in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
        for process in running():
            try:
                process.send_signal(stop_signal)  # refused (NoSuchProcess) when the pid was reused
            except psutil.Error:
                pass
        deadline = time.monotonic() + wait_s
        while running() and time.monotonic() < deadline:
            time.sleep(0.1)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tether", description=__doc__.split("\n\n")[0])
    parser.add_argument("--parent", type=int, required=True, help="pid of the launcher this command ends with")
    parser.add_argument("--stop-signal", default="TERM", help="signal that asks CMD to stop (default TERM)")
    parser.add_argument("--grace", type=float, default=10.0, help="seconds CMD gets to stop before SIGKILL")
    parser.add_argument(
        "--remove-if-orphaned",
        metavar="DIR",
        default=None,
        help="a folder of CMD's (a throw-away database) to delete when the launcher died",
    )
    parser.add_argument(
        "--watch", action="store_true", help="no CMD: end the processes found below the launcher when it dies (watch())"
    )
    parser.add_argument("cmd", nargs=argparse.REMAINDER, help="-- CMD ARGS...")
    args = parser.parse_args(argv)
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if args.watch:
        if cmd:
            parser.error("--watch takes no command")
        return watch(args.parent, args.grace)
    if not cmd:
        parser.error("no command after --")
    stop_signal = getattr(signal, "SIG" + args.stop_signal.upper().removeprefix("SIG"), None)
    if not isinstance(stop_signal, int):
        parser.error(f"--stop-signal {args.stop_signal!r}: not a signal name (TERM, INT, ...)")
    return run(args.parent, cmd, int(stop_signal), args.grace, args.remove_if_orphaned)


def _script() -> list[str]:
    """The start of every argv that runs this module as a script."""
    return [sys.executable, "-I", str(Path(__file__).resolve())]


def _mark_self() -> None:
    """Carry MARKER in this process's own environment (see MARKER): once, start this script
    again in this process with the variable set to its pid. exec keeps the pid, the parent,
    the process group and the open descriptors; the death signal is armed after it."""
    own_pid = str(os.getpid())
    if os.environ.get(MARKER) == own_pid:
        return
    os.environ[MARKER] = own_pid  # what it starts is marked even if exec fails
    try:
        os.execve(sys.executable, [*_script(), *sys.argv[1:]], dict(os.environ))
    except OSError:
        pass  # unmarked itself: only its processes are recognised


def tethered(
    cmd: list[str],
    stop_signal: str = "TERM",
    grace: float = 10.0,
    parent: int | None = None,
    remove_if_orphaned: str | os.PathLike[str] | None = None,
) -> list[str]:
    """The argv that runs `cmd` under a tether to `parent` (default: this process)."""
    extra = ["--remove-if-orphaned", str(remove_if_orphaned)] if remove_if_orphaned else []
    return [
        *_script(),
        "--parent",
        str(parent or os.getpid()),
        "--stop-signal",
        stop_signal,
        "--grace",
        f"{grace:g}",
        *extra,
        "--",
        *cmd,
    ]


def watcher(grace: float = 2.0, parent: int | None = None) -> list[str]:
    """The argv of a watcher (watch()) for `parent` (default: this process)."""
    return [*_script(), "--parent", str(parent or os.getpid()), "--watch", "--grace", f"{grace:g}"]


if __name__ == "__main__":
    _mark_self()
    sys.exit(main())
