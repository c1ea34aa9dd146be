"""Need with a scenario axis: each settlement year's target shares, (scenarios, years, areas).

A run (one scenario that sets nothing) takes the shares of the need frames (`need.frames`), the figures its outputs
explain. Scenarios that vary the version's need numbers (age band weights, an indicator's elasticity or multiplier
bounds) recompute the same formula for all scenarios at once: the population in each age band and each indicator's
value and national average come from the data once; the weights and multipliers vary along the scenario axis (the
indicator transform is the same component the need frames use).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from fundform.errors import FundformError
from fundform.formula.spec import FormulaSpec, Need, model_key
from fundform.inputs.dataset import Dataset
from fundform.need.weighted_population import age_weighted_population, age_weights, multiplier, national_value
from fundform.numeric import fixed_sum
from fundform.params import Scenarios

INDICATOR_NUMBERS = ("elasticity", "min_multiplier", "max_multiplier")


def need_numbers(need: Need) -> list[str]:
    """The need's numbers a scenario can vary, as paths under `need.`."""
    if need.method != "age_cost_curve":
        return []
    return ([f"need.indicators.{i.name}.{k}" for i in need.indicators for k in INDICATOR_NUMBERS
             if getattr(i, k) is not None]
            + [f"need.age_cost_curve.bands.{b.age_from}-{b.age_to}.weight" for b in need.age_cost_curve.bands])


def level_matrix(data: Dataset, level: str, codes: list[str]) -> np.ndarray:
    """(lower-tier areas, level areas) apportionment shares, rows in lower-tier code order: the roll-up of
    `geography.roll_up` as a matrix, for quantities with a scenario axis."""
    def build() -> np.ndarray:
        ltla = data["areas"].sort("area_code")["area_code"].to_list()
        lk = data["area_lookup"].filter(pl.col("level") == level)
        m = np.zeros((len(ltla), len(codes)))
        ri, ci = {c: i for i, c in enumerate(ltla)}, {c: i for i, c in enumerate(codes)}
        for a, t, s in lk.select("area_code", "target_code", "share").iter_rows():
            m[ri[a], ci[t]] += s
        return m
    return data.memo(("level_matrix", level, tuple(codes)), build)


def band_population(data: Dataset, bands, ltla: pl.DataFrame) -> np.ndarray:
    """(bands, lower-tier areas): population in each age band, areas in lower-tier code order (exact sums)."""
    band_of_age = {a: i for i, b in enumerate(bands) for a in range(b.age_from, b.age_to + 1)}
    by_band = (data.lazy("population").with_columns(band=pl.col("age").replace_strict(band_of_age,
                                                                                       return_dtype=pl.Int32))
               .group_by("area_code", "band").agg(fixed_sum(pl.col("population"))).collect())
    out = np.zeros((len(bands), ltla.height))
    rows = ltla.with_row_index("i").join(by_band, on="area_code", how="inner")
    out[rows["band"].to_numpy(), rows["i"].to_numpy()] = rows["population"].to_numpy()
    return out


