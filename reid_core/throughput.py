"""Training throughput, input pipeline included: the measuring code shared by the benchmarks
(benchmarks/bench_gpu.py, bench_train.py) and the sweep's resource probe
(orchestration/probe/, `compact-reid probe`). Needs only PyTorch (+ this package).

In one process: `pipeline_trainer` / `config_trainer` build a Trainer with evaluation off,
`time_steps` times N steps after a warm-up. Across processes: `measure_processes` starts N
worker processes (`python -m reid_core.throughput --worker JOB`), each with its own intra-op
thread count; they warm up, meet at a file barrier, train for the same window, and the
aggregate images/s is the sum of their images over the longest window. A worker that runs
out of memory, fails to compile or crashes is reported with a `status` (`oom`,
`compile_failed`, `failed`, `timeout`), never raised.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator, Mapping

import torch

# Statuses of one measured cell
OK, OOM, COMPILE_FAILED, FAILED, TIMEOUT = "ok", "oom", "compile_failed", "failed", "timeout"
_EVAL_OFF = {"eval.every": 10_000, "swag.enabled": False}


def pipeline_trainer(
    root: Path, name: str, pipeline: str, out: Path, device: str, overrides: Mapping[str, Any], log: Any = None
) -> Any:
    """A Trainer of preset `name` on `root` with data.pipeline=`pipeline` (evaluation off)."""
    from .presets import preset_config
    from .training.trainer import Trainer

    cfg = preset_config(
        name,
        {
            "data.pipeline": pipeline,
            **_EVAL_OFF,
            "schedule.epochs": 1000,
            "schedule.warmup_epochs": 1,
            "schedule.milestones": [999],
            **overrides,
        },
    )
    return Trainer(cfg, root, Path(out) / f"{name}-{pipeline}", device=device, log=log)


def config_trainer(
    config: Mapping[str, Any],
    root: str | Path,
    out: str | Path,
    device: str | None,
    overrides: Mapping[str, Any] | None = None,
    dataset_name: str = "auto",
    log: Any = None,
) -> Any:
    """A Trainer of a full config (a `to_dict(TrainConfig)` dict, e.g. a sweep trial's) with
    `overrides` applied and evaluation / SWAG off."""
    from .config import TrainConfig, from_dict, with_overrides
    from .training.trainer import Trainer

    cfg = with_overrides(from_dict(TrainConfig, dict(config)), {**_EVAL_OFF, **(overrides or {})})
    return Trainer(cfg, root, out, device=device, dataset_name=dataset_name, log=log)


def endless_batches(trainer: Any, epoch: int = 0) -> Iterator[tuple[Any, Any]]:
    """The trainer's training batches from `epoch` on; an epoch that runs out rolls into the next."""
    while True:
        yield from trainer.pipeline.batches(epoch)
        epoch += 1


def time_steps(trainer: Any, steps: int, warmup: int, epoch: int = 0) -> dict[str, float]:
    """images/s of `steps` training steps (input pipeline included) after `warmup` steps."""
    trainer.model.train()
    batches = endless_batches(trainer, epoch)
    cuda = trainer.device.type == "cuda"
    done, images, t0 = 0, 0, None
    while done < warmup + steps:
        imgs, pids = next(batches)
        if done == warmup:
            if cuda:
                torch.cuda.synchronize()
            t0 = time.perf_counter()
        trainer.train_step(imgs, pids)
        done += 1
        if done > warmup:
            images += imgs.shape[0]
    if cuda:
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0  # type: ignore[operator]
    return {"images_per_second": images / dt, "step_ms": 1000 * dt / steps}


def timed_window(trainer: Any, seconds: float, epoch: int = 1) -> dict[str, float]:
    """Train for `seconds` of wall time; {"images", "seconds"} (steps already warmed up)."""
    cuda = trainer.device.type == "cuda"
    batches = endless_batches(trainer, epoch)
    images, steps, t1 = 0, 0, time.perf_counter()
    while time.perf_counter() - t1 < seconds:
        imgs, pids = next(batches)
        trainer.train_step(imgs, pids)
        images += imgs.shape[0]
        steps += 1
        if cuda and steps % 20 == 0:
            torch.cuda.synchronize()
    if cuda:
        torch.cuda.synchronize()
    return {"images": images, "steps": steps, "seconds": time.perf_counter() - t1}


def device_model(device: str | None = None) -> str:
    """What the throughput depends on: the GPU's name and count, or the CPU's model and cores."""
    from .training.trainer import pick_device

    dev = pick_device(device)
    if dev.type == "cuda":
        count = torch.cuda.device_count()
        return f"{torch.cuda.get_device_name(dev)} x{count}"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"CPU {cpu} ({os.cpu_count()} cores)"


# ---------------------------------------------------------------------------------
# worker processes


def classify(e: BaseException) -> str:
    """`oom`, `compile_failed` or `failed`."""
    if isinstance(e, torch.OutOfMemoryError) or isinstance(e, MemoryError):
        return OOM
    if "out of memory" in str(e).lower():
        return OOM
    mod = type(e).__module__ or ""
    if "_dynamo" in mod or "_inductor" in mod or "BackendCompilerFailed" in type(e).__name__:
        return COMPILE_FAILED
    return FAILED


def _inject(what: str | None) -> None:
    """Test seam: a job may ask its worker to fail as a real one would."""
    if what == OOM:
        raise torch.OutOfMemoryError("CUDA out of memory (injected)")
    if what == COMPILE_FAILED:
        from torch._dynamo.exc import BackendCompilerFailed

        raise BackendCompilerFailed(lambda *a: None, RuntimeError("compile failure (injected)"), None)
    if what == FAILED:
        raise RuntimeError("worker failure (injected)")


def _job_trainer(job: Mapping[str, Any], variant: Mapping[str, Any] | None = None) -> Any:
    scratch = Path(job["scratch"]) / f"worker-{os.getpid()}"
    over = {**(job.get("overrides") or {}), **(variant or {})}
    if job.get("config") is not None:
        return config_trainer(
            job["config"], job["data"], scratch, job.get("device"), over, job.get("dataset_name", "auto")
        )
    pipeline = over.pop("data.pipeline", "torchvision")
    return pipeline_trainer(Path(job["data"]), job["preset"], pipeline, scratch, job.get("device") or "auto", over)


def _compiling(job: Mapping[str, Any]) -> bool:
    over = [job.get("overrides") or {}, *(job.get("variants") or [])]
    return any(o.get("runtime.compile", "off") != "off" for o in over)


def worker(job: Mapping[str, Any]) -> dict[str, Any]:
    """One worker's run of `job` (see `measure_processes`); never raises.

    With `variants` (a list of override dicts) the worker builds one trainer per variant,
    warms each up, and after the barrier trains `pattern[i]`'s trainer in slot i of the
    common schedule the parent wrote into the `go` file (start time, slot, gap)."""
    status, stage = OK, "setup"
    try:
        if job.get("threads"):
            torch.set_num_threads(int(job["threads"]))
        variants = list(job.get("variants") or [{}])
        trainers = [_job_trainer(job, v) for v in variants]
        trainer = trainers[0]
        stage = "warm-up"
        t0 = time.perf_counter()
        _inject(job.get("inject"))
        if job.get("steps"):  # a fixed number of timed steps, no barrier
            time_steps(trainer, 1, max(0, int(job.get("warmup", 1)) - 1))
            first = time.perf_counter() - t0
            result: dict[str, Any] = time_steps(trainer, int(job["steps"]), 0, epoch=1)
            result["first_steps_seconds"] = first
            return {"status": OK, **result}
        step_s = 0.0
        for tr in trainers:
            time_steps(tr, 1, max(0, int(job.get("warmup", 2)) - 1))
            step_s = max(step_s, time_steps(tr, 1, 0, epoch=1)["step_ms"] / 1000)
        warm = time.perf_counter() - t0
        barrier = Path(job["barrier"])
        tmp = barrier / f".ready-{job['rank']}"
        tmp.write_text(json.dumps({"step_seconds": step_s}))
        tmp.replace(barrier / f"ready-{job['rank']}")
        deadline = time.monotonic() + float(job.get("barrier_timeout", 600))
        while not (barrier / "go").exists():
            if (barrier / "abort").exists() or time.monotonic() > deadline:
                return {"status": FAILED, "error": "the other workers of this cell did not get ready"}
            time.sleep(0.01)
        stage = "measure"
        go = json.loads((barrier / "go").read_text() or "{}")
        start, slot, gap = float(go.get("start", 0)), float(go.get("slot", job["seconds"])), float(go.get("gap", 0))
        slots = []
        for i, v in enumerate(job.get("pattern") or [0]):
            while time.time() < start + i * (slot + gap):
                time.sleep(0.002)
            slots.append({"variant": v, **timed_window(trainers[v], slot)})
        result = {
            "images": sum(x["images"] for x in slots),
            "steps": sum(x["steps"] for x in slots),
            "seconds": sum(x["seconds"] for x in slots),
            "slots": slots,
            "warmup_seconds": warm,
        }
        if trainer.device.type == "cuda":
            result["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
        return {"status": OK, **result}
    except BaseException as e:  # noqa: BLE001 - reported to the parent, which decides
        status = classify(e)
        if status == FAILED and stage == "warm-up" and _compiling(job):
            status = COMPILE_FAILED if "compile" in f"{type(e).__name__} {e}".lower() else FAILED
        return {"status": status, "stage": stage, "error": f"{type(e).__name__}: {str(e).strip()[:500]}"}


def spawn(job: Mapping[str, Any], threads: int | None = None) -> subprocess.Popen:
    """A worker process running `job`; `threads` caps its intra-op threads (N processes
    sharing the cores: oversubscribed OpenMP threads spin at barriers and run far slower)."""
    env = dict(os.environ)
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
        job = {**job, "threads": threads}
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return subprocess.Popen(
        [sys.executable, "-m", "reid_core.throughput", "--worker", json.dumps(dict(job), default=str)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
    )


def collect(proc: subprocess.Popen, timeout: float) -> dict[str, Any]:
    """The worker's RESULT, or a status saying why there is none."""
    try:
        out, _ = proc.communicate(timeout=max(1.0, timeout))
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        return {"status": TIMEOUT, "error": f"timed out after {timeout:.0f} s"}
    for line in out.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    tail = " | ".join(out.strip().splitlines()[-3:])
    if proc.returncode in (-9, 137):  # SIGKILL: most often the kernel's out-of-memory killer
        return {"status": OOM, "error": f"killed (signal 9, likely out of host memory): {tail}"}
    return {"status": classify(RuntimeError(tail)), "error": f"exit {proc.returncode}: {tail}"}


def measure_processes(
    job: Mapping[str, Any], processes: int, threads: int | None, seconds: float, timeout: float = 300.0
) -> dict[str, Any]:
    """Aggregate training images/s of `processes` workers running `job` at once, each with
    `threads` intra-op threads, over a common window of `seconds` (after each warmed up).
    With `job["variants"]` (override dicts) and `job["pattern"]` (variant indices, e.g.
    [0, 1, 1, 0]) every worker holds one trainer per variant and all train the same variant
    in each window of `seconds`: a loaded machine slows the variants alike. The result's
    `variants` then lists each variant's figures, window by window.

    `job`: {"data", "device", "scratch", "warmup", and either "config" (a full TrainConfig
    dict, + "dataset_name") or "preset"; "overrides": dotted config keys, "inject": test
    seam}. Returns {"status", "aggregate_images_per_second", "processes", "threads",
    "wall_seconds", "workers": [...], "error"}; a failure of any worker fails the cell
    (its status is the first failure's: `oom`, `compile_failed`, `timeout`, `failed`)."""
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="throughput-barrier-") as barrier:
        procs = [
            spawn({**job, "seconds": seconds, "barrier": barrier, "rank": i, "barrier_timeout": timeout}, threads)
            for i in range(processes)
        ]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready = sum(1 for i in range(processes) if (Path(barrier) / f"ready-{i}").exists())
            if ready == processes or any(p.poll() is not None for p in procs):
                break
            time.sleep(0.02)
        if all((Path(barrier) / f"ready-{i}").exists() for i in range(processes)):
            steps = [json.loads((Path(barrier) / f"ready-{i}").read_text() or "{}") for i in range(processes)]
            gap = 0.2 + 1.5 * max(float(x.get("step_seconds", 0.0)) for x in steps)  # a step overrunning its slot
            go = {"start": time.time() + 0.3, "slot": seconds, "gap": gap}
            (Path(barrier) / ".go").write_text(json.dumps(go))
            (Path(barrier) / ".go").replace(Path(barrier) / "go")
        else:
            (Path(barrier) / "abort").touch()
        left = max(5.0, deadline - time.monotonic()) + seconds * len(job.get("pattern") or [0]) * 2
        results = [collect(p, left) for p in procs]
    row: dict[str, Any] = {"processes": processes, "threads": threads, "wall_seconds": time.perf_counter() - t0}
    bad = [r for r in results if r.get("status") != OK]
    if bad:  # the first real failure, not a worker that only gave up waiting for it
        first = next((r for r in bad if "did not get ready" not in r.get("error", "")), bad[0])
        return {**row, "status": first["status"], "error": first.get("error", ""), "workers": results}
    # per slot: all workers' images over the longest of their windows
    figs = []
    for i, v in enumerate(job.get("pattern") or [0]):
        sl = [r["slots"][i] for r in results]
        figs.append((v, sum(x["images"] for x in sl) / max(x["seconds"] for x in sl)))
    row["slot_images_per_second"] = [[v, f] for v, f in figs]
    if job.get("variants"):
        row["variants"] = [[f for v, f in figs if v == k] for k in range(len(job["variants"]))]
    agg = sum(f for _, f in figs) / len(figs)
    return {**row, "status": OK, "aggregate_images_per_second": agg, "workers": results}


def _main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "--worker":
        result = worker(json.loads(argv[1]))
        print("RESULT " + json.dumps(result, default=str), flush=True)
        return 0
    print("usage: python -m reid_core.throughput --worker JOB_JSON (started by measure_processes)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
