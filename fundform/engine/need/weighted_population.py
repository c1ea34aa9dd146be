"""The need's components as expressions: the age weights of a curve, an indicator's multiplier (its named
transform and bounds) and the national value it is measured against, and target shares of a need frame. The need
itself is computed once, in `need.axis`."""

from __future__ import annotations

import polars as pl

from fundform.base.numeric import fixed_sum
from fundform.formula.components import INDICATOR_TRANSFORMS
from fundform.formula.spec import AgeCostCurve, Indicator


def age_weights(curve: AgeCostCurve) -> pl.DataFrame:
    """One row per single year of age 0..90 with the relative cost weight of its band."""
    return pl.DataFrame(
        {"age": [a for b in curve.bands for a in range(b.age_from, b.age_to + 1)],
         "age_weight": [b.weight for b in curve.bands for _ in range(b.age_from, b.age_to + 1)]},
        schema={"age": pl.Int64, "age_weight": pl.Float64},
    )


def multiplier(ind: Indicator, value: pl.Expr, national: pl.Expr | float, elasticity: pl.Expr | float | None = None,
               *, lo: pl.Expr | float | None = None, hi: pl.Expr | float | None = None) -> pl.Expr:
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


def target_shares(need: pl.LazyFrame) -> pl.LazyFrame:
    """Adds target_share (need-weighted population share) and need_index (need per head relative to the nation)."""
    nwp = pl.col("need_weighted_population")
    return need.with_columns(
        target_share=nwp / fixed_sum(nwp),
        need_index=(nwp / pl.col("population")) / (fixed_sum(nwp) / fixed_sum(pl.col("population"))),
    )
