"""Every stream of a published NHS round as data (issue 25): primary medical care beside core in
`nhs_icb_allocations`, each round of it reproduced; one ICB allocation of both streams pooled to the penny; a new
round of either stream added with tables and a scenario file alone; the messages a user meets on the way."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from pydantic import ValidationError

from fundform.base.errors import FundformError, InfeasiblePolicy, InvalidInput, SpecError
from fundform.formula.scenario import resolve_formula
from fundform.formula.spec import Baseline
from fundform.inputs.dataset import load_dataset
from fundform.studies.pipeline import RunParameters, compute
from fundform.studies.runs import plan_run

BAR = 0.0005  # the bar: every ICB within 0.05% of its published recurrent allocation
PMC = "primary_medical_care"
OPC = "other_primary_care"
RC = "running_costs"


def published(bundled, stream: str) -> pl.DataFrame:
    return bundled["nhs_icb_allocations"].filter(pl.col("stream") == stream).select(
        financial_year="allocation_round", area_code="icb_code", pub="recurrent_allocation")


def stream_deviations(run, bundled, stream: str) -> pl.DataFrame:
    return (run.streams.filter(pl.col("stream") == stream)
            .join(published(bundled, stream), on=["financial_year", "area_code"])
            .with_columns(dev=pl.col("allocation").cast(pl.Float64) / 100 / pl.col("pub") - 1))


def test_the_bundled_rounds_are_keyed_by_stream(bundled):
    t = bundled["nhs_icb_allocations"]
    held = sorted(t.select("allocation_round", "stream").unique().iter_rows())
    assert held == [("2023/24", "core"), ("2023/24", OPC), ("2023/24", PMC), ("2024/25", "core"), ("2024/25", OPC),
                    ("2024/25", PMC), ("2024/25", RC), ("2025/26", "core"), ("2025/26", "pharmacy_optometry_dental"),
                    ("2025/26", RC), ("2025/26", "specialised")]
    assert t.group_by("allocation_round", "stream").len()["len"].to_list() == [42] * 11
    # the 2025/26 sheets' totals as NHS England publishes them (ICB rows; GBP): specialised 20,724,410k, pharmacy,
    # optometry and dental 6,082,848.10k (the sheet's England row adds NHS England's regional rows), running costs
    # version 1.4 873,991.62k
    total = lambda s: t.filter((pl.col("stream") == s) & (pl.col("allocation_round") == "2025/26"))[
        "recurrent_allocation"].sum()
    assert round(total("specialised")) == 20_724_410_000
    assert abs(total("pharmacy_optometry_dental") - 6_082_848_100) < 100
    assert abs(total(RC) - 873_991_617.84) < 1
    # primary medical care is a different stream of money: about GBP 10-11bn a year against core's ~GBP 100bn
    pmc = t.filter((pl.col("stream") == PMC) & (pl.col("allocation_round") == "2024/25"))["recurrent_allocation"]
    assert 10e9 < pmc.sum() < 12e9


@pytest.mark.parametrize("year", ["2023/24", "2024/25"])
def test_each_primary_medical_care_round_is_reproduced(bundled, year):
    run = compute(bundled, resolve_formula("nhs-icb-core-pmc"), RunParameters(level="icb", start_year=year, years=1))
    for stream in ("core", PMC):
        dev = stream_deviations(run, bundled, stream)
        assert dev.height == 42, stream
        assert dev["dev"].abs().max() < BAR, dev.sort(pl.col("dev").abs(), descending=True).head(3)
    assert run.reconciliation["holds"].all()


def test_the_chain_reproduces_both_streams_and_pools_them_to_the_penny(bundled):
    run = compute(bundled, resolve_formula("nhs-icb-core-pmc"), RunParameters(level="icb", start_year="2023/24",
                                                                              years=2))
    for stream in ("core", PMC):
        dev = stream_deviations(run, bundled, stream)
        assert dev.height == 84 and dev["dev"].abs().max() < BAR, stream
    pooled = run.streams.group_by("financial_year", "area_code").agg(pl.col("allocation").sum().alias("sum"))
    j = run.allocations.join(pooled, on=["financial_year", "area_code"])
    assert j.height == 84
    assert (j["allocation"] == j["sum"]).all()  # integer pence: the pool is the streams' sum exactly
    assert run.reconciliation["holds"].all()
    checks = set(run.reconciliation["check"])
    assert {f"stream {s}: its allocations = its own control total - released" for s in ("core", PMC)} <= checks


def test_the_core_stream_of_the_pool_equals_the_core_only_version(bundled):
    """Adding a stream changes nothing of another: core in the pooled version = nhs-icb-2024's 2024/25 round."""
    params = RunParameters(level="icb", start_year="2024/25", years=1)
    pooled = compute(bundled, resolve_formula("nhs-icb-core-pmc"), params).streams.filter(pl.col("stream") == "core")
    alone = compute(bundled, resolve_formula("nhs-icb-2024"), params).allocations
    j = pooled.join(alone, on=["financial_year", "area_code"], suffix="_alone")
    assert j.height == 42 and (j["allocation"] == j["allocation_alone"]).all()


