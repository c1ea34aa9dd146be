"""Reading a dataset folder and checking it: every table against its contract, then the tables against each other.

``load_dataset`` either returns a ``Dataset`` whose tables all passed, or raises ``InvalidInput`` carrying every
problem found in every table. Nothing downstream runs on unchecked data.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from fundform.base.errors import ENVIRONMENT_ERRNOS, InvalidInput, Problem
from fundform.inputs.contracts import Plausible, check_table, row_labels
from fundform.inputs.tables import (
    CONTRACTS,
    INDICATOR_NAME,
    INDICATOR_PREFIX,
    LEVELS,
    REQUIRED_LEVELS,
    indicator_contract,
)
from fundform.inputs.vintages import aggregate_small_areas, convert

SHARE_TOLERANCE = 1e-9
AGES = 91  # 0..89 and 90+
SEXES = ("F", "M")


@dataclass(frozen=True)
class InputFile:
    table: str
    path: Path
    sha256: str
    rows: int


@dataclass(frozen=True)
class Dataset:
    directory: Path
    tables: dict[str, pl.DataFrame]
    files: tuple[InputFile, ...]
    conversions: tuple[dict, ...] = ()  # boundary conversions applied on load
    implausible: tuple[str, ...] = ()  # plausibility bounds the run was told to allow, as rendered problems
    checks: str = "ran"  # "ran": read and checked now; "reused": the checked tables of an earlier run (inputs.cache)

    def __getitem__(self, name: str) -> pl.DataFrame:
        frame = self.tables[name]
        if name == "population" and "financial_year" in frame.columns:  # summing every year would count people
            raise RuntimeError("internal error: a population by year read without choosing a year (for_year)")
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
    def _memo(self) -> dict:
        return {}

    def memo(self, key: tuple, compute):
        """A value derived from this dataset alone (and the key: a version's JSON, a level, years), computed once:
        a sweep, a live explorer or a run asking again for the same need frames reads them back. The tables are
        never changed in place, so what was derived stays true."""
        if key not in self._memo:
            if len(self._memo) > 256:
                self._memo.clear()
            self._memo[key] = compute()
        return self._memo[key]

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


def pq_rows(path: Path) -> int:
    """A Parquet file's row count from its footer; 0 for a file whose footer cannot be read (the chunk checks name
    it: chunk_file_problems)."""
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path).metadata.num_rows
    except Exception:  # noqa: BLE001  reported by the checks, never an internal error here
        return 0


def chunk_file_problems(files: list[Path], folder: str) -> list[Problem]:
    """Every chunk of a table folder checked like a table file of its own before the chunks are read together: its
    footer readable, and the same columns with the same types as the first chunk. Each fault names the file."""
    import pyarrow.parquet as pq

    problems: list[Problem] = []
    first: tuple[str, dict[str, str]] | None = None
    for f in files:
        try:
            schema = pq.read_schema(f)
        except Exception as e:  # noqa: BLE001  a corrupt footer: named like any unreadable table file
            problems.append(unreadable(folder + f.name, e))
            continue
        cols = {n: str(schema.field(n).type) for n in schema.names}
        if first is None:
            first = (f.name, cols)
            continue
        ref_name, ref = first
        missing = [c for c in ref if c not in cols]
        extra = [c for c in cols if c not in ref]
        types = [f"{c} is {cols[c]}, not {ref[c]}" for c in ref if c in cols and cols[c] != ref[c]]
        if missing or extra or types:
            what = "; ".join(x for x in (f"missing {', '.join(missing)}" if missing else "",
                                         f"extra {', '.join(extra)}" if extra else "", "; ".join(types)) if x)
            problems.append(Problem(folder + f.name, ", ".join(missing + extra + [t.split(" ")[0] for t in types]),
                                    f"columns differ from {ref_name}'s: {what}",
                                    "the same columns, of the same types, in every chunk"))
    return problems


def corrupt_chunk(files: list[Path], folder: str, error: Exception) -> list[Problem]:
    """A chunk whose pages fail when the chunks are read together: each file read on its own (as a table file is,
    page checksums verified) to name the one at fault; only on this failure path, so a healthy read pays nothing."""
    found = [p for f in files for p in read_table_file(f, folder + f.name)[1]]
    return found or [Problem(folder, "", f"the chunks cannot be read together ({type(error).__name__}: "
                             f"{str(error).splitlines()[0][:200]})", "readable Parquet chunks with the same "
                             "columns")]


_HASHES: dict[tuple, str] = {}


def sha256_file(path: Path) -> str:
    """The file's SHA-256, computed once per process for the same file: remembered by its device, inode, size,
    modification and change times (the change time moves on any write and no tool can set it back), as git's index
    remembers what it hashed."""
    st = os.stat(path)
    key = (str(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    hit = _HASHES.get(key)
    if hit is not None:
        return hit
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    if len(_HASHES) > 4096:
        _HASHES.clear()
    _HASHES[key] = h.hexdigest()
    return _HASHES[key]


CHECKSUMS = "CHECKSUMS.sha256"  # `sha256sum` format: "<hex>  <file>" per line; the bundled dataset ships one


class ReadFailure(Exception):
    """A table file that cannot be read as a table: carries the problems, each naming the file and rows."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("; ".join(p.render() for p in problems))


