"""Renderers (Markdown, LaTeX booktabs, CSV, one self-contained HTML page) and the writer
that puts every file in --out and logs it on the sweep's parent run under `tables/`."""
from __future__ import annotations

import base64
import datetime as _dt
import html
import json
import math
import re
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from .figures import FigureResult
from .tables import CHECK, MISSING, FINISHED, SweepData, Table

__all__ = ["FORMATS", "parse_formats", "to_markdown", "to_latex", "to_html_table", "render_markdown_report",
           "render_latex_report", "render_html_report", "write_report", "records"]

FORMATS = ("md", "latex", "html", "csv")
_DELTA = re.compile(r"^[+\-−]\d")
_PARTIAL = re.compile(r"\((\d+/\d+|n=\d+)\)")
_NUMERIC = re.compile(r"^[+\-−]?\d[\d.,]*(%| ±.*)?( \[.*\])?$")


def parse_formats(text: str) -> list[str]:
    from .tables import TablesError

    alias = {"markdown": "md", "tex": "latex", "htm": "html"}
    out = []
    for f in (t.strip().lower() for t in text.split(",") if t.strip()):
        f = alias.get(f, f)
        if f not in FORMATS:
            raise TablesError(f"--format {text!r}: unknown format {f!r}; allowed: {', '.join(FORMATS)}")
        if f not in out:
            out.append(f)
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
    counts = _counts(data)
    return [f"- tracking URI: `{data.tracking_uri}`",
            f"- experiment: `{data.experiment_name}` (id {data.experiment_id})",
            f"- sweep (parent) run: `{data.parent_run_id or 'none'}`",
            f"- grouped by: {'preset' if mode == 'preset' else 'grid point'}",
            "- trial runs: " + ", ".join(f"{v} {k}" for k, v in counts.items() if v)]


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

_TEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
_TEX_UNICODE = {CHECK: r"\checkmark", "±": r"$\pm$", MISSING: "--", "Δ": r"$\Delta$", "→": r"$\rightarrow$",
                "−": "-", "×": r"$\times$"}


def tex(v: Any) -> str:
    s = "".join(_TEX_SPECIAL.get(ch, ch) for ch in str(v))
    for k, r in _TEX_UNICODE.items():
        s = s.replace(k, r)
    return s


def _caption(title: str) -> str:
    """LaTeX numbers its tables itself: drop our "Table N: " prefix."""
    return re.sub(r"^Table \d+:\s*", "", title)


def to_latex(t: Table) -> str:
    df = t.display
    ncol = len(df.columns)
    lines = [f"% {t.title} -- needs \\usepackage{{booktabs,amssymb,graphicx}}",
             "\\begin{table}[t]", "\\centering", "\\small", f"\\caption{{{tex(_caption(t.title))}}}",
             f"\\label{{tab:{t.key}}}",
             "\\resizebox{\\ifdim\\width>\\linewidth\\linewidth\\else\\width\\fi}{!}{%",  # shrink, never enlarge
             "\\begin{tabular}{" + "l" * t.left_cols + "c" * (ncol - t.left_cols) + "}", "\\toprule",
             " & ".join(f"\\textbf{{{tex(c)}}}" if c else "" for c in df.columns) + " \\\\", "\\midrule"]
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
        foot.append("Not in the averages: " + "; ".join(
            f"{p.trial} ({p.status}{': ' + p.error if p.error else ''})" for p in t.problems.itertuples(index=False)))
    if foot:
        lines.append("\\par\\vspace{2pt}{\\footnotesize " + " ".join(tex(n) for n in foot) + "}")
    lines.append("\\end{table}")
    return "\n".join(lines) + "\n"


def render_latex_report(tables: dict[str, Table]) -> str:
    return "% Generated by `compact-reid tables`; needs \\usepackage{booktabs,amssymb,graphicx}\n\n" + "\n".join(
        to_latex(t) for t in tables.values())


# ---------------------------------------------------------------------------------
# HTML

