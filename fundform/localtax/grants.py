"""How local resources reach the grant: a run's local resources, and the negative-grant policy."""

from __future__ import annotations

import numpy as np

from fundform.formula.spec import FormulaSpec, LocalTax
from fundform.inputs.dataset import Dataset
from fundform.localtax.resources import local_resources
from fundform.need.frames import area_frame
from fundform.params import RunParameters
from fundform.settlement.transition import round_to_pence, solve_bounded


def run_local_resources(ref: Dataset, spec: FormulaSpec, params: RunParameters, fy: list[str]):
    """Local resources of a run (and of every scenario of a sweep): a precept tied to need reads each authority's
    need index from the first settlement year's data."""
    need_index = None
    if spec.local_tax.precept is not None and spec.local_tax.precept.rule == "tied_to_need" \
            and spec.need.method == "age_cost_curve":
        need_index = area_frame(ref, spec, "ltla").select("area_code", "need_index")
    return local_resources(ref, spec.local_tax, params.level, fy, need_index=need_index,
                           precept_file=params.precept_rates, bases_file=params.local_bases)


def negative_grant_policy(grant: np.ndarray, population: np.ndarray, rule: LocalTax) -> np.ndarray:
    """Grants after the version's negative-grant rule, still summing to the same total each year: a tariff leaves
    negative grants (the area pays in); a floor at zero or a minimum grant per head is met by scaling back every
    other area's grant above its floor, solved exactly as the transition floors are."""
    if rule.negative_grants == "tariff":
        return grant
    floor = (np.zeros_like(grant, dtype=np.float64) if rule.negative_grants == "floor_at_zero"
             else np.broadcast_to(np.ceil(rule.minimum_grant_per_head.value * 100 * population), grant.shape)
             .astype(np.float64))
    if not (grant < floor).any():
        return grant
    total = grant.sum(axis=1)
    alloc, _ = solve_bounded(grant.astype(np.float64), floor, np.full(grant.shape, np.inf), total)
    rounded, _ = round_to_pence(alloc, floor, np.full(grant.shape, np.inf), total)
    return rounded
