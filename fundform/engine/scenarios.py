"""The scenario axis every stage takes (Scenarios): `size` scenarios, each giving its own values to some of the
version's numbers, by the paths `--set` names them; a run is the one scenario that sets nothing (ONE). Where a
number is read from for a stream and in a year (stream_path, dated_path)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from fundform.base.years import FinancialYear
from fundform.formula.spec import DATED_SECTIONS, FormulaSpec, Stream

if TYPE_CHECKING:
    from fundform.engine.draws import DataDraws


def stream_path(stream: Stream | None, path: str) -> str:
    """Where a stream's parameter lives: its own need, transition or real growth where it has one, else the
    version's (so `need.indicators.deprivation.elasticity` moves every stream that shares the version's need)."""
    if stream is None:
        return path
    own = {"need": stream.need is not None, "transition": stream.transition is not None,
           "control_total": stream.real_growth is not None}
    if not own.get(path.split(".")[0], False):
        return path
    if path == "control_total.real_growth":
        return f"streams.{stream.name}.real_growth"
    return f"streams.{stream.name}.{path}"


def dates_number(node: Any, keys: list[str]) -> bool:
    """Whether a dated section's raw table sets the number at `keys` (named list items by their name, age bands
    by "from-to", as --set addresses them)."""
    for k in keys:
        if isinstance(node, dict) and "value" in node and k == "value":
            return True
        if isinstance(node, dict):
            if k not in node:
                return False
            node = node[k]
        elif isinstance(node, list):
            node = next((i for i in node if isinstance(i, dict) and (
                i.get("name") == k or f"{i.get('age_from')}-{i.get('age_to')}" == k)), None)
            if node is None:
                return False
        else:
            return False
    return True


def dated_path(spec: FormulaSpec, path: str, year: str | None) -> str:
    """The path a number is read from in `year`: the latest dated section of the version up to that year that sets
    it (`years."2025/26".transition.max_gain`), else the undated one. A `--set` or a sweep of the undated number
    leaves the dated values standing, as the version states them."""
    section, _, rest = path.partition(".")
    if year is None or section not in DATED_SECTIONS or not spec.years:
        return path
    for y in sorted(spec.years, key=FinancialYear.parse, reverse=True):
        if FinancialYear.parse(y) <= FinancialYear.parse(year) and dates_number(spec.years[y].get(section), rest.split(".")):
            return f"years.{y}.{path}"
    return path


@dataclass(frozen=True, kw_only=True)
class Scenarios:
    """The scenario axis every stage takes: `size` scenarios, each giving its own values to some of the version's
    numbers, named by their paths as `--set` names them (`need.indicators.deprivation.elasticity`,
    `streams.nhs_core.real_growth`, `years.2025/26.transition.max_gain`). A run is one scenario that sets nothing,
    so every stage reads the version's own numbers: a run and a sweep are the same code."""

    size: int = 1
    values: dict[str, np.ndarray] = field(default_factory=dict)
    # keep what a run reports beyond the money (each year's uprated baselines, when no rule needs them): a sweep
    # of thousands of scenarios asks only for the grants
    detail: bool = True
    # a design's candidates: a scenario whose floors or ceilings cannot meet a year's total is marked (in each
    # settlement's `infeasible`) and settled without them, instead of stopping every scenario with it
    mark_infeasible: bool = False
    # the data axis: each scenario a draw of the inputs (engine.draws.DataDraws), or None: every scenario reads the
    # dataset as it is
    draws: DataDraws | None = None
    # what one settlement derives from these scenarios and may reuse (streams sharing the version's need share
    # its scenario shares): filled by the stages, never compared; each settlement takes a copy with its own
    # (outcome.settle), so the cache lives exactly as long as the settlement that fills it
    derived: dict[tuple[Any, ...], Any] = field(default_factory=dict, compare=False, repr=False)

    def path(self, spec: FormulaSpec, stream: Stream | None, path: str, year: str | None = None) -> str:
        """Where `path` (as the version names it) is read from for `stream` in `year`."""
        return dated_path(spec, stream_path(stream, path), year)

    def sets(self, spec: FormulaSpec, stream: Stream | None, path: str, year: str | None = None) -> bool:
        return self.path(spec, stream, path, year) in self.values

    def get(self, spec: FormulaSpec, stream: Stream | None, path: str, default: float, year: str | None = None) -> np.ndarray:
        """(size,) values of `path` for `stream` in `year`: the scenarios' own, or the version's `default`."""
        own = self.values.get(self.path(spec, stream, path, year))
        return np.full(self.size, default, dtype=np.float64) if own is None else own


ONE = Scenarios()
