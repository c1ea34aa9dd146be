"""Notional local tax: what each area is assumed able to raise itself, deducted from its allocation.

notional_i(year) = equalisation x tax_base_i x notional Band D x share of council tax funding the devolved
services, with the tax base and Band D grown from the price year at the version's stated rates. The notional Band D
is the national average (tax-base weighted) of the chosen Band D column, or a set figure.
"""

from __future__ import annotations

import polars as pl

from fundform.formula.spec import LocalTax, Quantity, parse_year
from fundform.numeric import fixed_sum


def notional_band_d(council_tax: pl.LazyFrame, rule: LocalTax) -> pl.Expr | float:
    if isinstance(rule.notional_band_d, Quantity):
        return rule.notional_band_d.value
    return float(
        council_tax.select(fixed_sum(pl.col("tax_base_band_d") * pl.col(rule.band_d_column))
                           / fixed_sum(pl.col("tax_base_band_d"))).collect().item()
    )


def notional_local_tax_base(council_tax: pl.LazyFrame, rule: LocalTax) -> tuple[pl.LazyFrame, float]:
    """Per lower-tier area at the price year: area_code, tax_base_band_d, notional_local_tax_base (GBP).

    Returns the frame and the notional Band D used."""
    if rule.rule == "none":
        return council_tax.select("area_code", "tax_base_band_d", notional_local_tax_base=pl.lit(0.0)), 0.0
    band_d = notional_band_d(council_tax, rule)
    factor = rule.equalisation.value * rule.share_for_devolved_services.value * band_d
    return (
        council_tax.select("area_code", "tax_base_band_d",
                           notional_local_tax_base=pl.col("tax_base_band_d") * factor),
        band_d,
    )


def year_factors(rule: LocalTax, years: pl.DataFrame) -> pl.DataFrame:
    """financial_year -> growth of the notional yield from the price year (tax base growth x Band D growth)."""
    if rule.rule == "none":
        return years.select("financial_year", local_tax_factor=pl.lit(0.0))
    g = (1 + rule.tax_base_growth.value) * (1 + rule.band_d_growth.value)
    p = parse_year(rule.price_year)
    return years.select(
        "financial_year",
        local_tax_factor=pl.lit(g).pow(pl.col("financial_year").str.slice(0, 4).cast(pl.Int32) - p),
    )
