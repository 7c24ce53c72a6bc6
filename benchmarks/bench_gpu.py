"""GPU fast-lane figures in ONE command; needs only PyTorch + torchvision + this checkout.

    python benchmarks/bench_gpu.py [--budget 510] [--out FILE.json] [--device auto|cuda|cpu]

Prints and writes JSON (default $OUT/bench_gpu.json when $OUT is set, else
runs/bench_gpu.json) for:
  1. training images/s (input pipeline included) of hacnn, compact-1x and compact-2x for
     data.pipeline {torchvision, device} x runtime.compile {off, default} (compact-1x on the
     device pipeline also with reduce-overhead); compiled cells run in subprocesses with a
     timeout, so a slow compile is skipped rather than stalling the script;
  2. evaluation of a Market-sized problem (3,368 query x 15,913 gallery images): uint8
     images generated directly on the device (not JPEGs, to stay inside the budget),
     compact-1x embeddings in batches of 1024, distances + ranking on the device, and the
     numpy ranking for comparison;
  3. aggregate images/s of 1, 2, 4 and 8 trainer processes sharing the GPU (compact-1x,
     device pipeline, eager: measured before the compiled cells of 1, whose compiles
     would eat the budget N times over);
  4. projected wall time of the paper's schedule (875 epochs x 12,936 images + its
     evaluations and SWAG BatchNorm passes) per trial, and of the 55-trial Table 3 grid
     on 1 and on 8 GPUs, with and without packing;
  5. a short real run of compact-1x on a Market-sized generated set at full camera
     strength (rank-1 / mAP after the epochs that fit).
A global time budget (default 510 s) keeps the whole run inside 9 minutes: a part that
would not fit is skipped with the reason printed. Without a GPU the same parts run small
on the CPU (a few minutes; compiled cells skipped, packing 1 and 2 processes).
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # a plain checkout, nothing pip-installed
sys.path.insert(0, str(Path(__file__).resolve().parent))

from reid_core.config import DataConfig  # noqa: E402
from reid_core.throughput import OK, collect, measure_processes, pipeline_trainer, spawn, time_steps  # noqa: E402
from reid_core.training.trainer import pick_device  # noqa: E402

MARKET = {"train": 12_936, "query": 3_368, "gallery": 15_913, "train_ids": 751}
PAPER_EPOCHS = 350 + 15 * 35  # main phase + 15 SWAG cycles of 35 epochs
PAPER_EVALS = 35 + 15  # eval.every 10 over the main phase + one per cycle end (the default config)
SWAG_BN_PASSES = 15 * (1 + 10)  # per cycle end: SWA + 10 SWAG samples, each a BN pass + an embedding
GRID_TRIALS = 55
MODELS = ("hacnn", "compact-1x", "compact-2x")


class Budget:
    def __init__(self, seconds: float) -> None:
        self.t0, self.seconds = time.perf_counter(), seconds

    def left(self) -> float:
        return self.seconds - (time.perf_counter() - self.t0)

    def fits(self, need: float, what: str, report: dict[str, Any]) -> bool:
        if self.left() >= need:
            return True
        msg = f"skipped {what}: needs about {need:.0f} s, {self.left():.0f} s of the budget left"
        print(msg, flush=True)
        report.setdefault("skipped", []).append(msg)
        return False


def _say(msg: str) -> None:
    print(msg, flush=True)


def _mode(cuda: bool) -> dict[str, Any]:
    """Sizes: the real thing on a GPU, a small stand-in on a CPU."""
    if cuda:
        return {
            "ids": MARKET["train_ids"],
            "images_per_id": 17,
            "overrides": {"data.num_workers": min(16, os.cpu_count() or 2)},
            "steps": 60,
            "warmup": 15,
            "eval_q": MARKET["query"],
            "eval_g": MARKET["gallery"],
            "pack": (1, 2, 4, 8),
            "pack_seconds": 12.0,
            "eval_batch": 1024,
        }
    return {
        "ids": 40,
        "images_per_id": 6,
        "overrides": {
            "data.num_workers": 2,
            "model.width_multiplier": 0.25,
            "model.depth_multiplier": 0.3,
            "model.input_height": 80,
            "model.input_width": 32,
        },
        "steps": 3,
        "warmup": 1,
        "eval_q": 300,
        "eval_g": 1500,
        "pack": (1, 2),
        "pack_seconds": 8.0,
        "eval_batch": 256,
    }


def _job(data: Path, scratch: Path, device: str, model: str, pipeline: str, compile_: str, m: dict) -> dict:
    """A reid_core.throughput worker job: preset `model` with the mode's overrides."""
    over = {**m["overrides"], "data.pipeline": pipeline, "runtime.compile": compile_}
    return {"preset": model, "data": str(data), "scratch": str(scratch), "device": device, "overrides": over}


