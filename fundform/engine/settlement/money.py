"""Exact money. fundform carries money as integer pence (int64) and writes it as two-place decimal pounds.

Rounding happens once per published figure, with the largest-remainder method so that the parts add to the whole
to the penny. Ties in the remainder go to the earlier area in code order (areas are sorted by code), so the result
is deterministic.
"""

from __future__ import annotations

import numpy as np

from fundform.base.errors import FundformError


def round_half_up(x: np.ndarray | float) -> np.ndarray:
    """Round pence values to whole pence, halves away from zero (the accounting convention)."""
    x = np.asarray(x, dtype=np.float64)
    check_finite(x)
    return (np.sign(x) * np.floor(np.abs(x) + 0.5)).astype(np.int64)


PENCE_LIMIT = 2.0 ** 62  # int64 pence with headroom for sums


def check_finite(x: np.ndarray) -> None:
    """Money is never rounded from a NaN, an infinity or an amount beyond int64 pence: say so instead of casting
    garbage. Validation refuses the inputs that lead here; this is the last line, should a new path reach it."""
    if x.size == 0 or (x.min() >= -PENCE_LIMIT and x.max() <= PENCE_LIMIT):  # one pass each; a NaN fails both
        return
    bad = ~np.isfinite(x) | (np.abs(np.where(np.isfinite(x), x, 0.0)) > PENCE_LIMIT)
    if np.any(bad):
        raise FundformError(f"{int(bad.sum())} computed amount(s) are not finite pence (a division by zero or an "
                            "overflow from an input the checks let through): check the inputs for zeros or extreme "
                            "values, and report the dataset so the check can be added")


def largest_remainder(values: np.ndarray, total: np.ndarray | int, eligible: np.ndarray | None = None) -> np.ndarray:
    """Whole-pence parts of `values` (float pence, last axis = areas) that sum exactly to `total` (int pence).

    Each part is floor(value) or floor(value) + 1: the pennies left over go to the largest fractional parts. The
    float values must already sum to the total within a few pence (they do: they are shares of it). Entries where
    `eligible` is False keep floor(value) and never take a penny."""
    values = np.asarray(values, dtype=np.float64)
    check_finite(values)
    total = np.asarray(total, dtype=np.int64)
    floor = np.floor(values)
    base = floor.astype(np.int64)
    frac = np.subtract(values, floor, out=floor)  # the remainders, in the floor's place
    short = total - base.sum(axis=-1)
    size = values.shape[-1]
    n = size if eligible is None else np.asarray(eligible).sum(axis=-1)
    if np.any(short < 0) or np.any(short > n):
        raise ArithmeticError(f"largest remainder: parts are {short} pence from the total, more than one penny "
                              "per area: the values were not shares of the total")
    if eligible is not None:
        frac = np.where(eligible, frac, -1.0)
    # the `short` largest remainders get a penny; ties at the threshold go to the earlier areas (code order).
    # The threshold is the short-th largest remainder, from one ascending sort (not an argsort: the same result,
    # much faster on many rows); ineligible entries sort first and are never reached.
    asc = np.sort(frac, axis=-1)
    k = np.clip(size - short, 0, size - 1)[..., None]
    threshold = np.where(short[..., None] > 0, np.take_along_axis(asc, np.asarray(k, dtype=np.int64), axis=-1),
                         np.inf)
    give = frac >= threshold  # the usual case: every remainder tied at the threshold fits
    crowded = give.sum(axis=-1) > short  # rows where they do not: the earliest ties, in code order
    if crowded.any():
        f, th, sh = frac[crowded], threshold[crowded], short[crowded]
        above, ties = f > th, f == th
        room = sh[:, None] - above.sum(axis=-1, keepdims=True)
        give[crowded] = above | (ties & (np.cumsum(ties, axis=-1) <= room))
    base += give
    return base


def apportion(total: np.ndarray | int, weights: np.ndarray) -> np.ndarray:
    """Split whole pence `total` in proportion to `weights`, exactly: each part is floor(T x w / sum w), and the
    pennies still missing from T go one each to the largest remainders (ties to the earlier area in code order).
    The one rule every money split follows."""
    weights = np.asarray(weights, dtype=np.float64)
    s = weights.sum(axis=-1, keepdims=True)
    s = np.where(s == 0, 1.0, s)  # all-zero weights: a zero total splits into zeros (a non-zero one is an error)
    return largest_remainder(np.asarray(total, dtype=np.float64)[..., None] * weights / s, total)


def split_rounded(amounts: np.ndarray) -> np.ndarray:
    """Amounts in float pence (last axis = areas) as whole pence that add to their own total rounded half up:
    `apportion(round(sum of a), a)`, the published figure of a quantity computed per area (notional local tax, a
    yield, the grant in real terms)."""
    amounts = np.asarray(amounts, dtype=np.float64)
    return apportion(round_half_up(amounts.sum(axis=-1)), amounts)
