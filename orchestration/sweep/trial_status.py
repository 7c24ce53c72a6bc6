"""What a sweep's trials did: rows from Ray's experiment state (public
`tune.ExperimentAnalysis(...).trials`) and from MLflow, the summary table, `sweep status`."""

from __future__ import annotations

import json
import os
import time
from typing import Any, Iterable

from ..mlflow_log.names import ERROR_TAG, NODE_IP, STEP_KEY, TOTAL_EPOCHS, TRIAL_NAME
from .errors import SweepError
from .sweep_folder import SweepState, open_sweep
from .trial import trial_name_creator

SUMMARY_FILE = "summary.json"  # the last summary table, beside sweep.json (and in the local cache)


def trial_rows(trials: Iterable[Any]) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]], bool]:
    """(trial name -> outcome, table rows, interrupted) from Ray Trial objects."""
    outcomes: dict[str, dict[str, Any]] = {}
    rows: list[dict[str, Any]] = []
    interrupted = False
    for t in trials:
        name = trial_name_creator(t)
        last = dict(t.last_result or {})
        status = str(t.status)
        total, epoch = int(last.get("total_epochs") or 0), int(last.get("epoch") or 0)
        complete = bool(total) and epoch >= total
        error = _trial_error(t) if status == "ERROR" else None
        interrupted |= status not in ("TERMINATED", "ERROR")
        outcomes[name] = {"state": status, "error": error, "complete": complete}
        rows.append(
            {
                "trial": name,
                "trial_id": t.trial_id,
                "status": status if status != "TERMINATED" or complete else "STOPPED",
                "epoch": epoch,
                "total_epochs": total,
                "final_rank1": last.get("final_rank1") if complete else None,
                "final_mAP": last.get("final_mAP") if complete else None,
                **{
                    k: last.get(k)
                    for k in (
                        "rank1",
                        "mAP",
                        "train_seconds",
                        "eval_seconds",
                        "trial_wall_s",
                        "trainer_init_s",
                        "trainer_run_s",
                        "report_s",
                    )
                },
                "error": (error or "").strip().splitlines()[-1][:200] if error else None,
                "node": last.get("node_ip"),
                "eta_s": _eta(last.get("trial_wall_s"), epoch, total) if status == "RUNNING" else None,
            }
        )
    return outcomes, rows, interrupted


def _eta(elapsed: Any, epoch: int, total: int | None) -> float | None:
    """Seconds left at this attempt's pace so far (None before the first epoch)."""
    if not isinstance(elapsed, (int, float)) or not epoch or not total or epoch >= total:
        return None
    return float(elapsed) / epoch * (total - epoch)


def ray_trials(experiment_path: str, filesystem: Any = None) -> list[Any]:
    """The trials of a Ray experiment folder (no Ray cluster needed)."""
    from ray.tune import ExperimentAnalysis

    class _TrialsOnly(ExperimentAnalysis):
        # Ray's per-trial result files are off (ray_tune.init_ray): the trials' states are in
        # the experiment snapshot, their metrics in MLflow; reading the files would only warn.
        def _fetch_trial_dataframes(self) -> dict:
            return {}

    return _TrialsOnly(experiment_path, storage_filesystem=filesystem).trials


def _trial_error(trial: Any) -> str:
    """The trial's error text (error.txt in its storage folder; no Ray session needed)."""
    try:
        err = trial.get_error()
        if err:
            return str(err)[-4000:]
    except Exception:  # storage unreadable: fall through
        pass
    return "trial errored (see error.txt in its Ray trial folder)"


def format_table(rows: list[dict[str, Any]]) -> str:
    def pct(v: Any) -> str:
        return f"{100 * float(v):.1f}" if isinstance(v, (int, float)) else "-"

    def sec(v: Any) -> str:
        return f"{float(v):.0f}" if isinstance(v, (int, float)) else "-"

    def latest(r: dict[str, Any], key: str) -> Any:  # the final figure once there, else the last evaluation
        return r.get(f"final_{key}") if r.get(f"final_{key}") is not None else r.get(key)

    with_mlflow = any("mlflow" in r for r in rows)
    name_width = max([len("trial")] + [len(r["trial"]) for r in rows])
    wn = max([len("node")] + [len(str(r.get("node") or "-")) for r in rows])
    head = f"{'trial':<{name_width}}  {'ray':<10} " + (f"{'mlflow':<9} " if with_mlflow else "")
    lines = [
        head + f"{'node':<{wn}} {'epochs':>7} {'rank1':>6} {'mAP':>6}  {'train_s':>7} {'wall_s':>7} {'eta_s':>6}  error"
    ]
    for r in rows:
        ep = f"{r.get('epoch') or 0}/{r.get('total_epochs') or '?'}"
        line = f"{r['trial']:<{name_width}}  {r['status']:<10} " + (
            f"{r.get('mlflow') or '-':<9} " if with_mlflow else ""
        )
        lines.append(
            line + f"{str(r.get('node') or '-'):<{wn}} {ep:>7} {pct(latest(r, 'rank1')):>6} "
            f"{pct(latest(r, 'mAP')):>6}  {sec(r.get('train_seconds')):>7} {sec(r.get('trial_wall_s')):>7} "
            f"{sec(r.get('eta_s')):>6}  {r.get('error') or ''}"
        )
    return "\n".join(lines)


