"""Named components that formula specs refer to by name.

A component is a small plain function, registered under a name with a decorator. Specs say
``transform = "ratio_power"``; the engine looks the name up here. Third-party packages add components without
editing the engine by exposing a module in the entry-point group ``fundform.components``; importing that module
runs its ``@indicator_transform(...)`` / ``@transition_rule(...)`` decorators.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from fundform.base.lazy import LazyModule
from fundform.formula.rules import Transition

if TYPE_CHECKING:
    import numpy as np
    import polars as pl
else:
    np = LazyModule("numpy")  # the rules compute with NumPy; registering them imports nothing

# (value, national value, elasticity) -> multiplier: numbers, or columns of each scenario's (need.axis)
IndicatorTransform = Callable[["pl.Expr", "pl.Expr | float", "pl.Expr | float"], "pl.Expr"]
TransitionRule = Callable[["RuleContext"], "np.ndarray"]

INDICATOR_TRANSFORMS: dict[str, IndicatorTransform] = {}
TRANSITION_RULES: dict[str, TransitionRule] = {}
# A rule's pace: f(d, value) -> further years for a distance from target d = allocation / target - 1 to come within
# `tolerance` of target at the rule's own pace (targets growing like allocations), NaN where it never does.
# `value(name)` is the rule's number, or each scenario's ((S, 1) arrays) in a sweep. A rule without one: NaN.
# A rule's number by name: a float, or each scenario's ((S, 1) array)
RuleValue = Callable[[str], "float | np.ndarray"]
YearsToTarget = Callable[["np.ndarray", RuleValue, Transition, float], "np.ndarray"]
YEARS_TO_TARGET: dict[str, YearsToTarget] = {}
# Rules whose unconstrained allocation never reads B (today's funding uprated): a sweep that keeps no detail skips
# computing it for them. Any other rule (a plugin's included) is given B.
IGNORES_BASELINE: set[str] = set()
# Each component's definition as an equation, stated beside its code (the method documents print these; a test
# evaluates each equation against the function). Symbols: for a transform, x the area's value, X the
# population-weighted national value, e the elasticity, m the multiplier; for a rule, A the area's allocation last
# year, G its growth factor this year, T its target this year, B today's funding uprated to this year, k the year of
# the settlement (1 = first), u the unconstrained allocation, c an area's convergence percentage.
EQUATIONS: dict[str, str] = {}
_plugins_loaded = False


def indicator_transform(name: str, equation: str | None = None) -> Callable[[IndicatorTransform], IndicatorTransform]:
    """Register f(value, national, elasticity) -> multiplier expression (with its equation, for the method)."""

    def register(f: IndicatorTransform) -> IndicatorTransform:
        INDICATOR_TRANSFORMS[name] = f
        if equation:
            EQUATIONS[name] = equation
        return f

    return register


def transition_rule(name: str, equation: str | None = None, years_to_target: YearsToTarget | None = None,
                    reads_baseline: bool = True) -> Callable[[TransitionRule], TransitionRule]:
    """Register f(ctx: RuleContext) -> this year's unconstrained allocation (float pence, last axis = areas), with
    its equation (for the method documents) and its pace (years to target), each beside the rule's code."""

    def register(f: TransitionRule) -> TransitionRule:
        TRANSITION_RULES[name] = f
        if equation:
            EQUATIONS[name] = equation
        if years_to_target is not None:
            YEARS_TO_TARGET[name] = years_to_target
        if not reads_baseline:
            IGNORES_BASELINE.add(name)
        return f

    return register


def load_plugins() -> None:
    global _plugins_loaded
    if _plugins_loaded:
        return
    for ep in entry_points(group="fundform.components"):
        ep.load()
    _plugins_loaded = True


@indicator_transform("ratio_power", "m = (x / X) ^ e")
def ratio_power(value: pl.Expr, national: pl.Expr | float, elasticity: pl.Expr | float) -> pl.Expr:
    """(value / national value) ** elasticity: a constant-elasticity multiplier, 1 at the national value."""
    return (value / national).pow(elasticity)


