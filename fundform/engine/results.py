"""What a run returns: its output tables (RunResult) and, for a run with --uncertainty, its draws' result
(UncertaintyResult, every draw's figures in DrawArrays). Containers only: the stages compute them (engine.outcome,
studies.pipeline, studies.uncertainty)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

if TYPE_CHECKING:  # a run without draws does not import them
    from fundform.engine.draws import DataDraws


@dataclass(kw_only=True)
class DrawArrays:
    """Every draw's figures, (S, years, areas): pence for money."""

    target_share: np.ndarray
    allocation: np.ndarray
    grant: np.ndarray
    grant_per_head: np.ndarray
    floor: np.ndarray  # bool: held at a floor in any stream
    ceiling: np.ndarray


@dataclass(kw_only=True)
class UncertaintyResult:
    """A run's draws (a run with --uncertainty, studies.uncertainty): its bands, what each source contributes, the
    draws themselves and, up to studies.uncertainty.SPILL_ABOVE draws, every draw's figures."""

    bands: pl.DataFrame  # one row per area and year (uncertainty.parquet)
    sensitivity: pl.DataFrame  # one row per area, year and source
    draws: DataDraws
    arrays: DrawArrays | None = field(repr=False)  # every draw's figures, kept up to SPILL_ABOVE draws (else None)
    sources: list[dict[str, Any]] = field(default_factory=list)
    draws_file: Path | None = None  # write_draws: every draw's figures, a temporary Parquet file (the caller's)


@dataclass(kw_only=True)
class RunResult:
    """A computed run: its output tables (money columns in int64 pence), one per entry of
    `fundform.outputs.registry.OUTPUTS` and read by name (`result.allocations`), the control totals, the policies
    the manifest records, and once written its manifest and folder."""

    tables: dict[str, pl.DataFrame]
    control_totals: pl.DataFrame
    policies: dict[str, Any] = field(default_factory=dict)
    manifest: dict[str, Any] = field(default_factory=dict)
    out_dir: Path | None = None
    uncertainty: UncertaintyResult | None = None  # a run with --uncertainty: its draws' result (studies.uncertainty)

    def __getattr__(self, name: str) -> pl.DataFrame:
        tables = self.__dict__.get("tables", {})
        if name in tables:
            return tables[name]
        raise AttributeError(f"a run has no table '{name}' (its tables: {', '.join(tables)})")
