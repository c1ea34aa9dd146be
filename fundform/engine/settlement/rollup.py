"""Money at a level as the sum of its members' to the penny.

What the transition does not touch (target allocations, today's funding uprated, the year before's allocation) is
apportioned once at the finest level a version computes at (lower-tier authorities; ICBs for a version that starts
from NHS England's published ICB rounds) and summed to the run's level, so a combined authority's target is its
boroughs' targets added up, never a separately rounded figure. An authority split between areas of the level (a
district in two ICBs) has its pence split by its lookup shares with `apportion`, so its parts add to its whole.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from fundform.base.errors import FundformError
from fundform.engine.settlement.money import apportion


@dataclass(frozen=True)
class Members:
    """The member areas (a finer level, in code order) of each area of a level (in code order)."""

    member: np.ndarray  # (pairs,) member index of each (area, member) pair, pairs sorted by area then member
    starts: np.ndarray  # (areas,) first pair of each area
    splits: tuple[tuple[int, np.ndarray, np.ndarray], ...]  # (member, its pairs, their shares): split members
    n_members: int


def members(pairs: pl.DataFrame, member_codes: list[str], codes: list[str]) -> Members:
    """From rows member_code, area_code, share (each member's shares summing to 1)."""
    mi = {c: i for i, c in enumerate(member_codes)}
    ai = {c: i for i, c in enumerate(codes)}
    p = pairs.filter(pl.col("member_code").is_in(member_codes)).sort("area_code", "member_code")
    missing = sorted(set(codes) - set(p["area_code"]))
    if missing:
        raise FundformError(f"areas with no members to sum: {missing[:10]}")
    area = np.array([ai[c] for c in p["area_code"]], dtype=np.int64)
    member = np.array([mi[c] for c in p["member_code"]], dtype=np.int64)
    share = p["share"].to_numpy()
    starts = np.searchsorted(area, np.arange(len(codes)))
    counts = np.bincount(member, minlength=len(member_codes))
    if (counts == 0).any():
        raise FundformError(f"members in no area of the level: {[member_codes[i] for i in np.flatnonzero(counts == 0)][:10]}")
    splits = tuple((int(m), np.flatnonzero(member == m), share[member == m]) for m in np.flatnonzero(counts > 1))
    return Members(member, starts, splits, len(member_codes))


def roll_pence(values: np.ndarray, m: Members) -> np.ndarray:
    """(..., members) int pence -> (..., areas) int pence: each member's whole pence to its area, a split member's
    pence apportioned by its shares. The areas add to the members' total exactly."""
    values = np.asarray(values, dtype=np.int64)
    parts = values[..., m.member]
    for member, pos, shares in m.splits:
        parts[..., pos] = apportion(values[..., member], np.broadcast_to(shares, values.shape[:-1] + shares.shape))
    return np.add.reduceat(parts, m.starts, axis=-1)
