"""Geographies: roll-ups reconcile, combined authorities, ICB apportionment, deal areas, receiving bodies, cohorts."""

from __future__ import annotations

import json
import re

import polars as pl
import pytest
from typer.testing import CliRunner

from cli import app
from fundform.base.errors import InvalidInput
from fundform.base.paths import PROJECT_ROOT
from fundform.engine.geography import deal_lookup
from fundform.formula.scenario import resolve_formula
from fundform.inputs.tables import LEVELS
from fundform.studies.levels import compare_levels
from fundform.studies.pipeline import RunParameters, compute

runner = CliRunner()
GM = ["E08000001", "E08000002", "E08000003", "E08000004", "E08000005", "E08000006", "E08000007", "E08000008",
      "E08000009", "E08000010"]


@pytest.fixture(scope="module")
def by_level(bundled, needs_formula):
    return {lv: compute(bundled, needs_formula, RunParameters(level=lv)) for lv in LEVELS}


def test_every_level_adds_up_to_the_national_total(by_level):
    ltla = by_level["ltla"].allocations
    for lv, r in by_level.items():
        a = r.allocations
        for col in ("allocation", "target_allocation", "grant", "notional_local_tax"):
            assert a.group_by("year_index").agg(pl.col(col).sum()).sort("year_index")[col].to_list() == \
                ltla.group_by("year_index").agg(pl.col(col).sum()).sort("year_index")[col].to_list(), (lv, col)
        assert a["need_weighted_population"].sum() == pytest.approx(ltla["need_weighted_population"].sum(),
                                                                     rel=1e-12)


def test_greater_manchester_is_the_sum_of_its_ten_boroughs(by_level):
    ca = by_level["ca"].allocations.filter(pl.col("area_code") == "E47000001")
    boroughs = by_level["ltla"].allocations.filter(pl.col("area_code").is_in(GM))
    sums = boroughs.group_by("year_index").agg(pl.col("need_weighted_population", "population",
                                                      "target_allocation").sum()).sort("year_index")
    ca = ca.sort("year_index")
    assert ca["need_weighted_population"].to_list() == pytest.approx(sums["need_weighted_population"].to_list(),
                                                                     rel=1e-12)
    assert ca["population"].to_list() == pytest.approx(sums["population"].to_list(), rel=1e-12)
    assert (ca["target_allocation"] == sums["target_allocation"]).all()  # to the penny: apportioned once, summed
    # the transition applies to the body that receives the money: GM's grant is its own, not its boroughs' sum
    grants = by_level["ltla"].allocations.filter(pl.col("area_code").is_in(GM)).group_by("year_index").agg(
        pl.col("grant").sum()).sort("year_index")
    assert (ca["grant"] != grants["grant"]).any()


def test_an_authority_split_between_icbs_is_apportioned_by_the_published_shares(bundled, by_level):
    lk = bundled["area_lookup"].filter((pl.col("level") == "icb") & (pl.col("area_code") == "E06000064"))
    ltla_pop = by_level["ltla"].need.filter(pl.col("area_code") == "E06000064")["population"].item()
    icb_pop = by_level["icb"].need.select("area_code", "population")
    # every ICB's population is the sum of its authorities' populations times their shares
    expected = bundled["area_lookup"].filter(pl.col("level") == "icb").join(
        by_level["ltla"].need.select("area_code", "population"), on="area_code").group_by("target_code").agg(
        (pl.col("population") * pl.col("share")).sum().alias("p"))
    j = icb_pop.join(expected, left_on="area_code", right_on="target_code")
    assert j.height == 42 and (j["population"] - j["p"]).abs().max() < 1e-6
    assert lk.height == 2 and sum(lk["share"]) == pytest.approx(1.0) and ltla_pop > 0


def test_a_deal_file_with_a_share_of_0_8_is_rejected_naming_the_council(bundled, tmp_path):
    f = tmp_path / "deals.csv"
    pl.DataFrame({"area_code": ["E08000003", "E08000001"], "deal_code": ["D1", "D1"], "deal_name": ["Deal", "Deal"],
                  "share": [0.8, 1.0]}).write_csv(f)
    with pytest.raises(InvalidInput) as e:
        deal_lookup(f, bundled["areas"])
    assert "E08000003 Manchester sums to 0.8" in str(e.value) and "deals.csv, column 'share'" in str(e.value)
    r = runner.invoke(app, ["run", "--level", f"deal:{f}", "--out", str(tmp_path / "o")])
    assert r.exit_code == 1 and "Manchester" in r.output and not (tmp_path / "o").exists()


