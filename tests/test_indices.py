"""Index series: a composite health index is the weighted growth of its parts, and drives the control total."""

import pytest

from fundform.base.errors import SpecError
from fundform.engine.settlement.control_total import index_growth
from fundform.formula.scenario import resolve_formula
from fundform.studies.pipeline import RunParameters, compute


def test_composite_growth_is_the_weighted_growth_of_its_parts():
    spec = resolve_formula("reform-2017").spec
    g = index_growth(spec.indices, "health_cost")
    assert g["2027/28"] == pytest.approx(0.6 * 0.03 + 0.4 * 0.02, abs=1e-15)


def test_reform_control_total_grows_with_the_health_index_only(bundled):
    r = compute(bundled, resolve_formula("reform-2017"), RunParameters(level="region"))
    ct = r.control_totals["control_total"].to_list()
    for a, b in zip(ct, ct[1:]):
        assert b / a == pytest.approx(1.026, abs=1e-12)  # 0.6 x 3% pay + 0.4 x 2% non-pay, no real growth
    assert (r.allocations["notional_local_tax"] == 0).all()  # no local-tax equalisation in this version


def test_composite_weights_must_sum_to_one():
    with pytest.raises(SpecError, match="composite weights must sum to 1"):
        resolve_formula("reform-2017", ["indices.health_cost.composite=[{index='nhs_pay', weight={value=0.7, "
                                        "unit='share', source='assumption: test of the weight check'}}, "
                                        "{index='non_pay', weight={value=0.4, unit='share', "
                                        "source='assumption: test of the weight check'}}]"])
