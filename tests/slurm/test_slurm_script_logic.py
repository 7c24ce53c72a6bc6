"""The batch script's own logic run by bash with stand-ins for Slurm's commands and for the
Python steps: the warning stops the driver and requeues, up to the cap; a finished sweep is
not requeued, nor a failed one; a warning before the driver starts requeues without it."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from orchestration.slurm.options import JobSpec, SlurmOptions
from orchestration.slurm.script import render_script

FAKE_PYTHON = r"""#!/bin/bash
# stands for "$PYTHON -m orchestration.slurm.job COMMAND ..."
shift 2
echo "$*" >> "$FAKE_LOG"
case "$1" in
  node) echo $$ >> "$FAKE_DIR/steps"; trap 'exit 0' TERM; while :; do sleep 0.1; done ;;
  head-address) echo 127.0.0.1:20000 ;;
  wait-nodes) while [ -n "${FAKE_HOLD_JOIN:-}" ] && [ ! -f "$FAKE_DIR/joined" ]; do sleep 0.05; done; exit 0 ;;
  why-ended) echo "$FAKE_WHY" ;;
  drive)
    echo $$ > "$FAKE_DIR/driver"
    trap 'echo "driver: USR1" >> "$FAKE_LOG"; exit 3' USR1
    trap 'echo "driver: TERM" >> "$FAKE_LOG"; exit 3' TERM
    for _ in $(seq 600); do
      [ "$FAKE_DRIVE" = finish ] && [ -f "$FAKE_DIR/go" ] && exit 0
      [ "$FAKE_DRIVE" = fail ] && exit 1
      sleep 0.1
    done
    exit 9 ;;
esac
exit 0
"""
FAKES = {
    "srun": '#!/bin/bash\nwhile [[ "$1" == -* ]]; do shift; done\nexec "$@"\n',
    "scontrol": '#!/bin/bash\necho "scontrol $*" >> "$FAKE_LOG"\n[ "$1" = show ] && printf "n1\\nn2\\n"\nexit 0\n',
    "scancel": '#!/bin/bash\necho "scancel $*" >> "$FAKE_LOG"\nfor pid in $(cat "$FAKE_DIR/steps" 2>/dev/null); do '
    'kill -TERM "$pid" 2>/dev/null; done\nexit 0\n',
}


@pytest.fixture
def run_script(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in {**FAKES, "python": FAKE_PYTHON}.items():
        (bin_dir / name).write_text(body)
        (bin_dir / name).chmod(0o755)
    job = JobSpec(
        sweep="smoke",
        spec_path="/s/smoke.yaml",
        storage=str(tmp_path / "storage"),
        tracking_uri="sqlite:////x/mlflow.db",
        runs_dir=str(tmp_path / "runs"),
        python=str(bin_dir / "python"),
        workdir=str(tmp_path),
    )
    script = tmp_path / "job.sbatch"
    script.write_text(render_script(job, SlurmOptions(nodes=2, time="1:00:00", max_requeues=2)))
    log = tmp_path / "log"

    def run(
        restart: int,
        drive: str,
        warn_after: str | None = None,
        hold_join: bool = False,
        terminate: str | None = None,
    ) -> tuple[int, list[str]]:
        env = dict(
            os.environ,
            PATH=f"{bin_dir}:/usr/bin:/bin",
            FAKE_LOG=str(log),
            FAKE_DIR=str(tmp_path),
            FAKE_DRIVE=drive,
            SLURM_JOB_ID="7",
            SLURM_RESTART_COUNT=str(restart),
            SLURMD_NODENAME="n1",
            SLURM_JOB_NODELIST="n[1-2]",
            SLURM_JOB_NUM_NODES="2",
            TMPDIR=str(tmp_path),
            FAKE_HOLD_JOIN="1" if hold_join else "",
            FAKE_WHY=terminate or "",
        )
        log.write_text("")
        (tmp_path / "driver").unlink(missing_ok=True)
        (tmp_path / "steps").unlink(missing_ok=True)
        (tmp_path / "joined").unlink(missing_ok=True)
        # output to a file: a pipe would also wait for the background forwarder's sleep
        with open(tmp_path / "out", "wb") as out:
            shell = subprocess.Popen(["bash", str(script)], env=env, stdout=out, stderr=subprocess.STDOUT)
        if warn_after is not None:
            deadline = time.monotonic() + 20
            while warn_after not in log.read_text():
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.05)
            if terminate:  # Slurm's SIGTERM goes to every process of the job
                shell.send_signal(signal.SIGTERM)
                os.kill(int((tmp_path / "driver").read_text()), signal.SIGTERM)
            else:
                shell.send_signal(signal.SIGUSR1)  # what --signal=B:USR1@LEAD sends
        (tmp_path / "joined").write_text("")
        if drive == "finish":
            (tmp_path / "go").write_text("")
        shell.wait(timeout=60)
        lines = log.read_text().splitlines()
        return shell.returncode, [line for line in lines if line.split()[:1] in (["record"], ["scontrol"], ["driver:"])]

    return run


def test_warned_driver_is_stopped_and_the_job_requeued(run_script):
    code, log = run_script(restart=0, drive="wait", warn_after="drive smoke")
    assert code == 3
    assert "driver: USR1" in log
    assert any(line.startswith("record") and " requeued " in line for line in log)
    assert log[-1] == "scontrol requeue 7"


def test_no_requeue_past_the_cap(run_script):
    code, log = run_script(restart=2, drive="wait", warn_after="drive smoke")
    assert code == 3
    assert not any("requeue 7" in line for line in log)
    assert "requeued 2 times: the limit" in log[-1]


def test_a_finished_sweep_is_not_requeued(run_script):
    code, log = run_script(restart=1, drive="finish")
    assert code == 0
    assert log[-1].startswith("record") and " finished " in log[-1]
    assert not any("requeue 7" in line for line in log)


def test_a_failed_sweep_is_not_requeued(run_script):
    code, log = run_script(restart=0, drive="fail")
    assert code == 1
    assert "exited with 1" in log[-1] and not any("requeue 7" in line for line in log)


def test_warned_before_the_driver_starts(run_script):
    code, log = run_script(restart=0, drive="wait", warn_after="wait-nodes", hold_join=True)
    assert code == 3
    assert not any(line.startswith("driver") for line in log)
    assert log[-1] == "scontrol requeue 7"


def test_time_limit_without_warning_requeues_at_once(run_script):
    code, log = run_script(restart=0, drive="wait", warn_after="drive smoke", terminate="time limit")
    assert code == 3
    assert any(" requeued " in line and "time limit" in line for line in log)
    assert "scontrol requeue 7" in log


def test_cancelled_is_not_requeued(run_script):
    code, log = run_script(restart=0, drive="wait", warn_after="drive smoke", terminate="cancelled")
    assert code == 3
    assert any(" stopped " in line and "cancelled" in line for line in log)
    assert not any("requeue 7" in line for line in log)
