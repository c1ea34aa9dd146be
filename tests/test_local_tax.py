"""Local resources and equalisation: identities, one authority by hand, the published council tax arithmetic,
negative grants, precept flexibility, local taxes, and bad inputs."""

from __future__ import annotations

import polars as pl
import pytest
from typer.testing import CliRunner

from cli import app
from fundform.engine.localtax.resources import floor_penny, referendum_band_d
from fundform.formula.scenario import resolve_formula
from fundform.studies.pipeline import RunParameters, compute

runner = CliRunner()
IMMEDIATE = ["transition.gap_closed_per_year=1.0", "transition.floor=-0.99"]


def run(bundled, sets, **params):
    return compute(bundled, resolve_formula("fundform-needs", sets), RunParameters(**params))


@pytest.mark.parametrize("e", [0.0, 0.5, 1.0])
def test_grant_basis_identities(bundled, e):
    r = run(bundled, ['local_tax.basis="grant"', f"local_tax.equalisation={e}", *IMMEDIATE], years=2)
    a = r.allocations
    per_year = a.group_by("financial_year").agg(pl.col("grant").sum(), pl.col("notional_local_tax").sum(),
                                                pl.col("control_total").first())
    grant_total = per_year["control_total"] - per_year["notional_local_tax"]  # T: the envelope less e x sum(N)
    assert (per_year["grant"] == grant_total).all()
    if e == 0:  # no equalisation: the grant is the need-based allocation
        assert (a["grant"] == a["allocation"]).all()
    # grant + e x N = the need share of (T + e x sum N): with an immediate move, the target allocation
    assert ((a["grant"] + a["notional_local_tax"] - a["target_allocation"]).abs() <= 1).all()
    assert r.reconciliation["holds"].all()


def test_grant_basis_with_full_equalisation_grants_sum_to_the_same_total_as_without(bundled):
    none = run(bundled, ['local_tax.basis="grant"', "local_tax.equalisation=0.0", *IMMEDIATE], years=1)
    full = run(bundled, ['local_tax.basis="grant"', "local_tax.equalisation=1.0", *IMMEDIATE], years=1)
    assert none.allocations["grant"].sum() == full.allocations["grant"].sum()  # T, to the penny, either way


def test_hartlepool_by_hand(bundled):
    # Hartlepool: tax base 25,780 Band D equivalents in 2024-25 (CTR line 7)
    ct = bundled["council_tax"]
    tb = ct.filter(pl.col("area_code") == "E06000001")["tax_base_band_d"].item()
    assert tb == 25_780.0
    # notional Band D: national average of the social-care authorities' Band D, weighted by tax base, to the penny
    total_tb = sum(ct["tax_base_band_d"].to_list())
    avg = sum(t * b for t, b in zip(ct["tax_base_band_d"], ct["band_d_social_care_authority"])) / total_tb
    nbd = int(avg * 100) / 100
    for _ in range(2):  # 2024-25 -> 2026/27: +2.99% core +2% precept, added, rounded down to the penny each year
        nbd = int(nbd * 1.0499 * 100 + 1e-9) / 100
    n = tb * 1.0117 ** 2 * nbd * 0.399  # projected tax base x notional Band D x share for devolved services
    r = run(bundled, [], years=1)
    h = r.allocations.filter(pl.col("area_code") == "E06000001").row(0, named=True)
    assert abs(h["notional_local_resources"] - round(n * 100)) <= 1  # pence
    assert h["notional_local_tax"] == h["notional_local_resources"]  # full equalisation
    assert h["grant"] == h["allocation"] - h["notional_local_tax"]
    assert h["equalisation"] == -h["notional_local_tax"]
    assert h["spending_power"] == h["grant"] + h["local_yield"]


def test_band_ratios_match_the_published_table_8(bundled):
    bands = bundled["council_tax_bands"].pivot(on="band", index="area_code", values="area_council_tax")
    ratios = {"A": 6, "B": 7, "C": 8, "D": 9, "E": 11, "F": 13, "G": 15, "H": 18}
    for code in ["E06000001", "E09000001", "E07000223", "E08000025", "E06000066"]:
        row = bands.filter(pl.col("area_code") == code).row(0, named=True)
        for band, ninths in ratios.items():
            assert round(row["D"] * ninths / 9 + 1e-9, 2) == pytest.approx(row[band], abs=0.005), (code, band)


@pytest.mark.parametrize("code", ["E06000022", "E06000055", "E09000004", "E06000023", "E09000006", "E09000002"])
def test_referendum_arithmetic_reproduces_published_2024_25_band_d(bundled, code):
    # authorities that rose by the full 4.99% (Table 7a): 2.99% core + 2% adult social care, added not compounded,
    # rounded down to the penny
    row = bundled["council_tax"].filter(pl.col("area_code") == code).row(0, named=True)
    assert float(referendum_band_d(row["band_d_billing_2023_24"], 0.0299, 0.02)) == pytest.approx(
        row["band_d_billing"], abs=1e-9)


def test_compounding_would_not_reproduce_it(bundled):
    row = bundled["council_tax"].filter(pl.col("area_code") == "E06000055").row(0, named=True)  # Bedford
    assert float(floor_penny(row["band_d_billing_2023_24"] * 1.0299 * 1.02)) != row["band_d_billing"]


