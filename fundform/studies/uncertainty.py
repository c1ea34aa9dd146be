"""Uncertainty: every figure with the range its inputs allow (docs/uncertainty.md).

The draws of an uncertainty file (engine.draws) are evaluated together by the run's own stages along the data axis
(`outcome.evaluate` with `Scenarios(draws=...)`), in chunks on a thread per core as a sweep's scenarios are, or as
tasks on a Dask cluster (studies.executors). Each draw is a run on its variant dataset, to the penny. What comes back,
per area and year:

- the central figure (the run's own) and the 5th, 50th and 95th percentiles over the draws of the target share, the
  allocation and the grant;
- the probability that the area is held at a floor or at a ceiling;
- the 5th and 95th percentile of its rank by grant per resident (1 = the most per resident);
- the inputs that move it most: each source's share of the variance of the area's allocation, with the rest
  (interactions and nonlinearity), adding to 1 (`Decomposition`), each with its Monte Carlo standard error; and the
  source with the largest share;
- the inputs it rests on that are borrowed from another area (declared in the data).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import polars as pl

from fundform.base.errors import EnvironmentFailure, FundformError, present
from fundform.engine.draws import DataDraws, authority_population, make_draws
from fundform.engine.outcome import evaluate
from fundform.engine.params import RunParameters
from fundform.engine.results import DrawArrays, RunResult, UncertaintyResult
from fundform.engine.scenarios import Scenarios
from fundform.engine.settlement.control_total import settlement_years
from fundform.engine.settlement.transition import BOUND_CEILING, BOUND_FLOOR
from fundform.formula.scenario import LoadedFormula
from fundform.formula.spec import FormulaSpec
from fundform.inputs.dataset import Dataset
from fundform.inputs.uncertainty import UncertaintySpec

if TYPE_CHECKING:
    from fundform.studies.executors import Executor

CHUNK = 250  # draws evaluated together: (250, years, areas) arrays, a few tens of MB at lower tier
SPILL_ABOVE = 20_000  # draws: beyond, each chunk's figures go to a temporary folder, read back a year at a time
QUANTILES = (0.05, 0.5, 0.95)


class DrawsWriter:
    """Every draw's figures into a temporary Parquet file, a chunk (one row group) at a time (draws.parquet)."""

    def __init__(self, codes: list[str], years: list[str]):
        from fundform.outputs.schema import DRAWS
        from fundform.outputs.write import to_arrow

        self.codes, self.years, self.columns, self.to_arrow = codes, years, DRAWS, to_arrow
        self.folder = Path(tempfile.mkdtemp(prefix="fundform-draws-out-"))
        self.path = self.folder / "draws.parquet"
        self.writer: Any = None  # a pyarrow ParquetWriter once the first chunk arrives

    def add(self, lo: int, part: DrawArrays) -> None:
        import pyarrow.parquet as pq

        s, y, a = part.allocation.shape
        frame = pl.DataFrame({
            "draw": np.repeat(np.arange(lo, lo + s, dtype=np.int32), y * a),
            "area_code": np.tile(np.array(self.codes, dtype=object), s * y).tolist(),
            "financial_year": np.tile(np.repeat(np.array(self.years, dtype=object), a), s).tolist(),
            "target_share": part.target_share.reshape(-1), "allocation": part.allocation.reshape(-1),
            "grant": part.grant.reshape(-1), "held_at_floor": part.floor.reshape(-1),
            "held_at_ceiling": part.ceiling.reshape(-1)})
        table = self.to_arrow(frame, self.columns, None, {})
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.path, table.schema, compression="zstd")
        self.writer.write_table(table)

    def close(self) -> Path:
        if self.writer is not None:
            self.writer.close()
        return self.path