def find_table_file(directory: Path, name: str) -> Path | None:
    for ext in (".parquet", ".csv"):
        p = directory / f"{name}{ext}"
        if p.is_file():
            return p
    return None


def duplicate_table_files(directory: Path, name: str) -> list[Path]:
    """Every file that claims to be table `name`: more than one is an error (which would be read is a guess)."""
    found = [directory / f"{name}{ext}" for ext in (".parquet", ".csv") if (directory / f"{name}{ext}").is_file()]
    if name == "population" and (directory / name).is_dir() and any((directory / name).glob("*.parquet")):
        found.append(directory / name)
    return found if len(found) > 1 else []


def write_checksums(directory: Path) -> Path:
    """Write the dataset's checksum manifest (every table file, in sha256sum format), checked at every load."""
    directory = Path(directory)
    files = sorted(p for p in directory.rglob("*") if p.is_file() and p.suffix in (".parquet", ".csv"))
    lines = [f"{sha256_file(p)}  {p.relative_to(directory).as_posix()}" for p in files]
    target = directory / CHECKSUMS
    tmp = target.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(target)
    return target


def checksum_problems(directory: Path, hashes: dict[str, str]) -> list[Problem]:
    """A dataset that carries a checksum manifest must match it: a corrupted or edited file is refused, naming it.
    `hashes` maps each table file read (relative path) to its SHA-256."""
    path = Path(directory) / CHECKSUMS
    if not path.is_file():
        return []
    how = (f"the files as built, with their SHA-256 in {CHECKSUMS}. A file that differs is corrupt or was edited "
           f"after the build: rebuild it (make data), or, if you changed it on purpose, this is now your own "
           f"dataset: delete {CHECKSUMS} or rewrite it (sha256sum)")
    listed: dict[str, str] = {}
    problems = []
    for i, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2 or len(parts[0]) != 64:
            problems.append(Problem(CHECKSUMS, "", f"line {i} is not '<sha256>  <file>'", "sha256sum format"))
            continue
        listed[parts[1].strip().lstrip("*")] = parts[0].lower()
    for file, digest in sorted(hashes.items()):
        if file not in listed:
            problems.append(Problem(file, "", f"not listed in {CHECKSUMS}", how))
        elif listed[file] != digest:
            problems.append(Problem(file, "", f"SHA-256 {digest[:16]}... differs from {CHECKSUMS} "
                                    f"({listed[file][:16]}...)", how))
    for file in sorted(set(listed) - set(hashes)):
        if not (Path(directory) / file).is_file():
            problems.append(Problem(file, "", f"listed in {CHECKSUMS} but missing", how))
    return problems


def indicator_files(directory: Path) -> list[Path]:
    """The user's own indicator tables: every Parquet or CSV file in the dataset's indicators/ folder."""
    folder = Path(directory) / INDICATOR_PREFIX.rstrip("/")
    return sorted(p for p in folder.glob("*") if p.suffix in (".parquet", ".csv")) if folder.is_dir() else []


def table_sources(directory: Path, name: str) -> list[Path]:
    """The files that hold a table: <name>.parquet or <name>.csv, or (population only) a folder <name>/ of Parquet
    chunks."""
    one = find_table_file(directory, name)
    if one is not None:
        return [one]
    folder = directory / name
    if name == "population" and folder.is_dir():
        return sorted(folder.glob("*.parquet"))
    return []


def _repeated_people(files: list[Path]) -> tuple[str, tuple[str, ...]] | None:
    """(what, rows) if a person_id repeats: each chunk is checked on its own (memory bounded by a chunk), and chunks
    are compared by their id ranges; only chunks whose ranges overlap are checked together."""
    ranges = []
    for f in files:
        n, distinct, lo, hi = pl.scan_parquet(f).select(
            pl.len().alias("n"), pl.col("person_id").n_unique().alias("distinct"),
            pl.col("person_id").min().alias("lo"), pl.col("person_id").max().alias("hi")).collect().row(0)
        if distinct < n:
            return f"{n - distinct} person_id(s) repeated within chunk {f.name}", (f.name,)
        if n:
            ranges.append((lo, hi, f))
    ranges.sort(key=lambda r: (r[0], r[1]))
    for (lo1, hi1, f1), (lo2, hi2, f2) in zip(ranges, ranges[1:]):
        if lo2 <= hi1:  # overlapping ranges: compare the two chunks exactly
            both = pl.scan_parquet([f1, f2]).select(pl.col("person_id"))
            n, distinct = both.select(pl.len().alias("n"), pl.col("person_id").n_unique().alias("d")).collect().row(0)
            if distinct < n:
                return f"{n - distinct} person_id(s) in both {f1.name} and {f2.name}", (f1.name, f2.name)
    return None


