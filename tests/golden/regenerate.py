"""Regenerate the golden outputs of every shipped formula version, when a change to them is intended.

    .venv/bin/python tests/golden/regenerate.py

Each fixture is one version's run over its effective years on the bundled data, at region level (NHS region for
versions built on NHS England's ICB baselines): small enough to read in a review, and sensitive to any change in need, targets, transition, local tax or rounding. Commit
the regenerated files with a message saying why the numbers moved.
"""

from __future__ import annotations

import sys
from pathlib import Path

import polars as pl

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from fundform.base.paths import default_data_dir
from fundform.formula.registry import available_formulas
from fundform.formula.scenario import resolve_formula
from fundform.inputs.dataset import load_dataset
from fundform.studies.pipeline import RunParameters, compute

COLUMNS = ["area_code", "financial_year", "target_share", "target_allocation", "allocation", "transition_bound",
           "notional_local_tax", "grant", "grant_real"]


def golden_frame(formula_id: str) -> pl.DataFrame:
    formula = resolve_formula(formula_id)
    spec = formula.spec
    level = "nhs-region" if spec.baseline.source == "nhs_icb_allocations" else "region"
    params = RunParameters(level=level, start_year=spec.effective_years[0], years=len(spec.effective_years))
    result = compute(load_dataset(default_data_dir()), formula, params)
    # floats written with full precision (repr round-trips exactly); money is integer pence
    return result.allocations.select(COLUMNS).with_columns(
        pl.col("target_share").map_elements(repr, return_dtype=pl.String))


def path_for(formula_id: str) -> Path:
    return HERE / f"{formula_id}.csv"


def main() -> None:
    for formula_id in available_formulas():
        golden_frame(formula_id).write_csv(path_for(formula_id))
        print(f"wrote {path_for(formula_id)}")


if __name__ == "__main__":
    main()
