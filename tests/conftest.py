"""Shared fixtures: the bundled dataset, a default run, and a factory of small synthetic datasets."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import settings

from fundform.base.paths import PROJECT_ROOT
from fundform.formula.registry import load_formula
from fundform.inputs.dataset import Dataset, load_dataset
from fundform.studies.pipeline import RunParameters, compute

DATA = PROJECT_ROOT / "data" / "default"

# Shared CI machines are noisy: no property fails for being slow (speed is benchmarked, not tested). In CI
# (CI set, as .ci/run does) the examples are derandomised, so a red build reproduces exactly on a laptop.
settings.register_profile("default", deadline=None)
settings.register_profile("ci", deadline=None, derandomize=True, print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "default")


@pytest.fixture(autouse=True, scope="session")
def isolated_outputs(tmp_path_factory):
    """CLI runs in tests record into a temporary warehouse and output root, never into the checkout."""
    root = tmp_path_factory.mktemp("fundform-out")
    os.environ["FUNDFORM_WAREHOUSE"] = str(root / "fundform.duckdb")
    os.environ["FUNDFORM_OUT_ROOT"] = str(root)
    # the checked-input cache is tested on its own (tests/test_input_cache.py); elsewhere every run checks its inputs
    os.environ["FUNDFORM_NO_CACHE"] = "1"
    yield root


@pytest.fixture
def isolated(tmp_path, monkeypatch) -> Path:
    """A test's own warehouse and output root (runs it records are its alone); returns its tmp_path."""
    monkeypatch.setenv("FUNDFORM_WAREHOUSE", str(tmp_path / "wh.duckdb"))
    monkeypatch.setenv("FUNDFORM_OUT_ROOT", str(tmp_path / "out"))
    return tmp_path


@pytest.fixture(scope="session")
def bundled() -> Dataset:
    return load_dataset(DATA)


@pytest.fixture(scope="session")
def needs_formula():
    return load_formula("fundform-needs")


@pytest.fixture(scope="session")
def default_run(bundled, needs_formula):
    return compute(bundled, needs_formula, RunParameters())


@pytest.fixture
def data_copy(tmp_path) -> Path:
    """A writable copy of the bundled dataset, to break: a user's own dataset, so without the bundled checksum
    manifest (which would refuse any change; tests/test_reliability_corpus.py checks that it does)."""
    target = tmp_path / "data"
    shutil.copytree(DATA, target)
    (target / "CHECKSUMS.sha256").unlink()
    return target


def synthetic_dataset(n_areas: int = 6, seed: int = 0, population_scale: float = 1.0,
                      imd: np.ndarray | None = None, small_areas_per_area: int = 0,
                      level_groups: int = 2) -> Dataset:
    """A small, valid dataset built in memory: n areas with random populations, indicators, baselines."""
    rng = np.random.default_rng(seed)
    codes = [f"E06{i:06d}" for i in range(n_areas)]
    areas = pl.DataFrame({"area_code": codes, "area_name": [f"Area {i}" for i in range(n_areas)],
                          "area_type": ["Unitary Authority"] * n_areas})
    ages = np.arange(91)
    base = rng.uniform(200, 3000, size=(n_areas, 2, 91)) * population_scale
    pop = pl.DataFrame({
        "area_code": np.repeat(codes, 2 * 91),
        "sex": np.tile(np.repeat(["F", "M"], 91), n_areas),
        "age": np.tile(ages, 2 * n_areas).astype(np.int64),
        "population": base.reshape(-1),
    })
    if small_areas_per_area:
        k = small_areas_per_area
        pop = pop.join(pl.DataFrame({"part": np.arange(k)}), how="cross").with_columns(
            small_area_code=pl.format("{}-{}", "area_code", "part"),
            population=pl.col("population") / k,
        ).drop("part")
    imd = imd if imd is not None else rng.uniform(5, 45, n_areas)
    deprivation = pl.DataFrame({"area_code": codes, "imd_average_score": np.asarray(imd, dtype=float),
                                "imd_rank_average_score": pl.Series(np.asarray(imd, dtype=float)).rank(
                                    "min", descending=True).cast(pl.Int64).to_numpy(),  # 1 = most deprived
                                "imd_proportion_bottom_decile": rng.uniform(0, 0.5, n_areas)})
    mortality = pl.DataFrame({"area_code": codes, "preventable_mortality_rate": rng.uniform(90, 300, n_areas),
                              "preventable_mortality_year": [2022] * n_areas,
                              "preventable_mortality_source": ["observed"] * n_areas})
    tb = base.sum(axis=(1, 2)) * rng.uniform(0.25, 0.6, n_areas)  # Band D equivalents per resident, as observed
    council_tax = pl.DataFrame({"area_code": codes, "tax_base_band_d": tb, "tax_base_band_d_2023_24": tb * 0.99,
                                "band_d_billing": rng.uniform(1500, 2200, n_areas),
                                "band_d_billing_2023_24": rng.uniform(1400, 2100, n_areas),
                                "band_d_social_care_authority": rng.uniform(1500, 2200, n_areas),
                                "band_d_area": rng.uniform(1800, 2500, n_areas),
                                "asc_precept_increment_band_d": rng.uniform(25, 40, n_areas)})
    totals = base.sum(axis=(1, 2))
    baseline = pl.DataFrame({"area_code": codes, "baseline_year": ["2025/26"] * n_areas,
                             "nhs_core": totals * rng.uniform(1500, 2200, n_areas),
                             "nhs_primary_medical": totals * 180.0,
                             "adult_social_care": totals * rng.uniform(300, 600, n_areas),
                             "public_health": totals * 60.0,
                             "council_spending_source_year": ["2024-25"] * n_areas})
    groups = [f"G{i % level_groups}" for i in range(n_areas)]
    lk = []
    for level in ("ltla", "utla", "region", "icb", "nhs-region"):
        if level == "ltla":
            lk.append(pl.DataFrame({"area_code": codes, "level": level, "target_code": codes,
                                    "target_name": areas["area_name"], "share": 1.0}))
        else:
            lk.append(pl.DataFrame({"area_code": codes, "level": level, "target_code": groups,
                                    "target_name": [f"Group {g}" for g in groups], "share": 1.0}))
    tables = {"areas": areas, "population": pop, "deprivation": deprivation, "preventable_mortality": mortality,
              "council_tax": council_tax, "area_lookup": pl.concat(lk), "baseline": baseline}
    return Dataset(Path("synthetic"), tables, ())


def write_dataset(ds: Dataset, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, frame in ds.tables.items():
        frame.write_parquet(directory / f"{name}.parquet")
    return directory


def require_chromium(path: str | None) -> None:
    """A browser test's guard: under `make test` or CI (FUNDFORM_REQUIRE_BROWSER or CI set) a missing Chromium fails
    the test, naming how to get it; only a bare pytest run elsewhere skips."""
    if path is None:
        how = "Debian's chromium is not installed: sudo apt-get install chromium (make test as root installs it)"
        if os.environ.get("CI") or os.environ.get("FUNDFORM_REQUIRE_BROWSER"):
            pytest.fail(how)
        pytest.skip(how)
