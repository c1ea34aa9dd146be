"""Need, computed in one place: each lower-tier authority's need-weighted population, step by step, for every
scenario at once (arrays (scenarios, authorities)).

    age-weighted population  W_i = sum over bands b of w_b * P_b,i       (P_b,i: authority i's residents in band b)
    multiplier of indicator j  m_j,i = clip(transform_j(x_j,i, X_j, e_j), lo_j, hi_j)
    need-weighted population  N_i = W_i * m_1,i * m_2,i * ...             (in the version's order)

The Polars side prepares the data once per year and need model (`NeedInputs`: band populations and indicator values
as exact sums, each indicator's population-weighted national value); the arithmetic above is done here alone, with
the weights and multiplier numbers of each scenario along the leading axis. A run is one scenario with the version's
own numbers: the need frames (`need.frames`) and the waterfall's need steps (`waterfall`) read this computation, and
a sweep varying a need number reads the same one with its scenarios. The band sum runs band by band and the product
indicator by indicator (element-wise, in a fixed order), so the same inputs give the same bits on any machine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from fundform.base.errors import FundformError, InternalError
from fundform.base.numeric import fixed_sum
from fundform.engine.context import Part, Settle
from fundform.engine.need.inputs import NeedInputs
from fundform.engine.need.weighted_population import multiplier, national_value
from fundform.engine.scenarios import Scenarios
from fundform.formula.spec import Need, model_key
from fundform.inputs.dataset import Dataset

if TYPE_CHECKING:
    from fundform.engine.draws import DataDraws

INDICATOR_NUMBERS = ("elasticity", "min_multiplier", "max_multiplier")


def need_numbers(need: Need) -> list[str]:
    """The need's numbers a scenario can vary, as paths under `need.`."""
    if need.method != "age_cost_curve":
        return []
    return ([f"need.indicators.{i.name}.{k}" for i in need.indicators for k in INDICATOR_NUMBERS
             if getattr(i, k) is not None]
            + [f"need.age_cost_curve.bands.{b.age_from}-{b.age_to}.weight" for b in need.curve.bands])


def need_inputs(data: Dataset, need: Need) -> NeedInputs:
    """The data a need reads (one year's `data`), prepared once per need model."""
    return data.memo(("need_inputs", model_key(need)), lambda: _need_inputs(data, need))


def _need_inputs(data: Dataset, need: Need) -> NeedInputs:
    bands = need.curve.bands
    band_of_age = {a: i for i, b in enumerate(bands) for a in range(b.age_from, b.age_to + 1)}
    # one pass over the (possibly person- or small-area-level) population: residents by authority and age, exact
    by_age = (data.lazy("population").group_by("area_code", "age")  # exact sums: any row order gives the same
              .agg(fixed_sum(pl.col("population"))).collect())
    outside = sorted(set(by_age["age"].unique().to_list()) - set(band_of_age))
    if outside:
        raise FundformError(f"the population has ages {outside[:10]} that no band of the age cost curve covers "
                            f"(bands cover {min(band_of_age)}-{max(band_of_age)})")
    areas = by_age.group_by("area_code").agg(population=fixed_sum(pl.col("population"))).sort("area_code")
    codes = areas["area_code"].to_list()
    by_band = (by_age.with_columns(band=pl.col("age").replace_strict(band_of_age, return_dtype=pl.Int32))
               .group_by("area_code", "band").agg(fixed_sum(pl.col("population"))))
    band_pop = np.zeros((len(bands), len(codes)))
    rows = areas.select("area_code").with_row_index("i").join(by_band, on="area_code", how="inner")
    band_pop[rows["band"].to_numpy(), rows["i"].to_numpy()] = rows["population"].to_numpy()
    values, national = [], []
    for ind in need.indicators:
        v = areas.select("area_code", "population").join(data[ind.table].select("area_code", ind.column),
                                                         on="area_code", how="left", maintain_order="left")
        values.append(v[ind.column].cast(pl.Float64).to_numpy())
        national.append(float(v.select(national_value(pl.col(ind.column), pl.col("population"))).item()))
    return NeedInputs(codes, areas["population"].to_numpy(), band_pop, values, national)


