"""The job's steps without Slurm: ports and folders per job and node, one node's `ray start`,
GPUs and CPUs from the allocation, waiting for nodes, run or resume, and the status line."""

from __future__ import annotations

import json
import socket

import pytest

from orchestration.slurm import ports
from orchestration.slurm.driver import sweep_argv
from orchestration.slurm.errors import SlurmError
from orchestration.slurm.join import JoinError, joined, wait_for_nodes
from orchestration.slurm.node import NodeSetup, cpu_count, gpu_count, node_resource, object_store
from orchestration.slurm.record import add_event, read_record
from orchestration.slurm.status import format_line, parse_scontrol


def test_two_jobs_and_two_nodes_of_a_job_get_different_ports():
    blocks = {(job, index): ports.ports_at(ports.slot_of(job, index)) for job in (7, 8, 1234) for index in range(4)}
    used = [port for block in blocks.values() for port in block.values()]
    assert len(used) == len(set(used))  # no port twice among 3 jobs x 4 nodes
    assert all(ports.FIRST_PORT <= port < ports.FIRST_PORT + ports.SLOTS * ports.BLOCK for port in used)


def test_a_block_with_a_port_taken_is_skipped():
    first = ports.ports_at(ports.slot_of(5, 0))
    chosen, taken = ports.pick_ports(5, 0, is_free=lambda port: port != first["metrics"])
    assert taken == [first["metrics"]] and first["metrics"] not in chosen.values()
    assert chosen == ports.ports_at(ports.slot_of(5, 0) + ports.STRIDE)


def test_a_port_in_use_is_seen():
    with socket.socket() as sock:
        sock.bind(("0.0.0.0", 0))
        sock.listen()
        assert not ports.port_is_free(sock.getsockname()[1])


def test_ray_temp_folder_is_per_job_and_node_and_short():
    assert str(ports.temp_dir("/tmp/reid-ray-17", "n2", 17)) == "/tmp/reid-ray-17/n2"
    long = "/scratch/local/a-very-long-site-specific-folder/slurm-17-x"
    assert str(ports.temp_dir(long, "n2", 17)) == "/tmp/reid-ray-17/n2"


def _setup(**kwargs) -> NodeSetup:
    values = dict(
        job_id=17,
        node="n2",
        index=1,
        ip="10.0.0.2",
        cpus=16,
        gpus=0,
        temp=ports.temp_dir("/tmp/reid-ray-17", "n2", 17),
        ports=ports.ports_at(ports.slot_of(17, 1)),
    )
    values.update(kwargs)
    return NodeSetup(**values)


def test_ray_start_has_every_port_folder_and_resource_explicit():
    node = _setup(object_store_bytes=10**9)
    head = node.command(head=True)
    worker = node.command(head=False, address="10.0.0.1:20000")
    for cmd in (head, worker):
        flags = dict(zip(cmd[::1], cmd[1:]))
        assert flags["--num-cpus"] == "16" and flags["--num-gpus"] == "0"
        assert flags["--temp-dir"] == "/tmp/reid-ray-17/n2"
        assert flags["--dashboard-agent-listen-port"] == str(node.ports["agent_listen"])  # Ray's default is fixed
        assert flags["--min-worker-port"] == "0" and flags["--object-store-memory"] == str(10**9)
        assert json.loads(flags["--resources"]) == {"slurm_node_n2": 1}
    assert "--head" in head and dict(zip(head, head[1:]))["--port"] == str(node.ports["gcs"])
    assert "--head" not in worker and dict(zip(worker, worker[1:]))["--address"] == "10.0.0.1:20000"
    with pytest.raises(SlurmError, match="--address"):
        node.command(head=False)


