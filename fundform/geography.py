"""Rolling lower-tier quantities up to any output level through the area lookup (with apportionment shares)."""

from __future__ import annotations

import polars as pl

from fundform.errors import FundformError
from fundform.inputs.tables import LEVELS
from fundform.numeric import fixed_sum


def roll_up(frame: pl.LazyFrame, lookup: pl.LazyFrame, level: str, additive: list[str],
            by: list[str] | None = None) -> pl.LazyFrame:
    """Sum additive lower-tier columns into the areas of `level`, each weighted by the authority's share.

    Returns area_code, area_name and the summed columns, one row per area of the level, sorted by code. Only
    additive quantities (populations, pounds, weighted populations) may be rolled up; ratios are recomputed.
    `by` keeps further keys (e.g. financial_year) apart."""
    by = by or []
    if level not in LEVELS:
        raise FundformError(f"unknown level '{level}' (known: {', '.join(LEVELS)})")
    lk = lookup.filter(pl.col("level") == level).select("area_code", "target_code", "target_name", "share")
    return (
        frame.join(lk, on="area_code", how="inner", maintain_order="left")
        .sort("target_code", *by, "area_code")
        .group_by("target_code", "target_name", *by, maintain_order=True)
        .agg([fixed_sum(pl.col(c) * pl.col("share")).alias(c) for c in additive])
        .rename({"target_code": "area_code", "target_name": "area_name"})
        .sort("area_code", *by)
    )