def _varied_need(data: Dataset, need: Need, m: np.ndarray | None, at, S: int) -> np.ndarray:
    """(S, level areas) target shares of an age-cost-curve need whose numbers vary by scenario; `at(path, default)`
    gives each number's (S,) values."""
    ltla = data["areas"].sort("area_code").select("area_code")
    bands = need.age_cost_curve.bands
    key = model_key(need)

    def base_arrays():  # what the scenarios share: derived from the data and the unvaried need, computed once
        base = ltla.join(age_weighted_population(data.lazy("population"), age_weights(need.age_cost_curve))
                         .collect(), on="area_code", how="left")
        awp, pop = base["age_weighted_population"].to_numpy(), base["population"].to_numpy()
        inds = {}
        for ind in need.indicators:
            v = ltla.join(data[ind.table].select("area_code", ind.column), on="area_code", how="left")[ind.column]
            national = float(pl.DataFrame({"v": v, "p": pop}).select(national_value(pl.col("v"), pl.col("p"))).item())
            inds[ind.name] = (v, national)
        return awp, inds

    awp, inds = data.memo(("need_axis", key), base_arrays)
    weights = np.column_stack([at(f"need.age_cost_curve.bands.{b.age_from}-{b.age_to}.weight", b.weight)
                               for b in bands])
    if (weights != np.array([b.weight for b in bands])[None, :]).any():
        if (weights <= 0).any():
            raise FundformError("an age band weight must be above 0 in every scenario")
        by_band = data.memo(("band_population", key), lambda: band_population(data, bands, ltla))
        nwp = weights @ by_band  # (S, bands) x (bands, areas)
    else:  # the need frames' own sums, so an unvaried curve gives the run's figures to the bit
        nwp = np.broadcast_to(awp, (S, awp.size)).copy()
    cols: dict[str, np.ndarray] = {}
    exprs = []
    for j, ind in enumerate(need.indicators):
        v, national = inds[ind.name]
        e = at(f"need.indicators.{ind.name}.elasticity", ind.elasticity.value)
        lo = at(f"need.indicators.{ind.name}.min_multiplier", ind.min_multiplier.value if ind.min_multiplier else -np.inf)
        hi = at(f"need.indicators.{ind.name}.max_multiplier", ind.max_multiplier.value if ind.max_multiplier else np.inf)
        if (lo > hi).any():
            bad = int(np.flatnonzero(lo > hi)[0])
            raise FundformError(f"scenario {bad}: {ind.name}'s min_multiplier {lo[bad]:g} is above its "
                                f"max_multiplier {hi[bad]:g}")
        # the need frames' own multiplier (transform and bounds), each scenario's numbers as columns
        n = v.len()
        cols[f"value{j}"], cols[f"e{j}"] = np.tile(v.to_numpy(), S), np.repeat(e, n)
        bounds = {}  # a bound the scenarios leave as the version states it stays the version's number
        for k, arr, own in (("lo", lo, ind.min_multiplier), ("hi", hi, ind.max_multiplier)):
            if (arr != (own.value if own is not None else arr)).any() or (own is None and np.isfinite(arr).any()):
                cols[f"{k}{j}"] = np.repeat(arr, n)
                bounds[k] = pl.col(f"{k}{j}")
        exprs.append(multiplier(ind, pl.col(f"value{j}"), national, pl.col(f"e{j}"), **bounds).alias(f"m{j}"))
    if exprs:  # every indicator's multipliers in one pass, applied in the version's order
        mults = pl.DataFrame(cols).select(exprs)
        for j in range(len(exprs)):
            nwp *= mults[f"m{j}"].to_numpy().reshape(S, -1)
    nwp_lvl = nwp if m is None else nwp @ m  # m None: the lower-tier authorities themselves
    return nwp_lvl / nwp_lvl.sum(axis=1, keepdims=True)


def scenario_shares(data: Dataset, version: FormulaSpec, spec: FormulaSpec, stream, level: str, fy: list[str],
                    frames: list[pl.DataFrame], scen: Scenarios) -> np.ndarray:
    """(S, years, areas) target shares of `spec` (the version, or one stream of it as `stream_spec` gives) in each
    settlement year. `version` and `stream` say where the scenarios' values are read from."""
    S = scen.size
    out = []
    for t, y in enumerate(fy):
        need = spec.at(y).need
        if not any(scen.sets(version, stream, p, y) for p in need_numbers(need)):
            out.append(np.broadcast_to(frames[t]["target_share"].to_numpy(), (S, frames[t].height)))
            continue
        codes = frames[t]["area_code"].to_list()
        at = lambda path, default, y=y: scen.get(version, stream, path, default, y)  # noqa: E731
        # streams that take the version's need read the same numbers from the same paths: computed once (the
        # scenarios' derived values are the one settlement's: `outcome.settle` clears them first)
        key = ("need_shares", level, y, model_key(need),
               tuple(scen.path(version, stream, p, y) for p in need_numbers(need)))
        if key not in scen.derived:
            scen.derived[key] = _varied_need(data.for_year(y), need, None if level == "ltla" else
                                             level_matrix(data, level, codes), at, S)
        out.append(scen.derived[key])
    return np.stack(out, axis=1)
