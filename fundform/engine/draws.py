"""The data axis: draws of the inputs, each a consistent variant of the dataset, evaluated together by the same
stages as the scenario axis (docs/uncertainty.md).

A draw changes the inputs, never the formula: each lower-tier authority's population in each year (a factor on all
its rows: every age and sex), and the values of the indicator columns the version's need reads. Its variant dataset
is the dataset with those changes written in (`variant_tables`); the draw's need is computed here exactly as the
run's own stages compute it from that variant (the same sums, in the same order, to the same bits), so every draw
equals a run on its variant dataset to the penny, and a draw that changes nothing is the run.

Sources, each seeded on its own (the seed and the source's place in the file), so adding a source leaves the others'
draws as they were:

- population, `vintages`: a point on the line through the central projection and a published variant
  (population_variants), at a standard normal distance z per authority (the same z in every year: a projection's
  error persists), truncated to +-3: factor = 1 + z x (variant / central - 1);
- preventable mortality, `sampling`: the rate's Poisson sampling error from the deaths it implies (rate x residents
  under 75 / 100,000): rate x Gamma(D, 1) / D, mean the rate, standard deviation rate / sqrt(D);
- any indicator column, `distribution`: normal (sd), lognormal (sigma, mean kept) or triangular (low, high), of the
  value (relative) or in its unit, clipped to the source's min and max;
- `draws`: the user's own table of draws.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import numpy as np
import polars as pl

from fundform.base.errors import FundformError, InternalError, InvalidInput, Problem
from fundform.base.numeric import SCALE, fixed_sum
from fundform.formula.spec import FormulaSpec, Need
from fundform.inputs.contracts import row_labels
from fundform.inputs.dataset import Dataset
from fundform.inputs.files import check_user_file
from fundform.inputs.tables import CONTRACTS
from fundform.inputs.uncertainty import Source, UncertaintySpec, draws_contract

GATE_ROWS = 10_000  # draws checked together by the population gate
INT64_SAFE = 9.0e18  # the exact population sums run in 64-bit integers of 10^-12 persons: areas below 9 million
Z_TRUNCATE = 3.0
UNDER_75 = 75


class Factors(Mapping):
    """year -> (S, areas) population factors 1 + z x spread, computed when a year is read: the draws keep one z per
    draw and authority (the same in every year) and one spread per year, so 100,000 draws hold 237 MB, not a
    factor array per year. Read the same way every time, so a factor is the same bits wherever it is read."""

    def __init__(self, z: np.ndarray, spreads: dict[str, np.ndarray]):
        self.z, self.spreads = z, spreads

    def __getitem__(self, year: str) -> np.ndarray:
        return 1.0 + self.z * self.spreads[year][None, :]

    def __iter__(self):
        return iter(self.spreads)

    def __len__(self) -> int:
        return len(self.spreads)

    def rows(self, lo: int, hi: int) -> Factors:
        return Factors(self.z[lo:hi], self.spreads)

    def tiled(self, times: int) -> Factors:
        return Factors(np.tile(self.z, (times, 1)), self.spreads)


@dataclass
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

    token: str = ""  # names these draws (the uncertainty file's hash and seed): a chunk's derived need is reused
    period: int = 0  # tiled: the draws repeat every `period` scenarios (a design's candidates, each over every draw)

    def chunk(self, lo: int, hi: int) -> DataDraws:
        f = self.pop_factor
        return DataDraws(hi - lo, self.codes, self.years,
                         f.rows(lo, hi) if isinstance(f, Factors) else {y: v[lo:hi] for y, v in f.items()},
                         {k: v[lo:hi] for k, v in self.values.items()},
                         {k: None if v is None else v[lo:hi] for k, v in self.moves.items()},
                         self.sources, self.first + lo, self.borrowed, self.token)

    def tiled(self, times: int) -> DataDraws:
        """The same draws for each of `times` candidates in turn: scenario c x size + d is draw d."""
        tile = lambda a: np.tile(a, (times,) + (1,) * (a.ndim - 1))  # noqa: E731
        f = self.pop_factor
        return DataDraws(self.size * times, self.codes, self.years,
                         f.tiled(times) if isinstance(f, Factors) else {y: tile(v) for y, v in f.items()},
                         {k: tile(v) for k, v in self.values.items()},
                         {k: None if v is None else tile(v) for k, v in self.moves.items()},
                         self.sources, self.first, self.borrowed, self.token, self.size)

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


def _z(rng: np.random.Generator, shape) -> np.ndarray:
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
    out = DataDraws(S, codes, years, token=f"{unc.sha256}:{unc.seed}:{','.join(years)}")
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
            drawn = _indicator(data, src, unc, rng, central, codes, years)
            borrowed = borrowed_values(data, src.input, src.column, codes)
            if borrowed and src.method != "draws":  # a borrowed value is its donor's estimate: drawn with it
                idx = {c: i for i, c in enumerate(codes)}
                for code, donor in borrowed.items():
                    i, j = idx[code], idx[donor]
                    drawn[:, i] = central[i] * (drawn[:, j] / central[j]) if central[j] else central[i]
                out.borrowed[src.label] = borrowed
            _check_bounds(src, drawn, codes, data, unc)
            out.values[key] = drawn
            with np.errstate(divide="ignore", invalid="ignore"):
                move = np.where(central != 0, drawn / central - 1, 0.0)
            out.moves[src.label] = move
        out.sources.append({**src.model_dump(exclude_none=True), "cited": _citation(src),
                            **({"borrowed_from": out.borrowed[src.label]} if src.label in out.borrowed else {})})
    population_gate(out, data, unc)
    return out


def _column_contract(table: str, column: str | None):
    """The contract a drawn value of `table.column` answers to: the fixed table's, or a user indicator table's
    (indicators/<name>: every value a positive number), exactly as the dataset's own rows are checked."""
    from fundform.inputs.tables import INDICATOR_PREFIX, indicator_contract

    if table.startswith(INDICATOR_PREFIX) and column:
        return indicator_contract(table.removeprefix(INDICATOR_PREFIX), ["area_code", column]).column(column)
    contract = CONTRACTS.get(table)
    if contract is None or column not in [c.name for c in contract.columns]:
        return None
    return contract.column(column)


