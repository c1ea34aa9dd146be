"""Declared schemas for input tables, and the checks that compare a table with its contract.

A contract says what a table must hold: its columns (type, unit, allowed range, whether nulls are allowed), its
key, and where it comes from. ``check_table`` returns every problem it finds, each naming the file, the column, the
offending rows (by key) and what was expected; it never stops at the first. Cross-table checks (coverage of areas,
lookup shares) live in ``dataset.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from fundform.base.errors import Problem
from fundform.base.lazy import LazyModule

# the contracts are read by commands that check no table (`fundform formulas show` checks a version's column
# references against them): Polars is imported when a table is checked
if TYPE_CHECKING:
    import polars as pl
else:
    pl = LazyModule("polars")

DType = Literal["str", "int", "float"]


def _polars_type(dtype: str) -> type[pl.DataType]:
    return {"str": pl.String, "int": pl.Int64, "float": pl.Float64}[dtype]
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
    pattern: str | None = None  # text columns: a regular expression every value must match
    pattern_text: str = ""  # what the pattern means, for the message ("a financial year like 2024/25")
    uniform: bool = False  # one value for the whole table (a table's year, say)
    plausible: Plausible | None = None  # a soft bound on each value: refused unless the run allows implausible input

    def expectation(self) -> str:
        parts = [{"str": "text", "int": "a whole number", "float": "a number"}[self.dtype]]
        if self.pattern_text:
            parts = [self.pattern_text]
        if self.min is not None:
            parts.append(f"{'>' if self.min_exclusive else '>='} {_num(self.min)}")
        if self.max is not None:
            parts.append(f"<= {_num(self.max)}")
        return " ".join(parts) + ("" if self.nullable else ", not missing")


def _num(x: float) -> str:
    """1000000 -> '1,000,000', 2000 -> '2000', 0.05 -> '0.05': bounds as a person writes them."""
    if float(x).is_integer() and abs(x) < 1e16:
        return f"{x:,.0f}" if abs(x) >= 10_000 else f"{x:.0f}"
    return f"{x:g}"


@dataclass(frozen=True)
class Plausible:
    """A plausibility bound: values outside [lo, hi] are almost certainly a mistake (a unit slip, a column shifted, a
    corrupted file), though not impossible. They are refused with the bound and where it comes from (`why`), unless
    the run is told to allow implausible input (--allow-implausible), which its manifest records."""

    lo: float | None
    hi: float | None
    why: str

    def text(self) -> str:
        lo, hi = self.lo, self.hi
        rng = (f"between {_num(lo)} and {_num(hi)}" if lo is not None and hi is not None
               else f">= {_num(lo)}" if lo is not None else f"<= {_num(hi)}" if hi is not None else "any value")
        return f"{rng} (plausibility bound: {self.why}; --allow-implausible overrides it)"


# Source types a column may be stored as: exact, never a coercion that changes meaning (a boolean is not a number,
# a float is not a whole number). CSV cells arrive as text and are parsed strictly.
def _integer_types() -> tuple:
    return (pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8, pl.UInt16, pl.UInt32, pl.UInt64)


def _float_types() -> tuple:
    return (pl.Float32, pl.Float64)


def _type_accepts(declared: str, actual: pl.DataType) -> bool:
    if actual == pl.Null:  # an all-missing column: the null check names it
        return True
    if declared == "str":
        return actual in (pl.String, pl.Categorical) or isinstance(actual, pl.Enum)
    if declared == "int":
        return actual == pl.String or any(actual == t for t in _integer_types())
    return (actual == pl.String or any(actual == t for t in _integer_types() + _float_types())
            or isinstance(actual, pl.Decimal))


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
    period_key: str | None = None  # an optional column that, when present, joins the key (a year the rows are for)
    required: bool = True  # optional tables are checked when present
    notes: tuple[str, ...] = field(default=())

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    @property
    def required_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.required]


def row_labels(frame: pl.DataFrame, key: list[str]) -> tuple[str, ...]:
    """Name rows by their key values, with the 1-based data row number for files a person opens."""
    if frame.height == 0:
        return ()
    cols = [k for k in key if k in frame.columns]
    keys = pl.concat_str([pl.col(c).cast(pl.String).fill_null("?") for c in cols], separator="/") if cols else None
    if "__row" not in frame.columns:  # not a row of a file (an area absent from it, a group): named by key alone
        labels = frame.head(MAX_ROWS_LISTED).select(keys).to_series().to_list()
    else:  # the row's number in the file: 1 = the first data row (line 2 of a CSV, after its header)
        labels = frame.head(MAX_ROWS_LISTED).select(
            pl.format("row {} ({})", pl.col("__row") + 1, keys) if cols else pl.format("row {}", pl.col("__row") + 1)
        ).to_series().to_list()
    more = frame.height - len(labels)
    return tuple(labels) + ((f"... {more} more",) if more > 0 else ())


def check_table(frame: pl.DataFrame, contract: TableContract, file: str,
                warnings: list[Problem] | None = None) -> tuple[pl.DataFrame | None, list[Problem]]:
    """Check a table against its contract. Returns the table cast to the declared types (or None if its columns
    are unusable) and the list of problems found. Values outside a column's plausibility bound are problems too,
    unless a `warnings` list is given (the run allows implausible input): then they are added there instead.

    Over 80 lines: every rule of a contract is checked in turn and all the problems are kept, so one call reports
    them all."""
    problems: list[Problem] = []
    present = set(frame.columns)
    for col in contract.columns:
        if col.required and col.name not in present:
            problems.append(Problem(file, col.name, "column is missing",
                                    f"a column '{col.name}' ({col.description}, {col.unit})"))
        elif col.name in present and not _type_accepts(col.dtype, frame.schema[col.name]):
            problems.append(Problem(file, col.name, f"stored as {frame.schema[col.name]}, which is not "
                                    f"{col.expectation().split(',')[0]}",
                                    f"{col.expectation()} (a {col.dtype} column; values are never coerced from "
                                    "another type)"))
    if problems:
        return None, problems

    key = [*([contract.period_key] if contract.period_key in present else []), *contract.key,
           *([contract.finer_grain_key] if contract.finer_grain_key in present else [])]
    casts = {}
    for col in contract.columns:
        if col.name in present and frame.schema[col.name] != _polars_type(col.dtype):
            casts[col.name] = pl.col(col.name).cast(_polars_type(col.dtype), strict=False)
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
            if col.plausible is not None:
                implausible = pl.lit(False)
                if col.plausible.lo is not None:
                    implausible = implausible | (cast < col.plausible.lo)
                if col.plausible.hi is not None:
                    implausible = implausible | (cast > col.plausible.hi)
                checks[f"{col.name}|plausible"] = (col, "plausible", implausible.fill_null(False) & ~bad.fill_null(False))
        if col.pattern is not None:
            checks[f"{col.name}|pattern"] = (col, "pattern", (~c.cast(pl.String).str.contains(col.pattern))
                                             .fill_null(False))
    counts = frame.select([e.sum().alias(k) for k, (_, _, e) in checks.items()]).row(0, named=True) if checks else {}
    if any(counts.values()):
        indexed = frame.with_row_index("__row")
        for k, n in counts.items():
            if not n:
                continue
            col, kind, expr = checks[k]
            rows = row_labels(indexed.filter(expr), key)
            what = {"type": f"{n} value(s) are not {col.expectation().split(',')[0]}",
                    "null": f"{n} missing value(s)", "range": f"{n} value(s) out of range",
                    "pattern": f"{n} value(s) not {col.pattern_text or 'of the expected form'}",
                    "plausible": f"{n} implausible value(s)"}[kind]
            expected = col.plausible.text() if kind == "plausible" and col.plausible else col.expectation()
            problem = Problem(file, col.name, what, expected, rows)
            (warnings if kind == "plausible" and warnings is not None else problems).append(problem)
    for col in contract.columns:
        if col.uniform and col.name in present and frame[col.name].n_unique() > 1:
            values = frame[col.name].unique(maintain_order=True).cast(pl.String).fill_null("missing").to_list()
            first = frame[col.name][0]
            odd = frame.with_row_index("__row").filter(pl.col(col.name).ne_missing(first))
            problems.append(Problem(file, col.name, f"{len(values)} different values ({', '.join(values[:5])})",
                                    "one value for the whole table", row_labels(odd, key)))
    if casts:
        frame = frame.with_columns(**casts)
    problems += rank_problems(frame, contract, file, key, {p.column for p in problems})
    if all(k in present for k in key):
        # distinct 64-bit row hashes prove distinct keys; only a repeated hash needs the exact (slower) check
        if frame.select(pl.struct(key).hash().n_unique()).item() < frame.height and \
                frame.select(pl.struct(key).n_unique()).item() < frame.height:
            dup = frame.with_row_index("__row").filter(pl.struct(key).is_duplicated())
            problems.append(Problem(file, ",".join(key), f"{dup.height} row(s) share a key",
                                    f"one row per {' x '.join(key)}", row_labels(dup, key)))
    return frame, problems


def rank_problems(frame: pl.DataFrame, contract: TableContract, file: str, key: list[str],
                  already: set[str]) -> list[Problem]:
    """A rank column (`combine = "rank:<score>"`, 1 = the highest score) must not contradict its score: no row may
    rank ahead of a row with a higher score (equal scores may rank either way). A least deprived area given rank 1
    is refused, naming the rows whose rank is ahead of a higher score's."""
    out: list[Problem] = []
    if contract.finer_grain_key and contract.finer_grain_key in frame.columns:
        return out  # rows finer than the authority: ranks are the authority's, recomputed once summed
    for col in contract.columns:
        score = (col.combine or "").removeprefix("rank:") if (col.combine or "").startswith("rank:") else None
        if not score or col.name not in frame.columns or score not in frame.columns or {col.name, score} & already:
            continue
        groups = (frame.select(score, col.name).drop_nulls().group_by(score).agg(lo=pl.col(col.name).min(),
                                                                               hi=pl.col(col.name).max())
                  .sort(score, descending=True).with_columns(ahead=pl.col("hi").cum_max().shift(1)))
        rows = (frame.with_row_index("__row").join(groups.select(score, "ahead"), on=score, how="inner")
                .filter(pl.col(col.name) < pl.col("ahead")).sort("__row"))
        if rows.height:
            out.append(Problem(file, col.name, f"{rows.height} rank(s) that contradict '{score}' (ranked ahead of "
                                               "an area with a higher score)",
                               f"ranks in the order of '{score}', 1 = the highest (equal scores may share or swap "
                               "ranks)", row_labels(rows, key)))
    return out
