"""Training throughput (images/s) of hacnn, compact-1x and compact-2x.

Default: one SGD step = forward + loss (CE + the preset's triplet) + backward + step on a
P x K batch of random 160x64 images (data loading excluded, so this measures the network).
On CUDA it runs with bf16 autocast and channels_last, as the trainer does.

`--pipeline torchvision|device|both`: the trainer's own epochs on a generated dataset,
input pipeline included (data.pipeline; `both` alternates the two epoch by epoch, so a
loaded machine slows both alike), at `--width` (default 0.25 on CPU, 1.0 on CUDA).

    python benchmarks/bench_train.py [--device cpu|cuda] [--steps 5] [--batch 32] [--compile]
    python benchmarks/bench_train.py --pipeline both [--models compact-1x] [--epochs 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runs from a plain checkout too

from reid_core.losses import ReIDLoss
from reid_core.models import build_model
from reid_core.presets import preset_config
from reid_core.throughput import endless_batches, pipeline_trainer, time_steps  # noqa: F401 - bench_gpu's names too
from reid_core.training.schedules import build_optimizer


def bench(name: str, device: torch.device, steps: int, batch: int, warmup: int, compile_: bool) -> dict:
    cfg = preset_config(name, {"model.num_classes": 751})
    model = build_model(cfg.model).to(device)
    cuda = device.type == "cuda"
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    step_model = torch.compile(model) if compile_ else model
    loss_fn = ReIDLoss(cfg.loss)
    opt = build_optimizer(model, cfg.optim)
    k = 4
    x = torch.randn(batch, 3, 160, 64, device=device)
    if cuda:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.arange(batch // k, device=device).repeat_interleave(k)
    model.train()

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
            out = step_model(x)
        loss, _ = loss_fn(out, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if cuda:
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    row = {"model": name, "images_per_second": steps * batch / dt, "step_ms": 1000 * dt / steps}
    if cuda:
        row["peak_mem_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return row


def compare_pipelines(args: argparse.Namespace) -> None:
    from reid_core.data.synth import generate

    pipelines = ["torchvision", "device"] if args.pipeline == "both" else [args.pipeline]
    width = args.width if args.width else (1.0 if args.device.startswith("cuda") else 0.25)
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        root = Path(tmp) / "market"
        generate(
            root,
            num_ids=2 * args.ids,
            num_train_ids=args.ids,
            num_cameras=4,
            images_per_id=args.images_per_id,
            seed=0,
            workers=2,
        )
        print(
            f"generated {args.ids} train ids x {args.images_per_id} images; width {width}, "
            f"{args.epochs} timed epochs per pipeline after a warm-up epoch, alternating"
        )
        for name in args.models.split(","):
            over = {"model.width_multiplier": width, "data.num_workers": args.workers}
            t0 = time.perf_counter()
            trainers = {p: pipeline_trainer(root, name, p, Path(tmp), args.device, over) for p in pipelines}
            setup = time.perf_counter() - t0
            rates: dict[str, list[float]] = {p: [] for p in pipelines}
            for e in range(args.epochs + 1):
                for p, t in trainers.items():
                    m = t._train_epoch(e)
                    if e > 0:
                        rates[p].append(m["images_per_second"])
            cells = "  ".join(
                f"{p} {statistics.median(r):7.1f} img/s (epochs {', '.join(f'{x:.1f}' for x in r)})"
                for p, r in rates.items()
            )
            print(f"{name:<12} {cells}  [setup incl. cache build {setup:.1f} s]")
            if len(pipelines) == 2:
                tv, dev = (statistics.median(rates[p]) for p in pipelines)
                print(f"{'':<12} device / torchvision = {dev / tv:.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--compile", action="store_true", help="torch.compile the model")
    ap.add_argument("--models", default="hacnn,compact-1x,compact-2x")
    ap.add_argument(
        "--pipeline",
        choices=["none", "torchvision", "device", "both"],
        default="none",
        help="none: network only on random tensors; else trainer epochs with that input pipeline",
    )
    ap.add_argument("--epochs", type=int, default=3, help="--pipeline: timed epochs per pipeline")
    ap.add_argument("--ids", type=int, default=100, help="--pipeline: generated training identities")
    ap.add_argument("--images-per-id", type=int, default=8)
    ap.add_argument(
        "--width", type=float, default=0.0, help="--pipeline: model.width_multiplier (0: 0.25 on CPU, 1 on CUDA)"
    )
    ap.add_argument("--workers", type=int, default=2, help="--pipeline: data.num_workers of the torchvision path")
    args = ap.parse_args()
    if args.pipeline != "none":
        compare_pipelines(args)
        return
    device = torch.device(args.device)
    print(
        f"device {device} ({torch.cuda.get_device_name() if device.type == 'cuda' else f'{torch.get_num_threads()} threads'}), "
        f"torch {torch.__version__}, batch {args.batch}, {args.steps} timed steps after {args.warmup} warm-up"
    )
    for name in args.models.split(","):
        r = bench(name, device, args.steps, args.batch, args.warmup, args.compile)
        extra = f"  peak {r['peak_mem_gib']:.2f} GiB" if "peak_mem_gib" in r else ""
        print(f"{name:<12} {r['images_per_second']:8.1f} images/s  {r['step_ms']:8.1f} ms/step{extra}")


if __name__ == "__main__":
    main()
