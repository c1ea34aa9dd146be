"""Declared schemas for input tables, and the checks that compare a table with its contract.

A contract says what a table must hold: its columns (type, unit, allowed range, whether nulls are allowed), its
key, and where it comes from. ``check_table`` returns every problem it finds, each naming the file, the column, the
offending rows (by key) and what was expected; it never stops at the first. Cross-table checks (coverage of areas,
lookup shares) live in ``dataset.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import polars as pl

from fundform.errors import Problem

DType = Literal["str", "int", "float"]
_POLARS = {"str": pl.String, "int": pl.Int64, "float": pl.Float64}
MAX_ROWS_LISTED = 50


@dataclass(frozen=True)
class Column:
    name: str
    dtype: DType
    unit: str
    description: str
    nullable: bool = False
    min: float | None = None
    max: float | None = None
    min_exclusive: bool = False
    required: bool = True

    def expectation(self) -> str:
        parts = [{"str": "text", "int": "a whole number", "float": "a number"}[self.dtype]]
        if self.min is not None:
            parts.append(f"{'>' if self.min_exclusive else '>='} {self.min:g}")
        if self.max is not None:
            parts.append(f"<= {self.max:g}")
        return " ".join(parts) + ("" if self.nullable else ", not missing")


@dataclass(frozen=True)
class TableContract:
    name: str
    description: str
    source: str
    vintage: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    covers_every_area: bool = True
    finer_grain_key: str | None = None
    required: bool = True  # optional tables are checked when present  # an optional column that, when present, joins the key (small areas)
    notes: tuple[str, ...] = field(default=())

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    @property
    def required_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.required]


def _row_labels(frame: pl.DataFrame, key: list[str]) -> tuple[str, ...]:
    """Name rows by their key values, with the 1-based data row number for files a person opens."""
    if frame.height == 0:
        return ()
    cols = [k for k in key if k in frame.columns]
    labels = frame.head(MAX_ROWS_LISTED).select(
        pl.format("row {} ({})", pl.col("__row") + 1, pl.concat_str([pl.col(c).cast(pl.String) for c in cols],
                                                                      separator="/", ignore_nulls=False).fill_null("?"))
        if cols else pl.format("row {}", pl.col("__row") + 1)
    ).to_series().to_list()
    more = frame.height - len(labels)
    return tuple(labels) + ((f"... {more} more",) if more > 0 else ())


def check_table(frame: pl.DataFrame, contract: TableContract, file: str) -> tuple[pl.DataFrame | None, list[Problem]]:
    """Check a table against its contract. Returns the table cast to the declared types (or None if its columns
    are unusable) and the list of problems found."""
    problems: list[Problem] = []
    present = set(frame.columns)
    for col in contract.columns:
        if col.required and col.name not in present:
            problems.append(Problem(file, col.name, "column is missing",
                                    f"a column '{col.name}' ({col.description}, {col.unit})"))
    if problems:
        return None, problems

    frame = frame.with_row_index("__row")
    key = list(contract.key) + ([contract.finer_grain_key] if contract.finer_grain_key in present else [])
    casts = []
    for col in contract.columns:
        if col.name not in present:
            continue
        target = _POLARS[col.dtype]
        if frame.schema[col.name] == target:
            continue
        cast = pl.col(col.name).cast(target, strict=False)
        bad = frame.filter(pl.col(col.name).is_not_null() & cast.is_null())
        if bad.height:
            problems.append(Problem(file, col.name, f"{bad.height} value(s) are not {col.expectation().split(',')[0]}",
                                    col.expectation(), _row_labels(bad, key)))
        casts.append(cast)
    if casts:
        frame = frame.with_columns(casts)

    for col in contract.columns:
        if col.name not in present:
            continue
        c = pl.col(col.name)
        if not col.nullable:
            nulls = frame.filter(c.is_null())
            if nulls.height:
                problems.append(Problem(file, col.name, f"{nulls.height} missing value(s)", col.expectation(),
                                        _row_labels(nulls, key)))
        if col.dtype in ("int", "float"):
            out_of_range = pl.lit(False)
            if col.dtype == "float":
                out_of_range = out_of_range | c.is_nan() | c.is_infinite()
            if col.min is not None:
                out_of_range = out_of_range | ((c <= col.min) if col.min_exclusive else (c < col.min))
            if col.max is not None:
                out_of_range = out_of_range | (c > col.max)
            bad = frame.filter(out_of_range.fill_null(False))
            if bad.height:
                problems.append(Problem(file, col.name, f"{bad.height} value(s) out of range", col.expectation(),
                                        _row_labels(bad, key)))

    if all(k in present for k in key):
        dup = frame.filter(pl.len().over(key) > 1)
        if dup.height:
            problems.append(Problem(file, ",".join(key), f"{dup.height} row(s) share a key",
                                    f"one row per {' x '.join(key)}", _row_labels(dup, key)))
    return frame.drop("__row"), problems
