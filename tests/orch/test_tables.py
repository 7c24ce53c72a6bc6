"""`compact-reid tables`: a SQLite MLflow store filled through MlflowClient exactly as
docs/CONTRACTS.md says a sweep records itself, then tables (means with 95% intervals, the
differences tables), figures, files and artifacts."""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any

import pytest

mlflow = pytest.importorskip("mlflow")
from _chromium import needs_chromium, screenshot  # noqa: E402
from mlflow import MlflowClient  # noqa: E402
from mlflow.entities import Metric, Param  # noqa: E402

from orchestration.cli import main  # noqa: E402
from orchestration.mlflow_log import names  # noqa: E402
from orchestration.report import build_figures, build_tables, group_runs, load_sweep, write_report  # noqa: E402
from orchestration.report.paper import PAPER_TABLE3  # noqa: E402
from orchestration.report.render import render_markdown_report, to_latex  # noqa: E402
from orchestration.report.sweep_data import CHECK, MISSING  # noqa: E402
from reid_core.config import SCHEMA_VERSION, flatten, to_dict  # noqa: E402
from reid_core.presets import PRESETS, SWITCH_LABELS, SWITCHES, preset_config  # noqa: E402
from reid_core.training.epochs import EpochCounts, epoch_counts  # noqa: E402

SWEEP = "ablation-mini"
PRESETS_RUN = ("a", "c", "h", "compact")
SEEDS = (0, 1, 2)
CYCLES = 3
SCALE = 0.1  # main phase 35 epochs, cycles of 4 epochs

# final_rank1 / final_mAP per (preset, seed); None = not logged
FINAL = {
    ("a", 0): (0.90, 0.70),
    ("a", 1): (0.92, 0.72),
    ("a", 2): (0.94, 0.77),
    ("c", 0): (0.93, 0.80),
    ("c", 1): (0.95, 0.84),  # seed 2 never started
    ("h", 0): (0.95, 0.86),
    ("h", 1): (0.97, 0.90),  # seed 2 FAILED (logged a bad final_rank1)
    ("compact", 0): (0.96, None),  # final_mAP absent; seed 1 RUNNING; seed 2 never started
}
LOG_COMPLEXITY = {"c", "h", "compact"}  # "a" gets its params/MACs recomputed
UNTRAINED = {sd: {"untrained_rank1": 0.02 + 0.01 * sd, "untrained_mAP": 0.01 + 0.005 * sd} for sd in SEEDS}


def _text(v: Any, style: str) -> str:
    """MLflow stores params as text: `tracking` = orchestration/mlflow_log's format
    (true/false, JSON lists), `str` = Python's str() (True, [0.02, 0.4])."""
    if style == "tracking" and isinstance(v, bool):
        return "true" if v else "false"
    if style == "tracking" and isinstance(v, (list, tuple)):
        return json.dumps(list(v))
    return str(v)


def _cfg(preset: str, seed: int, **over: Any) -> Any:
    return preset_config(
        preset, {"seed": seed, "schedule.scale": SCALE, "swag.cycles": CYCLES, "model.num_classes": 10, **over}
    )


def _params(preset: str, seed: int, style: str = "tracking", **over: Any) -> dict[str, str]:
    flat = {k: _text(v, style) for k, v in flatten(_cfg(preset, seed, **over)).items()}
    flat.update({names.DATA_NAME_PARAM: "market1501", names.DATA_ROOT_PARAM: "/data/market"})
    return flat


def _config(preset: str, seed: int, drop: str | None = None, **over: Any) -> dict[str, Any]:
    """config.json as a trial logs it (to_dict of the resolved TrainConfig); `drop`: a
    dotted key left out (a run recorded by an older schema)."""
    recorded = to_dict(_cfg(preset, seed, **over))
    if drop:
        section, key = drop.split(".")
        del recorded[section][key]
    return recorded


