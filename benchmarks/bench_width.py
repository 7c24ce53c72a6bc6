"""What the orchestration itself costs as the grid widens: 4, 15, 55 and 115 trials.

Each width is a rehearsal (`sweep run --rehearse`: the real plan at tiny scale on generated
data) of shipped specs, run in a process of its own (the driver) on a fresh runs folder, one
width after the other:

    4    smoke
    15   gem_p_init
    55   table3_ablation
    115  table3_ablation + table4_swag + swag_cycles + gem_p_init + width_multiplier (one campaign)

Per width it prints:
- the per-trial overhead outside training: inside the trial (its wall time minus the time in
  reid_core's Trainer: MLflow run creation and logging, the Trainer's construction, data
  staging, checkpoints and reports; the Trainer's construction and the checkpoints also
  apart), and around it (the sweep's wall time x the trials at
  once, minus the trials' own wall time, per trial: Ray scheduling, worker start);
- the driver's CPU time and peak memory (the width's own process), and the trial workers'
  peak memory (Ray's reused workers run trial after trial);
- the MLflow store's size and its write rate (bytes, metric rows and rows a second);
- the time to build every table and figure of the sweep's experiments.

    python benchmarks/bench_width.py [--widths 4,15,55,115] [--out FILE.json]
    python benchmarks/bench_width.py --one 15 --work DIR     # one width, in this process
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WIDTHS = {
    4: ["smoke"],
    15: ["gem_p_init"],
    55: ["table3_ablation"],
    115: ["table3_ablation", "table4_swag", "swag_cycles", "gem_p_init", "width_multiplier"],
}


def _store_figures(runs: Path) -> dict:
    db = runs / "mlflow.db"
    size = db.stat().st_size + sum(p.stat().st_size for p in (runs / "mlartifacts").rglob("*") if p.is_file())
    with sqlite3.connect(db) as connection:
        metrics = connection.execute("select count(*) from metrics").fetchone()[0]
        runs_count = connection.execute("select count(*) from runs").fetchone()[0]
    return {"store_mb": size / 1e6, "metric_rows": metrics, "mlflow_runs": runs_count}


class WorkerPeak:
    """The largest resident size any Ray trial worker under this process reached, and this
    process's own resident size over time (sampled)."""

    def __init__(self, every_s: float = 1.0) -> None:
        import psutil

        self.peak_mb = 0.0
        self.driver: list[tuple[float, float]] = []  # (perf_counter, MB)
        self._stop = threading.Event()

        def sample() -> None:
            me = psutil.Process()
            while not self._stop.wait(every_s):
                self.driver.append((time.perf_counter(), me.memory_info().rss / 2**20))
                for child in me.children(recursive=True):
                    try:
                        if "ImplicitFunc" in " ".join(child.cmdline()):
                            self.peak_mb = max(self.peak_mb, child.memory_info().rss / 2**20)
                    except psutil.Error:
                        pass

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak_mb


