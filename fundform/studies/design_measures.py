"""What a design's candidate is measured by, from the outcome of a chunk of candidates: each constraint's value
(it holds where the value is within the constraint's limit) and each objective's (a number to minimise), per
scenario of the outcome (fundform.engine.outcome)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np

from fundform.base.errors import FundformError, present
from fundform.studies.design_spec import Constraint, Objective

if TYPE_CHECKING:
    from fundform.engine.outcome import Outcome



def _year_index(fy: list[str], year: str | None, what: str) -> int:
    if year not in fy:
        raise FundformError(f"{what}: {year} is not a year of the run ({', '.join(fy)})")
    return fy.index(year)


def _years(fy: list[str], years: list[str] | Literal["all"], what: str) -> list[int]:
    return list(range(len(fy))) if years == "all" else [_year_index(fy, y, what) for y in years]


def changes(oc: Outcome, measure: str, terms: str) -> tuple[np.ndarray, list[int]]:
    """(S, years, areas) each year's change of an area's allocation (from the year before's, year 1 included) or
    grant (from the second year), in cash or real terms; and the years it covers."""
    fy = oc.financial_years
    if measure == "allocation":
        now, before, covered = oc.allocation, oc.previous, list(range(len(fy)))
    else:
        now, before, covered = oc.grant[:, 1:], oc.grant[:, :-1], list(range(1, len(fy)))
    with np.errstate(divide="ignore", invalid="ignore"):
        ch = np.where(before != 0, now / before - 1.0, 0.0)
    if terms == "real":
        g = np.array([oc.settled.growth.get(fy[t], 0.0) for t in covered])
        ch = (1.0 + ch) / (1.0 + g)[None, :, None] - 1.0
    return ch, covered


def turbulence(oc: Outcome, measure: str) -> tuple[np.ndarray, list[int]]:
    """(S, years covered) the share of each year's money that moves between areas: half the sum over areas of the
    change in each area's share of the total (allocation: year 1 against the year before's; grant: from the second
    year), and the years it covers."""
    fy = oc.financial_years
    if measure == "allocation":
        now, before, covered = oc.allocation, oc.previous, list(range(len(fy)))
    else:
        now, before, covered = oc.grant[:, 1:], oc.grant[:, :-1], list(range(1, len(fy)))
    now, before = now.astype(np.float64), before.astype(np.float64)
    share = now / now.sum(axis=-1, keepdims=True) - before / before.sum(axis=-1, keepdims=True)
    return 0.5 * np.abs(share).sum(axis=-1), covered


def constraint_values(c: Constraint, oc: Outcome) -> np.ndarray:
    """(S,) each candidate's value of the constraint's measure; it holds where value <= the constraint's limit."""
    fy = oc.financial_years
    if c.kind == "max_fall":
        ch, covered = changes(oc, c.measure, c.terms)
        keep = [i for i, t in enumerate(covered) if t in _years(fy, c.years, c.name)]
        if not keep:
            return np.zeros(oc.size)
        return -ch[:, keep, :].min(axis=(1, 2))  # the largest fall, as a positive share
    if c.kind == "turbulence":
        moved, covered = turbulence(oc, c.measure)
        keep = [i for i, t in enumerate(covered) if t in _years(fy, c.years, c.name)]
        return moved[:, keep].max(axis=1) if keep else np.zeros(oc.size)
    if c.kind == "within_target":
        t = _year_index(fy, c.year, c.name)
        d = np.sort(np.abs(oc.allocation[:, t, :] / oc.targets[:, t, :] - 1.0), axis=-1)[:, ::-1]
        return d[:, min(c.at_most, d.shape[1] - 1)] if c.at_most < d.shape[1] else np.zeros(oc.size)
    idx = _years(fy, c.years, c.name)
    if c.kind == "floor_cost":
        return oc.floor_cost[:, idx].max(axis=1) / 100
    if c.kind == "areas_at_floor":
        return oc.at_floor[:, idx, :].sum(axis=-1).max(axis=1).astype(np.float64)
    paid = (oc.allocation + oc.guarantee).sum(axis=-1)[:, idx]
    totals = np.sum([s.totals[:, 1:] for s in oc.settlements], axis=0)  # (S, years): the streams' control totals
    ct = np.stack([totals[:, t] for t in idx], axis=1)
    return np.abs(paid - ct).max(axis=1) / 100


def limit_of(c: Constraint) -> float:
    """The constraint's limit (its validation requires the one its kind reads)."""
    if c.kind in ("max_fall", "within_target", "turbulence"):
        return present(c.limit, f"{c.name}: limit")
    if c.kind == "floor_cost":
        return present(c.limit_gbp, f"{c.name}: limit_gbp")
    return float(c.at_most) if c.kind == "areas_at_floor" else (c.limit_gbp or 0.0)


def objective_values(o: Objective, oc: Outcome, free: dict[str, np.ndarray]) -> np.ndarray:
    """(S,) each candidate's objective, as a number to minimise (a maximised one negated)."""
    if o.kind == "maximise":
        return -free[present(o.parameter, f"{o.name}: parameter")]
    if o.kind == "minimise":
        return free[present(o.parameter, f"{o.name}: parameter")].copy()
    if o.kind == "max_distance":
        t = _year_index(oc.financial_years, o.year, o.name)
        return np.abs(oc.allocation[:, t, :] / oc.targets[:, t, :] - 1.0).max(axis=-1)
    if o.kind == "largest_real_loss":
        ch, _ = changes(oc, "allocation", "real")
        return np.maximum(-ch.min(axis=(1, 2)), 0.0)
    if o.kind == "floor_cost":
        return oc.floor_cost.sum(axis=1) / 100
    if o.kind == "turbulence":
        return turbulence(oc, "allocation")[0].sum(axis=1)
    ytt = oc.years_to_target
    return np.where(np.isnan(ytt), np.inf, ytt).max(axis=-1)


def objective_value_shown(o: Objective, v: float) -> float:
    return -v if o.kind == "maximise" else v
