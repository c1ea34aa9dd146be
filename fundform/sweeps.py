"""Sweeps: thousands of variants of a formula's numbers, computed at once along a scenario axis.

Any version: single-grant, in funding streams (each stream swept, then pooled before local tax), or an NHS round
(published baselines and targets fixed, its pace of change varied).

Each swept parameter gets one value per scenario (a grid of listed values, or seeded uniform draws between bounds).
Need, control totals, the transition (with its floors solved exactly per scenario) and local tax are computed as
arrays of shape (scenarios, years, areas): the same code and the same exact-pence rounding as `fundform run`, with a
leading axis, not a run per scenario in a Python loop. Per area and year the result is the distribution of the
grant (min, 5th percentile, median, 95th percentile, max), how often the area is held at a floor, and which
parameter its grant is most sensitive to (rank correlation across scenarios).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

import numpy as np
import polars as pl

from fundform.errors import FundformError
from fundform.formula.components import INDICATOR_TRANSFORMS
from fundform.formula.spec import FormulaSpec, format_year, parse_year
from fundform.inputs.dataset import Dataset
from fundform.localtax.resources import equalisation_degree
from fundform.need.weighted_population import age_weighted_population, age_weights
from fundform.numeric import fixed_sum
from fundform.settlement.control_total import control_totals, index_growth, linked_totals, settlement_years
from fundform.settlement.money import apportion, largest_remainder, round_half_up
from fundform.settlement.transition import BOUND_FLOOR, run_transition

SWEEPABLE = (re.compile(r"^need\.indicators\.[a-z][a-z0-9_]*\.(elasticity|min_multiplier|max_multiplier)$"),
             re.compile(r"^need\.age_cost_curve\.bands\.\d+-\d+\.weight$"),
             re.compile(r"^transition\.(gap_closed_per_year|gain_gap_closed|max_gain|reduction_gap_closed|"
                        r"max_reduction|phasing_years|floor|ceiling)$"),
             re.compile(r"^control_total\.real_growth$"),
             re.compile(r"^local_tax\.(equalisation|share_for_devolved_services)$"))


TRANSITION_NUMBERS = ("gap_closed_per_year", "gain_gap_closed", "max_gain", "reduction_gap_closed", "max_reduction",
                      "phasing_years", "floor", "ceiling")
STREAM = re.compile(r"^streams\.([a-z][a-z0-9_]*)\.(.+)$")


def sweepable(path: str) -> bool:
    """A version's parameter the sweep can vary; a stream's own need, transition or real growth likewise
    (`streams.adult_social_care.need.indicators.deprivation.elasticity`, `streams.nhs_core.real_growth`)."""
    stream = STREAM.match(path)
    if stream:
        rest = stream.group(2)
        return rest == "real_growth" or (not rest.startswith("local_tax.") and sweepable(rest))
    return any(p.match(path) for p in SWEEPABLE)


@dataclass
class SweepResult:
    stats: pl.DataFrame
    sensitivity: pl.DataFrame
    scenarios: pl.DataFrame
    grants: np.ndarray  # (scenarios, years, areas) int pence
    bounds: np.ndarray  # (scenarios, years, areas) int8
    allocations: np.ndarray | None = None  # (scenarios, years, areas) int pence, before local tax
    targets: np.ndarray | None = None  # (scenarios, years, areas) int pence
    baselines: np.ndarray | None = None  # (scenarios, years, areas) int pence: today's funding uprated
    population: np.ndarray | None = None  # (years, areas) residents (registered patients for practice need)
    areas: pl.DataFrame | None = None  # area_code, area_name in the arrays' order


def parse_parameters(exprs: list[str], draws: int | None, seed: int) -> tuple[list[str], np.ndarray]:
    """`path=lo:hi` (uniform draws, needs --draws) or `path=v1,v2,...` (a grid). Returns names and (S, P) values."""
    if not exprs:
        raise FundformError("give at least one --param PATH=LO:HI or PATH=V1,V2,...")
    names, grids, ranges = [], [], []
    for e in exprs:
        if "=" not in e:
            raise FundformError(f"--param '{e}': expected PATH=LO:HI or PATH=V1,V2,...")
        path, spec = (x.strip() for x in e.split("=", 1))
        if not sweepable(path):
            raise FundformError(f"--param {path}: not a sweepable parameter (age band weights, indicator "
                                "elasticities and multiplier bounds, transition.{" + ",".join(TRANSITION_NUMBERS) + "}, "
                                "real_growth, equalisation, share_for_devolved_services; a stream's own ones "
                                "as streams.NAME.PATH)")
        names.append(path)
        try:
            if ":" in spec:
                lo, hi = (float(x) for x in spec.split(":"))
                ranges.append((lo, hi))
                grids.append(None)
            else:
                grids.append([float(x) for x in spec.split(",")])
                ranges.append(None)
        except ValueError:
            raise FundformError(f"--param {path}: '{spec}' is not LO:HI or a list of numbers") from None
    if any(r is not None for r in ranges):
        if any(g is not None for g in grids):
            raise FundformError("mix of ranges and grids: give every parameter as LO:HI (random draws) or every one "
                                "as a list (a grid)")
        if not draws:
            raise FundformError("random draws need --draws N")
        rng = np.random.default_rng(seed)
        return names, np.column_stack([rng.uniform(lo, hi, draws) for lo, hi in ranges])
    return names, np.array(list(itertools.product(*grids)), dtype=np.float64)


def _matrix(data: Dataset, level: str, codes: list[str]) -> np.ndarray:
    """(lower-tier areas, level areas) apportionment shares, rows in lower-tier code order."""
    ltla = data["areas"].sort("area_code")["area_code"].to_list()
    lk = data["area_lookup"].filter(pl.col("level") == level)
    m = np.zeros((len(ltla), len(codes)))
    ri, ci = {c: i for i, c in enumerate(ltla)}, {c: i for i, c in enumerate(codes)}
    for a, t, s in lk.select("area_code", "target_code", "share").iter_rows():
        m[ri[a], ci[t]] += s
    return m


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


def stream_path(stream, path: str) -> str:
    """Where a stream's parameter lives: its own need, transition or real growth where it has one, else the
    version's (so `need.indicators.deprivation.elasticity` moves every stream that shares the version's need)."""
    if stream is None:
        return path
    own = {"need": stream.need is not None, "transition": stream.transition is not None,
           "control_total": stream.real_growth is not None}
    if not own.get(path.split(".")[0], False):
        return path
    if path == "control_total.real_growth":
        return f"streams.{stream.name}.real_growth"
    return f"streams.{stream.name}.{path}"


def _check_names(spec: FormulaSpec, names: list[str]) -> None:
    """Every swept path names a parameter this version has, and a stream's path one that stream owns."""
    streams = {st.name: st for st in spec.streams}
    for n in names:
        st, path = None, n
        if n.startswith("streams."):
            parts = n.split(".")
            if parts[1] not in streams:
                raise FundformError(f"--param {n}: {spec.id} has no stream '{parts[1]}' "
                                    f"({', '.join(streams) or 'no streams'})")
            st = streams[parts[1]]
            path = ".".join(parts[2:])
            path = "control_total.real_growth" if path == "real_growth" else path
            if stream_path(st, path) != n:
                raise FundformError(f"--param {n}: stream {st.name} takes this from the version; vary {path}")
        need = (st.need if st is not None and st.need is not None else spec.need)
        rule = (st.transition if st is not None and st.transition is not None else spec.transition)
        if path.startswith("need.") and need.method != "age_cost_curve":
            raise FundformError(f"--param {n}: {spec.id}'s need is NHS England's practice weighted populations, "
                                "which have no weights of fundform's to vary")
        if path == "control_total.real_growth" and spec.baseline.source != "baseline_table":
            raise FundformError(f"--param {n}: {spec.id} grows each ICB's published baseline by the round's own base "
                                "growth; vary the pace of change (transition.*) instead")
        if path.startswith("need.indicators."):
            known = {i.name: i for i in need.indicators}
            name, key = path.split(".")[2], path.split(".")[3]
            if name not in known:
                raise FundformError(f"--param {n}: {spec.id} has no indicator '{name}' here "
                                    f"({', '.join(sorted(known)) or 'none'})")
            if getattr(known[name], key) is None:  # as --set: a bound the version does not state cannot be varied
                raise FundformError(f"--param {n}: indicator {name} of {spec.id} has no {key} to vary")
        if path.startswith("need.age_cost_curve."):
            band_keys = [f"{b.age_from}-{b.age_to}" for b in need.age_cost_curve.bands]
            if path.split(".")[3] not in band_keys:
                raise FundformError(f"--param {n}: {spec.id} has no age band '{path.split('.')[3]}' here "
                                    f"(bands: {', '.join(band_keys)})")
        if path.startswith("transition.") and getattr(rule, path.split(".")[1], None) is None:
            raise FundformError(f"--param {n}: {spec.id}'s {rule.rule} rule has no {path.split('.')[1]} to vary")


