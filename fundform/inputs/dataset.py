"""Reading a dataset folder and checking it: every table against its contract, then the tables against each other.

``load_dataset`` either returns a ``Dataset`` whose tables all passed, or raises ``InvalidInput`` carrying every
problem found in every table. Nothing downstream runs on unchecked data.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from fundform.errors import InvalidInput, Problem
from fundform.inputs.contracts import _row_labels, check_table
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

    def __getitem__(self, name: str) -> pl.DataFrame:
        return self.tables[name]

    def lazy(self, name: str) -> pl.LazyFrame:
        return self.tables[name].lazy()


def pq_rows(path: Path) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).metadata.num_rows


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def find_table_file(directory: Path, name: str) -> Path | None:
    for ext in (".parquet", ".csv"):
        p = directory / f"{name}{ext}"
        if p.is_file():
            return p
    return None


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


def read_population_chunks(files: list[Path], folder: str) -> tuple[pl.DataFrame, list[Problem]]:
    """Person-level (one row per person) or pre-counted population chunks, counted by area, sex and age in one
    streaming pass over the files; the raw rows' own faults are counted in the same pass."""
    lf = pl.scan_parquet(files)
    cols = lf.collect_schema().names()
    problems = [Problem(folder, c, "column is missing", f"a column '{c}' in every chunk")
                for c in ("area_code", "sex", "age") if c not in cols]
    if problems:
        return pl.DataFrame(), problems
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


def _read(path: Path) -> pl.DataFrame:
    if path.suffix == ".parquet":
        return pl.read_parquet(path)
    # CSV: read codes as text so '01' style codes survive; numbers are cast (and checked) by the contract
    return pl.read_csv(path, infer_schema_length=0)


def check_user_file(path: Path, contract) -> tuple[pl.DataFrame | None, list[Problem]]:
    """A user's own table (CSV or Parquet) read and checked against its contract: the checked frame and any
    problems, for the caller to add its own checks to before raising."""
    path = Path(path)
    if not path.is_file():
        return None, [Problem(str(path), "", "file not found",
                              f"a CSV or Parquet file with columns {', '.join(contract.required_columns)}")]
    return check_table(_read(path), contract, path.name)


def read_user_file(path: Path, contract) -> pl.DataFrame:
    """check_user_file, raising InvalidInput on any problem."""
    frame, problems = check_user_file(path, contract)
    if problems:
        raise InvalidInput(problems, str(path))
    return frame


def load_dataset(directory: Path) -> Dataset:
    directory = Path(directory)
    problems: list[Problem] = []
    if not directory.is_dir():
        raise InvalidInput([Problem(str(directory), "", "data folder not found", "a folder holding the tables "
                                    + ", ".join(CONTRACTS))], str(directory))
    tables: dict[str, pl.DataFrame] = {}
    files: list[InputFile] = []
    small_notes: list[dict] = []
    for name, contract in CONTRACTS.items():
        sources = table_sources(directory, name)
        if name == "population" and sources and sources[0].parent.name == "population":
            counted, chunk_problems = read_population_chunks(sources, "population/")
            problems += chunk_problems
            files += [InputFile(name, f, sha256_file(f), pq_rows(f)) for f in sources]
            if not chunk_problems:
                checked, table_problems = check_table(counted, contract, "population/ (counted)")
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
        try:
            raw = _read(path)
        except Exception as e:  # unreadable file: report it with the others
            problems.append(Problem(path.name, "", f"cannot be read ({type(e).__name__}: {e})",
                                    "a readable Parquet or CSV file"))
            continue
        small = "small_area_code" in raw.columns and contract.key == ("area_code",) and contract.covers_every_area
        checked, table_problems = check_table(raw.drop("small_area_population", strict=False) if small else raw,
                                              contract if not small else dataclasses.replace(
                                                  contract, finer_grain_key="small_area_code"), path.name)
        problems += table_problems
        if small and checked is not None and not table_problems:  # need inputs finer than the authority
            checked, notes, small_problems = aggregate_small_areas(
                checked.with_columns(small_area_population=raw["small_area_population"]
                                     if "small_area_population" in raw.columns else None), contract, path.name)
            problems += small_problems
            small_notes.extend(notes)
        files.append(InputFile(name, path, sha256_file(path), raw.height))
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
        try:
            raw = _read(path)
        except Exception as e:  # noqa: BLE001  unreadable file: report it with the others
            problems.append(Problem(label, "", f"cannot be read ({type(e).__name__}: {e})",
                                    "a readable Parquet or CSV file"))
            continue
        contracts[name] = indicator_contract(path.stem, raw.columns)
        if len(contracts[name].columns) == 1 or "area_code" not in raw.columns:
            problems.append(Problem(label, "", "no area_code or no indicator column",
                                    "columns area_code and at least one numeric indicator"))
            continue
        checked, table_problems = check_table(raw, contracts[name], label)
        problems += table_problems
        files.append(InputFile(name, path, sha256_file(path), raw.height))
        if checked is not None:
            tables[name] = checked
    names = {f.table: (f.path.name if f.path.parent == directory else f"{INDICATOR_PREFIX}{f.path.name}"
                       if f.table.startswith(INDICATOR_PREFIX) else f"{f.path.parent.name}/") for f in files}
    conversions = list(small_notes)
    if "areas" in tables:  # inputs on older boundary vintages, converted by their contracts' rules
        current = set(tables["areas"]["area_code"].to_list())
        for name, contract in CONTRACTS.items():
            if name in tables and contract.key == ("area_code",) and contract.covers_every_area and name != "areas":
                tables[name], applied, conv_problems = convert(tables[name], contract, tables.get("code_changes"),
                                                               current, names.get(name, name))
                conversions += applied
                problems += conv_problems
    problems += cross_table_problems(tables, names, contracts)
    problems += nhs_problems(tables, names)
    if problems:
        raise InvalidInput(problems, str(directory))
    return Dataset(directory, tables, tuple(files), tuple(conversions))