# ---------------------------------------------------------------------------------
# parts


def part_throughput(report: dict, budget: Budget, data: Path, scratch: Path, device: str, m: dict) -> None:
    cells = report.setdefault("train_images_per_second", {})
    cuda = device == "cuda"
    for name in MODELS:
        for pipeline in ("torchvision", "device"):
            if not budget.fits(25 if cuda else 60, f"{name} {pipeline} eager", report):
                continue
            t = pipeline_trainer(data, name, pipeline, scratch, device, m["overrides"])
            r = time_steps(t, m["steps"], m["warmup"])
            del t
            cells[f"{name}/{pipeline}/off"] = r
            _say(
                f"train {name:<11} {pipeline:<11} eager            {r['images_per_second']:9.1f} img/s "
                f"({r['step_ms']:.1f} ms/step)"
            )


def part_compiled(report: dict, budget: Budget, data: Path, scratch: Path, device: str, m: dict) -> None:
    cells = report.setdefault("train_images_per_second", {})
    if device != "cuda":
        msg = "compiled cells skipped on CPU (runtime.compile is meant for the GPU; compile time >> the run here)"
        _say(msg)
        report.setdefault("skipped", []).append(msg)
        return
    todo = [("compact-1x", "device", "reduce-overhead"), ("compact-1x", "device", "default")]
    todo += [(n, p, "default") for n in MODELS for p in ("device", "torchvision") if (n, p) != ("compact-1x", "device")]
    reserve = 75.0  # the short run still to come
    for name, pipeline, mode in todo:
        if not budget.fits(reserve + 60, f"{name} {pipeline} compile={mode}", report):
            continue
        job = {**_job(data, scratch, device, name, pipeline, mode, m), "steps": m["steps"], "warmup": m["warmup"]}
        r = collect(spawn(job), min(180.0, budget.left() - reserve))
        if r.get("status") != OK:
            msg = f"{name} {pipeline} compile={mode}: {r.get('status')}: {r.get('error', '')}"
            _say("  " + msg)
            report.setdefault("failed", []).append(msg)
            continue
        cells[f"{name}/{pipeline}/{mode}"] = r
        _say(
            f"train {name:<11} {pipeline:<11} {mode:<16} {r['images_per_second']:9.1f} img/s "
            f"({r['step_ms']:.1f} ms/step; compile + warm-up {r['first_steps_seconds']:.0f} s)"
        )


def part_evaluation(report: dict, budget: Budget, device: str, m: dict) -> None:
    from reid_core.evaluation import compute_distance, embed_tensor, evaluate, evaluate_features
    from reid_core.models import build_model
    from reid_core.presets import preset_config

    if not budget.fits(20, "evaluation", report):
        return
    dev = torch.device(device)
    cuda = dev.type == "cuda"
    over = {k: v for k, v in m["overrides"].items() if k.startswith("model.")}
    cfg = preset_config("compact-1x", {**over, "model.num_classes": 751})
    h, w = cfg.model.input_height, cfg.model.input_width
    model = build_model(cfg.model).to(dev).eval()
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    g = torch.Generator(device=dev).manual_seed(0)
    nq, ng = m["eval_q"], m["eval_g"]
    q = torch.randint(0, 256, (nq, 3, h, w), dtype=torch.uint8, device=dev, generator=g)
    gal = torch.randint(0, 256, (ng, 3, h, w), dtype=torch.uint8, device=dev, generator=g)
    rng = torch.Generator().manual_seed(1)
    q_pids, g_pids = torch.randint(1, 751, (nq,), generator=rng), torch.randint(0, 751, (ng,), generator=rng)
    q_cams, g_cams = torch.randint(1, 7, (nq,), generator=rng), torch.randint(1, 7, (ng,), generator=rng)

    from reid_core.data.device_augment import normalise

    prep = functools.partial(normalise, channels_last=cuda)

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=cuda):
        embed_tensor(model, q[: m["eval_batch"]], m["eval_batch"], prepare=prep)  # warm-up
        sync()
        t0 = time.perf_counter()
        qf = embed_tensor(model, q, m["eval_batch"], prepare=prep)
        gf = embed_tensor(model, gal, m["eval_batch"], prepare=prep)
        sync()
    t_embed = time.perf_counter() - t0
    evaluate_features(qf[:64], gf[:256], q_pids[:64], g_pids[:256], q_cams[:64], g_cams[:256])  # warm-up
    sync()
    t0 = time.perf_counter()
    res = evaluate_features(qf, gf, q_pids, g_pids, q_cams, g_cams)
    sync()
    t_rank_dev = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref = evaluate(compute_distance(qf.cpu(), gf.cpu()), q_pids, g_pids, q_cams, g_cams)
    t_rank_cpu = time.perf_counter() - t0
    row = {
        "queries": nq,
        "gallery": ng,
        "embed_seconds": t_embed,
        "embed_images_per_second": (nq + ng) / t_embed,
        "rank_device_seconds": t_rank_dev,
        "rank_numpy_seconds": t_rank_cpu,
        "total_seconds": t_embed + min(t_rank_dev, t_rank_cpu),
        "same_metrics": res["mAP"] == ref["mAP"] and res["rank1"] == ref["rank1"],
        "images": "uint8 tensors generated on the device (no JPEG decode)",
    }
    report["evaluation"] = row
    _say(
        f"evaluation {nq} x {ng}: embed {t_embed:.2f} s ({row['embed_images_per_second']:.0f} img/s), ranking on "
        f"{dev.type} {t_rank_dev:.2f} s, numpy ranking (CPU) {t_rank_cpu:.2f} s; total {row['total_seconds']:.2f} s; "
        f"same metrics {row['same_metrics']}"
    )