def _chunk_arrays(data: Dataset, spec: FormulaSpec, params: RunParameters, draws: DataDraws,
                  values: dict[str, float] | None = None) -> DrawArrays:
    """One chunk of draws settled together; `values`: numbers of the version set the same in every draw (a
    scenario's, as --set paths)."""
    scen_values = {k: np.full(draws.size, float(v)) for k, v in (values or {}).items()}
    oc = evaluate(data, spec, params, Scenarios(size=draws.size, values=scen_values, draws=draws, detail=False))
    total = oc.targets.sum(axis=-1, keepdims=True)  # target share: of all areas' target allocations, in pence
    bounds = oc.bounds  # (streams, S, years, areas)
    return DrawArrays(target_share=oc.targets / total, allocation=oc.allocation, grant=oc.grant,
                      grant_per_head=oc.grant_per_head, floor=(bounds == BOUND_FLOOR).any(axis=0),
                      ceiling=(bounds == BOUND_CEILING).any(axis=0))


def draws_chunk_task(task: tuple[Any, ...]) -> DrawArrays:
    """One chunk of draws as a task for another process or machine (fundform.studies.executors): the dataset is
    read and checked there once, by content; the draws travel as arrays."""
    from fundform.studies.executors import worker_data

    directory, allow_implausible, spec, params, draws = task
    return _chunk_arrays(worker_data(directory, allow_implausible), spec, params, draws)


def draw_chunks(data: Dataset, spec: FormulaSpec, params: RunParameters, draws: DataDraws, chunk: int = CHUNK,
                *, workers: int | None = None, executor: Executor | None = None, values: dict[str, float] | None = None
                ) -> Iterator[tuple[int, int, DrawArrays]]:
    """(lo, hi, DrawArrays) chunk by chunk, in order: on threads of this process (NumPy and Polars release the GIL),
    a few chunks at a time, or as tasks of `executor` (a Dask cluster: studies.executors), each fetched when the
    caller reaches it. Only the chunks being settled are in memory."""
    from fundform.studies.executors import Threads

    parts = [(lo, min(lo + chunk, draws.size)) for lo in range(0, draws.size, chunk)]
    ex = executor or Threads(workers)
    if ex.name != "local":
        done = ex.map(draws_chunk_task, [(str(data.directory), data.allow_implausible, spec, params,
                                          draws.chunk(lo, hi)) for lo, hi in parts])
        yield from ((lo, hi, d) for (lo, hi), d in zip(parts, done))
        return
    width = max(1, getattr(ex, "workers", None) or os.cpu_count() or 1)
    for k in range(0, len(parts), width):  # a batch of chunks at a time: memory bounded by the batch
        batch = parts[k:k + width]
        done = ex.map(lambda p: _chunk_arrays(data, spec, params, draws.chunk(*p), values), batch)
        yield from ((lo, hi, d) for (lo, hi), d in zip(batch, done))


def evaluate_draws(data: Dataset, spec: FormulaSpec, params: RunParameters, draws: DataDraws, chunk: int = CHUNK,
                   *, workers: int | None = None, executor: Executor | None = None, values: dict[str, float] | None = None) -> DrawArrays:
    """Every draw's figures at once (a few hundred draws: the explorer's bands, a test); a run's bands stream
    them instead (run_uncertainty)."""
    done = [d for _, _, d in draw_chunks(data, spec, params, draws, chunk, workers=workers,
                                                     executor=executor, values=values)]
    return DrawArrays(**{f: np.concatenate([getattr(d, f) for d in done]) for f in DrawArrays.__dataclass_fields__})