class Store:
    """Writes a sweep the way orchestration/mlflow_log does (docs/CONTRACTS.md): tags,
    params (for the UI), the typed config.json the tables read, metrics."""

    def __init__(self, uri: str, tmp: Path):
        self.client = MlflowClient(tracking_uri=uri)
        self.tmp = tmp
        self.t0 = int(time.time() * 1000) - 10_000_000
        self.clock = 0

    def _now(self) -> int:
        self.clock += 1000
        return self.t0 + self.clock

    def experiment(self, name: str) -> str:
        return self.client.create_experiment(
            name,
            tags={names.EXPERIMENT_KIND: names.EXPERIMENT_KIND_VALUE, names.NOTE: f"test sweep {name}"},
        )

    def parent(self, exp: str, name: str, trials: list[dict[str, Any]] | None, spec_extra: str = "") -> str:
        run = self.client.create_run(
            exp, run_name=name, start_time=self._now(), tags={names.ROLE: names.ROLE_SWEEP, names.SWEEP: name}
        )
        folder = self.tmp / f"parent-{run.info.run_id}"
        folder.mkdir()
        (folder / names.SPEC_ARTIFACT).write_text(f"name: {name}\n{spec_extra}")
        self.client.log_artifact(run.info.run_id, str(folder / names.SPEC_ARTIFACT))
        if trials is not None:
            (folder / names.TRIALS_ARTIFACT).write_text(json.dumps(trials))
            self.client.log_artifact(run.info.run_id, str(folder / names.TRIALS_ARTIFACT))
        self.client.set_terminated(run.info.run_id, "FINISHED")
        return run.info.run_id

    def trial(
        self,
        exp: str,
        parent: str,
        sweep: str,
        preset: str,
        seed: int,
        grid_point: str | None = None,
        status: str = "FINISHED",
        metrics: dict[str, float] | None = None,
        history: dict[str, list[tuple[int, float]]] | None = None,
        error: str | None = None,
        schema: Any = SCHEMA_VERSION,
        params: dict[str, str] | None = None,
        extra_tags: dict[str, str] | None = None,
        config: dict[str, Any] | None = None,
    ) -> str:
        gp = grid_point or preset
        name = f"{gp}-seed{seed}"
        tags = {
            names.PARENT: parent,
            names.ROLE: names.ROLE_TRIAL,
            names.SWEEP: sweep,
            names.PRESET: preset,
            names.COLUMN: preset,
            names.SEED: str(seed),
            names.TRIAL_ID: f"abc_{name}",
            names.TRIAL_NAME: name,
            names.GRID_POINT: gp,
        }
        if schema is not None:
            tags[names.SCHEMA_VERSION_TAG] = str(schema)
        if error:
            tags[names.ERROR_TAG] = error
        tags.update(extra_tags or {})
        run = self.client.create_run(exp, run_name=name, start_time=self._now(), tags=tags)
        rid = run.info.run_id
        logged = params if params is not None else _params(preset, seed)
        self.client.log_batch(rid, params=[Param(k, v) for k, v in logged.items()])
        self.client.log_dict(rid, config if config is not None else _config(preset, seed), names.CONFIG_ARTIFACT)
        ms = []
        ts = self._now()
        last = 0
        for key, pts in (history or {}).items():
            for step, v in pts:
                ms.append(Metric(key, v, ts, step))
                last = max(last, step)
        for key, v in (metrics or {}).items():
            ms.append(Metric(key, v, ts, last))
        for i in range(0, len(ms), 900):
            self.client.log_batch(rid, metrics=ms[i : i + 900])
        if status != "RUNNING":
            self.client.set_terminated(rid, status)
        return rid


def _epochs(preset: str) -> EpochCounts:
    cfg = preset_config(preset, {"schedule.scale": SCALE, "swag.cycles": CYCLES})
    return epoch_counts(cfg)


# Figure 6 histories: current weights every 5 epochs and at cycle ends; SWAG at cycle ends.
def _swag_history(seed: int) -> tuple[dict[str, list[tuple[int, float]]], dict[str, float]]:
    epochs = _epochs("h")
    ends = [e + 1 for e in epochs.cycle_end_epochs]
    evals = sorted(set(range(5, epochs.main_epochs + 1, 5)) | {epochs.main_epochs} | set(ends))
    off = 0.01 * seed
    hist = {
        "rank1": [(e, 0.5 + 0.4 * e / epochs.total_epochs + off) for e in evals],
        "mAP": [(e, 0.3 + 0.5 * e / epochs.total_epochs + off) for e in evals],
        "swag_rank1": [(e, 0.93 + 0.005 * i + off) for i, e in enumerate(ends)],
        "swag_mAP": [(e, 0.85 + 0.01 * i + off) for i, e in enumerate(ends)],
        "swa_rank1": [(e, 0.92 + off) for e in ends],
    }
    summary = {
        "plain_rank1": 0.94 + off,
        "plain_mAP": 0.84 + off,
        "cyclic_rank1": 0.945 + off,
        "cyclic_mAP": 0.85 + off,
        "swag_rank1": 0.95 + off,
        "swag_mAP": 0.86 + off,
    }
    return hist, summary


# scale-grid: final_rank1 per grid value and seed (None: RUNNING, not averaged)
SCALE_GRID = {
    0.01: {0: 0.50, 1: 0.52, 2: 0.51, 3: 0.53},
    0.02: {0: 0.60, 1: 0.63, 2: 0.61, 3: 0.62},
    0.04: {4: 0.61, 5: 0.60, 6: 0.64, 7: None},
}
SCALE_GRID_SEEDS = {v: list(d) for v, d in SCALE_GRID.items()}

