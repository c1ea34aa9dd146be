"""Comparing two runs (or two versions or scenarios on the same data): who gains, who loses, by how much.

Per area and year: each side's grant, the change, per head and in percent, and the area's deprivation decile. The
summary counts and sums winners and losers; gains minus losses equals the change in the total, to the penny.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from fundform.base.errors import FundformError
from fundform.base.numeric import fixed_sum
from fundform.engine.geography import roll_up
from fundform.engine.settlement.money import apportion
from fundform.inputs.dataset import Dataset


def deprivation_deciles(data: Dataset, level: str, codes: list[str] | None = None) -> pl.DataFrame:
    """Each area's population-weighted IMD average score at the level, and its decile (1 = most deprived), ranked
    among `codes` (the run's areas) when given. A run on ICBs that the lookup predates (NHS England's 2026 mergers)
    gets its ICBs' scores through the dataset's ICB changes, each old ICB's population and weighted score carried
    by its share. An area without a score (a deal area the dataset does not know) has no decile: the tables by
    decile say how many areas they leave out."""
    pop = data.reference_year().lazy("population").group_by("area_code").agg(
        population=fixed_sum(pl.col("population")))
    ltla = pop.join(data.lazy("deprivation"), on="area_code").select(
        "area_code", "population", weighted=pl.col("imd_average_score") * pl.col("population"))
    lvl = roll_up(ltla, data.lazy("area_lookup"), level, ["population", "weighted"]).collect()
    if codes is not None:
        changes = data.tables.get("icb_changes")
        if level == "icb" and not set(codes) <= set(lvl["area_code"]) and changes is not None and changes.height:
            lvl = lvl.join(changes.select("old_code", "new_code", "share"), left_on="area_code",
                           right_on="old_code").group_by(area_code="new_code").agg(
                population=(pl.col("population") * pl.col("share")).sum(),
                weighted=(pl.col("weighted") * pl.col("share")).sum())
        lvl = lvl.filter(pl.col("area_code").is_in(list(codes)))
    return lvl.sort("area_code").select("area_code", imd_score=pl.col("weighted") / pl.col("population")).with_columns(
        imd_decile=((pl.col("imd_score").rank("ordinal", descending=True) - 1) * 10 // pl.len() + 1).cast(pl.Int32))


def compare(a: pl.DataFrame, b: pl.DataFrame, deciles: pl.DataFrame | None) -> pl.DataFrame:
    """Two allocations tables (money in pounds, as written) -> one row per area and year."""
    keys = ["area_code", "financial_year"]
    if a.select(keys).sort(keys).equals(b.select(keys).sort(keys)) is False:
        raise FundformError("the two runs cover different areas or years: compare runs at the same level and years")
    if a["area_level"][0] != b["area_level"][0]:
        raise FundformError(f"the runs are at different levels ({a['area_level'][0]}, {b['area_level'][0]})")
    pence = lambda c: (pl.col(c) * 100).cast(pl.Int64)
    j = a.select(*keys, "area_name", "area_level", "year_index", "population", grant_a=pence("grant")).join(
        b.select(*keys, grant_b=pence("grant")), on=keys, how="inner").sort("year_index", "area_code")
    if deciles is not None:
        j = j.join(deciles.select("area_code", "imd_decile"), on="area_code", how="left")
    else:
        j = j.with_columns(imd_decile=pl.lit(None, dtype=pl.Int32))
    out = j.with_columns(change=pl.col("grant_b") - pl.col("grant_a")).with_columns(
        change_per_head=(pl.col("change") / pl.col("population")).round(0).cast(pl.Int64),
        change_pct=pl.col("change") / pl.col("grant_a").abs() * 100,
        share_a=pl.col("grant_a") / pl.col("grant_a").sum().over("financial_year"),
        share_b=pl.col("grant_b") / pl.col("grant_b").sum().over("financial_year"),
    )
    # B's split of A's pot: how the pot is divided, apart from its size (each year's parts add to A's total)
    years = out["year_index"].n_unique()
    a_tot = out.group_by("year_index", maintain_order=True).agg(pl.col("grant_a").sum())["grant_a"].to_numpy()
    at_a = apportion(a_tot, out["grant_b"].to_numpy().reshape(years, -1).astype(np.float64))
    return out.with_columns(grant_b_at_a_total=pl.Series(at_a.reshape(-1))).with_columns(
        change_in_split=pl.col("grant_b_at_a_total") - pl.col("grant_a"))


def summary(table: pl.DataFrame, change: str = "change") -> pl.DataFrame:
    """Per year: winners and losers counted and summed; their difference is the change in the total (0 for
    `change_in_split`, the change in how the pot is split)."""
    c = pl.col(change)
    return table.group_by("financial_year", maintain_order=True).agg(
        winners=(c > 0).sum(), gains=c.filter(c > 0).sum(),
        losers=(c < 0).sum(), losses=-c.filter(c < 0).sum(),
        unchanged=(c == 0).sum(), total_a=pl.col("grant_a").sum(), total_b=pl.col("grant_b").sum(),
    ).with_columns(change_in_total=pl.col("gains") - pl.col("losses"))


def by_decile(table: pl.DataFrame, change: str = "change") -> pl.DataFrame:
    return table.filter(pl.col("imd_decile").is_not_null()).group_by("financial_year", "imd_decile").agg(
        areas=pl.len(), population=pl.col("population").sum(), change=pl.col(change).sum(),
    ).with_columns(change_per_head=pl.col("change") / pl.col("population") / 100).sort("financial_year", "imd_decile")
