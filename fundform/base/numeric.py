"""Order-independent sums, so the same inputs give the same bits.

Polars aggregates in parallel and merges partial float sums in an order that varies run to run, so a float sum can
differ in its last bit between two identical runs, and the outputs' bytes with it. ``fixed_sum`` sums values as
128-bit integers of a fixed unit (10^-12 of the value's unit) which is exact in any order, then converts back.
The rounding to 10^-12 of a person or a pound is far below anything the engine reports; 128 bits hold sums up to
10^26 units.
"""

from __future__ import annotations

from typing import Any

import polars as pl

SCALE = 10**12


def fixed_sum(expr: pl.Expr) -> pl.Expr:
    """Sum of expr, exact and independent of row order (values rounded to 1e-12 of their unit first)."""
    return (expr * float(SCALE)).round(0).cast(pl.Int128).sum().cast(pl.Float64) / float(SCALE)


def number(x: Any) -> float:
    """A Polars scalar (a column's sum, min or max) as a float. Polars types one as any value a column may hold; for
    a numeric column it is a number, and None (an empty or all-missing column) is refused, never read as 0."""
    if x is None:
        raise ValueError("a number was asked of an empty or all-missing column")
    return float(x)
