"""A design file: its free numbers, constraints in policy terms and objectives, validated before anything runs.

The search itself is in designer.py, which re-exports these names.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

MEASURES = ("allocation", "grant")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Constraint(_Model):
    """One requirement on every candidate, in policy terms.

    - `max_fall`: no area's money falls by more than `limit` (a share, 0.02 = 2%) a year, in `terms` cash or real
      (after the version's inflation index), measured on `measure`: the allocation (what the transition pays, as
      floors see it; year 1 against the year before's) or the grant (after local tax; from the second year);
    - `within_target`: every area (or all but `at_most` areas) within `limit` of its target in `year`;
    - `floor_cost`: what floors and guarantees cost in each of `years` at most `limit_gbp`;
    - `areas_at_floor`: at most `at_most` areas held at a floor in each of `years`;
    - `total`: each year's allocations (with guarantee payments) within `limit_gbp` of the control total;
    - `turbulence`: at most `limit` (a share) of each of `years`' money moves between areas: half the sum over areas
      of the change in each area's share of the total (the money that changes hands against every area growing with
      the total), on `measure`.

    A measure of the grant counts from the second year: the grant has no year before the settlement (the name
    says so)."""

    kind: Literal["max_fall", "within_target", "floor_cost", "areas_at_floor", "total", "turbulence"]
    limit: float | None = Field(None, ge=0, le=10)
    limit_gbp: float | None = Field(None, ge=0)
    at_most: int = Field(0, ge=0)
    terms: Literal["cash", "real"] = "cash"
    measure: Literal["allocation", "grant"] = "allocation"
    year: str | None = None
    years: list[str] | Literal["all"] = "all"
    # with the design's [uncertainty]: the share of the draws of the inputs in which it must hold (default: the
    # uncertainty section's probability)
    probability: float | None = Field(None, gt=0, le=1)

    @model_validator(mode="after")
    def _needs(self) -> Constraint:
        if self.kind in ("max_fall", "within_target", "turbulence") and self.limit is None:
            raise ValueError(f"a {self.kind} constraint needs `limit` (a share: 0.05 = 5%)")
        if self.kind == "floor_cost" and self.limit_gbp is None:
            raise ValueError("a floor_cost constraint needs `limit_gbp` (pounds a year)")
        if self.kind == "within_target" and self.year is None:
            raise ValueError("a within_target constraint needs `year` (the year by which areas are within it)")
        return self

    @property
    def name(self) -> str:
        years = "" if self.years == "all" else f" in {', '.join(self.years)}"
        grant = " (from the second year: the grant has no year before the settlement)" if self.measure == "grant" else ""
        if self.kind == "max_fall":
            return (f"no area's {self.measure} falls by more than {self.limit:.2%} a year in {self.terms} terms{years}"
                    f"{grant}")
        if self.kind == "turbulence":
            return (f"at most {self.limit:.2%} of each year's {self.measure} moves between areas (against every area "
                    f"growing with the total){years}{grant}")
        if self.kind == "within_target":
            return (f"{'every area' if not self.at_most else f'all but {self.at_most} areas'} within "
                    f"{self.limit:.2%} of target in {self.year}")
        if self.kind == "floor_cost":
            return f"floors and guarantees cost at most GBP {self.limit_gbp:,.0f} a year{years}"
        if self.kind == "areas_at_floor":
            return f"at most {self.at_most} areas held at a floor{years}"
        return f"allocations within GBP {self.limit_gbp or 0:,.2f} of the control total{years}"

    @property
    def scale(self) -> float:
        """The unit a violation is measured in, so different constraints' shortfalls compare."""
        if self.kind in ("max_fall", "within_target", "turbulence"):
            return max(self.limit or 0.0, 0.01)
        if self.kind in ("floor_cost", "total"):
            return max(self.limit_gbp or 0.0, 1e6)
        return max(float(self.at_most), 1.0)


