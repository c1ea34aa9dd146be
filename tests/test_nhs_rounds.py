"""NHS rounds as data (docs/nhs-rounds.md): each shipped round reproduces NHS England's published recurrent
allocations; a chain of rounds does too; the 2026 round runs on the 36 merged ICBs; and a round built in a test
from tables alone gives exactly what the documented rule says."""

from __future__ import annotations

import shutil

import numpy as np
import polars as pl
import pytest

from fundform.base.errors import FundformError, SpecError
from fundform.formula.scenario import resolve_formula
from fundform.inputs.dataset import load_dataset
from fundform.studies.pipeline import RunParameters, compute

BAR = 0.0005  # the bar: every ICB within 0.05% of its published recurrent allocation


def published(bundled, rnd: str) -> pl.DataFrame:
    return bundled["nhs_icb_allocations"].filter((pl.col("allocation_round") == rnd) & (pl.col("stream") == "core"))


def deviations(allocations: pl.DataFrame, bundled) -> pl.DataFrame:
    pub = bundled["nhs_icb_allocations"].filter(pl.col("stream") == "core").select(
        financial_year="allocation_round", area_code="icb_code", pub="recurrent_allocation")
    return allocations.join(pub, on=["financial_year", "area_code"]).with_columns(
        dev=pl.col("allocation").cast(pl.Float64) / 100 / pl.col("pub") - 1)


@pytest.mark.parametrize("year", ["2023/24", "2024/25", "2025/26"])
def test_each_round_of_nhs_icb_2025_reproduces_its_published_allocations(bundled, year):
    run = compute(bundled, resolve_formula("nhs-icb-2025"), RunParameters(level="icb", start_year=year, years=1))
    dev = deviations(run.allocations, bundled)
    assert dev.height == 42
    assert dev["dev"].abs().max() < BAR, dev.sort(pl.col("dev").abs(), descending=True).head(3)
    assert run.reconciliation["holds"].all()


def test_2025_26_starts_from_the_restated_2024_25_baseline(bundled):
    run = compute(bundled, resolve_formula("nhs-icb-2025"), RunParameters(level="icb", start_year="2025/26",
                                                                          years=1))
    restated = published(bundled, "2025/26")["adjusted_recurrent_baseline"].sum()
    first_published = published(bundled, "2024/25")["recurrent_allocation"].sum()
    assert run.policies["start_total_gbp"] == pytest.approx(restated, abs=50)
    assert restated > first_published * 1.07  # GBP 112.1bn against 103.8bn: pay awards, capacity, transfers


def test_a_chained_run_uses_each_rounds_parameters_and_restated_baseline(bundled):
    run = compute(bundled, resolve_formula("nhs-icb-2025"), RunParameters(level="icb", start_year="2023/24",
                                                                          years=3))
    dev = deviations(run.allocations, bundled)
    assert dev.height == 3 * 42
    worst = dev.group_by("financial_year").agg(pl.col("dev").abs().max()).sort("financial_year")
    assert worst["dev"].max() < BAR, worst
    # the chain is not three runs glued together: the 2025/26 year starts from the chain's own 2024/25 allocation
    # moved by the restatement, so it differs (slightly) from a run that starts from the published baseline
    single = compute(bundled, resolve_formula("nhs-icb-2025"), RunParameters(level="icb", start_year="2025/26",
                                                                             years=1)).allocations
    last = run.allocations.filter(pl.col("financial_year") == "2025/26").sort("area_code")
    assert not last["allocation"].equals(single.sort("area_code")["allocation"])
    # each year's rule: 2025/26 caps convergence at 0.5% either way; 2024/25 took up to 1.36% off
    grown = lambda y: run.allocations.filter(pl.col("financial_year") == y)
    for y, cap in (("2024/25", 0.0136), ("2025/26", 0.005)):
        a = grown(y)
        change = (a["allocation"].cast(pl.Float64) / a["baseline"].cast(pl.Float64) - 1).to_numpy()
        assert change.min() >= -cap - 1e-6 and change.min() < -cap + 1e-4


def test_nhs_icb_2024_still_reproduces_2024_25(bundled):
    run = compute(bundled, resolve_formula("nhs-icb-2024"), RunParameters(level="icb", start_year="2024/25",
                                                                          years=1))
    assert deviations(run.allocations, bundled)["dev"].abs().max() < 0.0001


