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
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import polars as pl

from fundform.base.errors import FundformError
from fundform.base.years import FinancialYear
from fundform.engine.need.axis import INDICATOR_NUMBERS
from fundform.engine.outcome import Outcome, evaluate
from fundform.engine.params import RunParameters
from fundform.engine.scenarios import Scenarios, dates_number, stream_path  # noqa: F401  (stream_path re-exported)
from fundform.formula.rules import TRANSITION_NUMBERS
from fundform.formula.scenario import LoadedFormula
from fundform.formula.spec import FormulaSpec
from fundform.inputs.dataset import Dataset

if TYPE_CHECKING:
    from fundform.studies.executors import Executor

T = TypeVar("T")
R = TypeVar("R")

SWEEPABLE = (re.compile(r"^need\.indicators\.[a-z][a-z0-9_]*\.(" + "|".join(INDICATOR_NUMBERS) + ")$"),
             re.compile(r"^need\.age_cost_curve\.bands\.\d+-\d+\.weight$"),
             re.compile(r"^transition\.(" + "|".join(TRANSITION_NUMBERS) + ")$"),
             re.compile(r"^control_total\.real_growth$"),
             re.compile(r"^local_tax\.(equalisation|share_for_devolved_services)$"))
STREAM = re.compile(r"^streams\.([a-z][a-z0-9_]*)\.(.+)$")
DATED = re.compile(r"^years\.(\d{4}/\d{2})\.((need|transition)\..+)$")


def sweepable(path: str) -> bool:
    """A version's parameter the sweep can vary; a stream's own need, transition or real growth likewise
    (`streams.adult_social_care.need.indicators.deprivation.elasticity`, `streams.nhs_core.real_growth`); a
    dated need or transition number in its year (`years.2025/26.transition.max_gain`)."""
    stream = STREAM.match(path)
    if stream:
        rest = stream.group(2)
        return rest == "real_growth" or (not rest.startswith("local_tax.") and sweepable(rest))
    dated = DATED.match(path)
    if dated:
        return sweepable(dated.group(2))
    return any(p.match(path) for p in SWEEPABLE)


def sweepable_paths(spec: FormulaSpec) -> list[str]:
    """Every number of the version a scenario can vary, as --set paths, derived from the version's own models:
    its need's numbers (and each stream's own), its rule's numbers (and each stream's own rule's), real growth where
    the version sets the total, the equalisation numbers, and each number a dated section states in its year."""
    from fundform.engine.need.axis import need_numbers
    from fundform.formula.spec import iter_needs

    out: list[str] = []
    for prefix, need in iter_needs(spec):
        out += [prefix + p[len("need"):] for p in need_numbers(need)]
    rules = [(None, spec.transition)] + [(st, st.transition) for st in spec.streams if st.transition is not None]
    for st, rule in rules:
        out += [stream_path(st, f"transition.{k}") for k in TRANSITION_NUMBERS if getattr(rule, k, None) is not None]
    if spec.baseline.source == "baseline_table":
        out.append("control_total.real_growth")
        out += [f"streams.{st.name}.real_growth" for st in spec.streams if st.real_growth is not None]
    lt = spec.local_tax
    if lt.rule != "none":
        out += [f"local_tax.{k}" for k in ("equalisation", "share_for_devolved_services") if getattr(lt, k) is not None]
    for y in sorted(spec.years, key=FinancialYear.parse):
        at = spec.at(y)
        out += [f"years.{y}.{p}" for p in need_numbers(at.need) + [f"transition.{k}" for k in TRANSITION_NUMBERS]
                if dates_number(spec.years[y].get(p.split(".")[0]), p.split(".")[1:])]
    return list(dict.fromkeys(out))


@dataclass(kw_only=True)
class SweepResult:
    stats: pl.DataFrame
    sensitivity: pl.DataFrame
    scenarios: pl.DataFrame
    grants: np.ndarray | None  # (scenarios, years, areas) int pence; None beyond KEEP scenarios (stats only)
    bounds: np.ndarray | None  # (scenarios, years, areas) int8; None beyond KEEP scenarios
    allocations: np.ndarray | None = None  # (scenarios, years, areas) int pence, before local tax
    targets: np.ndarray | None = None  # (scenarios, years, areas) int pence
    baselines: np.ndarray | None = None  # (scenarios, years, areas) int pence: today's funding uprated
    population: np.ndarray | None = None  # (years, areas) residents (registered patients for practice need)
    areas: pl.DataFrame | None = None  # area_code, area_name in the arrays' order