class Objective(_Model):
    """What to make best: `maximise` or `minimise` a free number (`parameter`), or minimise `max_distance` (the
    largest distance from target in `year`), `largest_real_loss` (the largest real-terms fall of an area's
    allocation in any year), `floor_cost` (what floors and guarantees cost over the settlement, pounds) or
    `years_to_target` (the most further years any area needs after the last year), or `turbulence` (the money that
    moves between areas, summed over the years: each year half the sum of the changes in areas' shares)."""

    kind: Literal["maximise", "minimise", "max_distance", "largest_real_loss", "floor_cost", "years_to_target",
                  "turbulence"]
    parameter: str | None = None
    year: str | None = None

    @model_validator(mode="after")
    def _needs(self) -> Objective:
        if self.kind in ("maximise", "minimise") and not self.parameter:
            raise ValueError(f"a {self.kind} objective needs `parameter` (one of the free numbers)")
        if self.kind == "max_distance" and not self.year:
            raise ValueError("a max_distance objective needs `year`")
        return self

    @property
    def name(self) -> str:
        return {"maximise": f"largest {self.parameter}", "minimise": f"smallest {self.parameter}",
                "max_distance": f"smallest largest distance from target in {self.year}",
                "largest_real_loss": "smallest largest real-terms loss", "floor_cost": "least cost of floors",
                "years_to_target": "soonest at target",
                "turbulence": "least money moved between areas over the settlement (allocation)"}[self.kind]


class Robust(_Model):
    """A robust design: constraints that hold with a stated probability across the draws of the inputs. `file`: an
    uncertainty file (docs/uncertainty.md), relative to the design file; `probability`: the share of draws in which
    each constraint must hold, unless the constraint states its own."""

    file: str
    probability: float = Field(0.95, gt=0, le=1)


class DesignSpec(_Model):
    """A design file (TOML): the version, its free numbers, the constraints and the objectives, and optionally
    [uncertainty]: constraints that hold with a stated probability across the draws of the inputs."""

    title: str = "a design"
    version: str
    level: str | None = None
    start_year: str | None = None
    years: int | None = None
    free: dict[str, tuple[float, float]]
    constraints: list[Constraint] = Field(min_length=1)
    objectives: list[Objective] = Field(min_length=1, max_length=2)
    draws: int = Field(4096, ge=16, le=1_048_576)
    refine: int = Field(1024, ge=0, le=1_048_576)
    # the polish stops when its step is below this share of each free number's range (0: no polish)
    tolerance: float = Field(0.0001, ge=0, le=0.1)
    seed: int = 20261204
    uncertainty: Robust | None = None
    folder: str | None = Field(None, exclude=True)  # where the design file is: its uncertainty file is beside it

    def probability(self, c: Constraint) -> float:
        return c.probability if c.probability is not None else (self.uncertainty.probability if self.uncertainty
                                                                else 1.0)

    @model_validator(mode="after")
    def _check(self) -> DesignSpec:
        if not 1 <= len(self.free) <= 8:
            raise ValueError("give 1 to 8 free numbers")
        for path, (lo, hi) in self.free.items():
            if not (math.isfinite(lo) and math.isfinite(hi)) or lo >= hi:
                raise ValueError(f"free.{path}: the range must be two finite numbers, low below high (got {lo}, {hi})")
        for o in self.objectives:
            if o.parameter is not None and o.parameter not in self.free:
                raise ValueError(f"objective {o.kind} names {o.parameter}, which is not a free number "
                                 f"({', '.join(self.free)})")
        return self


def load_design(path: Path) -> DesignSpec:
    """A design file, validated before anything runs (errors name the file and the key)."""
    from fundform.base.toml import problems_of, read_toml

    raw = read_toml(Path(path), "TOML design file")
    try:
        return DesignSpec.model_validate({**raw, "folder": str(Path(path).resolve().parent)})
    except ValidationError as err:
        raise problems_of(path, "design", err) from None
