"""`resources: auto`: the input pipeline, compile mode and trial packing a sweep runs with,
chosen by a short measurement on the machine(s) it runs on, cached, and recorded.

`choose_resources(spec, data_root, data_name, ...)` is what the runner calls once the data is
ready. It works out what the spec leaves open (explicit `resources: {cpu, gpu}`,
`--gpus-per-trial`, `data.pipeline` / `runtime.compile` in the overrides, grid, search space
or preset always win), then, per kind of node, measures aggregate training images/s of the
sweep's own first trial config on its own data (reid_core/throughput.py, worker processes):

  1. data.pipeline: torchvision vs device, at the default packing;
  2. runtime.compile: off vs default, with the faster pipeline (GPU only);
     (the cells of 1 and of 2 run in the same worker processes, one trainer per cell,
     window by window in the order A B B A, so load that comes and goes slows them alike;
     if that fails, e.g. out of memory, each cell runs on its own so the failure is its own)
  3. packing: 1 / 2 / 4 trials per GPU, or on a CPU node processes x threads (1 x all
     cores, 2 x half, 4 x a quarter, and the default: one 1-thread trial per core), capped
     at the number of trials the sweep has.

A greedy search, one knob at a time, within a budget (`budget_s`, 60 s by default); a cell
that runs out of memory, fails to compile or crashes is ruled out. The fastest cell wins
only if it beats the defaults' own cell by more than `NOISE` (else the defaults are kept),
and a winner other than the defaults is measured again, interleaved with the defaults,
before it is taken. A probe with no usable cell falls back to the defaults and says why.

The result is cached per (device model, preset, input size, versions, what was open) in
`$COMPACT_REID_CACHE/resource-probe.json` (default ~/.cache/compact-reid); `reprobe`
ignores the cache; a corrupt cache or one of another version is ignored and rewritten.

On a cluster, each kind of node (CPUs, GPUs, accelerator type) is probed by a Ray task
pinned to one node of that kind (NodeAffinitySchedulingStrategy); every kind's choice is
recorded. Ray Tune gives all trials of a sweep the same resources and configs, so the
sweep applies the choice of the kind with the most accelerators (or CPUs).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from .trial_plan import SweepSpec

Log = Callable[[str], None]
PROBE_VERSION = 2  # 2: pipeline / compile cells alternated in the same workers
NOISE = 0.05  # a winner must beat the defaults' cell by more than this fraction
DEFAULT_BUDGET_S = 60.0
CACHE_FILE = "resource-probe.json"
PIPELINE, COMPILE = "data.pipeline", "runtime.compile"
PIPELINES = ("torchvision", "device")
# On the parent MLflow run (kept here, not in mlflow_log/names.py, while issue branches merge)
CHOICE_ARTIFACT = "resource_choice.json"
RESOURCES_TAG = "compact_reid.resources."  # + source, choice, reason
PROBE_TAG = "compact_reid.probe."  # + <pipeline>.<compile>.<trials>x<threads>: a probed figure


@dataclass(frozen=True)
class Cell:
    """One candidate: input pipeline, compile mode, trials at once and threads per trial
    (per GPU on a GPU node: `processes` trials share one GPU)."""

    pipeline: str
    compile: str
    processes: int
    threads: int

    @property
    def label(self) -> str:
        return f"{self.pipeline}/{self.compile}/{self.processes}x{self.threads}"


@dataclass
class NodeKind:
    """A kind of node: what the packing depends on."""

    cpus: int
    gpus: int
    accelerator: str = ""
    node_ids: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        acc = f", {self.accelerator}" if self.accelerator else ""
        return f"{self.cpus} CPU, {self.gpus} GPU{acc}"


@dataclass
class Open:
    """What the spec leaves to the probe."""

    pipeline: bool
    compile: bool
    packing: bool
    base_pipeline: str = "torchvision"
    base_compile: str = "off"
    max_processes: int = 1  # trials the sweep can run at once (trials, max_concurrent)

    @property
    def anything(self) -> bool:
        return self.pipeline or self.compile or self.packing


@dataclass
class ResourceChoice:
    """What the sweep runs with, and why."""

    resources: dict[str, float]
    max_concurrent: int | None
    threads: int
    overrides: dict[str, Any]
    table: list[dict[str, Any]]
    reason: str
    source: str  # probe | cache | spec | defaults | fallback
    device: str = ""
    node_kind: str = ""
    probe_seconds: float = 0.0
    per_kind: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def lines(self) -> list[str]:
        """What the sweep prints at its start."""
        out = [f"resources ({self.source}{', ' + self.device if self.device else ''}):"]
        if self.table:
            out.append(f"  {'pipeline':<12}{'compile':<9}{'trials x threads':>17}{'images/s':>11}{'again':>8}  status")
            for r in self.table:
                fig = f"{r['images_per_second']:.1f}" if r.get("images_per_second") is not None else "-"
                again = f"{r['repeat']:.1f}" if r.get("repeat") is not None else "-"
                note = r["status"] + (f" ({r['note']})" if r.get("note") else "")
                out.append(
                    f"  {r['pipeline']:<12}{r['compile']:<9}{r['processes']:>8} x {r['threads']:<6}{fig:>11}{again:>8}"
                    f"  {note}"
                )
        ov = ", ".join(f"{k}={v}" for k, v in self.overrides.items())
        mc = self.max_concurrent if self.max_concurrent else "as resources allow"
        out.append(
            f"  choice: {self.resources['cpu']:g} CPU + {self.resources['gpu']:g} GPU per trial, "
            f"{self.threads} thread(s), max_concurrent {mc}" + (f", {ov}" if ov else "")
        )
        out.append(f"  why: {self.reason}")
        for kind, d in self.per_kind.items():
            if kind != self.node_kind:
                out.append(f"  node kind {kind}: {d.get('summary', '')} (recorded, not applied)")
        return out


# ---------------------------------------------------------------------------------
# what is open


def _set_anywhere(spec: SweepSpec, key: str) -> bool:
    """True when the spec itself says `key`: overrides, a grid axis, the search space or a
    preset that sets it (a preset's value differing from the config default)."""
    from reid_core.config import TrainConfig, flatten
    from reid_core.presets import preset_config

    if key in spec.overrides or (spec.search is not None and key in spec.search.space):
        return True
    if any(key in t.overrides for t in spec.trials):
        return True
    default = flatten(TrainConfig())[key]
    return any(flatten(preset_config(p)).get(key) != default for p in {t.preset for t in spec.trials})


def open_choices(spec: SweepSpec, gpus_per_trial: float | None, max_concurrent: int | None, cpus: int) -> Open:
    cfg = spec.trials[0].config_dict
    explicit_resources = (
        gpus_per_trial is not None or spec.file.resources.cpu is not None or spec.file.resources.gpu is not None
    )
    limit = max_concurrent or spec.file.max_concurrent or spec.num_trials
    return Open(
        pipeline=not _set_anywhere(spec, PIPELINE),
        compile=not _set_anywhere(spec, COMPILE),
        packing=not explicit_resources and not (max_concurrent or spec.file.max_concurrent),
        base_pipeline=cfg["data"]["pipeline"],
        base_compile=cfg["runtime"]["compile"],
        max_processes=max(1, min(limit, spec.num_trials)),
    )


# ---------------------------------------------------------------------------------
# candidates and the decision (pure: tested on recorded figures)


def default_cell(kind: NodeKind, open_: Open, default_resources: Mapping[str, float]) -> Cell:
    """The cell the old defaults run: spec's pipeline/compile, `trial_resources`' packing."""
    cpu = max(1, int(default_resources.get("cpu", 1)))
    gpu = float(default_resources.get("gpu", 0))
    if kind.gpus and gpu > 0:
        per_gpu = max(1, round(1 / gpu)) if gpu < 1 else 1
        return Cell(open_.base_pipeline, open_.base_compile, per_gpu, cpu)
    return Cell(open_.base_pipeline, open_.base_compile, max(1, min(kind.cpus // cpu, open_.max_processes)), cpu)


def packings(kind: NodeKind, open_: Open) -> list[tuple[int, int]]:
    """(trials at once, threads each) to try: per GPU 1/2/4 trials with the node's CPUs per
    GPU shared (at most 4 each); on a CPU node 1/2/4 processes x cores/processes threads
    and one 1-thread trial per core (the old default). At most the sweep's trials."""
    if kind.gpus:
        per_gpu = max(1, min(4, kind.cpus // kind.gpus))
        return [(k, max(1, per_gpu // k)) for k in (1, 2, 4) if k <= open_.max_processes]
    out = []
    for p in (1, 2, 4, kind.cpus):
        if p <= kind.cpus and p <= open_.max_processes and (p, kind.cpus // p) not in out:
            out.append((p, kind.cpus // p))
    return out


def cell_resources(cell: Cell, kind: NodeKind) -> tuple[dict[str, float], int | None]:
    """(per-trial resources, max_concurrent) that run `cell` on nodes of `kind`."""
    if kind.gpus:
        return {"cpu": float(cell.threads), "gpu": 1.0 / cell.processes}, None
    return {"cpu": float(cell.threads), "gpu": 0.0}, cell.processes


def decide(
    table: Sequence[Mapping[str, Any]], default: Cell, noise: float = NOISE, preliminary: bool = False
) -> tuple[Cell | None, str]:
    """(winning cell, why) from measured rows; None when no cell worked. A row: the Cell's
    fields + status + images_per_second (+ repeat: a second figure). A winner other than
    the defaults must beat them by `noise`, by twice that when it could not be measured
    again side by side (unless `preliminary`: the question is then whether to repeat it)."""
    ok = [r for r in table if r["status"] == "ok" and r.get("images_per_second")]
    if not ok:
        why = "; ".join(f"{_label(r)}: {r['status']} {r.get('note', '')}".strip() for r in table) or "nothing measured"
        return None, f"no probed choice worked ({why})"

    def rate(r: Mapping[str, Any]) -> float:
        figs = [r["images_per_second"], *([r["repeat"]] if r.get("repeat") else [])]
        return sum(figs) / len(figs)

    best = max(ok, key=rate)
    base = next((r for r in ok if _cell(r) == default), None)
    ruled = [f"{_label(r)} {r['status']}" for r in table if r["status"] != "ok"]
    ruled_s = f"; ruled out: {', '.join(ruled)}" if ruled else ""
    if base is None:
        return _cell(best), (
            f"{_label(best)} is the fastest that worked ({rate(best):.1f} img/s); the defaults' own cell "
            f"({default.label}) did not run{ruled_s}"
        )
    if not preliminary and best.get("repeat") is None:
        noise *= 2
    if _cell(best) == default or rate(best) <= rate(base) * (1 + noise):
        return default, (
            f"the defaults ({default.label}, {rate(base):.1f} img/s) kept: the fastest alternative "
            f"({_label(best)}, {rate(best):.1f} img/s) is within the {100 * noise:.0f}% noise margin"
            if _cell(best) != default
            else f"the defaults ({default.label}) are the fastest ({rate(base):.1f} img/s){ruled_s}"
        )
    if best.get("repeat") is not None and base.get("repeat") is not None and best["repeat"] <= base["repeat"]:
        # measured again side by side: a winner must win that round too
        return default, (
            f"the defaults ({default.label}) kept: {_label(best)} won the first round "
            f"({best['images_per_second']:.1f} vs {base['images_per_second']:.1f} img/s) but not the repeat "
            f"({best['repeat']:.1f} vs {base['repeat']:.1f})"
        )
    return _cell(best), (
        f"{_label(best)} is the fastest: {rate(best):.1f} img/s, {rate(best) / rate(base):.2f}x the defaults "
        f"({default.label}, {rate(base):.1f} img/s){ruled_s}"
    )


def _cell(r: Mapping[str, Any]) -> Cell:
    return Cell(r["pipeline"], r["compile"], int(r["processes"]), int(r["threads"]))


def _label(r: Mapping[str, Any]) -> str:
    return _cell(r).label


# ---------------------------------------------------------------------------------
# the probe of one kind of node


Measure = Callable[[Cell, float, float], dict[str, Any]]


def plan_and_measure(
    kind: NodeKind, open_: Open, default: Cell, measure: Measure, budget_s: float, window_s: float, log: Log
) -> list[dict[str, Any]]:
    """The greedy probe: pipeline, then compile (GPU), then packing; `measure(cell, window,
    timeout)` -> {"status", "aggregate_images_per_second", "error", "wall_seconds"}."""
    t0 = time.perf_counter()
    rows: dict[Cell, dict[str, Any]] = {}
    per_cell = [0.0]

    def run(cell: Cell) -> dict[str, Any] | None:
        if cell in rows:
            return rows[cell]
        left = budget_s - (time.perf_counter() - t0)
        need = max(per_cell) if per_cell[0] else window_s
        row: dict[str, Any] = {**dataclasses.asdict(cell), "images_per_second": None}
        if rows and left < need:
            rows[cell] = {**row, "status": "skipped", "note": f"probe budget ({budget_s:.0f} s) spent"}
            return rows[cell]
        timeout = max(window_s + 30.0, left + 15.0)
        r = measure(cell, window_s, timeout)
        per_cell.append(float(r.get("wall_seconds", window_s)))
        row.update(status=r["status"], wall_seconds=round(float(r.get("wall_seconds", 0.0)), 1))
        if r["status"] == "ok":
            row["images_per_second"] = round(float(r["aggregate_images_per_second"]), 2)
        else:
            row["note"] = str(r.get("error", ""))[:200]
        rows[cell] = row
        fig = f"{row['images_per_second']:.1f} img/s" if row["images_per_second"] is not None else r["status"]
        log(f"  probe {cell.label}: {fig} ({row['wall_seconds']:.0f} s)")
        return row

    def rate(c: Cell) -> float:
        r = rows.get(c)
        if not r or r["status"] != "ok" or not r["images_per_second"]:
            return -1.0
        return (r["images_per_second"] + (r.get("repeat") or r["images_per_second"])) / 2

    def run_alternating(cells: list[Cell]) -> None:
        """Cells of one layout in the same workers, window by window in the order A B B A:
        load that comes and goes slows them alike. A failure: each cell on its own instead."""
        left = budget_s - (time.perf_counter() - t0)
        alt = getattr(measure, "alternate", None)
        results = None
        if left > window_s * 2 * len(cells):
            if alt is not None:
                results = alt(cells, window_s, max(window_s * 4 * len(cells) + 60.0, left + 15.0))
            else:  # a plain measure (tests): one cell at a time, in the same order
                order = cells + cells[::-1]
                got = {c: [] for c in cells}
                for c in order:
                    got[c].append(measure(c, window_s, max(window_s + 30.0, left + 15.0)))
                results = [
                    {**got[c][0], "repeat": got[c][1].get("aggregate_images_per_second")}
                    if all(g["status"] == "ok" for g in got[c])
                    else next(g for g in got[c] if g["status"] != "ok")
                    for c in cells
                ]
        if results is None or any(r["status"] != "ok" for r in results):
            for c in cells:
                rows.pop(c, None)
                run(c)
            return
        for c, r in zip(cells, results):
            per_cell.append(float(r.get("wall_seconds", window_s)))
            rows[c] = {
                **dataclasses.asdict(c),
                "images_per_second": round(float(r["aggregate_images_per_second"]), 2),
                "repeat": round(float(r["repeat"]), 2),
                "status": "ok",
                "wall_seconds": round(float(r.get("wall_seconds", 0.0)), 1),
                "note": "alternated with " + ", ".join(x.label for x in cells if x != c),
            }
            log(
                f"  probe {c.label}: {rows[c]['images_per_second']:.1f} then {rows[c]['repeat']:.1f} img/s (alternated)"
            )

    pipe, comp, procs, threads = default.pipeline, default.compile, default.processes, default.threads
    if open_.pipeline:
        cells = [default] + [Cell(p, comp, procs, threads) for p in PIPELINES if p != default.pipeline]
        run_alternating(cells)
        pipe = max(cells, key=rate).pipeline
    else:
        run(default)
    if open_.compile and kind.gpus:
        cells = [Cell(pipe, comp, procs, threads)] + [Cell(pipe, c, procs, threads) for c in ("off", "default")]
        cells = list(dict.fromkeys(cells))
        run_alternating(cells)
        comp = max(cells, key=rate).compile
    if open_.packing:
        for k, t in packings(kind, open_):
            run(Cell(pipe, comp, k, t))
    # The winner, if not the defaults, is measured again next to the defaults.
    table = list(rows.values())
    winner, _ = decide(table, default, preliminary=True)
    same_layout = winner is not None and (winner.processes, winner.threads) == (default.processes, default.threads)
    if winner is not None and winner != default and rate(default) > 0 and not same_layout:
        left = budget_s * 1.15 - (time.perf_counter() - t0)  # the confirmation may overrun a little
        if left >= 2 * max(per_cell):
            for c in (winner, default):  # the defaults last: a machine that warms up favours them
                r = measure(c, window_s, max(window_s + 30.0, left))
                rows[c]["repeat"] = round(float(r["aggregate_images_per_second"]), 2) if r["status"] == "ok" else 0.0
                log(f"  probe {c.label} again: {rows[c]['repeat']:.1f} img/s")
        else:
            rows[winner]["note"] = "not repeated (probe budget spent)"
    return list(rows.values())


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
        job = base_job({PIPELINE: cell.pipeline, COMPILE: cell.compile, **_probe_inject(cell)})
        inject = job["overrides"].pop("inject", None)
        if inject:
            job["inject"] = inject
        return measure_processes(job, cell.processes, cell.threads, window, timeout=timeout)

    def alternate(cells: list[Cell], window: float, timeout: float) -> list[dict[str, Any]]:
        """The cells (one layout) in the same workers, windows in the order A B .. B A."""
        inject = next((_probe_inject(c)["inject"] for c in cells if _probe_inject(c)), None)
        job = {
            **base_job({}),
            "variants": [{PIPELINE: c.pipeline, COMPILE: c.compile} for c in cells],
            "pattern": list(range(len(cells))) + list(range(len(cells)))[::-1],
            **({"inject": inject} if inject else {}),
        }
        r = measure_processes(job, cells[0].processes, cells[0].threads, window, timeout=timeout)
        if r["status"] != "ok":
            return [r for _ in cells]
        wall = r["wall_seconds"] / len(cells)
        return [
            {"status": "ok", "aggregate_images_per_second": f[0], "repeat": f[1], "wall_seconds": wall}
            for f in r["variants"]
        ]

    measure.alternate = alternate  # type: ignore[attr-defined]
    return measure


def _probe_inject(cell: Cell) -> dict[str, Any]:
    """Test seam: COMPACT_REID_PROBE_INJECT='LABEL=oom,LABEL2=compile_failed' makes the
    workers of those cells fail as real ones would."""
    spec = os.environ.get("COMPACT_REID_PROBE_INJECT", "")
    for part in filter(None, spec.split(",")):
        label, _, what = part.partition("=")
        if label in (cell.label, "*"):
            return {"inject": what}
    return {}


def probe_kind(
    kind: NodeKind,
    open_: Open,
    default: Cell,
    config: Mapping[str, Any],
    data_root: str,
    data_name: str,
    budget_s: float = DEFAULT_BUDGET_S,
    window_s: float | None = None,
    measure: Measure | None = None,
    log: Log = print,
) -> dict[str, Any]:
    """Probe this machine (a node of `kind`): {"device", "table", "seconds"}."""
    t0 = time.perf_counter()
    device = "cuda" if kind.gpus else "cpu"
    window = window_s if window_s is not None else (8.0 if kind.gpus else 5.0)
    with tempfile.TemporaryDirectory(prefix="resource-probe-") as scratch:
        m = measure or worker_measure(config, data_root, data_name, device, scratch, 10 if kind.gpus else 2)
        table = plan_and_measure(kind, open_, default, m, budget_s, window, log)
    return {"device": _device_of(kind), "table": table, "seconds": time.perf_counter() - t0}


# ---------------------------------------------------------------------------------
# cache


def cache_path(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    base = cache_dir or os.environ.get("COMPACT_REID_CACHE") or Path.home() / ".cache" / "compact-reid"
    return Path(base) / CACHE_FILE


def cache_key(device: str, config: Mapping[str, Any], kind: NodeKind, open_: Open, default: Cell) -> str:
    """(device model, preset, input size, versions, what was open); a readable key."""
    import torch

    try:
        import torchvision

        tv = torchvision.__version__
    except ImportError:  # pragma: no cover - torchvision is a dependency
        tv = "none"
    m, d = config["model"], config["data"]
    parts = {
        "device": device,
        "kind": kind.key,
        "preset": config.get("preset", ""),
        "width": m.get("width_multiplier"),
        "depth": m.get("depth_multiplier"),
        "input": f"{m['input_height']}x{m['input_width']}",
        "batch": f"{d['p']}x{d['k']}",
        "num_workers": d.get("num_workers"),
        "versions": f"probe {PROBE_VERSION}, torch {torch.__version__}, torchvision {tv}",
        "open": [open_.pipeline, open_.compile, open_.packing, open_.max_processes],
        "default": default.label,
    }
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16] + " " + text


def cache_read(path: Path, key: str, log: Log) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
        if (
            not isinstance(data, dict)
            or data.get("version") != PROBE_VERSION
            or not isinstance(data.get("entries"), dict)
        ):
            raise ValueError(f"version {data.get('version') if isinstance(data, dict) else '?'}, not {PROBE_VERSION}")
    except (OSError, ValueError) as e:
        log(f"resource probe cache {path}: ignored ({type(e).__name__}: {e}); it will be rewritten")
        return None
    entry = data["entries"].get(key)
    return entry if isinstance(entry, dict) and isinstance(entry.get("table"), list) else None


def cache_write(path: Path, key: str, entry: Mapping[str, Any], log: Log) -> None:
    entries: dict[str, Any] = {}
    try:
        old = json.loads(path.read_text())
        if isinstance(old, dict) and old.get("version") == PROBE_VERSION and isinstance(old.get("entries"), dict):
            entries = old["entries"]
    except (OSError, ValueError):
        pass
    entries[key] = dict(entry)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"version": PROBE_VERSION, "entries": entries}, indent=1, default=str) + "\n")
        tmp.replace(path)
    except OSError as e:
        log(f"resource probe cache {path}: not written ({e})")


# ---------------------------------------------------------------------------------
# the sweep's entry point


def node_kinds() -> list[NodeKind]:
    """The alive Ray nodes, grouped by (CPUs, GPUs, accelerator type)."""
    import ray

    kinds: dict[tuple[int, int, str], NodeKind] = {}
    for n in ray.nodes():
        if not n.get("Alive"):
            continue
        res = n.get("Resources", {})
        acc = next((k.split(":", 1)[1] for k in res if k.startswith("accelerator_type:")), "")
        key = (int(res.get("CPU", 0)), int(res.get("GPU", 0)), acc)
        kinds.setdefault(key, NodeKind(*key)).node_ids.append(n["NodeID"])
    return list(kinds.values())


def _main_kind(kinds: Sequence[NodeKind]) -> NodeKind:
    """The kind whose choice the sweep applies: the most GPUs in total, then CPUs."""
    return max(kinds, key=lambda k: (k.gpus * len(k.node_ids), k.cpus * len(k.node_ids)))


def choose_resources(
    spec: SweepSpec,
    data_root: str,
    data_name: str,
    *,
    reprobe: bool = False,
    mode: str | None = None,
    default_resources: Mapping[str, float] | None = None,
    gpus_per_trial: float | None = None,
    max_concurrent: int | None = None,
    log: Log = print,
    kinds: Sequence[NodeKind] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    budget_s: float | None = None,
    window_s: float | None = None,
    measure: Measure | None = None,
) -> ResourceChoice:
    """The resources, max_concurrent, threads and config overrides the sweep runs with.

    `mode`: 'auto' (probe what is open) or 'defaults' (the old rules, no probe); None: the
    spec's `resources` (auto unless it says `defaults`). `default_resources`: what
    `ray_tune.trial_resources` gives (the old defaults; also the fallback). `kinds`: the
    node kinds (default: Ray's nodes; tests pass their own). Never raises for a failed
    probe: it falls back to the defaults and says why."""
    args = dict(locals())
    try:
        return _choose(**args)
    except Exception as e:  # noqa: BLE001 - whatever went wrong, the sweep goes on with the defaults
        res = dict(default_resources or {"cpu": 1.0, "gpu": 0.0})
        return ResourceChoice(
            res,
            max_concurrent or spec.file.max_concurrent,
            max(1, int(res["cpu"])),
            {},
            [],
            f"probe failed, so the defaults are used: {type(e).__name__}: {e}",
            "fallback",
        )


def _choose(
    spec: SweepSpec,
    data_root: str,
    data_name: str,
    reprobe: bool,
    mode: str | None,
    default_resources: Mapping[str, float] | None,
    gpus_per_trial: float | None,
    max_concurrent: int | None,
    log: Log,
    kinds: Sequence[NodeKind] | None,
    cache_dir: str | os.PathLike[str] | None,
    budget_s: float | None,
    window_s: float | None,
    measure: Measure | None,
) -> ResourceChoice:
    mode = mode or os.environ.get("COMPACT_REID_RESOURCES") or spec.file.resources.mode
    default_resources = dict(default_resources or {"cpu": 1.0, "gpu": 0.0})
    kinds = list(kinds) if kinds is not None else node_kinds()
    main = _main_kind(kinds)
    open_ = open_choices(spec, gpus_per_trial, max_concurrent, main.cpus)
    default = default_cell(main, open_, default_resources)
    mc_default = max_concurrent or spec.file.max_concurrent

    def fixed(source: str, reason: str, table: list[dict[str, Any]] | None = None, **kw: Any) -> ResourceChoice:
        return ResourceChoice(
            default_resources,
            mc_default,
            max(1, int(default_resources["cpu"])),
            {},
            table or [],
            reason,
            source,
            node_kind=main.key,
            **kw,
        )

    if mode == "defaults":
        return fixed("defaults", "resources: defaults (no probe): the spec's resources, else the built-in rules")
    if not open_.anything:
        return fixed("spec", "the spec sets resources, data.pipeline and runtime.compile: nothing to probe")
    budget = budget_s if budget_s is not None else float(os.environ.get("COMPACT_REID_PROBE_SECONDS", DEFAULT_BUDGET_S))
    config = spec.trials[0].config_dict
    per_kind: dict[str, dict[str, Any]] = {}
    t0 = time.perf_counter()
    for kind in kinds:
        o = open_choices(spec, gpus_per_trial, max_concurrent, kind.cpus)
        d = default_cell(kind, o, default_resources if kind is main else _kind_defaults(kind, spec, gpus_per_trial))
        try:
            per_kind[kind.key] = _probe_cached(
                kind, o, d, config, data_root, data_name, main, reprobe, cache_dir, budget, window_s, measure, log
            )
        except Exception as e:  # noqa: BLE001 - a probe must never take the sweep down
            per_kind[kind.key] = {"table": [], "error": f"{type(e).__name__}: {e}", "source": "probe"}
    res = per_kind[main.key]
    winner, reason = decide(res["table"], default) if res["table"] else (None, res.get("error", "the probe failed"))
    for kind in kinds:
        r = per_kind[kind.key]
        o = open_choices(spec, gpus_per_trial, max_concurrent, kind.cpus)
        dk = default_cell(kind, o, default_resources if kind is main else _kind_defaults(kind, spec, gpus_per_trial))
        w, why = decide(r["table"], dk) if r["table"] else (None, r.get("error", "the probe failed"))
        r["choice"] = w.label if w else None
        r["summary"] = f"{w.label if w else 'defaults'}: {why}"
    if winner is None:
        return fixed(
            "fallback",
            f"probe failed, so the defaults are used: {reason}",
            res["table"],
            device=res.get("device", ""),
            probe_seconds=time.perf_counter() - t0,
            per_kind=per_kind,
        )
    resources, mc = cell_resources(winner, main)
    if not open_.packing:
        resources, mc = default_resources, mc_default
    overrides = {}
    if open_.pipeline and winner.pipeline != open_.base_pipeline:
        overrides[PIPELINE] = winner.pipeline
    if open_.compile and winner.compile != open_.base_compile:
        overrides[COMPILE] = winner.compile
    return ResourceChoice(
        resources,
        mc,
        max(1, int(resources["cpu"])),
        overrides,
        res["table"],
        reason,
        res.get("source", "probe"),
        device=res.get("device", ""),
        node_kind=main.key,
        probe_seconds=time.perf_counter() - t0,
        per_kind=per_kind,
    )


def _kind_defaults(kind: NodeKind, spec: SweepSpec, gpus_per_trial: float | None) -> dict[str, float]:
    """`trial_resources`' rule on one kind of node."""
    gpu = gpus_per_trial if gpus_per_trial is not None else spec.file.resources.gpu
    gpu = (1.0 if kind.gpus else 0.0) if gpu is None else gpu
    cpu = spec.file.resources.cpu
    if cpu is None:
        cpu = float(max(1, min(4, math.floor(kind.cpus / max(kind.gpus, 1) * gpu)))) if gpu > 0 else 1.0
    return {"cpu": float(cpu), "gpu": float(gpu)}


def _probe_cached(
    kind: NodeKind,
    open_: Open,
    default: Cell,
    config: Mapping[str, Any],
    data_root: str,
    data_name: str,
    main: NodeKind,
    reprobe: bool,
    cache_dir: Any,
    budget: float,
    window_s: float | None,
    measure: Measure | None,
    log: Log,
) -> dict[str, Any]:
    path = cache_path(cache_dir)
    device = _device_of(kind)
    key = cache_key(device, config, kind, open_, default)
    if not reprobe:
        hit = cache_read(path, key, log)
        if hit is not None:
            log(
                f"resource probe ({kind.key}, {device}): cached result from {hit.get('date', '?')} ({path}); "
                "--reprobe measures again"
            )
            return {**hit, "source": "cache"}
    log(f"resource probe ({kind.key}, {device}): measuring, up to about {budget:.0f} s")
    args = (kind, open_, default, dict(config), data_root, data_name, budget, window_s)
    if _is_local(kind) or measure is not None:
        out = probe_kind(*args, measure=measure, log=log)
    else:
        out = _remote_probe(kind, args, log)
    entry = {**out, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "key": key}
    if any(r["status"] == "ok" for r in out["table"]):  # a probe that failed entirely is not cached
        cache_write(path, key, entry, log)
    return {**entry, "source": "probe"}


def _device_of(kind: NodeKind) -> str:
    """The device model a kind's cache entry is keyed by (local: measured; remote: Ray's view)."""
    if _is_local(kind):
        from reid_core.throughput import device_model

        try:
            return device_model("cuda" if kind.gpus else "cpu")
        except Exception:  # noqa: BLE001 - e.g. recorded GPU figures replayed on a CPU machine
            pass
    return f"{kind.accelerator or ('GPU' if kind.gpus else 'CPU')} ({kind.key})"


def _is_local(kind: NodeKind) -> bool:
    """True when this process runs on a node of `kind` (or Ray is not running: unit use)."""
    try:
        import ray

        if not ray.is_initialized():
            return True
        return ray.get_runtime_context().get_node_id() in kind.node_ids
    except Exception:  # noqa: BLE001
        return True


def _remote_probe(kind: NodeKind, args: tuple[Any, ...], log: Log) -> dict[str, Any]:
    """The probe as a Ray task pinned to one node of `kind` (its own output goes to the driver's log)."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    # One GPU on a GPU node: Ray then makes exactly that GPU visible to the probe's workers.
    task = ray.remote(num_cpus=0, num_gpus=1 if kind.gpus else 0, max_retries=0)(_probe_task).options(
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=kind.node_ids[0], soft=False)
    )
    return ray.get(task.remote(*args), timeout=args[6] * 3 + 120)


def _probe_task(*args: Any) -> dict[str, Any]:
    return probe_kind(*args, log=lambda m: print(m, flush=True))


def apply_choice(spec: SweepSpec, choice: ResourceChoice) -> SweepSpec:
    """The spec with the choice's config overrides in every trial's config (only keys the
    spec left open are ever in `choice.overrides`)."""
    if not choice.overrides:
        return spec
    trials = []
    for t in spec.trials:
        cfg = json.loads(json.dumps(t.config_dict))
        for key, value in choice.overrides.items():
            section, leaf = key.split(".")
            cfg[section][leaf] = value
        trials.append(dataclasses.replace(t, config_dict=cfg))
    return dataclasses.replace(spec, trials=tuple(trials))


def record(tracker: Any, run_id: str, choice: ResourceChoice, log: Log = print) -> None:
    """On the parent MLflow run: resource_choice.json (the whole table and why) and tags."""
    try:
        tracker.log_parent_json(run_id, choice.to_dict(), CHOICE_ARTIFACT)
        tags = {
            RESOURCES_TAG + "source": choice.source,
            RESOURCES_TAG + "choice": json.dumps(
                {"resources": choice.resources, "max_concurrent": choice.max_concurrent, **choice.overrides}
            ),
            RESOURCES_TAG + "reason": choice.reason[:4000],
        }
        for r in choice.table:
            fig = f"{r['images_per_second']:.2f} img/s" if r.get("images_per_second") is not None else r["status"]
            tags[PROBE_TAG + _label(r).replace("/", ".")] = fig
        for k, v in tags.items():
            tracker.client.set_tag(run_id, k, v)
    except Exception as e:  # noqa: BLE001 - never lose the sweep over its record
        log(f"warning: could not record the resource choice on the parent run: {e}")