class YearBlocks:
    """An (S, years, areas) array written chunk by chunk and read back a year at a time: in memory, or, beyond
    SPILL_ABOVE draws, in a temporary folder (one file per chunk, years first), so 100,000 draws hold one year of
    one figure at a time (237 MB at lower tier) rather than every figure of every year."""

    def __init__(self, size: int, years: int, areas: int, dtype: npt.DTypeLike, folder: Path | None):
        self.size, self.years, self.areas, self.dtype, self.folder = size, years, areas, np.dtype(dtype), folder
        self.mem = None if folder else np.empty((years, size, areas), dtype=dtype)
        self.parts: list[tuple[int, int, Path]] = []

    def write(self, lo: int, arr: np.ndarray) -> None:
        block = np.ascontiguousarray(arr.transpose(1, 0, 2), dtype=self.dtype)  # (years, c, areas)
        if self.mem is not None:
            self.mem[:, lo:lo + arr.shape[0]] = block
            return
        path = present(self.folder, "the spill folder") / f"{id(self)}-{lo}.bin"
        block.tofile(path)
        self.parts.append((lo, arr.shape[0], path))

    def year(self, t: int) -> np.ndarray:
        """(S, areas) year t's figure in every draw."""
        if self.mem is not None:
            return self.mem[t]
        out = np.empty((self.size, self.areas), dtype=self.dtype)
        for lo, c, path in self.parts:
            out[lo:lo + c] = np.fromfile(path, dtype=self.dtype, count=c * self.areas,
                                         offset=t * c * self.areas * self.dtype.itemsize).reshape(c, self.areas)
        return out

    def whole(self) -> np.ndarray:
        """(S, years, areas), in memory only."""
        return present(self.mem, "the draws in memory").transpose(1, 0, 2)


REMAINDER = "interactions and nonlinearity"  # the variance no source's linear effect explains
BATCHES = 10  # batch means: each share's Monte Carlo standard error from the spread over 10 batches of draws


class Decomposition:
    """Each source's share of the variance of an area's allocation over the draws, adding to 1 with the rest.

    The allocation y of each area and year is regressed, over the draws, on two features per source: the source's
    drawn change in the area itself (its members' population-weighted change above lower tier) and in England (all
    authorities, population-weighted); a share moves with both. With the regression's coefficients b, source k's
    share is `b_k . cov(x_k, y) / var(y)`; the shares sum to the regression's R^2 exactly, and the rest, `1 - R^2`,
    is what no source's linear effect explains (interactions and nonlinearity). Sources are drawn independently, so
    a share is (within Monte Carlo error) the variance the source's linear effect carries: a first-order index.
    Running sums only, shifted by the first chunk's means; kept per batch of draws, so each share's Monte Carlo
    standard error is the spread of the batches' shares / sqrt(batches)."""

    def __init__(self, labels: list[str], size: int):
        self.labels, self.size = labels, size
        self.shift_x = self.shift_y = None
        self.sums: list[dict] = []

    def add(self, first: int, x: np.ndarray, y: np.ndarray) -> None:
        """x (S, years, areas, features), y (S, years, areas) for draws first .. first + S - 1."""
        if self.shift_x is None:
            self.shift_x, self.shift_y = x.mean(axis=0), y.mean(axis=0)
            self.sums = [dict(n=0, sx=0.0, sy=0.0, sxx=0.0, sxy=0.0, syy=0.0) for _ in range(BATCHES)]
        xc, yc = x - self.shift_x, y - self.shift_y
        batch = (np.arange(first, first + x.shape[0]) * BATCHES) // max(self.size, 1)
        for b in np.unique(batch):
            rows = batch == b
            xb, yb, s = xc[rows], yc[rows], self.sums[int(b)]
            s["n"] += int(rows.sum())
            s["sx"] = s["sx"] + xb.sum(axis=0)
            s["sy"] = s["sy"] + yb.sum(axis=0)
            s["sxx"] = s["sxx"] + np.einsum("syaf,syag->yafg", xb, xb)
            s["sxy"] = s["sxy"] + np.einsum("syaf,sya->yaf", xb, yb)
            s["syy"] = s["syy"] + (yb * yb).sum(axis=0)

    @staticmethod
    def _shares(s: dict, k: int) -> np.ndarray:
        """(sources + 1, years, areas): each source's share and the remainder, from one set of sums."""
        n = s["n"]
        cxx = s["sxx"] - np.einsum("yaf,yag->yafg", s["sx"], s["sx"]) / n
        cxy = s["sxy"] - s["sx"] * s["sy"][..., None] / n
        cyy = s["syy"] - s["sy"] ** 2 / n
        b = np.einsum("yafg,yag->yaf", np.linalg.pinv(cxx, hermitian=True), cxy)
        part = b * cxy  # (years, areas, features): each feature's part of the explained variance
        varies = cyy > n  # the allocation varies over the draws by more than a penny (its variance, pence^2, > 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            per = np.stack([part[..., 2 * j:2 * j + 2].sum(axis=-1) for j in range(k)])
            shares = np.where(varies, per / cyy, np.nan)  # nothing to share where nothing varies (held at a floor)
        return np.concatenate([shares, np.where(varies, 1 - shares.sum(axis=0), np.nan)[None]])

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """(shares, standard errors), each (sources + 1, years, areas): the last row the remainder."""
        k = len(self.labels)
        whole = {key: sum(s[key] for s in self.sums) for key in self.sums[0]}
        shares = self._shares(whole, k)
        used = [s for s in self.sums if s["n"] > 2 * (2 * k + 1)]
        if len(used) < 2:
            return shares, np.full_like(shares, np.nan)
        each = np.stack([self._shares(s, k) for s in used])
        count = (~np.isnan(each)).sum(axis=0)
        with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a batch in which the area never varies: left out
            se = np.where(count >= 2, np.nanstd(each, axis=0, ddof=1) / np.sqrt(count), np.nan)
        return shares, np.where(np.isnan(shares), np.nan, se)