def population_gate(out: DataDraws, data: Dataset, unc: UncertaintySpec) -> None:
    """Every drawn population passes what a plain run's population passes (inputs.checks.population_problems): no
    row below the table's minimum and every authority with residents, always; the plausibility bounds on an
    authority's and England's population, and on funding and tax base per resident, unless the dataset was read
    with --allow-implausible. The bounds are monotone in an authority's factor, so each authority-year is checked at
    its smallest and largest draw, named by draw, authority, year and value; England's total at the draw that makes
    it largest."""
    from fundform.inputs.checks import population_problems

    if not out.pop_factor:
        return
    src = next((s for s in unc.sources if s.input == "population"), None)
    label = "uncertainty source population" + (f" (file {unc.file_of(src).name})" if src and src.method == "draws"
                                               else f" ({src.method})" if src else "")
    col = CONTRACTS["population"].column("population")
    ref = _reference_year(data)
    hard: list[Problem] = []
    soft: list[Problem] = []
    for y, f in out.pop_factor.items():
        pop = (data.for_year(y) if data.population_years else data).tables["population"]
        rows = pl.DataFrame({"area_code": out.codes}).join(
            pop.group_by("area_code").agg(total=pl.col("population").sum(), lo=pl.col("population").min(),
                                          hi=pl.col("population").max()), on="area_code", how="left",
            maintain_order="left")
        total, lo, hi = (rows[c].fill_null(0.0).to_numpy() for c in ("total", "lo", "hi"))
        # a row's drawn value is its value times the factor: the smallest and largest of an authority's rows
        n = len(out.codes)
        size_lo, size_hi = np.full(n, np.inf), np.full(n, -np.inf)
        i_lo, i_hi = np.zeros(n, np.int64), np.zeros(n, np.int64)
        sums = np.empty(out.size)
        bad_rows: list[tuple[int, int, float]] = []
        n_bad = 0
        for start in range(0, out.size, GATE_ROWS):  # a block of draws at a time: 100,000 draws in bounded memory
            fb = f[start:start + GATE_ROWS]
            row_lo, row_hi = np.minimum(fb * lo, fb * hi), np.maximum(fb * lo, fb * hi)
            bad = ~np.isfinite(fb) | ((row_lo <= col.min) if col.min_exclusive else (row_lo < col.min))
            if col.max is not None:
                bad |= row_hi > col.max
            if bad.any():
                d, a = np.nonzero(bad)
                n_bad += int(bad.sum())
                bad_rows += [(start + int(i), int(j), float(fb[i, j])) for i, j in zip(d[:10], a[:10])]
                continue
            sizes = fb * total[None, :]
            lo_k, hi_k = sizes.argmin(0), sizes.argmax(0)
            cols = np.arange(n)
            lower, higher = sizes[lo_k, cols] < size_lo, sizes[hi_k, cols] > size_hi
            size_lo = np.where(lower, sizes[lo_k, cols], size_lo)
            i_lo = np.where(lower, lo_k + start, i_lo)
            size_hi = np.where(higher, sizes[hi_k, cols], size_hi)
            i_hi = np.where(higher, hi_k + start, i_hi)
            sums[start:start + fb.shape[0]] = sizes.sum(1)
        if n_bad:
            hard.append(Problem(label, "population", f"{n_bad} drawn authority-year(s) with a row outside the "
                                "population table's contract (a factor at or below 0 makes residents negative)",
                                f"every drawn row {col.expectation()} (the population table's own bound)",
                                tuple(f"draw {i}, {out.codes[j]} {y}: factor {v:.6g}" for i, j, v in bad_rows[:10])))
            continue
        ext = pl.DataFrame({
            "area_code": out.codes * 2,
            "population": np.r_[size_lo, size_hi],
            "where": [f"draw {i}, {c} {y}" for i, c in zip(np.r_[i_lo, i_hi], out.codes * 2)]})
        h, so = population_problems(ext, ext if y == ref else None, float(sums.max()),
                                    f"draw {int(sums.argmax())}, {y}", data.tables,
                                    {"population": label})
        hard += h
        soft += so
    problems = hard + ([] if data.allow_implausible else soft)
    if problems:
        raise InvalidInput(problems, str(unc.path) if getattr(unc, "path", None) else "")