@indicator_transform("ratio_linear", "m = 1 + e * (x / X - 1)")
def ratio_linear(value: pl.Expr, national: pl.Expr | float, elasticity: pl.Expr | float) -> pl.Expr:
    """1 + elasticity x (value / national value - 1): NHS England's style of weighted adjustment."""
    return 1.0 + elasticity * (value / national - 1.0)


@dataclass(frozen=True)
class RuleContext:
    """What a transition rule sees for one year. Arrays are float pence, last axis = areas (any leading axes are
    scenarios). `growth` is how much last year's allocation grows before convergence: this year's total over last
    year's (uniform), or each area's own base growth where the version supplies one."""

    previous: np.ndarray
    target: np.ndarray
    baseline: np.ndarray
    growth: np.ndarray
    year: int  # 1 for the first year of the settlement
    rule: Transition
    values: dict[str, np.ndarray] | None = None  # per-scenario parameter arrays (a sweep), overriding the rule's own values
    given: np.ndarray | None = None  # each area's convergence where the rule takes it as given (given_convergence)

    def value(self, name: str) -> float | np.ndarray:
        """A rule parameter: the sweep's array for it (one value per scenario) or the rule's own number."""
        if self.values and name in self.values:
            return self.values[name]
        return getattr(self.rule, name).value


def _convergence_years(d: np.ndarray, value: RuleValue, rule: Transition, tolerance: float) -> np.ndarray:
    """`0` if already there, else `ceil(log(0.001 / |d|) / log(1 - f))` (`d = A/T - 1`, `f` = gap_closed_per_year:
    the gap shrinks by 1 - f a year); 1 if `f >= 1`; empty if `f = 0`."""
    f = np.asarray(value("gap_closed_per_year"), dtype=np.float64)
    done = np.abs(d) <= tolerance
    with np.errstate(divide="ignore", invalid="ignore"):
        n = np.ceil(np.log(tolerance / np.abs(d)) / np.log(1.0 - np.minimum(f, 1.0)))
    return np.where(done, 0.0, np.where(f >= 1, 1.0, np.where(f <= 0, np.nan, n)))


@transition_rule("convergence", "u = A*G + f * (T - A*G)    (f = gap_closed_per_year)", _convergence_years,
                 reads_baseline=False)
def convergence(ctx: RuleContext) -> np.ndarray:
    """Uniform growth of last year's allocation, plus a fixed fraction of the remaining gap to target.

    previous x growth sums to this year's total; targets sum to it by construction; so the result does too
    (budget neutral before any floor or ceiling)."""
    grown = ctx.previous * ctx.growth
    return grown + ctx.value("gap_closed_per_year") * (ctx.target - grown)


def nhs_convergence_adjustment(dft: np.ndarray, rule: Transition, ctx: RuleContext | None = None) -> np.ndarray:
    """NHS England's convergence percentage for a distance from target d = (allocation - target) / target measured
    after base growth: below target, a fraction of the gap capped at max_gain; above target, a fraction of the way
    to target (reduction_of "d/(1+d)": d / (1 + d) lands on it) or of d itself (reduction_of "d"), capped at
    max_reduction."""
    return _adjustment(dft, rule, ctx.value if ctx is not None else (lambda name: getattr(rule, name).value))


def _nhs_years(d: np.ndarray, value: RuleValue, rule: Transition, tolerance: float) -> np.ndarray:
    """the distance simulated year by year, `d <- (1 + d) * (1 + c(d)) - 1` with the rule's `c` (at most 200 years;
    empty beyond)."""
    years = np.where(np.abs(d) <= tolerance, 0.0, np.nan)
    for k in range(1, 201):  # bounded, vectorised over scenarios and areas
        d = (1.0 + d) * (1.0 + _adjustment(d, rule, value)) - 1.0
        years = np.where(np.isnan(years) & (np.abs(d) <= tolerance), float(k), years)
        if not np.isnan(years).any():
            break
    return years


