"""Policy cases as data: a case file states inputs, a rule or a version, and the figures it must give, with a
tolerance and where each expected figure comes from; `fundform cases` and the test suite run every file in
`cases/` (docs/cases.md). An analyst adds a case without writing Python.

Two kinds:

- `kind = "transition"`: the transition stage alone, on a few areas in pounds: last year's allocations, each year's
  targets and total, a rule stated as in a formula file (every number with its unit), and each year's expected
  allocations (and, where stated, bounds and scale-back). The engine's `run_transition` settles it in pence.
- `kind = "run"`: a whole run of a version or scenario (`--set` overrides, level, years, a dataset folder relative
  to the case, or the bundled one), and expected figures of its output tables by area, year (and stream), each
  within an absolute (pounds) or relative tolerance.

A case whose figures the engine does not give fails, naming the case, the figure, the expected value and the value
given; a case file that is malformed is refused naming the file and key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from fundform.base.errors import present


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TransitionYear(_Model):
    total: float  # pounds: the year's control total
    target: list[float]  # pounds, one per area
    expect_allocation: list[float]  # pounds, one per area
    expect_bound: list[Literal["floor", "ceiling", "none"]] | None = None
    expect_scale_back: float | None = None


class Expect(_Model):
    table: Literal["allocations", "streams", "letter", "need"] = "allocations"
    area: str  # area code (or a unique part of its name)
    year: str | None = None  # financial year (not for need)
    stream: str | None = None  # streams and letter: the stream
    column: str
    value: float  # pounds for money columns
    tolerance: float | None = Field(None, ge=0)  # absolute, in the column's unit (pounds for money)
    relative_tolerance: float | None = Field(None, ge=0)
    source: str = Field(min_length=1)  # where the expected figure comes from (a published table, a hand working)

    @model_validator(mode="after")
    def _one_tolerance(self) -> Expect:
        if (self.tolerance is None) == (self.relative_tolerance is None):
            raise ValueError("give exactly one of tolerance (absolute) and relative_tolerance")
        return self


class Case(_Model):
    title: str = Field(min_length=1)
    why: str = ""  # the case in words, as a reviewer checks it by hand
    kind: Literal["transition", "run"]
    # transition
    rule: dict[str, Any] | None = None
    areas: list[str] | None = None
    previous: list[float] | None = None  # pounds: the year before the settlement
    years: list[TransitionYear] | None = None
    tolerance: float = Field(0.0, ge=0)  # pounds, for a transition case's allocations
    # run
    version: str | None = None
    set: list[str] = Field(default_factory=list)
    level: str | None = None
    start_year: str | None = None
    settlement_years: int | None = Field(None, ge=1, le=30)
    data: str | None = None  # a dataset folder relative to the case file (default: the bundled dataset)
    expect: list[Expect] = Field(default_factory=list)
    path: Path | None = Field(None, exclude=True)

    @model_validator(mode="after")
    def _kind(self) -> Case:
        if self.kind == "transition":
            if self.rule is None or self.areas is None or self.previous is None or self.years is None:
                missing = [k for k in ("rule", "areas", "previous", "years") if getattr(self, k) is None]
                raise ValueError(f"a transition case needs {', '.join(missing)}")
            n = len(self.areas)
            if len(self.previous) != n or any(len(y.target) != n or len(y.expect_allocation) != n
                                               or (y.expect_bound is not None and len(y.expect_bound) != n)
                                               for y in self.years):
                raise ValueError(f"every list of a transition case has one value per area ({n}: "
                                 f"{', '.join(self.areas)})")
        else:
            if self.version is None or not self.expect:
                raise ValueError("a run case needs version and at least one [[expect]]")
        return self


def load_case(path: Path) -> Case:
    from fundform.base.toml import problems_of, read_toml

    raw = read_toml(Path(path), "TOML policy case")
    try:
        return Case.model_validate({**raw, "path": Path(path)})
    except ValidationError as err:
        raise problems_of(path, "policy case", err) from None


def check_case(case: Case) -> list[str]:
    """What the engine gives against what the case expects: [] when it holds, else one line per figure that does
    not (the figure, the expected value and tolerance, the value given)."""
    return _check_transition(case) if case.kind == "transition" else _check_run(case)


def _pence(pounds: list[float]) -> np.ndarray:
    return np.round(np.asarray(pounds, dtype=np.float64) * 100).astype(np.int64)


def _check_transition(case: Case) -> list[str]:
    from fundform.engine.settlement.transition import BOUND_CEILING, BOUND_FLOOR, run_transition
    from fundform.formula.rules import make_rule

    # a transition case has each of these (Case._kind refuses one without)
    given = present(case.rule, "the case's rule")
    areas, years = present(case.areas, "the case's areas"), present(case.years, "the case's years")
    rule = make_rule(**{k: ({**v, "source": v.get("source", f"policy case {case.path.name if case.path else ''}")}
                            if isinstance(v, dict) else v) for k, v in given.items()})
    r = run_transition(_pence(present(case.previous, "the case's previous")),
                       np.stack([_pence(y.target) for y in years]), _pence([y.total for y in years]), rule)
    words = {BOUND_FLOOR: "floor", BOUND_CEILING: "ceiling"}
    problems = []
    for k, y in enumerate(years):
        got = r.allocation[k] / 100
        for a, want, have in zip(areas, y.expect_allocation, got):
            if abs(have - want) > case.tolerance + 1e-9:
                problems.append(f"year {k + 1}, {a}: allocation GBP {have:,.2f}, expected GBP {want:,.2f}"
                                + (f" +- {case.tolerance:,.2f}" if case.tolerance else ""))
        if y.expect_bound is not None:
            held = [words.get(int(b), "none") for b in r.bound[k]]
            for a, bound, at in zip(areas, y.expect_bound, held):
                if bound != at:
                    problems.append(f"year {k + 1}, {a}: held at {at}, expected {bound}")
        if y.expect_scale_back is not None and abs(float(r.scale_back[k]) - y.expect_scale_back) > 1e-9:
            problems.append(f"year {k + 1}: scale-back {float(r.scale_back[k]):.12g}, expected {y.expect_scale_back}")
    return problems


def _check_run(case: Case) -> list[str]:
    import polars as pl

    from fundform.base.paths import default_data_dir
    from fundform.formula.scenario import resolve_formula
    from fundform.inputs.cache import checked_dataset
    from fundform.outputs.registry import TABLES
    from fundform.outputs.schema import MONEY
    from fundform.studies.pipeline import RunParameters, compute

    data_dir = ((case.path.parent / case.data).resolve() if case.data and case.path else
                Path(case.data) if case.data else default_data_dir())
    formula = resolve_formula(present(case.version, "the case's version"), case.set)
    spec = formula.spec
    params = RunParameters(level=case.level or spec.default_level, start_year=case.start_year or
                           spec.effective_years[0], years=case.settlement_years or len(spec.effective_years))
    run = compute(checked_dataset(data_dir), formula, params)
    problems = []
    for e in case.expect:
        table = getattr(run, e.table)
        rows = table.filter((pl.col("area_code") == e.area) | pl.col("area_name").str.contains(e.area, literal=True))
        if e.year is not None and "financial_year" in rows.columns:
            rows = rows.filter(pl.col("financial_year") == e.year)
        if e.stream is not None:
            rows = rows.filter(pl.col("stream") == e.stream)
        where = f"{e.table}.{e.column} of {e.area}" + (f" {e.year}" if e.year else "") + (
            f" ({e.stream})" if e.stream else "")
        if rows.height != 1 or e.column not in rows.columns:
            problems.append(f"{where}: {rows.height} rows match (expected one row with the column)")
            continue
        have = rows[e.column][0]
        money = any(c.name == e.column and c.type == MONEY for c in TABLES[e.table])  # the output contract says
        have = None if have is None else (int(have) / 100 if money else float(have))  # pence to pounds
        limit = e.tolerance if e.tolerance is not None else present(e.relative_tolerance, "a tolerance") * abs(e.value)
        if have is None or abs(have - e.value) > limit + 1e-9:
            problems.append(f"{where}: {have!r}, expected {e.value!r} +- {limit:.6g} ({e.source})")
    return problems


def case_files(folder: Path) -> list[Path]:
    return sorted(Path(folder).glob("*.toml"))