def test_nhs_icb_2026_targets_are_each_years_core_wp_shares_on_36_icbs(bundled):
    run = compute(bundled, resolve_formula("nhs-icb-2026"), RunParameters(level="icb", start_year="2026/27",
                                                                          years=3))
    a = run.allocations
    assert a["area_code"].n_unique() == 36 and a["area_name"].null_count() == 0
    assert a.filter(pl.col("area_code").str.starts_with("T"))["area_code"].n_unique() == 6  # T01-T05, T07
    wp = bundled["practice_weighted_population"]
    for y in ("2026/27", "2027/28", "2028/29"):
        expected = (wp.filter(pl.col("weights_year") == y).group_by("icb_code").agg(pl.col("wp_core").sum())
                    .with_columns(share=pl.col("wp_core") / pl.col("wp_core").sum()))
        got = a.filter(pl.col("financial_year") == y).join(expected, left_on="area_code", right_on="icb_code")
        assert got.height == 36
        assert (got["target_share"] - got["share"]).abs().max() < 1e-12
        t = got["target_allocation"].cast(pl.Float64)
        assert (t / t.sum() - got["share"]).abs().max() < 1e-9
    # the start is the 2025/26 published allocations, moved to the 36 ICBs: nothing lost in the merger
    assert run.policies["start_total_gbp"] == pytest.approx(published(bundled, "2025/26")["recurrent_allocation"]
                                                            .sum(), abs=50)
    # registered patients grow by year (63.92m, 64.14m, 64.40m in NHS England's files)
    pops = a.group_by("financial_year").agg(pl.col("population").sum()).sort("financial_year")["population"]
    assert pops.is_sorted() and pops[0] == pytest.approx(63.92e6, rel=1e-3)


def test_a_run_that_crosses_the_merger_rolls_the_baselines_up(bundled, tmp_path):
    crossing = tmp_path / "crossing.toml"
    crossing.write_text('extends = "nhs-icb-2026"\neffective_years = ["2025/26", "2026/27"]\n'
                        '[baseline]\nbase_growth = "published"\n')
    run = compute(bundled, resolve_formula(str(crossing)), RunParameters(level="icb", start_year="2025/26", years=2))
    a = run.allocations
    assert a["area_code"].n_unique() == 36  # the ICBs of the run's last year, in both years
    first = a.filter(pl.col("financial_year") == "2025/26")
    restated = published(bundled, "2025/26")["adjusted_recurrent_baseline"].sum()
    assert int(first["previous_allocation"].sum()) / 100 == pytest.approx(restated, abs=50)


