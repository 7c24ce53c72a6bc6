"""The paper's tables from what MLflow recorded for a sweep (docs/CONTRACTS.md).

Reads ONLY the tracking store: the experiment of the sweep, its parent run (tag
`compact_reid.role = sweep`, artifact `trials.json` = the planned trials) and its child
runs (tag `compact_reid.role = trial`: tags, params, metrics, metric histories).

    data = load_sweep("my-sweep", "sqlite:///mlflow.db")      # -> SweepData (data.runs: DataFrame)
    tables = build_tables(data)                               # -> {"table3": Table, ...}

Conventions of every table:
- Rank-1 / mAP are MLflow's fractions x 100 (percent); a cell is mean ± sample standard
  deviation (ddof=1) over the FINISHED runs of a group that recorded the metric. When that
  number n differs from the seeds planned for the group (N, from trials.json) the cell
  says (n/N). Runs that FAILED, still RUN, were KILLED, or were planned but never
  started are listed under the table, never averaged. A metric nobody recorded is "–".
- Table 3's switch rows are derived from each run's recorded params with
  `reid_core.presets.switches_from_flat`, never from the preset's name. The paper's figure
  shown beside a group is the paper's column with the SAME switches and triplet loss.
- Runs of an older config schema (tag `compact_reid.schema_version` != SCHEMA_VERSION, or
  without the params the switches are read from) are excluded and listed.
"""
from __future__ import annotations

import ast
import json
import math
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import pandas as pd

from reid_core.config import SCHEMA_VERSION, TrainConfig, flatten, from_dict, unflatten
from reid_core.errors import ReIDError
from reid_core.presets import PRESETS, SWITCH_LABELS, SWITCHES, TABLE3_COLUMNS, TABLE4_SETUPS, switches_from_flat

__all__ = [
    "TablesError", "Table", "SweepData", "load_sweep", "build_tables", "assign_groups",
    "config_from_params", "table3", "table4", "table1", "table2", "load_sota",
    "PAPER_TABLE3", "PAPER_TABLE4", "MISSING", "CHECK",
]

MISSING = "–"  # en dash: a value nobody recorded
CHECK = "✓"

# Table 3 of the paper, Market-1501 rank-1 / mAP (%), by column.
PAPER_TABLE3: dict[str, tuple[float, float]] = {
    "hacnn": (91.2, 75.7), "a": (93.2, 82.0), "b": (94.1, 85.3), "c": (94.5, 85.7),
    "d": (94.9, 86.6), "e": (95.1, 87.1), "f": (95.3, 87.9), "g": (95.4, 87.3),
    "h": (95.8, 88.7), "i": (95.7, 88.1), "compact": (96.2, 89.7),
}
COLUMN_LABELS = {"hacnn": "HA-CNN", "compact": "Compact-ReID"}

# Table 4 of the paper: setup -> phase -> (rank-1, mAP) in %.
PAPER_TABLE4: dict[str, dict[str, tuple[float, float]]] = {
    "table4-setup1": {"plain": (93.8, 83.6), "cyclic": (94.3, 84.8), "swag": (94.5, 85.3)},
    "table4-setup2": {"plain": (95.4, 87.3), "cyclic": (95.8, 88.2), "swag": (95.8, 88.7)},
    "table4-setup3": {"plain": (95.7, 88.1), "cyclic": (95.7, 88.9), "swag": (96.2, 89.7)},
}
TABLE4_LABELS = {
    "table4-setup1": "1: w/o GeM, shuffle, deeper & wider",
    "table4-setup2": "2: column g",
    "table4-setup3": "3: column i",
}
TABLE4_PHASES = (("plain", "plain"), ("cyclic", "+ cyclic LR"), ("swag", "+ SWAG"))

TRIPLET_LABELS = {"none": "none", "margin": "eq. 1", "batch_hard": "eq. 2", "weighted": "eq. 3",
                  "weighted_soft": "eq. 4"}

FINISHED = "FINISHED"
# Params that `switches_from_flat` reads: a run without them cannot be placed in Table 3.
SWITCH_PARAMS = ("schedule.warmup_epochs", "data.erasing_p", "loss.label_smoothing", "model.classifier_bias",
                 "loss.triplet", "model.neck", "model.block", "model.pooling", "model.size", "swag.enabled")
# Params that never define a group (they differ between seeds or say where data lives).
NON_AXIS_PARAMS = {"seed", "data.root", "data.num_workers", "eval.batch_size"}
_SEED_SUFFIX = re.compile(r"-seed\d+$")


class TablesError(ReIDError):
    """The experiment cannot give tables (missing, empty, or only incompatible runs)."""


# ---------------------------------------------------------------------------------
# Results


@dataclass
class Table:
    """One table: `display` (strings, rendered to md/LaTeX/HTML) and `data` (numbers, CSV).

    `problems` lists the runs that are not in the averages (failed, running, not started,
    excluded), shown under the table; `notes` are sentences shown under it.
    """

    key: str
    title: str
    display: pd.DataFrame
    data: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    problems: pd.DataFrame | None = None
    highlight_rows: list[int] = field(default_factory=list)
    colour_deltas: bool = True
    sections: list[int] = field(default_factory=list)  # display rows that start a new block (a rule above)
    left_cols: int = 1  # leading columns that label the rows (left-aligned)


