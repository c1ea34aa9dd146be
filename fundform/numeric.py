"""Order-independent sums, so the same inputs give the same bits.

Polars aggregates in parallel and merges partial float sums in an order that varies run to run, so a float sum can
differ in its last bit between two identical runs, and the outputs' bytes with it. ``fixed_sum`` sums values as
integers of a fixed unit (10^-6 of the value's unit: a millionth of a person, of a pound) which is exact in any
order, then converts back. The rounding to 10^-6 is far below anything the engine reports.
"""

from __future__ import annotations

import polars as pl

SCALE = 1_000_000


def fixed_sum(expr: pl.Expr) -> pl.Expr:
    """Sum of expr, exact and independent of row order (values rounded to 1e-6 of their unit first)."""
    return (expr * SCALE).round(0).cast(pl.Int64).sum() / SCALE