def read_population_chunks(files: list[Path], folder: str, hashed: list[InputFile] | None = None
                           ) -> tuple[pl.DataFrame, list[Problem]]:
    """Person-level (one row per person) or pre-counted population chunks, counted by area, sex and age in one
    streaming pass over the files; the raw rows' own faults are counted in the same pass. The same rows twice are
    refused: two chunk files with identical content, a pre-counted cell in more than one row, or (where chunks carry
    a person_id) one person twice."""
    problems: list[Problem] = []
    by_hash: dict[str, list[str]] = {}
    for f in hashed or []:
        by_hash.setdefault(f.sha256, []).append(f.path.name)
    for names in by_hash.values():
        if len(names) > 1:
            problems.append(Problem(folder + ", ".join(names), "", f"{len(names)} chunk files with identical content",
                                    "each person (or cell) in one chunk only: identical chunks would count them twice"))
    problems += chunk_file_problems(files, folder)
    if problems:
        return pl.DataFrame(), problems
    try:
        return _count_chunks(files, folder)
    except OSError as e:
        if e.errno in ENVIRONMENT_ERRNOS:
            raise
        return pl.DataFrame(), corrupt_chunk(files, folder, e)
    except Exception as e:  # noqa: BLE001  a page that fails only when read: the file at fault is named
        return pl.DataFrame(), corrupt_chunk(files, folder, e)


def _count_chunks(files: list[Path], folder: str) -> tuple[pl.DataFrame, list[Problem]]:
    problems: list[Problem] = []
    lf = pl.scan_parquet(files)
    cols = lf.collect_schema().names()
    problems += [Problem(folder, c, "column is missing", f"a column '{c}' in every chunk")
                 for c in ("area_code", "sex", "age") if c not in cols]
    if problems:
        return pl.DataFrame(), problems
    if "person_id" in cols:  # one person twice: within a chunk, or in two chunks whose id ranges overlap
        dup = _repeated_people(files)
        if dup:
            return pl.DataFrame(), [Problem(folder, "person_id", dup[0], "each person once across all chunks",
                                            dup[1])]
    elif "population" in cols:  # pre-counted cells: small, checked whole
        key = ["area_code", "sex", "age"] + (["small_area_code"] if "small_area_code" in cols else [])
        n, distinct = lf.select(pl.len(), pl.struct(key).n_unique()).collect(engine="streaming").row(0)
        if distinct < n:
            dup = lf.filter(pl.struct(key).is_duplicated()).head(10).collect()
            labels = tuple("/".join(str(r[k]) for k in key) for r in dup.iter_rows(named=True))
            return pl.DataFrame(), [Problem(folder, ",".join(key), f"{n - distinct} row(s) repeat a key already "
                                            "given (in this or another chunk)", f"one row per {' x '.join(key)} "
                                            "across all chunks", labels)]
    weight = pl.col("population").cast(pl.Float64) if "population" in cols else pl.lit(1.0)
    bad = {"area_code": pl.col("area_code").is_null(), "sex": ~pl.col("sex").is_in(list(SEXES)).fill_null(False),
           "age": ~pl.col("age").cast(pl.Int64, strict=False).is_between(0, 90).fill_null(False)}
    if "population" in cols:
        bad["population"] = (weight < 0).fill_null(True)
    counts = lf.select([e.sum().alias(k) for k, e in bad.items()]).collect(engine="streaming").row(0, named=True)
    for col, n in counts.items():
        if n:
            sample = lf.filter(bad[col]).head(10).collect()
            labels = tuple(f"({r.get('area_code')}/{r.get('sex')}/{r.get('age')})" for r in sample.iter_rows(named=True))
            problems.append(Problem(folder, col, f"{n} row(s) with a missing or invalid value", {
                "area_code": "an authority code", "sex": "F or M", "age": "0..90",
                "population": "a number >= 0"}[col], labels + ((f"... {n - len(labels)} more",) if n > 10 else ())))
    if problems:
        return pl.DataFrame(), problems
    total = weight.sum() if "population" in cols else pl.len().cast(pl.Float64)  # person rows: count them
    counted = (lf.group_by("area_code", "sex", "age").agg(population=total)
               .with_columns(pl.col("age").cast(pl.Int64)).collect(engine="streaming"))
    if "population" not in cols:  # one row per person: a cell nobody is in is a count of zero, not a gap
        grid = (counted.select("area_code").unique().join(pl.DataFrame({"sex": list(SEXES)}), how="cross")
                .join(pl.DataFrame({"age": list(range(AGES))}, schema={"age": pl.Int64}), how="cross"))
        counted = grid.join(counted, on=["area_code", "sex", "age"], how="left").with_columns(
            pl.col("population").fill_null(0.0))
    return counted.sort("area_code", "sex", "age"), []