@dataclass
class SweepData:
    experiment_name: str
    experiment_id: str
    tracking_uri: str
    parent_run_id: str | None
    planned: list[dict[str, Any]] | None  # trials.json, None when the parent has none
    runs: pd.DataFrame  # one row per trial run (latest attempt per trial name)
    histories: dict[str, dict[str, list[tuple[int, float]]]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    superseded: int = 0  # earlier attempts of a trial name that a later run replaced
    arch_params: dict[str, float] = field(default_factory=dict)  # group -> params (Table 1), for Table 2 / Fig. 1

    @property
    def included(self) -> pd.DataFrame:
        """Runs usable in tables (current schema), any status."""
        return self.runs[self.runs["excluded"] == ""]

    @property
    def finished(self) -> pd.DataFrame:
        r = self.included
        return r[r["status"] == FINISHED]


# ---------------------------------------------------------------------------------
# Reading params back into a config


def _parse_value(text: Any, default: Any, key: str) -> Any:
    from reid_core.config import ConfigError

    if not isinstance(text, str):
        return text
    s = text.strip()
    try:
        if isinstance(default, bool):
            low = s.lower()
            if low in ("true", "1"):
                return True
            if low in ("false", "0"):
                return False
            raise ValueError(s)
        if isinstance(default, int):
            f = float(s)
            return int(f) if f.is_integer() else f
        if isinstance(default, float):
            return float(s)
        if isinstance(default, (list, tuple)):
            try:
                return list(json.loads(s))
            except (ValueError, TypeError):
                return list(ast.literal_eval(s))
    except (ValueError, SyntaxError, TypeError):
        raise ConfigError(f"{key}: cannot read the recorded value {text!r} as {type(default).__name__}") from None
    return s


def config_from_params(params: Mapping[str, Any]) -> TrainConfig:
    """The TrainConfig recorded in a run's params (MLflow strings); missing keys take the
    current defaults, keys that are not config fields (data.name, data.root) are ignored.
    Raises ConfigError for a value that does not fit the current schema."""
    defaults = flatten(TrainConfig())
    flat = {k: _parse_value(params[k], d, k) if k in params else d for k, d in defaults.items()}
    return from_dict(TrainConfig, unflatten(flat))


# ---------------------------------------------------------------------------------
# Collection


def _check_store(tracking_uri: str) -> None:
    if tracking_uri.startswith("sqlite:///"):
        path = Path(tracking_uri[len("sqlite:///"):])
        if not path.exists():
            raise TablesError(f"no MLflow store at {path} (--tracking-uri {tracking_uri}); "
                              "pass the store the sweep logged to")


def _client(tracking_uri: str):
    from mlflow import MlflowClient

    _check_store(tracking_uri)
    return MlflowClient(tracking_uri=tracking_uri)


def _all_runs(client: Any, experiment_id: str) -> list[Any]:
    runs: list[Any] = []
    token = None
    while True:
        page = client.search_runs([experiment_id], max_results=1000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _read_trials(client: Any, run_id: str, warnings: list[str]) -> list[dict[str, Any]] | None:
    try:
        names = {a.path for a in client.list_artifacts(run_id)}
        if "trials.json" not in names:
            warnings.append("the sweep's parent run has no trials.json: planned seeds unknown (cells show n=...)")
            return None
        with tempfile.TemporaryDirectory() as tmp:
            local = client.download_artifacts(run_id, "trials.json", tmp)
            planned = json.loads(Path(local).read_text())
    except Exception as e:  # noqa: BLE001 - any store/JSON problem becomes a visible warning
        warnings.append(f"trials.json of the parent run could not be read ({e}): planned seeds unknown")
        return None
    if not isinstance(planned, list) or not all(isinstance(t, dict) for t in planned):
        warnings.append("trials.json is not a list of trials: planned seeds unknown")
        return None
    return planned


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _dataset_label(name: str) -> str:
    low = re.sub(r"[^a-z0-9]", "", name.lower())
    if "market" in low:
        return "Market1501"
    if "duke" in low:
        return "DukeMTMC"
    return name or "unknown"


def _run_row(run: Any) -> dict[str, Any]:
    tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
    trial_name = tags.get("compact_reid.trial_name") or run.info.run_name or run.info.run_id
    grid_point = tags.get("compact_reid.grid_point") or _SEED_SUFFIX.sub("", trial_name)
    preset = tags.get("compact_reid.preset") or params.get("preset") or grid_point
    seed_text = tags.get("compact_reid.seed", params.get("seed", ""))
    seed = _num(seed_text)
    schema = tags.get("compact_reid.schema_version")
    excluded = ""
    if schema is None:
        excluded = f"no compact_reid.schema_version tag (current schema is {SCHEMA_VERSION})"
    elif str(schema).strip() != str(SCHEMA_VERSION):
        excluded = f"config schema {schema}, current is {SCHEMA_VERSION}"
    else:
        missing = [k for k in SWITCH_PARAMS if k not in params]
        if len(missing) == len(SWITCH_PARAMS) and run.info.status != FINISHED:
            excluded = "no config params recorded" + (" yet" if run.info.status == "RUNNING" else "")
        elif missing:
            excluded = f"params missing: {', '.join(missing)}"
    row: dict[str, Any] = {
        "run_id": run.info.run_id,
        "run_name": run.info.run_name,
        "trial_name": trial_name,
        "status": run.info.status,
        "start_time": run.info.start_time or 0,
        "preset": preset,
        "grid_point": grid_point,
        "seed": int(seed) if seed is not None and float(seed).is_integer() else seed_text,
        "dataset": _dataset_label(params.get("data.name", "")),
        "schema_version": schema if schema is not None else "",
        "error": tags.get("compact_reid.error", ""),
        "stopped": tags.get("compact_reid.stopped", ""),
        "excluded": excluded,
        "triplet": params.get("loss.triplet", ""),
    }
    sw = switches_from_flat(params)
    for s in SWITCHES:
        row[f"sw.{s}"] = bool(sw[s])
    for k, v in params.items():
        row[f"param.{k}"] = v
    for k, v in metrics.items():
        row[f"metric.{k}"] = _num(v)
    return row


HISTORY_KEYS = ("rank1", "mAP", "swag_rank1", "swag_mAP")


def load_sweep(experiment: str, tracking_uri: str, histories: bool = True) -> SweepData:
    """Everything the tables need from the store; TablesError for unusable input."""
    from mlflow.entities import ViewType
    from mlflow.exceptions import MlflowException

    client = _client(tracking_uri)
    try:
        exp = client.get_experiment_by_name(experiment)
        if exp is None or exp.lifecycle_stage != "active":
            names = sorted(e.name for e in client.search_experiments(view_type=ViewType.ACTIVE_ONLY, max_results=1000))
            state = "is deleted" if exp is not None else "does not exist"
            raise TablesError(f"experiment {experiment!r} {state} in {tracking_uri}; "
                              f"experiments there: {', '.join(names) if names else '(none)'}")
        runs = _all_runs(client, exp.experiment_id)
    except MlflowException as e:
        raise TablesError(f"cannot read {tracking_uri}: {e.message}") from None
    if not runs:
        raise TablesError(f"experiment {experiment!r} has no runs yet (nothing to tabulate); "
                          "start the sweep first")
    warnings: list[str] = []
    parents = sorted((r for r in runs if r.data.tags.get("compact_reid.role") == "sweep"),
                     key=lambda r: r.info.start_time or 0)
    trials = [r for r in runs if r.data.tags.get("compact_reid.role") == "trial"]
    parent = parents[-1] if parents else None
    if len(parents) > 1:
        warnings.append(f"{len(parents)} sweep (parent) runs; trials.json and artifacts use the latest, "
                        f"{parent.info.run_id}")
    if parent is None:
        warnings.append("no sweep (parent) run with tag compact_reid.role=sweep: planned seeds unknown, "
                        "nothing is logged back to MLflow")
    planned = _read_trials(client, parent.info.run_id, warnings) if parent is not None else None
    if not trials:
        n = f" ({len(planned)} trials planned)" if planned else ""
        raise TablesError(f"experiment {experiment!r} has no trial runs yet{n}; "
                          "tables need runs tagged compact_reid.role=trial")
    rows = [_run_row(r) for r in trials]
    df = pd.DataFrame(rows)
    # Keep one run per trial name: the latest FINISHED one, else the latest (a resumed
    # trial may have opened a new run).
    df["_fin"] = df["status"] == FINISHED
    df = df.sort_values(["trial_name", "_fin", "start_time"])
    kept = df.groupby("trial_name", sort=False).tail(1)
    superseded = len(df) - len(kept)
    df = kept.drop(columns="_fin").sort_values("start_time").reset_index(drop=True)
    if superseded:
        warnings.append(f"{superseded} earlier attempt(s) of re-run trials were replaced by their latest run")
    data = SweepData(experiment, exp.experiment_id, tracking_uri, parent.info.run_id if parent else None,
                     planned, df, warnings=warnings, superseded=superseded)
    if (df["excluded"] != "").all():
        counts = df.groupby("excluded").size()
        reasons = "; ".join(f"{n} run{'s' if n > 1 else ''}: {r}" for r, n in counts.items())
        hint = ("runs of an older config schema need the compact-reid version that recorded them (or a re-run "
                "of the sweep)" if any(not r.startswith("no config params") for r in counts.index)
                else "wait until the trials have logged their configs")
        raise TablesError(f"experiment {experiment!r}: none of its {len(df)} trial runs can be tabulated "
                          f"({reasons}); {hint}")
    if histories:
        fin = data.finished
        want = fin[fin["sw.swag"].astype(bool) | _metric(fin, "swag_rank1").notna()]
        try:
            for run_id in want["run_id"]:
                h: dict[str, list[tuple[int, float]]] = {}
                for key in HISTORY_KEYS:
                    pts = client.get_metric_history(run_id, key)
                    h[key] = sorted((int(m.step), float(m.value)) for m in pts if _num(m.value) is not None)
                data.histories[run_id] = h
        except MlflowException as e:
            warnings.append(f"metric histories could not be read ({e.message}): Figure 6 is skipped")
            data.histories.clear()
    return data


# ---------------------------------------------------------------------------------
# Groups


def _natural_key(s: str) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(s))]