def test_a_deal_area_run_funds_every_authority_once(bundled, needs_formula, tmp_path):
    f = tmp_path / "deals.csv"
    pl.DataFrame({"area_code": GM[:3] + ["E06000064", "E06000064"], "deal_code": ["D1"] * 3 + ["D1", "D2"],
                  "deal_name": ["North"] * 4 + ["Lakes"], "share": [1.0, 1.0, 1.0, 0.5, 0.5]}).write_csv(f)
    r = compute(bundled, needs_formula, RunParameters(level=f"deal:{f}"))
    a = r.allocations.filter(pl.col("year_index") == 1)
    assert a.height == 296 - 4 + 2 and a["area_level"][0] == "deal:deals.csv"
    # the first settlement year's residents (ONS 2022-based projection for mid-2026, England 59,137,044)
    assert a["population"].sum() == pytest.approx(59_137_044)
    assert r.reconciliation["holds"].all()


def test_levels_command_shows_both_figures(tmp_path):
    r = runner.invoke(app, ["levels", "E47000001", "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["members"] == GM
    first = d["years"][0]
    assert first["need_weighted_population"] == pytest.approx(first["need_weighted_population_members"], rel=1e-12)


def test_the_documented_greater_manchester_figures_are_what_the_engine_computes(bundled):
    # docs/geographies.md quotes the body-vs-boroughs comparison; recompute every figure it states
    text = " ".join((PROJECT_ROOT / "docs" / "geographies.md").read_text().split())
    m = re.search(r"differ by GBP ([\d.]+)m in 2026/27 \(GBP ([\d,.]+)m as one body against GBP ([\d,.]+)m as ten "
                  r"boroughs\) and by GBP ([\d.]+)m in 2030/31", text)
    assert m, "the comparison sentence in docs/geographies.md changed shape"
    diff1, body1, members1, diff5 = (float(g.replace(",", "")) for g in m.groups())
    name, members, rows = compare_levels(bundled, resolve_formula("fundform-needs"), "E47000001")
    assert name == "Greater Manchester" and members == GM
    pounds_m = lambda pence: round(pence / 1e8, 2)
    first, last = rows.row(0, named=True), rows.row(-1, named=True)
    assert (pounds_m(first["grant"]), pounds_m(first["grant_members"])) == (body1, members1)
    assert pounds_m(first["grant"] - first["grant_members"]) == diff1
    assert pounds_m(last["grant"] - last["grant_members"]) == diff5
    assert abs(first["target_allocation"] - first["target_allocation_members"]) <= 1  # a penny


def test_a_deal_area_compares_with_its_members(bundled):
    deals = PROJECT_ROOT / "docs" / "examples" / "deal-areas-example.csv"
    name, members, rows = compare_levels(bundled, resolve_formula("fundform-needs"), "D0001", f"deal:{deals}")
    assert name == "Hull and East Yorkshire" and members == ["E06000010", "E06000011"]
    assert rows["need_weighted_population"].to_numpy() == pytest.approx(
        rows["need_weighted_population_members"].to_numpy(), rel=1e-12)


def test_cohorts_add_up_to_the_pooled_grant(bundled):
    for formula, level in (("fundform-needs", "ltla"), ("hdc-2021", "ca")):
        r = compute(bundled, resolve_formula(formula), RunParameters(level=level))
        c = r.cohorts
        assert set(c["cohort"].unique()) == {"prevention_40_55", "care_85_plus", "rest"}
        s = c.group_by("area_code", "financial_year").agg(pl.col("amount").sum(), pl.col("share").sum())
        j = s.join(r.allocations.select("area_code", "financial_year", "grant"), on=["area_code", "financial_year"])
        assert (j["amount"] == j["grant"]).all() and (j["share"] - 1).abs().max() < 1e-12
    # cohorts are configurable: a scenario can set its own
    r = compute(bundled, resolve_formula("fundform-needs", [
        'cohorts=[{name="under_5", title="Early years", from=0, to=4}]']), RunParameters(years=1))
    assert set(r.cohorts["cohort"].unique()) == {"under_5", "rest"}


def _members(bundled, level: str, base: str) -> pl.DataFrame:
    """member_code, area_code, share: the base level's areas in each area of `level`."""
    if base == "icb":  # NHS England allocates to ICBs; a region is its ICBs (an ICB formed from others, theirs)
        region = bundled["nhs_icb_allocations"].select(member_code="icb_code", area_code="nhs_region_code").unique()
        formed = bundled["icb_changes"].select(old="old_code", member_code="new_code").join(
            region.rename({"member_code": "old"}), on="old").select("member_code", "area_code")
        return pl.concat([region, formed]).unique().with_columns(share=pl.lit(1.0))
    return bundled["area_lookup"].filter(pl.col("level") == level).select(
        member_code="area_code", area_code="target_code", share="share")


@pytest.mark.parametrize("formula_id", ["fundform-needs", "reform-2017", "localis-2016", "hdc-2021", "nhs-icb-2024",
                                        "nhs-icb-2025", "nhs-icb-2026", "nhs-icb-core-pmc"])
def test_what_the_transition_does_not_touch_adds_up_between_levels_to_the_penny(bundled, formula_id, tmp_path):
    """At every level, an area's need, target share, target allocation, today's funding (cash) and today's funding
    uprated are the sums of its members' at the finest level the version computes at (authorities; ICBs for NHS
    England's rounds): to the penny where every member is whole, and an authority split between areas contributes
    its pence split by its shares (so the areas' total is still the members' total to the penny, and each area
    within 1p per split member and stream of the shares' product)."""
    from fundform.formula.spec import run_defaults

    f = resolve_formula(formula_id)
    _, start, years = run_defaults(f.spec)
    nhs = f.spec.baseline.source == "nhs_icb_allocations"
    base = "icb" if nhs else "ltla"
    deal = tmp_path / "deal.csv"
    deal.write_text("area_code,deal_code,deal_name,share\nE06000064,D1,North,0.25\nE06000064,D2,South,0.75\n"
                    "E08000001,D1,North,1\n")
    levels = ["nhs-region"] if nhs else ["utla", "region", "icb", "nhs-region", "ca", f"deal:{deal}"]
    run = lambda lv: compute(bundled, f, RunParameters(level=lv, start_year=start, years=years)).allocations
    finest = run(base)
    for lv in levels:
        got = run(lv)
        members = _members(bundled, lv, base) if not lv.startswith("deal:") else pl.concat([
            pl.read_csv(deal).select(member_code="area_code", area_code="deal_code", share="share"),
            bundled["areas"].filter(~pl.col("area_code").is_in(["E06000064", "E08000001"])).select(
                member_code="area_code", area_code="area_code", share=pl.lit(1.0))])
        split = members.group_by("member_code").len().filter(pl.col("len") > 1)["member_code"]
        summed = (finest.join(members, left_on="area_code", right_on="member_code").group_by(
            "area_code_right", "financial_year").agg(
            (pl.col(c) * pl.col("share")).sum().alias(c) for c in ("need_weighted_population", "target_share",
                                                                  "target_allocation", "baseline", "todays_funding"))
            .rename({"area_code_right": "area_code"}))
        n_split = members.filter(pl.col("member_code").is_in(split.implode())).group_by("area_code").len()
        both = got.join(summed, on=["area_code", "financial_year"], suffix="_members").join(
            n_split, on="area_code", how="left").with_columns(pl.col("len").fill_null(0) * max(1, len(f.spec.streams)))
        assert both.height == got.height, (lv, "every area has members")
        for c in ("target_allocation", "baseline", "todays_funding"):
            off = both.filter((pl.col(c) - pl.col(f"{c}_members")).abs() > pl.col("len"))
            assert off.height == 0, (formula_id, lv, c, off.select("area_code", "financial_year", c, f"{c}_members"))
            whole = both.filter(pl.col("len") == 0)
            assert (whole[c] == whole[f"{c}_members"].round(0).cast(pl.Int64)).all(), (formula_id, lv, c)
            assert got.group_by("financial_year").agg(pl.col(c).sum()).sort("financial_year")[c].to_list() == \
                finest.group_by("financial_year").agg(pl.col(c).sum()).sort("financial_year")[c].to_list()
        for c in ("need_weighted_population", "target_share"):
            assert both[c].to_list() == pytest.approx(both[f"{c}_members"].to_list(), rel=1e-9), (formula_id, lv, c)