COMPLEXITY = {"c": (5.1e6, 5.2e6, 1.6e9), "h": (2.9e6, 2.92e6, 0.68e9), "compact": (5.26e6, 5.28e6, 1.62e9)}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("mlstore")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    writer = Store(uri, tmp)
    exp = writer.experiment(SWEEP)
    trials = [
        {"trial_name": f"{p}-seed{sd}", "grid_point": p, "preset": p, "seed": sd, "overrides": {}}
        for p in PRESETS_RUN
        for sd in SEEDS
    ]
    parent = writer.parent(exp, SWEEP, trials)
    ids: dict[str, str] = {}
    # an earlier attempt of h-seed0 that a resumed run replaced: must not be counted or listed
    writer.trial(exp, parent, SWEEP, "h", 0, status="FAILED", error="preempted")
    for (preset, seed), (r1, mp) in FINAL.items():
        metrics: dict[str, float] = {"final_rank1": r1, **UNTRAINED[seed]}
        if mp is not None:
            metrics["final_mAP"] = mp
        if preset in LOG_COMPLEXITY:
            metrics.update(zip(("params", "params_with_classifiers", "macs"), COMPLEXITY[preset]))
        hist = None
        if preset == "h":
            hist, summ = _swag_history(seed)
            metrics.update(summ)
        ids[f"{preset}-seed{seed}"] = writer.trial(exp, parent, SWEEP, preset, seed, metrics=metrics, history=hist)
    ids["h-seed2"] = writer.trial(
        exp,
        parent,
        SWEEP,
        "h",
        2,
        status="FAILED",
        metrics={"final_rank1": 0.10},
        error='Traceback (most recent call last):\n  File "trainer.py", line 3\nRuntimeError: CUDA out of memory',
    )
    ids["compact-seed1"] = writer.trial(
        exp, parent, SWEEP, "compact", 1, status="RUNNING", history={"rank1": [(5, 0.5)]}
    )
    # a run of an older config schema (would otherwise count as column g)
    ids["g-seed0"] = writer.trial(
        exp, parent, SWEEP, "g", 0, metrics={"final_rank1": 0.99, "final_mAP": 0.99}, schema=0
    )

    # a grid sweep over gem_p_init (same preset, two grid points)
    gexp = writer.experiment("gem-grid")
    gtrials = [
        {
            "trial_name": f"gem_p_init={v}-seed{sd}",
            "grid_point": f"gem_p_init={v}",
            "preset": "compact",
            "seed": sd,
            "overrides": {"model.gem_p_init": v},
        }
        for v in (3.0, 4.0)
        for sd in (0, 1)
    ]
    gparent = writer.parent(gexp, "gem-grid", gtrials)
    for v, vals in ((3.0, (0.90, 0.92)), (4.0, (0.91, None))):
        for sd, r1 in zip((0, 1), vals):
            if r1 is None:  # stopped early by ASHA: KILLED, with the stopped tag
                writer.trial(
                    gexp,
                    gparent,
                    "gem-grid",
                    "compact",
                    sd,
                    grid_point=f"gem_p_init={v}",
                    status="KILLED",
                    metrics={"rank1": 0.5},
                    extra_tags={names.STOPPED: "early"},
                    params=_params("compact", sd, style="str", **{"model.gem_p_init": v}),
                    config=_config("compact", sd, **{"model.gem_p_init": v}),
                )
                continue
            writer.trial(
                gexp,
                gparent,
                "gem-grid",
                "compact",
                sd,
                grid_point=f"gem_p_init={v}",
                metrics={
                    "final_rank1": r1,
                    "final_mAP": r1 - 0.1,
                    "params": 5.26e6,
                    "params_with_classifiers": 5.28e6,
                    "macs": 1.62e9,
                },
                params=_params("compact", sd, style="str", **{"model.gem_p_init": v}),
                config=_config("compact", sd, **{"model.gem_p_init": v}),
            )

    # a grid over schedule.scale whose spec names its reference; 0.04 ran other seeds (unpaired)
    sexp = writer.experiment("scale-grid")
    strials = [
        {"trial_name": f"scale={v}-seed{sd}", "grid_point": f"scale={v}", "preset": "g", "seed": sd, "overrides": {}}
        for v, seeds in SCALE_GRID_SEEDS.items()
        for sd in seeds
    ]
    sparent = writer.parent(sexp, "scale-grid", strials, spec_extra="reference: scale=0.02\n")
    for v, per_seed in SCALE_GRID.items():
        for sd, r1 in per_seed.items():
            over = {"schedule.scale": v}
            writer.trial(
                sexp,
                sparent,
                "scale-grid",
                "g",
                sd,
                grid_point=f"scale={v}",
                status="RUNNING" if r1 is None else "FINISHED",
                metrics={}
                if r1 is None
                else {
                    "final_rank1": r1,
                    "final_mAP": r1 - 0.2,
                    "untrained_rank1": 0.02,
                    "untrained_mAP": 0.01 + 0.001 * sd,
                },
                params=_params("g", sd, **over),
                config=_config("g", sd, **over),
            )

    writer.experiment("empty-sweep")
    oexp = writer.experiment("old-sweep")
    oparent = writer.parent(oexp, "old-sweep", None)
    writer.trial(oexp, oparent, "old-sweep", "a", 0, metrics={"final_rank1": 0.9}, schema=None)
    writer.trial(
        oexp,
        oparent,
        "old-sweep",
        "c",
        0,
        metrics={"final_rank1": 0.9},
        params={k: v for k, v in _params("c", 0).items() if k != "model.pooling"},
        config=_config("c", 0, drop="model.pooling"),
    )
    pexp = writer.experiment("parent-only")
    writer.parent(pexp, "parent-only", trials[:2])
    return {"uri": uri, "tmp": tmp, "ids": ids, "parent": parent, "client": writer.client}


@pytest.fixture(scope="module")
def built(store: dict[str, Any]) -> dict[str, Any]:
    data = load_sweep(SWEEP, store["uri"])
    mode, tables = build_tables(data)
    figures = build_figures(data, mode)
    return {"data": data, "mode": mode, "tables": tables, "figures": figures}


def _col(built: dict[str, Any], label: str) -> dict[str, str]:
    display = built["tables"]["table3"].display
    return dict(zip(display[""], display[label]))