def assign_groups(data: SweepData, by: str = "auto") -> str:
    """Adds `group` (table column), `base_group` (planned-seed lookup) to data.runs.

    by = preset | grid_point | auto (preset when every preset has one grid point).
    Returns the mode used. Several datasets in one sweep split each group by dataset.
    """
    runs = data.runs
    if by not in ("auto", "preset", "grid_point"):
        raise TablesError(f"--group-by {by!r}: expected auto, preset or grid_point")
    if by == "auto":
        pairs = set(zip(runs["preset"], runs["grid_point"]))
        for t in data.planned or []:
            pairs.add((str(t.get("preset", "")), str(t.get("grid_point", ""))))
        per_preset: dict[str, set[str]] = {}
        for p, g in pairs:
            per_preset.setdefault(p, set()).add(g)
        by = "preset" if all(len(g) == 1 for g in per_preset.values()) else "grid_point"
    runs["base_group"] = runs[by].astype(str)
    inc = runs[runs["excluded"] == ""]
    multi = inc["dataset"].nunique() > 1
    runs["group"] = [f"{g} [{d}]" if multi else g for g, d in zip(runs["base_group"], runs["dataset"])]
    return by


def group_order(data: SweepData, mode: str) -> list[str]:
    runs = data.included
    groups = list(dict.fromkeys(runs["group"]))
    base_of = dict(zip(runs["group"], runs["base_group"]))
    if mode == "preset":
        rank = {p: i for i, p in enumerate(TABLE3_COLUMNS)}
        return sorted(groups, key=lambda g: (rank.get(base_of[g], len(rank)), _natural_key(g)))
    planned_order = {}
    for i, t in enumerate(data.planned or []):
        planned_order.setdefault(str(t.get("grid_point", "")), i)
    return sorted(groups, key=lambda g: (planned_order.get(base_of[g], 10**9), _natural_key(g)))


