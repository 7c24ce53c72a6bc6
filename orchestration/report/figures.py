"""Figures 6 and 1 of the paper, and the forest plot of the differences, from a sweep's
MLflow records (matplotlib, no pyplot state).

- Figure 6: rank-1 and mAP against epoch during the cyclic (SWAG) phase: the current
  weights under the cosine-restart schedule ("SGD", metric keys `rank1`/`mAP`) against the
  SWAG model at each cycle end (`swag_rank1`/`swag_mAP`); mean over seeds with its 95%
  confidence band (Student's t per epoch; no band where a single seed reached the epoch).
- Figure 1: rank-1 / mAP against parameters (log scale): the paper's methods with a known
  parameter count, the paper's own models, and this sweep's groups (mean and 95% interval).
- Forest plot: each group's difference to its reference (the differences table's first
  block) with its 95% interval, coloured by the verdict.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import matplotlib

matplotlib.use("Agg", force=False)
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator, NullFormatter  # noqa: E402

from .arch import group_params, model_sizes  # noqa: E402
from .cells import METRICS  # noqa: E402
from .compare import interval  # noqa: E402
from .comparisons import group_comparisons  # noqa: E402
from .groups import group_label, group_order, group_runs  # noqa: E402
from .paper import load_sota  # noqa: E402
from .sweep_data import SweepData, metric, num  # noqa: E402

__all__ = ["FigureResult", "figure6", "figure1", "forest", "build_figures"]

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22")


@dataclass
class FigureResult:
    key: str
    title: str
    caption: str
    figure: Figure | None
    notes: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)

    def png_bytes(self) -> bytes:
        buf = io.BytesIO()
        assert self.figure is not None
        self.figure.savefig(buf, format="png", dpi=110, bbox_inches="tight")
        return buf.getvalue()

    def save(self, out_dir: Path) -> list[Path]:
        if self.figure is None:
            return []
        png, svg = out_dir / f"{self.key}.png", out_dir / f"{self.key}.svg"
        self.figure.savefig(png, dpi=150, bbox_inches="tight", metadata={"Software": None})
        self.figure.savefig(svg, bbox_inches="tight", metadata={"Date": None, "Creator": None})
        self.files = [png, svg]
        return self.files


def _mean_band(
    series: list[list[tuple[int, float]]],
) -> tuple[list[int], list[float], list[float], list[float], list[int]]:
    """Per step: mean, 95% interval (lo, hi; NaN with one value) and count over the runs'
    (step, value) lists."""
    by_step: dict[int, list[float]] = {}
    for pts in series:
        for step, v in pts:
            by_step.setdefault(step, []).append(v)
    steps = sorted(by_step)
    means, los, his, ns = [], [], [], []
    for s in steps:
        iv = interval(by_step[s])
        means.append(float(iv.mean) if iv.mean is not None else math.nan)
        los.append(iv.lo if iv.lo is not None else math.nan)
        his.append(iv.hi if iv.hi is not None else math.nan)
        ns.append(iv.n)
    return steps, means, los, his, ns


def _main_epochs(cfg: Any) -> tuple[int | None, list[int]]:
    """(last step of the main phase, cycle-end steps), 1-based like the logged steps."""
    try:
        from reid_core.training.epochs import epoch_counts

        counts = epoch_counts(cfg)
    except Exception:  # noqa: BLE001 - a config we cannot read: plot the whole history instead
        return None, []
    return counts.main_epochs, [e + 1 for e in counts.cycle_end_epochs]


def figure6(data: SweepData, mode: str) -> FigureResult:
    title = "Figure 6: SWAG vs plain SGD during the cyclic phase"
    caption = (
        "Rank-1 and mAP (%) against epoch during the cosine-restart phase: dashed = current weights "
        "(plain SGD, keys rank1/mAP), solid = the SWAG model at each cycle end (swag_rank1/swag_mAP); "
        "mean over finished seeds, band = its 95% confidence interval (Student's t; none where one seed)."
    )
    fin = data.finished
    fin = fin[fin["run_id"].isin(list(data.histories))]
    groups = [g for g in group_order(data, mode) if g in set(fin["group"])]
    curves = []
    for g in groups:
        runs = fin[fin["group"] == g]
        sgd: dict[str, list] = {"rank1": [], "mAP": []}
        swag: dict[str, list] = {"rank1": [], "mAP": []}
        cycle_ends: list[int] = []
        for _, r in runs.iterrows():
            history = data.histories[r["run_id"]]
            if not history.get("swag_rank1") and not history.get("swag_mAP"):
                continue
            main, ends = _main_epochs(r["_config"])
            cycle_ends = cycle_ends or ends
            if main is None:  # fall back: start one cycle before the first SWAG evaluation
                first = min(s for s, _ in history["swag_rank1"] or history["swag_mAP"])
                main = first - (ends[1] - ends[0] if len(ends) > 1 else 1)
            for k in ("rank1", "mAP"):
                sgd[k].append([(s, 100 * v) for s, v in history.get(k, []) if s >= main])
                swag[k].append([(s, 100 * v) for s, v in history.get(f"swag_{k}", [])])
        if swag["rank1"] or swag["mAP"]:
            curves.append((g, sgd, swag, cycle_ends, len(swag["rank1"])))
    if not curves:
        return FigureResult(
            "fig6_swag",
            title,
            caption,
            None,
            ["no finished run of this sweep recorded SWAG-phase metrics (swag_rank1/swag_mAP)"],
        )
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, k, label in ((axes[0], "rank1", "rank-1 (%)"), (axes[1], "mAP", "mAP (%)")):
        for ci, (g, sgd, swag, _ends, n) in enumerate(curves):
            colour = PALETTE[ci % len(PALETTE)]
            name = group_label(g, mode)
            for series, style, marker, what in ((sgd[k], "--", "o", "SGD"), (swag[k], "-", "s", "SWAG")):
                steps, means, lo, hi, _counts = _mean_band(series)
                if not steps:
                    continue
                ax.plot(
                    steps,
                    means,
                    style,
                    color=colour,
                    marker=marker,
                    markersize=3.5,
                    linewidth=1.6,
                    label=f"{name} {what} (n={n})",
                )
                ax.fill_between(
                    steps,
                    lo,
                    hi,
                    color=colour,
                    alpha=0.15 if what == "SWAG" else 0.08,
                    linewidth=0,
                )
        for e in curves[0][3]:
            ax.axvline(e, color="#888888", linewidth=0.8, linestyle=":", alpha=0.8, zorder=0)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(label)
        ax.set_title(f"{'Rank-1' if k == 'rank1' else 'mAP'}: SWAG vs SGD")
        ax.grid(True, alpha=0.3)
    axes[1].legend(fontsize=8, loc="lower right")
    notes = ["thin vertical lines: cycle ends (SWAG collections) of the first group's schedule"]
    return FigureResult("fig6_swag", title, caption, fig, notes)


def figure1(data: SweepData, mode: str, params_of_group: Mapping[str, float]) -> FigureResult:
    """`params_of_group` (arch.group_params): a group's parameters where its runs logged none."""
    title = "Figure 1: accuracy against parameters"
    caption = (
        "Rank-1 (top) and mAP (bottom) on Market-1501 against parameters (log scale): grey = methods of "
        "the paper's Table 2 with a known parameter count, orange = the paper's models, stars = this "
        "sweep's groups (mean and 95% confidence interval over finished seeds; dataset in brackets when it is not "
        "Market-1501)."
    )
    sota = load_sota()
    lit = sota[sota["params_m"].notna() & sota["market_r1"].notna()]
    fin = data.finished
    pts = []
    for g in group_order(data, mode):
        fg = fin[fin["group"] == g]
        if not len(fg):
            continue
        r1, mp = interval(metric(fg, "final_rank1"), 0.95), interval(metric(fg, "final_mAP"), 0.95)
        logged = [v for v in (num(x) for x in metric(fg, "params")) if v is not None]
        params = logged[0] if logged else params_of_group.get(g)
        if params is None or (r1.mean is None and mp.mean is None):
            continue
        ds = str(fg["dataset"].iloc[0])
        name = group_label(g, mode) + ("" if ds == "Market1501" or "[" in g else f" [{ds}]")
        pts.append((name, params / 1e6, r1, mp))
    notes = []
    unknown = int((sota["params_m"].isna()).sum())
    if unknown:
        notes.append(f"{unknown} methods of Table 2 have no published parameter count here and are not plotted")
    if not pts:
        notes.append("no finished group of this sweep has both a parameter count and final metrics")
    fig = Figure(figsize=(8.5, 8), layout="constrained")
    axes = fig.subplots(2, 1, sharex=True)
    for ax, col, key, label in ((axes[0], "market_r1", "r1", "rank-1 (%)"), (axes[1], "market_map", "mAP", "mAP (%)")):
        for _, r in lit.iterrows():
            ours = str(r["method"]).startswith("Ours")
            ax.scatter(
                r["params_m"],
                r[col],
                s=45,
                color="#ff7f0e" if ours else "#888888",
                zorder=3,
                edgecolor="black",
                linewidth=0.4,
            )
            ax.annotate(
                str(r["method"]),
                (r["params_m"], r[col]),
                textcoords="offset points",
                xytext=(5, 4),
                fontsize=8,
                color="#444444",
            )
        for i, (name, pm, r1, mp) in enumerate(pts):
            shown = r1 if key == "r1" else mp
            if shown.mean is None:
                continue
            colour = PALETTE[i % len(PALETTE)]
            mean = 100 * shown.mean
            yerr = (
                [[mean - 100 * shown.lo], [100 * shown.hi - mean]]
                if shown.lo is not None and shown.hi is not None
                else None
            )
            ax.errorbar(
                pm,
                mean,
                yerr=yerr,
                fmt="*",
                markersize=12,
                color=colour,
                ecolor=colour,
                capsize=3,
                zorder=4,
                markeredgecolor="black",
                markeredgewidth=0.4,
            )
            ax.annotate(name, (pm, mean), textcoords="offset points", xytext=(6, -10), fontsize=8, color=colour)
        ax.set_xscale("log")
        xs = [float(v) for v in lit["params_m"]] + [p[1] for p in pts]
        lo, hi = (min(xs) / 1.5, max(xs) * 1.8) if xs else (1.0, 10.0)
        ax.set_xlim(lo, hi)
        ticks = [t for t in (0.05, 0.1, 0.2, 0.3, 0.5, 1, 2, 3, 5, 10, 20, 30, 50, 100, 200) if lo <= t <= hi]
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}M"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.tick_params(axis="x", labelbottom=True)
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    axes[1].set_xlabel("parameters (millions, log scale; without classifiers for this sweep)")
    axes[0].set_title("Accuracy against model size")
    return FigureResult("fig1_params", title, caption, fig, notes)


