"""Need for places built from GP practices, as NHS England's place-based allocation tool computes it: any list of
practices becomes a place, whose need is the sum of its practices' weighted populations."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from fundform.base.errors import InvalidInput, Problem
from fundform.base.numeric import fixed_sum
from fundform.formula.spec import FormulaSpec
from fundform.inputs.contracts import Column, TableContract, row_labels
from fundform.inputs.dataset import Dataset
from fundform.inputs.files import read_user_file

PLACES = TableContract(
    name="places",
    description="A user's places: each GP practice assigned to one place.",
    source="the user",
    vintage="-",
    columns=(Column("practice_code", "str", "ODS code", "GP practice"),
             Column("place_code", "str", "code", "the place the practice belongs to"),
             Column("place_name", "str", "text", "the place's name")),
    key=("practice_code",),
    covers_every_area=False,
)
COMPONENTS = ("wp_general_acute", "wp_community", "wp_mental_health", "wp_maternity", "wp_health_inequalities",
              "wp_prescribing")


def read_places(path: Path) -> pl.DataFrame:
    return read_user_file(path, PLACES)


def place_need(data: Dataset, spec: FormulaSpec, places: pl.DataFrame, file: str = "places") -> pl.DataFrame:
    """Per place: registered population, need-weighted population and its components, need index against England,
    share of England's need, and the ICBs its practices belong to."""
    if spec.need.method != "practice_weighted_population":
        raise InvalidInput([Problem(file, "", f"{spec.id} measures need per authority, not per practice",
                                    "a version whose need method is practice_weighted_population (e.g. nhs-icb-2024)")])
    practices = data["practice_weighted_population"].filter(pl.col("weights_year") == spec.need.weights_year)
    unknown = places.with_row_index("__row").join(practices.select("practice_code"), on="practice_code", how="anti")
    if unknown.height:
        raise InvalidInput([Problem(file, "practice_code", f"{unknown.height} practice code(s) not in the "
                                    f"{spec.need.weights_year} practice weighted populations",
                                    "codes of practice_weighted_population", row_labels(unknown, ["practice_code"]))])
    wp = spec.need.weighted_population_column
    national = practices.select(nwp=fixed_sum(pl.col(wp)), pop=fixed_sum(pl.col("registered_population"))).row(0)
    return (
        practices.join(places, on="practice_code", how="inner").sort("place_code", "practice_code")
        .group_by("place_code", "place_name", maintain_order=True)
        .agg(pl.len().alias("practices"), pl.col("icb_code").unique().sort().str.join(",").alias("icb_codes"),
             fixed_sum(pl.col("registered_population")).alias("population"),
             fixed_sum(pl.col(wp)).alias("need_weighted_population"), *[fixed_sum(pl.col(c)).alias(c) for c in COMPONENTS])
        .with_columns(need_index=(pl.col("need_weighted_population") / pl.col("population")) / (national[0] / national[1]),
                      share_of_england=pl.col("need_weighted_population") / national[0])
        .sort("place_code")
    )