def read_csv_strict(path: Path, label: str | None = None) -> pl.DataFrame:
    """A CSV read as text, every cell as written (numbers are parsed and checked by the contract), refusing what a
    lenient reader would guess at: duplicated or empty header names, rows with too few or too many fields (named by
    row and line), text that is not UTF-8. Blank lines are skipped; an empty cell is missing."""
    import csv

    label = label or path.name
    problems: list[Problem] = []
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if not header:
                raise ReadFailure([Problem(label, "", "the file is empty", "a header row naming the columns, then "
                                           "one row per record")])
            header = [h.strip() for h in header]
            dups = sorted({h for h in header if header.count(h) > 1})
            if dups:
                problems.append(Problem(label, ",".join(dups), "column name(s) appear more than once in the header",
                                        "each column once (which copy is meant is a guess)"))
            if any(h == "" for h in header):
                problems.append(Problem(label, "", f"{header.count('')} column(s) without a name in the header",
                                        "a name for every column"))
            ragged: list[str] = []
            n_ragged = 0
            rows: list[list[str]] = []
            row_no = 0
            for row in reader:
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue  # a blank line
                row_no += 1
                if len(row) != len(header):
                    n_ragged += 1
                    if len(ragged) < 10:
                        ragged.append(f"row {row_no} (line {reader.line_num}: {len(row)} field(s))")
                    continue
                rows.append(row)
    except UnicodeDecodeError as e:
        raise ReadFailure([Problem(label, "", f"not UTF-8 text ({e.reason} at byte {e.start})",
                                   "a UTF-8 CSV file")]) from None
    except csv.Error as e:
        raise ReadFailure([Problem(label, "", f"not a well-formed CSV file ({e})",
                                   "comma-separated values, quotes closed")]) from None
    if rows and not _ends_with_line_break(path):  # a file cut short mid-value would read as a shorter number
        problems.append(Problem(label, "", f"the last line (row {row_no}, line {reader.line_num}) does not end with "
                                "a line break: the file may have been cut short in the middle of a value",
                                "a complete CSV file, every line ending with a line break (save it again from its "
                                "source, or add the final line break if the last row is whole)"))
    if n_ragged:
        hint = " (the header looks separated by ';')" if len(header) == 1 and ";" in header[0] else ""
        problems.append(Problem(label, "", f"{n_ragged} row(s) with a different number of fields from the header"
                                f"{hint}", f"{len(header)} comma-separated fields on every row, as in the header",
                                tuple(ragged) + ((f"... {n_ragged - len(ragged)} more",) if n_ragged > 10 else ())))
    if problems:
        raise ReadFailure(problems)
    cols = list(zip(*rows)) if rows else [()] * len(header)
    return pl.DataFrame({h: pl.Series(h, [v if v.strip() != "" else None for v in col], dtype=pl.String)
                         for h, col in zip(header, cols)})


def _ends_with_line_break(path: Path) -> bool:
    with path.open("rb") as f:
        f.seek(0, 2)
        if f.tell() == 0:
            return True
        f.seek(-1, 2)
        return f.read(1) in (b"\n", b"\r")


def read_parquet_strict(path: Path, label: str | None = None) -> pl.DataFrame:
    """A Parquet file read exactly: duplicate column names refused, page checksums verified where the writer
    stored them (a corrupted page is an error, not changed values)."""
    import pyarrow.parquet as pq

    label = label or path.name
    names = pq.read_schema(path).names
    dups = sorted({n for n in names if names.count(n) > 1})
    if dups:
        raise ReadFailure([Problem(label, ",".join(dups), "column name(s) appear more than once",
                                   "each column once (which copy is meant is a guess)")])
    # ParquetFile.read, not read_table: the same page checksum verification without importing pyarrow.dataset
    # (0.3 s of a cold run)
    return pl.from_arrow(pq.ParquetFile(path, page_checksum_verification=True).read())