def parse_parameters(exprs: list[str], draws: int | None, seed: int) -> tuple[list[str], np.ndarray]:
    """`path=lo:hi` (uniform draws, needs --draws) or `path=v1,v2,...` (a grid). Returns names and (S, P) values."""
    if not exprs:
        raise FundformError("give at least one --param PATH=LO:HI or PATH=V1,V2,...")
    names: list[str] = []
    grids: list[list[float] | None] = []
    ranges: list[tuple[float, float] | None] = []
    for e in exprs:
        if "=" not in e:
            raise FundformError(f"--param '{e}': expected PATH=LO:HI or PATH=V1,V2,...")
        path, spec = (x.strip() for x in e.split("=", 1))
        if not sweepable(path):
            raise FundformError(f"--param {path}: not a sweepable parameter (age band weights, indicator "
                                "elasticities and multiplier bounds, transition.{" + ",".join(TRANSITION_NUMBERS) + "}, "
                                "real_growth, equalisation, share_for_devolved_services; a stream's own ones "
                                "as streams.NAME.PATH; a dated one as years.YYYY/YY.PATH)")
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
        bounds = [r for r in ranges if r is not None]  # every one, the mix refused above
        return names, np.column_stack([rng.uniform(lo, hi, draws) for lo, hi in bounds])
    return names, np.array(list(itertools.product(*[g for g in grids if g is not None])), dtype=np.float64)


def check_names(spec: FormulaSpec, names: list[str]) -> None:
    """Every swept path names a parameter this version has, and a stream's path one that stream owns."""
    streams = {st.name: st for st in spec.streams}
    for n in names:
        st, path, at = None, n, spec
        dated = DATED.match(n)
        if dated:  # a dated number: the version's dated section for that year must state it
            year, path = dated.group(1), dated.group(2)
            held = [p for p in sweepable_paths(spec) if p.startswith("years.")]
            if n not in held:
                raise FundformError(f"--param {n}: {spec.id} dates no such number (its dated numbers: "
                                    f"{', '.join(held) or 'none'}); vary {path} for the undated one")
            at = spec.at(year)
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
        need = (st.need if st is not None and st.need is not None else at.need)
        rule = (st.transition if st is not None and st.transition is not None else at.transition)
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
            band_keys = [f"{b.age_from}-{b.age_to}" for b in need.curve.bands]
            if path.split(".")[3] not in band_keys:
                raise FundformError(f"--param {n}: {spec.id} has no age band '{path.split('.')[3]}' here "
                                    f"(bands: {', '.join(band_keys)})")
        if path.startswith("transition.") and getattr(rule, path.split(".")[1], None) is None:
            raise FundformError(f"--param {n}: {spec.id}'s {rule.rule} rule has no {path.split('.')[1]} to vary")


CHUNK = 1_000  # scenarios settled together: each chunk's working arrays are about CHUNK x years x areas x 8 B x 20
KEEP = 20_000  # up to this many scenarios, every scenario's arrays are kept in the result; beyond, grants spill to disk


class _Inline:
    """A pool of no threads, for work too small to share out (one scenario, as the explorer asks for)."""

    def __enter__(self) -> _Inline:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        return map(fn, items)

    def submit(self, fn: Callable[..., R], *args: Any) -> Future[R]:
        done: Future[R] = Future()
        done.set_result(fn(*args))
        return done


@dataclass(kw_only=True)
class _Chunk:
    grant: np.ndarray  # (c, years, areas) int pence
    at_floor: np.ndarray  # (c, years, areas) bool: held at a floor in any stream
    bound: np.ndarray  # (c, years, areas) int8
    allocation: np.ndarray | None  # (c, years, areas) int pence, when the sweep keeps detail
    targets: np.ndarray | None
    baselines: np.ndarray | None