def _sd(*xs: float) -> float:
    m = sum(xs) / len(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def _ci(*xs: float) -> str:
    """ "mean [lo, hi]": the mean of values in % and its 95% Student's t interval."""
    from scipy import stats

    m = sum(xs) / len(xs)
    lo, hi = stats.t.interval(0.95, len(xs) - 1, loc=m, scale=_sd(*xs) / math.sqrt(len(xs)))
    return f"{m:.1f} [{lo:.1f}, {hi:.1f}]"


# ---------------------------------------------------------------------------------


def test_runs_frame(built: dict[str, Any]) -> None:
    data = built["data"]
    runs = data.runs
    assert data.superseded == 1  # the pre-empted first attempt of h-seed0
    assert sorted(runs["trial_name"]) == sorted(
        [
            "a-seed0",
            "a-seed1",
            "a-seed2",
            "c-seed0",
            "c-seed1",
            "h-seed0",
            "h-seed1",
            "h-seed2",
            "compact-seed0",
            "compact-seed1",
            "g-seed0",
        ]
    )
    assert runs.set_index("trial_name").loc["h-seed0", "status"] == "FINISHED"
    assert runs.set_index("trial_name").loc["g-seed0", "excluded"].startswith("config schema 0")
    assert built["mode"] == "preset"
    assert len(data.planned) == 12
    # switches come from the recorded config.json
    for _, r in runs[runs["excluded"] == ""].iterrows():
        for s in SWITCHES:
            assert r[f"sw.{s}"] == PRESETS[r["preset"]]["switches"][s]


def test_table3_checkmarks_and_order(built: dict[str, Any]) -> None:
    display = built["tables"]["table3"].display
    assert list(display.columns) == ["", "a", "c", "h", "Compact-ReID"]
    for label, preset in (("a", "a"), ("c", "c"), ("h", "h"), ("Compact-ReID", "compact")):
        col = _col(built, label)
        for s in SWITCHES:
            assert col[SWITCH_LABELS[s]] == (CHECK if PRESETS[preset]["switches"][s] else ""), (label, s)
        assert col["Paper column (same switches)"] == ("Compact-ReID" if preset == "compact" else preset)
    assert _col(built, "a")["Triplet loss"] == "none"
    assert _col(built, "c")["Triplet loss"] == "eq. 4"


def test_table3_means_by_hand(built: dict[str, Any]) -> None:
    col_a = _col(built, "a")
    # rank-1 90, 92, 94 -> 92.0, sd 2.0: 95% t interval 92 ± 4.303 * 2 / sqrt(3) = [87.0, 97.0]
    assert col_a["Seeds finished"] == "3/3"
    assert col_a["Rank-1 (%)"] == _ci(90, 92, 94) == "92.0 [87.0, 97.0]"
    assert col_a["mAP (%)"] == _ci(70, 72, 77)
    assert col_a["Rank-1 untrained (%)"] == _ci(2, 3, 4) and col_a["mAP untrained (%)"] == _ci(1, 1.5, 2)
    assert col_a["Rank-1 paper"] == "93.2" and col_a["Rank-1 Δ paper"] == "-1.2"
    assert col_a["mAP paper"] == "82.0" and col_a["mAP Δ paper"] == "-9.0"
    rec = built["tables"]["table3"].data.set_index("group").loc["a"]
    assert rec["rank1_mean"] == pytest.approx(92.0)
    assert (rec["rank1_lo"], rec["rank1_hi"]) == (pytest.approx(87.0, abs=0.04), pytest.approx(97.0, abs=0.04))
    assert rec["rank1_std"] == pytest.approx(2.0)
    assert rec["mAP_std"] == pytest.approx(_sd(70, 72, 77))
    assert rec["rank1_diff"] == pytest.approx(92.0 - PAPER_TABLE3["a"][0])


def test_missing_seeds_failed_and_absent(built: dict[str, Any]) -> None:
    col_c, col_h, col_compact = _col(built, "c"), _col(built, "h"), _col(built, "Compact-ReID")
    assert col_c["Seeds finished"] == "2/3"
    assert col_c["Rank-1 (%)"] == f"{_ci(93, 95)} (2/3)"
    # the FAILED h-seed2 logged final_rank1 = 0.10: not averaged
    assert col_h["Rank-1 (%)"] == f"{_ci(95, 97)} (2/3)"
    assert col_h["mAP (%)"] == f"{_ci(86, 90)} (2/3)"
    # compact: one finished seed (no interval), no final_mAP; a RUNNING seed is not averaged
    assert col_compact["Seeds finished"] == "1/3"
    assert col_compact["Rank-1 (%)"] == "96.0, n/a (1 seed) (1/3)"
    assert col_compact["mAP (%)"] == MISSING and col_compact["mAP Δ paper"] == MISSING
    probs = built["tables"]["table3"].problems.set_index("trial")
    assert probs.loc["h-seed2", "status"] == "FAILED"
    assert "CUDA out of memory" in probs.loc["h-seed2", "error"]
    assert probs.loc["compact-seed1", "status"] == "RUNNING"
    assert probs.loc["c-seed2", "status"] == "not started"
    assert probs.loc["compact-seed2", "status"] == "not started"
    assert probs.loc["g-seed0", "status"].startswith("excluded")
    assert "h-seed0" not in probs.index  # the replaced attempt is not a problem
    md = render_markdown_report(built["data"], built["mode"], built["tables"], built["figures"])
    assert "`h-seed2` (group h) — FAILED: RuntimeError: CUDA out of memory" in md
    assert "config schema 0, current is" in md


def test_table4(built: dict[str, Any]) -> None:
    display = built["tables"]["table4"].display
    assert list(display.columns) == ["setup", "", "plain", "+ cyclic LR", "+ SWAG"]
    starts = [i for i, v in enumerate(display["setup"]) if v]
    assert [display["setup"][i] for i in starts] == [
        "h (paper setup 2: column g)",
        "Compact-ReID (paper setup 3: column i)",
    ]
    rows_h = dict((row[""], row) for _, row in display.iloc[starts[0] : starts[1]].iterrows())
    # plain 94, 95; cyclic 94.5, 95.5; swag 95, 96 (rank-1 %, seeds 0 and 1; seed 2 FAILED)
    assert rows_h["Rank-1 (%)"]["plain"] == f"{_ci(94, 95)} (2/3)"
    assert rows_h["Rank-1 paper"]["plain"] == "95.4"
    assert rows_h["Rank-1 (%)"]["+ SWAG"] == f"{_ci(95, 96)} (2/3)" and rows_h["Rank-1 paper"]["+ SWAG"] == "95.8"
    assert rows_h["Rank-1 Δ paper"]["+ cyclic LR"] == "-0.8"  # 95.0 - 95.8
    assert rows_h["mAP (%)"]["+ SWAG"] == f"{_ci(87, 88)} (2/3)" and rows_h["mAP Δ paper"]["+ SWAG"] == "-1.2"
    comp = display.iloc[starts[1] :]
    assert (comp[comp[""] == "Rank-1 (%)"][["plain", "+ cyclic LR", "+ SWAG"]] == MISSING).all().all()
    rec = built["tables"]["table4"].data.set_index(["group", "metric"]).loc[("h", "mAP")]
    assert rec["swag_mean"] == pytest.approx(87.5) and rec["swag_paper"] == 88.7 and rec["swag_n"] == 2


def test_table1(built: dict[str, Any]) -> None:
    from reid_core.complexity import profile_model

    t1 = built["tables"]["table1"]
    rec = t1.data.set_index("paper_model")
    hacnn = rec.loc["hacnn"]  # column a = the HA-CNN architecture, recomputed
    prof = profile_model(preset_config("a", {"model.num_classes": 10}).model)
    assert hacnn["source"] == "recomputed"
    assert hacnn["params"] == prof["params"] and hacnn["macs"] == prof["macs"]
    assert hacnn["params_with_classifiers"] == prof["params_with_classifiers"]
    assert rec.loc["compact-1x", "params"] == 2.9e6 and rec.loc["compact-1x", "source"] == "logged"
    display = t1.display.set_index("groups")
    assert display.loc["h", "paper params (M)"] == "2.9" and display.loc["h", "Δ params"] == "+0.0%"
    assert display.loc["Compact-ReID", "paper MACs (G)"] == "1.68"


def test_table2(built: dict[str, Any]) -> None:
    t2 = built["tables"]["table2"]
    display = t2.display
    assert "HA-CNN" in set(display["method"]) and "Ours (6.4M)" in set(display["method"])
    ours = display.iloc[t2.highlight_rows]
    # best 2x group (compact, 96.0) and best 1x group (h, 96.0 ± 1.4) on Market-1501
    assert list(ours["method"]) == ["Compact-ReID (Market1501, 1 seed)", "h (Market1501, 2 seeds)"] or list(
        ours["method"]
    ) == ["h (Market1501, 2 seeds)", "Compact-ReID (Market1501, 1 seed)"]
    hrow = ours[ours["method"].str.startswith("h ")].iloc[0]
    assert hrow["Market1501 R1"] == f"96.0 ± {_sd(95, 97):.1f}" and hrow["DukeMTMC R1"] == MISSING
    assert hrow["params (M)"] == "2.9"
    ha = t2.data[t2.data["method"] == "HA-CNN"].iloc[0]
    assert (ha["Market1501_r1"], ha["DukeMTMC_mAP"], ha["params_m"]) == (91.2, 63.8, 2.7)


def test_table2_gets_its_parameters_passed_not_from_table1(store: dict[str, Any]) -> None:
    from orchestration.report.arch import group_params, model_sizes
    from orchestration.report.sota import table2

    data = load_sweep(SWEEP, store["uri"], histories=False)
    grouped = group_runs(data)
    # Table 2 alone, before any other table: the same as in the report
    alone = table2(grouped, "preset", group_params(model_sizes(grouped, "preset")))
    _mode, tables = build_tables(data)
    assert alone.display.equals(tables["table2"].display) and alone.data.equals(tables["table2"].data)


def test_building_the_report_changes_nothing(store: dict[str, Any], tmp_path: Path) -> None:
    data = load_sweep(SWEEP, store["uri"])
    runs_before, warnings_before = data.runs.copy(), list(data.warnings)
    mode, tables = build_tables(data)
    figures = build_figures(data, mode)
    write_report(data, mode, tables, figures, tmp_path / "out", ["csv"], log=False)
    assert data.runs.equals(runs_before) and list(data.runs.columns) == list(runs_before.columns)
    assert "group" not in data.runs and data.group_by is None and data.warnings == warnings_before
    with pytest.raises(dataclasses.FrozenInstanceError):
        data.reference = "x"  # type: ignore[misc]
    # the runs list written carries the groups (from a grouped copy)
    assert "group" in (tmp_path / "out" / "runs.csv").read_text().splitlines()[0].split(",")


def test_rows_are_defined_once_with_their_cells() -> None:
    from orchestration.report.layout import Column, Row, column_cells, row_cells, section_starts

    sections = [[], [Row("double", lambda x: str(2 * x))], [Row("square", lambda x: str(x * x)), Row("x", str)]]
    rows = [row for section in sections for row in section]
    assert row_cells(rows, {"two": 2, "three": 3}) == [
        {"": "double", "two": "4", "three": "6"},
        {"": "square", "two": "4", "three": "9"},
        {"": "x", "two": "2", "three": "3"},
    ]
    assert section_starts(sections) == [1]  # an empty first block draws no rule
    assert column_cells([Column("neg", lambda x: str(-x))], 5) == {"neg": "-5"}


def test_figures(built: dict[str, Any]) -> None:
    forest, fig6, fig1 = built["figures"]
    assert forest.figure is not None and fig6.figure is not None and fig1.figure is not None
    ax = fig6.figure.axes[0]
    labels = [line.get_label() for line in ax.get_lines()]
    assert "h SWAG (n=2)" in labels and "h SGD (n=2)" in labels
    swag = next(line for line in ax.get_lines() if line.get_label() == "h SWAG (n=2)")
    ends = [e + 1 for e in _epochs("h").cycle_end_epochs]
    assert list(swag.get_xdata()) == ends
    assert swag.get_ydata()[0] == pytest.approx(100 * (0.93 + 0.005))  # mean of seeds 0 and 1
    sgd = next(line for line in ax.get_lines() if line.get_label() == "h SGD (n=2)")
    assert min(sgd.get_xdata()) == _epochs("h").main_epochs  # the cyclic phase only


def test_grid_table(store: dict[str, Any]) -> None:
    data = load_sweep("gem-grid", store["uri"])
    mode, tables = build_tables(data)
    assert mode == "grid_point" and "grid" in tables
    display = tables["grid"].display
    assert list(display.columns) == ["", "gem_p_init=3.0", "gem_p_init=4.0"]
    rows = dict(zip(display[""], display["gem_p_init=4.0"]))
    assert rows["model.gem_p_init"] == "4.0"
    assert rows["Seeds finished"] == "1/2" and rows["Rank-1 (%)"] == "91.0, n/a (1 seed) (1/2)"
    assert rows["Paper column (same switches)"] == "Compact-ReID"
    assert dict(zip(display[""], display["gem_p_init=3.0"]))["Rank-1 (%)"] == _ci(90, 92)
    killed = tables["grid"].problems.set_index("trial").loc["gem_p_init=4.0-seed1"]
    assert killed["status"] == "KILLED" and killed["error"] == "stopped early by the scheduler"
    # a search or a long grid: one row per group
    from orchestration.report.ablation import table3

    long = table3(group_runs(data, mode), mode, max_columns=1).display
    assert list(long["group"]) == ["gem_p_init=3.0", "gem_p_init=4.0"]
    assert long.set_index("group").loc["gem_p_init=4.0", "Rank-1 (%)"] == "91.0, n/a (1 seed) (1/2)"
    # gem_p_init=4.0 has one finished seed: its difference to the first grid point has no interval
    diff = tables["grid_diff"].data
    row = diff[(diff["kind"] == "reference") & (diff["metric"] == "rank1")].iloc[0]
    assert (row["group"], row["reference"], row["verdict"]) == ("gem_p_init=4.0", "gem_p_init=3.0", "n/a")


def test_override_notes(built: dict[str, Any]) -> None:
    notes = built["tables"]["table3"].notes
    assert "Every group departs from its preset's defaults in: schedule.scale=0.1, swag.cycles=3" in notes


def test_resolve_tracking_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from orchestration.mlflow_log import resolve_tracking_uri

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    assert resolve_tracking_uri(None) == f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}"
    assert resolve_tracking_uri("x/m.db") == f"sqlite:///{tmp_path / 'x' / 'm.db'}"
    assert resolve_tracking_uri("sqlite:///rel.db") == f"sqlite:///{tmp_path / 'rel.db'}"
    assert resolve_tracking_uri("http://127.0.0.1:5000/") == "http://127.0.0.1:5000"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://h:1")
    assert resolve_tracking_uri(None) == "http://h:1"