_CSS = """
:root { --fg:#1d2330; --muted:#5b6475; --line:#d9dee7; --head:#f1f4f9; --accent:#2f5fb3; --ok:#1a7f37;
        --bad:#c0392b; --warn:#9a6700; --warnbg:#fff8e1; --hl:#eef4ff; }
* { box-sizing: border-box; }
body { font: 14px/1.5 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, "DejaVu Sans", sans-serif;
       color: var(--fg); margin: 0; background: #fafbfc; }
main { max-width: 1320px; margin: 0 auto; padding: 28px 36px 60px; background: #fff;
       border-left: 1px solid var(--line); border-right: 1px solid var(--line); min-height: 100vh; }
h1 { font-size: 24px; margin: 0 0 6px; }
h2 { font-size: 18px; margin: 36px 0 10px; padding-bottom: 4px; border-bottom: 2px solid var(--accent); }
.meta { color: var(--muted); margin: 0 0 8px; padding: 0; list-style: none; display: flex; flex-wrap: wrap;
        gap: 4px 22px; }
.meta code { color: var(--fg); }
code { font: 12.5px ui-monospace, SFMono-Regular, Menlo, Consolas, "DejaVu Sans Mono", monospace;
       background: #f3f4f6; padding: 1px 4px; border-radius: 3px; }
nav { margin: 14px 0 4px; font-size: 13px; }
nav a { color: var(--accent); text-decoration: none; margin-right: 14px; }
.pills span { display: inline-block; padding: 2px 10px; border-radius: 12px; margin-right: 6px; font-size: 12.5px;
              background: #eef1f5; }
.pills .FINISHED { background: #dcf3e3; color: var(--ok); } .pills .FAILED { background: #fde2df; color: var(--bad); }
.pills .RUNNING, .pills .not-started { background: var(--warnbg); color: var(--warn); }
.warnings { background: var(--warnbg); border-left: 4px solid #f0b400; padding: 8px 14px; margin: 14px 0;
            border-radius: 3px; }
.warnings ul { margin: 4px 0; padding-left: 20px; }
.scroll { overflow-x: auto; }
table.t { border-collapse: collapse; font-variant-numeric: tabular-nums; margin: 6px 0 4px; }
table.t th, table.t td { border-bottom: 1px solid var(--line); padding: 4px 10px; white-space: nowrap; }
table.t thead th { background: var(--head); border-top: 2px solid var(--fg); border-bottom: 1.5px solid var(--fg);
                   font-weight: 600; text-align: center; position: sticky; top: 0; }
table.t tbody tr:last-child td, table.t tbody tr:last-child th { border-bottom: 2px solid var(--fg); }
table.t tbody tr:nth-child(even) { background: #fafbfd; }
table.t tbody tr.sep td, table.t tbody tr.sep th { border-top: 1.5px solid #8a93a3; }
table.t tbody tr.hl { background: var(--hl); font-weight: 600; }
table.t th.rh { text-align: left; font-weight: 500; }
table.t td { text-align: center; }
table.t td.ck { color: var(--ok); font-weight: 700; }
table.t td.na { color: #9aa3b2; } table.t td.pos { color: var(--ok); } table.t td.neg { color: var(--bad); }
table.t td.partial { background: var(--warnbg); color: var(--warn); } table.t td.txt { text-align: left; }
p.note { color: var(--muted); font-size: 12.5px; margin: 4px 0; max-width: 1100px; }
ul.notes { color: var(--muted); font-size: 12.5px; margin: 2px 0; padding-left: 18px; }
.problems { margin-top: 10px; }
.problems h3 { font-size: 13.5px; margin: 10px 0 4px; color: var(--bad); }
table.p { border-collapse: collapse; font-size: 12.5px; }
table.p th, table.p td { border: 1px solid var(--line); padding: 3px 8px; text-align: left; }
table.p th { background: var(--head); }
td.st-FAILED { color: var(--bad); font-weight: 600; } td.st-RUNNING, td.st-not { color: var(--warn); font-weight: 600; }
figure { margin: 10px 0 20px; } figure img { max-width: 100%; border: 1px solid var(--line); border-radius: 4px; }
figcaption { color: var(--muted); font-size: 12.5px; max-width: 1100px; }
details { margin-top: 30px; } summary { cursor: pointer; font-weight: 600; }
footer { margin-top: 40px; color: var(--muted); font-size: 12px; }
"""


def _cell_class(v: str, col: int, colour_deltas: bool, left_cols: int = 1) -> str:
    if col < left_cols:
        return "txt"
    if v == CHECK:
        return "ck"
    if v == MISSING:
        return "na"
    if _PARTIAL.search(v):
        return "partial"
    if _DELTA.match(v) and colour_deltas:
        return "neg" if v[0] in "-−" else "pos"
    if _NUMERIC.match(v):
        return "num"
    return "txt" if len(v) > 24 else ""


