"""Measuring one kind of node: the greedy plan (one knob at a time, within a budget) and the
`measure` function that runs cells in real worker processes (reid_core/throughput.py).

The plan, on the sweep's first trial config and its own data:
  1. data.pipeline: torchvision vs device, at the defaults' packing;
  2. runtime.compile: off vs default, with the faster pipeline (GPU only);
     (the cells of 1, and of 2, train in the same worker processes, one trainer per cell,
     window by window in the order A B B A, so load that comes and goes slows them alike;
     if that fails, e.g. out of memory, each cell runs on its own so the failure is its own)
  3. packing: `cells.packings` (trials per GPU, or processes x threads on a CPU node).
A cell that runs out of memory, fails to compile or crashes is ruled out; once the budget
is spent the remaining cells are skipped. A preliminary winner other than the defaults, in
another layout, is measured again next to the defaults before `cells.decide` may take it.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from .cells import COMPILE, PIPELINE, PIPELINES, Cell, NodeKind, OpenChoices, decide, packings
from .nodes import device_of

Log = Callable[[str], None]
# measure(cell, window_s, timeout_s) -> {"status", "aggregate_images_per_second", "error", "wall_seconds"};
# it may carry `.alternate(cells, window_s, timeout_s)`: the cells of one layout in the same workers.
Measure = Callable[[Cell, float, float], dict[str, Any]]
DEFAULT_BUDGET_S = 60.0
INJECT_ENV = "COMPACT_REID_PROBE_INJECT"


@dataclass(frozen=True)
class KindProbe:
    """Everything the probe of one kind of node needs (sent as is to a Ray task on another node)."""

    kind: NodeKind
    left_open: OpenChoices
    default: Cell
    config: dict[str, Any]  # the first trial's TrainConfig as a plain dict
    data_root: str
    data_name: str
    budget_s: float = DEFAULT_BUDGET_S
    window_s: float | None = None  # None: 8 s on a GPU node, 5 s on a CPU node


class _GreedyPlan:
    """The measured rows of one probe, and the budget they draw on."""

    def __init__(self, measure: Measure, budget_s: float, window_s: float, log: Log) -> None:
        self.measure, self.budget_s, self.window_s, self.log = measure, budget_s, window_s, log
        self.started = time.perf_counter()
        self.rows: dict[Cell, dict[str, Any]] = {}
        self.walls: list[float] = [0.0]  # wall seconds of each measurement

    def left(self, budget_s: float | None = None) -> float:
        return (self.budget_s if budget_s is None else budget_s) - (time.perf_counter() - self.started)

    def rate(self, cell: Cell) -> float:
        """The cell's mean images/s (both figures when repeated); -1 when it did not work."""
        row = self.rows.get(cell)
        if not row or row["status"] != "ok" or not row["images_per_second"]:
            return -1.0
        return (row["images_per_second"] + (row.get("repeat") or row["images_per_second"])) / 2

    def run(self, cell: Cell) -> None:
        """Measure one cell on its own (once); the first cell always runs, later ones only
        while a window of budget is left."""
        if cell in self.rows:
            return
        left = self.left()
        row: dict[str, Any] = {**dataclasses.asdict(cell), "images_per_second": None}
        if self.rows and left < self.window_s:
            self.rows[cell] = {**row, "status": "skipped", "note": f"probe budget ({self.budget_s:.0f} s) spent"}
            return
        result = self.measure(cell, self.window_s, max(self.window_s + 30.0, left + 15.0))
        self.walls.append(float(result.get("wall_seconds", self.window_s)))
        row.update(status=result["status"], wall_seconds=round(float(result.get("wall_seconds", 0.0)), 1))
        if result["status"] == "ok":
            row["images_per_second"] = round(float(result["aggregate_images_per_second"]), 2)
        else:
            row["note"] = str(result.get("error", ""))[:200]
        self.rows[cell] = row
        figure = f"{row['images_per_second']:.1f} img/s" if row["images_per_second"] is not None else row["status"]
        self.log(f"  probe {cell.label}: {figure} ({row['wall_seconds']:.0f} s)")

    def run_alternating(self, cells: list[Cell]) -> None:
        """Cells of one layout in the same workers, window by window in the order A B B A;
        on a failure (or too little budget) each cell on its own instead."""
        left = self.left()
        results = None
        if left > self.window_s * 2 * len(cells):
            alternate = getattr(self.measure, "alternate", None)
            if alternate is not None:
                results = alternate(cells, self.window_s, max(self.window_s * 4 * len(cells) + 60.0, left + 15.0))
            else:
                results = self._one_by_one_in_order(cells, left)
        if results is None or any(result["status"] != "ok" for result in results):
            for cell in cells:
                self.rows.pop(cell, None)
                self.run(cell)
            return
        for cell, result in zip(cells, results):
            self.walls.append(float(result.get("wall_seconds", self.window_s)))
            self.rows[cell] = {
                **dataclasses.asdict(cell),
                "images_per_second": round(float(result["aggregate_images_per_second"]), 2),
                "repeat": round(float(result["repeat"]), 2),
                "status": "ok",
                "wall_seconds": round(float(result.get("wall_seconds", 0.0)), 1),
                "note": "alternated with " + ", ".join(other.label for other in cells if other != cell),
            }
            row = self.rows[cell]
            self.log(
                f"  probe {cell.label}: {row['images_per_second']:.1f} then {row['repeat']:.1f} img/s (alternated)"
            )

    def _one_by_one_in_order(self, cells: list[Cell], left: float) -> list[dict[str, Any]]:
        """A `measure` without `.alternate` (injected ones): each cell alone, in the order A B B A."""
        got: dict[Cell, list[dict[str, Any]]] = {cell: [] for cell in cells}
        for cell in cells + cells[::-1]:
            got[cell].append(self.measure(cell, self.window_s, max(self.window_s + 30.0, left + 15.0)))
        return [
            {**got[cell][0], "repeat": got[cell][1].get("aggregate_images_per_second")}
            if all(result["status"] == "ok" for result in got[cell])
            else next(result for result in got[cell] if result["status"] != "ok")
            for cell in cells
        ]

    def confirm(self, winner: Cell, default: Cell) -> None:
        """The winner and the defaults measured again, the defaults last (a machine that warms
        up favours them); this may overrun the budget by 15%."""
        left = self.left(self.budget_s * 1.15)
        if left < 2 * max(self.walls):
            self.rows[winner]["note"] = "not repeated (probe budget spent)"
            return
        for cell in (winner, default):
            result = self.measure(cell, self.window_s, max(self.window_s + 30.0, left))
            ok = result["status"] == "ok"
            self.rows[cell]["repeat"] = round(float(result["aggregate_images_per_second"]), 2) if ok else 0.0
            self.log(f"  probe {cell.label} again: {self.rows[cell]['repeat']:.1f} img/s")


