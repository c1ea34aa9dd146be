"""The bundled England dataset: complete, consistent, and true to the published figures it was built from."""

import polars as pl
import pytest

from fundform.inputs.tables import CONTRACTS, LEVELS

EXPECTED_AREAS = {"ltla": 296, "utla": 153, "region": 9, "icb": 42, "nhs-region": 7, "ca": 296 - 72 + 11}  # 72 districts in 11 CAs


def test_every_table_covers_the_296_authorities(bundled):
    codes = set(bundled["areas"]["area_code"])
    assert len(codes) == 296
    for name, contract in CONTRACTS.items():
        frame = bundled.tables[name]
        if contract.covers_every_area:
            assert set(frame["area_code"]) == codes, name
        elif "area_code" in frame.columns:
            assert set(frame["area_code"]) <= codes, name


@pytest.mark.parametrize("level", LEVELS)
def test_lookup_levels_have_the_published_number_of_areas(bundled, level):
    lk = bundled["area_lookup"].filter(pl.col("level") == level)
    assert lk["target_code"].n_unique() == EXPECTED_AREAS[level]
    sums = lk.group_by("area_code").agg(pl.col("share").sum())["share"]
    assert (sums - 1).abs().max() < 1e-12


def test_published_anchor_figures(bundled):
    # ONS mid-2023: England 57,690,323; Hartlepool 95,366 (data/README.md, population PROVENANCE)
    pop = bundled.for_year("2023/24")["population"]
    assert pop["population"].sum() == 57_690_323
    assert pop.filter(pl.col("area_code") == "E06000001")["population"].sum() == 95_366
    ct = bundled["council_tax"].filter(pl.col("area_code") == "E06000001").row(0, named=True)
    assert ct["tax_base_band_d"] == 25_780.0 and ct["tax_base_band_d_2023_24"] == 25_342.0
    dep = bundled["deprivation"].filter(pl.col("area_code") == "E06000001").row(0, named=True)
    assert dep["imd_average_score"] == 37.58
    mort = bundled["preventable_mortality"].filter(pl.col("area_code") == "E06000001").row(0, named=True)
    assert mort["preventable_mortality_rate"] == 232.2


def test_suppressed_mortality_is_substituted_and_flagged(bundled):
    m = bundled["preventable_mortality"]
    flagged = m.filter(pl.col("preventable_mortality_source") != "observed")
    assert sorted(flagged["area_code"]) == ["E06000053", "E09000001"]
    cornwall = m.filter(pl.col("area_code") == "E06000052")["preventable_mortality_rate"].item()
    assert flagged.filter(pl.col("area_code") == "E06000053")["preventable_mortality_rate"].item() == cornwall


def test_baseline_reproduces_the_published_nhs_totals(bundled):
    # the 42 published ICB core 2025/26 recurrent allocations sum to GBP 116,741,038k (ICB_Core_Allocations_2025_26,
    # ENGLAND row); attributing them to authorities by residents x need per head loses nothing
    b = bundled["baseline"]
    assert b["nhs_core"].sum() == pytest.approx(116_741_038_000, rel=1e-12)
    assert set(b["nhs_core_source_year"]) == {"2025/26"} and set(b["baseline_year"]) == {"2025/26"}
    assert (b.select(pl.col("nhs_core", "adult_social_care", "public_health").min()).row(0) > (0, 0, 0))


def test_split_authorities_are_apportioned_across_icbs(bundled):
    # Westmorland and Furness (2023, from Barrow, Eden, South Lakeland) is served by two ICBs in two NHS regions
    lk = bundled["area_lookup"].filter(pl.col("area_code") == "E06000064")
    icbs = lk.filter(pl.col("level") == "icb")
    assert icbs.height == 2 and 0 < icbs["share"].min() < 1
    assert lk.filter(pl.col("level") == "nhs-region").height == 2


def test_practice_file_reproduces_the_published_fair_shares_exactly(bundled):
    # NHS England's 2023/24 practice weights, summed to ICBs, are the 2023/24 fair shares target (inc. COVID)
    # of the 2024/25 round: the same computation, to floating-point precision
    wp = bundled["practice_weighted_population"].filter(pl.col("weights_year") == "2023/24")
    shares = wp.group_by("icb_code").agg(pl.col("wp_core").sum()).with_columns(s=pl.col("wp_core") / pl.col("wp_core").sum())
    pub = bundled["nhs_icb_allocations"].filter((pl.col("allocation_round") == "2024/25")
                                                & (pl.col("stream") == "core")).with_columns(
        p=pl.col("fair_shares_target") / pl.col("fair_shares_target").sum())
    j = shares.join(pub, on="icb_code")
    assert j.height == 42
    assert (j["s"] - j["p"]).abs().max() < 1e-9