def test_dated_sections_only_touch_need_baseline_and_transition(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('extends = "nhs-icb-2025"\n[years."2025/26".local_tax]\nrule = "none"\n')
    with pytest.raises(SpecError, match="may vary by year"):
        resolve_formula(str(bad))
    nosource = tmp_path / "nosource.toml"
    nosource.write_text('extends = "nhs-icb-2025"\n[years."2026/27".transition]\n'
                        'max_gain = { value = 0.004, unit = "share" }\n')
    with pytest.raises(SpecError, match="own source"):
        resolve_formula(str(nosource))
    out_of_range = tmp_path / "range.toml"
    out_of_range.write_text('extends = "nhs-icb-2025"\n[years."2025/26".transition]\nmax_gain = { value = 1.5, '
                            'unit = "share", source = "assumption: a test of the bounds" }\n')
    with pytest.raises(SpecError, match=r"years\.2025/26"):
        resolve_formula(str(out_of_range))


def test_a_round_built_from_tables_alone_follows_the_documented_rule(bundled, data_copy, tmp_path):
    """A user's next round: published-style rows for a 2026/27 round on the 36 ICBs, added to the tables, and a
    scenario with a dated section. The engine is then checked against the rule written out here."""
    wp = bundled["practice_weighted_population"].filter(pl.col("weights_year") == "2026/27")
    changes = bundled["icb_changes"]
    prev = (published(bundled, "2025/26").join(changes, left_on="icb_code", right_on="old_code")
            .group_by("new_code").agg(alloc=(pl.col("recurrent_allocation") * pl.col("share")).sum())
            .sort("new_code"))
    need = wp.group_by("icb_code").agg(pl.col("wp_core").sum()).sort("icb_code")
    assert prev["new_code"].to_list() == need["icb_code"].to_list()
    rng = np.random.default_rng(7)
    restated = prev["alloc"].to_numpy() * (1 + rng.uniform(0.05, 0.07, prev.height))  # pay awards etc.
    growth = rng.uniform(0.03, 0.04, prev.height)  # base growth differs by ICB
    fst_total = restated.sum() * 0.985  # the system as a whole is over target
    share = (need["wp_core"] / need["wp_core"].sum()).to_numpy()
    region = (wp.group_by("icb_code").agg(pl.col("nhs_region_code").first()).sort("icb_code")["nhs_region_code"])
    rows = pl.DataFrame({
        "allocation_round": "2026/27", "stream": "core", "icb_code": prev["new_code"], "icb_name": "a merged ICB",
        "nhs_region_code": region, "adjusted_recurrent_baseline": restated, "fair_shares_target": fst_total * share,
        "distance_from_target": restated / (fst_total * share) - 1, "base_growth": growth,
        "convergence": 0.0, "recurrent_allocation": restated * (1 + growth),
        "post_convergence_distance_from_target": 0.0})
    table = pl.read_parquet(data_copy / "nhs_icb_allocations.parquet")
    pl.concat([table, rows.select(table.columns).cast(table.schema)]).write_parquet(
        data_copy / "nhs_icb_allocations.parquet")
    scenario = tmp_path / "round-2026.toml"
    scenario.write_text('''extends = "nhs-icb-2025"
effective_years = ["2023/24", "2024/25", "2025/26", "2026/27"]

[indices.gdp_deflator]
growth = { "2022/23" = 0.02, "2023/24" = 0.02, "2024/25" = 0.02, "2025/26" = 0.02, "2026/27" = 0.02 }

[years."2026/27".need]
weights_year = "2026/27"

[years."2026/27".baseline]
target_growth = "national"

[years."2026/27".transition]
gain_gap_closed = { value = 0.3, unit = "share of the distance below target closed", source = "assumption: a test round" }
max_gain = { value = 0.004, unit = "most growth", source = "assumption: a test round" }
reduction_gap_closed = { value = 0.5, unit = "share of the distance above target removed", source = "assumption: a test round" }
max_reduction = { value = 0.008, unit = "most reduction", source = "assumption: a test round" }
reduction_of = "d/(1+d)"
''')
    run = compute(load_dataset(data_copy), resolve_formula(str(scenario)),
                  RunParameters(level="icb", start_year="2026/27", years=1))
    a = run.allocations.sort("area_code")
    assert a["area_code"].to_list() == prev["new_code"].to_list()
    # the rule, written out: targets grown nationally; d after base growth; capped convergence
    grown = restated * (1 + growth)
    national = grown.sum() / restated.sum()
    target = fst_total * share * national
    d = grown / target - 1
    c = np.where(d < 0, np.minimum(0.3 * -d, 0.004), -np.minimum(0.5 * d / (1 + d), 0.008))
    expected = grown * (1 + c)
    got = a["allocation"].cast(pl.Float64).to_numpy() / 100
    assert np.abs(got - expected).max() < 0.51 * 42  # pence rounding of the start, the growth and the result
    assert np.abs(a["target_allocation"].cast(pl.Float64).to_numpy() / 100 - target).max() < 1.0
    assert run.reconciliation["holds"].all()


def test_a_round_the_data_lacks_is_named_with_the_years_it_holds(bundled):
    with pytest.raises(FundformError, match="2029/30 round of stream .core.*holds core: 2023/24, 2024/25, 2025/26; "
                       ".*primary_medical_care: 2023/24, 2024/25"):
        compute(bundled, resolve_formula("nhs-icb-2025", sets=('effective_years=["2029/30"]',)),
                RunParameters(level="icb", start_year="2029/30", years=1))


def test_icb_changes_shares_must_sum_to_one(data_copy):
    ch = pl.read_parquet(data_copy / "icb_changes.parquet")
    ch.with_columns(share=pl.when(pl.col("old_code") == "QJG").then(pl.col("share") * 0.5)
                    .otherwise(pl.col("share"))).write_parquet(data_copy / "icb_changes.parquet")
    with pytest.raises(Exception, match="QJG"):
        load_dataset(data_copy)
    shutil.rmtree(data_copy)


def test_the_documented_attribution_figures_hold(default_run):
    """docs/nhs-rounds.md: today's funding's distance from target, 2026/27, attributed by residents."""
    import re

    from fundform.base.paths import PROJECT_ROOT

    text = (PROJECT_ROOT / "docs" / "nhs-rounds.md").read_text()
    row = re.search(r"\| by residents x need per head \(after\) \| (.+) \|", text).group(1).split(" | ")
    a = default_run.allocations.filter(pl.col("financial_year") == "2026/27")
    v = (a["baseline"].cast(pl.Float64) / a["target_allocation"].cast(pl.Float64) - 1).to_numpy()
    q = np.quantile(v, [0, 0.05, 0.25, 0.5, 0.75, 0.95, 1])
    assert [f"{x:+.1%}" for x in q] == row[:7]
    assert f"{np.abs(v).mean():.1%}" == row[7]
    assert [str((v > 0.2).sum()), str((v < -0.2).sum())] == row[8:10]


def test_the_36_icbs_of_2026_are_drawn_on_the_maps(bundled):
    from fundform.outputs.maps import membership

    member = membership(bundled["area_lookup"], "icb", bundled.tables["icb_changes"])
    new = set(bundled["icb_changes"]["new_code"].to_list())
    assert len(new) == 36 and new <= set(member.values())  # every merged ICB has authorities to draw
    assert set(member.values()) <= new
    old = membership(bundled["area_lookup"], "icb")  # without the changes: the 42 ICBs of the lookup
    assert len(set(old.values())) == 42