def memory_plan(size: int, years: int, codes: int, areas: int, sources: int) -> tuple[int, int, bool]:
    """(bytes held in memory, bytes spilled to disk, whether it spills) for `size` draws: the draws (a z and a move
    per source and authority), the chunks being settled, and the four figures kept per draw, year and area (in
    memory up to SPILL_ABOVE draws, on disk beyond), plus one year of one figure read back."""
    draws = size * codes * 8 * (1 + 2 * sources)
    chunks = 4 * CHUNK * years * max(codes, areas) * 8 * 12  # a batch of chunks settling, with their stages' arrays
    kept = size * years * areas * (8 * 4 + 2)
    spill = size > SPILL_ABOVE
    year_block = 3 * size * areas * 8  # one figure's year, its sort and the ranks
    return draws + chunks + (year_block if spill else kept + year_block), (kept if spill else 0), spill


def check_fits(size: int, years: int, codes: int, areas: int, sources: int, *, folder: Path) -> None:
    """Refuse before any work a request this machine cannot hold: memory the system says is available
    (/proc/meminfo MemAvailable, where it says), and disk in the temporary folder for what spills."""
    held, spilled, _ = memory_plan(size, years, codes, areas, sources)
    avail = _available_memory()
    if avail is not None and held > avail:
        raise EnvironmentFailure(f"{size:,} draws need about {held / 2**30:.1f} GiB of memory and this machine has "
                                 f"{avail / 2**30:.1f} GiB available: ask for fewer draws or free memory (nothing "
                                 "was computed)")
    if spilled:
        free = shutil.disk_usage(folder).free
        if spilled > free:
            raise EnvironmentFailure(f"{size:,} draws spill {spilled / 2**30:.1f} GiB to {folder} and it has "
                                     f"{free / 2**30:.1f} GiB free: set TMPDIR to a larger disk or ask for fewer "
                                     "draws (nothing was computed)")


def _available_memory() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def percentiles(x: np.ndarray) -> np.ndarray:
    """(3, years, areas) the 5th, 50th and 95th percentiles over the draws (the first axis), linear interpolation;
    money in pence is then rounded to the penny by the caller (floor(x + 0.5))."""
    return np.quantile(x.astype(np.float64), QUANTILES, axis=0, method="linear")


