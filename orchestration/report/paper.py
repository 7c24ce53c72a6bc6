"""The paper's own numbers (Tables 2-4) and how a run's switches map to its columns/setups."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from reid_core.presets import PRESETS, SWITCHES, TABLE3_COLUMNS, TABLE4_SETUPS

# Table 3 of the paper, Market-1501 rank-1 / mAP (%), by column.
PAPER_TABLE3: dict[str, tuple[float, float]] = {
    "hacnn": (91.2, 75.7),
    "a": (93.2, 82.0),
    "b": (94.1, 85.3),
    "c": (94.5, 85.7),
    "d": (94.9, 86.6),
    "e": (95.1, 87.1),
    "f": (95.3, 87.9),
    "g": (95.4, 87.3),
    "h": (95.8, 88.7),
    "i": (95.7, 88.1),
    "compact": (96.2, 89.7),
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
# Where each metric sits in the paper's (rank-1, mAP) pairs above.
_PAIR_INDEX = {"rank1": 0, "mAP": 1}

TRIPLET_LABELS = {
    "none": "none",
    "margin": "eq. 1",
    "batch_hard": "eq. 2",
    "weighted": "eq. 3",
    "weighted_soft": "eq. 4",
}

SOTA_CSV = Path(__file__).parent / "data" / "sota_market_duke.csv"
PAPER_DATASETS = (("Market1501", "market"), ("DukeMTMC", "duke"))


def load_sota(path: Path = SOTA_CSV) -> pd.DataFrame:
    """The paper's Table 2 (literature rows and its own two models)."""
    df = pd.read_csv(path, dtype={"method": str, "family": str, "params_source": str}, keep_default_na=True)
    for c in ("market_r1", "market_map", "duke_r1", "duke_map", "params_m"):
        df[c] = pd.to_numeric(df[c], errors="coerce")
    return df


def paper_table3(column: str | None, key: str) -> float | None:
    """The paper's Table 3 figure of a column for a metric key (rank1 / mAP); None for no column."""
    return PAPER_TABLE3[column][_PAIR_INDEX[key]] if column in PAPER_TABLE3 else None


def paper_table4(setup: str | None, phase: str, key: str) -> float | None:
    """The paper's Table 4 figure of a setup's phase for a metric key; None for no setup."""
    return PAPER_TABLE4[setup][phase][_PAIR_INDEX[key]] if setup else None


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


def _known(switches: Mapping[str, bool | None], triplet: str | None) -> bool:
    """True when the group's runs agree on every switch and on the triplet loss."""
    return all(v is not None for v in switches.values()) and bool(triplet)


def column_for(switches: Mapping[str, bool | None], triplet: str | None) -> str | None:
    """`paper_column` of a group's shared switches; None where its runs disagree."""
    return paper_column(switches, triplet) if _known(switches, triplet) else None  # type: ignore[arg-type]


def setup_for(switches: Mapping[str, bool | None], triplet: str | None) -> str | None:
    """`paper_setup` of a group's shared switches; None where its runs disagree."""
    return paper_setup(switches, triplet) if _known(switches, triplet) else None  # type: ignore[arg-type]


def comparable_to_paper(runs: pd.DataFrame) -> bool:
    """True when every run ran on Market-1501: the paper's figures are Market-1501's, so a
    difference to them means something only then."""
    return set(runs["dataset"]) == {"Market1501"}
