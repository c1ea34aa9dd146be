"""The allocation letter: each area's allocation as the lines of its funding streams (streams.parquet), one column
per stream in the version's order, and their sum, which is the area's allocation to the penny. The report, `fundform
explain` and the Excel workbook show it for a version of more than one stream; the lines' titles are the version's
own (the manifest's policies.stream_titles)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl

if TYPE_CHECKING:
    from fundform.engine.settlement.allocate import Settlement

TOTAL = "allocation (sum of the streams)"


def titles_of(manifest: dict) -> dict[str, str]:
    """stream name -> the version's title for it ({} for a version without streams)."""
    return dict(manifest.get("policies", {}).get("stream_titles", {}))


def letter(streams: pl.DataFrame, titles: dict[str, str]) -> pl.DataFrame | None:
    """Per area and year: one column per stream (its title; its allocation in pence), then their sum in pence.
    None when the run has one stream (its letter is the allocation itself). `streams`: streams.parquet as written
    (allocation in exact pounds) or in pence (integers)."""
    names = list(dict.fromkeys(streams["stream"].to_list()))
    if len(names) < 2:
        return None
    pence = streams.with_columns((pl.col("allocation") * 100).cast(pl.Int64) if streams["allocation"].dtype != pl.Int64
                                 else pl.col("allocation"))
    wide = (pence.pivot(on="stream", index=["area_code", "area_name", "financial_year"], values="allocation")
            .select("area_code", "area_name", "financial_year", *names)
            .sort("financial_year", "area_code"))
    wide = wide.with_columns(pl.sum_horizontal(names).alias(TOTAL))
    return wide.rename({n: titles.get(n, n) for n in names})


def line_columns(frame: pl.DataFrame) -> list[str]:
    """The letter's stream columns, in order (not the keys, not the total)."""
    return [c for c in frame.columns if c not in ("area_code", "area_name", "financial_year", TOTAL)]


# ------------------------------------------------------------------------------------------------------------------
# letter.parquet: each line of an NHS allocation as NHS England's letter states it, published figures beside


def letter_lines(streams: pl.DataFrame, settlements: list[Settlement], titles: dict[str, str]) -> pl.DataFrame | None:
    """Per stream, area and year of a version that reads NHS England's published rounds: the line's baseline (the
    year's adjusted recurrent baseline: last year's allocation as the round restates it), base growth, convergence
    and recurrent allocation, fundform's and, where the data holds the round, NHS England's beside them with the
    difference; the target and distance from target only for a line whose rule converges toward a target or whose
    round publishes one (not other primary care, pharmacy, optometry and dental, running costs). None for a
    version that does not read published rounds. `streams`: streams.parquet's rows in pence; `settlements`: the
    outcome's (each stream's area frames and yearly rules)."""
    if not settlements or getattr(settlements[0].spec.baseline, "source", None) != "nhs_icb_allocations":
        return None
    fy = list(dict.fromkeys(streams["financial_year"].to_list()))
    parts = []
    for s in settlements:
        for t, y in enumerate(fy):
            rule, base = s.rules[t] if s.rules else s.rule, s.spec.at(y).baseline
            f = s.frames[t] if s.frames else None
            pub = (f.select("area_code", published_baseline="baseline_gbp", published_growth="base_growth_factor",
                            published_allocation="recurrent_allocation_gbp",
                            published_convergence="published_convergence", targets="fair_shares_target_gbp")
                   if f is not None else None)
            part = streams.filter((pl.col("stream") == s.name) & (pl.col("financial_year") == y))
            if pub is not None:
                part = part.join(pub, on="area_code", how="left", maintain_order="left")
            parts.append(part.with_columns(
                rule=pl.lit(rule.rule), combine=pl.lit(getattr(rule, "combine", "multiplicative")),
                # a line has a target where its rule converges toward one, or its round publishes one
                reads_targets=pl.lit(rule.rule == "nhs_convergence" or (
                    base.target_total == "published_fair_shares" and pub is not None
                    and pub["targets"].null_count() == 0))))
    d = pl.concat(parts, how="diagonal_relaxed")
    S, BU, A = (pl.col(c).cast(pl.Float64) for c in ("previous_allocation", "baseline", "allocation"))
    pence = lambda c: (pl.col(c) * 100).round(0).cast(pl.Int64)  # (published pounds to whole pence)
    convergence = (pl.when(pl.col("rule") == "uniform").then(None)
                   .when(pl.col("combine") == "additive").then((A - BU) / S)
                   .otherwise(A / BU - 1))
    published_convergence = pl.when(pl.col("rule") == "uniform").then(None).otherwise(
        pl.col("published_convergence"))
    targets = pl.col("reads_targets")
    return (d.with_columns(
        line=pl.col("stream").replace_strict(titles, default=pl.col("stream")),
        base_growth=BU / S - 1, baseline=pl.col("previous_allocation"),  # the letter's baseline, not the uprated
        published_base_growth=pl.col("published_growth") - 1,
        convergence=convergence, published_convergence=published_convergence,
        published_baseline=pence("published_baseline"), published_allocation=pence("published_allocation"),
        target_allocation=pl.when(targets).then(pl.col("target_allocation")),
        distance_from_target=pl.when(targets).then(pl.col("distance_from_target")))
        .with_columns(difference=pl.col("allocation") - pl.col("published_allocation"))
        .with_columns(difference_share=pl.col("difference") / pl.col("published_allocation").cast(pl.Float64))
        .sort("financial_year", "area_code", maintain_order=True))