def _read(path: Path, label: str | None = None) -> pl.DataFrame:
    if path.suffix == ".parquet":
        return read_parquet_strict(path, label)
    # CSV: read as text so '01' style codes survive; numbers are parsed (and checked) by the contract
    return read_csv_strict(path, label)


def read_table_file(path: Path, label: str) -> tuple[pl.DataFrame | None, list[Problem]]:
    """Read one table file; a file that cannot be read gives problems naming it, never an exception."""
    try:
        return _read(path, label), []
    except ReadFailure as e:
        return None, e.problems
    except Exception as e:  # noqa: BLE001  a corrupt file: reported with the others
        return None, [unreadable(label, e)]


def unreadable(label: str, e: Exception) -> Problem:
    """A file that cannot be read, as a problem naming it; the machine's own refusals (permissions, a full disk)
    are raised instead, to be named as such."""
    if isinstance(e, OSError) and e.errno in ENVIRONMENT_ERRNOS:
        raise e
    if isinstance(e, OSError):
        return Problem(label, "", f"cannot be read ({e.strerror or e})", "a readable Parquet or CSV file")
    return Problem(label, "", f"cannot be read ({type(e).__name__}: {str(e).splitlines()[0][:200]})",
                   "a readable, uncorrupted Parquet or CSV file")


def check_user_file(path: Path, contract) -> tuple[pl.DataFrame | None, list[Problem]]:
    """A user's own table (CSV or Parquet) read and checked against its contract: the checked frame and any
    problems, for the caller to add its own checks to before raising."""
    path = Path(path)
    if not path.is_file():
        return None, [Problem(str(path), "", "file not found",
                              f"a CSV or Parquet file with columns {', '.join(contract.required_columns)}")]
    raw, problems = read_table_file(path, path.name)
    if raw is None:
        return None, problems
    return check_table(raw, contract, path.name)


def read_user_file(path: Path, contract) -> pl.DataFrame:
    """check_user_file, raising InvalidInput on any problem."""
    frame, problems = check_user_file(path, contract)
    if problems:
        raise InvalidInput(problems, str(path))
    return frame


def load_dataset(directory: Path, allow_implausible: bool = False) -> Dataset:
    """Read and check every table of a dataset folder. Raises InvalidInput with every problem found; values outside
    a plausibility bound are problems too unless `allow_implausible`, when they are kept in `Dataset.implausible`
    (and so in the run's manifest)."""
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
                   tuple(w.render() for w in (warnings or [])))


# Bounds on quantities derived from two tables, per authority: (name, lo, hi, why).
POPULATION_PER_AREA = (1_000, 3_000_000, "lower-tier authorities in mid-2023 held 2,229 (Isles of Scilly) to "
                       "1,166,049 (Birmingham) residents (ONS MYE2); the bound allows a third of the smallest and "
                       "two and a half times the largest")
POPULATION_TOTAL_MAX = (None, 80_000_000, "England's population was 57.7m in mid-2023 and is projected at 60.2m in "
                        "2030 (ONS 2022-based projections); no set of English authorities holds 80m")
BASELINE_PER_HEAD = (200, 20_000, "today's health and care funding was GBP 1,838 to GBP 3,734 per resident across "
                     "authorities in 2024/25 (NHS England allocations and MHCLG outturn over ONS population)")
COMPONENT_PER_HEAD = {  # per resident, 2024/25: observed range, and the bound (about a quarter of the lowest, three
    # or more times the highest); a component that is zero in an authority is almost always a column left empty
    "nhs_core": (300, 10_000, "NHS core allocations were GBP 1,160 to GBP 2,766 per resident across authorities in "
                 "2024/25"),
    "nhs_primary_medical": (30, 1_500, "primary medical care allocations were GBP 126 to GBP 305 per resident in "
                            "2024/25"),
    "adult_social_care": (20, 5_000, "adult social care net expenditure was GBP 192 to GBP 912 per resident in "
                          "2024-25 (MHCLG outturn)"),
    "public_health": (3, 1_000, "public health net expenditure was GBP 33 to GBP 198 per resident in 2024-25 "
                      "(MHCLG outturn)"),
}
TAX_BASE_GROWTH = (0.5, 2.0, "tax bases changed by -3.3% to +6.4% between 2023-24 and 2024-25 (CTR Table 9); the "
                   "bound allows halving or doubling")
TAX_BASE_PER_HEAD = (0.05, 2.0, "council tax bases were 0.21 to 0.67 Band D equivalents per resident in 2024-25 (CTR "
                     "Table 9 over ONS population)")