def planned_count(data: SweepData, mode: str, base_group: str) -> int | None:
    if data.planned is None:
        return None
    n = sum(1 for t in data.planned if str(t.get(mode, "")) == base_group)
    return n or None  # a group the plan does not know: shown as n=...


# ---------------------------------------------------------------------------------
# Statistics and formatting


@dataclass(frozen=True)
class Stat:
    mean: float | None
    std: float | None
    n: int


def stat(values: Iterable[Any], scale: float = 100.0) -> Stat:
    """Mean and sample std (ddof=1; None for one value) of the finite values, x scale."""
    vals = [v * scale for v in (_num(x) for x in values) if v is not None]
    n = len(vals)
    if n == 0:
        return Stat(None, None, 0)
    mean = sum(vals) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (n - 1)) if n > 1 else None
    return Stat(mean, std, n)


def fmt_stat(s: Stat, planned: int | None, show_n: bool = True) -> str:
    if s.n == 0 or s.mean is None:
        return MISSING
    out = f"{s.mean:.1f}" + (f" ± {s.std:.1f}" if s.std is not None else "")
    if not show_n:
        return out
    if planned is None:
        out += f" (n={s.n})"
    elif s.n != planned:
        out += f" ({s.n}/{planned})"
    return out


def fmt_num(v: float | None, digits: int = 1) -> str:
    return MISSING if v is None else f"{v:.{digits}f}"


def fmt_diff(mean: float | None, paper: float | None) -> str:
    if mean is None or paper is None:
        return MISSING
    return f"{mean - paper:+.1f}"


def _metric(frame: pd.DataFrame, key: str) -> pd.Series:
    col = f"metric.{key}"
    return frame[col] if col in frame.columns else pd.Series([None] * len(frame), index=frame.index, dtype=object)


# ---------------------------------------------------------------------------------
# Switches -> the paper's column


def _triplet_kind(switches: Mapping[str, Any]) -> str:
    from reid_core.presets import switch_overrides

    return switch_overrides(switches)["loss.triplet"]


def paper_column(switches: Mapping[str, bool], triplet: str) -> str | None:
    """The paper's Table 3 column with exactly these switches and triplet loss."""
    for col in TABLE3_COLUMNS:
        ref = PRESETS[col]["switches"]
        if all(bool(ref[s]) == bool(switches[s]) for s in SWITCHES) and _triplet_kind(ref) == triplet:
            return col
    return None


def paper_setup(switches: Mapping[str, bool], triplet: str) -> str | None:
    """The paper's Table 4 setup with these switches (SWAG aside) and triplet loss."""
    for name in TABLE4_SETUPS:
        ref = PRESETS[name]["switches"]
        if all(bool(ref[s]) == bool(switches[s]) for s in SWITCHES if s != "swag") and _triplet_kind(ref) == triplet:
            return name
    return None


def _group_switches(frame: pd.DataFrame) -> tuple[dict[str, bool | None], str | None]:
    """Switches shared by the group's runs (None where they disagree) and its triplet kind."""
    sw: dict[str, bool | None] = {}
    for s in SWITCHES:
        vals = set(frame[f"sw.{s}"].astype(bool))
        sw[s] = vals.pop() if len(vals) == 1 else None
    trip = set(frame["triplet"])
    return sw, (trip.pop() if len(trip) == 1 else None)


def group_label(group: str, mode: str) -> str:
    return COLUMN_LABELS.get(group, group) if mode == "preset" else group


# ---------------------------------------------------------------------------------
# Problems (runs not averaged)


def short_error(text: str, limit: int = 200) -> str:
    """The line of an error tag that says what happened (a traceback's last line)."""
    lines = [ln.strip() for ln in str(text or "").strip().splitlines() if ln.strip() and ln.strip() != "...(truncated)"]
    if not lines:
        return ""
    line = lines[-1] if len(lines) > 1 and lines[0].startswith("Traceback") else lines[0]
    return line if len(line) <= limit else line[: limit - 1] + "…"


def problems_frame(data: SweepData) -> pd.DataFrame:
    """Runs not in the averages: excluded (older schema), not FINISHED, or planned and never started."""
    runs = data.runs
    rows: list[dict[str, Any]] = []
    for _, r in runs.iterrows():
        group = r.get("group", r["grid_point"])
        if r["excluded"]:
            rows.append({"trial": r["trial_name"], "group": group, "status": f"excluded ({r['status']})",
                         "error": r["excluded"], "error_full": r["excluded"], "run_id": r["run_id"]})
        elif r["status"] != FINISHED:
            err = r["error"] or ""
            if not err and r.get("stopped"):
                err = "stopped early by the scheduler" if r["stopped"] == "early" else f"stopped ({r['stopped']})"
            rows.append({"trial": r["trial_name"], "group": group, "status": r["status"],
                         "error": short_error(err), "error_full": err, "run_id": r["run_id"]})
    seen = set(runs["trial_name"])
    for t in data.planned or []:
        name = str(t.get("trial_name", ""))
        if name and name not in seen:
            rows.append({"trial": name, "group": str(t.get("grid_point", "")), "status": "not started",
                         "error": "", "error_full": "", "run_id": ""})
    return pd.DataFrame(rows, columns=["trial", "group", "status", "error", "error_full", "run_id"])