def _reference_year(data: Dataset) -> str | None:
    """The year whose residents the per-resident bounds read (inputs.checks): the baseline's, else the first."""
    years = data.population_years
    if not years:
        return None
    b = data.tables.get("baseline")
    b_year = b["baseline_year"][0] if b is not None and b.height and "baseline_year" in b.columns else None
    return b_year if b_year in years else sorted(years)[0]


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


def _citation(src: Source) -> str:
    if src.source:
        return src.source
    if src.method == "vintages":
        return (f"ONS subnational population projections: the {src.variant} variant against the population table "
                f"(population_variants; {CONTRACTS['population_variants'].source})")
    return ("OHID Fingertips 93721 (the rate) and the population table (residents under 75): deaths implied by the "
            "rate, Poisson sampling error as in OHID's confidence intervals for directly standardised rates")


def _population(out: DataDraws, data: Dataset, src: Source, unc: UncertaintySpec, rng) -> None:
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
        spreads: dict[str, np.ndarray] = {}
        for y in years:
            ratio = (pl.DataFrame({"area_code": codes}).join(t.filter(pl.col("financial_year") == y),
                                                               on="area_code", how="left", maintain_order="left"))
            if ratio["ratio"].null_count() == len(codes):
                continue  # an estimate, not a projection: no spread between vintages
            if ratio["ratio"].null_count():
                missing = ratio.filter(pl.col("ratio").is_null())["area_code"].to_list()
                raise FundformError(f"uncertainty source population: population_variants has no {src.variant} ratio "
                                    f"for {y} for {len(missing)} authorities (e.g. {', '.join(missing[:5])})")
            spreads[y] = ratio["ratio"].to_numpy() - 1.0
        out.pop_factor = Factors(z, spreads)
        out.moves["population"] = None
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


