"""Properties of need and money that must hold for any inputs, checked with hypothesis."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fundform.base.errors import InfeasiblePolicy
from fundform.engine.settlement.money import apportion, largest_remainder
from fundform.engine.settlement.transition import BOUND_CEILING, BOUND_FLOOR, run_transition
from fundform.formula.rules import make_rule as Transition
from fundform.studies.pipeline import RunParameters, compute
from tests.conftest import synthetic_dataset

FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
Q = lambda v, unit="share": {"value": v, "unit": unit, "source": "assumption: test value for a property"}
C = lambda v: Q(v, "change per year")  # (a floor or ceiling)
Y = lambda v: Q(v, "years")


def shares(ds, formula, level="ltla"):
    return compute(ds, formula, RunParameters(level=level, years=1)).need.sort("area_code")["target_share"].to_numpy()


@FAST
@given(seed=st.integers(0, 10_000), k=st.floats(0.01, 1000))
def test_scaling_every_population_changes_no_share(needs_formula, seed, k):
    base = shares(synthetic_dataset(seed=seed), needs_formula)
    scaled = shares(synthetic_dataset(seed=seed, population_scale=k), needs_formula)
    np.testing.assert_allclose(scaled, base, rtol=1e-9, atol=0)
    assert abs(base.sum() - 1) < 1e-12


@FAST
@given(seed=st.integers(0, 10_000), area=st.integers(0, 5), rise=st.floats(0.01, 30))
def test_raising_one_areas_deprivation_never_lowers_its_share(needs_formula, seed, area, rise):
    imd = np.random.default_rng(seed).uniform(5, 45, 6)
    before = shares(synthetic_dataset(seed=seed, imd=imd), needs_formula)[area]
    higher = imd.copy()
    higher[area] += rise
    after = shares(synthetic_dataset(seed=seed, imd=higher), needs_formula)[area]
    assert after >= before * (1 - 1e-12)


@FAST
@given(seed=st.integers(0, 10_000), n=st.integers(2, 40), level=st.sampled_from(["ltla", "icb"]),
       years=st.integers(1, 5))
def test_money_reconciles_to_the_penny_for_random_inputs(needs_formula, seed, n, level, years):
    r = compute(synthetic_dataset(n_areas=n, seed=seed), needs_formula, RunParameters(level=level, years=years))
    assert r.reconciliation["holds"].all()
    per_year = r.allocations.group_by("financial_year").agg(pl.col("allocation").sum(), pl.col("control_total").first())
    assert (per_year["allocation"] == per_year["control_total"]).all()


# ---- the transition solver on its own: random baselines, targets and rules ----------------------------------

@st.composite
def settlement(draw):
    n = draw(st.integers(2, 30))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    start = rng.integers(10_000, 10**10, n)
    years = draw(st.integers(1, 5))
    growth = draw(st.floats(-0.02, 0.08))
    totals = (start.sum() * (1 + growth) ** np.arange(1, years + 1)).round().astype(np.int64)
    weights = rng.uniform(0.2, 5.0, n)
    targets = np.stack([apportion(t, weights) for t in totals])
    floor = draw(st.one_of(st.none(), st.floats(-0.05, 0.03)))
    ceiling = draw(st.one_of(st.none(), st.floats(0.04, 0.3)))
    gap = draw(st.floats(0, 1))
    return start, targets, totals, floor, ceiling, gap


@settings(max_examples=300, deadline=None)
@given(settlement())
def test_floors_and_ceilings_hold_and_totals_are_exact(case):
    start, targets, totals, floor, ceiling, gap = case
    rule = Transition(rule="convergence", gap_closed_per_year=Q(gap), floor=C(floor) if floor is not None else None,
                      ceiling=C(ceiling) if ceiling is not None else None)
    try:
        r = run_transition(start, targets, totals, rule)
    except InfeasiblePolicy:
        return  # covered by test_infeasible_floors_fail_instead_of_breaking
    assert (r.allocation.sum(axis=1) == totals).all()
    prev = r.previous.astype(float)
    if floor is not None:
        assert (r.allocation >= np.ceil(prev * (1 + floor) - 1e-6)).all()
    if ceiling is not None:
        assert (r.allocation <= np.floor(prev * (1 + ceiling) + 1e-6)).all()
    # an area reported at its floor gets exactly its floor
    at_floor = r.bound == BOUND_FLOOR
    assert (r.allocation[at_floor] == np.ceil(prev * (1 + (floor or 0)) - 1e-6)[at_floor]).all()
    assert not ((r.bound == BOUND_CEILING) & (ceiling is None)).any()


@settings(max_examples=200, deadline=None)
@given(settlement())
def test_immediate_move_without_bounds_is_proportional_to_target(case):
    start, targets, totals, *_ = case
    rule = Transition(rule="convergence", gap_closed_per_year=Q(1.0))
    r = run_transition(start, targets, totals, rule)
    assert (np.abs(r.allocation - targets) <= 1).all()
    assert (r.allocation.sum(axis=1) == totals).all()


def test_infeasible_floors_fail_instead_of_breaking():
    # three areas of 100 each, a total that falls to 270, and a floor of no cash cut: impossible
    start = np.array([10_000, 10_000, 10_000])
    rule = Transition(rule="convergence", gap_closed_per_year=Q(0.5), floor=C(0.0))
    with pytest.raises(InfeasiblePolicy, match="floors cost more than the control total"):
        run_transition(start, np.array([[9_000, 9_000, 9_000]]), np.array([27_000]), rule, ["2026/27"])


@given(st.lists(st.floats(0, 1e9), min_size=1, max_size=50))
def test_largest_remainder_parts_add_to_the_whole(xs):
    values = np.array(xs)
    total = int(np.round(values.sum()))
    parts = largest_remainder(values, total)
    assert parts.sum() == total
    assert (np.abs(parts - values) < 1 + 1e-6 * np.maximum(1, values)).all()
