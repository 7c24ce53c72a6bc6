"""Servers end with the process that launched them, and a busy port is refused up front.

- The tether (process_tether/tether.py): a command, and whatever it spawns or daemonizes,
  ends when the launcher is SIGKILLed; a launcher that died before the tether was armed
  starts nothing; its watcher ends what it saw below a killed launcher. A tether is
  recognised by the marker in its environment, not by a command line naming tether.py.
- `compact-reid server` and `local_postgres()` SIGKILLed: every process they started is
  gone a few seconds later and the port is free again.
- A port in use (by a plain process, or by a live `compact-reid server`): refused before
  anything is launched, naming the port, the pid and the command; /health answered by a
  process that is not ours is refused too.
- Bad input: --port out of range, a --host that is not this machine's, a store URI of an
  unknown scheme; each names its flag, and nothing is created.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from processes import tethers, wait_gone

import process_tether.tether
from mlflow_server.ports import describe, listeners
from mlflow_server.server import ServerError, ServerHandle, _check_answered_by, find_free_port, start_server
from orchestration.cli import main
from process_tether import PARENT_GONE, descendants, is_tether, tether_of, tethered

REPO = Path(__file__).resolve().parents[2]
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return not listeners(port)


def _wait_line(proc: subprocess.Popen, log: Path, text: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = log.read_text(errors="replace") if log.exists() else ""
        for line in out.splitlines():
            if text in line:
                return line
        assert proc.poll() is None, f"exited with {proc.returncode}:\n{out[-3000:]}"
        time.sleep(0.2)
    raise AssertionError(f"no {text!r} within {timeout}s:\n{log.read_text(errors='replace')[-3000:]}")


def _launcher(code: str, log: Path) -> subprocess.Popen:
    with open(log, "wb") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-c", code],
            cwd=REPO,
            env=ENV,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


@pytest.fixture
def holder():
    """A plain process listening on a free loopback port: (port, process)."""
    port = find_free_port()
    code = (
        f"import socket, time; s = socket.socket(); s.bind(('127.0.0.1', {port})); s.listen(); "
        "print('LISTENING', flush=True); time.sleep(120)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "LISTENING"
    yield port, proc
    proc.kill()
    proc.wait(10)


# --------------------------------------------------------------------------------------
# The tether


def test_tether_ends_daemonized_grandchildren_with_a_killed_launcher(tmp_path: Path) -> None:
    """The launcher is SIGKILLed; the command had a child that left its session (setsid)
    and whose parent then exited: it was re-parented to the tether, which ends it too."""
    cmd = ["sh", "-c", "setsid sh -c 'sleep 300 & echo $! > escaped.pid' & sleep 300"]
    code = (
        "import subprocess, time; from process_tether import tethered; "
        f"p = subprocess.Popen(tethered({cmd!r}), cwd={str(tmp_path)!r}); "
        "print('TETHER', p.pid, flush=True); time.sleep(300)"
    )
    log = tmp_path / "launcher.log"
    launcher = _launcher(code, log)
    try:
        tether = int(_wait_line(launcher, log, "TETHER", 60).split()[1])
        deadline = time.monotonic() + 30
        while not (tmp_path / "escaped.pid").exists() or not (tmp_path / "escaped.pid").read_text().strip():
            assert time.monotonic() < deadline
            time.sleep(0.1)
        escaped = psutil.Process(int((tmp_path / "escaped.pid").read_text()))
        assert os.getsid(escaped.pid) != os.getsid(tether)  # it left the tether's session...
        deadline = time.monotonic() + 30
        while escaped.ppid() != tether:  # ...lost its parent, and came to the tether (the subreaper)
            assert time.monotonic() < deadline, escaped.ppid()
            time.sleep(0.1)
        tree = [psutil.Process(tether), *psutil.Process(tether).children(recursive=True), escaped]
        os.kill(launcher.pid, signal.SIGKILL)
        launcher.wait(10)
        left, waited = wait_gone(tree)
        assert left == [], [p.cmdline() for p in left]
        print(f"tether: {len(tree)} processes, alive {waited:.1f}s after SIGKILL: {len(left)}")
    finally:
        if launcher.poll() is None:
            launcher.kill()


def test_tether_starts_nothing_when_the_launcher_is_already_gone(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    # --parent names a process that is not the tether's parent: as if the launcher had died
    # between fork and the tether arming its death signal.
    argv = tethered(["touch", str(marker)], parent=os.getpid() + 1_000_000)
    result = subprocess.run(argv, capture_output=True, timeout=60)
    assert result.returncode == PARENT_GONE and not marker.exists()
    result = subprocess.run(tethered(["touch", str(marker)], parent=os.getpid()), capture_output=True, timeout=60)
    assert result.returncode == 0 and marker.exists()  # the same command with the right parent runs


def test_watcher_ends_what_it_saw_below_a_killed_launcher(tmp_path: Path) -> None:
    """--watch: the launcher starts processes of its own (one leaves the launcher's session,
    as Ray's do); SIGKILLed, the watcher ends them all, and itself."""
    code = (
        "import subprocess, time; from process_tether import watcher; "
        "watching = subprocess.Popen(watcher(grace=1), start_new_session=True); "
        "child = subprocess.Popen(['sleep', '300']); "
        "escaped = subprocess.Popen(['sh', '-c', 'sleep 300 & wait'], start_new_session=True); "
        "print('WATCHER', watching.pid, flush=True); time.sleep(300)"
    )
    log = tmp_path / "launcher.log"
    launcher = _launcher(code, log)
    try:
        watching = int(_wait_line(launcher, log, "WATCHER", 60).split()[1])
        deadline = time.monotonic() + 30
        while len(descendants(launcher.pid)) < 4:  # watcher, sleep, sh and its sleep
            assert time.monotonic() < deadline, descendants(launcher.pid)
            time.sleep(0.1)
        time.sleep(1.5)  # the watcher looks every second
        tree = psutil.Process(launcher.pid).children(recursive=True)
        assert is_tether(watching) and [p.pid for p in tethers(tree)] == [watching]
        os.kill(launcher.pid, signal.SIGKILL)
        launcher.wait(10)
        left, waited = wait_gone(tree)
        assert left == [], [p.cmdline() for p in left]
        print(f"watcher: {len(tree)} processes, alive {waited:.1f}s after SIGKILL: {len(left)}")
    finally:
        if launcher.poll() is None:
            launcher.kill()


_LISTEN = (
    "import socket, time; sock = socket.socket(); sock.bind(('127.0.0.1', 0)); sock.listen(); "
    "print('PORT', sock.getsockname()[1], flush=True); time.sleep(120)"
)


def _listening(argv: list[str]) -> tuple[subprocess.Popen, int]:
    """Start `argv` (one that runs _LISTEN) in a session of its own; (process, its port)."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, start_new_session=True)
    assert proc.stdout is not None
    line = proc.stdout.readline().split()
    assert line[:1] == ["PORT"], line
    return proc, int(line[1])


def test_tether_recognised_by_its_marker_not_by_a_command_line(monkeypatch) -> None:
    """A real tether and the process it runs carry the marker; a plain process whose command
    line names the tether's script does not. Only the real one is named as a tether when
    its port is busy; an unreadable environment (AccessDenied) only loses that detail."""
    script = str(Path(process_tether.tether.__file__).resolve())
    real, real_port = _listening(tethered([sys.executable, "-c", _LISTEN]))
    impostor, impostor_port = _listening([sys.executable, "-c", _LISTEN, script, "--parent", str(os.getpid())])
    try:
        server = descendants(real.pid)[0]
        assert is_tether(real.pid) and tether_of(real.pid) == real.pid
        assert tether_of(server) == real.pid and not is_tether(server)  # below a tether, not one itself
        text, pid, group = describe(listeners(real_port))
        assert f"pid {server} (" in text and f"under its tether, pid {real.pid}, started by pid {os.getpid()}" in text
        assert pid == group == real.pid, text  # the tether leads the group to stop

        assert script in " ".join(psutil.Process(impostor.pid).cmdline())  # the old test would have matched it
        assert not is_tether(impostor.pid) and tether_of(impostor.pid) is None
        text, pid, group = describe(listeners(impostor_port))
        assert f"pid {impostor.pid} (" in text and "tether" not in text.replace(script, ""), text
        assert pid == impostor.pid and group is None, text  # not a group to name for killing

        assert tether_of(1) is None  # init: no marker, or its environment is not ours to read

        def denied(process: psutil.Process) -> dict[str, str]:
            raise psutil.AccessDenied(process.pid)

        with monkeypatch.context() as patched:
            patched.setattr(psutil.Process, "environ", denied)
            assert not is_tether(real.pid) and tether_of(server) is None
            text, pid, group = describe(listeners(real_port))
            assert "under its tether" not in text and pid == server and group is None, text  # names the listener
    finally:
        for proc in (real, impostor):
            proc.terminate()
            proc.wait(30)


# --------------------------------------------------------------------------------------
# Busy port, foreign answers, bad input (nothing is launched: fast)


def test_busy_port_refused_naming_pid_and_command(holder, tmp_path: Path, capsys) -> None:
    port, proc = holder
    with pytest.raises(ServerError) as excinfo:
        start_server(port=port, runs_dir=tmp_path / "api")
    msg = str(excinfo.value)
    assert f"--port {port}: already in use on 127.0.0.1 by pid {proc.pid}" in msg, msg
    assert "s.bind(('127.0.0.1'" in msg and "Nothing was started" in msg and f"kill {proc.pid}" in msg, msg
    assert main(["server", "--port", str(port), "--runs-dir", str(tmp_path / "cli")]) == 2
    err = capsys.readouterr().err
    assert f"--port {port}: already in use" in err and f"pid {proc.pid}" in err, err
    assert not (tmp_path / "api").exists() and not (tmp_path / "cli").exists()  # no log, no store


def test_local_postgres_refuses_busy_port(holder) -> None:
    from mlflow_server.postgres import BackendStoreError, local_postgres

    port, proc = holder
    with (
        pytest.raises(BackendStoreError, match=rf"port {port}: already in use .* pid {proc.pid}.*leave port unset"),
        local_postgres(port=port),
    ):
        pass


def test_health_answered_by_another_process_is_refused(holder) -> None:
    """The check behind "server at URL": a listener outside the started tree is named."""
    port, proc = holder
    ours = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        handle = ServerHandle(ours, f"http://127.0.0.1:{port}", None, ["test"])
        with pytest.raises(ServerError, match=rf"answered by pid {proc.pid} .*not by the server started here"):
            _check_answered_by(handle, port)
    finally:
        ours.kill()
        ours.wait(10)


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--port", "-1"], "--port -1: must be 0 (any free port) or 1-65535"),
        (["--port", "65536"], "--port 65536: must be 0 (any free port) or 1-65535"),
        (["--host", "203.0.113.7"], "--host '203.0.113.7': not an address of this machine (its addresses: 127.0.0.1"),
        (
            ["--backend-store-uri", "foo://u:secret@x/db"],
            "--backend-store-uri 'foo://u:***@x/db': unknown scheme 'foo'",
        ),
        (["--backend-store-uri", "mlruns"], "--backend-store-uri 'mlruns': not a URI"),
    ],
)
def test_bad_input_names_the_flag(argv: list[str], expected: str, tmp_path: Path, capsys) -> None:
    runs = tmp_path / "runs"
    assert main(["server", "--runs-dir", str(runs), *argv]) == 2
    err = capsys.readouterr().err
    assert expected in err and "secret" not in err, err
    assert not runs.exists()


# --------------------------------------------------------------------------------------
# The launchers, SIGKILLed


@pytest.mark.e2e
@pytest.mark.timeout(300)
def test_killed_cli_server_takes_its_processes_and_port(tmp_path: Path) -> None:
    port = find_free_port()
    log = tmp_path / "server.log"
    cmd = [
        sys.executable,
        "-m",
        "orchestration.cli",
        "server",
        "--port",
        str(port),
        "--workers",
        "2",
        "--runs-dir",
        str(tmp_path / "runs"),
    ]
    with open(log, "wb") as out:
        launcher = subprocess.Popen(
            cmd, cwd=REPO, env=ENV, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        line = _wait_line(launcher, log, "MLflow server at", 180)
        assert f"http://127.0.0.1:{port}" in line and f"pid {launcher.pid})" in line, line
        tree = psutil.Process(launcher.pid).children(recursive=True)
        names = " ".join(" ".join(p.cmdline()) for p in tree)
        assert len(tethers(tree)) == 1 and "mlflow server" in names and "uvicorn" in names, names
        assert len(tree) >= 5, names  # tether, mlflow server, uvicorn, 2 workers (+ MLflow's job runners)

        # A second start on the busy port: refused, naming the live server and its launcher.
        second = subprocess.run(
            [*cmd[:-1], str(tmp_path / "other")], cwd=REPO, env=ENV, capture_output=True, text=True, timeout=120
        )
        assert second.returncode == 2, second.stdout + second.stderr
        assert f"--port {port}: already in use on 127.0.0.1 by pid " in second.stderr, second.stderr
        assert "-m mlflow server" in second.stderr and f"started by pid {launcher.pid}" in second.stderr
        assert "MLflow server at" not in second.stdout and not (tmp_path / "other").exists()
        print("busy port:", second.stderr.strip())

        os.kill(launcher.pid, signal.SIGKILL)
        launcher.wait(10)
        left, waited = wait_gone(tree)
        assert left == [], [p.cmdline() for p in left]
        assert _port_free(port)
        print(
            f"compact-reid server: {len(tree)} processes started, {len(left)} alive {waited:.1f}s after "
            f"SIGKILL; port {port} free"
        )
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)


@pytest.mark.e2e
@pytest.mark.timeout(300)
def test_killed_local_postgres_takes_its_processes_and_port(tmp_path: Path) -> None:
    from mlflow_server.postgres import find_pg_bin

    if find_pg_bin() is None:
        pytest.skip("PostgreSQL server binaries not installed: apt-get install postgresql")
    code = (
        "import time\nfrom mlflow_server.postgres import local_postgres\n"
        "with local_postgres() as pg:\n"
        "    print('READY', pg.port, pg.process.pid, pg.root, flush=True)\n"
        "    time.sleep(300)\n"
    )
    log = tmp_path / "launcher.log"
    launcher = _launcher(code, log)
    try:
        _, port, tether, root = _wait_line(launcher, log, "READY", 180).split()
        tree = psutil.Process(launcher.pid).children(recursive=True)
        names = " ".join(" ".join(p.cmdline()) for p in tree)
        assert [p.pid for p in tethers(tree)] == [int(tether)], names
        assert "postgres -D" in names and "checkpointer" in names, names
        os.kill(launcher.pid, signal.SIGKILL)
        launcher.wait(10)
        left, waited = wait_gone(tree)
        assert left == [], [p.cmdline() for p in left]
        assert _port_free(int(port))
        deadline = time.monotonic() + 30
        while Path(root).exists() and time.monotonic() < deadline:  # the tether deletes it last
            time.sleep(0.1)
        assert not Path(root).exists()
        print(
            f"local_postgres: {len(tree)} processes started, {len(left)} alive {waited:.1f}s after SIGKILL; "
            f"port {port} free; {root} deleted"
        )
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)