def test_gpus_and_cpus_come_from_the_allocation():
    count, env = gpu_count(0, {"CUDA_VISIBLE_DEVICES": "0,1"})
    assert count == 0 and env["CUDA_VISIBLE_DEVICES"] == ""  # none asked: none used, whatever is visible
    assert gpu_count(2, {"CUDA_VISIBLE_DEVICES": "4,5"})[0] == 2
    said: list[str] = []
    assert gpu_count(4, {"CUDA_VISIBLE_DEVICES": "4,5"}, log=said.append)[0] == 2
    assert gpu_count(8, {}, log=said.append)[0] == 8
    assert "Slurm gave 2" in said[0] and "no CUDA_VISIBLE_DEVICES" in said[1]
    assert cpu_count("", {"SLURM_CPUS_ON_NODE": "48"}) == 48 and cpu_count("8", {"SLURM_CPUS_ON_NODE": "48"}) == 8
    assert object_store({"SLURM_MEM_PER_NODE": "1000"}) == int(1000 * 1024 * 1024 * 0.3)
    assert object_store({}) is None


def test_joined_nodes_are_named_by_their_resource():
    alive = [
        {"NodeID": "aaa", "Resources": {"CPU": 1.0, node_resource("n1"): 1.0}},
        {"NodeID": "bbb", "Resources": {"CPU": 1.0, node_resource("n-3"): 1.0}},
        {"NodeID": "ccc", "Resources": {"CPU": 1.0}},  # another cluster's node would not carry it
    ]
    assert joined(alive, ["n1", "n2", "n-3"]) == {"n1": "aaa", "n-3": "bbb"}


def test_waiting_for_nodes_names_the_missing_ones():
    alive = [{"NodeID": "aaa", "Resources": {node_resource("n1"): 1.0}}]
    with pytest.raises(JoinError, match=r"missing n2, n3 of n1, n2, n3") as refused:
        wait_for_nodes("x:1", ["n1", "n2", "n3"], timeout=0.2, alive_nodes=lambda: alive, log=lambda line: None)
    assert refused.value.missing == ["n2", "n3"]
    found = wait_for_nodes("x:1", ["n1"], timeout=5, alive_nodes=lambda: alive, log=lambda line: None)
    assert found == {"n1": "aaa"}


def test_a_step_that_ended_stops_the_wait_at_once():
    ended = 2**22 + 12345  # no such process
    with pytest.raises(JoinError, match="a Ray step ended"):
        wait_for_nodes("x:1", ["n1", "n2"], timeout=300, step_pids=[ended], alive_nodes=lambda: [], log=print)


def test_run_resume_or_start_over():
    common = ("smoke", "/s/smoke.yaml", "h:1", "/st", "http://t", "/runs", ["--gpus-per-trial", "1"])
    assert sweep_argv(*common, has_state=False, can_restore=False) == [
        "sweep",
        "run",
        "/s/smoke.yaml",
        "--address",
        "h:1",
        "--storage",
        "/st",
        "--runs-dir",
        "/runs",
        "--tracking-uri",
        "http://t",
        "--gpus-per-trial",
        "1",
    ]
    assert sweep_argv(*common, has_state=True, can_restore=True) == [
        "sweep",
        "resume",
        "smoke",
        "--address",
        "h:1",
        "--storage",
        "/st",
        "--runs-dir",
        "/runs",
    ]
    assert sweep_argv(*common, has_state=True, can_restore=False)[-1] == "--fresh"


def test_the_record_and_the_status_line(tmp_path):
    storage = str(tmp_path / "storage")
    add_event(storage, "smoke", "started", 0, "n1,n2", job_id="77", max_requeues=10, output="/r/slurm-77.out")
    add_event(storage, "smoke", "requeued", 0, "warned before the time limit")
    record = read_record(storage, "smoke")
    assert record["state"] == "REQUEUED" and [e["event"] for e in record["events"]] == ["started", "requeued"]
    recorded = format_line(record, None)
    assert recorded.startswith("slurm: job 77 REQUEUED (as recorded")
    assert "last: requeued at" in recorded and "(warned before the time limit)" in recorded
    live = parse_scontrol(
        "JobId=77 JobName=reid-smoke JobState=RUNNING Reason=None Restarts=1 RunTime=00:03:10 "
        "TimeLimit=00:10:00 Partition=debug NodeList=n[1-2] Command=/r/job.sbatch"
    )
    line = format_line(record, live)
    assert line.startswith("slurm: job 77 RUNNING for 00:03:10 of 00:10:00 on n[1-2]")
    assert "requeued 1 of at most 10 times" in line and "output /r/slurm-77.out" in line