def scenarios(names: list[str], values: np.ndarray, detail: bool = True) -> Scenarios:
    """The scenario axis of `values` (S, P), the P parameters named by their --set paths."""
    return Scenarios(size=values.shape[0], values={n: values[:, i] for i, n in enumerate(names)}, detail=detail)


def _settle_chunk(data: Dataset, spec: FormulaSpec, params: RunParameters, names: list[str], values: np.ndarray,
                  *, progress: Callable[[str], None] | None = None, detail: bool = True) -> tuple[_Chunk, Outcome]:
    """One chunk of scenarios: their outcome, the run's own (fundform.engine.outcome)."""
    oc = evaluate(data, spec, params, scenarios(names, values, detail), progress)
    return _Chunk(grant=oc.grant, at_floor=oc.at_floor, bound=oc.bound,
                  allocation=oc.allocation if detail else None, targets=oc.targets if detail else None,
                  baselines=oc.baselines if detail else None), oc


def sweep_chunk_task(task: tuple[Any, ...]) -> _Chunk:
    """One chunk of a sweep as a task for another process or machine (fundform.studies.executors): the worker reads the
    dataset itself, once, by content."""
    from fundform.studies.executors import worker_data

    directory, allow_implausible, spec, params, names, values, detail = task
    return _settle_chunk(worker_data(directory, allow_implausible), spec, params, names, values, detail=detail)[0]