def to_html_table(t: Table) -> str:
    e = html.escape
    df = t.display
    out = ['<div class="scroll"><table class="t">', "<thead><tr>"]
    out += [f"<th>{e(str(c))}</th>" for c in df.columns]
    out.append("</tr></thead><tbody>")
    for i, row in enumerate(df.itertuples(index=False)):
        cls = " ".join(c for c, on in (("sep", i in t.sections), ("hl", i in t.highlight_rows)) if on)
        out.append(f'<tr class="{cls}">' if cls else "<tr>")
        for j, v in enumerate(row):
            s = str(v)
            c = _cell_class(s, j, t.colour_deltas, t.left_cols)
            if j == 0:
                out.append(f'<th class="rh" scope="row">{e(s)}</th>')
            else:
                out.append(f'<td class="{c}">{e(s)}</td>' if c else f"<td>{e(s)}</td>")
        out.append("</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def _problems_html(problems: pd.DataFrame | None) -> str:
    if problems is None or problems.empty:
        return ""
    e = html.escape
    rows = "".join(
        f"<tr><td><code>{e(str(p.trial))}</code></td><td>{e(str(p.group))}</td>"
        f'<td class="st-{e(str(p.status).split()[0])}">{e(str(p.status))}</td>'
        f'<td title="{e(str(p.error_full))}">{e(str(p.error)) or MISSING}</td>'
        + (f"<td><code>{e(str(p.run_id)[:12])}</code></td></tr>" if p.run_id else "<td></td></tr>")
        for p in problems.itertuples(index=False))
    return ('<div class="problems"><h3>Not in the averages (failed, running, not started, excluded)</h3>'
            '<table class="p"><thead><tr><th>trial</th><th>group</th><th>status</th><th>error / reason</th>'
            f"<th>run</th></tr></thead><tbody>{rows}</tbody></table></div>")


def _counts(data: SweepData) -> dict[str, int]:
    inc = data.included
    c = {"finished": int((inc["status"] == FINISHED).sum()), "failed": int((inc["status"] == "FAILED").sum()),
         "running": int((inc["status"] == "RUNNING").sum()),
         "other": int((~inc["status"].isin([FINISHED, "FAILED", "RUNNING"])).sum()),
         "excluded": int((data.runs["excluded"] != "").sum())}
    seen = set(data.runs["trial_name"])
    c["not started"] = sum(1 for t in (data.planned or []) if str(t.get("trial_name", "")) not in seen)
    if data.planned is not None:
        c["planned"] = len(data.planned)
    return c


def _runs_html(data: SweepData) -> str:
    e = html.escape
    r = data.runs.copy()
    cols = ["trial_name", "group", "seed", "dataset", "status", "metric.final_rank1", "metric.final_mAP", "run_id"]
    body = []
    for _, row in r.sort_values(["group", "trial_name"] if "group" in r else ["trial_name"]).iterrows():
        cells = []
        for c in cols:
            v = row.get(c)
            if c.startswith("metric."):
                f = None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)
                cells.append(f'<td class="{"num" if f is not None else "na"}">'
                             f'{f"{100 * f:.1f}" if f is not None else MISSING}</td>')
            else:
                cells.append(f"<td>{e(str(v if v is not None else ''))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    head = "".join(f"<th>{e(h)}</th>" for h in ("trial", "group", "seed", "dataset", "status", "final rank-1 (%)",
                                                    "final mAP (%)", "run id"))
    return (f'<details><summary>All {len(r)} trial runs</summary><div class="scroll"><table class="t">'
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div></details>")


def render_html_report(data: SweepData, mode: str, tables: dict[str, Table], figures: list[FigureResult]) -> str:
    e = html.escape
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    counts = _counts(data)
    pill_cls = {"finished": "FINISHED", "failed": "FAILED", "running": "RUNNING", "not started": "not-started"}
    pills = "".join(f'<span class="{pill_cls.get(k, "")}">{v} {e(k)}</span>' for k, v in counts.items() if v)
    sections = [(t.key, t.title) for t in tables.values()] + [(f.key, f.title) for f in figures]
    nav = "".join(f'<a href="#{k}">{e(title.split(":")[0])}</a>' for k, title in sections)
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{e(data.experiment_name)} — Compact-ReID tables</title><style>{_CSS}</style></head><body><main>",
        f"<h1>Sweep <code>{e(data.experiment_name)}</code>: the paper's tables and figures</h1>",
        '<ul class="meta">',
        f"<li>tracking URI <code>{e(data.tracking_uri)}</code></li>",
        f"<li>experiment id <code>{e(str(data.experiment_id))}</code></li>",
        f"<li>sweep run <code>{e(data.parent_run_id or 'none')}</code></li>",
        f"<li>grouped by {'preset' if mode == 'preset' else 'grid point'}</li><li>generated {now}</li></ul>",
        f'<div class="pills">{pills}</div>', f"<nav>{nav}</nav>",
    ]
    if data.warnings:
        parts.append('<div class="warnings"><strong>Warnings</strong><ul>'
                     + "".join(f"<li>{e(w)}</li>" for w in data.warnings) + "</ul></div>")
    for t in tables.values():
        parts.append(f'<section id="{t.key}"><h2>{e(t.title)}</h2>{to_html_table(t)}')
        if t.notes:
            parts.append(f'<p class="note">{e(t.notes[0])}</p>')
            if len(t.notes) > 1:
                parts.append('<ul class="notes">' + "".join(f"<li>{e(n)}</li>" for n in t.notes[1:]) + "</ul>")
        parts.append(_problems_html(t.problems) + "</section>")
    for f in figures:
        parts.append(f'<section id="{f.key}"><h2>{e(f.title)}</h2>')
        if f.figure is None:
            parts.append(f'<p class="note">Not drawn: {e("; ".join(f.notes))}.</p>')
        else:
            b64 = base64.b64encode(f.png_bytes()).decode("ascii")
            parts.append(f'<figure><img alt="{e(f.title)}" src="data:image/png;base64,{b64}">'
                         f"<figcaption>{e(f.caption)}"
                         + "".join(f"<br>{e(n)}" for n in f.notes) + "</figcaption></figure>")
        parts.append("</section>")
    parts.append(_runs_html(data))
    parts.append("<footer>Generated by <code>compact-reid tables</code> from the MLflow records only. "
                 "Percentages are MLflow's fractions × 100; ± is the sample standard deviation over seeds."
                 "</footer></main></body></html>")
    return "\n".join(parts)