def test_a_rule_that_gives_more_than_the_total_is_refused_with_the_way_forward(bundled):
    spec = resolve_formula("nhs-icb-core-pmc", sets=(f"streams.{PMC}.transition.over_total=refused",))
    with pytest.raises(InfeasiblePolicy, match=r"round 2024/25, stream primary_medical_care.*GBP [\d,.]+ more than "
                       r"the year's control total.*over_total = \"added\"") as e:
        compute(bundled, spec, RunParameters(level="icb", start_year="2023/24", years=2))
    assert "scenario" not in str(e.value)  # a run is not told about scenarios
    with pytest.raises(SpecError, match="not budget neutral"):
        resolve_formula("nhs-icb-core-pmc", sets=(f"streams.{PMC}.transition.budget_neutral=true",))


def test_a_missing_round_is_named_with_its_stream_and_the_rounds_held(data_copy):
    path = data_copy / "nhs_icb_allocations.parquet"
    t = pl.read_parquet(path)
    t.filter(~((pl.col("stream") == PMC) & (pl.col("allocation_round") == "2023/24"))).write_parquet(path)
    with pytest.raises(FundformError, match=r"no published round 2023/24 of stream 'primary_medical_care'.*holds "
                       r"core: 2023/24, 2024/25, 2025/26; .*primary_medical_care: 2024/25;"):
        compute(load_dataset(data_copy), resolve_formula("nhs-icb-core-pmc"),
                RunParameters(level="icb", start_year="2023/24", years=1))


def test_a_round_half_published_is_refused_by_row(data_copy):
    path = data_copy / "nhs_icb_allocations.parquet"
    t = pl.read_parquet(path)
    t.with_columns(recurrent_allocation=pl.when((pl.col("stream") == PMC) & (pl.col("icb_code") == "QRV"))
                   .then(None).otherwise(pl.col("recurrent_allocation"))).write_parquet(path)
    with pytest.raises(InvalidInput) as e:
        load_dataset(data_copy)
    text = str(e.value)
    assert "nhs_icb_allocations.parquet" in text and "recurrent_allocation" in text
    assert "primary_medical_care" in text and "for every ICB of the stream, or left empty" in text


def test_a_new_round_of_primary_medical_care_needs_only_its_rows_and_a_scenario(bundled, data_copy, tmp_path):
    """A user's next round: a 2025/26 primary medical care round whose outcomes are not yet published (targets,
    baselines and base growth only), appended to the tables, and a scenario file. The engine is checked against
    the convergence rule written out here."""
    prev = (bundled["nhs_icb_allocations"].filter((pl.col("stream") == PMC)
                                                  & (pl.col("allocation_round") == "2024/25")).sort("icb_code"))
    rng = np.random.default_rng(25)
    base = prev["recurrent_allocation"].to_numpy() * (1 + rng.uniform(0.0, 0.02, prev.height))  # restated
    growth = rng.uniform(0.03, 0.05, prev.height)
    fst = prev["fair_shares_target"].to_numpy() * 1.04
    rows = prev.select("stream", "icb_code", "icb_name", "nhs_region_code").with_columns(
        allocation_round=pl.lit("2025/26"), adjusted_recurrent_baseline=pl.Series(base),
        fair_shares_target=pl.Series(fst), distance_from_target=pl.lit(None, pl.Float64),
        base_growth=pl.Series(growth), convergence=pl.lit(None, pl.Float64),
        recurrent_allocation=pl.lit(None, pl.Float64), post_convergence_distance_from_target=pl.lit(None, pl.Float64))
    path = data_copy / "nhs_icb_allocations.parquet"
    table = pl.read_parquet(path)
    pl.concat([table, rows.select(table.columns).cast(table.schema)]).write_parquet(path)
    scenario = tmp_path / "pmc-2025.toml"
    scenario.write_text('''extends = "nhs-icb-core-pmc"
title = "Primary medical care 2025/26, a test round"
effective_years = ["2023/24", "2024/25", "2025/26"]

[indices.gdp_deflator]
growth = { "2022/23" = 0.02, "2023/24" = 0.02, "2024/25" = 0.02, "2025/26" = 0.02 }

[years."2025/26".need]
weights_year = "2025/26"

[years."2025/26".streams.core.transition]
gain_gap_closed = { value = 0.2, unit = "share", source = "assumption: a test round" }
max_gain = { value = 0.005, unit = "share", source = "assumption: a test round" }
reduction_gap_closed = { value = 0.2, unit = "share", source = "assumption: a test round" }
max_reduction = { value = 0.005, unit = "share", source = "assumption: a test round" }
reduction_of = "d"

[years."2025/26".streams.primary_medical_care.transition]
gain_gap_closed = { value = 0.3, unit = "share", source = "assumption: a test round" }
max_gain = { value = 0.008, unit = "share", source = "assumption: a test round" }
reduction_gap_closed = { value = 0.5, unit = "share", source = "assumption: a test round" }
max_reduction = { value = 0.003, unit = "share", source = "assumption: a test round" }
reduction_of = "d"
''')
    data = load_dataset(data_copy)
    run = compute(data, resolve_formula(str(scenario)), RunParameters(level="icb", start_year="2025/26", years=1))
    got = run.streams.filter(pl.col("stream") == PMC).sort("area_code")["allocation"].to_numpy()
    # the rule, by hand: targets are the published fair shares grown by each ICB's growth, d = A g / (T g) - 1
    d = base / fst - 1
    c = np.where(d < 0, np.minimum(0.3 * -d, 0.008), -np.minimum(0.5 * d, 0.003))
    expected = np.floor(np.round(base * 100) * (1 + growth) * (1 + c) + 0.5)
    assert np.abs(got - expected).max() <= 1  # pence: the engine rounds the grown baseline once more
    core = run.streams.filter(pl.col("stream") == "core")
    assert core.height == 42 and run.reconciliation["holds"].all()
    # the scenario's own title reaches the manifest
    plan = plan_run(str(scenario), data_copy, RunParameters(level="icb", start_year="2025/26", years=1))
    assert plan.core["formula"]["scenario_title"] == "Primary medical care 2025/26, a test round"