@dataclass
class _StreamSweep:
    totals: np.ndarray  # (S, Y+1) pence: the year before and each year
    base_total: int
    paid: np.ndarray  # (S, Y, n) pence: allocation + guarantee
    bound: np.ndarray  # (S, Y, n)
    allocation: np.ndarray | None = None  # (S, Y, n) pence
    targets: np.ndarray | None = None  # (S, Y, n) pence
    baselines: np.ndarray | None = None  # (S, Y, n) pence


def _sweep_need(data: Dataset, need, level: str, ltla: pl.DataFrame, m: np.ndarray, get, stream, S: int
                ) -> np.ndarray:
    """(S, areas of the level) target shares."""
    at = lambda path, default: get(stream_path(stream, path), default)  # noqa: E731
    bands = need.age_cost_curve.bands
    band_keys = [f"{b.age_from}-{b.age_to}" for b in bands]
    key = need.model_dump_json()

    def base_arrays():  # what the scenarios share: derived from the data and the unswept need, computed once
        base = ltla.join(age_weighted_population(data.lazy("population"), age_weights(need.age_cost_curve))
                         .collect(), on="area_code", how="left")
        awp, pop = base["age_weighted_population"].to_numpy(), base["population"].to_numpy()
        inds = {}
        for ind in need.indicators:
            v = ltla.join(data[ind.table].select("area_code", ind.column), on="area_code", how="left")[ind.column]
            national = float(pl.DataFrame({"v": v, "p": pop}).select(fixed_sum(pl.col("v") * pl.col("p"))
                                                                      / fixed_sum(pl.col("p"))).item())
            inds[ind.name] = (v, national)
        return awp, pop, inds

    awp, pop, inds = data.memo(("sweep_need", key), base_arrays)
    weights = np.column_stack([at(f"need.age_cost_curve.bands.{k}.weight", b.weight)
                               for k, b in zip(band_keys, bands)])
    if (weights != np.array([b.weight for b in bands])[None, :]).any():
        if (weights <= 0).any():
            raise FundformError("an age band weight must be above 0 in every scenario")
        by_band = data.memo(("band_population", key), lambda: band_population(data, bands, ltla))
        nwp = weights @ by_band  # (S, bands) x (bands, areas)
    else:  # the run's own sums, so an unswept curve gives the run's figures to the bit
        nwp = np.broadcast_to(awp, (S, awp.size)).copy()
    for ind in need.indicators:
        v, national = inds[ind.name]
        e = at(f"need.indicators.{ind.name}.elasticity", ind.elasticity.value)
        long = pl.DataFrame({"value": np.tile(v.to_numpy(), S), "e": np.repeat(e, v.len())})
        mult = long.select(INDICATOR_TRANSFORMS[ind.transform](pl.col("value"), pl.lit(national), pl.col("e"))
                           ).to_series().to_numpy().reshape(S, v.len())
        lo = at(f"need.indicators.{ind.name}.min_multiplier",
                ind.min_multiplier.value if ind.min_multiplier else -np.inf)[:, None]
        hi = at(f"need.indicators.{ind.name}.max_multiplier",
                ind.max_multiplier.value if ind.max_multiplier else np.inf)[:, None]
        if (lo > hi).any():
            bad = int(np.flatnonzero((lo > hi)[:, 0])[0])
            raise FundformError(f"scenario {bad}: {ind.name}'s min_multiplier {lo[bad, 0]:g} is above its "
                                f"max_multiplier {hi[bad, 0]:g}")
        nwp *= np.clip(mult, lo, hi)
    nwp_lvl = nwp @ m
    return nwp_lvl / nwp_lvl.sum(axis=1, keepdims=True)


