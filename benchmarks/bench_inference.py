"""Inference speed of the deployed embedding networks against the heavy baseline.

In one run: images/second and latency at batch 1 and batch 64, PyTorch eager and ONNX
Runtime, on CPU (and CUDA when present), for compact-1x, compact-2x and hacnn at 160x64
and torchvision's resnet50 with a 2048-d embedding (global average pool, no classifier)
at 256x128, the Bag-of-Tricks baseline; parameters and MACs beside them
(reid_core.complexity). Random initialisation: speed does not depend on the weights, and
nothing is downloaded. OSNet is not in torchvision and no package here ships it, so it is
reported as unavailable rather than re-implemented.

ONNX files come from reid_core.deploy.export_model (the `compact-reid export` path,
parity-checked against PyTorch; the max difference is printed). Latency = median wall
time of one batch after warm-up; images/s = batch / latency.

    python benchmarks/bench_inference.py [--json-out FILE] [--threads N] [--iters 2] [--iters-b1 10]
                                         [--devices cpu,cuda]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import torch
import torchvision
from torch import nn

from reid_core.complexity import count_macs, count_parameters
from reid_core.deploy import EmbeddingNet, ModelInfo, OnnxEmbedder, export_model
from reid_core.errors import ReIDError
from reid_core.models import build_model
from reid_core.presets import preset_config

COMPACT_FAMILY = ("compact-1x", "compact-2x", "hacnn")
UNAVAILABLE = {"osnet": "not in torchvision and not installed (torchreid); not re-implemented here"}


def build(name: str) -> tuple[nn.Module, int, int, int]:
    """(eval network returning [N, D], params without classifiers, height, width)."""
    if name in COMPACT_FAMILY:
        cfg = preset_config(name, {"model.num_classes": 751})
        model = build_model(cfg.model).eval()
        return model, count_parameters(model, include_classifiers=False), cfg.model.input_height, cfg.model.input_width
    if name == "resnet50":
        model = torchvision.models.resnet50(weights=None)
        model.fc = nn.Identity()  # 2048-d global-average-pooled embedding, as in Bag of Tricks
        return model.eval(), sum(p.numel() for p in model.parameters()), 256, 128
    raise SystemExit(f"unknown model {name!r}; allowed: {', '.join(COMPACT_FAMILY + ('resnet50',))}")


def time_call(fn: Callable[[], Any], warmup: int, iters: int, sync: Callable[[], None]) -> float:
    """Median seconds per call."""
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_model(name: str, devices: list[str], batches: list[int], args: argparse.Namespace, tmp: Path) -> list[dict]:
    model, params, h, w = build(name)
    macs = count_macs(model, h, w)["macs"]
    net = EmbeddingNet(model)
    dim = int(net(torch.zeros(1, 3, h, w)).shape[1])
    base = {"model": name, "input": f"{h}x{w}", "params_m": params / 1e6, "macs_g": macs / 1e9, "dim": dim}
    rows: list[dict] = []
    onnx_path, parity = None, None
    if not args.no_onnx:
        t0 = time.perf_counter()
        info = ModelInfo(fingerprint=f"bench-{name}", embedding_dim=dim, input_height=h, input_width=w, preset=name)
        res = export_model(net, info, "onnx", tmp / f"{name}.onnx")
        onnx_path, parity = res.path, res.max_abs_diff
        print(
            f"  {name}: ONNX export + parity {time.perf_counter() - t0:.1f} s, max |ort - torch| {parity:.1e}",
            file=sys.stderr,
        )
    for device in devices:
        dev = torch.device(device)
        sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
        net_d = EmbeddingNet(model).to(dev).eval()
        runners: list[tuple[str, Callable[[torch.Tensor], Any], str]] = [("pytorch", net_d, "")]
        if onnx_path is not None:
            try:
                ort = OnnxEmbedder(onnx_path, device=dev.type, threads=args.threads or 0)
                runners.append(("onnxruntime", ort, ""))
            except ReIDError as e:  # e.g. the CPU-only onnxruntime wheel on a GPU machine
                runners.append(("onnxruntime", None, str(e).split(";")[0]))
        for backend, run, why in runners:
            for b in batches:
                row = {**base, "device": device, "backend": backend, "batch": b}
                if run is None:
                    rows.append({**row, "note": why})
                    continue
                x = torch.randn(b, 3, h, w)
                x = x.to(dev) if backend == "pytorch" else x.numpy()
                iters = args.iters_b1 if b == 1 else args.iters
                with torch.inference_mode():
                    sec = time_call(lambda: run(x), args.warmup, iters, sync)  # noqa: B023 (called in this iteration)
                rows.append(
                    {
                        **row,
                        "latency_ms": 1000 * sec,
                        "images_per_second": b / sec,
                        **({"onnx_max_abs_diff": parity} if backend == "onnxruntime" else {}),
                    }
                )
                print(
                    f"  {name:<10} {device:<4} {backend:<11} b{b:<3} {1000 * sec:9.1f} ms  {b / sec:8.1f} img/s",
                    file=sys.stderr,
                )
    return rows


def ratios(rows: list[dict], fast: str = "compact-1x", slow: str = "resnet50") -> list[dict]:
    """compact-1x vs resnet50 (each at its usual input size) per device, backend and batch."""
    out = []
    key = lambda r: (r["device"], r["backend"], r["batch"])  # noqa: E731
    slow_rows = {key(r): r for r in rows if r["model"] == slow and "latency_ms" in r}
    for r in rows:
        s = slow_rows.get(key(r))
        if r["model"] == fast and s is not None and "latency_ms" in r:
            out.append(
                {
                    "device": r["device"],
                    "backend": r["backend"],
                    "batch": r["batch"],
                    "speedup": r["images_per_second"] / s["images_per_second"],
                    "params_ratio": s["params_m"] / r["params_m"],
                    "macs_ratio": s["macs_g"] / r["macs_g"],
                }
            )
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="compact-1x,compact-2x,hacnn,resnet50")
    p.add_argument("--devices", default=None, help="comma-separated (default: cpu, plus cuda when present)")
    p.add_argument("--batches", default="1,64")
    p.add_argument("--iters", type=int, default=2, help="timed batches at batch > 1 (median)")
    p.add_argument("--iters-b1", type=int, default=10, help="timed batches at batch 1 (median)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads for PyTorch and ONNX Runtime alike (default: each one's own; on a "
        "machine shared with other jobs 1 avoids OpenMP threads waiting on each other)",
    )
    p.add_argument("--no-onnx", action="store_true", help="PyTorch eager only")
    p.add_argument("--json-out", help="write the rows, ratios and machine as JSON")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = args.devices.split(",") if args.devices else ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    batches = [int(b) for b in args.batches.split(",")]
    t0 = time.perf_counter()
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="bench-inference-") as tmp:
        for name in [m.strip() for m in args.models.split(",") if m.strip()]:
            rows += bench_model(name, devices, batches, args, Path(tmp))
    wall = time.perf_counter() - t0

    print(
        f"\n{'model':<11}{'input':>8}{'params':>9}{'MACs':>8}  {'device':<7}{'backend':<12}{'batch':>5}"
        f"{'latency ms':>12}{'img/s':>9}"
    )
    for r in rows:
        figs = f"{r['latency_ms']:>12.1f}{r['images_per_second']:>9.1f}" if "latency_ms" in r else f"  n/a: {r['note']}"
        print(
            f"{r['model']:<11}{r['input']:>8}{r['params_m']:>8.2f}M{r['macs_g']:>7.2f}G  {r['device']:<7}"
            f"{r['backend']:<12}{r['batch']:>5}{figs}"
        )
    for name, why in UNAVAILABLE.items():
        print(f"{name:<11} unavailable: {why}")
    rat = ratios(rows)
    if rat:
        print("\ncompact-1x (160x64) vs resnet50 (256x128):")
        for r in rat:
            print(
                f"  {r['device']:<5}{r['backend']:<12} batch {r['batch']:<3} {r['speedup']:5.1f}x the images/s "
                f"({r['params_ratio']:.1f}x fewer parameters, {r['macs_ratio']:.1f}x fewer MACs)"
            )
    machine = {
        "platform": platform.platform(),
        "processor": platform.processor(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "ort_threads": args.threads or "default",
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }
    try:
        import onnxruntime

        machine["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    print(
        f"\nwall {wall:.0f} s; torch {torch.__version__}, {torch.get_num_threads()} threads; onnxruntime "
        f"{machine.get('onnxruntime', 'missing')}, {args.threads or 'default'} threads"
    )
    if args.json_out:
        Path(args.json_out).write_text(
            json.dumps(
                {"rows": rows, "ratios": rat, "unavailable": UNAVAILABLE, "machine": machine, "wall_seconds": wall},
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
