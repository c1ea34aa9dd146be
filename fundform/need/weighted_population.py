"""Need-weighted population per area: population x age cost curve x indicator multipliers.

Stages are functions from frames to frames. The population (which may come at small-area grain) is summed to area
and age first, the age weights are joined to that small table, and the per-area multipliers apply after summing
over ages, as the maths allows.
"""

from __future__ import annotations

import polars as pl

from fundform.formula.components import INDICATOR_TRANSFORMS
from fundform.formula.spec import AgeCostCurve, Indicator
from fundform.numeric import fixed_sum


def age_weights(curve: AgeCostCurve) -> pl.DataFrame:
    """One row per single year of age 0..90 with the relative cost weight of its band."""
    return pl.DataFrame(
        {"age": [a for b in curve.bands for a in range(b.age_from, b.age_to + 1)],
         "age_weight": [b.weight for b in curve.bands for _ in range(b.age_from, b.age_to + 1)]},
        schema={"age": pl.Int64, "age_weight": pl.Float64},
    )


def age_weighted_population(population: pl.LazyFrame, weights: pl.DataFrame) -> pl.LazyFrame:
    """area_code, population, age_weighted_population. Sums over sex and any small areas first."""
    # maintain_order: float sums in a fixed order, so the same inputs give the same bits (byte-identical outputs)
    by_age = population.group_by("area_code", "age", maintain_order=True).agg(fixed_sum(pl.col("population")))
    return (
        by_age.join(weights.lazy(), on="age", how="left", maintain_order="left")
        .group_by("area_code", maintain_order=True)
        .agg(
            population=fixed_sum(pl.col("population")),
            age_weighted_population=fixed_sum(pl.col("population") * pl.col("age_weight")),
        )
        .sort("area_code")
    )


def multiplier_column(indicator: Indicator) -> str:
    return f"multiplier_{indicator.name}"


def multiplier(ind: Indicator, value: pl.Expr, national: pl.Expr | float, elasticity: pl.Expr | float | None = None,
               lo: pl.Expr | float | None = None, hi: pl.Expr | float | None = None) -> pl.Expr:
    """An indicator's multiplier: its transform of the value against the national figure, then its bounds. The need
    frames give the version's own numbers; the scenario axis gives columns of each scenario's (`need.axis`)."""
    m = INDICATOR_TRANSFORMS[ind.transform](value, national, ind.elasticity.value if elasticity is None else elasticity)
    lo = ind.min_multiplier.value if lo is None and ind.min_multiplier is not None else lo
    hi = ind.max_multiplier.value if hi is None and ind.max_multiplier is not None else hi
    if lo is not None:
        m = m.clip(lower_bound=lo)
    if hi is not None:
        m = m.clip(upper_bound=hi)
    return m


def national_value(value: pl.Expr, population: pl.Expr) -> pl.Expr:
    """The population-weighted national value an indicator is measured against (exact sums)."""
    return fixed_sum(value * population) / fixed_sum(population)


def indicator_multipliers(indicators: list[Indicator], tables: dict[str, pl.LazyFrame],
                          area_population: pl.LazyFrame) -> pl.LazyFrame:
    """area_code and one multiplier column per indicator, each 1 at the population-weighted national value."""
    out = area_population.select("area_code", "population")
    for ind in indicators:
        value = tables[ind.table].select("area_code", pl.col(ind.column).alias("__value"))
        m = multiplier(ind, pl.col("__value"), national_value(pl.col("__value"), pl.col("population")))
        out = out.join(value, on="area_code", how="left", maintain_order="left").with_columns(m.alias(multiplier_column(ind))).drop("__value")
    return out.drop("population")


def need_weighted_population(population: pl.LazyFrame, curve: AgeCostCurve, indicators: list[Indicator],
                             tables: dict[str, pl.LazyFrame]) -> pl.LazyFrame:
    """Per lower-tier area: population, age-weighted population, each multiplier, need-weighted population."""
    base = age_weighted_population(population, age_weights(curve))
    mult = indicator_multipliers(indicators, tables, base)
    product = pl.lit(1.0)
    for ind in indicators:
        product = product * pl.col(multiplier_column(ind))
    return (
        base.join(mult, on="area_code", how="left", maintain_order="left")
        .with_columns(need_weighted_population=pl.col("age_weighted_population") * product)
        .sort("area_code")
    )


def target_shares(need: pl.LazyFrame) -> pl.LazyFrame:
    """Adds target_share (need-weighted population share) and need_index (need per head relative to the nation)."""
    nwp = pl.col("need_weighted_population")
    return need.with_columns(
        target_share=nwp / fixed_sum(nwp),
        need_index=(nwp / pl.col("population")) / (fixed_sum(nwp) / fixed_sum(pl.col("population"))),
    )
