"""The resource probe: what a sweep with `resources: auto` (or `sweep run --resources auto`)
runs with, measured on the machine(s) it runs on; `compact-reid probe SPEC` runs it alone.
Without `resources: auto` a sweep keeps the built-in rules (ray_tune.resources_rule) and
never calls this package.

It works out what the spec leaves open (explicit `resources: {cpu, gpu}`, `--gpus-per-trial`,
`--max-concurrent`, and `data.pipeline` / `runtime.compile` in the overrides, grid, search
space or a preset always win), then, per kind of node, measures the aggregate training
images/s of the sweep's own first trial config on its own data for the input pipeline,
the compile mode (GPU only) and the trial packing (trials per GPU, or processes x threads
on a CPU node), one knob at a time within a budget (60 s by default). The fastest cell
replaces the defaults only when it beats them by more than 5% (and again side by side);
a probe with no usable cell keeps the defaults and says why. The result is cached per
machine and recorded on the sweep's parent MLflow run.

Modules, one job each:
  cells.py    Cell, NodeKind, what the spec leaves open, the candidate cells, the defaults'
              cell, and the pure `decide` (tested on recorded figures)
  measure.py  the greedy plan-and-measure of one kind of node, over worker processes
              (reid_core/throughput.py)
  nodes.py    the kinds of Ray node, and probing a kind on one of its nodes (a Ray task)
  cache.py    the per-machine cache ($COMPACT_REID_CACHE/resource-probe.json)
  choice.py   ResourceChoice, choose_resources, apply_choice, record (the parent run)
The command: orchestration/commands/probe.py.
"""

from __future__ import annotations

from .cache import cache_path
from .cells import Cell, NodeKind
from .choice import ResourceChoice, apply_choice, choose_resources, record

__all__ = ["Cell", "NodeKind", "ResourceChoice", "apply_choice", "cache_path", "choose_resources", "record"]