def run_sweep(data: Dataset, formula: LoadedFormula, params: RunParameters, names: list[str], values: np.ndarray,
              *, progress: Callable[[str], None] | None = None, workers: int | None = None, detail: bool | None = None,
              executor: Executor | None = None) -> SweepResult:
    """Every scenario of a version: single-grant, in streams, or an NHS round (whose pace of change varies).

    Scenarios are settled in chunks of CHUNK, on `workers` threads (default: one per core; the array work releases
    the interpreter). Up to KEEP scenarios every scenario's arrays are kept; beyond that (100,000 scenarios) each
    chunk's grants go to a temporary file and the statistics read them back a year at a time, so memory stays
    bounded by the chunk, not the sweep. `detail`: keep each scenario's allocations, targets and baselines too
    (default: for up to CHUNK scenarios). `executor`: where the chunks run (fundform.studies.executors; default: threads of
    this process).

    Over 80 lines: one pass over the scenarios' chunks fills every statistic at once, in bounded memory."""
    say = progress or (lambda _m: None)
    spec = formula.spec
    check_names(spec, names)
    S = values.shape[0]
    # one scenario first: the data-only work every chunk shares (need frames, local resources, the need's arrays)
    # is derived once, then the chunks run side by side
    detail = S <= CHUNK if detail is None else detail
    first, oc = _settle_chunk(data, spec, params, names, values[:1], progress=say, detail=detail)
    areas, years, pop = oc.areas, oc.settled.years, oc.population
    codes = areas["area_code"].to_list()
    n_years = params.years
    slices = [slice(0, 1)] + [slice(i, min(i + CHUNK, S)) for i in range(1, S, CHUNK)]
    keep = S <= KEEP
    spill = None if keep else tempfile.TemporaryDirectory(prefix="fundform-sweep-")
    spill_dir = Path(spill.name) if spill is not None else Path()  # read only when the grants spill (not keep)
    full = lambda dtype: np.empty((S, n_years, len(codes)), dtype=dtype)
    kept = {"grant": full(np.int64), "bound": full(np.int8)} if keep else {}
    if detail:
        kept.update({k: full(np.int64) for k in ("allocation", "targets", "baselines")})
    last = np.empty((S, len(codes)), dtype=np.int64)  # the last year's grants: ranks and totals
    floors = np.zeros((n_years, len(codes)), dtype=np.int64)  # scenarios held at a floor, per year and area
    done = 0

    def work(sl: slice) -> tuple[slice, _Chunk]:
        return sl, (first if sl.start == 0 else _settle_chunk(data, spec, params, names, values[sl], detail=detail)[0])

    n_workers = max(1, workers or min(os.cpu_count() or 1, len(slices)))
    if executor is not None and executor.name != "local":  # chunks as tasks elsewhere: each worker reads the data
        tasks = [(str(data.directory), bool(data.implausible), spec, params, names, values[sl], detail)
                 for sl in slices[1:]]
        results = zip(slices, itertools.chain([first], executor.map(sweep_chunk_task, tasks)))
        pool_ctx: ThreadPoolExecutor | _Inline = _Inline()
    else:
        pool_ctx = ThreadPoolExecutor(max_workers=n_workers) if len(slices) > 1 else _Inline()
        results = None
    with pool_ctx as pool:
        for sl, ch in (results if results is not None else pool.map(work, slices)):
            last[sl] = ch.grant[:, -1, :]
            floors += ch.at_floor.sum(axis=0)
            for k, arr in kept.items():
                arr[sl] = getattr(ch, k)
            if not keep:
                np.ascontiguousarray(ch.grant.transpose(1, 0, 2)).tofile(spill_dir / f"{sl.start}.bin")
            done = sl.stop
            say(f"scenarios settled: {done:,} of {S:,}")

    def year_block(t: int) -> np.ndarray:
        """(S, areas) grants of year t."""
        if keep:
            return kept["grant"][:, t, :]
        out = np.empty((S, len(codes)), dtype=np.int64)
        for sl in slices:
            c = sl.stop - sl.start
            out[sl] = np.fromfile(spill_dir / f"{sl.start}.bin", dtype=np.int64, count=c * len(codes),
                                  offset=t * c * len(codes) * 8).reshape(c, len(codes))
        return out

    def rank(a: np.ndarray) -> np.ndarray:
        """Ranks along the scenario axis (ties in scenario order): one sort, then the inverse permutation."""
        order = np.argsort(a, axis=0, kind="stable")
        out = np.empty(a.shape, dtype=np.float64)
        np.put_along_axis(out, order, np.arange(a.shape[0], dtype=np.float64).reshape((-1,) + (1,) * (a.ndim - 1)),
                          axis=0)
        return out

    say("distributions and sensitivity")
    # each year's percentiles and the last year's ranks side by side (one year at a time when the grants spilled)
    stats_pool: ThreadPoolExecutor | _Inline = (ThreadPoolExecutor(max_workers=n_workers if keep else 1) if S > CHUNK
                                                else _Inline())
    with stats_pool as pool:
        ranked = pool.submit(rank, last)
        q = np.stack(list(pool.map(lambda t: np.percentile(year_block(t), [0, 5, 50, 95, 100], axis=0),
                                   range(n_years))), axis=1) / 100.0  # (5, Y, n) pounds
        g_rank = ranked.result()
    if spill is not None:
        spill.cleanup()
    at_floor = floors / S
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
    flat = lambda a: np.asarray(a).reshape(-1)
    stats = grid.with_columns(
        area_level=pl.lit(params.level),
        **{f"grant_{k}": pl.Series(flat(q[i])) for i, k in enumerate(("min", "p5", "median", "p95", "max"))},
        at_floor_share=pl.Series(flat(at_floor)),
        top_parameter=pl.Series(np.tile(np.array(names)[top], params.years)),
        top_parameter_rank_correlation=pl.Series(np.tile(rho[top, np.arange(len(codes))], params.years)),
    )
    sensitivity = pl.DataFrame({"parameter": names, "mean_abs_rank_correlation": np.abs(rho).mean(axis=1)}).sort(
        "mean_abs_rank_correlation", descending=True).with_row_index("rank", offset=1)
    scenarios = pl.DataFrame({"scenario": np.arange(values.shape[0]), **{n: values[:, i] for i, n in enumerate(names)},
                              "total_grant_last_year": last.sum(axis=1) / 100})
    return SweepResult(stats=stats, sensitivity=sensitivity, scenarios=scenarios, grants=kept.get("grant"),
                       bounds=kept.get("bound"), allocations=kept.get("allocation"), targets=kept.get("targets"),
                       baselines=kept.get("baselines"), population=pop, areas=areas.select("area_code", "area_name"))