def plan_and_measure(
    kind: NodeKind,
    left_open: OpenChoices,
    default: Cell,
    measure: Measure,
    budget_s: float,
    window_s: float,
    log: Log,
) -> list[dict[str, Any]]:
    """The greedy probe of one kind of node (module docstring); the measured rows."""
    plan = _GreedyPlan(measure, budget_s, window_s, log)
    pipeline, compile_mode = default.pipeline, default.compile
    processes, threads = default.processes, default.threads
    if left_open.pipeline:
        cells = [default] + [Cell(other, compile_mode, processes, threads) for other in PIPELINES if other != pipeline]
        plan.run_alternating(cells)
        pipeline = max(cells, key=plan.rate).pipeline
    else:
        plan.run(default)
    if left_open.compile and kind.gpus:
        modes = dict.fromkeys((compile_mode, "off", "default"))
        cells = [Cell(pipeline, mode, processes, threads) for mode in modes]
        plan.run_alternating(cells)
        compile_mode = max(cells, key=plan.rate).compile
    if left_open.packing:
        for trials, trial_threads in packings(kind, left_open):
            plan.run(Cell(pipeline, compile_mode, trials, trial_threads))
    winner, _ = decide(list(plan.rows.values()), default, preliminary=True)
    if winner is not None and winner != default and plan.rate(default) > 0:
        if (winner.processes, winner.threads) != (default.processes, default.threads):
            plan.confirm(winner, default)
    return list(plan.rows.values())


def worker_measure(
    config: Mapping[str, Any], data_root: str, data_name: str, device: str, scratch: str, warmup: int
) -> Measure:
    """`measure` over real worker processes (reid_core.throughput.measure_processes)."""
    from reid_core.throughput import measure_processes

    def base_job(overrides: dict[str, Any]) -> dict[str, Any]:
        return {
            "config": dict(config),
            "data": data_root,
            "dataset_name": data_name,
            "device": device,
            "scratch": scratch,
            "warmup": warmup,
            "overrides": overrides,
        }

    def measure(cell: Cell, window: float, timeout: float) -> dict[str, Any]:
        job = base_job({PIPELINE: cell.pipeline, COMPILE: cell.compile})
        job.update(injected_failure([cell]))
        return measure_processes(job, cell.processes, cell.threads, window, timeout=timeout)

    def alternate(cells: list[Cell], window: float, timeout: float) -> list[dict[str, Any]]:
        job = {
            **base_job({}),
            "variants": [{PIPELINE: cell.pipeline, COMPILE: cell.compile} for cell in cells],
            "pattern": list(range(len(cells))) + list(range(len(cells)))[::-1],
            **injected_failure(cells),
        }
        result = measure_processes(job, cells[0].processes, cells[0].threads, window, timeout=timeout)
        if result["status"] != "ok":
            return [result for _ in cells]
        wall = result["wall_seconds"] / len(cells)
        return [
            {"status": "ok", "aggregate_images_per_second": first, "repeat": again, "wall_seconds": wall}
            for first, again in result["variants"]
        ]

    measure.alternate = alternate  # type: ignore[attr-defined]
    return measure


def injected_failure(cells: list[Cell]) -> dict[str, str]:
    """Test seam: COMPACT_REID_PROBE_INJECT='LABEL=oom,LABEL2=compile_failed' ('*' = every
    cell) makes the workers of those cells fail as real ones would: {"inject": what} or {}."""
    parts = [part.partition("=") for part in os.environ.get(INJECT_ENV, "").split(",") if part]
    for cell in cells:
        for label, _, what in parts:
            if label in (cell.label, "*"):
                return {"inject": what}
    return {}


def probe_kind(job: KindProbe, measure: Measure | None = None, log: Log = print) -> dict[str, Any]:
    """Probe this machine (a node of `job.kind`): {"device", "table", "seconds"}."""
    started = time.perf_counter()
    kind = job.kind
    window = job.window_s if job.window_s is not None else (8.0 if kind.gpus else 5.0)
    with tempfile.TemporaryDirectory(prefix="resource-probe-") as scratch:
        device = "cuda" if kind.gpus else "cpu"
        warmup = 10 if kind.gpus else 2
        measure = measure or worker_measure(job.config, job.data_root, job.data_name, device, scratch, warmup)
        table = plan_and_measure(kind, job.left_open, job.default, measure, job.budget_s, window, log)
    return {"device": device_of(kind), "table": table, "seconds": time.perf_counter() - started}
