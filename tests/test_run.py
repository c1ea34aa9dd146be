"""The default national allocation: its identities, its output contract and its reproducibility."""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal

import polars as pl
import pyarrow.parquet as pq
import pytest

from fundform.base.years import years_between
from fundform.engine.settlement.control_total import index_levels
from fundform.outputs.schema import ALLOCATIONS
from fundform.outputs.write import read_manifest
from fundform.studies.pipeline import RunParameters, compute
from fundform.studies.runs import run
from tests.conftest import DATA

AREAS = {"ltla": 296, "utla": 153, "icb": 42, "nhs-region": 7, "region": 9}


@pytest.mark.parametrize("level", AREAS)
def test_rows_per_level_and_money_reconciles(bundled, needs_formula, level):
    r = compute(bundled, needs_formula, RunParameters(level=level))
    a = r.allocations
    assert a.height == AREAS[level] * 5
    per_year = a.group_by("financial_year").agg(pl.len(), pl.col("allocation").sum(), pl.col("control_total").first(),
                                                pl.col("target_share").sum(), pl.col("grant").sum(),
                                                pl.col("notional_local_tax").sum())
    assert per_year["len"].to_list() == [AREAS[level]] * 5
    assert (per_year["allocation"] == per_year["control_total"]).all()  # integer pence: exact
    assert (per_year["grant"] == per_year["control_total"] - per_year["notional_local_tax"]).all()
    assert (per_year["target_share"] - 1).abs().max() < 1e-12
    # population and need are conserved by every roll-up
    # (ONS 2022-based projection for mid-2026, the first settlement year's residents)
    assert a.filter(pl.col("year_index") == 1)["population"].sum() == pytest.approx(59_137_044, rel=1e-12)


def test_roll_up_conserves_need(bundled, needs_formula):
    ltla = compute(bundled, needs_formula, RunParameters(level="ltla")).need
    icb = compute(bundled, needs_formula, RunParameters(level="icb")).need
    assert icb["need_weighted_population"].sum() == pytest.approx(ltla["need_weighted_population"].sum(), rel=1e-12)


def test_control_total_grows_by_inflation_and_real_growth(default_run, needs_formula):
    spec = needs_formula.spec
    ct = default_run.control_totals
    base = default_run.policies["base_year_total_gbp"] * 100
    for row in ct.iter_rows(named=True):
        n = years_between(row["financial_year"], spec.control_total.base_year)
        expected = base * (1.02 ** n) * (1 + spec.control_total.real_growth.value) ** n
        assert abs(row["control_total"] - expected) <= 0.5


def test_real_and_cash_are_linked_by_the_stated_index(default_run, needs_formula):
    spec = needs_formula.spec
    a = default_run.allocations
    levels = index_levels(spec.indices["gdp_deflator"].growth, "gdp_deflator", "2026/27", a["financial_year"].unique().sort()
                          .to_list())
    j = a.join(levels, on="financial_year")
    # per area within one penny of grant / index, and per year exact to the rounded total
    assert ((j["grant"] / j["index_level"] - j["grant_real"]).abs() <= 1.0).all()
    first = j.filter(pl.col("financial_year") == "2026/27")
    assert (first["grant"] == first["grant_real"]).all()  # the price base year itself


def test_floor_holds_every_year(default_run, needs_formula):
    floor = needs_formula.spec.transition.floor.value
    a = default_run.allocations
    assert (a["allocation"] >= (a["previous_allocation"] * (1 + floor)).ceil()).all()
    at_floor = a.filter(pl.col("transition_bound") == "floor")
    assert at_floor.height > 0  # the default formula does bind somewhere: the test is not vacuous
    assert (at_floor["allocation"] == (at_floor["previous_allocation"] * (1 + floor)).ceil()).all()


def test_each_year_starts_from_the_previous_years_allocation(default_run):
    a = default_run.allocations.sort("area_code", "year_index")
    prev = a.with_columns(last=pl.col("allocation").shift(1).over("area_code")).filter(pl.col("year_index") > 1)
    assert (prev["previous_allocation"] == prev["last"]).all()


def test_output_files_carry_units_price_base_and_manifest(tmp_path):
    r = run("fundform-needs", DATA, RunParameters(), tmp_path / "run", tmp_path)
    path = r.out_dir / "allocations.parquet"
    schema = pq.read_schema(path)
    assert schema.names == [c.name for c in ALLOCATIONS]
    for c in ALLOCATIONS:
        meta = schema.field(c.name).metadata
        assert meta[b"unit"].decode() == c.unit and meta[b"description"]
    assert schema.field("grant_real").metadata[b"price_base_year"] == b"2026/27"
    assert str(schema.field("grant").type) == "decimal128(20, 2)"
    manifest = read_manifest(path)
    assert manifest["formula"]["id"] == "fundform-needs" and manifest["formula"]["version"] == "1.0.0"
    assert manifest["run_id"] == r.manifest["run_id"]
    on_disk = json.loads((r.out_dir / "manifest.json").read_text())
    for entry in on_disk["inputs"]:
        assert entry["sha256"] == hashlib.sha256((DATA / entry["file"]).read_bytes()).hexdigest()
    assert on_disk["formula"]["sha256"] == hashlib.sha256(
        (DATA.parent.parent / "formulas" / "fundform-needs.toml").read_bytes()).hexdigest()
    assert {"python", "polars", "pyarrow", "fundform"} <= set(on_disk["packages"])
    # exact money survives the round trip: decimals sum to the control total to the penny
    t = pl.read_parquet(path)
    year1 = t.filter(pl.col("year_index") == 1)
    assert sum(year1["allocation"].to_list(), Decimal(0)) == year1["control_total"][0]


def test_same_inputs_same_bytes(tmp_path):
    a = run("fundform-needs", DATA, RunParameters(level="icb"), tmp_path / "a", tmp_path)
    b = run("fundform-needs", DATA, RunParameters(level="icb"), tmp_path / "b", tmp_path)
    assert a.manifest["run_id"] == b.manifest["run_id"]
    for name in ("allocations.parquet", "need.parquet", "reconciliation.parquet"):
        assert (a.out_dir / name).read_bytes() == (b.out_dir / name).read_bytes(), name


def test_default_out_dir_is_the_run_id(tmp_path):
    r = run("fundform-needs", DATA, RunParameters(level="region"), None, tmp_path / "out")
    assert r.out_dir == tmp_path / "out" / r.manifest["run_id"]
