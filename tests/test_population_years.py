"""Population by year: the bundled projection meets ONS's 2022-based totals, each settlement year's need, targets
and per-head figures come from that year's population, and a dataset without years works as before."""

from __future__ import annotations

import polars as pl
import pytest

from fundform.base.errors import InternalError, InvalidInput
from fundform.formula.registry import load_formula
from fundform.inputs.dataset import load_dataset
from fundform.studies.pipeline import RunParameters, compute

# ONS 2022-based subnational projections (migration-category variant, June 2025), persons by region: published
# figures, not fundform's output (../shared/data/population-projections/snpp2022_region_sex_5yr.csv summed)
ENGLAND = {"2026/27": 59_137_044, "2030/31": 60_202_257}
REGIONS = {
    "2026/27": {"E12000001": 2755064, "E12000002": 7763984, "E12000003": 5701212, "E12000004": 5113363,
                "E12000005": 6213678, "E12000006": 6622382, "E12000007": 9285735, "E12000008": 9704768,
                "E12000009": 5976858},
    "2030/31": {"E12000001": 2793688, "E12000002": 7915791, "E12000003": 5787920, "E12000004": 5218368,
                "E12000005": 6319108, "E12000006": 6763907, "E12000007": 9386102, "E12000008": 9892031,
                "E12000009": 6125342},
}


def totals(bundled, year: str) -> pl.DataFrame:
    pop = bundled.tables["population"].filter(pl.col("financial_year") == year)
    region = bundled["area_lookup"].filter(pl.col("level") == "region").select("area_code", region="target_code")
    return pop.join(region, on="area_code").group_by("region").agg(pl.col("population").sum())


@pytest.mark.parametrize("year", sorted(ENGLAND))
def test_the_projection_meets_the_2022_based_totals(bundled, year):
    by_region = totals(bundled, year)
    assert abs(by_region["population"].sum() / ENGLAND[year] - 1) < 0.001
    for code, want in REGIONS[year].items():
        got = by_region.filter(pl.col("region") == code)["population"].item()
        assert abs(got / want - 1) < 0.005, (code, got, want)


def test_estimates_are_the_published_ones(bundled):
    pop = bundled.tables["population"]
    by_year = dict(pop.group_by("financial_year").agg(pl.col("population").sum()).rows())
    assert by_year["2023/24"] == pytest.approx(57_690_323, abs=0.5)  # ONS mid-2023
    assert by_year["2024/25"] == pytest.approx(58_620_101, abs=0.5)  # ONS mid-2024
    years = sorted(by_year)
    assert years[0] == "2023/24" and years[-1] >= "2030/31"
    assert all(by_year[a] < by_year[b] for a, b in zip(years[2:], years[3:]))  # England grows in the projection


def test_a_run_uses_each_years_population(default_run, bundled):
    a = default_run.allocations
    want = dict(bundled.tables["population"].group_by("financial_year").agg(pl.col("population").sum()).rows())
    got = dict(a.group_by("financial_year").agg(pl.col("population").sum()).rows())
    for y, p in got.items():
        assert p == pytest.approx(want[y], rel=1e-12)
    assert got["2030/31"] > got["2026/27"] * 1.015
    # shares move within the settlement where growth differs, and still sum to 1 each year
    shares = a.group_by("financial_year").agg(pl.col("target_share").sum())["target_share"]
    assert (shares - 1).abs().max() < 1e-12
    wide = a.pivot(on="financial_year", index="area_code", values="target_share")
    assert (wide["2030/31"] - wide["2026/27"]).abs().max() > 1e-5
    # grant per head divides by that year's residents
    last = a.filter(pl.col("financial_year") == "2030/31")
    per_head = (last["grant"].cast(pl.Float64) / last["population"]).round(0)
    assert (per_head - last["grant_per_head"].cast(pl.Float64)).abs().max() <= 1


def test_a_dataset_without_years_still_runs(data_copy):
    pop = pl.read_parquet(data_copy / "population.parquet")
    pop.filter(pl.col("financial_year") == "2024/25").drop("financial_year").write_parquet(
        data_copy / "population.parquet")
    run = compute(load_dataset(data_copy), load_formula("fundform-needs"), RunParameters(years=2))
    p = run.allocations.group_by("financial_year").agg(pl.col("population").sum())["population"]
    assert p.n_unique() == 1 and p[0] == pytest.approx(58_620_101, abs=0.5)


def test_a_year_the_run_needs_is_missing(data_copy):
    pop = pl.read_parquet(data_copy / "population.parquet")
    pop.filter(pl.col("financial_year") <= "2028/29").write_parquet(data_copy / "population.parquet")
    with pytest.raises(InvalidInput) as e:
        compute(load_dataset(data_copy), load_formula("fundform-needs"), RunParameters())
    text = str(e.value)
    assert "population.parquet" in text and "financial_year" in text and "2029/30" in text and "2028/29" in text


def test_a_year_without_every_authority_is_refused(data_copy):
    pop = pl.read_parquet(data_copy / "population.parquet")
    pop.filter(~((pl.col("financial_year") == "2027/28") & (pl.col("area_code") == "E06000001"))).write_parquet(
        data_copy / "population.parquet")
    with pytest.raises(InvalidInput, match="2027/28"):
        load_dataset(data_copy)


def test_reading_a_population_by_year_without_a_year_is_an_error(bundled):
    with pytest.raises(InternalError, match="for_year"):
        bundled["population"]
    assert "financial_year" not in bundled.for_year("2026/27")["population"].columns