def dated_keys(spec: FormulaSpec, year: str, section: str) -> set[str]:
    """The keys of `section` that a dated section of the version sets for `year` or before."""
    return {k for y, sec in spec.years.items() if parse_year(y) <= parse_year(year) for k in sec.get(section, {})}


def _sweep_stream(data: Dataset, spec: FormulaSpec, params, get, S: int, ltla: pl.DataFrame, m: np.ndarray, stream=None,
                  link: _StreamSweep | None = None, extra=None, names: tuple[str, ...] = ()) -> _StreamSweep:
    """One stream (or the whole single-grant version) across all scenarios: the same steps as the run's
    `_allocate`, with a leading scenario axis. `extra` (S, Y+1) pence is added to the total shared by need."""
    from fundform.pipeline import nhs_round_path, share_matrix, year_frames

    at = lambda path, default: get(stream_path(stream, path), default)  # noqa: E731
    years = settlement_years(params.start_year, params.years)
    fy = years["financial_year"].to_list()
    frames = year_frames(data, spec, params.level, fy)  # each year's need, baseline and population (the run's own)
    areas = frames[0]
    growth = index_growth(spec.indices, spec.control_total.inflation_index)
    rules = [spec.at(y).transition for y in fy]
    rule = spec.transition
    # the swept numbers of the rule, year by year: a number the version dates (years."Y".transition) keeps its
    # dated value from that year on, as `--set transition.X` leaves the dated sections standing
    chosen = {k for k in TRANSITION_NUMBERS if getattr(rule, k, None) is not None
              and stream_path(stream, f"transition.{k}") in names}
    swept = [{k: at(f"transition.{k}", getattr(rule, k).value)[:, None] for k in chosen
              if k not in dated_keys(spec, y, "transition")} for y in fy]
    inflation = np.array([growth.get(y, 0.0) for y in fy])
    n = areas.height
    if spec.baseline.source != "baseline_table":
        # published NHS rounds: the run's own year-by-year path (restatements, base growth, targets), with the pace
        # of change varying across scenarios
        held = sorted(data.tables["nhs_icb_allocations"]["allocation_round"].unique().to_list())
        rp = nhs_round_path(frames, spec, params, growth, years, values=swept, scenarios=S, held=held)
        return _StreamSweep(rp.totals, int(rp.totals[0, 0]), rp.transition.allocation + rp.transition.guarantee,
                            rp.transition.bound, rp.transition.allocation, np.broadcast_to(rp.targets, (
                                S, params.years, n)), np.broadcast_to(rp.baselines, (S, params.years, n)))
    if spec.need.method == "age_cost_curve":  # each year's need from that year's population
        shares = np.stack([_sweep_need(data.for_year(y), spec.need, params.level, ltla, m, get, stream, S)
                           for y in fy], axis=1)  # (S, Y, n)
    else:  # practice weighted: not swept
        shares = np.broadcast_to(share_matrix(frames), (S, params.years, n))
    all_years = [format_year(parse_year(params.start_year) - 1)] + fy
    base_total = int(round_half_up(areas["baseline_gbp"].sum() * 100))
    if link is not None:  # growth locked to another stream's: the same cumulative factors, scenario by scenario
        totals = linked_totals(base_total, link.totals, link.base_total)
    else:  # the run's own control-total path, one per scenario (S, Y+1)
        real = at("control_total.real_growth", spec.control_total.real_growth.value)
        totals = control_totals(base_total, spec.control_total, growth, all_years, real)[0]
    if extra is not None:
        totals = totals + extra
    ct = totals[:, 1:]
    baseline_w = areas["baseline_gbp"].to_numpy()
    targets = apportion(ct, shares)
    baselines = apportion(ct, np.broadcast_to(baseline_w, (S, params.years, n)))
    start = apportion(totals[:, 0], np.broadcast_to(baseline_w, (S, n)))
    tr = run_transition(start, targets, ct, rules, fy, baselines=baselines, inflation=inflation, values=swept)
    return _StreamSweep(totals, base_total, tr.allocation + tr.guarantee, tr.bound, tr.allocation, targets, baselines)


