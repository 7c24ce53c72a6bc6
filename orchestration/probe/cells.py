"""The probe's candidates and its decision, all pure (no Ray, torch or processes; tested on
recorded figures): what the spec leaves open, the cells worth measuring on a kind of node,
the cell the built-in rules would run, and `decide`, which picks a winner from measured rows.

A row (one measured cell) is a plain dict, as cached and recorded: the Cell's fields +
`status` ("ok", "oom", "compile_failed", "failed", "timeout", "skipped") +
`images_per_second` (+ `repeat`: a second figure measured side by side, + `note`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from reid_core.config import TrainConfig, flatten
from reid_core.presets import preset_config

from ..sweep.ray_tune import max_concurrent as resolve_max_concurrent
from ..sweep.spec import SweepSpec

PIPELINE, COMPILE = "data.pipeline", "runtime.compile"
PIPELINES = ("torchvision", "device")
NOISE = 0.05  # a winner must beat the defaults' cell by more than this fraction


@dataclass(frozen=True)
class Cell:
    """One candidate: input pipeline, compile mode, trials at once and threads per trial
    (on a GPU node `processes` trials share one GPU)."""

    pipeline: str
    compile: str
    processes: int
    threads: int

    @property
    def label(self) -> str:
        return f"{self.pipeline}/{self.compile}/{self.processes}x{self.threads}"

    @classmethod
    def of_row(cls, row: Mapping[str, Any]) -> "Cell":
        return cls(row["pipeline"], row["compile"], int(row["processes"]), int(row["threads"]))


def row_label(row: Mapping[str, Any]) -> str:
    return Cell.of_row(row).label


@dataclass
class NodeKind:
    """A kind of node (what the packing depends on) and the Ray nodes of that kind."""

    cpus: int
    gpus: int
    accelerator: str = ""
    node_ids: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        accelerator = f", {self.accelerator}" if self.accelerator else ""
        return f"{self.cpus} CPU, {self.gpus} GPU{accelerator}"


@dataclass
class OpenChoices:
    """What the spec leaves to the probe, and what it runs when left alone."""

    pipeline: bool
    compile: bool
    packing: bool
    base_pipeline: str = "torchvision"
    base_compile: str = "off"
    max_processes: int = 1  # trials the sweep can run at once (its trials, its max_concurrent)

    @property
    def anything(self) -> bool:
        return self.pipeline or self.compile or self.packing


def set_by_spec(spec: SweepSpec, key: str) -> bool:
    """True when the spec itself says `key`: overrides, a grid axis, the search space, or a
    preset that sets it (a preset's value differing from the config default)."""
    if key in spec.overrides or (spec.search is not None and key in spec.search.space):
        return True
    if any(key in trial.overrides for trial in spec.trials):
        return True
    default = flatten(TrainConfig())[key]
    return any(flatten(preset_config(preset)).get(key) != default for preset in {t.preset for t in spec.trials})


def what_is_open(spec: SweepSpec, gpus_per_trial: float | None, max_concurrent: int | None) -> OpenChoices:
    """`max_concurrent`: the --max-concurrent option (None when not given)."""
    first = spec.trials[0].config
    explicit_resources = (
        gpus_per_trial is not None or spec.file.resources.cpu is not None or spec.file.resources.gpu is not None
    )
    concurrent = resolve_max_concurrent(max_concurrent, spec)
    return OpenChoices(
        pipeline=not set_by_spec(spec, PIPELINE),
        compile=not set_by_spec(spec, COMPILE),
        packing=not explicit_resources and concurrent is None,
        base_pipeline=first.data.pipeline,
        base_compile=first.runtime.compile,
        max_processes=max(1, min(concurrent or spec.num_trials, spec.num_trials)),
    )


def default_cell(kind: NodeKind, left_open: OpenChoices, default_resources: Mapping[str, float]) -> Cell:
    """The cell the built-in rules run: the spec's pipeline and compile mode, and the packing
    that `default_resources` (ray_tune.resources_rule's answer) gives on nodes of `kind`."""
    cpus = max(1, int(default_resources.get("cpu", 1)))
    gpu_share = float(default_resources.get("gpu", 0))
    if kind.gpus and gpu_share > 0:
        per_gpu = max(1, round(1 / gpu_share)) if gpu_share < 1 else 1
        return Cell(left_open.base_pipeline, left_open.base_compile, per_gpu, cpus)
    processes = max(1, min(kind.cpus // cpus, left_open.max_processes))
    return Cell(left_open.base_pipeline, left_open.base_compile, processes, cpus)


def packings(kind: NodeKind, left_open: OpenChoices) -> list[tuple[int, int]]:
    """(trials at once, threads each) to try: per GPU 1/2/4 trials sharing the node's CPUs
    per GPU (at most 4); on a CPU node 1/2/4 processes x cores/processes threads and one
    1-thread trial per core (the built-in rule). Never more than the sweep's trials."""
    if kind.gpus:
        cpus_per_gpu = max(1, min(4, kind.cpus // kind.gpus))
        return [(trials, max(1, cpus_per_gpu // trials)) for trials in (1, 2, 4) if trials <= left_open.max_processes]
    out: list[tuple[int, int]] = []
    for processes in (1, 2, 4, kind.cpus):
        layout = (processes, kind.cpus // processes)
        if processes <= kind.cpus and processes <= left_open.max_processes and layout not in out:
            out.append(layout)
    return out


def cell_resources(cell: Cell, kind: NodeKind) -> tuple[dict[str, float], int | None]:
    """(per-trial resources, max_concurrent) that run `cell` on nodes of `kind`."""
    if kind.gpus:
        return {"cpu": float(cell.threads), "gpu": 1.0 / cell.processes}, None
    return {"cpu": float(cell.threads), "gpu": 0.0}, cell.processes


def row_rate(row: Mapping[str, Any]) -> float:
    """A row's images/s: the mean of its figures (the first, and the repeat if any)."""
    figures = [row["images_per_second"], *([row["repeat"]] if row.get("repeat") else [])]
    return sum(figures) / len(figures)


def decide(
    table: Sequence[Mapping[str, Any]], default: Cell, noise: float = NOISE, preliminary: bool = False
) -> tuple[Cell | None, str]:
    """(winning cell, why) from measured rows; None when no cell worked. A winner other than
    the defaults must beat them by `noise`, by twice that when it was not measured again
    side by side (unless `preliminary`: the question then is whether to repeat it)."""
    worked = [row for row in table if row["status"] == "ok" and row.get("images_per_second")]
    if not worked:
        failures = "; ".join(f"{row_label(row)}: {row['status']} {row.get('note', '')}".strip() for row in table)
        return None, f"no probed choice worked ({failures or 'nothing measured'})"
    best = max(worked, key=row_rate)
    best_cell, best_rate = Cell.of_row(best), row_rate(best)
    base = next((row for row in worked if Cell.of_row(row) == default), None)
    ruled = [f"{row_label(row)} {row['status']}" for row in table if row["status"] not in ("ok", "skipped")]
    skipped = [row_label(row) for row in table if row["status"] == "skipped"]
    ruled_out = (f"; ruled out: {', '.join(ruled)}" if ruled else "") + (
        f"; not measured (budget spent): {', '.join(skipped)}" if skipped else ""
    )
    if base is None:
        return best_cell, (
            f"{best_cell.label} is the fastest that worked ({best_rate:.1f} img/s); the defaults' own cell "
            f"({default.label}) did not run{ruled_out}"
        )
    base_rate = row_rate(base)
    if best_cell == default:
        return default, f"the defaults ({default.label}) are the fastest ({base_rate:.1f} img/s){ruled_out}"
    if not preliminary and best.get("repeat") is None:
        noise *= 2
    if best_rate <= base_rate * (1 + noise):
        return default, (
            f"the defaults ({default.label}, {base_rate:.1f} img/s) kept: the fastest alternative "
            f"({best_cell.label}, {best_rate:.1f} img/s) is within the {100 * noise:.0f}% noise margin"
        )
    if best.get("repeat") is not None and base.get("repeat") is not None and best["repeat"] <= base["repeat"]:
        # measured again side by side: a winner must win that round too
        return default, (
            f"the defaults ({default.label}) kept: {best_cell.label} won the first round "
            f"({best['images_per_second']:.1f} vs {base['images_per_second']:.1f} img/s) but not the repeat "
            f"({best['repeat']:.1f} vs {base['repeat']:.1f})"
        )
    return best_cell, (
        f"{best_cell.label} is the fastest: {best_rate:.1f} img/s, {best_rate / base_rate:.2f}x the defaults "
        f"({default.label}, {base_rate:.1f} img/s){ruled_out}"
    )