def measure(width: int, work: Path) -> dict:
    from orchestration.sweep.runner import SweepOptions, run_sweep

    specs = [REPO / "sweeps" / f"{name}.yaml" for name in WIDTHS[width]]
    runs = work / f"runs-{width}"
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    began = time.perf_counter()
    lines: list[str] = []
    workers = WorkerPeak()
    outcome = run_sweep(
        specs,
        SweepOptions(
            runs_dir=runs, rehearse=True, name=f"width{width}", tables_out=work / f"tables-{width}", log=lines.append
        ),
    )
    wall = time.perf_counter() - began
    worker_peak_mb = workers.stop()
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    rows = [row for row in outcome.trials if row.get("trial_wall_s") is not None]
    concurrency = 2  # the tiny specs ask 1 CPU a trial; this machine has 2
    # an inherited run's final evaluation (a swag_cycles trial finished from the 20-cycle run's
    # checkpoint) is evaluation work, not orchestration: reported apart
    inside = [
        row["trial_wall_s"] - (row.get("trainer_run_s") or 0.0) - (row.get("reevaluate_s") or 0.0) for row in rows
    ]

    def mean(key: str) -> float:
        return sum(float(row.get(key) or 0.0) for row in rows) / max(len(rows), 1)

    around = (outcome.wall_seconds * concurrency - sum(row["trial_wall_s"] for row in rows)) / max(len(rows), 1)
    tables_s = [
        float(line.rsplit("(", 1)[1].rstrip("s)"))
        for line in lines
        if line.startswith("tables of ") and line.endswith("s)")
    ]
    store = _store_figures(runs)
    figures = {
        "width": width,
        "trials": len(outcome.trials),
        "wall_s": wall,
        "trained_epochs": outcome.trained_epochs,
        "planned_epochs": outcome.planned_epochs,
        "overhead_inside_s": sum(inside) / max(len(inside), 1),
        # of which: the Trainer's construction, checkpoints saved and stored, and the rest
        # (MLflow run, params, artifacts, published checkpoints, a new worker's imports)
        "inside_trainer_init_s": mean("trainer_init_s"),
        "inside_report_s": mean("report_s"),
        "reevaluate_s": mean("reevaluate_s"),
        "overhead_inside_median_s": sorted(inside)[len(inside) // 2] if inside else 0.0,
        "overhead_around_s": around,
        "driver_cpu_s": (cpu_after.ru_utime + cpu_after.ru_stime) - (cpu_before.ru_utime + cpu_before.ru_stime),
        "driver_peak_rss_mb": cpu_after.ru_maxrss / 1024,  # tables included (they profile the networks)
        "driver_sweep_rss_mb": max((mb for t, mb in workers.driver if t <= began + outcome.wall_seconds), default=0.0),
        "worker_peak_rss_mb": worker_peak_mb,
        **store,
        "metric_rows_per_s": store["metric_rows"] / wall,
        "tables_s": sum(tables_s),
        "launcher_lines": len(lines),  # what the sweep logs (the parent adds its console's lines)
        "table_files": sorted(
            str(path.relative_to(work / f"tables-{width}"))
            for path in (work / f"tables-{width}").rglob("*")
            if path.is_file()
        ),
    }
    print(json.dumps(figures), flush=True)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--widths", default="4,15,55,115")
    parser.add_argument("--out", default=None)
    parser.add_argument("--one", type=int, default=None, help="measure this width in this process")
    parser.add_argument("--work", default=None, help="with --one: the folder to run in")
    args = parser.parse_args(argv)
    os.environ.pop("MARKET1501_ROOT", None)  # a rehearsal needs no dataset
    if args.one is not None:
        measure(args.one, Path(args.work or tempfile.mkdtemp(prefix="bench-width-")))
        return 0
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-width-") as tmp:
        for width in (int(w) for w in args.widths.split(",")):
            # A process per width: the driver's peak memory and CPU are that width's alone.
            done = subprocess.run(
                [sys.executable, __file__, "--one", str(width), "--work", tmp],
                check=True,
                stdout=subprocess.PIPE,
                text=True,
            )
            printed = done.stdout.splitlines()
            figures = json.loads([ln for ln in printed if ln.startswith('{"width"')][-1])
            # the console: the sweep's log lines and what its console printed (trial lines,
            # progress, verdicts, the final table), Ray's stderr aside
            figures["console_lines"] = figures["launcher_lines"] + sum(
                1 for ln in printed if not ln.startswith('{"width"')
            )
            results.append(figures)
            print(json.dumps(figures), flush=True)
    print(
        f"{'trials':>6} {'wall s':>7} {'inside s':>8} {'around s':>8} {'driver cpu s':>12} {'rss MB':>7} {'peak MB':>7} "
        f"{'worker MB':>9} {'store MB':>8} {'rows/s':>7} {'tables s':>8}"
    )
    for row in results:
        print(
            f"{row['trials']:>6} {row['wall_s']:>7.0f} {row['overhead_inside_s']:>8.2f} {row['overhead_around_s']:>8.2f} "
            f"{row['driver_cpu_s']:>12.1f} {row['driver_sweep_rss_mb']:>7.0f} {row['driver_peak_rss_mb']:>7.0f} "
            f"{row['worker_peak_rss_mb']:>9.0f} "
            f"{row['store_mb']:>8.1f} "
            f"{row['metric_rows_per_s']:>7.1f} {row['tables_s']:>8.1f}"
        )
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