@dataclass(frozen=True)
class NeedSteps:
    """Need step by step, (scenarios, authorities): the age-weighted population and each indicator's multiplier."""

    inputs: NeedInputs
    age_weighted: np.ndarray
    multipliers: list[np.ndarray]

    def cumulative(self, k: int) -> np.ndarray:
        """The need-weighted population with the first k indicators' multipliers (k = 0: age alone)."""
        out = self.age_weighted
        for m in self.multipliers[:k]:
            out = out * m
        return out

    @property
    def need_weighted(self) -> np.ndarray:
        return self.cumulative(len(self.multipliers))


Numbers = Callable[[str, float], np.ndarray]  # (path under need., the version's value) -> (S,) each scenario's


def own_numbers(S: int = 1) -> Numbers:
    """The version's own numbers in every scenario (a run)."""
    return lambda _path, default: np.full(S, default, dtype=np.float64)


def compute_need(inputs: NeedInputs, need: Need, at: Numbers, S: int = 1) -> NeedSteps:
    """The need of S scenarios, each number `at(path, version's value)`: the one place need is computed."""
    bands = need.curve.bands
    weights = np.column_stack([at(f"need.age_cost_curve.bands.{b.age_from}-{b.age_to}.weight", b.weight)
                               for b in bands])  # (S, bands)
    if (weights <= 0).any():
        raise FundformError("an age band weight must be above 0 in every scenario")
    n = inputs.population.shape[-1]
    drawn = inputs.bands.ndim == 3  # the data axis: each scenario its own inputs (engine.draws), (S, ...) arrays
    awp = np.zeros((S, n))
    for b in range(len(bands)):  # band by band, element-wise: the same bits on every machine
        awp = awp + weights[:, b, None] * (inputs.bands[:, b, :] if drawn else inputs.bands[b][None, :])
    cols: dict[str, np.ndarray] = {}
    exprs = []
    for j, ind in enumerate(need.indicators):
        e = at(f"need.indicators.{ind.name}.elasticity", ind.elasticity.value)
        lo = at(f"need.indicators.{ind.name}.min_multiplier", ind.min_multiplier.value if ind.min_multiplier else -np.inf)
        hi = at(f"need.indicators.{ind.name}.max_multiplier", ind.max_multiplier.value if ind.max_multiplier else np.inf)
        if (lo > hi).any():
            bad = int(np.flatnonzero(lo > hi)[0])
            raise FundformError(f"scenario {bad}: {ind.name}'s min_multiplier {lo[bad]:g} is above its "
                                f"max_multiplier {hi[bad]:g}")
        values = np.asarray(inputs.values[j])
        cols[f"value{j}"] = values.reshape(-1) if values.ndim == 2 else np.tile(values, S)
        cols[f"e{j}"] = np.repeat(e, n)
        given = inputs.national[j]
        national: pl.Expr | float = float(given) if not np.ndim(given) else pl.col(f"nat{j}")
        if np.ndim(given):  # each draw's population-weighted national value
            cols[f"nat{j}"] = np.repeat(np.asarray(given, dtype=np.float64), n)
        bounds = {}  # a bound the scenarios leave as the version states it stays the version's number
        for k, arr, own in (("lo", lo, ind.min_multiplier), ("hi", hi, ind.max_multiplier)):
            if (arr != (own.value if own is not None else arr)).any() or (own is None and np.isfinite(arr).any()):
                cols[f"{k}{j}"] = np.repeat(arr, n)
                bounds[k] = pl.col(f"{k}{j}")
        # the indicator's named transform (formula.components) and its bounds, each scenario's numbers as columns
        exprs.append(multiplier(ind, pl.col(f"value{j}"), national, pl.col(f"e{j}"), **bounds).alias(f"m{j}"))
    if not exprs:
        return NeedSteps(inputs, awp, [])
    mults = pl.DataFrame(cols).select(exprs)
    return NeedSteps(inputs, awp, [mults[f"m{j}"].to_numpy().reshape(S, n) for j in range(len(exprs))])


def version_need(data: Dataset, need: Need) -> NeedSteps:
    """A run's need (the version's own numbers) from one year's data, computed once per need model."""
    return data.memo(("need_steps", model_key(need)), lambda: compute_need(need_inputs(data, need), need,
                                                                           own_numbers()))