# ---------------------------------------------------------------------------------
# Table 3 (or the generic grid table)


def _axis_keys(data: SweepData, groups: list[str]) -> list[str]:
    """Config params whose value differs between groups (the sweep's axes)."""
    inc = data.included
    keys = []
    for col in inc.columns:
        if not col.startswith("param.") or col[6:] in NON_AXIS_PARAMS:
            continue
        per_group = {g: frozenset(inc.loc[inc["group"] == g, col].astype(str)) for g in groups}
        if len(set(per_group.values())) > 1:
            keys.append(col[6:])
    return keys


# Params that say nothing about the method (where data lives, how many identities it has).
_NOT_OVERRIDES = NON_AXIS_PARAMS | {"preset", "data.name", "model.num_classes"}


def _overrides(params: Mapping[str, Any], preset: str) -> dict[str, str] | None:
    """Recorded params that differ from the preset's defaults (None for an unknown preset)."""
    from reid_core.config import ConfigError
    from reid_core.presets import preset_config

    if preset not in PRESETS:
        return None
    ref = flatten(preset_config(preset))
    out = {}
    for k, d in ref.items():
        if k in _NOT_OVERRIDES or k not in params or not isinstance(params[k], str):
            continue
        try:
            v = _parse_value(params[k], d, k)
        except ConfigError:
            out[k] = params[k]
            continue
        same = (list(v) == list(d)) if isinstance(d, (list, tuple)) else (
            math.isclose(float(v), float(d)) if isinstance(d, (int, float)) and not isinstance(d, bool) else v == d)
        if not same:
            out[k] = params[k]
    return out


def _override_notes(data: SweepData, groups: list[str], axis: set[str], mode: str) -> list[str]:
    """Say how the runs depart from their presets' defaults (scaled schedules, narrower nets)."""
    inc = data.included
    per_group: dict[str, dict[str, str]] = {}
    for g in groups:
        r = inc[inc["group"] == g].iloc[0]
        params = {c[6:]: r[c] for c in inc.columns if c.startswith("param.") and isinstance(r[c], str)}
        ov = _overrides(params, str(r["preset"]))
        if ov is not None:
            per_group[g] = {k: v for k, v in ov.items() if k not in axis}
    if not per_group:
        return []
    common = dict(set.intersection(*(set(o.items()) for o in per_group.values())))
    notes = []
    if common:
        notes.append("Every group departs from its preset's defaults in: "
                     + ", ".join(f"{k}={v}" for k, v in sorted(common.items())))
    for g, ov in per_group.items():
        rest = {k: v for k, v in ov.items() if k not in common}
        if rest:
            notes.append(f"{group_label(g, mode)} also: " + ", ".join(f"{k}={v}" for k, v in sorted(rest.items())))
    return notes


def _on_market(runs: pd.DataFrame) -> bool:
    """True when every run ran on Market-1501: the paper's figures are Market-1501's, so a
    difference to them means something only then."""
    return set(runs["dataset"]) == {"Market1501"}


def table3(data: SweepData, mode: str, max_columns: int = 12) -> Table:
    groups = group_order(data, mode)
    inc = data.included
    fin = data.finished
    labels = [group_label(g, mode) for g in groups]
    base_of = dict(zip(inc["group"], inc["base_group"]))
    axis = _axis_keys(data, groups) if mode == "grid_point" else []
    disp: dict[str, list[str]] = {}
    records: list[dict[str, Any]] = []
    notes: list[str] = []
    for g, label in zip(groups, labels):
        allg = inc[inc["group"] == g]
        fg = fin[fin["group"] == g]
        basis = fg if len(fg) else allg
        sw, trip = _group_switches(basis)
        col = paper_column(sw, trip) if all(v is not None for v in sw.values()) and trip else None
        N = planned_count(data, mode, base_of[g])
        r1, mp = stat(_metric(fg, "final_rank1")), stat(_metric(fg, "final_mAP"))
        p1, pm = PAPER_TABLE3.get(col, (None, None)) if col else (None, None)
        d1, dm = (p1, pm) if _on_market(allg) else (None, None)
        cells: list[str] = []
        for key in axis:
            vals = sorted(set(allg[f"param.{key}"].dropna().astype(str)))
            cells.append(vals[0] if len(vals) == 1 else ("mixed: " + ", ".join(vals) if vals else MISSING))
        for s in SWITCHES:
            cells.append(CHECK if sw[s] else ("mixed" if sw[s] is None else ""))
        cells.append(TRIPLET_LABELS.get(trip, trip) if trip else "mixed")
        cells.append(group_label(col, "preset") if col else MISSING)
        cells.append(f"{len(fg)}/{N}" if N is not None else f"{len(fg)}/?")
        cells += [fmt_stat(r1, N), fmt_num(p1), fmt_diff(r1.mean, d1),
                  fmt_stat(mp, N), fmt_num(pm), fmt_diff(mp.mean, dm)]
        disp[label] = cells
        if any(v is None for v in sw.values()) or trip is None:
            notes.append(f"{label}: its runs recorded different switches (see the runs list)")
        if mode == "preset" and base_of[g] in PRESETS and col != base_of[g] and base_of[g] in TABLE3_COLUMNS:
            notes.append(f"{label}: the recorded params do not give the switches of the paper's column "
                         f"{base_of[g]}" + (f" but those of column {col}" if col else ""))
        rec: dict[str, Any] = {"group": g, "paper_column": col or "", "triplet": trip or "mixed"}
        rec.update({f"param.{k}": c for k, c in zip(axis, cells)})
        rec.update({s: sw[s] for s in SWITCHES})
        rec.update({"finished": len(fg), "planned": N,
                    "rank1_mean": r1.mean, "rank1_std": r1.std, "rank1_n": r1.n, "paper_rank1": p1,
                    "rank1_diff": None if r1.mean is None or d1 is None else r1.mean - d1,
                    "mAP_mean": mp.mean, "mAP_std": mp.std, "mAP_n": mp.n, "paper_mAP": pm,
                    "mAP_diff": None if mp.mean is None or dm is None else mp.mean - dm})
        records.append(rec)
    row_labels = (axis + [SWITCH_LABELS[s] for s in SWITCHES]
                  + ["Triplet loss", "Paper column (same switches)", "Seeds finished",
                     "Rank-1 (%)", "Rank-1 paper", "Rank-1 Δ", "mAP (%)", "mAP paper", "mAP Δ"])
    display = pd.DataFrame({"": row_labels, **disp})
    datasets = ", ".join(dict.fromkeys(inc["dataset"]))
    title = (f"Table 3: ablation ({datasets})" if mode == "preset"
             else "Grid table: " + (", ".join(axis) if axis else "grid points") + f" ({datasets})")
    if any(d != "Market1501" for d in dict.fromkeys(inc["dataset"])):
        notes.append(f"The paper's figures are Market-1501 results; this sweep ran on {datasets}: compare the "
                     "groups with each other, not with the paper.")
    notes[0:0] = _override_notes(data, groups, set(axis), mode)
    notes.insert(0, "Rank-1 / mAP of the reported model (final_rank1 / final_mAP: SWAG when enabled, else the "
                    "last weights), % mean ± sample std over finished seeds; (n/N) = seeds averaged / planned. "
                    "Switches are read from each run's recorded params; Δ = this sweep − paper, in points (Market-1501 "
                    "runs only).")
    na = len(axis)
    sections = [i for i in (na, na + len(SWITCHES), na + len(SWITCHES) + 3) if i > 0]
    table = Table("table3" if mode == "preset" else "grid", title, display, pd.DataFrame(records), notes,
                  problems_frame(data), sections=sections)
    if len(groups) > max_columns:  # a search or a long grid: one row per group instead
        table.display = display.set_index("").T.reset_index(names="group")
        table.sections, table.left_cols = [], 1
    return table


