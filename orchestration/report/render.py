"""Markdown and LaTeX (booktabs) renderers of the report; HTML is `html.py` (a jinja2
template), files and logging `write.py`."""

from __future__ import annotations

import math
import re
from typing import Any

import pandas as pd

from .figures import FigureResult
from .html import counts
from .sweep_data import CHECK, MISSING, SweepData, Table, TablesError

__all__ = [
    "FORMATS",
    "parse_formats",
    "to_markdown",
    "to_latex",
    "render_markdown_report",
    "render_latex_report",
    "records",
]

FORMATS = ("md", "latex", "html", "csv")


def parse_formats(text: str) -> list[str]:
    alias = {"markdown": "md", "tex": "latex", "htm": "html"}
    out = []
    for given in (t.strip().lower() for t in text.split(",") if t.strip()):
        fmt = alias.get(given, given)
        if fmt not in FORMATS:
            raise TablesError(f"--format {text!r}: unknown format {fmt!r}; allowed: {', '.join(FORMATS)}")
        if fmt not in out:
            out.append(fmt)
    if not out:
        raise TablesError(f"--format {text!r}: name at least one of {', '.join(FORMATS)}")
    return out


def records(df: pd.DataFrame | None) -> list[dict[str, Any]]:
    """JSON-ready rows (NaN -> None)."""
    if df is None or df.empty:
        return []
    out = []
    for rec in df.to_dict("records"):
        out.append({k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in rec.items()})
    return out


# ---------------------------------------------------------------------------------
# Markdown


def _md_cell(v: Any) -> str:
    return str(v).replace("|", "\\|").replace("\n", " ")


def to_markdown(df: pd.DataFrame, left_cols: int = 1) -> str:
    cols = list(df.columns)
    head = "| " + " | ".join(_md_cell(c) for c in cols) + " |"
    align = "|" + "|".join([":---"] * left_cols + [":---:"] * (len(cols) - left_cols)) + "|"
    body = ["| " + " | ".join(_md_cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, align, *body])


def _problems_md(problems: pd.DataFrame | None) -> list[str]:
    if problems is None or problems.empty:
        return []
    lines = ["", "Not in the averages:", ""]
    for p in problems.itertuples(index=False):
        err = f": {p.error}" if p.error else ""
        lines.append(f"- `{p.trial}` (group {p.group}) — {p.status}{err}")
    return lines


def render_markdown_table(t: Table) -> str:
    lines = [f"## {t.title}", "", to_markdown(t.display, t.left_cols), ""]
    if t.notes:
        lines += [f"*{t.notes[0]}*", ""] + [f"- {n}" for n in t.notes[1:]]
    lines += _problems_md(t.problems)
    return "\n".join(lines) + "\n"


def _header_lines(data: SweepData, mode: str) -> list[str]:
    counts_ = counts(data)
    return [
        f"- tracking URI: `{data.tracking_uri}`",
        f"- experiment: `{data.experiment_name}` (id {data.experiment_id})",
        f"- sweep (parent) run: `{data.parent_run_id or 'none'}`",
        f"- grouped by: {'preset' if mode == 'preset' else 'grid point'}",
        "- trial runs: " + ", ".join(f"{v} {k}" for k, v in counts_.items() if v),
    ]


def render_markdown_report(data: SweepData, mode: str, tables: dict[str, Table], figures: list[FigureResult]) -> str:
    parts = [f"# Compact-ReID sweep `{data.experiment_name}`: tables", "", *_header_lines(data, mode), ""]
    if data.warnings:
        parts += ["**Warnings:**", "", *[f"- {w}" for w in data.warnings], ""]
    for t in tables.values():
        parts.append(render_markdown_table(t))
    for f in figures:
        parts += [f"## {f.title}", ""]
        if f.figure is None:
            parts += [f"*Not drawn: {'; '.join(f.notes)}.*", ""]
        else:
            parts += [f"![{f.title}]({f.key}.png)", "", f"*{f.caption}*", ""]
            parts += [f"- {n}" for n in f.notes] + [""]
    return "\n".join(parts)


# ---------------------------------------------------------------------------------
# LaTeX (booktabs)

_TEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}
_TEX_UNICODE = {
    CHECK: r"\checkmark",
    "±": r"$\pm$",
    MISSING: "--",
    "Δ": r"$\Delta$",
    "→": r"$\rightarrow$",
    "−": "-",
    "×": r"$\times$",
}


def tex(value: Any) -> str:
    text = "".join(_TEX_SPECIAL.get(ch, ch) for ch in str(value))
    for symbol, latex in _TEX_UNICODE.items():
        text = text.replace(symbol, latex)
    return text


def _caption(title: str) -> str:
    """LaTeX numbers its tables itself: drop our "Table N: " prefix."""
    return re.sub(r"^Table \d+:\s*", "", title)


def to_latex(t: Table) -> str:
    df = t.display
    ncol = len(df.columns)
    lines = [
        f"% {t.title} -- needs \\usepackage{{booktabs,amssymb,graphicx}}",
        "\\begin{table}[t]",
        "\\centering",
        "\\small",
        f"\\caption{{{tex(_caption(t.title))}}}",
        f"\\label{{tab:{t.key}}}",
        "\\resizebox{\\ifdim\\width>\\linewidth\\linewidth\\else\\width\\fi}{!}{%",  # shrink, never enlarge
        "\\begin{tabular}{" + "l" * t.left_cols + "c" * (ncol - t.left_cols) + "}",
        "\\toprule",
        " & ".join(f"\\textbf{{{tex(c)}}}" if c else "" for c in df.columns) + " \\\\",
        "\\midrule",
    ]
    for i, row in enumerate(df.itertuples(index=False)):
        if i in t.sections:
            lines.append("\\midrule")
        cells = [tex(v) for v in row]
        if i in t.highlight_rows:
            cells = [f"\\textbf{{{c}}}" if c else c for c in cells]
        lines.append(" & ".join(cells) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}}"]
    foot = list(t.notes)
    if t.problems is not None and not t.problems.empty:
        foot.append(
            "Not in the averages: "
            + "; ".join(
                f"{p.trial} ({p.status}{': ' + p.error if p.error else ''})" for p in t.problems.itertuples(index=False)
            )
        )
    if foot:
        lines.append("\\par\\vspace{2pt}{\\footnotesize " + " ".join(tex(n) for n in foot) + "}")
    lines.append("\\end{table}")
    return "\n".join(lines) + "\n"


def render_latex_report(tables: dict[str, Table]) -> str:
    return "% Generated by `compact-reid tables`; needs \\usepackage{booktabs,amssymb,graphicx}\n\n" + "\n".join(
        to_latex(t) for t in tables.values()
    )
