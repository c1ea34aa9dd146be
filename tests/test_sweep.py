"""Sweeps compute the same numbers as direct runs, all scenarios at once."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fundform.base.errors import FundformError
from fundform.formula.scenario import resolve_formula
from fundform.studies.pipeline import RunParameters, compute
from fundform.studies.sweeps import parse_parameters, run_sweep

PARAMS = RunParameters(level="region", years=3)


def direct(bundled, sets, params=PARAMS, formula="fundform-needs") -> np.ndarray:
    r = compute(bundled, resolve_formula(formula, sets), params)
    return r.allocations.sort("year_index", "area_code")["grant"].to_numpy().reshape(params.years, -1)


def sweep_matching_direct_runs(bundled, formula, exprs):
    """A grid sweep whose every scenario is checked against a direct run with the same --set values."""
    names, values = parse_parameters(exprs, None, 0)
    res = run_sweep(bundled, formula, PARAMS, names, values)
    for s, row in enumerate(values):
        sets = [f"{n}={v}" for n, v in zip(names, row)]
        assert np.abs(res.grants[s] - direct(bundled, sets, formula=formula.spec.id)).max() <= 1, sets  # to the penny
    return res, values


def test_each_scenario_equals_a_direct_run_with_its_parameters(bundled, needs_formula):
    sweep_matching_direct_runs(bundled, needs_formula, [
        "need.indicators.deprivation.elasticity=0.1,0.4", "transition.floor=-0.02,0.005",
        "local_tax.equalisation=0.5,1.0"])


def test_age_weights_and_multiplier_bounds_sweep_like_direct_runs(bundled, needs_formula):
    # the weights are the most debated numbers in a needs formula: each swept band weight and multiplier cap gives
    # what `fundform run --set` gives with the same values
    res, values = sweep_matching_direct_runs(bundled, needs_formula, [
        "need.age_cost_curve.bands.85-90.weight=4.0,9.0", "need.age_cost_curve.bands.0-4.weight=1.0,2.0",
        "need.indicators.deprivation.max_multiplier=1.1,1.4"])
    # a heavier oldest band moves money toward the oldest region (the South West), away from London
    older = {tuple(r): s for s, r in enumerate(values)}
    light, heavy = res.grants[older[(4.0, 1.0, 1.4)]], res.grants[older[(9.0, 1.0, 1.4)]]
    codes = res.stats.filter(pl.col("year_index") == 1).sort("area_code")["area_code"].to_list()
    assert heavy[-1, codes.index("E12000009")] > light[-1, codes.index("E12000009")]
    assert heavy[-1, codes.index("E12000007")] < light[-1, codes.index("E12000007")]


def test_stream_versions_sweep_each_stream_like_direct_runs(bundled):
    # hdc-2021: four streams, each with its own control total; the adult social care stream has its own need,
    # the others the version's. A version-level weight moves the streams that share it, a stream's own weight
    # only its stream, and the pooled grant of every scenario is what `fundform run --set` gives.
    hdc = resolve_formula("hdc-2021")
    res, values = sweep_matching_direct_runs(bundled, hdc, [
        "need.indicators.deprivation.elasticity=0.1,0.4",
        "streams.adult_social_care.need.age_cost_curve.bands.85-90.weight=20,50",
        "transition.floor=-0.01,0.0", "control_total.real_growth=0.0,0.03"])  # the other streams follow nhs_core
    assert res.grants.shape == (len(values), PARAMS.years, 9)


def test_an_nhs_round_sweeps_its_pace_of_change_like_direct_runs(bundled):
    # nhs-icb-2024: published baselines and targets stay the round's own; the convergence caps vary
    params = RunParameters(level="icb", start_year="2024/25", years=1)
    names, values = parse_parameters(["transition.max_gain=0.001,0.002", "transition.max_reduction=0.005,0.0136",
                                      "transition.gain_gap_closed=0.05,0.1"], None, 0)
    res = run_sweep(bundled, resolve_formula("nhs-icb-2024"), params, names, values)
    assert res.grants.shape == (8, 1, 42)
    for s, row in enumerate(values):
        sets = [f"{n}={float(v)!r}" for n, v in zip(names, row)]
        assert np.abs(res.grants[s] - direct(bundled, sets, params, "nhs-icb-2024")).max() <= 1, sets
    # a deeper cut for ICBs over target moves money away from them: never more for anyone over target
    deep, shallow = res.grants[values[:, 1] == 0.0136], res.grants[values[:, 1] == 0.005]
    assert (deep.sum(axis=(1, 2)) <= shallow.sum(axis=(1, 2))).all()


def test_median_of_a_sweep_is_the_run_at_the_median_parameter(bundled, needs_formula):
    names, values = parse_parameters(["control_total.real_growth=0.0,0.01,0.02,0.03,0.04"], None, 0)
    res = run_sweep(bundled, needs_formula, PARAMS, names, values)
    med = direct(bundled, ["control_total.real_growth=0.02"])
    got = (res.stats.sort("year_index", "area_code")["grant_median"].to_numpy() * 100).reshape(PARAMS.years, -1)
    assert np.abs(got - med).max() <= 1
    assert res.sensitivity["parameter"][0] == "control_total.real_growth"


def test_random_draws_are_seeded_and_reproducible(bundled, needs_formula):
    exprs = ["need.indicators.preventable_mortality.elasticity=0.0:0.3", "transition.gap_closed_per_year=0.1:0.5"]
    a = run_sweep(bundled, needs_formula, PARAMS, *parse_parameters(exprs, 50, 7))
    b = run_sweep(bundled, needs_formula, PARAMS, *parse_parameters(exprs, 50, 7))
    c = run_sweep(bundled, needs_formula, PARAMS, *parse_parameters(exprs, 50, 8))
    assert (a.grants == b.grants).all() and a.stats.equals(b.stats)
    assert not (a.grants == c.grants).all()
    s = a.stats
    assert ((s["grant_min"] <= s["grant_p5"]) & (s["grant_p5"] <= s["grant_median"])
            & (s["grant_median"] <= s["grant_p95"]) & (s["grant_p95"] <= s["grant_max"])).all()
    assert ((s["at_floor_share"] >= 0) & (s["at_floor_share"] <= 1)).all()


@pytest.mark.parametrize("exprs, draws, formula, message", [
    (["need.age_cost_curve=1:2"], 5, "fundform-needs", "not a sweepable parameter"),
    (["transition.floor=-0.01:0", "control_total.real_growth=0.01,0.02"], 5, "fundform-needs", "mix of ranges"),
    (["transition.floor=-0.01:0"], None, "fundform-needs", "need --draws"),
    (["need.indicators.poverty.elasticity=0:1"], 5, "fundform-needs", "no indicator 'poverty'"),
    (["need.age_cost_curve.bands.85-89.weight=1:2"], 5, "fundform-needs", "no age band '85-89'"),
    (["need.indicators.preventable_mortality.min_multiplier=0.8:0.9"], 5, "fundform-needs",
     "indicator preventable_mortality of fundform-needs has no min_multiplier to vary"),
    (["need.age_cost_curve.bands.0-4.weight=-1:2"], 50, "fundform-needs", "must be above 0"),
    (["need.indicators.deprivation.min_multiplier=1.2:1.6", "need.indicators.deprivation.max_multiplier=1.0:1.3"],
     50, "fundform-needs", "is above its max_multiplier"),
    (["control_total.real_growth=0:0.02"], 5, "nhs-icb-2024", "vary the pace of change"),
    (["need.indicators.deprivation.elasticity=0:1"], 5, "nhs-icb-2024", "practice weighted populations"),
    (["transition.gap_closed_per_year=0:1"], 5, "nhs-icb-2024", "nhs_convergence rule has no gap_closed_per_year"),
    (["streams.mental_health.real_growth=0:0.02"], 5, "hdc-2021", "no stream 'mental_health'"),
    (["streams.nhs_core.need.indicators.deprivation.elasticity=0:1"], 5, "hdc-2021",
     "stream nhs_core takes this from the version; vary need.indicators.deprivation.elasticity"),
    (["streams.public_health.need.indicators.deprivation.elasticity=0:1"], 5, "hdc-2021",
     "no indicator 'deprivation' here"),
    (["streams.nhs_core.local_tax.equalisation=0:1"], 5, "hdc-2021", "not a sweepable parameter"),
])
def test_sweep_errors(bundled, exprs, draws, formula, message):
    with pytest.raises(FundformError, match=message):
        names, values = parse_parameters(exprs, draws, 0)
        run_sweep(bundled, resolve_formula(formula), PARAMS, names, values)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(formula=st.sampled_from(["fundform-needs", "hdc-2021"]), seed=st.integers(0, 2**31 - 1))
def test_random_draws_of_any_sweepable_kind_match_direct_runs(bundled, formula, seed):
    # a draw mixing a need weight, an age band, a multiplier cap, the pace and the floor: whatever the values, the
    # scenario axis gives what the run's own code path gives
    exprs = ["need.indicators.deprivation.elasticity=0.0:0.6", "need.age_cost_curve.bands.75-84.weight=2.0:6.0",
             "need.indicators.deprivation.max_multiplier=1.1:1.8", "transition.gap_closed_per_year=0.05:0.9",
             "transition.floor=-0.03:0.005"]
    names, values = parse_parameters(exprs, 2, seed)
    res = run_sweep(bundled, resolve_formula(formula), PARAMS, names, values)
    for s, row in enumerate(values):
        sets = [f"{n}={float(v)!r}" for n, v in zip(names, row)]
        assert np.abs(res.grants[s] - direct(bundled, sets, formula=formula)).max() <= 1, sets


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(formula=st.sampled_from(["nhs-icb-2025", "nhs-icb-2026", "localis-2016", "reform-2017"]),
       seed=st.integers(0, 2**31 - 1))
def test_random_draws_of_every_other_version_match_direct_runs(bundled, formula, seed):
    """The rest of the shipped versions, each on its own default run: the chained NHS rounds (whose dated sections
    keep their own numbers in their years, as --set leaves them), the merged-ICB round, the grant-basis localis
    version with its precept tied to need, and reform's composite index."""
    from fundform.formula.spec import run_defaults

    spec = resolve_formula(formula).spec
    level, start, years = run_defaults(spec)
    params = RunParameters(level=level, start_year=start, years=years)
    exprs = {"nhs-icb-2025": ["transition.max_gain=0.0005:0.004", "transition.gain_gap_closed=0.02:0.3"],
             "nhs-icb-2026": ["transition.max_reduction=0.001:0.01", "transition.reduction_gap_closed=0.05:0.5"],
             "localis-2016": ["transition.floor=-0.02:0.0", "local_tax.equalisation=0.2:1.0"],
             "reform-2017": ["need.indicators.deprivation.elasticity=0.1:0.5", "transition.gap_closed_per_year=0.1:0.6"],
             }[formula]
    names, values = parse_parameters(exprs, 2, seed)
    res = run_sweep(bundled, resolve_formula(formula), params, names, values)
    for s, row in enumerate(values):
        sets = [f"{n}={float(v)!r}" for n, v in zip(names, row)]
        assert np.abs(res.grants[s] - direct(bundled, sets, params, formula)).max() <= 1, (formula, sets)


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**31 - 1))
def test_dated_numbers_sweep_in_their_years_like_direct_runs(bundled, seed):
    """nhs-icb-2025 dates its 2024/25 and 2025/26 paces of change. Sweeping the 2025/26 round's own numbers
    (years.2025/26.transition.*) and the undated 2023/24 one together: each scenario is what `--set` of the same
    paths gives, the dated numbers moving only their own year."""
    from fundform.formula.spec import run_defaults

    spec = resolve_formula("nhs-icb-2025").spec
    level, start, years = run_defaults(spec)
    params = RunParameters(level=level, start_year=start, years=years)
    exprs = ["years.2025/26.transition.gain_gap_closed=0.05:0.6", "years.2025/26.transition.max_gain=0.001:0.02",
             "transition.max_gain=0.0005:0.004"]
    names, values = parse_parameters(exprs, 2, seed)
    res = run_sweep(bundled, resolve_formula("nhs-icb-2025"), params, names, values)
    base = direct(bundled, [], params, "nhs-icb-2025")
    for s, row in enumerate(values):
        sets = [f"{n}={float(v)!r}" for n, v in zip(names, row)]
        assert np.abs(res.grants[s] - direct(bundled, sets, params, "nhs-icb-2025")).max() <= 1, sets
    # only the 2025/26 numbers swept: 2023/24 and 2024/25 are the version's own, to the penny
    names, values = parse_parameters(exprs[:2], 2, seed)
    res = run_sweep(bundled, resolve_formula("nhs-icb-2025"), params, names, values)
    assert (res.grants[:, :2] == base[None, :2]).all()
    assert (res.grants[:, 2] != base[None, 2]).any()


