"""The allocation letter: each area's allocation as the lines of its funding streams (streams.parquet), one column
per stream in the version's order, and their sum, which is the area's allocation to the penny. The report, `fundform
explain` and the Excel workbook show it for a version of more than one stream; the lines' titles are the version's
own (the manifest's policies.stream_titles)."""

from __future__ import annotations

import polars as pl

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
