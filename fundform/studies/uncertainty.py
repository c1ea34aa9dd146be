"""Uncertainty: every figure with the range its inputs allow (docs/uncertainty.md).

The draws of an uncertainty file (engine.draws) are evaluated together by the run's own stages along the data axis
(`outcome.evaluate` with `Scenarios(draws=...)`), in chunks on a thread per core as a sweep's scenarios are, or as
tasks on a Dask cluster (studies.executors). Each draw is a run on its variant dataset, to the penny. What comes back,
per area and year:

- the central figure (the run's own) and the 5th, 50th and 95th percentiles over the draws of the target share, the
  allocation and the grant;
- the probability that the area is held at a floor or at a ceiling;
- the 5th and 95th percentile of its rank by grant per resident (1 = the most per resident);
- the inputs that move it most: for each source, the share of the variance of the area's allocation that its own
  drawn change explains (the squared correlation over the draws), and the one that explains most.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl

from fundform.base.errors import FundformError
from fundform.engine.draws import DataDraws, make_draws
from fundform.engine.outcome import evaluate
from fundform.engine.params import RunParameters, Scenarios
from fundform.engine.settlement.control_total import settlement_years
from fundform.engine.settlement.transition import BOUND_CEILING, BOUND_FLOOR
from fundform.inputs.dataset import Dataset
from fundform.inputs.uncertainty import UncertaintySpec

CHUNK = 250  # draws evaluated together: (250, years, areas) arrays, a few tens of MB at lower tier
QUANTILES = (0.05, 0.5, 0.95)


@dataclass
class DrawArrays:
    """Every draw's figures, (S, years, areas): pence for money."""

    target_share: np.ndarray
    allocation: np.ndarray
    grant: np.ndarray
    grant_per_head: np.ndarray
    floor: np.ndarray  # bool: held at a floor in any stream
    ceiling: np.ndarray


@dataclass
class UncertaintyResult:
    bands: pl.DataFrame  # one row per area and year (uncertainty.parquet)
    sensitivity: pl.DataFrame  # one row per area, year and source
    draws: DataDraws
    arrays: DrawArrays = field(repr=False)
    sources: list[dict] = field(default_factory=list)


def _chunk_arrays(data: Dataset, spec, params: RunParameters, draws: DataDraws,
                  values: dict[str, float] | None = None) -> DrawArrays:
    """One chunk of draws settled together; `values`: numbers of the version set the same in every draw (a
    scenario's, as --set paths)."""
    scen_values = {k: np.full(draws.size, float(v)) for k, v in (values or {}).items()}
    oc = evaluate(data, spec, params, Scenarios(size=draws.size, values=scen_values, draws=draws, detail=False))
    total = oc.targets.sum(axis=-1, keepdims=True)  # target share: of all areas' target allocations, in pence
    bounds = oc.bounds  # (streams, S, years, areas)
    return DrawArrays(oc.targets / total, oc.allocation, oc.grant, oc.grant_per_head,
                      (bounds == BOUND_FLOOR).any(axis=0), (bounds == BOUND_CEILING).any(axis=0))


def draws_chunk_task(task: tuple) -> DrawArrays:
    """One chunk of draws as a task for another process or machine (fundform.studies.executors): the dataset is
    read and checked there once, by content; the draws travel as arrays."""
    from fundform.studies.executors import worker_data

    directory, allow_implausible, spec, params, draws = task
    return _chunk_arrays(worker_data(directory, allow_implausible), spec, params, draws)


def evaluate_draws(data: Dataset, spec, params: RunParameters, draws: DataDraws, chunk: int = CHUNK,
                   workers: int | None = None, executor=None, values: dict[str, float] | None = None) -> DrawArrays:
    """Every draw's figures, chunk by chunk: on threads of this process (NumPy and Polars release the GIL), or as
    tasks of `executor` (a Dask cluster: studies.executors)."""
    from fundform.studies.executors import Threads

    parts = [(lo, min(lo + chunk, draws.size)) for lo in range(0, draws.size, chunk)]
    ex = executor or Threads(workers)
    if ex.name != "local":
        done = list(ex.map(draws_chunk_task, [(str(data.directory), bool(data.implausible), spec, params,
                                               draws.chunk(lo, hi)) for lo, hi in parts]))
    else:
        done = list(ex.map(lambda p: _chunk_arrays(data, spec, params, draws.chunk(*p), values), parts))
    return DrawArrays(*(np.concatenate([getattr(d, f) for d in done]) for f in DrawArrays.__dataclass_fields__))


def percentiles(x: np.ndarray) -> np.ndarray:
    """(3, years, areas) the 5th, 50th and 95th percentiles over the draws (the first axis), linear interpolation;
    money in pence is then rounded to the penny by the caller (floor(x + 0.5))."""
    return np.quantile(x.astype(np.float64), QUANTILES, axis=0, method="linear")


def _rank(per_head: np.ndarray) -> np.ndarray:
    """(S, years, areas) each area's rank by grant per resident in each draw and year: 1 = the most per resident."""
    order = np.argsort(-per_head, axis=-1, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(1, per_head.shape[-1] + 1)[None, None, :], axis=-1)
    return rank


