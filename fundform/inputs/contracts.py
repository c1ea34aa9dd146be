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
    combine: str | None = None  # boundary conversion: mean (population-weighted), sum, same, converted, rank:<col>

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
    finer_grain_key: str | None = None  # an optional column that, when present, joins the key (small areas)
    required: bool = True  # optional tables are checked when present
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

    key = list(contract.key) + ([contract.finer_grain_key] if contract.finer_grain_key in present else [])
    casts = {}
    for col in contract.columns:
        if col.name in present and frame.schema[col.name] != _POLARS[col.dtype]:
            casts[col.name] = pl.col(col.name).cast(_POLARS[col.dtype], strict=False)
    # one pass counts every kind of problem; rows are only materialised (for the message) where a count is not 0
    checks: dict[str, tuple[Column, str, pl.Expr]] = {}
    for col in contract.columns:
        if col.name not in present:
            continue
        c = pl.col(col.name)
        cast = casts.get(col.name, c)
        if col.name in casts:
            checks[f"{col.name}|type"] = (col, "type", c.is_not_null() & cast.is_null())
        if not col.nullable:
            checks[f"{col.name}|null"] = (col, "null", c.is_null())
        if col.dtype in ("int", "float"):
            bad = pl.lit(False)
            if col.dtype == "float":
                bad = bad | cast.is_nan() | cast.is_infinite()
            if col.min is not None:
                bad = bad | ((cast <= col.min) if col.min_exclusive else (cast < col.min))
            if col.max is not None:
                bad = bad | (cast > col.max)
            checks[f"{col.name}|range"] = (col, "range", bad.fill_null(False))
    counts = frame.select([e.sum().alias(k) for k, (_, _, e) in checks.items()]).row(0, named=True) if checks else {}
    if any(counts.values()):
        indexed = frame.with_row_index("__row")
        for k, n in counts.items():
            if not n:
                continue
            col, kind, expr = checks[k]
            rows = _row_labels(indexed.filter(expr), key)
            what = {"type": f"{n} value(s) are not {col.expectation().split(',')[0]}",
                    "null": f"{n} missing value(s)", "range": f"{n} value(s) out of range"}[kind]
            problems.append(Problem(file, col.name, what, col.expectation(), rows))
    if casts:
        frame = frame.with_columns(**casts)
    if all(k in present for k in key):
        # distinct 64-bit row hashes prove distinct keys; only a repeated hash needs the exact (slower) check
        if frame.select(pl.struct(key).hash().n_unique()).item() < frame.height and \
                frame.select(pl.struct(key).n_unique()).item() < frame.height:
            dup = frame.with_row_index("__row").filter(pl.struct(key).is_duplicated())
            problems.append(Problem(file, ",".join(key), f"{dup.height} row(s) share a key",
                                    f"one row per {' x '.join(key)}", _row_labels(dup, key)))
    return frame, problems
