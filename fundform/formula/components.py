"""Named components that formula specs refer to by name.

A component is a small plain function, registered under a name with a decorator. Specs say
``transform = "ratio_power"``; the engine looks the name up here. Third-party packages add components without
editing the engine by exposing a module in the entry-point group ``fundform.components``; importing that module
runs its ``@indicator_transform(...)`` / ``@transition_rule(...)`` decorators.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points

import numpy as np
import polars as pl

IndicatorTransform = Callable[[pl.Expr, pl.Expr, float], pl.Expr]
TransitionRule = Callable[..., np.ndarray]

INDICATOR_TRANSFORMS: dict[str, IndicatorTransform] = {}
TRANSITION_RULES: dict[str, TransitionRule] = {}
_plugins_loaded = False


def indicator_transform(name: str) -> Callable[[IndicatorTransform], IndicatorTransform]:
    """Register f(value, national, elasticity) -> multiplier expression."""

    def register(f: IndicatorTransform) -> IndicatorTransform:
        INDICATOR_TRANSFORMS[name] = f
        return f

    return register


def transition_rule(name: str) -> Callable[[TransitionRule], TransitionRule]:
    """Register f(previous, target, growth, **params) -> unconstrained allocation (arrays, last axis = areas)."""

    def register(f: TransitionRule) -> TransitionRule:
        TRANSITION_RULES[name] = f
        return f

    return register


def load_plugins() -> None:
    global _plugins_loaded
    if _plugins_loaded:
        return
    for ep in entry_points(group="fundform.components"):
        ep.load()
    _plugins_loaded = True


@indicator_transform("ratio_power")
def ratio_power(value: pl.Expr, national: pl.Expr, elasticity: float) -> pl.Expr:
    """(value / national value) ** elasticity: a constant-elasticity multiplier, 1 at the national value."""
    return (value / national).pow(elasticity)


@indicator_transform("ratio_linear")
def ratio_linear(value: pl.Expr, national: pl.Expr, elasticity: float) -> pl.Expr:
    """1 + elasticity x (value / national value - 1): NHS England's style of weighted adjustment."""
    return 1.0 + elasticity * (value / national - 1.0)


@transition_rule("convergence")
def convergence(previous: np.ndarray, target: np.ndarray, growth: np.ndarray | float, *,
                gap_closed_per_year: float) -> np.ndarray:
    """Uniform growth of last year's allocation, plus a move of a fixed fraction of the remaining gap to target.

    previous * growth sums to this year's total when every area grows alike; target sums to it by construction;
    so the result sums to the total before any floor or ceiling (budget neutral)."""
    grown = previous * growth
    return grown + gap_closed_per_year * (target - grown)