def part_packing(report: dict, budget: Budget, data: Path, scratch: Path, device: str, m: dict) -> None:
    # Eager: packing is measured before the compiled cells (N processes compiling at once
    # would eat the budget), and the eager step is the overhead-bound case packing serves.
    mode = "off"
    rows = report.setdefault("packing", {"model": "compact-1x", "pipeline": "device", "compile": mode, "runs": {}})
    for n in m["pack"]:
        start_delay = 25.0 if device == "cuda" else 45.0
        need = start_delay + m["pack_seconds"] + 10 + (75 if device == "cuda" else 100)  # + the short run after
        if not budget.fits(need, f"packing x{n}", report):
            break
        job = {**_job(data, scratch, device, "compact-1x", "device", mode, m), "warmup": m["warmup"]}
        threads = max(1, (os.cpu_count() or 1) // n)
        r = measure_processes(job, n, threads, m["pack_seconds"], timeout=start_delay + m["pack_seconds"] + 30)
        if r["status"] != OK:
            msg = f"packing x{n}: {r['status']}: {r.get('error', '')}"
            _say(msg)
            report.setdefault("failed", []).append(msg)
            continue
        agg = r["aggregate_images_per_second"]
        rows["runs"][str(n)] = {"processes": n, "ok": n, "aggregate_images_per_second": agg}
        base = rows["runs"].get("1", {}).get("aggregate_images_per_second", agg)
        _say(
            f"packing {n} process(es) x compact-1x (device, compile={mode}): aggregate {agg:9.1f} img/s "
            f"({agg / base:.2f}x one process)"
        )


def part_projection(report: dict) -> None:
    cells = report.get("train_images_per_second", {})
    ev = report.get("evaluation")
    if not cells or not ev:
        report.setdefault("skipped", []).append("projection: needs the throughput and evaluation figures")
        return
    fwd_ips = ev["embed_images_per_second"]
    # Scaled to the Market-sized problem when a smaller one was measured (CPU mode).
    rank_s = min(ev["rank_device_seconds"], ev["rank_numpy_seconds"])
    eval_s = (MARKET["query"] + MARKET["gallery"]) / fwd_ips + rank_s * (MARKET["query"] * MARKET["gallery"]) / (
        ev["queries"] * ev["gallery"]
    )
    proj: dict[str, Any] = {
        "assumptions": (
            f"{PAPER_EPOCHS} epochs x {MARKET['train']} images at the best measured train rate; {PAPER_EVALS} "
            f"evaluations of the Market-sized problem; {SWAG_BN_PASSES} SWAG BatchNorm passes over the training set at "
            "the embedding rate + an embedding each; evaluation time of compact-1x used for every model; the grid = "
            f"{GRID_TRIALS} trials of compact-1x"
        )
    }
    for name in MODELS:
        best = max(
            ((k, v["images_per_second"]) for k, v in cells.items() if k.startswith(name + "/")),
            key=lambda kv: kv[1],
            default=None,
        )
        if best is None:
            continue
        train_s = PAPER_EPOCHS * MARKET["train"] / best[1]
        extra = PAPER_EVALS * eval_s + SWAG_BN_PASSES * (MARKET["train"] / fwd_ips + eval_s)
        proj[name] = {"best_cell": best[0], "train_hours": train_s / 3600, "trial_hours": (train_s + extra) / 3600}
        _say(
            f"projection {name:<11} best {best[0]:<32} training {train_s / 60:6.1f} min, trial with evaluations "
            f"and SWAG passes {(train_s + extra) / 60:6.1f} min"
        )
    base = proj.get("compact-1x")
    pack = report.get("packing", {}).get("runs", {})
    if base:
        one = base["trial_hours"]
        grid = {"1_gpu_hours": GRID_TRIALS * one, "8_gpus_hours": math.ceil(GRID_TRIALS / 8) * one}
        if pack:
            a1 = pack.get("1", {}).get("aggregate_images_per_second")
            bestn, besta = max(
                ((int(k), v["aggregate_images_per_second"]) for k, v in pack.items()), key=lambda kv: kv[1]
            )
            if a1:
                gain = besta / a1
                grid.update(
                    {
                        "packing_processes": bestn,
                        "packing_gain": gain,
                        "1_gpu_packed_hours": GRID_TRIALS * one / gain,
                        "8_gpus_packed_hours": math.ceil(GRID_TRIALS / (8 * bestn)) * one * bestn / gain,
                    }
                )
        proj["grid_55"] = grid
        _say("projection 55-trial grid (compact-1x): " + ", ".join(f"{k} {v:.2f}" for k, v in grid.items()))
    if report.get("mode") != "gpu":
        proj["note"] = "CPU fallback: the small CPU models' rates, not an estimate for any GPU"
        _say("projection note: " + proj["note"])
    report["projection"] = proj


def part_short_run(report: dict, budget: Budget, data: Path, scratch: Path, device: str, m: dict) -> None:
    from reid_core.presets import preset_config
    from reid_core.training.trainer import Trainer

    need = 40 if device == "cuda" else 60
    if not budget.fits(need, "short run", report):
        return
    t_build = time.perf_counter()
    cells = report.get("train_images_per_second", {})
    eager = cells.get("compact-1x/device/off", {}).get("images_per_second", 0.0)
    mode = "off"  # the fastest measured compile mode whose compile took under a minute
    for cand in ("reduce-overhead", "default"):
        c = cells.get(f"compact-1x/device/{cand}")
        if (
            c
            and c["images_per_second"] > 1.05 * eager
            and c.get("first_steps_seconds", 1e9) < 60
            and c["images_per_second"] >= cells.get(f"compact-1x/device/{mode}", {}).get("images_per_second", 0)
        ):
            mode = cand
    cfg = preset_config(
        "compact-1x",
        {
            **m["overrides"],
            "data.pipeline": "device",
            "runtime.compile": mode,
            "swag.enabled": False,
            "schedule.epochs": 40,
            "schedule.warmup_epochs": 2,
            "schedule.milestones": [30],
            "eval.every": 1000,
        },
    )
    t = Trainer(cfg, data, scratch / "short-run", device=device, log=None)
    untrained = t.evaluate_current()
    rate = cells.get(f"compact-1x/device/{mode}", cells.get("compact-1x/device/off", {})).get(
        "images_per_second", 100.0
    )
    epoch_s = len(t.sampler.batches()) * t.sampler.batch_size / rate
    eval_s = report.get("evaluation", {}).get("total_seconds", 5.0) + 2.0
    if mode != "off":
        epoch_s += 60.0 / 40  # the first epoch compiles: spread its cost
    epochs = int(max(1, min(40, (budget.left() - eval_s - 15) / max(epoch_s * 1.2, 1e-3))))
    _say(f"short run: setup {time.perf_counter() - t_build:.0f} s, planning {epochs} epochs of ~{epoch_s:.1f} s")
    t0 = time.perf_counter()
    last: dict[str, Any] = {}
    for e in range(epochs):
        if e > 0 and budget.left() < eval_s + 10 + 1.2 * epoch_s:
            break
        last = t._train_epoch(e)
        t.epoch = e + 1
    train_s = time.perf_counter() - t0
    res = t.evaluate_current()
    report["short_run"] = {
        "model": "compact-1x",
        "pipeline": "device",
        "compile": mode,
        "epochs": t.epoch,
        "train_images": len(t.dataset.train),
        "query": len(t.dataset.query),
        "gallery": len(t.dataset.gallery),
        "camera_variation": 1.0,
        "train_seconds": train_s,
        "last_epoch_images_per_second": last.get("images_per_second"),
        "untrained_rank1": untrained["rank1"],
        "untrained_mAP": untrained["mAP"],
        "rank1": res["rank1"],
        "mAP": res["mAP"],
    }
    _say(
        f"short run compact-1x ({len(t.dataset.train)} train / {len(t.dataset.query)} query / "
        f"{len(t.dataset.gallery)} gallery images, cameras at full strength): {t.epoch} epochs in {train_s:.0f} s "
        f"({last.get('images_per_second', 0):.0f} img/s), rank-1 {100 * untrained['rank1']:.1f} -> "
        f"{100 * res['rank1']:.1f}%, mAP {100 * untrained['mAP']:.1f} -> {100 * res['mAP']:.1f}%"
    )


# ---------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=float, default=510.0, help="seconds for the whole run (default 510 = 8.5 min)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", default="")
    ap.add_argument("--data", default="", help="an existing dataset folder instead of generating one")
    args = ap.parse_args()

    budget = Budget(args.budget)
    device = pick_device(args.device).type
    cuda = device == "cuda"
    m = _mode(cuda)
    name = torch.cuda.get_device_name() if cuda else f"CPU ({os.cpu_count()} cores, {torch.get_num_threads()} threads)"
    report: dict[str, Any] = {
        "device": name,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "torch": torch.__version__,
        "mode": "gpu" if cuda else "cpu-fallback",
        "budget_seconds": args.budget,
        "batch": f"P x K = {DataConfig().p} x {DataConfig().k}",
    }
    _say(
        f"bench_gpu: {name}, torch {torch.__version__}, budget {args.budget:.0f} s"
        + ("" if cuda else " -- no GPU: small CPU run (width 0.25, depth 0.3, 80x32, small sets)")
    )
    out = (
        Path(args.out)
        if args.out
        else (Path(os.environ["OUT"]) if os.environ.get("OUT") else ROOT / "runs") / "bench_gpu.json"
    )
    with tempfile.TemporaryDirectory(prefix="bench-gpu-") as tmp:
        scratch = Path(tmp)
        if args.data:
            data = Path(args.data)
        else:
            from reid_core.data.synth import MARKET_SIZED, generate

            data = scratch / "market"
            t0 = time.perf_counter()
            workers = max(2, (os.cpu_count() or 2))
            if cuda:  # Market-1501's counts (751 + 750 ids, distractors and junk in its proportions)
                spec = {**MARKET_SIZED, "num_train_ids": 751}
            else:
                spec = {
                    "num_ids": 2 * m["ids"],
                    "num_train_ids": m["ids"],
                    "num_cameras": 6,
                    "images_per_id": m["images_per_id"],
                }
            s = generate(data, seed=0, workers=workers, camera_variation=1.0, **spec)
            report["dataset"] = {
                "generated": True,
                "seconds": time.perf_counter() - t0,
                "workers": workers,
                **{k: s[k] for k in ("train_images", "query_images", "gallery_images") if k in s},
            }
            _say(f"generated {report['dataset']} ")
        parts = [
            ("throughput", lambda: part_throughput(report, budget, data, scratch, device, m)),
            ("evaluation", lambda: part_evaluation(report, budget, device, m)),
            ("packing", lambda: part_packing(report, budget, data, scratch, device, m)),
            ("compiled", lambda: part_compiled(report, budget, data, scratch, device, m)),
            ("projection", lambda: part_projection(report)),
            ("short run", lambda: part_short_run(report, budget, data, scratch, device, m)),
        ]
        for label, fn in parts:
            try:
                fn()
            except Exception as e:  # one broken part must not lose the others' figures
                msg = f"{label} failed: {type(e).__name__}: {e}"
                _say(msg)
                report.setdefault("failed", []).append(msg)
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp_out = out.with_suffix(".tmp")
            tmp_out.write_text(json.dumps(report, indent=2, default=str))
            tmp_out.replace(out)  # written after every part: a kill keeps what was measured
    report["wall_seconds"] = budget.seconds - budget.left()
    out.write_text(json.dumps(report, indent=2, default=str))
    _say(f"wall {report['wall_seconds']:.0f} s; JSON written to {out}")


if __name__ == "__main__":
    main()