def _bound_problem(frame: pl.DataFrame, value: str, bound: tuple, file: str, column: str, what: str,
                   unit: str) -> Problem | None:
    lo, hi, why = bound
    bad = frame.filter(((pl.col(value) < lo) if lo is not None else pl.lit(False))
                       | ((pl.col(value) > hi) if hi is not None else pl.lit(False)))
    if not bad.height:
        return None
    labels = tuple(f"{r['area_code']} ({r[value]:,.4g} {unit})" for r in bad.head(50).iter_rows(named=True))
    return Problem(file, column, f"{bad.height} authority(ies) with an implausible {what}",
                   f"{what} {Plausible(lo, hi, why).text()}" + (f", in {unit}" if unit else ""),
                   labels + ((f"... {bad.height - 50} more",) if bad.height > 50 else ()))


def plausibility_problems(tables: dict[str, pl.DataFrame], names: dict[str, str]) -> tuple[list[Problem],
                                                                                          list[Problem]]:
    """Checks across tables, per authority. Hard: what no run can compute (an authority with no residents, no
    funding at all). Soft (plausibility bounds, each with where it comes from): population per authority and in
    total, today's funding per resident, the tax base per resident."""
    hard: list[Problem] = []
    soft: list[Problem] = []
    if "population" not in tables:
        return hard, soft
    pop_file = names.get("population", "population")
    pop = tables["population"]
    by_year = "financial_year" in pop.columns
    if by_year:  # sizes are checked in every year; per-head figures against the baseline's year (or the first)
        sizes = (pop.group_by("financial_year", "area_code").agg(population=pl.col("population").sum())
                 .sort("financial_year", "area_code").with_columns(area_code=pl.format("{} {}", "area_code",
                                                                                         "financial_year")))
        years = sorted(pop["financial_year"].unique().to_list())
        b_year = (tables["baseline"]["baseline_year"][0] if "baseline" in tables and tables["baseline"].height
                  and "baseline_year" in tables["baseline"].columns else None)
        ref = b_year if b_year in years else years[0]
        per_area = (pop.filter(pl.col("financial_year") == ref).group_by("area_code")
                    .agg(population=pl.col("population").sum()).sort("area_code"))
    else:
        per_area = pop.group_by("area_code").agg(population=pl.col("population").sum()).sort("area_code")
        sizes = per_area
    empty = sizes.filter(pl.col("population") <= 0)
    if empty.height:
        hard.append(Problem(pop_file, "population", f"{empty.height} authority(ies) with no residents at all",
                            "a population > 0 for every authority (need per head and grant per head divide by it)",
                            row_labels(empty, ["area_code"])))
    p = _bound_problem(sizes, "population", POPULATION_PER_AREA, pop_file, "population", "population",
                       "residents")
    soft += [p] if p else []
    total = float(pop.group_by("financial_year").agg(pl.col("population").sum())["population"].max() if by_year
                  else per_area["population"].sum())
    if total > POPULATION_TOTAL_MAX[1]:
        soft.append(Problem(pop_file, "population", f"a total population of {total:,.0f}",
                            f"a total <= {POPULATION_TOTAL_MAX[1]:,} (plausibility bound: {POPULATION_TOTAL_MAX[2]}; "
                            "--allow-implausible overrides it)"))
    if "baseline" in tables:
        from fundform.inputs.tables import BASELINE_COMPONENTS

        b_file = names.get("baseline", "baseline")
        base = tables["baseline"].select("area_code", total=pl.sum_horizontal(*BASELINE_COMPONENTS))
        if float(base["total"].sum()) <= 0:
            hard.append(Problem(b_file, ",".join(BASELINE_COMPONENTS), "today's funding is zero in every authority",
                                "some funding to start the settlement from (the control total grows from it)"))
        per_head = base.join(per_area, on="area_code").filter(pl.col("population") > 0).with_columns(
            per_head=pl.col("total") / pl.col("population"))
        p = _bound_problem(per_head, "per_head", BASELINE_PER_HEAD, b_file, ",".join(BASELINE_COMPONENTS),
                           "funding per resident", "GBP")
        soft += [p] if p else []
        parts = tables["baseline"].join(per_area, on="area_code").filter(pl.col("population") > 0)
        for comp, bound in COMPONENT_PER_HEAD.items():
            p = _bound_problem(parts.with_columns(per_head=pl.col(comp) / pl.col("population")), "per_head", bound,
                               b_file, comp, f"{comp.replace('_', ' ')} per resident", "GBP")
            soft += [p] if p else []
    if "council_tax" in tables:
        tb = tables["council_tax"].select("area_code", "tax_base_band_d").join(per_area, on="area_code").filter(
            pl.col("population") > 0).with_columns(per_head=pl.col("tax_base_band_d") / pl.col("population"))
        p = _bound_problem(tb, "per_head", TAX_BASE_PER_HEAD, names.get("council_tax", "council_tax"),
                           "tax_base_band_d", "tax base per resident", "Band D equivalents")
        soft += [p] if p else []
        growth = tables["council_tax"].filter(pl.col("tax_base_band_d_2023_24") > 0).with_columns(
            ratio=pl.col("tax_base_band_d") / pl.col("tax_base_band_d_2023_24"))
        p = _bound_problem(growth, "ratio", TAX_BASE_GROWTH, names.get("council_tax", "council_tax"),
                           "tax_base_band_d_2023_24", "ratio of the 2024-25 to the 2023-24 tax base", "")
        soft += [p] if p else []
    return hard, soft