def mlflow_rows(state: SweepState) -> dict[str, dict[str, Any]] | None:
    """Trial name -> MLflow view of its child run (status, epochs logged, final metrics);
    None when the store cannot be read quickly."""
    from ..mlflow_log import SweepTracker
    from ..mlflow_log.store import quick_failing

    try:
        with quick_failing():
            tracker = SweepTracker(state.tracking_uri)
            runs = [r for m in state.members for r in tracker.children(m.parent_run_id, m.experiment_id)]
    except Exception:
        return None
    out = {}
    now = time.time()
    for r in runs:
        m, tags = r.data.metrics, r.data.tags
        epoch = int(m.get(STEP_KEY, 0))
        total = int(m["epochs"]) if "epochs" in m else (int(tags[TOTAL_EPOCHS]) if TOTAL_EPOCHS in tags else None)
        running = r.info.status == "RUNNING"
        out[tags.get(TRIAL_NAME, r.info.run_name)] = {
            "status": r.info.status,
            "epoch": epoch,
            "final_rank1": m.get("final_rank1"),
            "final_mAP": m.get("final_mAP"),
            "rank1": m.get("rank1"),
            "mAP": m.get("mAP"),
            "train_seconds": m.get("train_seconds"),
            "total_epochs": total,
            "node": tags.get(NODE_IP),
            # pace over the run's whole life (all attempts): a rough figure, said so in the README
            "eta_s": _eta(now - r.info.start_time / 1000.0, epoch, total) if running and r.info.start_time else None,
            "error": ((tags.get(ERROR_TAG) or "").strip().splitlines() or [None])[0],
        }
    return out


def sweep_status(
    name_or_path: str, runs_dir: str | os.PathLike[str] = "runs", mlflow: bool = True, storage: str | None = None
) -> dict[str, Any]:
    """Trial names, states, last epoch and final metrics from the Ray state (no Ray
    cluster is started; planned trials Ray has not created yet are PENDING or WAITING for
    their producer) and, when the tracking store answers, each trial's MLflow run status
    (`mlflow`), which is current even after a driver crash (Ray's state is a periodic
    snapshot). `storage`: where the sweep ran, when not the default or the cached one."""
    from ..storage.store import Store

    state = open_sweep(name_or_path, runs_dir, storage)
    experiment = state.experiment
    store = Store(state.root)
    rows: list[dict[str, Any]] = []
    state_found = False
    try:
        _, rows, _ = trial_rows(ray_trials(experiment.fs_path, None if state.root.is_local else store.fs))
        state_found = True
    except Exception as e:  # no state yet (or unreadable)
        if any(name.startswith("experiment_state") for name in store.listing(state.name, recursive=False)):
            raise SweepError(f"{experiment.display}: cannot read the Ray state ({type(e).__name__}: {e})") from None
    seen = {r["trial"] for r in rows}
    starts = (state.sharing or {}).get("starts", {})
    for t in state.planned:
        if t["trial_name"] not in seen:
            producer = starts.get(t["trial_name"], {}).get("from_trial")
            rows.append(
                {
                    "trial": t["trial_name"],
                    "trial_id": None,
                    # shared training: not a Ray trial until its producer's checkpoint exists
                    "status": f"WAITING({producer})" if producer else "PENDING",
                    "epoch": 0,
                    "total_epochs": None,
                    "final_rank1": None,
                    "final_mAP": None,
                    "error": None,
                }
            )
    ml = mlflow_rows(state) if mlflow else None
    if ml is not None:
        _merge_mlflow(rows, ml)
    order = {t["trial_name"]: i for i, t in enumerate(state.planned)}
    rows.sort(key=lambda r: order.get(r["trial"], len(order)))
    summary = None
    try:
        summary = json.loads(store.read_bytes(f"{state.name}/{SUMMARY_FILE}") or b"null")
    except ValueError:
        pass
    counts: dict[str, int] = {}
    for r in rows:
        key = r.get("mlflow") or r["status"]
        counts[key] = counts.get(key, 0) + 1
    return {
        "name": state.name,
        "slurm": _slurm_line(state),
        "sweep_dir": experiment.display,
        "experiment_path": experiment.display,
        "storage": state.root.display,
        "tracking_uri": state.tracking_uri,
        "parent_run_id": state.members[0].parent_run_id,
        "parent_runs": {m.name: m.parent_run_id for m in state.members},
        "ray_state": state_found,
        "counts": counts,
        "trials": rows,
        "last_wall_seconds": (summary or {}).get("wall_seconds"),
    }


def _slurm_line(state: Any) -> str | None:
    """The sweep's Slurm job, when one was submitted for it (`compact-reid slurm submit`)."""
    from ..slurm.status import job_line

    try:
        return job_line(state.root, state.name)
    except Exception as e:  # noqa: BLE001 - a courtesy line: the status never fails over it
        return f"slurm: unknown ({type(e).__name__}: {e})"


def _merge_mlflow(rows: list[dict[str, Any]], ml: dict[str, dict[str, Any]]) -> None:
    for r in rows:
        mlflow_row = ml.get(r["trial"])
        r["mlflow"] = mlflow_row["status"] if mlflow_row else None
        if mlflow_row:  # MLflow is written every epoch; Ray's state is a periodic snapshot
            if (mlflow_row["epoch"] or 0) > (r.get("epoch") or 0):
                r["epoch"] = mlflow_row["epoch"]
                r.update({k: mlflow_row[k] for k in ("rank1", "mAP", "node", "eta_s") if mlflow_row.get(k) is not None})
            for k in ("final_rank1", "final_mAP", "train_seconds", "total_epochs", "error", "node", "rank1", "mAP"):
                if r.get(k) is None and mlflow_row.get(k) is not None:
                    r[k] = mlflow_row[k]
    names = {r["trial"] for r in rows}
    for name, mlflow_row in ml.items():
        if name not in names:
            rows.append(
                {
                    "trial": name,
                    "status": "-",
                    "mlflow": mlflow_row["status"],
                    **{k: v for k, v in mlflow_row.items() if k != "status"},
                }
            )