def _indicator(data: Dataset, src: Source, unc: UncertaintySpec, rng, central: np.ndarray,
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
        e = rng.standard_normal((S, n)) * src.sd
        drawn = central * (1 + e) if src.relative else central + e
    elif src.distribution == "lognormal":
        drawn = central * np.exp(rng.standard_normal((S, n)) * src.sigma - src.sigma ** 2 / 2)
    else:
        e = rng.triangular(src.low, 0.0, src.high, (S, n))
        drawn = central * (1 + e) if src.relative else central + e
    if src.min is not None or src.max is not None:
        drawn = np.clip(drawn, src.min if src.min is not None else -np.inf, src.max if src.max is not None else np.inf)
    return drawn


def _check_bounds(src: Source, drawn: np.ndarray, codes: list[str], data: Dataset, unc: UncertaintySpec) -> None:
    """A drawn value passes what the same value in its table would: the column's contract (a user indicator's
    too), always, and its plausibility bound unless the dataset was read with --allow-implausible; refused naming
    the source, the draws, the authorities and the values."""
    col = _column_contract(src.input, src.column)
    lo, hi = (col.min, col.max) if col else (None, None)
    where = f"uncertainty source {src.label}" + (f" (file {unc.file_of(src).name})" if src.method == "draws" else "")
    bad = ~np.isfinite(drawn)
    if lo is not None:
        bad |= (drawn <= lo) if col.min_exclusive else (drawn < lo)
    if hi is not None:
        bad |= drawn > hi
    problems = []
    if bad.any():
        problems.append(_drawn_problem(where, src, drawn, bad, codes, "outside the column's contract",
                                       (col.expectation() if col else "finite values") + f" ({src.input}'s own bound)"))
    plausible = col.plausible if col is not None else None
    if plausible is not None and not data.allow_implausible:
        odd = ~bad & (((drawn < plausible.lo) if plausible.lo is not None else False)
                      | ((drawn > plausible.hi) if plausible.hi is not None else False))
        if np.any(odd):
            problems.append(_drawn_problem(where, src, drawn, odd, codes, "outside the column's plausibility bound",
                                           plausible.text()))
    if problems:
        raise InvalidInput(problems)


def _drawn_problem(where: str, src: Source, drawn: np.ndarray, bad: np.ndarray, codes: list[str], what: str,
                   expected: str) -> Problem:
    s, a = np.nonzero(bad)
    rows = tuple(f"draw {i}, {codes[j]}: {drawn[i, j]:.6g}" for i, j in zip(s[:10], a[:10]))
    return Problem(where, src.column or "", f"{int(bad.sum())} drawn value(s) {what}", expected,
                   rows + ((f"... {int(bad.sum()) - 10} more",) if bad.sum() > 10 else ()))


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


@dataclass(frozen=True)
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
    bands = need.age_cost_curve.bands
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
    return YearRows(pop["population"].to_numpy(), area, starts, band_starts, g_area[band_starts], g_band[band_starts],
                    area_starts)


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


def draw_need_inputs(rows: YearRows, need: Need, draws: DataDraws, year: str, n_areas: int, base):
    """Each draw's need inputs for one year, (S, ...) arrays: band populations and residents as `need_inputs`
    computes them from the variant's rows (fixed_sum by area and age, then by area and band, and by area), the
    indicators' drawn values and their population-weighted national values. Rows run along the first axis, so
    every sum is a contiguous reduction."""
    S = draws.size
    n_bands = len(need.age_cost_curve.bands)
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
                   national=national)  # need.axis.NeedInputs, each array with a leading draw axis


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