# ---------------------------------------------------------------------------------
# Table 4 (SWAG study)


def table4(data: SweepData, mode: str) -> Table | None:
    groups = group_order(data, mode)
    inc, fin = data.included, data.finished
    base_of = dict(zip(inc["group"], inc["base_group"]))
    rows: list[dict[str, str]] = []
    records: list[dict[str, Any]] = []
    setup_rank = {s: i for i, s in enumerate(TABLE4_SETUPS)}
    chosen = []
    for g in groups:
        allg = inc[inc["group"] == g]
        fg = fin[fin["group"] == g]
        has = any(_metric(allg, f"{p}_rank1").notna().any() for p in ("cyclic", "swag"))
        sw, trip = _group_switches(fg if len(fg) else allg)
        if not (sw["swag"] or has):
            continue
        setup = paper_setup(sw, trip) if all(v is not None for v in sw.values()) and trip else None
        chosen.append((setup_rank.get(setup or "", len(setup_rank)), g, setup, fg, _on_market(allg)))
    if not chosen:
        return None
    chosen.sort(key=lambda c: c[0])
    sections = []
    for _, g, setup, fg, on_market in chosen:
        N = planned_count(data, mode, base_of[g])
        label = group_label(g, mode) + (f" (paper setup {TABLE4_LABELS[setup]})" if setup else "")
        if rows:
            sections.append(len(rows))
        for metric, mlabel in (("rank1", "Rank-1"), ("mAP", "mAP")):
            ours = {"setup": label if metric == "rank1" else "", "": f"{mlabel} (%)"}
            paper_row = {"setup": "", "": f"{mlabel} paper"}
            delta_row = {"setup": "", "": f"{mlabel} Δ"}
            rec: dict[str, Any] = {"group": g, "paper_setup": setup or "", "metric": metric, "planned": N}
            for phase, plabel in TABLE4_PHASES:
                st = stat(_metric(fg, f"{phase}_{metric}"))
                paper = PAPER_TABLE4[setup][phase][0 if metric == "rank1" else 1] if setup else None
                ours[plabel] = fmt_stat(st, N)
                paper_row[plabel] = fmt_num(paper)
                ref = paper if on_market else None
                delta_row[plabel] = fmt_diff(st.mean, ref)
                rec.update({f"{phase}_mean": st.mean, f"{phase}_std": st.std, f"{phase}_n": st.n,
                            f"{phase}_paper": paper,
                            f"{phase}_diff": None if st.mean is None or ref is None else st.mean - ref})
            rows += [ours, paper_row, delta_row]
            records.append(rec)
    display = pd.DataFrame(rows)
    notes = ["plain = end of the main phase (plain_*), + cyclic LR = last weights after the cosine-restart phase "
             "(cyclic_*), + SWAG = the SWAG model (swag_*); % mean ± sample std over finished seeds; (n/N) = "
             "seeds averaged / planned. Paper numbers beside the group whose switches (SWAG aside) equal a setup "
             "of the paper's Table 4; Δ = this sweep − paper, in points (Market-1501 runs only)."]
    return Table("table4", "Table 4: SWAG study (plain → + cyclic LR → + SWAG)", display, pd.DataFrame(records),
                 notes, sections=sections, left_cols=2)