VERDICT_COLOURS = {"better": "#2ca02c", "worse": "#d62728", "not resolved": "#7f7f7f", "n/a": "#bbbbbb"}


def forest(data: SweepData, mode: str) -> FigureResult:
    """Each group's difference to its reference with its 95% interval (points), per metric."""
    title = "Forest plot: differences to the reference"
    caption = (
        "Each group minus its reference (the differences table's first block), in points, with its 95% confidence "
        "interval (Student's t; paired by seed where the seeds match, Welch's t where not): green = better, red = "
        "worse, grey = not resolved; a hollow marker has no interval (a side with one seed)."
    )
    comps = [c for c in group_comparisons(data, mode) if c["kind"] == "reference"]
    comps = [c for c in comps if c["comparison"].diff is not None]
    if not comps:
        return FigureResult(
            "fig_forest", title, caption, None, ["no two groups of this sweep with finished runs to compare"]
        )
    labels = list(dict.fromkeys(c["label"] for c in comps))
    fig = Figure(figsize=(10, 1.2 + 0.45 * len(labels)), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    for ax, (key, mlabel) in zip(axes, METRICS):
        for c in comps:
            if c["metric"] != key:
                continue
            cm = c["comparison"]
            row_y = len(labels) - 1 - labels.index(c["label"])
            colour = VERDICT_COLOURS.get(cm.verdict, "#7f7f7f")
            diff = 100 * cm.diff
            if cm.lo is not None and cm.hi is not None:
                ax.errorbar(
                    diff,
                    row_y,
                    # a zero-width interval can come out a rounding error below zero
                    xerr=[[max(0.0, diff - 100 * cm.lo)], [max(0.0, 100 * cm.hi - diff)]],
                    fmt="o",
                    color=colour,
                    ecolor=colour,
                    capsize=3,
                    markersize=6,
                )
            else:
                ax.plot(diff, row_y, "o", markerfacecolor="white", markeredgecolor="#666666", markersize=6)
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set_xlabel(f"Δ {mlabel} (points)")
        ax.set_title(mlabel)
        ax.grid(True, axis="x", alpha=0.3)
    axes[0].set_yticks(range(len(labels)))
    axes[0].set_yticklabels(list(reversed(labels)))
    notes = []
    if any(not c["comparison"].paired and c["comparison"].lo is not None for c in comps):
        notes.append("some groups' seeds differ: their intervals are unpaired (Welch)")
    return FigureResult("fig_forest", title, caption, fig, notes)


def build_figures(data: SweepData, mode: str, recompute: bool = True) -> list[FigureResult]:
    """The forest plot, Figures 6 and 1; `data` is not changed (grouped on a copy)."""
    grouped = group_runs(data, mode)
    params_of_group = group_params(model_sizes(grouped, mode, recompute=recompute))
    return [forest(grouped, mode), figure6(grouped, mode), figure1(grouped, mode, params_of_group)]
