"""`compact-reid slurm submit` without a Slurm cluster: options, the signal lead, the batch
script (the 4 nodes x 8 GPUs dry run), and the refusals (no sbatch, a bad spec, Slurm's own
refusal through a stand-in sbatch)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from orchestration.cli import main
from orchestration.slurm.errors import SlurmError
from orchestration.slurm.options import JobSpec, SlurmOptions
from orchestration.slurm.script import render_script
from orchestration.slurm.timespec import check_lead, default_lead, format_seconds, parse_time

REPO = Path(__file__).resolve().parents[2]
SMOKE = REPO / "sweeps" / "smoke.yaml"


@pytest.mark.parametrize(
    "text, seconds",
    [
        ("30", 1800),
        ("90:30", 5430),
        ("4:00:00", 14400),
        ("2-0", 172800),
        ("1-12:30", 131400),
        ("1-00:00:00", 86400),
    ],
)
def test_slurm_time_formats(text, seconds):
    assert parse_time(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "1:2:3:4", "0", "infinite", "-5"])
def test_bad_time_is_refused(text):
    with pytest.raises(SlurmError, match="--time"):
        parse_time(text)


def test_default_lead_is_the_smaller_of_300_s_and_a_quarter_of_the_limit():
    assert default_lead(parse_time("4:00:00")) == 300
    assert default_lead(parse_time("20")) == 300  # 1200 s / 4 = 300
    assert default_lead(parse_time("10")) == 150
    assert default_lead(parse_time("2")) == 30
    assert default_lead(None) == 300  # the partition's limit, unknown here
    assert SlurmOptions(time="10").lead_s == 150
    assert SlurmOptions(time="10", signal_lead=60).lead_s == 60
    assert format_seconds(131400) == "1-12:30:00"


def test_lead_longer_than_the_limit_is_refused():
    with pytest.raises(SlurmError, match="shorter than --time"):
        check_lead(600, 600)
    with pytest.raises(SlurmError, match="at most 65535"):
        SlurmOptions(signal_lead=70000)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"nodes": 0}, "--nodes"),
        ({"gpus_per_node": -1}, "--gpus-per-node"),
        ({"cpus_per_node": 0}, "--cpus-per-node"),
        ({"max_requeues": -1}, "--max-requeues"),
        ({"partition": "gpu;rm"}, "--partition"),
        ({"sbatch_args": ("--time=10",)}, "use --time"),
        ({"sbatch_args": ("-N3",)}, "use --nodes"),
        ({"sbatch_args": ("--signal=B:USR1@5",)}, "use --signal-lead"),
        ({"sbatch_args": ("--output=x",)}, "sweep folder"),
        ({"sbatch_args": ("64G",)}, "an sbatch option"),
    ],
)
def test_bad_options_are_refused(kwargs, message):
    with pytest.raises(SlurmError, match=message):
        SlurmOptions(**kwargs)


def _job(tmp_path: Path, **kwargs) -> JobSpec:
    values = dict(
        sweep="smoke",
        spec_path=str(SMOKE),
        storage="s3://reid-sweeps/paper",
        tracking_uri="http://mlflow.internal:5000",
        runs_dir=str(tmp_path / "runs"),
        sweep_args=("--gpus-per-trial", "1"),
        python="/opt/reid/.venv/bin/python",
        workdir=str(tmp_path),
    )
    values.update(kwargs)
    return JobSpec(**values)


def test_the_script_for_4_nodes_of_8_gpus(tmp_path):
    options = SlurmOptions(nodes=4, gpus_per_node=8, partition="gpu", time="1-00:00:00", account="vision")
    text = render_script(_job(tmp_path), options)
    directives = [line for line in text.splitlines() if line.startswith("#SBATCH")]
    assert directives == [
        "#SBATCH --job-name=reid-smoke",
        "#SBATCH --nodes=4",
        "#SBATCH --ntasks-per-node=1",
        "#SBATCH --gpus-per-node=8",
        "#SBATCH --exclusive",
        "#SBATCH --partition=gpu",
        "#SBATCH --account=vision",
        "#SBATCH --time=1-00:00:00",
        "#SBATCH --signal=B:USR1@300",
        "#SBATCH --requeue",
        "#SBATCH --open-mode=append",
        f"#SBATCH --output={tmp_path}/runs/smoke/slurm/slurm-%j.out",
        f"#SBATCH --chdir={tmp_path}",
    ]
    assert "GPUS_PER_NODE=8\n" in text and "MAX_REQUEUES=10\n" in text
    assert "SWEEP_OPTIONS=(--gpus-per-trial 1)" in text
    assert "srun --overlap --whole" in text  # steps share the node's CPUs with the batch shell
    assert 'scontrol requeue "$SLURM_JOB_ID"' in text
    assert "sleep 10" in text and "sleep 30" not in text  # no fixed wait for nodes
    syntax = subprocess.run(["bash", "-n"], input=text, capture_output=True, text=True)
    assert syntax.returncode == 0, syntax.stderr


def test_cpus_per_node_and_extra_sbatch_args(tmp_path):
    options = SlurmOptions(nodes=2, cpus_per_node=16, sbatch_args=("--mem=64G", "--constraint=a100"))
    text = render_script(_job(tmp_path), options)
    assert "#SBATCH --cpus-per-task=16" in text and "--exclusive" not in text
    assert "#SBATCH --signal=B:USR1@300" in text  # no --time: the partition's limit, 300 s
    assert text.index("#SBATCH --mem=64G") > text.index("#SBATCH --chdir")
    assert "CPUS_PER_NODE=16" in text


def test_dry_run_prints_the_script_and_writes_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))  # no sbatch: --dry-run does not need it
    code = main(
        ["slurm", "submit", str(SMOKE), "--nodes", "4", "--gpus-per-node", "8", "--time", "12:00:00", "--dry-run"]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith("#!/bin/bash") and "#SBATCH --nodes=4" in out and "#SBATCH --signal=B:USR1@300" in out
    assert f"STORAGE={tmp_path}/runs/storage" in out
    assert not (tmp_path / "runs").exists()


def test_no_sbatch_is_a_clear_refusal_with_nothing_written(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))
    assert main(["slurm", "submit", str(SMOKE), "--nodes", "2"]) == 2
    err = capsys.readouterr().err
    assert "sbatch is not installed here" in err and "Nothing was written" in err
    assert list(tmp_path.iterdir()) == []


def _fake_slurm(folder: Path, sbatch: str) -> Path:
    """Stand-ins for sbatch (its body given) and scontrol (one partition of 2 nodes)."""
    folder.mkdir()
    (folder / "sbatch").write_text("#!/bin/sh\n" + sbatch)
    (folder / "scontrol").write_text(
        "#!/bin/sh\n"
        'if [ "$2" = partition ]; then echo "PartitionName=debug Default=YES TotalNodes=2 State=UP"; exit 0; fi\n'
        "exit 1\n"
    )
    for path in folder.iterdir():
        path.chmod(0o755)
    return folder


def test_a_spec_that_fails_validation_is_refused_before_submit(tmp_path, capsys, monkeypatch):
    bin_dir = _fake_slurm(tmp_path / "bin", f"echo called > {tmp_path}/sbatch-called\necho 1\n")
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "bad.yaml"
    bad.write_text(SMOKE.read_text().replace("seeds: [0, 1]", "seeds: [0, 1]\nmax_concurent: 2"))
    assert main(["slurm", "submit", str(bad), "--nodes", "2"]) == 2
    assert "max_concurent" in capsys.readouterr().err
    assert not (tmp_path / "sbatch-called").exists() and not (tmp_path / "runs").exists()


def test_slurms_refusal_is_shown_with_the_partition(tmp_path, capsys, monkeypatch):
    sbatch = 'echo "sbatch: error: Batch job submission failed: Node count specification invalid" >&2\nexit 1\n'
    monkeypatch.setenv("PATH", str(_fake_slurm(tmp_path / "bin", sbatch)))
    monkeypatch.chdir(tmp_path)
    assert main(["slurm", "submit", str(SMOKE), "--nodes", "3"]) == 2
    err = capsys.readouterr().err
    assert "Slurm refused the job (sbatch: error: Batch job submission failed: Node count specification" in err
    assert "3 node(s) in partition debug (the default), which has 2 node(s)" in err
    assert not (tmp_path / "runs" / "smoke" / "slurm" / "job.sbatch").exists()


def test_submit_writes_the_script_and_records_the_job(tmp_path, capsys, monkeypatch):
    bin_dir = _fake_slurm(tmp_path / "bin", f'echo "$@" > {tmp_path}/args\necho 42\n')
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.chdir(tmp_path)
    code = main(["slurm", "submit", str(SMOKE), "--nodes", "2", "--time", "2:00:00", "--max-requeues", "3"])
    out = capsys.readouterr().out
    assert code == 0
    script = tmp_path / "runs" / "smoke" / "slurm" / "job.sbatch"
    assert "submitted job 42" in out and str(script) in out and "slurm-42.out" in out
    assert (tmp_path / "args").read_text().split() == ["--parsable", str(script)]
    record = json.loads((tmp_path / "runs" / "storage" / "smoke" / "slurm.json").read_text())
    assert record["job_id"] == "42" and record["max_requeues"] == 3 and record["lead_s"] == 300
    assert record["state"] == "PENDING"
    assert main(["slurm", "status", "smoke"]) == 0
    line = capsys.readouterr().out
    assert line.startswith("slurm: job 42 PENDING (as recorded") and "requeued 0 of at most 3 times" in line