def scenario_shares(ctx: Settle, part: Part, frames: list[pl.DataFrame]) -> np.ndarray:
    """(S, years, areas) target shares of `part` (the version, or one stream of it) in each settlement year, from
    its need frames of lower-tier authorities (one per year). A scenario that leaves the need's numbers as the
    version states them takes the need frames' shares (the same computation)."""
    data, scen, spec, version, stream = ctx.data, ctx.scen, part.spec, part.version, part.stream
    S = scen.size
    out = []
    for t, y in enumerate(ctx.fy):
        need = spec.at(y).need
        if scen.draws is not None:  # the data axis: each draw's need from its own inputs
            out.append(draw_shares(ctx, part, y, frames[t], need))
            continue
        if not any(scen.sets(version, stream, p, y) for p in need_numbers(need)):
            out.append(np.broadcast_to(frames[t]["target_share"].to_numpy(), (S, frames[t].height)))
            continue

        def at(path: str, default: float, y: str = y) -> np.ndarray:
            return scen.get(version, stream, path, default, y)

        # streams that take the version's need read the same numbers from the same paths: computed once (the
        # scenarios' derived values are the one settlement's: `outcome.settle` clears them first)
        key = ("need_shares", y, model_key(need), tuple(scen.path(version, stream, p, y) for p in need_numbers(need)))
        if key not in scen.derived:
            year = data.for_year(y)
            inputs = need_inputs(year, need)
            if inputs.codes != frames[t]["area_code"].to_list():
                raise InternalError("internal error: the need's authorities differ from the need frames' (need with "
                                    "a scenario axis is computed for lower-tier authorities)")
            nwp = compute_need(inputs, need, at, S).need_weighted
            scen.derived[key] = nwp / nwp.sum(axis=1, keepdims=True)
        out.append(scen.derived[key])
    return np.stack(out, axis=1)


def draw_shares(ctx: Settle, part: Part, year: str, frame: pl.DataFrame, need: Need) -> np.ndarray:
    """(S, authorities) target shares of each draw in `year`, as a run on the draw's variant dataset derives them:
    its need inputs (engine.draws, the same exact sums), the need (with any numbers the scenarios set), each
    authority's need-weighted population rolled up to itself (to 10^-12) and its share of their exact sum. Keeps
    each draw's residents per authority for the per-head figures (`scen.derived`). `frame` is the year's need
    frame of lower-tier authorities."""
    from fundform.engine.draws import draw_need_inputs, long_sum, rounded, year_rows

    data, scen, version, stream = ctx.data, ctx.scen, part.version, part.stream
    draws = scen.draws
    if draws is None:
        raise InternalError("internal error: draw_shares on a scenario axis without draws")
    key = ("draw_shares", year, model_key(need), tuple(scen.path(version, stream, p, year) for p in need_numbers(need)))
    own = not any(scen.sets(version, stream, p, year) for p in need_numbers(need))
    if key not in scen.derived and own and draws.period and draws.token:
        # a design's candidates over the same draws, none varying need: each draw's need once, for every chunk
        one = draws.untiled()
        shares, pop = data.memo(("draw_need", draws.token, one.first, one.size, year, model_key(need)),
                                lambda: _draw_need(ctx, part, year, frame, draws=one, need=need))
        times = draws.size // draws.period
        scen.derived[key] = np.tile(shares, (times, 1))
        scen.derived[("draw_population", year)] = np.tile(pop, (times, 1))
    if key not in scen.derived:
        one_year = data.for_year(year)
        base = need_inputs(one_year, need)
        if base.codes != frame["area_code"].to_list() or base.codes != draws.codes:
            raise InternalError("internal error: the draws' authorities differ from the need frames' (a draw's need "
                                "is computed for lower-tier authorities)")
        rows = data.memo(("year_rows", year, model_key(need)), lambda: year_rows(one_year, base.codes, need))
        inputs = draw_need_inputs(rows, need, draws, year, n_areas=len(base.codes), base=base)

        def at(path: str, default: float) -> np.ndarray:
            return scen.get(version, stream, path, default, year)

        nwp = rounded(compute_need(inputs, need, at, scen.size).need_weighted)
        scen.derived[key] = nwp / long_sum(nwp, scen.size)[:, None]
        scen.derived[("draw_population", year)] = rounded(inputs.population)
    return scen.derived[key]


def _draw_need(ctx: Settle, part: Part, year: str, frame: pl.DataFrame, *, draws: DataDraws, need: Need
               ) -> tuple[np.ndarray, np.ndarray]:
    """The draws' shares and residents with the version's own need numbers (the design's tiled case)."""
    own = ctx.with_scenarios(Scenarios(size=draws.size, draws=draws, detail=False))
    shares = draw_shares(own, part, year, frame, need)
    return shares, own.scen.derived[("draw_population", year)]