# ---------------------------------------------------------------------------------
# Table 1 (architecture)


def _model_key(params: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, str(v)) for k, v in params.items() if k.startswith("model.")))


def _paper_arch(cfg: Any) -> str | None:
    m = cfg.model
    if (m.width_multiplier, m.depth_multiplier, m.global_dim, m.local_dim, m.input_height, m.input_width) != (
            1.0, 1.0, 0, 0, 160, 64):
        return None
    return {("inception", "1x"): "hacnn", ("shuffle", "1x"): "compact-1x", ("shuffle", "2x"): "compact-2x"}.get(
        (m.block, m.size))


def _arch_label(cfg: Any) -> str:
    m = cfg.model
    label = f"{'Shuffle' if m.block == 'shuffle' else 'Inception'} {m.size}"
    extras = []
    if m.width_multiplier != 1.0:
        extras.append(f"width x{m.width_multiplier:g}")
    if m.depth_multiplier != 1.0:
        extras.append(f"depth x{m.depth_multiplier:g}")
    if m.global_dim or m.local_dim:
        extras.append(f"FC {m.global_features}/{m.local_features}")
    if (m.input_height, m.input_width) != (160, 64):
        extras.append(f"{m.input_height}x{m.input_width}")
    extras.append(m.pooling)
    return label + (" (" + ", ".join(extras) + ")" if extras else "")


def table1(data: SweepData, mode: str, recompute: bool = True) -> Table:
    from reid_core.complexity import PAPER_TABLE1

    inc = data.included
    param_cols = [c for c in inc.columns if c.startswith("param.")]
    models: dict[tuple, dict[str, Any]] = {}
    for _, r in inc.iterrows():
        params = {c[6:]: r[c] for c in param_cols if isinstance(r[c], str)}
        key = _model_key(params)
        m = models.setdefault(key, {"params": params, "groups": [], "runs": []})
        if r["group"] not in m["groups"]:
            m["groups"].append(r["group"])
        m["runs"].append(r)
    order = {g: i for i, g in enumerate(group_order(data, mode))}
    rows, records, notes = [], [], []
    for key, m in sorted(models.items(), key=lambda kv: min(order.get(g, 10**9) for g in kv[1]["groups"])):
        try:
            cfg = config_from_params(m["params"])
        except ReIDError as e:
            cfg = None
            notes.append(f"{', '.join(m['groups'])}: model config not readable ({e})")
        measured: dict[str, float | None] = {}
        for k in ("params", "params_with_classifiers", "macs"):
            vals = [v for v in (_num(r.get(f"metric.{k}")) for r in m["runs"]) if v is not None]
            measured[k] = vals[0] if vals else None
        source = "logged"
        if any(v is None for v in measured.values()) and cfg is not None and recompute:
            from reid_core.complexity import profile_model

            prof = profile_model(cfg.model)
            for k in measured:
                if measured[k] is None:
                    measured[k] = float(prof[k])
            source = "recomputed"
        arch = _paper_arch(cfg) if cfg is not None else None
        paper = PAPER_TABLE1.get(arch or "", {"params_m": None, "macs_g": None})
        pm = None if measured["params"] is None else measured["params"] / 1e6
        pwc = None if measured["params_with_classifiers"] is None else measured["params_with_classifiers"] / 1e6
        mg = None if measured["macs"] is None else measured["macs"] / 1e9
        pct = lambda v, p: MISSING if v is None or not p else f"{100 * (v - p) / p:+.1f}%"  # noqa: E731
        nc = cfg.model.num_classes if cfg is not None else "?"
        rows.append({
            "model": _arch_label(cfg) if cfg is not None else MISSING,
            "groups": ", ".join(group_label(g, mode) for g in m["groups"]),
            "params (M)": fmt_num(pm, 3),
            f"+ classifiers (M)": fmt_num(pwc, 3) + (f" [{nc} ids]" if pwc is not None else ""),
            "paper params (M)": fmt_num(paper["params_m"]),
            "Δ params": pct(pm, paper["params_m"]),
            "MACs (G)": fmt_num(mg, 3),
            "paper MACs (G)": fmt_num(paper["macs_g"], 2),
            "Δ MACs": pct(mg, paper["macs_g"]),
        })
        records.append({"model": _arch_label(cfg) if cfg is not None else "", "paper_model": arch or "",
                        "groups": ";".join(m["groups"]), "num_classes": nc if cfg is not None else None,
                        "params": measured["params"], "params_with_classifiers": measured["params_with_classifiers"],
                        "macs": measured["macs"], "source": source,
                        "paper_params_m": paper["params_m"], "paper_macs_g": paper["macs_g"]})
    notes.insert(0, "params = unique parameters of the test-time network WITHOUT the two identity classifiers "
                    "(+ classifiers: with them, for the run's number of training identities); MACs = "
                    "multiply-accumulates of one 160x64 image at test time (conv + linear). Values logged by "
                    "the runs (params, params_with_classifiers, macs) or recomputed from the recorded config "
                    "with reid_core.complexity.profile_model. The paper quotes 2.7 M for HA-CNN (no MACs).")
    return Table("table1", "Table 1: architecture (parameters and multiply-accumulates)", pd.DataFrame(rows),
                 pd.DataFrame(records), notes, colour_deltas=False, left_cols=2)


# ---------------------------------------------------------------------------------
# Table 2 (state of the art) + the sweep's best runs


SOTA_CSV = Path(__file__).parent / "data" / "sota_market_duke.csv"
PAPER_DATASETS = (("Market1501", "market"), ("DukeMTMC", "duke"))


