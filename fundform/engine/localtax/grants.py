"""How local resources reach the grant, for every scenario at once: a run's local resources, the equalisation
degree each scenario applies, the grant-basis envelope, the notional local tax deducted, and the negative-grant
policy. A run is the case of one scenario that sets nothing."""

from __future__ import annotations

import numpy as np

from fundform.base.errors import present
from fundform.engine.localtax.resources import LocalResources, equalisation_degree, local_resources
from fundform.engine.need.frames import area_frame
from fundform.engine.params import RunParameters
from fundform.engine.scenarios import ONE, Scenarios
from fundform.engine.settlement.money import round_half_up, split_rounded
from fundform.engine.settlement.transition import round_to_pence, solve_bounded
from fundform.formula.spec import FormulaSpec, LocalTax, model_key
from fundform.inputs.dataset import Dataset


def run_local_resources(ref: Dataset, spec: FormulaSpec, params: RunParameters, fy: list[str]) -> LocalResources:
    """Local resources of a run (and of every scenario of a sweep): a precept tied to need reads each authority's
    need index from the first settlement year's data."""
    def compute() -> LocalResources:
        return _local_resources(ref, spec, params, fy)
    tied = spec.local_tax.precept is not None and spec.local_tax.precept.rule == "tied_to_need"
    return ref.memo(("local", model_key(spec.local_tax), model_key(spec.need) if tied else None, params.level,
                     tuple(fy), str(params.precept_rates), str(params.local_bases)), compute)


def _local_resources(ref: Dataset, spec: FormulaSpec, params: RunParameters, fy: list[str]) -> LocalResources:
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
             else np.broadcast_to(np.ceil(present(rule.minimum_grant_per_head, "local_tax.minimum_grant_per_head").value * 100 * population), grant.shape)
             .astype(np.float64))
    if not (grant < floor).any():
        return grant
    total = grant.sum(axis=-1)
    alloc, _ = solve_bounded(grant.astype(np.float64), floor, np.full(grant.shape, np.inf), total)
    rounded, _ = round_to_pence(alloc, floor, np.full(grant.shape, np.inf), total)
    return rounded


def scenario_degree(spec: FormulaSpec, n_years: int, scen: Scenarios = ONE) -> np.ndarray:
    """(S, years) the equalisation degree of each scenario, phased as the version says: the one source of the
    degree, for a run (one scenario that sets nothing: the version's own) and a sweep. Notional resources scale with
    the share of council tax for devolved services, so a scenario's share moves the degree by share / share0
    against the resources derived once at the version's share0."""
    lt = spec.local_tax
    if lt.rule == "none":
        return np.zeros((scen.size, n_years))
    e_path, s_path = "local_tax.equalisation", "local_tax.share_for_devolved_services"
    e = scen.get(spec, None, e_path, present(lt.equalisation, "local_tax.equalisation").value)
    share0 = present(lt.share_for_devolved_services, "local_tax.share_for_devolved_services").value
    share = scen.get(spec, None, s_path, share0)
    return equalisation_degree(lt, n_years, np.where(share == share0, e, e * share / share0))


def notional_pence(local: LocalResources, codes: list[str], fy: list[str], degree: np.ndarray) -> np.ndarray:
    """(S, years, areas) int pence: the notional local tax deducted, degree x notional resources, each year's
    figures split to the penny once (`split_rounded`)."""
    return split_rounded(degree[..., None] * local.array("notional_local_resources", codes, fy) * 100)


def grant_envelope(local: LocalResources, codes: list[str], fy: list[str], degree: np.ndarray) -> np.ndarray:
    """(S, years + 1) pence: what a version whose control total is the grant total adds to the total shared by
    need, the equalised local resources (the year before takes the first year's)."""
    n_full = local.array("notional_local_resources", codes, fy).sum(axis=1) * 100
    per_year = round_half_up(degree * n_full)
    return np.concatenate([per_year[:, :1], per_year], axis=1)


def grants(paid: np.ndarray, notional: np.ndarray, population: np.ndarray, rule: LocalTax) -> np.ndarray:
    """(S, years, areas) grants: what need and the transition pay less the notional local tax, after the
    negative-grant rule (each year still summing to its total)."""
    return negative_grant_policy(paid - notional, population, rule)
