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

Standard library only, and run as a script with `python -I` (not `-m`), so it starts
without importing this package and whatever the interpreter's working directory holds.
Linux gets both prctl calls; elsewhere only the getppid() poll and the process group.
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

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
PARENT_GONE = 111  # exit status when the launcher died before the tether was armed
POLL_S = 0.25


def prctl(option: int, arg: int) -> bool:
    """One prctl(2) call; False where there is no prctl (not Linux) or it failed."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(option, arg, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def _parents() -> dict[int, int]:
    """pid -> parent pid of every process visible in /proc."""
    out: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat(int(entry))
        if fields:
            out[int(entry)] = int(fields[1])
    return out


def _stat(pid: int) -> list[str]:
    """/proc/PID/stat from field 3 on (state, ppid, ...); [] when gone or unreadable."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        # the command name (field 2) may hold spaces and parentheses: split after the last ')'
        return stat[stat.rindex(")") + 2 :].split()
    except (OSError, ValueError):  # gone meanwhile, or read while it exited
        return []


def _children(pid: int) -> list[int] | None:
    """Children of `pid` from /proc/PID/task/*/children (reads only that process's files);
    None where the kernel has no such files (then the whole /proc is scanned)."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return [] if os.path.isdir("/proc/self/task") else None
    out: list[int] = []
    for tid in tasks:
        try:
            out += [int(c) for c in Path(f"/proc/{pid}/task/{tid}/children").read_text().split()]
        except FileNotFoundError:
            if not Path(f"/proc/{pid}/task/{tid}").exists():
                continue  # the thread ended meanwhile
            return None  # no CONFIG_PROC_CHILDREN
        except (OSError, ValueError):
            continue
    return out


def descendants(pid: int) -> list[int]:
    """Every live process below `pid` (children first). Linux /proc; [] elsewhere.

    Walks the tree through each process's own children files rather than scanning all of
    /proc: it touches no other job's processes (on a loaded machine a watcher scanning all
    of /proc was seen to stall for a minute, cause not pinned down) and costs less."""
    if not os.path.isdir("/proc"):
        return []
    found: list[int] = []
    todo = [pid]
    while todo:
        kids = _children(todo.pop(0))
        if kids is None:
            return _descendants_by_scan(pid)
        found += kids
        todo += kids
    return found


def _descendants_by_scan(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for p, pp in _parents().items():
        children.setdefault(pp, []).append(p)
    found, todo = [], list(children.get(pid, []))
    while todo:
        p = todo.pop(0)
        found.append(p)
        todo.extend(children.get(p, []))
    return found


def _reap(keep: int | None = None) -> None:
    """Collect exited children other than `keep` (as a subreaper, re-parented orphans are
    ours to wait for; `keep`, the command, is left to Popen.wait so its status is not lost)."""
    me = os.getpid()
    kids = _children(me)
    if kids is None:
        kids = [p for p, pp in _parents().items() if pp == me]
    for p in kids:
        if p != keep:
            try:
                os.waitpid(p, os.WNOHANG)
            except ChildProcessError:
                pass


def _kill_all_below(pid: int, timeout: float = 10.0) -> None:
    """SIGKILL every process below `pid` until none is left (re-parented ones included)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = descendants(pid)
        if not left:
            return
        for p in left:
            try:
                os.kill(p, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
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

    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, on_stop)
    # The death signal also fires when only the launcher's *thread* that started us ends (the
    # launcher lives on): so it is a dedicated signal that only makes us look at getppid().
    signal.signal(signal.SIGUSR1, lambda signum, frame: os.getppid() != parent and asked.append(signum))
    prctl(PR_SET_PDEATHSIG, signal.SIGUSR1)
    if os.getppid() != parent:  # the launcher died before the death signal was armed
        return PARENT_GONE
    prctl(PR_SET_CHILD_SUBREAPER, 1)
    if asked:
        return 128 + asked[0]
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


def _start_time(pid: int) -> str | None:
    """The kernel's start time of `pid` (tells a reused pid apart); None when it is gone or
    a zombie (nothing left to end)."""
    fields = _stat(pid)
    return None if len(fields) < 20 or fields[0] in ("Z", "X") else fields[19]


class _ParentGone(Exception):
    pass


def watch(parent: int, grace: float, interval: float = 1.0) -> int:
    """--watch, no command: for a launcher whose processes are not ours to start (Ray
    starts its own). Every `interval` s, remember the processes below the launcher; when it
    dies, SIGTERM those still running (the same start time: not a reused pid), and SIGKILL
    them after `grace` s. SIGTERM to the watcher: the launcher ended them itself; leave."""

    def on_death(signum: int, frame: object) -> None:
        if os.getppid() != parent:
            raise _ParentGone

    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    signal.signal(signal.SIGUSR1, on_death)
    prctl(PR_SET_PDEATHSIG, signal.SIGUSR1)
    if os.getppid() != parent:
        return PARENT_GONE
    me = os.getpid()
    known: dict[int, str] = {}
    try:
        while True:
            seen = {p: t for p in descendants(parent) if p != me and (t := _start_time(p))}
            if os.getppid() != parent:  # died during the scan: keep what the last full scan saw too
                known.update(seen)
                break
            known = seen
            time.sleep(interval)
    except _ParentGone:
        pass
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)

    def running() -> list[int]:
        return [p for p, t in known.items() if _start_time(p) == t]

    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
        for p in running():
            try:
                os.kill(p, sig)
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.monotonic() + wait
        while running() and time.monotonic() < deadline:
            time.sleep(0.1)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="tether", description=__doc__.split("\n\n")[0])
    ap.add_argument("--parent", type=int, required=True, help="pid of the launcher this command ends with")
    ap.add_argument("--stop-signal", default="TERM", help="signal that asks CMD to stop (default TERM)")
    ap.add_argument("--grace", type=float, default=10.0, help="seconds CMD gets to stop before SIGKILL")
    ap.add_argument(
        "--remove-if-orphaned",
        metavar="DIR",
        default=None,
        help="a folder of CMD's (a throw-away database) to delete when the launcher died",
    )
    ap.add_argument(
        "--watch", action="store_true", help="no CMD: end the processes found below the launcher when it dies (watch())"
    )
    ap.add_argument("cmd", nargs=argparse.REMAINDER, help="-- CMD ARGS...")
    args = ap.parse_args(argv)
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if args.watch:
        if cmd:
            ap.error("--watch takes no command")
        return watch(args.parent, args.grace)
    if not cmd:
        ap.error("no command after --")
    sig = getattr(signal, "SIG" + args.stop_signal.upper().removeprefix("SIG"), None)
    if not isinstance(sig, int):
        ap.error(f"--stop-signal {args.stop_signal!r}: not a signal name (TERM, INT, ...)")
    return run(args.parent, cmd, int(sig), args.grace, args.remove_if_orphaned)


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
        sys.executable,
        "-I",
        str(Path(__file__).resolve()),
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
    return [
        sys.executable,
        "-I",
        str(Path(__file__).resolve()),
        "--parent",
        str(parent or os.getpid()),
        "--watch",
        "--grace",
        f"{grace:g}",
    ]


if __name__ == "__main__":
    sys.exit(main())