def _rank(per_head: np.ndarray) -> np.ndarray:
    """(..., areas) each area's rank by grant per resident in each draw (and year): 1 = the most per resident."""
    order = np.argsort(-per_head, axis=-1, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(1, per_head.shape[-1] + 1).reshape((1,) * (per_head.ndim - 1) + (-1,)),
                      axis=-1)
    return rank


def _england_weights(data: Dataset, codes: list[str], year: str) -> np.ndarray:
    """(authorities,) each authority's share of England's residents: an input's change in England."""
    w = authority_population(data, codes, year)
    return w / w.sum()


def _borrowed_words(draws: DataDraws, to_level: np.ndarray) -> np.ndarray:
    """(areas,) for each area resting on a borrowed input value (one of its authorities borrows it), which value
    and from whom; None elsewhere."""
    idx = {c: i for i, c in enumerate(draws.codes)}
    words: list[list[str]] = [[] for _ in range(to_level.shape[0])]
    for label, pairs in draws.borrowed.items():
        for code, donor in sorted(pairs.items()):
            for a in np.flatnonzero(to_level[:, idx[code]] > 0):
                words[a].append(f"{label} of {code} is {donor}'s")
    return np.array(["; ".join(w) if w else None for w in words], dtype=object)


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


def run_uncertainty(data: Dataset, formula: LoadedFormula, params: RunParameters, unc: UncertaintySpec,
                    central: RunResult, *, chunk: int = CHUNK, workers: int | None = None,
                    executor: Executor | None = None) -> UncertaintyResult:
    """The draws of `unc` around the run `central` (its RunResult: the figures with no uncertainty).

    Over 80 lines: one pass over the draws' chunks fills every band and the decomposition at once, so no draw is held
    twice."""
    spec = formula.spec
    fy = settlement_years(params.start_year, params.years)["financial_year"].to_list()
    if params.level.startswith("deal:"):
        raise FundformError("uncertainty runs at the levels of the dataset's lookup, not on a deal file's areas")
    alloc = central.allocations.sort("year_index", "area_code")
    area_codes = alloc["area_code"].unique(maintain_order=True).to_list()
    n = len(area_codes)
    shape = (len(fy), n)
    check_fits(unc.draws, len(fy), data.tables["areas"].height, n, len(unc.sources),
               folder=Path(tempfile.gettempdir()))
    draws = make_draws(data, unc, spec, fy)  # before any draw is made: a request that cannot fit is refused
    S = draws.size
    labels = list(draws.moves)
    to_level = _member_weights(data, params.level, draws.codes, area_codes, fy[0])
    with tempfile.TemporaryDirectory(prefix="fundform-draws-") if S > SPILL_ABOVE else nullcontext() as spill:
        where = Path(spill) if spill else None
        kept = {k: YearBlocks(S, len(fy), n, dt, where) for k, dt in
                (("target_share", np.float64), ("allocation", np.int64), ("grant", np.int64),
                 ("grant_per_head", np.float64))}
        floors, ceilings = np.zeros(shape, np.int64), np.zeros(shape, np.int64)
        decomposition = Decomposition(labels, S)
        england = _england_weights(data, draws.codes, fy[0])
        keep_bounds = S <= SPILL_ABOVE
        bounds: dict[str, list[np.ndarray]] = {"floor": [], "ceiling": []}
        writer = DrawsWriter(area_codes, fy) if unc.write_draws else None
        for lo, hi, part in draw_chunks(data, spec, params, draws, chunk, workers=workers, executor=executor):
            for k, block in kept.items():
                block.write(lo, getattr(part, k))
            if writer is not None:
                writer.add(lo, part)
            floors += part.floor.sum(axis=0)
            ceilings += part.ceiling.sum(axis=0)
            if keep_bounds:
                bounds["floor"].append(part.floor)
                bounds["ceiling"].append(part.ceiling)
            y = part.allocation.astype(np.float64)
            sub = draws.chunk(lo, hi)
            if labels:
                feats = []
                for s_ in labels:
                    m = sub.move(s_)
                    feats += [m @ to_level.T, np.broadcast_to((m @ england)[..., None], y.shape)]
                decomposition.add(lo, np.stack(feats, axis=-1), y)
            del part, y
        q = {name: np.stack([percentiles(kept[name].year(t)) for t in range(len(fy))], axis=1)
             for name in ("target_share", "allocation", "grant")}
        rq = np.stack([np.quantile(_rank(kept["grant_per_head"].year(t)), (0.05, 0.95), axis=0, method="lower")
                       for t in range(len(fy))], axis=1)
        arrays = (DrawArrays(**{k: kept[k].whole() for k in ("target_share", "allocation", "grant", "grant_per_head")},
                             floor=np.concatenate(bounds["floor"]), ceiling=np.concatenate(bounds["ceiling"]))
                  if keep_bounds else None)

    def central_of(col: str) -> np.ndarray:
        return alloc[col].cast(pl.Float64).to_numpy().reshape(shape)  # money: pence, as computed

    base = alloc.select("area_code", "area_name", "area_level", "financial_year", "year_index")
    target = central_of("target_allocation")
    cols = {"target_share_central": (target / target.sum(axis=-1, keepdims=True)).reshape(-1)}
    for k, p in zip(("p5", "p50", "p95"), q["target_share"]):
        cols[f"target_share_{k}"] = p.reshape(-1)
    for name in ("allocation", "grant"):
        cols[f"{name}_central"] = central_of(name).reshape(-1)  # pence
        for k, p in zip(("p5", "p50", "p95"), q[name]):
            cols[f"{name}_{k}"] = np.floor(p + 0.5).reshape(-1)  # a percentile of pence, to the penny
    cols["p_floor"] = (floors / S).reshape(-1)
    cols["p_ceiling"] = (ceilings / S).reshape(-1)
    cols["rank_p5"] = rq[0].reshape(-1).astype(np.int32)
    cols["rank_p95"] = rq[1].reshape(-1).astype(np.int32)
    if labels:
        shares, errors = decomposition.result()  # (sources + 1, years, areas)
        varies = ~np.isnan(shares[0])
        top = np.nan_to_num(shares[:-1], nan=-np.inf).argmax(axis=0)
        cols["most_sensitive_input"] = np.asarray(np.where(varies, np.array(labels, dtype=object)[top], None)
                                                  ).reshape(-1)
        cols["most_sensitive_share"] = np.take_along_axis(shares[:-1], top[None], 0)[0].reshape(-1)
    else:
        shares = errors = np.zeros((1, len(fy), n))
        cols["most_sensitive_input"] = np.full(len(fy) * n, None, dtype=object)
        cols["most_sensitive_share"] = np.zeros(len(fy) * n)
    cols["borrowed_inputs"] = np.tile(_borrowed_words(draws, to_level), len(fy))
    bands = base.with_columns(**{k: pl.Series(v.tolist(), dtype=pl.String) if v.dtype == object else
                                 pl.Series(v, nan_to_null=v.dtype.kind == "f") for k, v in cols.items()})
    bands = bands.with_columns(
        [pl.col(c).cast(pl.Int64) for c in bands.columns if c.startswith(("allocation_", "grant_"))])
    sens = pl.concat([base.with_columns(input=pl.lit(s),
                                        share_of_variance=pl.Series(shares[j].reshape(-1), nan_to_null=True),
                                        share_se=pl.Series(errors[j].reshape(-1), nan_to_null=True))
                      for j, s in enumerate([*labels, REMAINDER])]) if labels else base.with_columns(
        input=pl.lit(None, pl.String), share_of_variance=pl.lit(None, pl.Float64),
        share_se=pl.lit(None, pl.Float64)).head(0)
    return UncertaintyResult(bands=bands, sensitivity=sens, draws=draws, arrays=arrays, sources=draws.sources,
                             draws_file=writer.close() if writer is not None else None)
