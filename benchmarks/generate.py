"""Deterministic synthetic inputs at scale, consistent with the bundled authority totals (`make bench-data`).

- `lsoa/`: a dataset folder like data/default, whose population table is at small-area grain: about 33,755 LSOAs
  x 91 ages x 2 sexes (about 6.1 million rows). Each authority's published count for each age and sex is split
  among its LSOAs by a seeded multinomial draw, so the small areas add up exactly to the bundled totals. An LSOA
  table carries an IMD-like score per LSOA (the authority's score times seeded noise, rescaled so the
  population-weighted mean is the authority's).
- `persons/`: the same dataset with a person-level registered population: one row per person (person_id,
  practice_code, small_area_code, area_code, age, sex), about 57.7 million rows written as Parquet in chunks under
  `population/`. Persons are the LSOA counts expanded, each registered with a practice of their authority.

Not committed (benchmarks/data/ is ignored); rebuilt byte-identically from the seed.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np
import polars as pl

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SEED = 20261122
LSOAS = 33_755


def lsoa_counts(areas: list[str], pop: pl.DataFrame, rng: np.random.Generator) -> dict[str, int]:
    """LSOAs per authority, proportional to population, 33,755 in all (largest remainder)."""
    totals = pop.group_by("area_code").agg(pl.col("population").sum()).sort("area_code")
    share = totals["population"].to_numpy() / totals["population"].sum() * LSOAS
    base = np.floor(share).astype(int)
    base[np.argsort(-(share - base), kind="stable")[: LSOAS - base.sum()]] += 1
    return dict(zip(totals["area_code"].to_list(), np.maximum(base, 1).tolist()))


def build_lsoa(data: Path, out: Path, rng: np.random.Generator) -> pl.DataFrame:
    pop = pl.read_parquet(data / "population.parquet")
    if "financial_year" in pop.columns:  # the mid-2023 estimate: whole persons to split and expand, one year
        pop = pop.filter(pl.col("financial_year") == "2023/24").drop("financial_year")
    pop = pop.sort("area_code", "sex", "age")
    areas = sorted(pop["area_code"].unique().to_list())
    counts = lsoa_counts(areas, pop, rng)
    frames, lsoa_rows = [], []
    for area in areas:  # the generator, not the engine: one vectorised multinomial per authority
        k = counts[area]
        cells = pop.filter(pl.col("area_code") == area)
        weights = rng.dirichlet(np.full(k, 8.0))
        split = rng.multinomial(cells["population"].to_numpy().astype(np.int64), weights)  # (cells, k)
        codes = [f"{area}L{i:04d}" for i in range(k)]
        frames.append(pl.DataFrame({
            "area_code": area,
            "small_area_code": np.tile(codes, cells.height),
            "sex": np.repeat(cells["sex"].to_numpy(), k),
            "age": np.repeat(cells["age"].to_numpy(), k).astype(np.int16),
            "population": split.reshape(-1).astype(np.float64),
        }))
        lsoa_rows.append(pl.DataFrame({"small_area_code": codes, "area_code": area,
                                       "noise": rng.lognormal(0.0, 0.35, k)}))
    population = pl.concat(frames)
    out.mkdir(parents=True, exist_ok=True)
    for f in (data).glob("*.parquet"):
        if f.name != "population.parquet":
            shutil.copy(f, out / f.name)
    population.write_parquet(out / "population.parquet", compression="zstd", row_group_size=1_000_000)
    # an IMD-like score per LSOA whose population-weighted mean per authority is the authority's published score
    dep = pl.read_parquet(data / "deprivation.parquet").select("area_code", "imd_average_score")
    lsoa = pl.concat(lsoa_rows).join(population.group_by("small_area_code").agg(pl.col("population").sum()),
                                     on="small_area_code").join(dep, on="area_code")
    lsoa = lsoa.with_columns(raw=pl.col("imd_average_score") * pl.col("noise")).with_columns(
        imd_score=pl.col("raw") * pl.col("imd_average_score")
        / ((pl.col("raw") * pl.col("population")).sum().over("area_code")
           / pl.col("population").sum().over("area_code")))
    lsoa.select("small_area_code", "area_code", "imd_score", "population").sort("small_area_code").write_parquet(
        out / "lsoa_indicators.parquet")
    return population


def build_persons(lsoa_pop: pl.DataFrame, data: Path, out: Path, rng: np.random.Generator,
                  chunk_areas: int = 12) -> int:
    """Expand LSOA counts to persons, each with a practice of their authority; write Parquet chunks."""
    out.mkdir(parents=True, exist_ok=True)
    for f in data.glob("*.parquet"):
        if f.name != "population.parquet":
            shutil.copy(f, out / f.name)
    pdir = out / "population"
    pdir.mkdir(exist_ok=True)
    practices = (pl.read_parquet(data / "practice_weighted_population.parquet")
                 .filter(pl.col("weights_year") == "2024/25").select("practice_code", "area_code")
                 .sort("area_code", "practice_code")
                 .with_columns(idx=pl.int_range(pl.len()).over("area_code").cast(pl.Int32)))
    n_prac = practices.group_by("area_code").agg(n_practices=pl.len())
    areas = sorted(lsoa_pop["area_code"].unique().to_list())
    first_id = 0
    for c in range(0, len(areas), chunk_areas):
        part = lsoa_pop.filter(pl.col("area_code").is_in(areas[c:c + chunk_areas]) & (pl.col("population") > 0))
        rows = (part.select(pl.all().repeat_by(pl.col("population").cast(pl.UInt32))).explode(pl.all())
                .drop("population"))
        total = rows.height
        # each person registers with one of their authority's practices, drawn with the seed
        rows = (rows.with_columns(person_id=pl.int_range(first_id, first_id + total, dtype=pl.Int64),
                                  u=pl.Series(rng.random(total)))
                .join(n_prac, on="area_code", how="left", maintain_order="left")
                .with_columns(idx=(pl.col("u") * pl.col("n_practices")).floor().cast(pl.Int32))
                .join(practices, on=["area_code", "idx"], how="left", maintain_order="left")
                .with_columns(pl.col("practice_code").fill_null("P00000")))
        rows.select("person_id", "practice_code", "small_area_code", "area_code", "age", "sex").write_parquet(
            pdir / f"part-{c // chunk_areas:04d}.parquet", compression="zstd", row_group_size=1_000_000)
        first_id += total
    return first_id


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT / "data" / "default")
    ap.add_argument("--out", type=Path, default=HERE / "data")
    ap.add_argument("--no-persons", action="store_true", help="skip the ~58 million person-level rows")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(SEED)
    lsoa = build_lsoa(args.data, args.out / "lsoa", rng)
    print(f"lsoa: {lsoa.height:,} population rows in {lsoa['small_area_code'].n_unique():,} small areas")
    if not args.no_persons:
        n = build_persons(lsoa, args.data, args.out / "persons", rng)
        print(f"persons: {n:,} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
