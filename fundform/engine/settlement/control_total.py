"""Indices and the control total's path: base-year total x inflation x real growth, year by year.

A five-year path is a join of a small per-year frame, never a loop over areas.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from fundform.base.errors import SpecError, present
from fundform.base.years import FinancialYear, year_text, years_between, years_from
from fundform.engine.settlement.money import round_half_up
from fundform.formula.spec import ControlTotal, IndexSeries


def settlement_years(start_year: str, years: int) -> pl.DataFrame:
    return pl.DataFrame({
        "financial_year": years_from(start_year, years),
        "year_index": list(range(1, years + 1)),
    }, schema={"financial_year": pl.String, "year_index": pl.Int32})


def cumulative_growth(growth: dict[str, float], base_year: str, year: str, name: str) -> float:
    """Product of (1 + g) for the years after base_year up to and including year (or its inverse if earlier)."""
    b, y = FinancialYear.parse(base_year), FinancialYear.parse(year)
    factor = 1.0
    for t in range(min(b, y).start + 1, max(b, y).start + 1):
        key = year_text(t)
        if key not in growth:
            raise SpecError(f"index '{name}' has no growth for {key}, needed between {base_year} and {year}")
        factor *= 1.0 + growth[key]
    return factor if y >= b else 1.0 / factor


def index_growth(indices: dict[str, IndexSeries], name: str) -> dict[str, float]:
    """Growth by year of an index; a composite's growth is the weighted sum of its components' growth, for the
    years all components cover."""
    index = indices[name]
    if index.growth is not None:
        return index.growth
    parts = [(present(indices[c.index].growth, f"indices.{c.index}.growth"), c.weight.value)
             for c in present(index.composite, f"indices.{name}.composite")]
    years = set.intersection(*(set(g) for g, _ in parts))
    return {y: sum(w * g[y] for g, w in parts) for y in sorted(years)}


def index_levels(growth: dict[str, float], name: str, base_year: str, years: list[str]) -> pl.DataFrame:
    """Index level per year, 1.0 at base_year."""
    return pl.DataFrame({
        "financial_year": years,
        "index_level": [cumulative_growth(growth, base_year, y, name) for y in years],
    })


def control_totals(base_total_pence: int | np.ndarray, rule: ControlTotal, growth: dict[str, float], years: list[str],
                   real_growth: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The control total of each year (int pence): the base total grown by the index and real growth from the base
    year, rounded once. With `real_growth` (S,) and a base total (S,) or scalar, one path per scenario (S, years):
    a run is the case of one. Returns (totals, inflation factors, real factors)."""
    infl = np.array([cumulative_growth(growth, rule.base_year, y, rule.inflation_index) for y in years])
    n = np.array([years_between(y, rule.base_year) for y in years])
    r = rule.real_growth.value if real_growth is None else np.asarray(real_growth, dtype=np.float64)[:, None]
    real = (1.0 + r) ** n
    base = np.asarray(base_total_pence)
    base = base if base.ndim == 0 else base[:, None]
    return round_half_up(base * infl * real), infl, real


def linked_totals(base_total_pence: int, link_totals: np.ndarray, link_base_total: int) -> np.ndarray:
    """A stream whose growth is locked to another's: the same cumulative factors from the base year, per year
    (and per scenario, when the link's totals carry a scenario axis)."""
    return round_half_up(base_total_pence * (np.asarray(link_totals) / link_base_total))


def control_total_path(base_total_pence: int, rule: ControlTotal, growth: dict[str, float], years: pl.DataFrame,
                       ) -> pl.DataFrame:
    """financial_year, inflation_factor, real_factor and control_total (int pence) from the base year."""
    totals, infl, real = control_totals(base_total_pence, rule, growth, years["financial_year"].to_list())
    return years.with_columns(inflation_factor=pl.Series(infl), real_factor=pl.Series(real),
                              control_total=pl.Series(totals))
