"""Reading a dataset's files strictly: one file per table, CSV and Parquet read exactly as written (nothing
coerced), checksums, population in chunks of one row per person; a user's own file read and checked against its
contract. What it finds wrong is a Problem naming the file, the column and the rows."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import polars as pl

from fundform.base.errors import ENVIRONMENT_ERRNOS, InvalidInput, Problem
from fundform.inputs.contracts import TableContract, check_table
from fundform.inputs.tables import (
    INDICATOR_PREFIX,
)

SHARE_TOLERANCE = 1e-9
AGES = 91  # 0..89 and 90+
SEXES = ("F", "M")


@dataclass(frozen=True)
class InputFile:
    table: str
    path: Path
    sha256: str
    rows: int


def pq_rows(path: Path) -> int:
    """A Parquet file's row count from its footer; 0 for a file whose footer cannot be read (the chunk checks name
    it: chunk_file_problems)."""
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path).metadata.num_rows
    except Exception:  # reported by the checks, never an internal error here
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
        except Exception as e:  # a corrupt footer: named like any unreadable table file
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
    except Exception as e:  # a page that fails only when read: the file at fault is named
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
            repeated = lf.filter(pl.struct(key).is_duplicated()).head(10).collect()
            labels = tuple("/".join(str(r[k]) for k in key) for r in repeated.iter_rows(named=True))
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
    return cast(pl.DataFrame, pl.from_arrow(pq.ParquetFile(path, page_checksum_verification=True).read()))


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
    except Exception as e:  # a corrupt file: reported with the others
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


def check_user_file(path: Path, contract: TableContract) -> tuple[pl.DataFrame | None, list[Problem]]:
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


def read_user_file(path: Path, contract: TableContract) -> pl.DataFrame:
    """check_user_file, raising InvalidInput on any problem."""
    frame, problems = check_user_file(path, contract)
    if problems or frame is None:
        raise InvalidInput(problems, str(path))
    return frame
