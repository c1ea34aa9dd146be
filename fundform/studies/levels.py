"""A receiving body's figures as one area against the sum of its members' (fundform levels): need and targets add
up exactly; the transition, applied to the body that receives the money, need not. Its own module: it runs the
pipeline, which the geography below it must not import."""

from __future__ import annotations

import polars as pl

from fundform.base.errors import FundformError
from fundform.engine.geography import with_level
from fundform.formula.scenario import LoadedFormula
from fundform.formula.spec import run_defaults
from fundform.inputs.dataset import Dataset
from fundform.studies.pipeline import RunParameters, compute


def compare_levels(data: Dataset, formula: LoadedFormula, area: str, level: str = "ca", start_year: str | None = None,
                   *, years: int | None = None) -> tuple[str, list[str], pl.DataFrame]:
    """A receiving body's figures computed for it as one area, beside the sums of its members' figures computed
    authority by authority (by their shares): need and targets add up, the transition need not, since it applies to
    the body that receives the money. Returns the body's name, its members and per year the four figures both ways
    (money in pence)."""
    _, start0, years0 = run_defaults(formula.spec)
    start, n_years = start_year or start0, years or years0
    body = compute(data, formula, RunParameters(level=level, start_year=start, years=n_years)).allocations.filter(pl.col("area_code") == area)
    if body.height == 0:
        raise FundformError(f"no area {area} at level {level}")
    lookup = with_level(data, level, RunParameters(level=level).deal_file)["area_lookup"]
    lk = lookup.filter((pl.col("level") == body["area_level"][0]) & (pl.col("target_code") == area))
    ltla = compute(data, formula, RunParameters(level="ltla", start_year=start, years=n_years)).allocations.join(
        lk.select("area_code", "share"), on="area_code", how="inner")
    cols = ["need_weighted_population", "target_allocation", "allocation", "grant"]
    members = ltla.group_by("financial_year").agg(
        [(pl.col(c).cast(pl.Float64) * pl.col("share")).sum().alias(c) for c in cols]).sort("financial_year")
    rows = body.sort("financial_year").select("financial_year", *cols).join(
        members, on="financial_year", suffix="_members")
    return body["area_name"][0], lk["area_code"].to_list(), rows