def cross_table_problems(tables: dict[str, pl.DataFrame], names: dict[str, str],
                         contracts: dict | None = None, converted: set[str] = frozenset()) -> list[Problem]:
    """Coverage of areas across tables, complete population grids, lookup shares that sum to 1. A row of a file is
    named by its row number in that file (1 = the first data row) and its key; an area absent from a file, or a
    group of rows, by its key alone. Row numbers are not given for tables converted from older codes (their rows
    were merged)."""
    problems: list[Problem] = []
    if "areas" not in tables:
        return problems
    areas = tables["areas"].select("area_code").unique(maintain_order=True)
    for name, frame in tables.items():
        if name == "areas" or "area_code" not in frame.columns:
            continue
        file = names.get(name, name)
        present = frame.select("area_code").unique()
        missing = areas.join(present, on="area_code", how="anti", maintain_order="left").sort("area_code")
        if missing.height and (contracts or CONTRACTS)[name].covers_every_area:
            problems.append(Problem(file, "area_code", f"{missing.height} authority(ies) of the areas table absent",
                                    "every authority in areas to appear", row_labels(missing, ["area_code"])))
        rows = frame if name in converted else frame.with_row_index("__row")
        unknown = rows.join(areas, on="area_code", how="anti", maintain_order="left")
        if unknown.height:
            problems.append(Problem(file, "area_code", f"{unknown.height} row(s) with codes not in the areas table",
                                    "codes listed in areas", row_labels(unknown, ["area_code"])))

    if "population" in tables:
        pop = tables["population"]
        per = ["financial_year"] if "financial_year" in pop.columns else []
        # cells per authority (and year): distinct (sex, age) pairs; rows when the key is unique (check_table says
        # when it is not), which saves a group-by over every row of a population by year
        cells = (pl.len() if "small_area_code" not in pop.columns else pl.struct("sex", "age").n_unique())
        grid = pop.group_by(*per, "area_code").agg(n=cells, sexes=pl.col("sex").n_unique())
        if per:  # every year covers every authority, and is labelled "<code> <year>" below
            n_areas = areas.height
            short = pop.group_by("financial_year").agg(n=pl.col("area_code").n_unique()).filter(
                pl.col("n") != n_areas).sort("financial_year")
            if short.height:
                problems.append(Problem(names.get("population", "population"), "financial_year",
                                        f"{short.height} year(s) without every authority",
                                        f"all {n_areas} authorities of areas in every year",
                                        tuple(f"{r[0]}: {r[1]} authorities" for r in short.rows())))
            grid = grid.with_columns(area_code=pl.format("{} {}", "area_code", "financial_year"))
        incomplete = grid.filter((pl.col("n") != AGES * len(SEXES)) | (pl.col("sexes") != len(SEXES))).sort("area_code")
        if incomplete.height:
            problems.append(Problem(names.get("population", "population"), "age,sex",
                                    f"{incomplete.height} authority(ies) without a full age-sex grid",
                                    f"ages 0..90 for each of sexes {', '.join(SEXES)} ({AGES * len(SEXES)} cells)",
                                    row_labels(incomplete, ["area_code"])))
        bad_sex = pop.with_row_index("__row").filter(~pl.col("sex").is_in(list(SEXES)))
        if bad_sex.height:
            problems.append(Problem(names.get("population", "population"), "sex", f"{bad_sex.height} unknown sex code(s)",
                                    "F or M", row_labels(bad_sex, ["area_code", "sex", "age"])))

    if "council_tax_bands" in tables:  # optional, but complete when given: eight bands per authority
        bands = tables["council_tax_bands"].group_by("area_code").agg(n=pl.col("band").n_unique()).filter(
            pl.col("n") != 8).sort("area_code")
        if bands.height:
            problems.append(Problem(names.get("council_tax_bands", "council_tax_bands"), "band",
                                    f"{bands.height} authority(ies) without all eight bands",
                                    "bands A to H for every authority", row_labels(bands, ["area_code"])))

    if "area_lookup" in tables:
        lk = tables["area_lookup"]
        file = names.get("area_lookup", "area_lookup")
        sums = lk.group_by("area_code", "level").agg(share=pl.col("share").sum()).sort("area_code", "level")
        bad = sums.filter((pl.col("share") - 1.0).abs() > SHARE_TOLERANCE).with_columns(
            area_code=pl.format("{} {} sums to {}", "area_code", "level", pl.col("share").round(12))
        )
        if bad.height:
            problems.append(Problem(file, "share", f"{bad.height} authority-level share sum(s) differ from 1",
                                    f"shares of each authority within a level to sum to 1 (within {SHARE_TOLERANCE:g})",
                                    row_labels(bad, ["area_code"])))
        unknown_levels = sorted(set(lk["level"].unique().to_list()) - set(LEVELS))
        present_levels = set(lk["level"].unique().to_list())
        for level in [lv for lv in LEVELS if lv in REQUIRED_LEVELS or lv in present_levels]:
            covered = lk.filter(pl.col("level") == level).select("area_code").unique()
            missing = areas.join(covered, on="area_code", how="anti").sort("area_code")
            if missing.height:
                problems.append(Problem(file, "level", f"{missing.height} authority(ies) not mapped at level '{level}'",
                                        f"every authority mapped at every level it has ({', '.join(LEVELS)}; ca "
                                        "optional)",
                                        row_labels(missing, ["area_code"])))
        if unknown_levels:
            problems.append(Problem(file, "level", f"unknown level(s) {unknown_levels}", f"one of {', '.join(LEVELS)}"))
        names_per_code = lk.group_by("level", "target_code").agg(n=pl.col("target_name").n_unique()).filter(pl.col("n") > 1)
        if names_per_code.height:
            problems.append(Problem(file, "target_name", "an area code carries more than one name",
                                    "one name per target code", row_labels(names_per_code.sort("level", "target_code"),
                                                                           ["level", "target_code"])))
    return problems


