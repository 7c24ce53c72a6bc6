"""Checks made before a server is launched: the port is a port, the host is this machine's,
nothing listens on the port yet; and after: the process answering is the one we started.

Who holds a port: /proc on Linux (every process sharing the listening socket: a server and
its workers), psutil elsewhere (a dependency of the project: MLflow's system metrics). A
server started by this project is recognised by its tether's marker (process_tether.is_tether).
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import psutil

from process_tether import is_tether

__all__ = ["Holder", "port_problem", "host_problem", "listeners", "describe", "busy_port_message", "foreign_listeners"]

_ANY = ("0.0.0.0", "::", "")


@dataclass(frozen=True)
class Holder:
    """A process listening on a TCP port (pid None: not visible to this user)."""

    pid: int | None
    address: str
    command: str


def port_problem(port: object, flag: str = "--port", allow_zero: bool = True) -> str | None:
    """Why `port` is not a TCP port to listen on, or None."""
    low = 0 if allow_zero else 1
    if isinstance(port, bool) or not isinstance(port, int) or not low <= port <= 65535:
        allowed = "0 (any free port) or 1-65535" if allow_zero else "1-65535"
        return f"{flag} {port!r}: must be {allowed}"
    return None


def _local_addresses() -> list[str]:
    out = []
    for addrs in psutil.net_if_addrs().values():
        out += [a.address.split("%")[0] for a in addrs if a.family in (socket.AF_INET, socket.AF_INET6)]
    return sorted(set(out), key=lambda a: (":" in a, a))


def host_problem(host: str, flag: str = "--host") -> str | None:
    """Why a server cannot listen on `host` (not resolvable, not an address of this
    machine), or None. Binds port 0 to find out: nothing is sent anywhere."""
    if host in _ANY:
        return None
    try:
        infos = socket.getaddrinfo(host, 0, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        return f"{flag} {host!r}: does not resolve ({error.strerror}); give an address of this machine"
    for family, _, _, _, addr in infos:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(addr)
                return None
            except OSError as error:
                if error.errno != errno.EADDRNOTAVAIL:
                    return f"{flag} {host!r}: cannot listen there ({error.strerror})"
    return (
        f"{flag} {host!r}: not an address of this machine (its addresses: {', '.join(_local_addresses())}); "
        "give 127.0.0.1 (this machine only), one of these, or 0.0.0.0 (every interface)"
    )


def _bind_fails(host: str, port: int) -> bool:
    """True when `host:port` cannot be bound the way uvicorn and PostgreSQL bind it
    (SO_REUSEADDR: connections in TIME_WAIT from a server just stopped do not count)."""
    try:
        infos = socket.getaddrinfo(host or "0.0.0.0", port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        return False  # host_problem reports it
    for family, _, _, _, addr in infos:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(addr)
            except OSError as error:
                if error.errno == errno.EADDRINUSE:
                    return True
    return False


def _command(pid: int | None, limit: int = 400) -> str:
    if pid is None:
        return ""
    try:
        argv = psutil.Process(pid).cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return ""
    text = " ".join(argv)  # for people to read, not to paste into a shell
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _ppid(pid: int | None) -> int | None:
    try:
        return psutil.Process(pid).ppid() if pid is not None else None
    except psutil.NoSuchProcess:
        return None


def _server_or_tether(pid: int) -> bool:
    """An MLflow server (by its command line) or a tether (by its marker: process_tether)."""
    return "mlflow" in _command(pid) or is_tether(pid)


def _addr(hexaddr: str) -> str:
    raw = bytes.fromhex(hexaddr)
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw[::-1])
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))  # four host-order words
    return socket.inet_ntop(socket.AF_INET6, words)


def _listen_inodes(port: int) -> dict[str, str]:
    """socket inode -> local address, of the TCP sockets listening on `port`."""
    out: dict[str, str] = {}
    for name in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/net/{name}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            hexaddr, hexport = fields[1].split(":")
            if fields[3] == "0A" and int(hexport, 16) == port:  # 0A: TCP_LISTEN
                out[fields[9]] = f"{_addr(hexaddr)}:{port}"
    return out


def listeners(port: int) -> list[Holder]:
    """Every process holding a listening TCP socket on `port`, any address (a socket shared
    by a server and its workers lists each of them; psutil names one process per socket)."""
    if not Path("/proc/net/tcp").exists():
        return [
            Holder(c.pid, f"{c.laddr.ip}:{port}", _command(c.pid))
            for c in psutil.net_connections("tcp")
            if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port
        ]
    wanted = {f"socket:[{inode}]": a for inode, a in _listen_inodes(port).items()}
    if not wanted:
        return []
    found: dict[int, Holder] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fds = os.listdir(f"/proc/{entry}/fd")
        except OSError:
            continue  # gone, or another user's
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{entry}/fd/{fd}")
            except OSError:
                continue
            if target in wanted:
                found[int(entry)] = Holder(int(entry), wanted[target], _command(int(entry)))
                break
    return list(found.values()) or [Holder(None, a, "") for a in sorted(set(wanted.values()))]


def describe(holders: list[Holder]) -> tuple[str, int | None, int | None]:
    """(who holds the port, the pid to stop, its process group when the whole group is that
    server's), naming the server rather than each of its workers."""
    if not holders or holders[0].pid is None:
        return "a process this user cannot see", None, None
    pids = {h.pid for h in holders}
    top = next((h.pid for h in holders if _ppid(h.pid) not in pids), holders[0].pid)
    assert top is not None
    # Climb to the leader of top's process group when it is an ancestor and an MLflow server
    # or a tether (the one to stop, with its whole group); any other group may be a shell's
    # job or a test runner, not to be named for killing.
    try:
        group: int | None = os.getpgid(top)
    except OSError:
        group = None
    leader = ancestor = top
    while group is not None and ancestor not in (0, 1):
        if ancestor == group:
            if ancestor != top and _server_or_tether(ancestor):
                leader = ancestor
            break
        ancestor = _ppid(ancestor) or 0
    if leader != group or not _server_or_tether(leader):
        group = None
    shown, command = leader, _command(leader)
    if is_tether(leader):  # a server started by this project: name the server itself
        try:
            children = psutil.Process(leader).children()
        except psutil.NoSuchProcess:
            children = []
        shown = children[0].pid if children else leader
        command = _command(shown)
        launcher = _ppid(leader)
        command += f"; under its tether, pid {leader}"
        if launcher not in (None, 0, 1):
            command += f", started by pid {launcher}: {_command(launcher)}"
    text = f"pid {shown} ({command})"
    if shown != top:
        text += f", listening through its pid {top}"
    others = len(pids - {top})
    if others:
        text += f" and {others} more process{'es' if others > 1 else ''} sharing the socket"
    return text, leader, group


def busy_port_message(host: str, port: int, flag: str = "--port", free_hint: str | None = None) -> str | None:
    """None when `host:port` is free; else what holds it and what to do (nothing started).
    `free_hint`: how to get a free port instead (default: `{flag} 0 picks a free one`)."""
    if not _bind_fails(host, port):
        return None
    holders = listeners(port)
    who, pid, group = describe(holders)
    hint = ""
    if _ppid(pid) == 1 and any("mlflow" in h.command or "uvicorn" in h.command for h in holders):
        hint = (
            " It looks like an MLflow server whose launcher is gone (killed before this version "
            "tied servers to their launcher); it may serve another store than the one asked for here."
        )
    if group is not None:
        stop = f"stop it (kill -- -{group}: its process group) or "
    elif pid is not None:
        stop = f"stop it (kill {pid}) or "
    else:
        stop = "stop it or "
    return (
        f"{flag} {port}: already in use on {host or '0.0.0.0'} by {who}.{hint} Nothing was started: "
        f"{stop}choose another port ({free_hint or flag + ' 0 picks a free one'})."
    )


def foreign_listeners(port: int, ours: Iterable[int]) -> tuple[list[Holder], bool]:
    """(listeners on `port` outside the process tree `ours`, whether one of `ours` listens)."""
    mine = set(ours)
    holders = listeners(port)
    return [h for h in holders if h.pid not in mine], any(h.pid in mine for h in holders)


def find_free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
