"""Every table a run writes, declared once: its name, its columns (type, unit, description: `outputs.schema`) and
the one function that builds it from the settlement's outcome (`fundform.engine.outcome.Outcome`, scenario 0 of a run).

`RunResult`, the Parquet files a run writes, `fundform.interfaces.api.Run`, the run warehouse's tables and
docs/output-schema.md all iterate over `OUTPUTS`. To add an output: write its columns in `outputs.schema` and add
one `Output` here; nothing else changes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import polars as pl
import pyarrow as pa

from fundform.base.errors import present
from fundform.outputs.schema import (
    ALLOCATIONS,
    COHORTS,
    COMPARE,
    DRAWS,
    LETTER,
    MONEY,
    NEED,
    RECONCILIATION,
    SCHEMA_VERSION,
    SENSITIVITY,
    STREAMS,
    UNCERTAINTY,
    WATERFALL,
    OutputColumn,
)

if TYPE_CHECKING:  # the declarations are read by commands that compute nothing (warehouse, export, docs)
    from fundform.engine.outcome import Outcome


class Built:
    """What a builder reads: the outcome, the scenario a run reports, and the tables built before it."""

    def __init__(self, oc: Outcome, i: int = 0):
        self.oc, self.i = oc, i
        self.tables: dict[str, pl.DataFrame] = {}

    @property
    def grid(self) -> pl.DataFrame:
        """financial_year, year_index, area_code: one row per year and area, year-major, areas in code order."""
        return self.oc.settled.years.join(self.oc.areas.select("area_code"), how="cross").sort("year_index",
                                                                                              "area_code")


def _flat(a: np.ndarray) -> pl.Series:
    return pl.Series(np.asarray(a).reshape(-1))


def build_allocations(b: Built) -> pl.DataFrame:
    oc, i = b.oc, b.i
    path = oc.settlements[0].path.with_columns(control_total=pl.Series(
        sum(s.totals[i] for s in oc.settlements)))
    by_year = pl.concat([f.with_columns(financial_year=pl.lit(y)) for y, f in zip(oc.financial_years, oc.frames)],
                        how="diagonal_relaxed")
    return (
        b.grid.join(by_year, on=["financial_year", "area_code"], how="left", maintain_order="left")
        .join(path.select("financial_year", "control_total"), on="financial_year", how="left", maintain_order="left")
        .with_columns(
            area_level=pl.lit(oc.params.level),
            target_allocation=_flat(oc.targets[i]),
            todays_funding=pl.Series(np.tile(oc.todays_funding, oc.params.years) if oc.todays_funding is not None
                                     else [None] * (oc.params.years * len(oc.codes)), dtype=pl.Int64),
            baseline=_flat(present(oc.baselines, "the uprated baselines")[i]),
            previous_allocation=_flat(oc.previous[i]),
            allocation=_flat(oc.allocation[i]),
            transition_bound=_flat(oc.bound_label(i)),
            years_to_target=pl.Series(np.tile(oc.years_to_target[i], oc.params.years)).fill_nan(None),
            guarantee_payment=_flat(oc.guarantee[i]),
            notional_local_tax=_flat(oc.notional[i]),
            notional_local_resources=_flat(oc.notional_full),
            equalisation=_flat(-oc.notional[i]),
            negative_grant_adjustment=_flat(oc.negative_grant_adjustment[i]),
            **{c: _flat(v) for c, v in oc.yields.items()},
            local_yield=_flat(oc.local_yield),
            spending_power=_flat(oc.spending_power[i]),
            grant=_flat(oc.grant[i]),
            grant_real=_flat(oc.grant_real[i]),
            grant_per_head=_flat(oc.grant_per_head[i]),
        )
        .with_columns(
            distance_from_target=(pl.col("allocation") - pl.col("target_allocation")) / pl.col("target_allocation"),
            year_index=pl.col("year_index").cast(pl.Int32),
        )
        .select([c.name for c in ALLOCATIONS])
    )


def build_need(b: Built) -> pl.DataFrame:
    return b.oc.areas.with_columns(area_level=pl.lit(b.oc.params.level)).select([c.name for c in NEED])


def build_streams(b: Built) -> pl.DataFrame:
    from fundform.engine.outcome import bound_labels

    oc, i = b.oc, b.i
    names = oc.areas.select("area_code", "area_name")
    return pl.concat([
        b.grid.join(s.path.with_columns(control_total=pl.Series(s.totals[i])).select(
            "financial_year", "control_total"), on="financial_year", how="left", maintain_order="left")
        .join(names, on="area_code", how="left", maintain_order="left")
        .with_columns(area_level=pl.lit(oc.params.level), stream=pl.lit(s.name),
                      target_allocation=_flat(s.targets[i]), baseline=_flat(present(s.baselines, "the uprated baselines")[i]),
                      previous_allocation=_flat(s.transition.previous[i]),
                      allocation=_flat(s.transition.allocation[i]),
                      transition_bound=_flat(bound_labels(oc.bounds[k, i])))
        .with_columns(distance_from_target=(pl.col("allocation") - pl.col("target_allocation"))
                      / pl.col("target_allocation"))
        .select([c.name for c in STREAMS])
        for k, s in enumerate(oc.settlements)])


def build_letter(b: Built) -> pl.DataFrame:
    from fundform.formula.scenario import ROUND_STREAM_TITLES
    from fundform.outputs.letter import letter_lines

    titles = {s.name: s.title for s in b.oc.spec.streams} or {
        s.name: ROUND_STREAM_TITLES.get(s.spec.baseline.stream, s.spec.baseline.stream) for s in b.oc.settlements}
    lines = letter_lines(b.tables["streams"], b.oc.settlements, titles)
    if lines is None:  # a version that does not read NHS England's rounds has no letter: no rows
        return pl.DataFrame(schema={c.name: pl.Int64 if c.type == MONEY else pl.Series(pa.array([], c.type)).dtype
                                    for c in LETTER})
    return lines.select([c.name for c in LETTER])


def build_waterfall(b: Built) -> pl.DataFrame:
    from fundform.engine.waterfall import need_steps, waterfall

    oc = b.oc
    pooled = len(oc.settlements) > 1
    need_spec = oc.settlements[0].spec if not pooled else oc.spec
    by_frame: dict[int, list] = {}  # each year's need steps from its own population (computed once if all alike)
    for y, f in zip(oc.financial_years, oc.frames):
        if id(f) not in by_frame:
            by_frame[id(f)] = need_steps(oc.settled.data.for_year(y), need_spec.at(y), oc.params.level, f,
                                         pooled=pooled)
    return waterfall(b.tables["allocations"], {y: by_frame[id(f)] for y, f in zip(oc.financial_years, oc.frames)})


def build_cohorts(b: Built) -> pl.DataFrame:
    from fundform.engine.waterfall import cohort_budgets

    parts = cohort_budgets(b.oc.settled.data, b.oc.spec, b.oc.params.level, b.tables["allocations"])
    return parts.select([c.name for c in COHORTS])  # in the output's column order


def build_reconciliation(b: Built) -> pl.DataFrame:
    from fundform.engine.reconcile import extra_checks, reconcile

    oc = b.oc
    allocations = b.tables["allocations"]
    one = [s.one(b.i) for s in oc.settlements]
    return reconcile(allocations, one, oc.targets[b.i].sum(axis=1), oc.released[b.i], oc.spec,
                     extra=extra_checks(allocations, oc.spec, one))


@dataclass(frozen=True)
class Output:
    name: str  # the table's name: its file is NAME.parquet, its warehouse table NAME, its attribute on a run NAME
    columns: tuple[OutputColumn, ...]
    build: Callable[[Built], pl.DataFrame]
    description: str
    priced: bool = False  # its real-terms columns carry the run's price base year
    recorded: bool = True  # kept in the run warehouse (one row per run, area, year...)


# in build order: a builder may read the tables before it
OUTPUTS: tuple[Output, ...] = (
    Output("allocations", ALLOCATIONS, build_allocations, "one row per area and year: need, target, transition, "
           "local tax and grant", priced=True),
    Output("need", NEED, build_need, "one row per area: need in the first settlement year", recorded=False),
    Output("reconciliation", RECONCILIATION, build_reconciliation, "the identities every run satisfies, per year, "
           "checked in pence"),
    Output("streams", STREAMS, build_streams, "one row per stream, area and year (one stream, all, for a version "
           "without streams)"),
    Output("letter", LETTER, build_letter, "one row per line (stream), area and year of a version that reads NHS "
           "England's published rounds: baseline, base growth, convergence and allocation, fundform's and the "
           "published beside them, and the difference (no rows for other versions)"),
    Output("waterfall", WATERFALL, build_waterfall, "one row per area, year and step: the grant built from an "
           "equal share per head"),
    Output("cohorts", COHORTS, build_cohorts, "one row per area, year and age cohort: the grant's parts"),
)
BY_NAME = {o.name: o for o in OUTPUTS}
TABLE_NAMES = tuple(o.name for o in OUTPUTS)
# every table fundform writes, and its columns: a run's, then the comparison `fundform compare` writes
# written by other commands than a plain run: compare, and a run with --uncertainty (studies.uncertainty)
WRITTEN_BY = {"compare": "written by `fundform compare`: one row per area and year",
              "uncertainty": "written by `fundform run --uncertainty FILE`: one row per area and year, the central "
              "figure and the range over the draws of the inputs (docs/uncertainty.md)",
              "sensitivity": "written by `fundform run --uncertainty FILE`: one row per area, year and source of "
              "uncertainty (and the remainder), the share of the variance of the area's allocation, adding to 1",
              "draws": "written by `fundform run --uncertainty FILE` when the file says `write_draws = true`: one row "
              "per draw, area and year, every draw's figures (the bands and probabilities recompute from it)"}
TABLES: dict[str, tuple[OutputColumn, ...]] = {**{o.name: o.columns for o in OUTPUTS}, "compare": COMPARE,
                                                "uncertainty": UNCERTAINTY, "sensitivity": SENSITIVITY,
                                                "draws": DRAWS}


def build_tables(oc: Outcome, i: int = 0) -> dict[str, pl.DataFrame]:
    """Every output table of scenario i, in build order."""
    b = Built(oc, i)
    for o in OUTPUTS:
        b.tables[o.name] = o.build(b)
    return b.tables


def schema_markdown() -> str:
    out = ["# Output schema", "", f"Schema version {SCHEMA_VERSION}. Generated from `fundform/outputs/registry.py` "
           "(each table) and `fundform/outputs/schema.py` (its columns) by `fundform docs`; do not edit by hand.", "",
           "Money is `decimal(20, 2)` pounds sterling, exact. Each Parquet file carries, per column, `unit` and "
           "`description` field metadata (and `price_base_year` on real-terms columns), and in its file metadata "
           "under the key `fundform` the run manifest (JSON).", ""]
    for name, cols in TABLES.items():
        what = BY_NAME[name].description if name in BY_NAME else WRITTEN_BY[name]
        out += [f"## {name}.parquet", "", what[0].upper() + what[1:] + ".", "", "| column | type | unit | description |", "|---|---|---|---|"]
        out += [f"| `{c.name}` | {c.type}{' (nullable)' if c.nullable else ''} | {c.unit}"
                f"{' (real terms)' if c.real_terms else ''} | {c.description} |" for c in cols]
        out.append("")
    return "\n".join(out)
