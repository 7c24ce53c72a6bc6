"""Training throughput (images/s) of hacnn, compact-1x and compact-2x.

One SGD step = forward + loss (CE + the preset's triplet) + backward + step on a P x K
batch of random 160x64 images (data loading excluded, so this measures the network).
On CUDA it runs with bf16 autocast and channels_last, as the trainer does.

    python benchmarks/bench_train.py [--device cpu|cuda] [--steps 5] [--batch 32] [--compile]
"""
from __future__ import annotations

import argparse
import time

import torch

from reid_core.losses import ReIDLoss
from reid_core.models import build_model
from reid_core.presets import preset_config
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--compile", action="store_true", help="torch.compile the model")
    ap.add_argument("--models", default="hacnn,compact-1x,compact-2x")
    args = ap.parse_args()
    device = torch.device(args.device)
    print(f"device {device} ({torch.cuda.get_device_name() if device.type == 'cuda' else f'{torch.get_num_threads()} threads'}), "
          f"torch {torch.__version__}, batch {args.batch}, {args.steps} timed steps after {args.warmup} warm-up")
    for name in args.models.split(","):
        r = bench(name, device, args.steps, args.batch, args.warmup, args.compile)
        extra = f"  peak {r['peak_mem_gib']:.2f} GiB" if "peak_mem_gib" in r else ""
        print(f"{name:<12} {r['images_per_second']:8.1f} images/s  {r['step_ms']:8.1f} ms/step{extra}")


if __name__ == "__main__":
    main()
