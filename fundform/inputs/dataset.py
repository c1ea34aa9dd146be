"""Reading a dataset folder and checking it: every table against its contract, then the tables against each other
(files.py reads each file strictly; checks.py holds the checks across tables and the plausibility bounds).

``load_dataset`` either returns a ``Dataset`` whose tables all passed, or raises ``InvalidInput`` carrying every
problem found in every table. Nothing downstream runs on unchecked data.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import polars as pl

from fundform.base.errors import InternalError, InvalidInput, Problem
from fundform.inputs.checks import cross_table_problems, nhs_problems, plausibility_problems
from fundform.inputs.contracts import check_table
from fundform.inputs.files import (
    InputFile,
    checksum_problems,
    duplicate_table_files,
    indicator_files,
    pq_rows,
    read_population_chunks,
    read_table_file,
    sha256_file,
    table_sources,
)
from fundform.inputs.tables import (
    CONTRACTS,
    INDICATOR_NAME,
    INDICATOR_PREFIX,
    indicator_contract,
)
from fundform.inputs.vintages import aggregate_small_areas, convert

T = TypeVar("T")

@dataclass(frozen=True)
class Dataset:
    directory: Path
    tables: dict[str, pl.DataFrame]
    files: tuple[InputFile, ...]
    conversions: tuple[dict, ...] = ()  # boundary conversions applied on load
    implausible: tuple[str, ...] = ()  # plausibility bounds the run was told to allow, as rendered problems
    checks: str = "ran"  # "ran": read and checked now; "reused": the checked tables of an earlier run (inputs.cache)
    # whether plausibility bounds were relaxed for this dataset: what else enters the run (a draw of its inputs)
    # passes the same bounds on the same terms
    allow_implausible: bool = False

    def __getitem__(self, name: str) -> pl.DataFrame:
        frame = self.tables[name]
        if name == "population" and "financial_year" in frame.columns:  # summing every year would count people
            raise InternalError("internal error: a population by year read without choosing a year (for_year)")
        return frame

    def lazy(self, name: str) -> pl.LazyFrame:
        return self[name].lazy()

    @functools.cached_property
    def population_years(self) -> list[str] | None:
        """The financial years the population is given for, or None when one population serves every year."""
        pop = self.tables.get("population")
        if pop is None or "financial_year" not in pop.columns:
            return None
        return sorted(pop["financial_year"].unique().to_list())

    @functools.cached_property
    def _years(self) -> dict[str, Dataset]:
        return {}

    @functools.cached_property
    def _memo(self) -> dict[tuple[Any, ...], Any]:
        return {}

    def memo(self, key: tuple[Any, ...], compute: Callable[[], T]) -> T:
        """A value derived from this dataset alone (and the key: a version's JSON, a level, years), computed once:
        a sweep, a live explorer or a run asking again for the same need frames reads them back. The tables are
        never changed in place, so what was derived stays true."""
        if key not in self._memo:
            if len(self._memo) > 256:
                self._memo.clear()
            self._memo[key] = compute()
        return cast(T, self._memo[key])

    def for_year(self, year: str) -> Dataset:
        """The dataset as it stands in one financial year: the population of that year (the table's financial_year
        column dropped). A dataset without years is the same in every year."""
        years = self.population_years
        if years is None:
            return self
        if year not in years:
            file = next((f.path.name for f in self.files if f.table == "population"), "population")
            raise InvalidInput([Problem(file, "financial_year", f"no population for {year}",
                                        f"a population for every year the run needs (the file holds "
                                        f"{years[0]} to {years[-1]})" if len(years) > 1 else
                                        f"a population for every year the run needs (the file holds {years[0]})")],
                               str(self.directory))
        if year not in self._years:  # each year's slice once per dataset (a run reads it several times)
            pop = self.tables["population"].filter(pl.col("financial_year") == year).drop("financial_year")
            self._years[year] = dataclasses.replace(self, tables={**self.tables, "population": pop})
        return self._years[year]

    def reference_year(self, preferred: str | None = None) -> Dataset:
        """One year's dataset for what is not computed year by year: `preferred` (default: the baseline's year,
        today) if the population has it, else the latest year before it, else the first year."""
        years = self.population_years
        if years is None:
            return self
        if preferred is None and "baseline" in self.tables and "baseline_year" in self.tables["baseline"].columns \
                and self.tables["baseline"].height:
            preferred = self.tables["baseline"]["baseline_year"][0]
        before = [y for y in years if preferred is not None and y <= preferred]
        return self.for_year(preferred if preferred in years else before[-1] if before else years[0])


def load_dataset(directory: Path, allow_implausible: bool = False) -> Dataset:
    """Read and check every table of a dataset folder. Raises InvalidInput with every problem found; values outside
    a plausibility bound are problems too unless `allow_implausible`, when they are kept in `Dataset.implausible`
    (and so in the run's manifest).

    Over 80 lines: the tables are read, converted and checked in one order every problem report follows."""
    directory = Path(directory)
    problems: list[Problem] = []
    warnings: list[Problem] | None = [] if allow_implausible else None
    if not directory.is_dir():
        raise InvalidInput([Problem(str(directory), "", "data folder not found", "a folder holding the tables "
                                    + ", ".join(CONTRACTS))], str(directory))
    tables: dict[str, pl.DataFrame] = {}
    files: list[InputFile] = []
    small_notes: list[dict] = []
    for name, contract in CONTRACTS.items():
        twins = duplicate_table_files(directory, name)
        if twins:
            problems.append(Problem(", ".join(p.name + ("/" if p.is_dir() else "") for p in twins), "",
                                    f"{len(twins)} files for the one table '{name}'",
                                    f"exactly one of {name}.parquet, {name}.csv" + (" or a folder population/ of "
                                    "chunks" if name == "population" else "") + " (which is meant would be a guess)"))
            continue
        sources = table_sources(directory, name)
        if name == "population" and sources and sources[0].parent.name == "population":
            chunk_files = [InputFile(name, f, sha256_file(f), pq_rows(f)) for f in sources]
            files += chunk_files
            counted, chunk_problems = read_population_chunks(sources, "population/", chunk_files)
            problems += chunk_problems
            if not chunk_problems:
                checked, table_problems = check_table(counted, contract, "population/ (counted)", warnings)
                problems += table_problems
                if checked is not None:
                    tables[name] = checked
            continue
        path = sources[0] if sources else None
        if path is None:
            if not contract.required:
                continue
            problems.append(Problem(f"{name}.parquet", "", "file not found",
                                    f"a table '{name}' as {name}.parquet or {name}.csv in {directory}"))
            continue
        raw, read_problems = read_table_file(path, path.name)
        files.append(InputFile(name, path, sha256_file(path), raw.height if raw is not None else 0))
        if raw is None:
            problems += read_problems
            continue
        small = "small_area_code" in raw.columns and contract.key == ("area_code",) and contract.covers_every_area
        checked, table_problems = check_table(raw.drop("small_area_population", strict=False) if small else raw,
                                              contract if not small else dataclasses.replace(
                                                  contract, finer_grain_key="small_area_code"), path.name, warnings)
        problems += table_problems
        if small and checked is not None and not table_problems:  # need inputs finer than the authority
            checked, notes, small_problems = aggregate_small_areas(
                checked.with_columns(small_area_population=raw["small_area_population"]
                                     if "small_area_population" in raw.columns else None), contract, path.name)
            problems += small_problems
            small_notes.extend(notes)
        if checked is not None:
            tables[name] = checked
    contracts = dict(CONTRACTS)
    for path in indicator_files(directory):  # the user's own indicator tables, checked like the others
        label = f"{INDICATOR_PREFIX}{path.name}"
        if not INDICATOR_NAME.match(path.stem):
            problems.append(Problem(label, "", "not a usable table name", "a name of lower-case letters, digits and "
                                    "underscores, starting with a letter"))
            continue
        name = f"{INDICATOR_PREFIX}{path.stem}"
        if name in contracts:
            problems.append(Problem(label, "", "a second file for the same table", f"one of {path.stem}.parquet or "
                                    f"{path.stem}.csv in {INDICATOR_PREFIX}"))
            continue
        raw, read_problems = read_table_file(path, label)
        files.append(InputFile(name, path, sha256_file(path), raw.height if raw is not None else 0))
        if raw is None:
            problems += read_problems
            continue
        contracts[name] = indicator_contract(path.stem, raw.columns)
        if len(contracts[name].columns) == 1 or "area_code" not in raw.columns:
            problems.append(Problem(label, "", "no area_code or no indicator column",
                                    "columns area_code and at least one numeric indicator"))
            continue
        checked, table_problems = check_table(raw, contracts[name], label, warnings)
        problems += table_problems
        if checked is not None:
            tables[name] = checked
    names = {f.table: (f.path.name if f.path.parent == directory else f"{INDICATOR_PREFIX}{f.path.name}"
                       if f.table.startswith(INDICATOR_PREFIX) else f"{f.path.parent.name}/") for f in files}
    problems = checksum_problems(directory, {f.path.relative_to(directory).as_posix(): f.sha256 for f in files}) \
        + problems
    conversions = list(small_notes)
    if "areas" in tables:  # inputs on older boundary vintages, converted by their contracts' rules
        current = set(tables["areas"]["area_code"].to_list())
        for name, contract in CONTRACTS.items():
            if name in tables and contract.key == ("area_code",) and contract.covers_every_area and name != "areas":
                tables[name], applied, conv_problems = convert(tables[name], contract, tables.get("code_changes"),
                                                               current, names.get(name, name))
                conversions += applied
                problems += conv_problems
    problems += cross_table_problems(tables, names, contracts, {c["table"] for c in conversions if "table" in c})
    problems += nhs_problems(tables, names)
    hard, soft = plausibility_problems(tables, names)
    problems += hard
    if warnings is None:
        problems += soft
    else:
        warnings += soft
    if problems:
        raise InvalidInput(problems, str(directory))
    return Dataset(directory, tables, tuple(files), tuple(conversions),
                   tuple(w.render() for w in (warnings or [])), allow_implausible=allow_implausible)
