"""How a table is laid out: each row (or column) is defined once, as its label together with
the function that computes its cell, so adding one is one edit and nothing depends on
positions.

- `Row`: tables whose rows are quantities and whose columns are groups or phases (Tables 3
  and 4): `row.cell(column_context)`.
- `Column`: tables whose rows are items (a comparison, a run): `column.cell(item)`.
- Sections (blocks with a rule above) are lists of rows; `section_starts` finds where each
  begins in the display, so no offsets are counted by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Generic, Mapping, Sequence, TypeVar

Context = TypeVar("Context")


@dataclass(frozen=True)
class Row(Generic[Context]):
    """A display row: its label, and its cell for the context of each column."""

    label: str
    cell: Callable[[Context], str]


@dataclass(frozen=True)
class Column(Generic[Context]):
    """A display column: its header, and its cell for the item of each row."""

    header: str
    cell: Callable[[Context], str]


def row_cells(
    rows: Sequence[Row[Context]], columns: Mapping[str, Context], label_header: str = ""
) -> list[dict[str, str]]:
    """One dict per row: its label under `label_header`, then its cell for each column."""
    return [
        {label_header: row.label, **{header: row.cell(context) for header, context in columns.items()}} for row in rows
    ]


def column_cells(columns: Sequence[Column[Context]], item: Context) -> dict[str, str]:
    """The cells of one item's row, by column header."""
    return {column.header: column.cell(item) for column in columns}


def headers(columns: Sequence[Column[Any]]) -> list[str]:
    return [column.header for column in columns]


def section_starts(sections: Sequence[Sequence[Any]]) -> list[int]:
    """The display rows that begin a block (a rule above): each non-empty section but the first."""
    starts, offset = [], 0
    for section in sections:
        if section and offset > 0:
            starts.append(offset)
        offset += len(section)
    return starts