def test_baseline_components_belong_to_the_baseline_table(tmp_path):
    with pytest.raises(SpecError, match="round_stream"):
        resolve_formula("nhs-icb-2025", sets=('baseline.components=["nhs_core"]',))
    with pytest.raises(ValidationError, match="round_stream names a stream of nhs_icb_allocations"):
        Baseline(round_stream="core")
    bad = tmp_path / "mixed.toml"
    bad.write_text('extends = "nhs-icb-core-pmc"\n[[streams]]\nname = "core"\ntitle = "Core"\n'
                   'baseline_components = ["nhs_core"]\n')
    with pytest.raises(SpecError):
        resolve_formula(str(bad))


def test_a_dated_section_names_only_streams_of_the_version(tmp_path):
    bad = tmp_path / "dated.toml"
    bad.write_text('extends = "nhs-icb-core-pmc"\n[years."2024/25".streams.dental.transition]\n'
                   'max_gain = { value = 0.01, unit = "share", source = "assumption: a test" }\n')
    with pytest.raises(SpecError, match="names no stream of the version.*dental"):
        resolve_formula(str(bad))


def test_hdc_primary_care_starts_from_the_published_round(bundled):
    """hdc-2021's primary care stream starts from the baseline table's nhs_primary_medical, which is NHS England's
    published primary medical care recurrent allocation (the same rows as nhs_icb_allocations), attributed to
    authorities: it adds to the published England total, and the method document says where it comes from."""
    from pathlib import Path

    total = bundled["baseline"]["nhs_primary_medical"].sum()
    year = bundled["baseline"]["nhs_primary_medical_source_year"].unique().to_list()
    pub = bundled["nhs_icb_allocations"].filter((pl.col("stream") == PMC) & (pl.col("allocation_round") == year[0]))
    assert len(year) == 1 and pub.height == 42
    assert abs(total / pub["recurrent_allocation"].sum() - 1) < 1e-12
    doc = (Path(__file__).resolve().parents[1] / "docs/method/hdc-2021.md").read_text()
    assert "`baseline.nhs_primary_medical` is the `primary_medical_care` stream's `recurrent_allocation`" in doc


def test_the_run_summary_names_the_population_it_counts(bundled):
    """NHS versions count NHS England's registered patients, not residents: the summary's words say which."""
    from fundform.outputs.summary import population_words

    nhs = compute(bundled, resolve_formula("nhs-icb-core-pmc"), RunParameters(level="icb", start_year="2024/25",
                                                                              years=1))
    assert population_words(nhs) == ("registered patients", "per registered patient")
    needs = compute(bundled, resolve_formula("fundform-needs"), RunParameters(level="region", start_year="2026/27",
                                                                              years=1))
    assert population_words(needs) == ("residents", "per resident")