def _r2(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(years, areas) the squared correlation over draws of x and y, (S, years, areas); 0 where either is flat."""
    xc, yc = x - x.mean(axis=0), y - y.mean(axis=0)
    den = np.sqrt((xc ** 2).sum(axis=0) * (yc ** 2).sum(axis=0))
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(den > 0, (xc * yc).sum(axis=0) / den, 0.0)
    return r ** 2


def _member_weights(data: Dataset, level: str, codes: list[str], areas: list[str], year: str) -> np.ndarray:
    """(areas, authorities) each area's authorities weighted by their residents (and lookup shares), rows summing to
    1: an input's change for an area above lower tier is its members' population-weighted change."""
    if level == "ltla":
        return np.eye(len(codes))
    pop = data.for_year(year).tables["population"].group_by("area_code").agg(pl.col("population").sum())
    lk = (data["area_lookup"].filter(pl.col("level") == level).join(pop, on="area_code")
          .with_columns(w=pl.col("share") * pl.col("population")))
    w = np.zeros((len(areas), len(codes)))
    row, col = {a: i for i, a in enumerate(areas)}, {c: j for j, c in enumerate(codes)}
    for a, c, v in lk.select("target_code", "area_code", "w").iter_rows():
        if a in row and c in col:
            w[row[a], col[c]] += v
    return w / w.sum(axis=1, keepdims=True)


def run_uncertainty(data: Dataset, formula, params: RunParameters, unc: UncertaintySpec, central,
                    chunk: int = CHUNK, workers: int | None = None, executor=None) -> UncertaintyResult:
    """The draws of `unc` around the run `central` (its RunResult: the figures with no uncertainty)."""
    spec = formula.spec
    fy = settlement_years(params.start_year, params.years)["financial_year"].to_list()
    if params.level.startswith("deal:"):
        raise FundformError("uncertainty runs at the levels of the dataset's lookup, not on a deal file's areas")
    draws = make_draws(data, unc, spec, fy)
    arrays = evaluate_draws(data, spec, params, draws, chunk, workers, executor)
    alloc = central.allocations.sort("year_index", "area_code")
    n = alloc["area_code"].n_unique()
    shape = (len(fy), n)

    def central_of(col: str) -> np.ndarray:
        return alloc[col].cast(pl.Float64).to_numpy().reshape(shape)  # money: pence, as computed

    q = {name: percentiles(getattr(arrays, name)) for name in ("target_share", "allocation", "grant")}
    rank = _rank(arrays.grant_per_head.astype(np.float64))
    rq = np.quantile(rank, (0.05, 0.95), axis=0, method="lower")
    base = alloc.select("area_code", "area_name", "area_level", "financial_year", "year_index")
    target = central_of("target_allocation")
    cols = {"target_share_central": (target / target.sum(axis=-1, keepdims=True)).reshape(-1)}
    for k, p in zip(("p5", "p50", "p95"), q["target_share"]):
        cols[f"target_share_{k}"] = p.reshape(-1)
    for name in ("allocation", "grant"):
        cols[f"{name}_central"] = central_of(name).reshape(-1)  # pence
        for k, p in zip(("p5", "p50", "p95"), q[name]):
            cols[f"{name}_{k}"] = np.floor(p + 0.5).reshape(-1)  # a percentile of pence, to the penny
    cols["p_floor"] = arrays.floor.mean(axis=0).reshape(-1)
    cols["p_ceiling"] = arrays.ceiling.mean(axis=0).reshape(-1)
    cols["rank_p5"] = rq[0].reshape(-1).astype(np.int32)
    cols["rank_p95"] = rq[1].reshape(-1).astype(np.int32)
    labels = list(draws.moves)
    to_level = _member_weights(data, params.level, draws.codes, alloc["area_code"].unique(maintain_order=True)
                               .to_list(), fy[0])
    r2 = {s: _r2(draws.moves[s] @ to_level.T, arrays.allocation.astype(np.float64)) for s in labels}
    if labels:
        stack = np.stack([r2[s] for s in labels])  # (sources, years, areas)
        top = stack.argmax(axis=0)
        cols["most_sensitive_input"] = np.array(labels, dtype=object)[top].reshape(-1)
        cols["most_sensitive_r2"] = stack.max(axis=0).reshape(-1)
    else:
        cols["most_sensitive_input"] = np.full(len(fy) * n, None, dtype=object)
        cols["most_sensitive_r2"] = np.zeros(len(fy) * n)
    bands = base.with_columns(**{k: pl.Series(v) for k, v in cols.items()})
    bands = bands.with_columns(
        [pl.col(c).cast(pl.Int64) for c in bands.columns if c.startswith(("allocation_", "grant_"))])
    sens = pl.concat([base.with_columns(input=pl.lit(s), r2=pl.Series(r2[s].reshape(-1))) for s in labels]) \
        if labels else base.with_columns(input=pl.lit(None, pl.String), r2=pl.lit(None, pl.Float64)).head(0)
    return UncertaintyResult(bands, sens, draws, arrays, draws.sources)
