"""Small policy cases a reviewer can check by hand (figures in pounds; the engine works in pence)."""

import numpy as np
import pytest

from fundform.engine.settlement.transition import BOUND_FLOOR, BOUND_NONE, run_transition
from fundform.formula.rules import make_rule as Transition

Q = lambda v, unit="share": {"value": v, "unit": unit, "source": "assumption: worked example"}
C = lambda v: Q(v, "change per year")  # (a floor or ceiling)
Y = lambda v: Q(v, "years")
P = 100  # pence per pound


def test_floor_is_paid_for_by_scaling_back_gains_not_by_breaking_it():
    # Three areas had 100, 100, 100. Next year the total is 300 again but the targets are 60, 120, 120.
    # Moving all the way (gap 1) would cut area A to 60; a floor of -10% holds it at 90, and the 30 that costs
    # comes out of B and C's gains equally (same headroom above their floors): each gets 105.
    rule = Transition(rule="convergence", gap_closed_per_year=Q(1.0), floor=C(-0.10))
    r = run_transition(np.array([100, 100, 100]) * P, np.array([[60, 120, 120]]) * P, np.array([300 * P]), rule)
    assert r.allocation[0].tolist() == [90 * P, 105 * P, 105 * P]
    assert r.bound[0].tolist() == [BOUND_FLOOR, BOUND_NONE, BOUND_NONE]
    # lambda = share of headroom above floors withdrawn: u - L = (30, 30) for B, C; 15 of 30 withdrawn = 0.5
    assert r.scale_back[0] == pytest.approx(0.5)


def test_convergence_closes_the_stated_fraction_of_the_gap():
    # Two areas at 100 with targets 80 and 120, flat total, a fifth of the gap closed: 96 and 104.
    rule = Transition(rule="convergence", gap_closed_per_year=Q(0.2))
    r = run_transition(np.array([100, 100]) * P, np.array([[80, 120]]) * P, np.array([200 * P]), rule)
    assert r.allocation[0].tolist() == [96 * P, 104 * P]


def test_a_ceiling_passes_its_excess_to_the_others():
    # Target moves B from 100 to 150 of a 300 total; a +20% ceiling stops B at 120 and A, C share the rest.
    rule = Transition(rule="convergence", gap_closed_per_year=Q(1.0), ceiling=C(0.20))
    r = run_transition(np.array([100, 100, 100]) * P, np.array([[75, 150, 75]]) * P, np.array([300 * P]), rule)
    assert r.allocation[0].tolist() == [90 * P, 120 * P, 90 * P]


def test_pennies_add_up_when_a_total_does_not_divide():
    # 100.00 split three ways under an immediate move to equal targets: 33.34, 33.33, 33.33 (largest remainder,
    # ties to the first area in code order)
    rule = Transition(rule="convergence", gap_closed_per_year=Q(1.0))
    r = run_transition(np.array([3_000, 3_000, 4_000]), np.array([[3_334, 3_333, 3_333]]), np.array([10_000]), rule)
    assert r.allocation[0].tolist() == [3_334, 3_333, 3_333]
    assert r.allocation.sum() == 10_000
