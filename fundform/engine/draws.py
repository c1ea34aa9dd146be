"""The data axis: draws of the inputs, each a consistent variant of the dataset, evaluated together by the same
stages as the scenario axis (docs/uncertainty.md).

A draw changes the inputs, never the formula: each lower-tier authority's population in each year (a factor on all
its rows: every age and sex), and the values of the indicator columns the version's need reads. Its variant dataset
is the dataset with those changes written in (`variant_tables`); the draw's need is computed here exactly as the
run's own stages compute it from that variant (the same sums, in the same order, to the same bits), so every draw
equals a run on its variant dataset to the penny, and a draw that changes nothing is the run.

Sources, each seeded on its own (the seed and the source's place in the file), so adding a source leaves the others'
draws as they were:

- population, `vintages`: the spread between the central projection and a published variant (population_variants),
  r = variant / central - 1 (taken as one standard deviation, or as a 90% half-width: `spread_is`), split into its
  region's part R (the region's population-weighted r, shared by its authorities) and the authority's own e = r - R:
  factor = 1 + z_g x R + z_i x e, one standard normal z per draw and region and one per draw and authority (the same
  z in every year: a projection's error persists), truncated to +-3; `structure = "independent"` draws r with one z
  per authority. A region's total then moves by exactly its own spread between the vintages;
- a value the data declares borrowed from another area ("substituted from <code>"): its donor's drawn estimate times
  the borrowing's own lognormal error (the source's `borrowed_sd`, else the spread of the value among the donor's
  region's other authorities);
- preventable mortality, `sampling`: the rate's Poisson sampling error from the deaths it implies (rate x residents
  under 75 / 100,000): rate x Gamma(D, 1) / D, mean the rate, standard deviation rate / sqrt(D);
- any indicator column, `distribution`: normal (sd), lognormal (sigma, mean kept) or triangular (low, high), of the
  value (relative) or in its unit, clipped to the source's min and max;
- `draws`: the user's own table of draws.

Every drawn number then passes the run's own gate (engine.draw_gate).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from fundform.base.errors import FundformError, InternalError, InvalidInput, Problem, present
from fundform.base.numeric import SCALE, fixed_sum
from fundform.engine.draw_gate import check_bounds, population_gate
from fundform.formula.spec import FormulaSpec, Need
from fundform.inputs.contracts import row_labels
from fundform.inputs.dataset import Dataset
from fundform.inputs.files import check_user_file
from fundform.inputs.tables import CONTRACTS
from fundform.inputs.uncertainty import Source, UncertaintySpec, draws_contract

if TYPE_CHECKING:
    from fundform.engine.need.inputs import NeedInputs

INT64_SAFE = 9.0e18  # the exact population sums run in 64-bit integers of 10^-12 persons: areas below 9 million
Z_TRUNCATE = 3.0
UNDER_75 = 75


class Factors(Mapping):
    """year -> (S, areas) population factors, computed when a year is read: 1 + z_i e_i,y + z_g R_g,y, an
    authority's own residual e (one z per draw and authority) and, for regional draws, its region's component R
    (one z per draw and region, shared by the region's authorities); the same z in every year, one spread per year.
    So 100,000 draws hold 237 MB, not a factor array per year, and a factor is the same bits wherever it is read."""

    def __init__(self, z: np.ndarray, spreads: dict[str, np.ndarray], zr: np.ndarray | None = None,
                 regional: dict[str, np.ndarray] | None = None, region_of: np.ndarray | None = None):
        self.z, self.spreads = z, spreads
        self.zr, self.regional, self.region_of = zr, regional, region_of

    def __getitem__(self, year: str) -> np.ndarray:
        f = self.z * self.spreads[year][None, :]
        f += 1.0
        if self.zr is not None:
            shared = self.zr[:, present(self.region_of, "the draws' regions")]
            shared *= present(self.regional, "the draws' regional spreads")[year][None, :]
            f += shared
        return f

    def __iter__(self) -> Iterator[str]:
        return iter(self.spreads)

    def __len__(self) -> int:
        return len(self.spreads)

    def rows(self, lo: int, hi: int) -> Factors:
        return Factors(self.z[lo:hi], self.spreads, None if self.zr is None else self.zr[lo:hi], self.regional,
                       self.region_of)

    def tiled(self, times: int) -> Factors:
        return Factors(np.tile(self.z, (times, 1)), self.spreads,
                       None if self.zr is None else np.tile(self.zr, (times, 1)), self.regional, self.region_of)


@dataclass(kw_only=True)
class DataDraws:
    """`size` draws of the inputs, for the lower-tier authorities `codes` (in code order)."""

    size: int
    codes: list[str]
    years: list[str]
    # year -> (S, areas): all ages, every row (Factors for vintages, arrays for a user's draws table)
    pop_factor: Mapping[str, np.ndarray] = field(default_factory=dict)
    values: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)  # (table, column) -> (S, areas)
    # source -> (S, areas) the relative change of an indicator; population's (None) is read from its factors
    moves: dict[str, np.ndarray | None] = field(default_factory=dict)
    sources: list[dict] = field(default_factory=list)  # each source as the manifest states it
    first: int = 0  # the first draw's number (a chunk of a larger set)
    # source -> {authority: the authority whose value it borrows}: declared in the data ("substituted from <code>")
    borrowed: dict[str, dict[str, str]] = field(default_factory=dict)
    borrowing: dict[str, dict[str, dict]] = field(default_factory=dict)  # source -> {authority: its borrowing's sd}
    structure: dict[str, dict] = field(default_factory=dict)  # source -> how its spread is shared (the manifest's)

    token: str = ""  # names these draws (the uncertainty file's hash and seed): a chunk's derived need is reused
    period: int = 0  # tiled: the draws repeat every `period` scenarios (a design's candidates, each over every draw)

    def chunk(self, lo: int, hi: int) -> DataDraws:
        f = self.pop_factor
        return replace(self, size=hi - lo, first=self.first + lo, period=0,
                       pop_factor=f.rows(lo, hi) if isinstance(f, Factors) else {y: v[lo:hi] for y, v in f.items()},
                       values={k: v[lo:hi] for k, v in self.values.items()},
                       moves={k: None if v is None else v[lo:hi] for k, v in self.moves.items()})

    def tiled(self, times: int) -> DataDraws:
        """The same draws for each of `times` candidates in turn: scenario c x size + d is draw d."""
        tile = lambda a: np.tile(a, (times,) + (1,) * (a.ndim - 1))
        f = self.pop_factor
        return replace(self, size=self.size * times, period=self.size,
                       pop_factor=f.tiled(times) if isinstance(f, Factors) else {y: tile(v) for y, v in f.items()},
                       values={k: tile(v) for k, v in self.values.items()},
                       moves={k: None if v is None else tile(v) for k, v in self.moves.items()})

    def move(self, label: str) -> np.ndarray:
        """(S, years, areas) the relative change source `label` makes to its input, each draw and year."""
        m = self.moves[label]
        if m is None:
            return np.stack([self.factor(y) - 1.0 for y in self.years], axis=1)
        return np.broadcast_to(m[:, None, :], (self.size, len(self.years), len(self.codes)))

    def untiled(self) -> DataDraws:
        """One period of tiled draws (the draws themselves)."""
        return self.chunk(0, self.period) if self.period else self

    def factor(self, year: str) -> np.ndarray:
        f = self.pop_factor.get(year)
        return np.ones((self.size, len(self.codes))) if f is None else f


def _rng(seed: int, k: int) -> np.random.Generator:
    return np.random.default_rng([seed, k])


def _z(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return np.clip(rng.standard_normal(shape), -Z_TRUNCATE, Z_TRUNCATE)


def make_draws(data: Dataset, unc: UncertaintySpec, spec: FormulaSpec, years: list[str]) -> DataDraws:
    """The draws `unc` asks for, on the run's data and years, checked: every drawn value within its column's
    bounds (a draw that would make a population negative or a share leave [0, 1] is an error naming the source and
    the rows), before anything is settled."""
    if spec.need.method != "age_cost_curve":
        raise FundformError(f"{spec.id}: uncertainty draws vary the population and the indicators an age-cost-curve "
                            "need reads; this version's need is NHS England's practice weighted populations, which "
                            "are published without an error (no source to draw from)")
    codes = sorted(data["areas"]["area_code"].to_list())
    S = unc.draws
    out = DataDraws(size=S, codes=codes, years=years, token=f"{unc.sha256}:{unc.seed}:{','.join(years)}")
    read = {(i.table, i.column) for n in [spec.need, *(y.need for y in map(spec.at, years))] for i in n.indicators}
    for k, src in enumerate(unc.sources):
        rng = _rng(unc.seed, k)
        if src.input == "population":
            _population(out, data, src, unc, rng)
        else:
            key = (src.input, src.column)
            if key not in read:
                raise FundformError(f"uncertainty source {src.label}: {spec.id} reads no such indicator (it reads "
                                    f"{', '.join(f'{t}.{c}' for t, c in sorted(read)) or 'none'})")
            central = _column(data, src, codes)
            drawn = _indicator(data, src, unc, rng, central, codes=codes, years=years)
            borrowed = borrowed_values(data, src.input, src.column, codes)
            if borrowed and src.method != "draws":  # a borrowed value: its donor's estimate and the borrowing's error
                out.borrowed[src.label] = borrowed
                out.borrowing[src.label] = _borrow(data, src, drawn, central, codes, borrowed=borrowed,
                                                   rng=_rng(unc.seed, 1000 + k), year=years[0])
            check_bounds(src, drawn, codes, data, unc)
            out.values[key] = drawn
            with np.errstate(divide="ignore", invalid="ignore"):
                move = np.where(central != 0, drawn / central - 1, 0.0)
            out.moves[src.label] = move
        out.sources.append({**src.model_dump(exclude_none=True), "cited": _citation(src),
                            **({"borrowed_from": out.borrowed[src.label],
                                "borrowing": out.borrowing[src.label]} if src.label in out.borrowed else {}),
                            **out.structure.get(src.label, {})})
    population_gate(out, data, unc)
    return out


BORROWED = r"^substituted from (E\d{8})$"


def borrowed_values(data: Dataset, table: str, column: str | None, codes: list[str]) -> dict[str, str]:
    """The authorities whose `table.column` value is another's, as the data declares it: a text column
    `<column>_source` or `<table>_source` saying "substituted from <code>" (the Isles of Scilly's preventable
    mortality is Cornwall's, the City of London's Hackney's). Such a value has no sampling error of its own: it is
    drawn with its donor's (the same relative move in every draw), and the outputs flag it."""
    if table not in data.tables or not column:
        return {}
    t = data.tables[table]
    base = table.rsplit("/", 1)[-1]
    col = next((c for c in (f"{column}_source", f"{base}_source") if c in t.columns and t[c].dtype == pl.String), None)
    if col is None:
        return {}
    hits = t.select("area_code", donor=pl.col(col).str.extract(BORROWED, 1)).filter(pl.col("donor").is_not_null())
    known = set(codes)
    return {a: d for a, d in hits.iter_rows() if a in known and d in known and a != d}


def _borrow(data: Dataset, src: Source, drawn: np.ndarray, central: np.ndarray, codes: list[str], *,
            borrowed: dict[str, str], rng: np.random.Generator, year: str) -> dict[str, dict[str, Any]]:
    """Draw each borrowed value (in place) as its donor's estimate times the borrowing's own error: lognormal with
    the relative spread the source states (`borrowed_sd`), else the spread of the value among the other authorities
    of the donor's region (the population-weighted standard deviation of its log, the borrowed ones left out): how
    far an area's own value may lie from a neighbour's. Returns, per authority, the spread used and where it comes
    from, for the manifest."""
    idx = {c: i for i, c in enumerate(codes)}
    region = _region_codes(data, codes)
    pop = authority_population(data, codes, year)
    out = {}
    for code, donor in borrowed.items():
        i, j = idx[code], idx[donor]
        if src.borrowed_sd is not None:
            sd, how = src.borrowed_sd, src.borrowed_source
        else:
            peers = np.array([region[x] == region[j] and codes[x] not in borrowed and central[x] > 0
                              for x in range(len(codes))])
            logs, w = np.log(central[peers]), pop[peers]
            mean = (w * logs).sum() / w.sum()
            sd = float(np.sqrt((w * (logs - mean) ** 2).sum() / w.sum()))
            how = (f"estimated: the population-weighted spread of log {src.column} among the {int(peers.sum())} other "
                   f"authorities of the donor's region {region[j]}")
        own = np.exp(rng.standard_normal(drawn.shape[0]) * sd - sd ** 2 / 2)
        drawn[:, i] = (central[i] * drawn[:, j] / central[j] if central[j] else central[i]) * own
        out[code] = {"from": donor, "relative_sd": sd, "sd_source": how}
    return out


def _region_codes(data: Dataset, codes: list[str]) -> list[str]:
    """Each authority's ONS region (area_lookup, level region), in `codes` order; an authority without one is an
    error naming it."""
    lk = data["area_lookup"].filter(pl.col("level") == "region").group_by("area_code").agg(
        pl.col("target_code").sort_by("share", descending=True).first())
    got = dict(lk.iter_rows())
    missing = [c for c in codes if c not in got]
    if missing:
        raise FundformError(f"regional draws need each authority's region: area_lookup has no level region row for "
                            f"{len(missing)} authorities (e.g. {', '.join(missing[:5])})")
    return [got[c] for c in codes]


def authority_population(data: Dataset, codes: list[str], year: str | None = None) -> np.ndarray:
    """(authorities,) each authority's residents, all ages, in `year` (the population table's own where it holds
    no years), in `codes` order; 0 where it has none."""
    pop = (data.for_year(year) if year and data.population_years else data).tables["population"]
    s = pop.group_by("area_code").agg(pl.col("population").sum())
    return pl.DataFrame({"area_code": codes}).join(s, on="area_code", how="left", maintain_order="left")[
        "population"].fill_null(0.0).to_numpy()


def _citation(src: Source) -> str:
    if src.source:
        return src.source
    if src.method == "vintages":
        return (f"ONS subnational population projections: the {src.variant} variant against the population table "
                f"(population_variants; {CONTRACTS['population_variants'].source})")
    return ("OHID Fingertips 93721 (the rate) and the population table (residents under 75): deaths implied by the "
            "rate, Poisson sampling error as in OHID's confidence intervals for directly standardised rates")


def _population(out: DataDraws, data: Dataset, src: Source, unc: UncertaintySpec, rng: np.random.Generator) -> None:
    S, codes, years = out.size, out.codes, out.years
    if src.method == "vintages":
        if "population_variants" not in data.tables:
            raise FundformError(f"uncertainty source population: method vintages reads the optional table "
                                f"population_variants, which {data.directory} does not hold")
        t = data["population_variants"].filter(pl.col("variant") == src.variant)
        if t.height == 0:
            held = sorted(data["population_variants"]["variant"].unique().to_list())
            raise FundformError(f"uncertainty source population: no variant '{src.variant}' in population_variants "
                                f"(it holds {', '.join(held)})")
        z = _z(rng, (S, len(codes)))
        regional = (src.structure or "regional") == "regional"
        scale = 1.0 if (src.spread_is or "sd") == "sd" else 1 / 1.6448536269514722  # a 90% half-width: / z(0.95)
        region = _region_codes(data, codes) if regional else []
        names = sorted(set(region))
        region_of = np.array([names.index(r) for r in region], dtype=np.int64)  # empty unless regional
        spreads: dict[str, np.ndarray] = {}
        shared: dict[str, np.ndarray] = {}
        share: dict[str, float] = {}
        for y in years:
            ratio = (pl.DataFrame({"area_code": codes}).join(t.filter(pl.col("financial_year") == y),
                                                               on="area_code", how="left", maintain_order="left"))
            if ratio["ratio"].null_count() == len(codes):
                continue  # an estimate, not a projection: no spread between vintages
            if ratio["ratio"].null_count():
                missing = ratio.filter(pl.col("ratio").is_null())["area_code"].to_list()
                raise FundformError(f"uncertainty source population: population_variants has no {src.variant} ratio "
                                    f"for {y} for {len(missing)} authorities (e.g. {', '.join(missing[:5])})")
            r = (ratio["ratio"].to_numpy() - 1.0) * scale
            if not regional:
                spreads[y] = r
                continue
            # the region's component: its authorities' population-weighted spread, so a region's total moves by
            # exactly its own spread between the vintages; each authority keeps the rest as its own
            w = authority_population(data, codes, y)
            big_r = (np.bincount(region_of, w * r, len(names)) / np.bincount(region_of, w, len(names)))[region_of]
            shared[y], spreads[y] = big_r, r - big_r
            share[y] = float((w * big_r ** 2).sum() / (w * r ** 2).sum()) if (w * r ** 2).sum() else 0.0
        zr = _z(rng, (S, len(names))) if regional else None
        out.pop_factor = Factors(z, spreads, zr, shared if regional else None, region_of if regional else None)
        out.moves["population"] = None
        out.structure["population"] = {
            "structure": "regional" if regional else "independent", "spread_is": src.spread_is or "sd",
            **({"regions": len(names), "regional_share_of_spread": share} if regional else {})}
        return
    frame = _read_draws(unc, src, codes, years)
    factors = {}
    for y in years:
        f = np.ones((S, len(codes)))
        part = frame.filter(pl.col("financial_year") == y)
        f[part["draw"].to_numpy(), part["i"].to_numpy()] = part["factor"].to_numpy()
        factors[y] = f
    out.pop_factor = factors
    out.moves["population"] = None


def _column(data: Dataset, src: Source, codes: list[str]) -> np.ndarray:
    t = data[src.input]
    if src.column not in t.columns:
        raise FundformError(f"uncertainty source {src.label}: the table {src.input} has no column {src.column}")
    v = pl.DataFrame({"area_code": codes}).join(t.select("area_code", src.column), on="area_code", how="left",
                                                maintain_order="left")[src.column]
    return v.cast(pl.Float64).to_numpy()


def unc_year(data: Dataset, years: list[str]) -> str:
    """The year whose residents under 75 give a rate's deaths: the run's first (or the population's own)."""
    return years[0] if data.population_years else ""


def _indicator(data: Dataset, src: Source, unc: UncertaintySpec, rng: np.random.Generator, central: np.ndarray, *,
               codes: list[str], years: list[str]) -> np.ndarray:
    S, n = unc.draws, len(codes)
    if src.method == "sampling":
        pop = data.for_year(unc_year(data, years)).tables["population"]
        under = (pop.filter(pl.col("age") < UNDER_75).group_by("area_code").agg(pl.col("population").sum()))
        p = pl.DataFrame({"area_code": codes}).join(under, on="area_code", how="left", maintain_order="left")[
            "population"].fill_null(0.0).to_numpy()
        deaths = central * p / 100_000
        if (deaths <= 0).any():
            bad = [c for c, d in zip(codes, deaths) if d <= 0][:5]
            raise FundformError(f"uncertainty source {src.label}: no deaths implied for {', '.join(bad)} (rate x "
                                "residents under 75 is 0): the sampling error is not defined there")
        return central[None, :] * rng.gamma(deaths[None, :], 1.0, (S, n)) / deaths[None, :]
    if src.method == "draws":
        frame = _read_draws(unc, src, codes, [])
        out = np.empty((S, n))
        out[frame["draw"].to_numpy(), frame["i"].to_numpy()] = frame["value"].to_numpy()
        return out
    if src.distribution == "normal":
        e = rng.standard_normal((S, n)) * present(src.sd, f"uncertainty source {src.label}: sd")
        drawn = central * (1 + e) if src.relative else central + e
    elif src.distribution == "lognormal":
        sigma = present(src.sigma, f"uncertainty source {src.label}: sigma")
        drawn = central * np.exp(rng.standard_normal((S, n)) * sigma - sigma ** 2 / 2)
    else:
        e = rng.triangular(present(src.low, f"uncertainty source {src.label}: low"), 0.0,
                           present(src.high, f"uncertainty source {src.label}: high"), (S, n))
        drawn = central * (1 + e) if src.relative else central + e
    if src.min is not None or src.max is not None:
        drawn = np.clip(drawn, src.min if src.min is not None else -np.inf, src.max if src.max is not None else np.inf)
    return drawn


def _read_draws(unc: UncertaintySpec, src: Source, codes: list[str], years: list[str]) -> pl.DataFrame:
    """A user's table of draws, checked: every draw 0..N-1 for every authority (and every year of the run, for
    population), nothing else."""
    path = unc.file_of(src)
    contract = draws_contract(src)
    frame, problems = check_user_file(path, contract)
    if frame is None or problems:
        raise InvalidInput(problems, str(path.parent))
    keys = ["draw", "area_code", *(["financial_year"] if src.input == "population" else [])]
    grid = pl.DataFrame({"draw": np.arange(unc.draws)}).join(pl.DataFrame({"area_code": codes}), how="cross")
    if src.input == "population":
        grid = grid.join(pl.DataFrame({"financial_year": years}), how="cross")
    frame = frame.with_columns(pl.col("draw").cast(pl.Int64))
    missing = grid.join(frame, on=keys, how="anti")
    extra = frame.with_row_index("__row").join(grid, on=keys, how="anti")
    problems = []
    if missing.height:
        problems.append(Problem(path.name, ", ".join(keys), f"{missing.height} draw(s) of an area or year missing",
                                f"one row per draw (0 to {unc.draws - 1}) and authority"
                                + (" and year of the run" if src.input == "population" else ""),
                                row_labels(missing, keys)))
    if extra.height:
        problems.append(Problem(path.name, ", ".join(keys), f"{extra.height} row(s) of a draw, area or year the "
                                "run does not have", f"draws 0 to {unc.draws - 1} of the dataset's authorities",
                                row_labels(extra, keys)))
    if problems:
        raise InvalidInput(problems, str(path.parent))
    return frame.join(pl.DataFrame({"area_code": codes}).with_row_index("i"), on="area_code")


# -- each draw's need, exactly as a run on its variant dataset computes it --------------------------------------

def _exact(x: np.ndarray) -> np.ndarray:
    """fixed_sum's rounding of each value: int64 counts of 10^-12 (numeric.fixed_sum, in NumPy). Overwrites x, whose
    values the caller has checked are below 9 x 10^6 (so their counts fit in 64 bits)."""
    x *= float(SCALE)
    np.rint(x, out=x)
    return x.astype(np.int64)


def _run_sums(ints: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Sums of the contiguous runs of `ints` (first axis) that begin at `starts`, exact: differences of a running
    sum, which may wrap past 2^63 on the way (two's complement keeps every difference that fits exact)."""
    with np.errstate(over="ignore"):
        cs = np.cumsum(ints, axis=0)
        ends = np.r_[starts[1:], ints.shape[0]] - 1
        out = cs[ends]
        out[1:] -= cs[starts[1:] - 1]
    return out


@dataclass(frozen=True, kw_only=True)
class YearRows:
    """One year's population rows at lower tier, sorted by authority and age as the need reads them, with the
    boundaries of its (area, age), (area, band) and area groups (contiguous runs of the sorted rows)."""

    rows: np.ndarray  # (rows,) persons, sorted by area, age
    area_of_row: np.ndarray  # (rows,) index into codes
    group_starts: np.ndarray  # start of each (area, age) group among the rows
    band_starts: np.ndarray  # start of each (area, band) run among the (area, age) groups
    band_area: np.ndarray  # its area
    band_of: np.ndarray  # its band
    area_starts: np.ndarray  # start of each area among the (area, age) groups


def year_rows(data: Dataset, codes: list[str], need: Need) -> YearRows:
    bands = need.curve.bands
    band_of_age = np.full(200, -1)
    for i, b in enumerate(bands):
        band_of_age[b.age_from:b.age_to + 1] = i
    pop = data["population"].select("area_code", "age", "population").join(
        pl.DataFrame({"area_code": codes}).with_row_index("i"), on="area_code").sort("i", "age")
    area = pop["i"].to_numpy().astype(np.int64)
    age = pop["age"].to_numpy().astype(np.int64)
    key = area * 1000 + age
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    g_area, g_band = area[starts], band_of_age[age[starts]]
    bkey = g_area * 1000 + g_band
    band_starts = np.flatnonzero(np.r_[True, bkey[1:] != bkey[:-1]])
    area_starts = np.flatnonzero(np.r_[True, g_area[1:] != g_area[:-1]])
    if len(area_starts) != len(codes) or len(set(bkey[band_starts].tolist())) != len(band_starts):
        raise InternalError("internal error: every authority's population rows must run by age, band by band")
    return YearRows(rows=pop["population"].to_numpy(), area_of_row=area, group_starts=starts, band_starts=band_starts,
                    band_area=g_area[band_starts], band_of=g_band[band_starts], area_starts=area_starts)


def _band_ages(rows: YearRows, b: int, ages: int) -> np.ndarray:
    """The positions, among an authority's ages, of band b's (the first authority's, as every one's)."""
    first = rows.band_starts[rows.band_area == 0]
    runs = np.r_[first, ages]
    k = int(np.flatnonzero(rows.band_of[rows.band_area == 0] == b)[0])
    return np.arange(runs[k], runs[k + 1])


def variant_rows(rows: YearRows, factor: np.ndarray) -> np.ndarray:
    """(rows, S): each draw's population rows, as its variant dataset holds them (row x its area's factor)."""
    n = factor.shape[1]
    per = rows.rows.size // n
    if per * n == rows.rows.size and (np.bincount(rows.area_of_row, minlength=n) == per).all():
        return (rows.rows.reshape(n, per)[:, :, None] * factor.T[:, None, :]).reshape(rows.rows.size, -1)
    return rows.rows[:, None] * factor.T[rows.area_of_row]


def draw_need_inputs(rows: YearRows, need: Need, draws: DataDraws, year: str, *, n_areas: int, base: NeedInputs
                     ) -> NeedInputs:
    """Each draw's need inputs for one year, (S, ...) arrays: band populations and residents as `need_inputs`
    computes them from the variant's rows (fixed_sum by area and age, then by area and band, and by area), the
    indicators' drawn values and their population-weighted national values. Rows run along the first axis, so
    every sum is a contiguous reduction."""
    S = draws.size
    n_bands = len(need.curve.bands)
    factor = draws.factor(year)
    totals = np.bincount(rows.area_of_row, weights=rows.rows, minlength=n_areas)  # each authority's residents
    if totals.max(initial=0.0) * factor.max(initial=1.0) * float(SCALE) >= INT64_SAFE:  # its sum's counts: 64 bits
        raise FundformError("uncertainty draws of population handle authorities of up to 9 million residents")
    row_ints = _exact(variant_rows(rows, factor))
    k = rows.rows.size // rows.group_starts.size
    if rows.group_starts.size * k == rows.rows.size and (np.diff(rows.group_starts) == k).all():
        by_age = row_ints.reshape(-1, k, S).sum(axis=1)  # every (area, age) has k rows (the sexes)
    else:
        by_age = _run_sums(row_ints, rows.group_starts)
    by_age = by_age.astype(np.float64)
    by_age /= float(SCALE)
    ints = _exact(by_age)  # (groups, S): fixed_sum's rounding of each (area, age) sum
    ages = rows.group_starts.size // n_areas
    if ages * n_areas == rows.group_starts.size and (np.diff(rows.area_starts) == ages).all():
        grid = ints.reshape(n_areas, ages, S)  # every authority has the same ages (a full grid): sums by reshape
        population_f = grid.sum(axis=1).T.astype(np.float64) / float(SCALE)
        band_i = np.stack([grid[:, _band_ages(rows, b, ages)].sum(axis=1) for b in range(n_bands)], axis=1)
        band_f = band_i.transpose(2, 1, 0).astype(np.float64) / float(SCALE)
    else:  # any other layout: sums of the contiguous runs
        population_f = _run_sums(ints, rows.area_starts).T.astype(np.float64) / float(SCALE)
        band_sums = _run_sums(ints, rows.band_starts).astype(np.float64) / float(SCALE)
        band_f = np.zeros((S, n_bands, n_areas))
        band_f[:, rows.band_of, rows.band_area] = band_sums.T
    values = [np.asarray(draws.values.get((ind.table, ind.column), np.broadcast_to(base.values[j], (S, n_areas))))
              for j, ind in enumerate(need.indicators)]
    national = [np.asarray(long_sum(val * population_f, S) / long_sum(population_f, S)) for val in values]
    return replace(base, population=population_f, bands=band_f, values=values,
                   national=national)  # need.inputs.NeedInputs, each array with a leading draw axis


def long_sum(x: np.ndarray, S: int) -> np.ndarray:
    """(S,) each draw's fixed_sum over the last axis (Polars' 128-bit exact sum, as the run's own)."""
    n = x.shape[-1]
    frame = pl.DataFrame({"d": np.repeat(np.arange(S), n), "x": np.ascontiguousarray(x).reshape(-1)})
    return frame.group_by("d", maintain_order=True).agg(fixed_sum(pl.col("x")))["x"].to_numpy()


def rounded(x: np.ndarray) -> np.ndarray:
    """fixed_sum of one value (a lower-tier area rolled up to itself): the value to 10^-12."""
    return np.rint(x * float(SCALE)) / float(SCALE)


def variant_tables(data: Dataset, draws: DataDraws, i: int) -> dict[str, pl.DataFrame]:
    """Draw i's variant of the dataset's tables: the population rows of each drawn year scaled by their authority's
    factor, the drawn indicator columns replaced. Written into a copy of the dataset folder, a run on it equals the
    draw to the penny (tests/test_uncertainty.py)."""
    out = {}
    if draws.pop_factor:
        pop = data.tables["population"]
        parts = []
        for y, f in draws.pop_factor.items():
            fac = pl.DataFrame({"area_code": draws.codes, "f": f[i]})
            part = pop.filter(pl.col("financial_year") == y).join(fac, on="area_code", how="left",
                                                                  maintain_order="left")
            parts.append(part.with_columns(population=pl.col("population") * pl.col("f")).drop("f"))
        rest = pop.filter(~pl.col("financial_year").is_in(list(draws.pop_factor)))
        out["population"] = pl.concat([rest, *parts]).sort("financial_year", "area_code", "sex", "age")
    for (table, column), v in draws.values.items():
        t = out.get(table, data[table])
        drawn = pl.DataFrame({"area_code": draws.codes, "__v": v[i]})
        out[table] = t.join(drawn, on="area_code", how="left", maintain_order="left").with_columns(
            pl.col("__v").cast(t.schema[column]).alias(column)).drop("__v")
    return out
