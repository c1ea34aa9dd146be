"""Moving areas from last year's allocation toward target, year by year, under floors and ceilings.

Each year:
  1. the transition rule (a named component, e.g. ``convergence``) gives each area an unconstrained allocation u
     that sums to the year's control total T;
  2. floors L and ceilings U on the year-on-year change are applied *together with* the total, exactly: we find
     the one scalar lambda with  sum_i clip(u_i - lambda * b_i, L_i, U_i) = T,  where b_i = u_i - L_i is an area's
     headroom above its floor (or u_i when there is no floor). A positive lambda scales every area's headroom back
     by the same fraction to pay for the floors; no area is pushed below its floor or above its ceiling, so the
     floors cannot be broken by the rescaling (the one-pass "apply floors then scale to the pot" error);
  3. money is rounded once: areas at a bound get exactly their bound in whole pence (floors rounded up, ceilings
     down), the others share the remaining pence by largest remainder, so the year adds to T to the penny.
Next year starts from this year's published (whole-pence) allocation. The loop over years is the recurrence the
policy defines (each year starts from the last); within a year everything is vectorised over areas, and over any
leading batch axis (scenarios).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fundform.base.errors import InfeasiblePolicy, present
from fundform.engine.settlement.money import largest_remainder
from fundform.formula.components import TRANSITION_RULES, YEARS_TO_TARGET, RuleContext
from fundform.formula.rules import Transition

BOUND_NONE, BOUND_FLOOR, BOUND_CEILING = 0, -1, 1
_BISECTION_STEPS = 200
_AT_BOUND_PENCE = 1e-3  # float noise: an area this close to its (whole-pence) bound is at it


TARGET_TOLERANCE = 0.001  # an area within 0.1% of its target has reached it, for years_to_target


@dataclass(frozen=True, kw_only=True)
class TransitionResult:
    previous: np.ndarray  # (years, areas) int64 pence: the allocation each year started from
    allocation: np.ndarray  # (years, areas) int64 pence
    bound: np.ndarray  # (years, areas) int8: -1 at floor, 1 at ceiling, 0 free
    unconstrained: np.ndarray  # (years, areas) float pence, before floors and ceilings
    scale_back: np.ndarray  # (years,) lambda: the share of headroom above floors withdrawn to pay for them
    guarantee: np.ndarray  # (years, areas) int64 pence paid on top of the total (guarantee funded as extra money)
    released: np.ndarray  # (years,) int64 pence of the control total left unallocated by a non-neutral rule
    years_to_target: np.ndarray  # (areas,) float: further years at the rule's pace to come within 0.1% of target


def floor_pence(previous: np.ndarray, rule: Transition, inflation: np.ndarray | float = 0.0,
                rate: np.ndarray | float | None = None) -> np.ndarray:
    """The least an area may get, in whole pence: rounded up, so a floor is never missed by a fraction of a penny.
    A real-terms floor also grows with the year's inflation. (The 1e-6 pence allowance absorbs float noise in
    previous x (1 + rate) for exact products.)"""
    real = (1.0 + np.asarray(inflation)) if rule.floor_basis == "real" else 1.0
    rate = present(rule.floor, "transition.floor").value if rate is None else rate
    return np.ceil(previous * (1.0 + rate) * real - 1e-6)


def ceiling_pence(previous: np.ndarray, rule: Transition, rate: np.ndarray | float | None = None) -> np.ndarray:
    """The most an area may get, in whole pence: rounded down."""
    rate = present(rule.ceiling, "transition.ceiling").value if rate is None else rate
    return np.floor(previous * (1.0 + rate) + 1e-6)


def solve_bounded(u: np.ndarray, lower: np.ndarray, upper: np.ndarray, total: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Exact lambda with sum clip(u - lambda*b, lower, upper) = total; arrays (..., areas), total (...).

    Returns (allocation in float pence, lambda). Raises InfeasiblePolicy when no lambda exists."""
    has_floor = np.isfinite(lower)
    b = np.where(has_floor, np.maximum(u - np.where(has_floor, lower, 0.0), 0.0), np.abs(u))
    total = np.asarray(total, dtype=np.float64)

    def s(lam: np.ndarray) -> np.ndarray:
        return np.clip(u - lam[..., None] * b, lower, upper).sum(axis=-1)

    lo_sum = np.where(b > 0, lower, np.clip(u, lower, upper))
    hi_sum = np.where(b > 0, upper, np.clip(u, lower, upper))
    if np.any(lo_sum.sum(axis=-1) > total):  # bounds and totals are whole pence: compare exactly
        short = (lo_sum.sum(axis=-1) - total).max()
        raise InfeasiblePolicy(f"the floors cost more than the control total: meeting every floor needs "
                               f"GBP {short / 100:,.2f} more than the total. Lower the floor or raise the total.")
    if np.any(hi_sum.sum(axis=-1) < total):
        raise InfeasiblePolicy("the ceilings stop the control total being spent: every area at its ceiling "
                               "still sums to less than the total. Raise the ceiling.")
    if not np.isfinite(upper).any():  # no ceilings: the sum is linear in lambda over [0, 1]; solve it directly
        at_lo = b <= 0
        free_b = np.where(at_lo, 0.0, b).sum(axis=-1)
        fixed = np.where(at_lo, np.clip(u, lower, upper), 0.0).sum(axis=-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            lam = np.where(free_b > 0, (np.where(at_lo, 0.0, u).sum(axis=-1) + fixed - total) / free_b, 0.0)
        return np.clip(u - lam[..., None] * b, lower, upper), lam
    lam_hi = np.ones(total.shape)
    lam_lo = -np.ones(total.shape)
    for _ in range(64):  # widen until the sum at lam_lo reaches the total (ceilings may need a large lift)
        need = s(lam_lo) < total
        if not need.any():
            break
        lam_lo = np.where(need, lam_lo * 2.0, lam_lo)
    for _ in range(_BISECTION_STEPS):
        mid = 0.5 * (lam_lo + lam_hi)
        too_much = s(mid) > total
        lam_lo = np.where(too_much, mid, lam_lo)
        lam_hi = np.where(too_much, lam_hi, mid)
        if np.all(lam_hi - lam_lo <= 1e-15 * np.maximum(1.0, np.abs(lam_hi))):
            break
    lam = 0.5 * (lam_lo + lam_hi)
    # exact finish on the active set: free areas take u - lam*b, bound areas their bound
    raw = u - lam[..., None] * b
    at_lo = raw <= lower
    at_hi = raw >= upper
    free = ~(at_lo | at_hi)
    fixed = np.where(at_lo, lower, 0.0) + np.where(at_hi, upper, 0.0)
    free_b = np.where(free, b, 0.0).sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        exact = (np.where(free, u, 0.0).sum(axis=-1) + fixed.sum(axis=-1) - total) / free_b
    lam = np.where(free_b > 0, exact, lam)
    return np.clip(u - lam[..., None] * b, lower, upper), lam


def round_to_pence(alloc: np.ndarray, lower: np.ndarray, upper: np.ndarray, total: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Whole pence summing to total: bound areas get exactly their bound, the rest share by largest remainder."""
    at_floor = np.isfinite(lower) & (alloc <= lower + _AT_BOUND_PENCE)
    ceilings = np.isfinite(upper).any()
    bound = np.where(at_floor, np.int8(BOUND_FLOOR), np.int8(BOUND_NONE))
    fixed = np.where(at_floor, lower, 0.0)
    if ceilings:  # most rules have none: skip the ceiling's passes over every area
        at_ceiling = ~at_floor & np.isfinite(upper) & (alloc >= upper - _AT_BOUND_PENCE)
        bound[at_ceiling] = BOUND_CEILING
        fixed = np.where(at_ceiling, upper, fixed)
    free = bound == BOUND_NONE
    remaining = np.asarray(total, dtype=np.int64) - fixed.sum(axis=-1).astype(np.int64)
    # the free areas share what the bound areas leave, by largest remainder; bound areas keep their bound exactly
    free_vals = np.where(free, alloc, 0.0)
    free_sum = free_vals.sum(axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        scaled = np.where(free_sum != 0, free_vals * (remaining[..., None] / free_sum), 0.0)
    if np.any((free.sum(axis=-1) == 0) & (remaining != 0)):
        raise InfeasiblePolicy("every area is held at a floor or ceiling and they do not add to the total")
    pennies = largest_remainder(scaled, remaining, eligible=free)
    out = np.where(free, pennies, fixed.astype(np.int64))
    return out, bound


def years_to_target(allocation: np.ndarray, target: np.ndarray, rule: Transition,
                    values: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """Further years needed, at the rule's own pace (its registered `years_to_target`, with each scenario's numbers in
    a sweep) and with targets growing like allocations, for each area to come within 0.1% of its target; NaN where
    the rule never gets it there (a zero pace, or a rule that states no pace)."""
    pace = YEARS_TO_TARGET.get(rule.rule)
    d = allocation / target - 1.0
    if pace is None:
        return np.full(d.shape, np.nan)

    def value(name: str) -> float | np.ndarray:
        return values[name] if values and name in values else getattr(rule, name).value

    return np.broadcast_to(pace(d, value, rule, TARGET_TOLERANCE), d.shape)


def unaffordable(u: np.ndarray, lower: np.ndarray, upper: np.ndarray, total: np.ndarray) -> np.ndarray:
    """(...) True where the bounds cannot meet the total: the floors cost more than it, or the ceilings cannot
    spend it (the cases `solve_bounded` refuses)."""
    has_floor = np.isfinite(lower)
    b = np.where(has_floor, np.maximum(u - np.where(has_floor, lower, 0.0), 0.0), np.abs(u))
    lo_sum = np.where(b > 0, lower, np.clip(u, lower, upper)).sum(axis=-1)
    hi_sum = np.where(b > 0, upper, np.clip(u, lower, upper)).sum(axis=-1)
    return (lo_sum > total) | (hi_sum < total)


def run_transition(start: np.ndarray, targets: np.ndarray, totals: np.ndarray, rule: Transition | list[Transition],
                   years: list[str] | None = None, *, baselines: np.ndarray | None = None,
                   growth: np.ndarray | None = None, inflation: np.ndarray | None = None,
                   values: dict[str, np.ndarray] | list[dict[str, np.ndarray]] | None = None, first_year: int = 1,
                   infeasible: np.ndarray | None = None, given: np.ndarray | None = None) -> TransitionResult:
    """Run the settlement year by year.

    start: (..., areas) int pence, the allocation of the year before the settlement; targets and baselines (today's
    funding uprated): (..., years, areas) int pence; totals: (..., years) int pence. growth: optional (..., years,
    areas) per-area base growth factors (default: this year's total over last year's allocations, the same for
    all); inflation: (years,) growth of the version's index, for real-terms floors. values: per-scenario arrays
    (..., 1) of rule parameters (gap_closed_per_year, floor, ceiling, ...) for a sweep. `rule` may be one rule per
    year (a version whose transition is dated); `first_year` numbers the first year (1 = the settlement's first). `infeasible`: a
    boolean array (...) collecting the scenarios whose floors or ceilings cannot meet a year's total (a design's
    candidates), settled without their bounds instead of stopping; None: such a scenario stops the run. `given`:
    (years, areas) each area's convergence where the rule takes it as given (given_convergence).

    Over 80 lines: the year loop carries each year's allocation into the next; its steps (rule, bounds, solve, round)
    are functions it calls in order."""
    n_years = targets.shape[-2]
    rules = list(rule) if isinstance(rule, list | tuple) else [rule] * n_years
    # a sweep's values, one dict for every year or one per year (a dated rule keeps its own values in its years)
    year_values = list(values) if isinstance(values, list | tuple) else [values] * n_years
    inflation = np.zeros(n_years) if inflation is None else np.asarray(inflation)
    prev = np.asarray(start, dtype=np.int64)
    start_f = prev.astype(np.float64)
    out: dict[str, np.ndarray] = {}  # each output (..., years, areas) or (..., years), filled year by year
    for t in range(n_years):
        rule = rules[t]
        fn = TRANSITION_RULES[rule.rule]
        total = totals[..., t]
        p = prev.astype(np.float64)
        g = (growth[..., t, :] if growth is not None else (total / prev.sum(axis=-1))[..., None])
        target = targets[..., t, :].astype(np.float64)
        ctx = RuleContext(previous=p, target=target,
                          baseline=target if baselines is None else baselines[..., t, :].astype(np.float64),
                          growth=np.asarray(g, dtype=np.float64),
                          year=t + first_year, rule=rule, values=year_values[t],
                          given=None if given is None else given[t])
        u = fn(ctx)
        v = year_values[t] or {}
        lower = (floor_pence(p, rule, inflation[t], v.get("floor")) if rule.floor is not None
                 else np.full_like(p, -np.inf))
        if rule.guarantee is not None and rule.guarantee.funding == "within_total":
            lower = np.maximum(lower, start_f)
        upper = ceiling_pence(p, rule, v.get("ceiling")) if rule.ceiling is not None else np.full_like(p, np.inf)
        label = years[t] if years else f"year {t + 1}"
        if rule.budget_neutral:
            if infeasible is not None:  # a design's candidates: mark the unaffordable ones, settle them unbounded
                bad = np.broadcast_to(unaffordable(u, lower, upper, np.asarray(total, dtype=np.float64)),
                                      infeasible.shape)
                if bad.any():
                    infeasible |= bad
                    lower = np.where(bad[..., None], -np.inf, lower)
                    upper = np.where(bad[..., None], np.inf, upper)
            try:
                alloc, lam = solve_bounded(u, lower, upper, total)
            except InfeasiblePolicy as e:
                raise InfeasiblePolicy(f"{label}: {e}") from None
            rounded, bound = round_to_pence(alloc, lower, upper, total)
        else:  # what the rule does not allocate is released from the total, reported, not spread
            clipped = np.clip(u, lower, upper)
            rounded = np.where(np.isfinite(lower) & (clipped <= lower), lower, np.where(
                np.isfinite(upper) & (clipped >= upper), upper, np.floor(clipped + 0.5))).astype(np.int64)
            bound = np.where(np.isfinite(lower) & (u <= lower), BOUND_FLOOR,
                             np.where(np.isfinite(upper) & (u >= upper), BOUND_CEILING, BOUND_NONE)).astype(np.int8)
            lam = np.zeros(np.shape(total))
            over = rounded.sum(axis=-1) > total
            if infeasible is not None and getattr(rule, "over_total", "refused") == "refused":
                infeasible |= np.broadcast_to(over, infeasible.shape)
            elif np.any(over) and getattr(rule, "over_total", "refused") == "refused":
                excess = np.max(np.asarray(rounded.sum(axis=-1) - total)) / 100
                which = (f" (scenario(s) {', '.join(map(str, np.flatnonzero(over)[:10]))}"
                         f"{', ...' if over.sum() > 10 else ''})" if np.size(over) > 1 else "")
                raise InfeasiblePolicy(
                    f"{label}: the {rule.rule} rule, which is not budget neutral, allocates GBP {excess:,.2f} more "
                    f"than the year's control total{which}, and transition.over_total is \"refused\". NHS England's "
                    "rounds are not capped by the total: set transition.over_total = \"added\" to add what the rule "
                    "gives beyond it (reported as a negative release, released_by_transition_gbp), or set "
                    "budget_neutral = true to share the total exactly, or raise the total")
        guar = (np.maximum(start_f - rounded, 0).astype(np.int64)
                if rule.guarantee is not None and rule.guarantee.funding == "additional" else np.zeros_like(rounded))
        for k, by_area in (("prev", prev), ("alloc", rounded), ("bound", bound), ("uncons", u), ("guar", guar)):
            arr = np.asarray(by_area)
            if k not in out:
                out[k] = np.empty(arr.shape[:-1] + (n_years, arr.shape[-1]), dtype=arr.dtype)
            out[k][..., t, :] = arr
        for k, per_year in (("lam", lam), ("released", total - rounded.sum(axis=-1))):
            arr = np.asarray(per_year)
            if k not in out:
                out[k] = np.empty(arr.shape + (n_years,), dtype=np.float64 if k == "lam" else np.int64)
            out[k][..., t] = arr
        prev = rounded
    return TransitionResult(
        previous=out["prev"], allocation=out["alloc"], bound=out["bound"],
        unconstrained=out["uncons"], scale_back=out["lam"], guarantee=out["guar"],
        released=out["released"],
        years_to_target=years_to_target(prev.astype(np.float64), targets[..., -1, :].astype(np.float64), rules[-1],
                                        year_values[-1]),
    )