# ---------------------------------------------------------------------------------
# Writing and logging


def _runs_csv(data: SweepData) -> pd.DataFrame:
    front = ["trial_name", "group", "preset", "grid_point", "seed", "dataset", "status", "error", "excluded",
             "schema_version", "run_id", "run_name", "triplet"]
    cols = [c for c in front if c in data.runs.columns]
    rest = sorted(c for c in data.runs.columns if c not in cols and not c.startswith("_"))
    return data.runs[cols + rest]


def write_report(data: SweepData, mode: str, tables: dict[str, Table], figures: list[FigureResult], out_dir: Path,
                 formats: Iterable[str] = FORMATS, log: bool = True) -> dict[str, Any]:
    """Writes the files; logs them on the parent run (artifact path `tables/`) unless log=False.

    Returns {"files": [...], "logged_to": run id or None}.
    """
    formats = list(formats)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    for f in figures:
        files += f.save(out_dir)
    if "md" in formats:
        p = out_dir / "tables.md"
        p.write_text(render_markdown_report(data, mode, tables, figures), encoding="utf-8")
        files.append(p)
    if "latex" in formats:
        for t in tables.values():
            p = out_dir / f"{t.key}.tex"
            p.write_text(to_latex(t), encoding="utf-8")
            files.append(p)
        p = out_dir / "tables.tex"
        p.write_text(render_latex_report(tables), encoding="utf-8")
        files.append(p)
    if "csv" in formats:
        for t in tables.values():
            p = out_dir / f"{t.key}.csv"
            t.data.to_csv(p, index=False)
            files.append(p)
        p = out_dir / "runs.csv"
        _runs_csv(data).to_csv(p, index=False)
        files.append(p)
    if "html" in formats:
        p = out_dir / "report.html"
        p.write_text(render_html_report(data, mode, tables, figures), encoding="utf-8")
        files.append(p)
    logged_to = None
    if log and data.parent_run_id:
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=data.tracking_uri)
        for p in files:
            client.log_artifact(data.parent_run_id, str(p), artifact_path="tables")
        logged_to = data.parent_run_id
    return {"files": [str(p) for p in files], "logged_to": logged_to}


def summary_json(data: SweepData, mode: str, tables: dict[str, Table], figures: list[FigureResult],
                 written: dict[str, Any]) -> str:
    t3 = next(iter(tables.values()))
    out = {
        "experiment": data.experiment_name, "experiment_id": data.experiment_id, "tracking_uri": data.tracking_uri,
        "parent_run_id": data.parent_run_id, "group_by": mode, "counts": _counts(data), "warnings": data.warnings,
        "tables": {k: {"title": t.title, "rows": records(t.data), "notes": t.notes} for k, t in tables.items()},
        "not_averaged": records(t3.problems),
        "figures": {f.key: {"drawn": f.figure is not None, "notes": f.notes} for f in figures},
        **written,
    }
    return json.dumps(out, indent=2, default=str)