def load_sota(path: Path = SOTA_CSV) -> pd.DataFrame:
    """The paper's Table 2 (literature rows and its own two models)."""
    df = pd.read_csv(path, dtype={"method": str, "family": str, "params_source": str}, keep_default_na=True)
    for c in ("market_r1", "market_map", "duke_r1", "duke_map", "params_m"):
        df[c] = pd.to_numeric(df[c], errors="coerce")
    return df


def best_groups(data: SweepData) -> list[dict[str, Any]]:
    """Per dataset: the group with the best mean final rank-1, and the best of each other
    model size (the paper lists its 1x and 2x models)."""
    fin = data.finished
    out = []
    for dataset in dict.fromkeys(fin["dataset"]):
        fd = fin[fin["dataset"] == dataset]
        cands = []
        for g in dict.fromkeys(fd["group"]):
            fg = fd[fd["group"] == g]
            r1, mp = stat(_metric(fg, "final_rank1")), stat(_metric(fg, "final_mAP"))
            if r1.mean is None:
                continue
            params = [v for v in (_num(x) for x in _metric(fg, "params")) if v is not None]
            size = str(fg["param.model.size"].iloc[0]) if "param.model.size" in fg else ""
            cands.append({"dataset": dataset, "group": g, "rank1": r1, "mAP": mp, "size": size,
                          "params": params[0] if params else None})
        cands.sort(key=lambda c: -c["rank1"].mean)
        picked, sizes = [], set()
        for c in cands:
            if c["size"] not in sizes:
                picked.append(c)
                sizes.add(c["size"])
        out.extend(picked)
    return out


def table2(data: SweepData, mode: str, arch_params: Mapping[str, float] | None = None) -> Table:
    sota = load_sota()
    best = best_groups(data)
    extra = [d for d in dict.fromkeys(b["dataset"] for b in best) if d not in dict(PAPER_DATASETS)]
    cols = list(PAPER_DATASETS) + [(d, None) for d in extra]
    rows, records = [], []
    for _, r in sota.iterrows():
        row = {"family": r["family"], "method": r["method"], "params (M)": fmt_num(_num(r["params_m"]))}
        rec = {"family": r["family"], "method": r["method"], "params_m": _num(r["params_m"]), "source": "paper"}
        for d, prefix in cols:
            r1 = _num(r[f"{prefix}_r1"]) if prefix else None
            mp = _num(r[f"{prefix}_map"]) if prefix else None
            row[f"{d} R1"], row[f"{d} mAP"] = fmt_num(r1), fmt_num(mp)
            rec[f"{d}_r1"], rec[f"{d}_mAP"] = r1, mp
        rows.append(row)
        records.append(rec)
    highlight = []
    for b in best:
        params = b["params"] if b["params"] is not None else (arch_params or {}).get(b["group"])
        pm = None if params is None else params / 1e6
        seeds = b["rank1"].n
        row = {"family": "This sweep",
               "method": f"{group_label(b['group'], mode)} ({b['dataset']}, {seeds} seed{'s' if seeds != 1 else ''})",
               "params (M)": fmt_num(pm)}
        rec = {"family": "This sweep", "method": b["group"], "params_m": pm, "source": data.experiment_name}
        for d, _ in cols:
            mine = d == b["dataset"]
            row[f"{d} R1"] = fmt_stat(b["rank1"], None, show_n=False) if mine else MISSING
            row[f"{d} mAP"] = fmt_stat(b["mAP"], None, show_n=False) if mine else MISSING
            rec[f"{d}_r1"] = b["rank1"].mean if mine else None
            rec[f"{d}_mAP"] = b["mAP"].mean if mine else None
        rec["seeds"] = seeds
        highlight.append(len(rows))
        rows.append(row)
        records.append(rec)
    notes = ["Literature rows: the paper's Table 2 (orchestration/data/sota_market_duke.csv); params (M) only "
             "where publicly known, else –. This sweep: per dataset (data.name param) the group with the best "
             "mean final rank-1, and the best of each other model size; % mean ± sample std over its finished "
             "seeds. A synthetic or other dataset gets its own columns: its numbers are not comparable."]
    sections = [i for i in range(1, len(rows)) if rows[i]["family"] != rows[i - 1]["family"]]
    for i in sorted(sections, reverse=True) + [0]:  # the family name once per block, as in the paper
        for j in range(i + 1, len(rows)):
            if j in sections:
                break
            rows[j] = {**rows[j], "family": ""}
    return Table("table2", "Table 2: comparison with the state of the art", pd.DataFrame(rows),
                 pd.DataFrame(records), notes, highlight_rows=highlight, sections=sections, left_cols=2)


# ---------------------------------------------------------------------------------


def build_tables(data: SweepData, group_by: str = "auto", recompute: bool = True) -> tuple[str, dict[str, Table]]:
    """(mode, {key: Table}) in report order: Table 3 / grid, 4, 1, 2."""
    mode = assign_groups(data, group_by)
    tables: dict[str, Table] = {}
    t3 = table3(data, mode)
    tables[t3.key] = t3
    t4 = table4(data, mode)
    if t4 is not None:
        tables["table4"] = t4
    t1 = table1(data, mode, recompute=recompute)
    tables["table1"] = t1
    # Parameter counts per group for Table 2 / Figure 1 (logged, else Table 1's recomputation).
    arch_params: dict[str, float] = {}
    for rec in t1.data.to_dict("records"):
        for g in str(rec["groups"]).split(";"):
            if rec["params"] is not None and not (isinstance(rec["params"], float) and math.isnan(rec["params"])):
                arch_params[g] = float(rec["params"])
    data.arch_params = arch_params
    tables["table2"] = table2(data, mode, arch_params)
    return mode, tables