def nhs_problems(tables: dict[str, pl.DataFrame], names: dict[str, str]) -> list[Problem]:
    """Practice and ICB tables must use the ICB codes of the area lookup, or of a later ICB configuration that
    icb_changes records; each old ICB's shares in icb_changes sum to 1."""
    problems: list[Problem] = []
    if "area_lookup" not in tables:
        return problems
    icbs = tables["area_lookup"].filter(pl.col("level") == "icb").select(icb_code="target_code").unique()
    if "icb_changes" in tables:
        ch = tables["icb_changes"]
        icbs = pl.concat([icbs, ch.select(icb_code="new_code").unique()]).unique()
        sums = ch.group_by("effective_year", "old_code").agg(pl.col("share").sum()).filter(
            (pl.col("share") - 1).abs() > SHARE_TOLERANCE).sort("effective_year", "old_code")
        if sums.height:
            problems.append(Problem(names.get("icb_changes", "icb_changes"), "share",
                                    f"{sums.height} old ICB(s) whose shares do not sum to 1",
                                    f"the shares of each old ICB to sum to 1 (within {SHARE_TOLERANCE:g})",
                                    row_labels(sums, ["effective_year", "old_code"])))
    if "nhs_icb_allocations" in tables:  # a round's outcomes are published for every ICB of a stream, or for none
        outcome = ["convergence", "recurrent_allocation", "post_convergence_distance_from_target"]
        t = tables["nhs_icb_allocations"]
        if all(c in t.columns for c in outcome + ["stream"]):
            half = (t.group_by("allocation_round", "stream").agg(
                given=pl.sum_horizontal(*[pl.col(c).is_not_null() for c in outcome]).sum(), n=pl.len())
                .filter((pl.col("given") > 0) & (pl.col("given") < pl.col("n") * len(outcome)))
                .sort("allocation_round", "stream"))
            if half.height:
                problems.append(Problem(names.get("nhs_icb_allocations", "nhs_icb_allocations"),
                                        ", ".join(outcome), f"{half.height} round(s) with some outcomes published and "
                                        "others empty", "a round's outcome columns given for every ICB of the "
                                        "stream, or left empty for all of them (a round without published outcomes)",
                                        row_labels(half, ["allocation_round", "stream"])))
    for name in ("practice_weighted_population", "nhs_icb_allocations"):  # codes: the lookup's or later ones
        if name in tables:
            unknown = tables[name].with_row_index("__row").join(icbs, on="icb_code", how="anti", maintain_order="left")
            if unknown.height:
                problems.append(Problem(names.get(name, name), "icb_code", f"{unknown.height} row(s) with ICB codes "
                                        "not in the area lookup", "ICB codes of area_lookup level 'icb'",
                                        row_labels(unknown, ["icb_code"])))
    return problems