def run_sweep(data: Dataset, formula, params, names: list[str], values: np.ndarray,
              progress=None) -> SweepResult:
    """Every scenario of a version: single-grant, in streams, or an NHS round (whose pace of change varies)."""
    from fundform.pipeline import (
        check_indicator_tables,
        negative_grant_policy,
        run_local_resources,
        stream_spec,
        year_frames,
    )

    say = progress or (lambda _m: None)
    spec = formula.spec

    _check_names(spec, names)
    check_indicator_tables(spec, data)
    S = values.shape[0]
    col = {n: values[:, i] for i, n in enumerate(names)}
    get = lambda path, default: col.get(path, np.full(S, default, dtype=float))  # noqa: E731

    years = settlement_years(params.start_year, params.years)
    fy = years["financial_year"].to_list()
    frames = year_frames(data, spec, params.level, fy)
    areas = frames[0]
    codes = areas["area_code"].to_list()
    from fundform.formula.spec import iter_needs

    # the roll-up matrix of a need computed per authority (practice weights are summed to the level directly)
    m = (data.memo(("matrix", params.level, tuple(codes)), lambda: _matrix(data, params.level, codes))
         if any(need.method == "age_cost_curve" for _, need in iter_needs(spec)) else None)
    ltla = data["areas"].sort("area_code").select("area_code")
    lt = spec.local_tax
    # local resources depend on the data and the unswept version alone (the swept degree applies below): once
    local = data.memo(("local", spec.model_dump_json(), params.level, tuple(fy), str(params.precept_rates),
                       str(params.local_bases)), lambda: run_local_resources(data.for_year(fy[0]), spec, params, fy))
    n_full = local.array("notional_local_resources", codes, fy) * 100  # (Y, n) pence, floats
    e = get("local_tax.equalisation", lt.equalisation.value if lt.equalisation else 0.0)
    share0 = lt.share_for_devolved_services.value if lt.share_for_devolved_services else 1.0
    share = get("local_tax.share_for_devolved_services", share0)
    # the run's own phasing of the degree; notional resources scale with the share of council tax, so a swept
    # share moves the degree by share / share0 against the resources computed once at share0
    degree = equalisation_degree(lt, params.years, np.where(share == share0, e, e * share / share0)) \
        if lt.rule != "none" else np.zeros((S, params.years))

    if not spec.streams:
        say("need, control totals and transition across scenarios")
        extra = None
        if lt.basis == "grant":  # the envelope shared by need is the grant total plus e x sum(N)
            per_year = round_half_up(degree * n_full.sum(axis=1)[None, :])
            extra = np.concatenate([per_year[:, :1], per_year], axis=1)
        parts = [_sweep_stream(data, spec, params, get, S, ltla, m, extra=extra, names=tuple(names))]
    else:
        done: dict[str, _StreamSweep] = {}
        for st in sorted(spec.streams, key=lambda x: x.linked_to is not None):  # linked streams after their link
            say(f"stream {st.name} across scenarios")
            done[st.name] = _sweep_stream(data, stream_spec(spec, st), params, get, S, ltla, m, stream=st,
                                          link=done.get(st.linked_to) if st.linked_to else None, names=tuple(names))
        parts = [done[st.name] for st in spec.streams]
    paid = sum(p.paid for p in parts)
    # held at a floor: in any stream (the area's money is being protected somewhere)
    at_floor_any = np.any(np.stack([p.bound == BOUND_FLOOR for p in parts]), axis=0)

    say("local tax and grants")
    notional_f = degree[:, :, None] * n_full[None, :, :]
    notional = largest_remainder(notional_f, round_half_up(notional_f.sum(axis=-1)))
    grant = paid - notional
    if lt.negative_grants != "tariff":
        grant = np.stack([negative_grant_policy(grant[:, t, :], frames[t]["population"].to_numpy(), lt)
                          for t in range(params.years)], axis=1)

    say("distributions and sensitivity")
    q = np.percentile(grant, [0, 5, 50, 95, 100], axis=0) / 100.0  # (5, Y, n) pounds
    at_floor = at_floor_any.mean(axis=0)
    rank = lambda a: np.argsort(np.argsort(a, axis=0, kind="stable"), axis=0, kind="stable").astype(float)  # noqa
    g_rank = rank(grant[:, -1, :])
    g_rank -= g_rank.mean(axis=0)
    rho = np.zeros((len(names), len(codes)))
    for i in range(len(names)):  # a handful of parameters; each correlation is vectorised over areas
        p_rank = rank(values[:, i])
        p_rank -= p_rank.mean()
        denom = np.sqrt((p_rank ** 2).sum() * (g_rank ** 2).sum(axis=0))
        with np.errstate(invalid="ignore", divide="ignore"):
            rho[i] = np.where(denom > 0, (p_rank[:, None] * g_rank).sum(axis=0) / denom, 0.0)
    top = np.abs(rho).argmax(axis=0)
    grid = years.join(areas.select("area_code", "area_name"), how="cross").sort("year_index", "area_code")
    flat = lambda a: np.asarray(a).reshape(-1)  # noqa: E731
    stats = grid.with_columns(
        area_level=pl.lit(params.level),
        **{f"grant_{k}": pl.Series(flat(q[i])) for i, k in enumerate(("min", "p5", "median", "p95", "max"))},
        at_floor_share=pl.Series(flat(at_floor)),
        top_parameter=pl.Series(np.tile(np.array(names)[top], params.years)),
        top_parameter_rank_correlation=pl.Series(np.tile(rho[top, np.arange(len(codes))], params.years)),
    )
    sensitivity = pl.DataFrame({"parameter": names, "mean_abs_rank_correlation": np.abs(rho).mean(axis=1)}).sort(
        "mean_abs_rank_correlation", descending=True).with_row_index("rank", offset=1)
    scenarios = pl.DataFrame({"scenario": np.arange(S), **{n: values[:, i] for i, n in enumerate(names)},
                              "total_grant_last_year": grant[:, -1, :].sum(axis=1) / 100})
    bound = np.where(at_floor_any, BOUND_FLOOR, parts[0].bound) if len(parts) > 1 else parts[0].bound
    return SweepResult(stats, sensitivity, scenarios, grant, bound, sum(p.allocation for p in parts),
                       sum(p.targets for p in parts), sum(p.baselines for p in parts),
                       np.stack([f["population"].to_numpy() for f in frames]), areas.select("area_code", "area_name"))
