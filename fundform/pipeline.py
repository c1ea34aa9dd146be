"""One allocation run, end to end: checked inputs -> need -> targets -> five-year settlement -> local tax -> grant.

``compute`` is pure (data and formula in, frames out); ``run`` adds reading, the manifest and the atomic write.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from fundform.errors import FundformError
from fundform.formula.registry import LoadedFormula
from fundform.formula.scenario import resolve_formula
from fundform.formula.spec import format_year, parse_year
from fundform.geography import roll_up
from fundform.inputs.dataset import Dataset, load_dataset
from fundform.inputs.tables import BASELINE_COMPONENTS, LEVELS
from fundform.localtax.notional import notional_local_tax_base, year_factors
from fundform.need.weighted_population import need_weighted_population, target_shares
from fundform.outputs.manifest import build_manifest, with_volatile
from fundform.outputs.schema import ALLOCATIONS, NEED, RECONCILIATION
from fundform.outputs.write import atomic_write_dir, to_arrow
from fundform.settlement.control_total import control_total_path, index_growth, index_levels, settlement_years
from fundform.settlement.money import apportion, largest_remainder, round_half_up
from fundform.formula.spec import Transition
from fundform.settlement.transition import (BOUND_CEILING, BOUND_FLOOR, TransitionResult, ceiling_pence,
                                             floor_pence, run_transition)

ADDITIVE = ["population", "age_weighted_population", "need_weighted_population", "baseline_gbp",
            "tax_base_band_d", "notional_local_tax_base"]


@dataclass(frozen=True)
class RunParameters:
    level: str = "ltla"
    start_year: str = "2026/27"
    years: int = 5
    price_base_year: str | None = None  # default: the first settlement year

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise FundformError(f"unknown level '{self.level}' (choose one of {', '.join(LEVELS)})")
        try:
            parse_year(self.start_year)
            if self.price_base_year:
                parse_year(self.price_base_year)
        except ValueError as e:
            raise FundformError(str(e)) from None
        if not 1 <= self.years <= 20:
            raise FundformError(f"--years must be between 1 and 20, got {self.years}")

    @property
    def price_base(self) -> str:
        return self.price_base_year or self.start_year

    def as_dict(self) -> dict:
        return {"level": self.level, "start_year": self.start_year, "years": self.years,
                "price_base_year": self.price_base}


@dataclass
class RunResult:
    allocations: pl.DataFrame  # money columns in int64 pence
    need: pl.DataFrame
    reconciliation: pl.DataFrame
    control_totals: pl.DataFrame
    policies: dict = field(default_factory=dict)
    manifest: dict = field(default_factory=dict)
    out_dir: Path | None = None


def _need_by_area(data: Dataset, formula: LoadedFormula, level: str) -> tuple[pl.DataFrame, float]:
    spec = formula.spec
    tables = {name: data.lazy(name) for name in data.tables}
    need = need_weighted_population(data.lazy("population"), spec.need.age_cost_curve, spec.need.indicators, tables)
    baseline = data.lazy("baseline").select("area_code", baseline_gbp=pl.sum_horizontal(*BASELINE_COMPONENTS))
    notional, band_d = notional_local_tax_base(data.lazy("council_tax"), spec.local_tax)
    ltla = need.join(baseline, on="area_code", how="left", maintain_order="left").join(notional, on="area_code", how="left", maintain_order="left")
    by_level = roll_up(ltla, data.lazy("area_lookup"), level, ADDITIVE)
    return target_shares(by_level).collect(), band_d


def compute(data: Dataset, formula: LoadedFormula, params: RunParameters,
            progress: Callable[[str], None] | None = None) -> RunResult:
    step = progress or (lambda _msg: None)
    spec = formula.spec
    step("need-weighted population")
    areas, band_d = _need_by_area(data, formula, params.level)
    n = areas.height

    step("control totals")
    years = settlement_years(params.start_year, params.years)
    year0 = format_year(parse_year(params.start_year) - 1)
    all_years = pl.concat([pl.DataFrame({"financial_year": [year0], "year_index": [0]},
                                        schema=years.schema), years])
    growth = index_growth(spec.indices, spec.control_total.inflation_index)
    base_total = int(round_half_up(areas["baseline_gbp"].sum() * 100))
    path = control_total_path(base_total, spec.control_total, growth, all_years)
    totals = path["control_total"].to_numpy()
    ct = totals[1:]

    step("targets and transition")
    shares = areas["target_share"].to_numpy()
    baseline_w = areas["baseline_gbp"].to_numpy()
    targets = apportion(ct, np.broadcast_to(shares, (params.years, n)))
    baselines = apportion(ct, np.broadcast_to(baseline_w, (params.years, n)))
    start = apportion(totals[0], baseline_w)
    inflation = np.array([growth.get(y, 0.0) for y in years["financial_year"]])
    tr = run_transition(start, targets, ct, spec.transition, years["financial_year"].to_list(), baselines=baselines,
                        inflation=inflation)

    step("local tax and grants")
    lt_factor = year_factors(spec.local_tax, years)["local_tax_factor"].to_numpy()
    notional_f = areas["notional_local_tax_base"].to_numpy()[None, :] * lt_factor[:, None] * 100
    notional = largest_remainder(notional_f, round_half_up(notional_f.sum(axis=1)))
    grant = tr.allocation + tr.guarantee - notional
    deflator = index_levels(growth, spec.control_total.inflation_index, params.price_base,
                            years["financial_year"].to_list())["index_level"].to_numpy()
    real_f = grant / deflator[:, None]
    grant_real = largest_remainder(real_f, round_half_up(real_f.sum(axis=1)))
    pop = areas["population"].to_numpy()
    per_head = round_half_up(grant / pop[None, :])

    step("assembling outputs")
    flat = lambda a: a.reshape(-1)  # noqa: E731  (year-major, areas in code order)
    bound_label = np.where(tr.bound == BOUND_FLOOR, "floor", np.where(tr.bound == BOUND_CEILING, "ceiling", "none"))
    grid = years.join(areas.select("area_code"), how="cross").sort("year_index", "area_code")
    allocations = (
        grid.join(areas, on="area_code", how="left", maintain_order="left")
        .join(path.select("financial_year", "control_total"), on="financial_year", how="left", maintain_order="left")
        .with_columns(
            area_level=pl.lit(params.level),
            target_allocation=pl.Series(flat(targets)),
            baseline=pl.Series(flat(baselines)),
            previous_allocation=pl.Series(flat(tr.previous)),
            allocation=pl.Series(flat(tr.allocation)),
            transition_bound=pl.Series(flat(bound_label)),
            years_to_target=pl.Series(np.tile(tr.years_to_target, params.years)).fill_nan(None),
            guarantee_payment=pl.Series(flat(tr.guarantee)),
            notional_local_tax=pl.Series(flat(notional)),
            grant=pl.Series(flat(grant)),
            grant_real=pl.Series(flat(grant_real)),
            grant_per_head=pl.Series(flat(per_head)),
        )
        .with_columns(
            distance_from_target=(pl.col("allocation") - pl.col("target_allocation")) / pl.col("target_allocation"),
            year_index=pl.col("year_index").cast(pl.Int32),
        )
        .select([c.name for c in ALLOCATIONS])
    )
    need = areas.with_columns(area_level=pl.lit(params.level)).select([c.name for c in NEED])
    recon = reconcile(allocations, tr, spec.transition, inflation)
    policies = {
        "notional_band_d_gbp": round(band_d, 6),
        "base_year_total_gbp": base_total / 100,
        "start_allocation_year": year0,
        "transition_scale_back": {y: float(v) for y, v in zip(years["financial_year"], tr.scale_back)},
        "released_by_transition_gbp": {y: int(v) / 100 for y, v in zip(years["financial_year"], tr.released)},
        "guarantee_paid_gbp": {y: int(v) / 100 for y, v in zip(years["financial_year"], tr.guarantee.sum(axis=1))},
        "areas_at_floor": {y: int((tr.bound[i] == BOUND_FLOOR).sum()) for i, y in enumerate(years["financial_year"])},
        "areas_at_ceiling": {y: int((tr.bound[i] == BOUND_CEILING).sum())
                             for i, y in enumerate(years["financial_year"])},
    }
    return RunResult(allocations, need, recon, path, policies)


def reconcile(alloc: pl.DataFrame, tr: TransitionResult, rule: Transition, inflation: np.ndarray) -> pl.DataFrame:
    """The identities every run must satisfy, per year, checked exactly in pence."""
    sums = alloc.group_by("financial_year", maintain_order=True).agg(
        control_total=pl.col("control_total").first(),
        allocation=pl.col("allocation").sum(),
        target=pl.col("target_allocation").sum(),
        baseline=pl.col("baseline").sum(),
        grant=pl.col("grant").sum(),
        notional=pl.col("notional_local_tax").sum(),
        guarantee=pl.col("guarantee_payment").sum(),
    )
    prev = tr.previous.astype(np.float64)
    below_floor = (np.maximum(floor_pence(prev, rule, inflation[:, None]) - tr.allocation, 0).sum(axis=-1)
                   if rule.floor is not None else np.zeros(len(sums)))
    above_ceiling = (np.maximum(tr.allocation - ceiling_pence(prev, rule), 0).sum(axis=-1)
                     if rule.ceiling is not None else np.zeros(len(sums)))
    rows = []
    for i, r in enumerate(sums.iter_rows(named=True)):  # a handful of identities per year, not a loop over areas
        y = r["financial_year"]
        rows += [
            (y, "sum of allocation = control total - released by a non-neutral rule",
             r["control_total"] - int(tr.released[i]), r["allocation"]),
            (y, "sum of target allocation = control total", r["control_total"], r["target"]),
            (y, "sum of baseline = control total", r["control_total"], r["baseline"]),
            (y, "sum of grant = allocations + guarantee payments - notional local tax",
             r["allocation"] + r["guarantee"] - r["notional"], r["grant"]),
            (y, "total shortfall below floors = 0", 0, int(below_floor[i])),
            (y, "total excess above ceilings = 0", 0, int(above_ceiling[i])),
        ]
    return pl.DataFrame(rows, schema={"financial_year": pl.String, "check": pl.String, "expected": pl.Int64,
                                      "actual": pl.Int64}, orient="row").with_columns(
        holds=pl.col("expected") == pl.col("actual"))


def run(formula_ref: str, data_dir: Path, params: RunParameters, out_dir: Path | None, out_root: Path,
        progress: Callable[[str], None] | None = None, write: bool = True, sets: tuple[str, ...] = ()) -> RunResult:
    """Load and check everything, compute, and write the run atomically. Nothing is written if anything fails.

    formula_ref is a formula id, a formula file or a scenario file; sets are --set key.path=value overrides."""
    step = progress or (lambda _msg: None)
    step("reading the formula version")
    formula = resolve_formula(formula_ref, sets)
    step("reading and checking the input data")
    data = load_dataset(data_dir)
    result = compute(data, formula, params, progress)
    manifest = build_manifest(
        formula={"id": formula.spec.id, "version": formula.spec.version, "sha256": formula.sha256,
                 "file": formula.path.name, "resolved_sha256": formula.resolved_sha256,
                 "scenario": Path(formula.scenario).name if formula.scenario else None},
        inputs=[{"table": f.table, "file": f.path.name, "sha256": f.sha256, "rows": f.rows} for f in data.files],
        parameters=params.as_dict(),
        overrides=[o.as_dict() for o in formula.overrides],
        policies=result.policies,
        data_dir=str(data_dir),
    )
    result.manifest = manifest
    if not result.reconciliation["holds"].all():
        bad = result.reconciliation.filter(~pl.col("holds"))
        raise FundformError(f"internal error: reconciliation failed:\n{bad}")
    if write:
        step("writing outputs")
        target = Path(out_dir) if out_dir else Path(out_root) / manifest["run_id"]
        meta = {**manifest, "price_base_year": params.price_base}
        files = {
            "allocations.parquet": to_arrow(result.allocations, ALLOCATIONS, params.price_base, meta),
            "need.parquet": to_arrow(result.need, NEED, None, meta),
            "reconciliation.parquet": to_arrow(result.reconciliation, RECONCILIATION, None, meta),
            "manifest.json": json.dumps(with_volatile(manifest, str(data_dir)), indent=2, sort_keys=True) + "\n",
        }
        result.out_dir = atomic_write_dir(target, files)
    return result
