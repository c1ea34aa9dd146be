"""What the stages of one settlement read, built once and by keyword (issue 38): `Settle` holds the run's data at its
level, the version, the run's parameters, its settlement years, the index growth and the scenario axis; `Part` is
the version or one stream of it, as the stage computes it (`spec`) and where the scenarios' values for it are read
from (`version`, `stream`). A stage takes `(ctx, part, ...)` and the few values of its own (a year, a frame), so
a new input every stage reads is one field here, not an argument threaded through five signatures."""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property

import polars as pl

from fundform.engine.params import RunParameters
from fundform.engine.scenarios import ONE, Scenarios
from fundform.formula.spec import FormulaSpec, Stream
from fundform.inputs.dataset import Dataset


@dataclass(frozen=True, kw_only=True)
class Part:
    """The version (`stream` None) or one stream of it. `spec` is the version as the stream sees it
    (FormulaSpec.stream_view: its own need, baseline, growth, rule and dated sections); the scenarios' values are
    read by `version` and `stream` (engine.scenarios.stream_path)."""

    version: FormulaSpec
    stream: Stream | None = None

    @cached_property
    def spec(self) -> FormulaSpec:
        return self.version if self.stream is None else self.version.stream_view(self.stream)

    @property
    def name(self) -> str:
        """The settlement's name: the stream's, or "all" for a version without streams."""
        return "all" if self.stream is None else self.stream.name


@dataclass(frozen=True, kw_only=True)
class Settle:
    """The inputs every stage of one settlement reads. `data` is the run's data at its level (engine.outcome.prepare),
    `years` the settlement years (financial_year, year_index), `growth` the version's inflation index by year, and
    `scen` the scenario axis (a run: ONE), whose derived cache is this settlement's own (outcome.settle copies it)."""

    data: Dataset
    version: FormulaSpec
    params: RunParameters
    years: pl.DataFrame
    growth: dict[str, float]
    scen: Scenarios = ONE

    @cached_property
    def fy(self) -> list[str]:
        """The settlement years as labels ("2026/27", ...), in order."""
        return [str(y) for y in self.years["financial_year"].to_list()]

    def part(self, stream: Stream | None = None) -> Part:
        return Part(version=self.version, stream=stream)

    def at_level(self, level: str) -> Settle:
        """The same settlement at another level of the run (NHS regions settle as their ICBs)."""
        return replace(self, params=replace(self.params, level=level))

    def with_scenarios(self, scen: Scenarios) -> Settle:
        return replace(self, scen=scen)