@pytest.mark.parametrize("policy", ["tariff", "floor_at_zero", "minimum_grant"])
def test_negative_grants(bundled, policy):
    # a notional Band D far above any real one makes rich areas' notional resources exceed their need
    sets = ['local_tax.notional_band_d={value=5000.0, unit="GBP per Band D", source="assumption: a stress test"}',
            "local_tax.share_for_devolved_services=1.0", f'local_tax.negative_grants="{policy}"',
            'local_tax.minimum_grant_per_head={value=10.0, unit="GBP per head", source="assumption: a stress test"}']
    a = run(bundled, sets, years=1).allocations
    raw = a["allocation"] - a["notional_local_tax"]
    assert (raw < 0).sum() > 0  # the stress test does create negative grants
    assert a["grant"].sum() == raw.sum()  # totals exact under every rule
    if policy == "tariff":
        assert (a["grant"] == raw).all() and (a["negative_grant_adjustment"] == 0).all()
    elif policy == "floor_at_zero":
        assert (a["grant"] >= 0).all()
    else:
        assert (a["grant"] >= (a["population"] * 1000).ceil()).all()


def test_precept_flexibility_opt_out_is_kept_locally_not_clawed_back(bundled, tmp_path):
    f = tmp_path / "rates.csv"
    pl.DataFrame({"area_code": ["E06000001"], "rate": [0.0]}).write_csv(f)
    base = run(bundled, [], years=2).allocations
    flex = run(bundled, [], years=2, precept_rates=f).allocations
    h0 = base.filter(pl.col("area_code") == "E06000001")
    h1 = flex.filter(pl.col("area_code") == "E06000001")
    assert (h1["precept_flex_yield"] < 0).all() and (h1["council_tax_yield"] < h0["council_tax_yield"]).all()
    assert (h1["grant"] == h0["grant"]).all()  # the grant assumes the notional level: no clawback, no top-up
    others = flex.filter(pl.col("area_code") != "E06000001")
    assert (others["precept_flex_yield"] == 0).all()


def test_precept_rate_above_the_cap_or_100_percent_is_an_error(tmp_path):
    for rate, message in [(0.03, "above the version's cap"), (1.5, "out of range")]:
        f = tmp_path / "rates.csv"
        pl.DataFrame({"area_code": ["E06000001", "E06000002"], "rate": [0.01, rate]}).write_csv(f)
        r = runner.invoke(app, ["run", "--precept-rates", str(f), "--out", str(tmp_path / "o")])
        assert r.exit_code == 1 and "rates.csv" in r.output and "column 'rate'" in r.output and message in r.output
        assert "E06000002" in r.output and not (tmp_path / "o").exists()


def test_precept_cap_with_warning_caps_and_reports(bundled, tmp_path):
    f = tmp_path / "rates.csv"
    pl.DataFrame({"area_code": ["E06000002"], "rate": [0.03]}).write_csv(f)
    r = run(bundled, ['local_tax.precept.above_cap="cap_with_warning"'], years=1, precept_rates=f)
    assert r.policies["precept_capped"] == ["E06000002"]


def test_health_tax_and_business_rates_discount_are_their_own_columns(bundled, tmp_path):
    f = tmp_path / "bases.csv"
    pl.DataFrame({"area_code": ["E06000001"], "business_rates_discount": [1_000_000.0]}).write_csv(f)
    sets = ['local_tax.health_tax={basis="per_head", rate={value=5.0, unit="GBP per resident per year", '
            'source="assumption: a test of the hook"}}']
    a = run(bundled, sets, years=1, local_bases=f).allocations
    assert (a["health_tax_yield"] == (a["population"] * 500).round()).all() or \
        ((a["health_tax_yield"] - a["population"] * 500).abs() <= 1).all()
    h = a.filter(pl.col("area_code") == "E06000001").row(0, named=True)
    assert h["business_rates_discount"] == 100_000_000
    assert h["local_yield"] == h["council_tax_yield"] + h["health_tax_yield"] - h["business_rates_discount"]


@pytest.mark.parametrize("column, value, message", [
    ("tax_base_band_d", -5.0, "out of range"),
    ("band_d_social_care_authority", 0.0, "out of range"),
])
def test_bad_council_tax_inputs_are_named(data_copy, column, value, message):
    f = data_copy / "council_tax.parquet"
    pl.read_parquet(f).with_columns(pl.when(pl.col("area_code") == "E06000001").then(value)
                                    .otherwise(pl.col(column)).alias(column)).write_parquet(f)
    r = runner.invoke(app, ["validate", "--data", str(data_copy)])
    assert r.exit_code == 1
    text = " ".join(r.output.split())
    assert f"council_tax.parquet, column '{column}'" in text and message in text and "E06000001" in text


def test_equalisation_phases_in(bundled):
    sets = ['local_tax.equalisation_phasing_years={value=3, unit="years", source="assumption: thirds, as the '
            'Fair Funding Review phases its resources adjustment"}']
    r = run(bundled, sets, years=4)
    assert list(r.policies["equalisation_degree"].values()) == pytest.approx([1 / 3, 2 / 3, 1.0, 1.0])
    a = r.allocations.filter(pl.col("area_code") == "E06000001").sort("year_index")
    share = (a["notional_local_tax"].cast(pl.Float64) / a["notional_local_resources"].cast(pl.Float64)).to_list()
    assert share == pytest.approx([1 / 3, 2 / 3, 1.0, 1.0], abs=1e-9)


def test_precept_tied_to_need_raises_more_where_need_is_higher(bundled):
    r = compute(bundled, resolve_formula("localis-2016"), RunParameters(years=1))
    a = r.allocations
    assert r.policies["precept_capped"] == []  # 2% x need index stays under the 4% cap everywhere
    high, low = a.filter(pl.col("need_index") > 1.05), a.filter(pl.col("need_index") < 0.95)
    assert (high["precept_flex_yield"] > 0).all() and (low["precept_flex_yield"] < 0).all()
    assert a["grant"].sum() == a["control_total"][0] - a["notional_local_tax"].sum()  # grant basis: T exactly