def test_latex_booktabs(built: dict[str, Any]) -> None:
    tex = to_latex(built["tables"]["table3"])
    assert "\\toprule" in tex and "\\midrule" in tex and "\\bottomrule" in tex
    assert "\\checkmark" in tex and "✓" not in tex and "[87.0, 97.0]" in tex
    tex = to_latex(built["tables"]["table4_diff"])
    body = tex.split("\\begin{tabular}")[1]
    assert "$\\rightarrow$" in body and "→" not in body and "−" not in body


def test_cli_writes_every_format_and_logs(store: dict[str, Any], tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    rc = main(["tables", "--experiment", SWEEP, "--tracking-uri", store["uri"], "--out", str(out), "--json"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["logged_to"] == store["parent"]
    written = {path.name for path in out.iterdir()}
    for f in (
        "tables.md",
        "tables.tex",
        "table3.tex",
        "table4.tex",
        "table1.tex",
        "table2.tex",
        "table3.csv",
        "table4.csv",
        "table1.csv",
        "table2.csv",
        "runs.csv",
        "report.html",
        "fig6_swag.png",
        "fig6_swag.svg",
        "fig1_params.png",
        "fig1_params.svg",
        "fig_forest.png",
        "table3_diff.csv",
        "table3_diff.tex",
        "table4_diff.csv",
    ):
        assert f in written, f
        assert (out / f).stat().st_size > 0
    logged = {Path(a.path).name for a in store["client"].list_artifacts(store["parent"], "tables")}
    assert written <= logged
    html = (out / "report.html").read_text()
    for bad in ("http://", "https://", "<script", "<link", 'src="http', "url("):
        assert bad not in html, bad
    assert html.count('src="data:image/png;base64,') == 3
    assert "Table 3 differences" in html and "not resolved" in html
    assert "h-seed2" in html and "CUDA out of memory" in html
    assert summary["tables"]["table3"]["rows"][0]["group"] == "a"
    assert {r["trial"] for r in summary["not_averaged"]} >= {"h-seed2", "compact-seed1", "c-seed2", "g-seed0"}


def test_cli_formats_subset(store: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "md-only"
    assert (
        main(
            [
                "tables",
                "--experiment",
                SWEEP,
                "--tracking-uri",
                store["uri"],
                "--out",
                str(out),
                "--format",
                "md",
                "--no-log",
            ]
        )
        == 0
    )
    written = {path.name for path in out.iterdir()}
    assert "tables.md" in written and "report.html" not in written and "table3.csv" not in written


@pytest.mark.parametrize(
    "experiment, message",
    [
        ("no-such-sweep", "does not exist"),
        ("empty-sweep", "has no runs"),
        ("old-sweep", "none of its 2 trial runs can be tabulated"),
        ("parent-only", "no trial runs yet (2 trials planned)"),
    ],
)
def test_cli_bad_input(store: dict[str, Any], tmp_path: Path, capsys, experiment: str, message: str) -> None:
    rc = main(["tables", "--experiment", experiment, "--tracking-uri", store["uri"], "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert rc == 2
    assert message in err and "Traceback" not in err
    if experiment == "no-such-sweep":
        assert SWEEP in err and "gem-grid" in err  # lists the experiments that exist
    if experiment == "old-sweep":
        assert f"no {names.SCHEMA_VERSION_TAG} tag" in err and "params missing: model.pooling" in err
    assert not (tmp_path / "x").exists()


def test_cli_missing_store_and_bad_format(tmp_path: Path, capsys) -> None:
    uri = f"sqlite:///{tmp_path / 'nothing.db'}"
    assert main(["tables", "--experiment", "x", "--tracking-uri", uri]) == 2
    assert "no MLflow store" in capsys.readouterr().err
    assert not (tmp_path / "nothing.db").exists()
    assert main(["tables", "--experiment", "x", "--tracking-uri", uri, "--format", "pdf"]) == 2
    assert "unknown format 'pdf'" in capsys.readouterr().err


@needs_chromium
def test_html_screenshot_headless_chromium(built: dict[str, Any], store: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "report"
    write_report(built["data"], built["mode"], built["tables"], built["figures"], out, ["html"], log=False)
    png = screenshot(out / "report.html", tmp_path / "shot.png", "1400,2000")
    assert len(png) > 20_000  # a rendered page, not a blank one


# ---------------------------------------------------------------------------------
# Differences: intervals, verdicts, references


def _diff_rows(table: Any) -> dict[tuple[str, str], dict[str, Any]]:
    """(group, metric) -> the record of each comparison against the reference."""
    frame = table.data
    return {(r["group"], r["metric"]): r for r in frame[frame["kind"] == "reference"].to_dict("records")}


def test_table3_differences(built: dict[str, Any]) -> None:
    from scipy import stats

    table = built["tables"]["table3_diff"]
    rows = _diff_rows(table)
    # references by switches: a -> c and c -> compact (b and i are not in the sweep: the smallest
    # superset of their switches), h -> compact (the paper's), compact is the full model
    assert {g: r["reference"] for (g, m), r in rows.items() if m == "rank1"} == {
        "a": "c",
        "c": "compact",
        "h": "compact",
    }
    row_a = rows[("a", "rank1")]
    # a has seeds 0-2, c seeds 0-1: unpaired, Welch
    ci = stats.ttest_ind([90, 92, 94], [93, 95], equal_var=False).confidence_interval(0.95)
    assert not row_a["paired"] and (row_a["n_ref"], row_a["n_other"]) == (2, 3)
    assert row_a["diff"] == pytest.approx(92 - 94)
    assert (row_a["diff_lo"], row_a["diff_hi"]) == (pytest.approx(ci.low), pytest.approx(ci.high))
    assert row_a["verdict"] == "not resolved" and row_a["seeds_needed"] > 3
    # compact has one finished seed: no interval, no verdict, nothing crashes
    row_h = rows[("h", "rank1")]
    assert row_h["verdict"] == "n/a" and (row_h["diff_lo"] is None or math.isnan(row_h["diff_lo"]))
    display = table.display
    hrow = display[display["comparison"] == "h − Compact-ReID"].iloc[0]
    assert hrow["Δ (points) [95% CI]"] == "+0.0, n/a (1 seed)" and hrow["verdict"] == "n/a (1 seed)"
    arow = display[display["comparison"] == "a − c"].iloc[0]
    assert arow["seeds"] == "3 vs 2, unpaired (seeds differ)"
    assert arow["verdict"].startswith("not resolved at 3/2 seeds")
    assert any("Unpaired (Welch)" in n and "a vs c" in n for n in table.notes)
    # trained against untrained, paired per run: a gains 90 points on each of its 3 seeds
    unt = table.data[
        (table.data["kind"] == "untrained") & (table.data["group"] == "a") & (table.data["metric"] == "rank1")
    ].iloc[0]
    assert unt["paired"] and unt["n_ref"] == 3 and unt["verdict"] == "better"
    assert unt["diff"] == pytest.approx(92 - 3)
    # every format carries it
    md = render_markdown_report(built["data"], built["mode"], built["tables"], built["figures"])
    assert "## Table 3 differences: each column against its reference" in md
    assert "| a − c | Rank-1 | 3 vs 2, unpaired (seeds differ) |" in md
    assert "a: trained − untrained" in md
    assert "\\toprule" in to_latex(table) and "n/a (1 seed)" in to_latex(table)


def test_table4_differences_paired_per_run(built: dict[str, Any]) -> None:
    table = built["tables"]["table4_diff"]
    frame = table.data
    steps_h = frame[(frame["group"] == "h") & (frame["metric"] == "rank1")].set_index("step")
    # plain 94, 95 -> cyclic 94.5, 95.5 -> swag 95, 96: +0.5 on each run, paired, no spread
    step = steps_h.loc["plain → + cyclic LR"]
    assert step["paired"] and step["n_ref"] == 2 and step["diff"] == pytest.approx(0.5)
    assert step["verdict"] == "better"
    assert "compact" not in set(frame["group"])  # no phase metrics recorded: said in a note
    assert any("No finished run recorded the phases" in n and "Compact-ReID" in n for n in table.notes)


def test_grid_named_reference_paired_and_unpaired(store: dict[str, Any]) -> None:
    from scipy import stats

    data = load_sweep("scale-grid", store["uri"])
    assert data.reference == "scale=0.02"
    mode, tables = build_tables(data)
    assert mode == "grid_point" and "grid_diff" in tables
    table = tables["grid_diff"]
    rows = _diff_rows(table)
    assert {g for g, _ in rows} == {"scale=0.01", "scale=0.04"}
    lo = rows[("scale=0.01", "rank1")]
    # same seeds 0-3: paired; -9.5 points on average, tight
    diffs = [100 * (SCALE_GRID[0.01][s] - SCALE_GRID[0.02][s]) for s in range(4)]
    ci = stats.ttest_1samp(diffs, 0).confidence_interval(0.95)
    assert lo["paired"] and lo["reference"] == "scale=0.02"
    assert (lo["diff_lo"], lo["diff_hi"]) == (pytest.approx(ci.low), pytest.approx(ci.high))
    assert lo["verdict"] == "worse" and lo["p_improve"] == 0.0
    hi = rows[("scale=0.04", "rank1")]
    # seeds 4-6 (the RUNNING seed 7 is not averaged) against 0-3: unpaired
    assert not hi["paired"] and (hi["n_ref"], hi["n_other"]) == (4, 3)
    assert hi["verdict"] == "not resolved"
    assert any("named by the spec's `reference:`" in n for n in table.notes)
    probs = tables["grid"].problems.set_index("trial")
    assert probs.loc["scale=0.04-seed7", "status"] == "RUNNING"
    display = tables["grid"].display
    assert dict(zip(display[""], display["scale=0.04"]))["Rank-1 (%)"] == f"{_ci(61, 60, 64)} (3/4)"
    # the forest plot draws both comparisons per metric
    forest = build_figures(data, mode)[0]
    assert forest.key == "fig_forest" and forest.figure is not None
    assert "unpaired" in " ".join(forest.notes)


def test_named_reference_that_is_no_group(store: dict[str, Any]) -> None:
    data = dataclasses.replace(load_sweep("scale-grid", store["uri"]), reference="scale=9")
    mode, tables = build_tables(data)
    table = tables["grid_diff"]
    assert set(table.data[table.data["kind"] == "reference"]["reference"]) == {"scale=0.01"}
    assert any("names reference 'scale=9', which is no group" in n for n in table.notes)


def test_figure6_band_is_the_interval(built: dict[str, Any]) -> None:
    from scipy import stats

    fig6 = built["figures"][1]
    ax = fig6.figure.axes[0]
    band = ax.collections[1]  # h: SGD band first, then SWAG
    ys = band.get_paths()[0].vertices[:, 1]
    vals = [93.0, 94.0]  # the first cycle end, seeds 0 and 1
    lo, hi = stats.t.interval(0.95, 1, loc=sum(vals) / 2, scale=_sd(*vals) / math.sqrt(2))
    assert min(ys) == pytest.approx(lo, abs=1e-6) and max(ys) >= hi - 1e-6


def test_forest_draws_a_zero_width_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two seeds with the same difference: an interval of width 0 whose bounds, in points, can
    land a rounding error inside the difference (seen on a real 2-seed sweep)."""
    from types import SimpleNamespace

    import orchestration.report.figures as figures

    # in points: 30.000000000000004 against 30.0
    comparison = SimpleNamespace(diff=0.1 + 0.2, lo=0.3, hi=0.3, verdict="better", paired=True)
    row = {"kind": "reference", "label": "h vs g", "metric": "rank1", "comparison": comparison}
    monkeypatch.setattr(figures, "group_comparisons", lambda data, mode: [row])
    assert figures.forest(None, "preset").figure is not None