def cross_table_problems(tables: dict[str, pl.DataFrame], names: dict[str, str],
                         contracts: dict | None = None) -> list[Problem]:
    """Coverage of areas across tables, complete population grids, lookup shares that sum to 1."""
    problems: list[Problem] = []
    if "areas" not in tables:
        return problems
    areas = tables["areas"].select("area_code").unique()
    area_set = areas.with_row_index("__row")
    for name, frame in tables.items():
        if name == "areas" or "area_code" not in frame.columns:
            continue
        file = names.get(name, name)
        present = frame.select("area_code").unique()
        missing = area_set.join(present, on="area_code", how="anti")
        if missing.height and (contracts or CONTRACTS)[name].covers_every_area:
            problems.append(Problem(file, "area_code", f"{missing.height} authority(ies) of the areas table absent",
                                    "every authority in areas to appear", _row_labels(missing, ["area_code"])))
        unknown = frame.with_row_index("__row").join(areas, on="area_code", how="anti")
        if unknown.height:
            problems.append(Problem(file, "area_code", f"{unknown.height} row(s) with codes not in the areas table",
                                    "codes listed in areas", _row_labels(unknown, ["area_code"])))

    if "population" in tables:
        pop = tables["population"]
        grid = pop.group_by("area_code", "sex", "age").agg().group_by("area_code").agg(
            n=pl.len(), sexes=pl.col("sex").n_unique()
        )
        incomplete = grid.filter((pl.col("n") != AGES * len(SEXES)) | (pl.col("sexes") != len(SEXES)))
        if incomplete.height:
            problems.append(Problem(names.get("population", "population"), "age,sex",
                                    f"{incomplete.height} authority(ies) without a full age-sex grid",
                                    f"ages 0..90 for each of sexes {', '.join(SEXES)} ({AGES * len(SEXES)} cells)",
                                    _row_labels(incomplete.with_row_index("__row"), ["area_code"])))
        bad_sex = pop.with_row_index("__row").filter(~pl.col("sex").is_in(list(SEXES)))
        if bad_sex.height:
            problems.append(Problem(names.get("population", "population"), "sex", f"{bad_sex.height} unknown sex code(s)",
                                    "F or M", _row_labels(bad_sex, ["area_code", "sex", "age"])))

    if "area_lookup" in tables:
        lk = tables["area_lookup"]
        file = names.get("area_lookup", "area_lookup")
        sums = lk.group_by("area_code", "level").agg(share=pl.col("share").sum()).with_row_index("__row")
        bad = sums.filter((pl.col("share") - 1.0).abs() > SHARE_TOLERANCE).with_columns(
            area_code=pl.format("{} {} sums to {}", "area_code", "level", pl.col("share").round(12))
        )
        if bad.height:
            problems.append(Problem(file, "share", f"{bad.height} authority-level share sum(s) differ from 1",
                                    f"shares of each authority within a level to sum to 1 (within {SHARE_TOLERANCE:g})",
                                    _row_labels(bad, ["area_code"])))
        unknown_levels = sorted(set(lk["level"].unique().to_list()) - set(LEVELS))
        present_levels = set(lk["level"].unique().to_list())
        for level in [lv for lv in LEVELS if lv in REQUIRED_LEVELS or lv in present_levels]:
            covered = lk.filter(pl.col("level") == level).select("area_code").unique()
            missing = area_set.join(covered, on="area_code", how="anti")
            if missing.height:
                problems.append(Problem(file, "level", f"{missing.height} authority(ies) not mapped at level '{level}'",
                                        f"every authority mapped at every level it has ({', '.join(LEVELS)}; ca "
                                        "optional)",
                                        _row_labels(missing, ["area_code"])))
        if unknown_levels:
            problems.append(Problem(file, "level", f"unknown level(s) {unknown_levels}", f"one of {', '.join(LEVELS)}"))
        names_per_code = lk.group_by("level", "target_code").agg(n=pl.col("target_name").n_unique()).filter(pl.col("n") > 1)
        if names_per_code.height:
            problems.append(Problem(file, "target_name", "an area code carries more than one name",
                                    "one name per target code", _row_labels(names_per_code.with_row_index("__row"),
                                                                           ["level", "target_code"])))
    return problems


def nhs_problems(tables: dict[str, pl.DataFrame], names: dict[str, str]) -> list[Problem]:
    """Practice and ICB tables must use the ICB codes of the area lookup."""
    problems: list[Problem] = []
    if "area_lookup" not in tables:
        return problems
    icbs = tables["area_lookup"].filter(pl.col("level") == "icb").select(icb_code="target_code").unique()
    for name in ("practice_weighted_population", "nhs_icb_allocations"):
        if name in tables:
            unknown = tables[name].with_row_index("__row").join(icbs, on="icb_code", how="anti")
            if unknown.height:
                problems.append(Problem(names.get(name, name), "icb_code", f"{unknown.height} row(s) with ICB codes "
                                        "not in the area lookup", "ICB codes of area_lookup level 'icb'",
                                        _row_labels(unknown, ["icb_code"])))
    return problems