def _adjustment(dft: np.ndarray, rule: Transition, v: RuleValue) -> np.ndarray:
    gain = np.minimum(v("gain_gap_closed") * np.maximum(-dft, 0.0), v("max_gain"))
    over = np.maximum(dft, 0.0)
    cut = np.minimum(v("reduction_gap_closed") * (over / (1.0 + over) if getattr(rule, "reduction_of", None) == "d/(1+d)" else over),
                     v("max_reduction"))
    return np.where(dft < 0, gain, -cut)


def combined(grown: np.ndarray, ctx: RuleContext, c: np.ndarray) -> np.ndarray:
    """The allocation after convergence c, as the rule declares them combined: A*G*(1 + c) (multiplicative) or
    A*(G + c) (additive: the sheet's allocation = baseline x (1 + base growth + convergence))."""
    if getattr(ctx.rule, "combine", "multiplicative") == "additive":
        return ctx.previous * (ctx.growth + c)
    return grown * (1.0 + c)


@transition_rule("nhs_convergence", "d = A*G / T - 1 (0 where T = 0);  c = min(gain_gap_closed * (-d), max_gain) if d < 0,"
                 " else -min(reduction_gap_closed * r(d), max_reduction), r(d) = d / (1 + d) or d (reduction_of);"
                 "  u = A*G * (1 + c) (combine multiplicative) or A * (G + c) (additive)", _nhs_years,
                 reads_baseline=False)
def nhs_convergence(ctx: RuleContext) -> np.ndarray:
    """Base growth, then a convergence percentage that depends on the distance from target (see above)."""
    grown = ctx.previous * ctx.growth
    with np.errstate(divide="ignore", invalid="ignore"):
        dft = np.where(ctx.target > 0, grown / ctx.target - 1.0, 0.0)
    return combined(grown, ctx, nhs_convergence_adjustment(dft, ctx.rule, ctx))


def _no_pace(d: np.ndarray, value: RuleValue, rule: Transition, tolerance: float) -> np.ndarray:
    """`0` if already there, else empty (the rule does not move an area toward its target)."""
    return np.where(np.abs(d) <= tolerance, 0.0, np.nan)


@transition_rule("given_convergence", "c = the area's given convergence (the round's published column, or its NHS "
                 "region's or its own stated value);  u = A*G * (1 + c) (combine multiplicative) or A * (G + c) "
                 "(additive)", _no_pace, reads_baseline=False)
def given_convergence(ctx: RuleContext) -> np.ndarray:
    """Base growth and a convergence percentage given per area, not computed from a target."""
    if ctx.given is None:
        raise ValueError("given_convergence needs each area's convergence (ctx.given)")
    return combined(ctx.previous * ctx.growth, ctx, ctx.given)


@transition_rule("uniform", "u = A*G  (no convergence)", _no_pace, reads_baseline=False)
def uniform(ctx: RuleContext) -> np.ndarray:
    """Every area's allocation grows by its base growth: no convergence toward targets."""
    return ctx.previous * ctx.growth


def _phasing_years(d: np.ndarray, value: RuleValue, rule: Transition, tolerance: float) -> np.ndarray:
    """`0` if already there, else empty (phasing ends at target in its last year; beyond it no pace applies)."""
    return np.where(np.abs(d) <= tolerance, 0.0, np.nan)


@transition_rule("phasing", "w = min(k / N, 1)  (N = phasing_years);  u = (1 - w) * B + w * T", _phasing_years)
def phasing(ctx: RuleContext) -> np.ndarray:
    """A straight-line blend from today's funding (uprated) to target: after k of N years, k/N of the way (the Fair
    Funding Review's thirds are N = 3)."""
    w = np.minimum(ctx.year / np.asarray(ctx.value("phasing_years")), 1.0)
    return (1.0 - w) * ctx.baseline + w * ctx.target