@pytest.mark.parametrize("expr, message", [
    ("years.2024/25.transition.gain_gap_closed=0:1", "dates no such number"),
    ("years.2031/32.transition.max_gain=0:1", "dates no such number"),
])
def test_a_dated_number_the_version_does_not_date_is_refused(bundled, expr, message):
    from fundform.formula.spec import run_defaults

    spec = resolve_formula("nhs-icb-2025").spec
    level, start, years = run_defaults(spec)
    with pytest.raises(FundformError, match=message):
        run_sweep(bundled, resolve_formula("nhs-icb-2025"), RunParameters(level=level, start_year=start, years=years),
                  *parse_parameters([expr], 2, 0))


def test_chunks_threads_and_spilling_to_disk_change_no_figure(bundled, needs_formula, monkeypatch):
    """A sweep is settled in chunks on threads, and beyond KEEP scenarios its grants go to disk a chunk at a time:
    none of that may move a figure. The same 45 scenarios in one chunk, in chunks of 7 on two threads, and spilled
    give the same statistics; the spilled sweep keeps no per-scenario arrays and leaves no temporary files."""
    import tempfile
    from pathlib import Path

    import fundform.studies.sweeps as sw

    names, values = parse_parameters(["need.indicators.deprivation.elasticity=0.1:0.4", "transition.floor=-0.02:0.01",
                                      "local_tax.equalisation=0.5:1.0"], 45, 3)
    one = run_sweep(bundled, needs_formula, PARAMS, names, values, workers=1)
    monkeypatch.setattr(sw, "CHUNK", 7)
    chunked = run_sweep(bundled, needs_formula, PARAMS, names, values, workers=2)
    assert (chunked.grants == one.grants).all() and chunked.stats.equals(one.stats)
    before = set(Path(tempfile.gettempdir()).glob("fundform-sweep-*"))
    monkeypatch.setattr(sw, "KEEP", 10)
    spilled = run_sweep(bundled, needs_formula, PARAMS, names, values, workers=2)
    assert spilled.grants is None and spilled.stats.equals(one.stats) and spilled.scenarios.equals(one.scenarios)
    assert set(Path(tempfile.gettempdir()).glob("fundform-sweep-*")) == before
    # and the statistics are those of the grants: the median of each area and year across the 45 scenarios
    med = np.median(one.grants, axis=0).reshape(-1) / 100
    assert np.allclose(one.stats.sort("year_index", "area_code")["grant_median"].to_numpy(), med, rtol=0, atol=1e-9)


def test_a_settlement_keeps_its_derived_values_to_itself(bundled):
    """What the stages derive from the scenarios (the need shares streams reuse) lives on the settlement's own copy
    of them: the scenarios passed in, and the shared default axis (ONE), are never filled or cleared by a run."""
    import numpy as np

    from fundform.engine.outcome import evaluate
    from fundform.engine.params import RunParameters
    from fundform.engine.scenarios import ONE, Scenarios
    from fundform.formula.scenario import resolve_formula

    spec = resolve_formula("fundform-needs").spec
    scen = Scenarios(size=2, values={"need.indicators.deprivation.elasticity": np.array([0.2, 0.3])})
    a = evaluate(bundled, spec, RunParameters(years=1), scen)
    assert scen.derived == {} and ONE.derived == {}
    b = evaluate(bundled, spec, RunParameters(years=1), scen)
    assert (a.allocation == b.allocation).all() and (a.allocation[0] != a.allocation[1]).any()
