"""`fundform serve`: a live explorer of a formula version, on the scenario-axis engine.

The page offers a version, a level and one slider per number of the version that the sweep can vary (indicator
elasticities and multiplier bounds, age-band weights, pace of change, floor and ceiling, real growth,
equalisation). Releasing a slider asks the server for the scenario: the sweep's code path with one scenario (S = 1),
so the figures are the engine's own and equal `fundform run --set ...` to the penny (tests/test_explorer.py checks
it). Everything derived from the data alone (need frames, band populations, local resources) is computed once per
dataset, so a scenario takes tens of milliseconds, not a whole run. One area's waterfall needs the run's need steps
and is computed by the run itself (cached), in a second request after the figures.

What the server will not do: read a file a request names (versions are the shipped ids, levels the dataset's),
write anything (a scenario is returned as text), run anything a user types, or say where its files are (paths are
removed from error messages). Bad requests get a 4xx JSON body naming the parameter and its bounds.

It is over 600 lines: one warm engine answers every endpoint of the page (setup, scenario, bands, waterfall, design,
save, download), each a method of it over the same loaded dataset and cached versions.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from fundform.base.errors import FundformError, UsageProblem, present

if TYPE_CHECKING:
    from fundform.engine.outcome import Outcome
    from fundform.engine.params import RunParameters
    from fundform.formula.scenario import ResolvedFormula
    from fundform.formula.spec import FormulaSpec

# What a slider offers for each kind of number (the spec's own bounds still apply on top, as for --set): wide
# enough for the arguments people have about a formula, narrow enough that a slider is usable.
RANGES: list[tuple[re.Pattern, float, float, float, str]] = [
    (re.compile(r"indicators\.[^.]+\.elasticity$"), 0.0, 1.0, 0.01, "need indicator weight"),
    (re.compile(r"indicators\.[^.]+\.min_multiplier$"), 0.1, 1.0, 0.01, "lowest need multiplier"),
    (re.compile(r"indicators\.[^.]+\.max_multiplier$"), 1.0, 3.0, 0.01, "highest need multiplier"),
    (re.compile(r"age_cost_curve\.bands\.[^.]+\.weight$"), 0.1, 60.0, 0.1, "age-band weight"),  # see sliders
    (re.compile(r"transition\.(gap_closed_per_year|gain_gap_closed|reduction_gap_closed)$"), 0.0, 1.0, 0.01,
     "pace of change"),
    (re.compile(r"transition\.(max_gain|max_reduction)$"), 0.0, 0.05, 0.0005, "convergence cap"),
    (re.compile(r"transition\.phasing_years$"), 1.0, 10.0, 1.0, "years to target"),
    (re.compile(r"transition\.floor$"), -0.10, 0.05, 0.0025, "floor on the yearly change"),
    (re.compile(r"transition\.ceiling$"), 0.0, 0.20, 0.0025, "ceiling on the yearly change"),
    (re.compile(r"real_growth$"), -0.05, 0.10, 0.0025, "real growth a year"),
    (re.compile(r"local_tax\.(equalisation|share_for_devolved_services)$"), 0.0, 1.0, 0.01, "local tax"),
]


class RequestProblem(UsageProblem):
    """A bad request: 400 (or the given status) with a JSON body naming what was wrong."""

    def __init__(self, message: str, parameter: str | None = None, bounds: dict | None = None, status: int = 400):
        super().__init__(message)
        self.body = {"error": message, **({"parameter": parameter} if parameter else {}),
                     **({"bounds": bounds} if bounds else {})}
        self.status = status


@dataclass(frozen=True)
class Slider:
    path: str
    label: str
    value: float
    lo: float
    hi: float
    step: float
    unit: str
    source: str

    def as_dict(self) -> dict:
        return {"path": self.path, "label": self.label, "value": self.value, "min": self.lo, "max": self.hi,
                "step": self.step, "unit": self.unit, "source": self.source}


def _candidates(spec: FormulaSpec) -> list[str]:
    """Every number of the version a scenario can vary, as --set paths (the sweep's own list)."""
    from fundform.studies.sweeps import sweepable_paths

    return sweepable_paths(spec)


def sliders(spec: FormulaSpec) -> list[Slider]:
    """The version's own numbers as sliders: value, the range offered, unit and source."""
    from fundform.formula.scenario import flatten
    from fundform.studies.sweeps import check_names, sweepable

    flat = flatten(spec.model_dump(mode="json", by_alias=True))
    out = []
    for path in _candidates(spec):
        if not sweepable(path):
            continue
        try:
            check_names(spec, [path])
        except FundformError:
            continue
        base = path
        value = flat.get(f"{base}.value", flat.get(base))
        if not isinstance(value, int | float) or isinstance(value, bool):
            continue
        if ".age_cost_curve.bands." in path:
            curve = path.split(".bands.")[0]
            unit, source = flat.get(f"{curve}.unit", ""), flat.get(f"{curve}.source", "")
        else:
            unit, source = flat.get(f"{base}.unit", ""), flat.get(f"{base}.source", "")
        lo, hi, step, label = next(((lo, hi, step, label) for rx, lo, hi, step, label in RANGES if rx.search(path)),
                                   (min(0.0, value), max(1.0, value * 2), 0.01, "number"))
        value = float(value)
        if label == "age-band weight" and value > 0:  # a third to three times the band's own weight, not 0.1 to 60,
            step = _nice(value / 25)  # in about 25 round steps on a grid through the band's own weight
            lo = round(value - math.floor(value * 2 / 3 / step + 1e-9) * step, 10)
            hi = round(value + math.floor(value * 2 / step + 1e-9) * step, 10)
        lo, hi = min(lo, value), max(hi, value)  # the others: the practical range's round ends
        out.append(Slider(path, label, value, lo, hi, step, str(unit), str(source)))
    return out


def _nice(x: float) -> float:
    """The round step (1, 2, 2.5 or 5 x 10^k) nearest x."""
    mag = 10.0 ** math.floor(math.log10(x))
    return min((m * mag for m in (1, 2, 2.5, 5, 10)), key=lambda st: abs(math.log(st / x)))


def _slider(known: dict, path: str, fid: str) -> Slider:
    """The slider of a path a request names, or a 400 naming it and the paths there are."""
    if path not in known:
        raise RequestProblem(f"'{path}' is not a number of {fid} that the explorer can vary", path,
                             {"one of": sorted(known)})
    return known[path]


def clean_message(message: str, data_dir: Path) -> str:
    """An error message as the browser may see it: without the server's paths."""
    for p in {str(data_dir), str(data_dir.resolve())}:
        message = message.replace(p, "<data>")
    return re.sub(r"(/[^\s/:'\"]+){2,}", "<path>", message)


class Explorer:
    """The server's state: one dataset loaded once, the shipped versions, a small cache of full runs."""

    def __init__(self, data_dir: Path, formula: str = "fundform-needs", level: str = "ltla"):
        from fundform.formula.registry import available_formulas
        from fundform.studies.runs import checked_dataset

        self.data_dir = Path(data_dir)
        self.data = checked_dataset(self.data_dir)
        self.versions = sorted(available_formulas())
        if formula not in self.versions:
            raise FundformError(f"unknown formula version '{formula}' (shipped: {', '.join(self.versions)})")
        self.default_formula, self.default_level = formula, level
        self._formulas: dict[str, ResolvedFormula] = {}
        self._runs: OrderedDict = OrderedDict()  # whole runs (waterfalls), the last 8
        self._shipped: dict = {}  # each version's own outcome at a level
        self._frames: dict = {}  # each version's maps at a level, drawn once (the page repaints them)
        self._draws: dict = {}  # (version, years) -> its draws of the inputs (the bands), made once
        # one scenario at a time, and one full run (a waterfall) at a time beside it: a slow waterfall never holds
        # up the next slider's figures
        self._lock = threading.Lock()
        self._run_lock = threading.Lock()

    # -- requests --------------------------------------------------------------------------------------------
    def formula(self, fid: str) -> ResolvedFormula:
        from fundform.formula.scenario import resolve_formula

        if fid not in self.versions:
            raise RequestProblem(f"unknown formula version '{fid}'", "formula", {"one of": self.versions})
        if fid not in self._formulas:
            self._formulas[fid] = resolve_formula(fid)
        return self._formulas[fid]

    def params(self, fid: str, level: str | None) -> RunParameters:
        from fundform.formula.spec import run_defaults
        from fundform.inputs.tables import LEVELS
        from fundform.studies.pipeline import RunParameters

        spec = self.formula(fid).spec
        lvl, start, years = run_defaults(spec)
        level = level or lvl
        if level not in LEVELS:
            raise RequestProblem(f"unknown level '{level}'", "level", {"one of": list(LEVELS)})
        if spec.baseline.source == "nhs_icb_allocations" and level not in ("icb", "nhs-region"):
            raise RequestProblem(f"{fid} starts from NHS England's published ICB baselines: choose level icb or "
                                 "nhs-region", "level", {"one of": ["icb", "nhs-region"]})
        return RunParameters(level=level, start_year=start, years=years)

    def setup(self, fid: str, level: str | None) -> dict:
        params = self.params(fid, level)
        spec = self.formula(fid).spec
        practice = spec.need.method != "age_cost_curve"
        return {"formula": fid, "title": spec.title, "level": params.level, "start_year": params.start_year,
                "years": params.years, "versions": self.versions,
                "population": "registered patients" if practice else "residents",
                "per": "per registered patient" if practice else "per resident",
                "levels": (["icb", "nhs-region"] if spec.baseline.source == "nhs_icb_allocations"
                           else ["ltla", "utla", "region", "icb", "nhs-region", "ca"]),
                "sliders": [s.as_dict() for s in sliders(spec)],
                "maps": self.frames(fid, params.level)}

    def _values(self, fid: str, raw: Any) -> tuple[dict[str, float], list[Slider]]:
        """The request's numbers, each a known slider's and a finite number; the version's declared bounds (the ones
        `--set` and `sweep` apply) are checked on the resolved version, one source for all three. A slider's range is
        only the range it offers; a typed value may go beyond it, within the declared bounds."""
        spec = self.formula(fid).spec
        known = {s.path: s for s in sliders(spec)}
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise RequestProblem("'values' must be an object of parameter: number", "values")
        out = {}
        for path, v in raw.items():
            s = _slider(known, path, fid)
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise RequestProblem(f"{path} must be a finite number, got {json.dumps(v)}", path,
                                     {"min": s.lo, "max": s.hi})
            out[path] = float(v)  # its bounds are the version's own, checked as --set checks them (_check_spec)
        return out, list(known.values())

    def _check_spec(self, fid: str, changed: dict[str, float]) -> ResolvedFormula:
        """The same validation as `fundform run --set`: a combination the spec refuses is refused here too."""
        from fundform.base.errors import SpecError
        from fundform.formula.scenario import resolve_formula

        try:
            return resolve_formula(fid, tuple(f"{p}={v!r}" for p, v in changed.items()))
        except SpecError as e:
            path = next((p for p in changed if p in str(e)), None)
            raise RequestProblem(clean_message(str(e), self.data_dir), path) from None

    def _changed(self, fid: str, raw_values: Any) -> tuple[dict[str, float], list[Slider], ResolvedFormula]:
        """The numbers the request changes from the version's own (checked as --set checks them), the version's
        sliders, and the resolved formula."""
        values, all_sliders = self._values(fid, raw_values)
        base = {s.path: s.value for s in all_sliders}
        changed = {p: v for p, v in values.items() if v != base[p]}
        return changed, all_sliders, self._check_spec(fid, changed)

    def scenario(self, fid: str, level: str | None, raw_values: Any) -> dict[str, Any]:
        """The scenario's figures: the sweep engine with one scenario (what `fundform run --set` gives).

        Over 80 lines: it assembles one response, every figure the page draws, from one outcome; the figures are
        listed in the order the page shows them."""
        from fundform.engine.outcome import evaluate
        from fundform.outputs.maps import available as maps_available
        from fundform.studies.sweeps import check_names, scenarios

        t0 = time.perf_counter()
        params = self.params(fid, level)
        changed, all_sliders, _ = self._changed(fid, raw_values)
        spec = self.formula(fid).spec
        names = list(changed)
        row = np.array([[changed[n] for n in names]], dtype=np.float64)
        with self._lock:
            try:
                check_names(spec, names)
                oc = evaluate(self.data, spec, params, scenarios(names, row))  # the run's own outcome
            except FundformError as e:
                raise RequestProblem(clean_message(str(e), self.data_dir), None, None, 422) from None
        years = format_years(params.start_year, params.years)
        grant, alloc = oc.grant[0], oc.allocation[0]
        target, base_t, pop = oc.targets[0], present(oc.baselines, "the uprated baselines")[0], oc.population
        codes = oc.codes
        names_ = oc.areas["area_name"].to_list()
        last = -1
        per_head = oc.grant_per_head[0]  # pence, the run's grant_per_head
        shipped = self.shipped(fid, params)  # the version as shipped: what "my change" is measured against
        g0 = shipped.grant[0]
        practice = spec.need.method != "age_cost_curve"
        who, per = ("registered patients", "per registered patient") if practice else ("residents", "per resident")
        changed_any = bool(changed)
        today = oc.todays_funding  # pence, the run's todays_funding (None where the version holds none)
        mine = (grant[last] - g0[last]) / pop[last] / 100  # pounds per head: my change against the shipped version
        uprated = (alloc[last] - base_t[last]) / pop[last] / 100  # against today's funding uprated
        change_ph = mine if changed_any else uprated
        dist = (alloc[last] - target[last]) / target[last]
        order = np.argsort(change_ph, kind="stable")
        row_of = lambda i: {"code": codes[i], "name": names_[i], "change_per_head": round(float(change_ph[i]), 2),
                            "grant": int(grant[last, i]) / 100, "distance_from_target": float(dist[i]),
                            "grant_shipped": int(g0[last, i]) / 100}
        sets = [f"{p}={v!r}" for p, v in changed.items()]
        pounds = lambda a: [[int(x) / 100 for x in y] for y in a]
        nhs = spec.words == "nhs_allocation"
        bound, bound0 = oc.bound_label(0), shipped.bound_label(0)
        moved = np.clip(grant - g0, 0, None).sum(axis=1)  # pence each year: what the move takes from some areas
        ytt, ytt0 = oc.years_to_target[0], shipped.years_to_target[0]
        longest = lambda y: None if np.isnan(y).any() else int(np.max(y)) if y.size else None
        change = grant[last] - g0[last]
        by_pounds = np.argsort(change, kind="stable")
        mover = lambda i: {"code": codes[i], "name": names_[i], "change": int(change[i]) / 100}
        move = {  # what the move did, against the version as shipped (the page's first words)
            "changed": changed_any, "year": years[last],
            "moved": [int(x) / 100 for x in moved], "moved_total": int(moved.sum()) / 100,
            "gainers": int((change > 0).sum()), "losers": int((change < 0).sum()),
            "largest_gains": [mover(i) for i in by_pounds[::-1][:3] if change[i] > 0],
            "largest_losses": [mover(i) for i in by_pounds[:3] if change[i] < 0],
            "at_floor": [int(x) for x in (bound == "floor").sum(axis=1)],
            "at_floor_shipped": [int(x) for x in (bound0 == "floor").sum(axis=1)],
            "at_ceiling": [int(x) for x in (bound == "ceiling").sum(axis=1)],
            "at_ceiling_shipped": [int(x) for x in (bound0 == "ceiling").sum(axis=1)],
            "scale_back": [float(x) for x in oc.settlements[0].transition.scale_back[0]],
            "scale_back_shipped": [float(x) for x in shipped.settlements[0].transition.scale_back[0]],
            "longest_to_target": longest(ytt), "longest_to_target_shipped": longest(ytt0),
        }
        return {
            "formula": fid, "level": params.level, "years": years, "population_label": who, "per": per,
            "words": {"kind": spec.words, "figure": "allocation" if nhs else "grant",
                      "start": "the baseline" if nhs else "today's funding"},
            "letter": self._letter(oc) if nhs else None,
            "measure": (f"{'allocation' if nhs else 'grant'}: my change against the version as shipped" if changed_any
                        else "allocation against the baseline grown by base growth" if nhs else
                        "allocation against today's funding uprated"),
            "move": move, "price_base_year": params.price_base,
            "totals": {"grant": [int(x) / 100 for x in grant.sum(axis=1)],
                       "grant_real": [int(x) / 100 for x in oc.grant_real[0].sum(axis=1)],
                       "todays_funding": None if today is None else int(today.sum()) / 100,
                       "allocation": [int(x) / 100 for x in alloc.sum(axis=1)],
                       "target": [int(x) / 100 for x in target.sum(axis=1)],
                       "population": [float(x) for x in pop.sum(axis=1)],
                       "grant_shipped": [int(x) / 100 for x in g0.sum(axis=1)]},
            "areas": {"code": codes, "name": names_, "within": self._within(params.level, codes),
                      "today_cash": [None] * len(codes) if today is None else [int(x) / 100 for x in today],
                      "grant": pounds(grant), "grant_shipped": pounds(g0),
                      "allocation": pounds(alloc), "target": pounds(target), "uprated": pounds(base_t),
                      "distance_shipped": [[float(x) for x in y] for y in
                                           (shipped.allocation[0] - shipped.targets[0]) / shipped.targets[0]],
                      "distance": [[float(x) for x in y] for y in (alloc - target) / target],
                      "grant_per_head": [[int(x) / 100 for x in y] for y in per_head],
                      "grant_real": pounds(oc.grant_real[0]), "bound": bound.tolist(), "bound_shipped": bound0.tolist(),
                      "population": [[float(x) for x in y] for y in pop],
                      "change_per_head": [round(float(x), 2) for x in change_ph],
                      "distance_from_target": [float(x) for x in dist]},
            "winners": [row_of(i) for i in order[::-1][:10]],
            "losers": [row_of(i) for i in order[:10]],
            "maps": self._repaint(self._paints(codes, names_, change_ph, dist, years, changed_any, per, nhs), codes)
            if maps_available() else {},
            "set": sets,
            "command": command(fid, params, sets),
            "took_ms": round((time.perf_counter() - t0) * 1000, 1),
        }

    def bands(self, fid: str, level: str | None, raw_values: Any) -> dict[str, Any]:
        """The scenario's grant over the draws of the inputs the explorer ships (formulas/uncertainty/draws-100.toml):
        each area's 5th and 95th percentile per year, pounds, by the same stages as the figures (studies.uncertainty),
        each draw a run on its variant dataset with the scenario's numbers."""
        from fundform.base.paths import formulas_dir
        from fundform.engine.draws import make_draws
        from fundform.inputs.uncertainty import read_uncertainty
        from fundform.studies.uncertainty import evaluate_draws, percentiles

        params = self.params(fid, level)
        changed, _, _ = self._changed(fid, raw_values)
        spec = self.formula(fid).spec
        file = formulas_dir() / "uncertainty" / "draws-100.toml"
        years = format_years(params.start_year, params.years)
        with self._lock:
            try:
                unc = read_uncertainty(file)
                draws = self._draws.get((fid, tuple(years)))
                if draws is None:
                    draws = self._draws[(fid, tuple(years))] = make_draws(self.data, unc, spec, years)
                arrays = evaluate_draws(self.data, spec, params, draws, values=changed)
            except FundformError as e:
                raise RequestProblem(clean_message(str(e), self.data_dir), None, None, 422) from None
        q = np.floor(percentiles(arrays.grant) + 0.5)
        pounds = lambda a: [[int(x) / 100 for x in y] for y in a]
        return {"formula": fid, "level": params.level, "years": years, "draws": draws.size, "file": file.name,
                "sources": [s["input"] for s in draws.sources], "grant_p5": pounds(q[0]), "grant_p95": pounds(q[2])}

    def design(self, fid: str, level: str | None, raw: Any) -> dict[str, Any]:
        """A design on two (or more) of the version's numbers, in the explorer: their ranges (within the sliders'),
        constraints (a largest real-terms fall a year; every area within a share of its target in the last year),
        and an objective; a small search (256 Sobol candidates, then differential evolution for at most 64 more),
        the choice verified by an exact run."""
        from fundform.outputs.design_report import frontier_svg, region_svg
        from fundform.studies.designer import Constraint, DesignSpec, Objective, run_design, verify

        t0 = time.perf_counter()
        params = self.params(fid, level)
        spec = self.formula(fid).spec
        known = {sl.path: sl for sl in sliders(spec)}
        if not isinstance(raw, dict):
            raise RequestProblem("'design' must be an object", "design")
        free = raw.get("free")
        if not isinstance(free, dict) or not 1 <= len(free) <= 4:
            raise RequestProblem("'free' must map one to four of the version's numbers to [low, high]", "free")
        ranges = {}
        for path, rng in free.items():
            sl = _slider(known, path, fid)
            if (not isinstance(rng, list) or len(rng) != 2 or any(isinstance(x, bool) or not isinstance(x, int | float)
                                                                 or not math.isfinite(x) for x in rng)
                    or not sl.lo <= rng[0] < rng[1] <= sl.hi):
                raise RequestProblem(f"{path}: the range must be [low, high] within {sl.lo:g} to {sl.hi:g}", path,
                                     {"min": sl.lo, "max": sl.hi})
            ranges[path] = (float(rng[0]), float(rng[1]))
        numbers = {}
        for key, lo, hi in (("max_real_fall", 0.0, 0.5), ("within_target", 0.0, 1.0)):
            v = raw.get(key)
            if v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or not lo <= v <= hi:
                raise RequestProblem(f"{key} must be a number from {lo:g} to {hi:g}", key, {"min": lo, "max": hi})
            numbers[key] = float(v)
        if not numbers:
            raise RequestProblem("give at least one constraint: max_real_fall or within_target", "max_real_fall")
        years = format_years(params.start_year, params.years)
        cons = ([Constraint(kind="max_fall", limit=numbers["max_real_fall"], terms="real")]
                if "max_real_fall" in numbers else []) + \
               ([Constraint(kind="within_target", limit=numbers["within_target"], year=years[-1])]
                if "within_target" in numbers else [])
        first = next(iter(ranges))
        objective = raw.get("objective", "max_distance")
        objs = {"max_distance": [Objective(kind="max_distance", year=years[-1]),
                                 Objective(kind="largest_real_loss")],
                "maximise_first": [Objective(kind="maximise", parameter=first),
                                   Objective(kind="max_distance", year=years[-1])]}.get(objective)
        if objs is None:
            raise RequestProblem("'objective' must be max_distance or maximise_first", "objective")
        ds = DesignSpec(title=f"{fid}: a design from the explorer", version=fid, free=ranges, constraints=cons,
                        objectives=objs, draws=256, refine=64)
        with self._lock:
            try:
                r = run_design(ds, self.data, self.formula(fid), params)
                r.verified = verify(r, self.data, params)
            except FundformError as e:
                raise RequestProblem(clean_message(str(e), self.data_dir), None, None, 422) from None
        names = list(ranges)
        pairs = r.region.select("x", "y").unique(maintain_order=True).rows()
        svgs = [frontier_svg(r.points, r.frontier, ds.objectives, r.chosen["candidate"], r.points.row(0, named=True),
                             "dfrontier")] + [region_svg(r.region, x, y, f"dregion{i}") for i, (x, y) in
                                              enumerate(pairs[:1])]
        return {"feasible": r.feasible, "binding": r.binding, "chosen": r.chosen, "verified": r.verified,
                "objectives": [o.name for o in ds.objectives], "constraints": [c.name for c in ds.constraints],
                "frontier": [{"values": {n: float(row[n]) for n in names},
                              "objectives": [row["objective_1"], row["objective_2"]]}
                             for row in r.frontier.head(30).iter_rows(named=True)],
                "candidates": r.points.height, "svg": svgs, "took_ms": round((time.perf_counter() - t0) * 1000, 1)}

    def download(self, fid: str, level: str | None, raw_values: Any, fmt: Any) -> tuple[bytes, str, str]:
        """The scenario's run, as `fundform run --set` then `fundform export` write it: an Excel workbook of every
        table with the manifest, or allocations.parquet carrying the manifest in its metadata. (bytes, media type,
        file name). Written to a temporary folder that is removed; nothing stays on the server."""
        import tempfile

        from fundform.outputs.export import workbook_of
        from fundform.studies.runs import run as run_pipeline

        if fmt not in ("xlsx", "parquet"):
            raise RequestProblem("'format' must be xlsx or parquet", "format", {"one of": ["xlsx", "parquet"]})
        params = self.params(fid, level)
        changed = self._changed(fid, raw_values)[0]
        sets = tuple(f"{p}={v!r}" for p, v in changed.items())
        with tempfile.TemporaryDirectory(prefix="fundform-download-") as tmp, self._run_lock:
            try:
                r = run_pipeline(fid, self.data_dir, params, Path(tmp) / "run", Path(tmp), sets=sets)
            except FundformError as e:
                raise RequestProblem(clean_message(str(e), self.data_dir), None, None, 422) from None
            name = f"{fid}-{r.manifest['run_id']}"
            if fmt == "parquet":
                return ((Path(tmp) / "run" / "allocations.parquet").read_bytes(), "application/vnd.apache.parquet",
                        f"{name}-allocations.parquet")
            return (workbook_of(Path(tmp) / "run"), "application/vnd.openxmlformats-officedocument."
                    "spreadsheetml.sheet", f"{name}.xlsx")

    def shipped(self, fid: str, params: RunParameters) -> Outcome:
        """The version's own outcome at this level (a run of it), computed once."""
        from fundform.engine.outcome import evaluate

        key = (fid, params.level)
        if key not in self._shipped:
            self._shipped[key] = evaluate(self.data, self.formula(fid).spec, params)
        return self._shipped[key]

    def waterfall(self, fid: str, level: str | None, raw_values: Any, area: str) -> dict[str, Any]:
        """One area's waterfall, first and last year: the run's own (computed once per scenario, then cached)."""
        from fundform.studies.pipeline import compute

        params = self.params(fid, level)
        changed, _, formula = self._changed(fid, raw_values)
        key = (fid, params.level, tuple(sorted(changed.items())))
        with self._run_lock:
            if key not in self._runs:
                try:
                    self._runs[key] = compute(self.data, formula, params)
                except FundformError as e:
                    raise RequestProblem(clean_message(str(e), self.data_dir), None, None, 422) from None
                while len(self._runs) > 8:
                    self._runs.popitem(last=False)
            run = self._runs[key]
        w = run.waterfall.filter(pl.col("area_code") == area)
        if w.height == 0:
            raise RequestProblem(f"no area '{area}' at level {params.level}", "area", None, 404)
        out = []
        for (fy,), part in w.group_by("financial_year", maintain_order=True):
            part = part.sort("step_order")
            out.append({"year": fy, "steps": [{"step": s, "amount": int(a) / 100} for s, a in
                                              zip(part["step"], part["amount"])],
                        "grant": int(part["cumulative"][-1]) / 100})
        return {"area": area, "name": w["area_name"][0], "years": [out[0], out[-1]] if len(out) > 1 else out}

    def scenario_file(self, fid: str, level: str | None, raw_values: Any) -> dict[str, Any]:
        """The scenario as a TOML file extending the version, and the equivalent command."""
        from fundform.formula.scenario import toml_key

        params = self.params(fid, level)
        changed = self._changed(fid, raw_values)[0]
        lines = [f'extends = "{fid}"', 'title = "A scenario saved from fundform serve"', "",
                 f"# fundform run --formula this-file.toml --level {params.level}", ""]
        lines += [f"{toml_key(p)} = {v!r}" for p, v in changed.items()]
        sets = [f"{p}={v!r}" for p, v in changed.items()]
        return {"toml": "\n".join(lines) + "\n", "command": command(fid, params, sets), "set": sets}

    @staticmethod
    def _letter(oc: Outcome) -> dict[str, Any]:
        """An NHS allocation's letter lines for the scenario (outputs.letter, as letter.parquet): per line, year and
        area the baseline, base growth, convergence and allocation, NHS England's published beside them."""
        from fundform.outputs.registry import build_tables

        d = build_tables(oc)["letter"].sort("financial_year", "area_code")
        money = ("baseline", "allocation", "published_allocation", "difference")
        return {"rows": [{**{k: r[k] for k in ("area_code", "financial_year", "line", "base_growth", "convergence",
                                               "distance_from_target")},
                          **{k: None if r[k] is None else int(r[k]) / 100 for k in money}}
                         for r in d.iter_rows(named=True)]}

    def _within(self, level: str, codes: list[str]) -> list[str]:
        """For each area of the run's level, the names of the bodies its councils belong to at every other level
        (their region, ICB, NHS region, combined authority, upper tier): the table's filter finds an area by any of
        them ("West Yorkshire" finds its councils)."""
        def compute() -> list[str]:
            lk = self.data["area_lookup"].filter(pl.col("share") > 0)
            members = (lk.filter(pl.col("level") == level).select("area_code", area="target_code")
                       if level != "ltla" else lk.select("area_code").unique().with_columns(area=pl.col("area_code")))
            named = (members.join(lk.filter(pl.col("level") != level).select("area_code", "target_name"),
                                  on="area_code").group_by("area").agg(pl.col("target_name").unique().sort()))
            got = dict(zip(named["area"].to_list(), named["target_name"].to_list()))
            return [" · ".join(got.get(c, [])) for c in codes]
        return self.data.memo(("within", level, tuple(codes)), compute)

    def _member(self, level: str, codes: list[str]) -> dict[str, str]:
        from fundform.outputs import maps

        return self.data.memo(("membership", level, tuple(codes)), lambda: maps.membership(
            self.data["area_lookup"], level, self.data.tables.get("icb_changes"), codes))

    def _paints(self, codes: list[str], names: list[str], change_ph: np.ndarray, dist: np.ndarray, years: list[str],
                mine: bool = False, per: str = "per resident", nhs: bool = False) -> dict[str, Any]:
        """What the explorer's three maps say (maps.paint): the change per head (mine against the version as shipped
        once a number has moved, else the allocation against today's funding uprated) and the distance from target,
        last year."""
        from fundform.outputs import maps
        from fundform.outputs.text import gbp

        nm = dict(zip(codes, names))
        ch = {c: float(v) for c, v in zip(codes, change_ph)}
        d = {c: float(v) * 100 for c, v in zip(codes, dist)}
        money = lambda v: gbp(v, 0)
        pct = lambda v: f"{v:+.1f}%"
        what = (f"{'Allocation' if nhs else 'Grant'}: my change against the version as shipped" if mine else
                "Allocation against the baseline grown by base growth" if nhs else
                "Allocation against today's funding uprated")
        change = maps.paint(ch, nm, f"{what}, {years[-1]}", f"£ {per}", money, True)
        return {"change": change,
                "distance": maps.paint(d, nm, f"Allocation's distance from target, {years[-1]} (after transition)",
                                       "% of target", pct, True),
                "hex": {**change, "title": change["title"] + " (hex)"}}

    @staticmethod
    def _repaint(paints: dict, codes: list[str]) -> dict:
        """A scenario's maps as the page repaints them: colours and tooltips in the order of the areas' codes."""
        return {k: {"title": p["title"], "low": p["low"], "high": p["high"], "unit": p["unit"],
                    "fill": [p["fill"][c] for c in codes], "tip": [p["tip"][c] for c in codes]}
                for k, p in paints.items()}

    def frames(self, fid: str, level: str | None) -> dict:
        """The three maps drawn once per version and level (the version as shipped), for the page to repaint."""
        from fundform.outputs import maps

        if not maps.available():
            return {}
        params = self.params(fid, level)
        if (fid, params.level) in self._frames:
            return self._frames[fid, params.level]
        r = self.scenario(fid, level, {})
        member = self._member(params.level, r["areas"]["code"])
        paints = self._paints(r["areas"]["code"], r["areas"]["name"], r["areas"]["change_per_head"],
                              r["areas"]["distance_from_target"], r["years"], False, r["per"])
        self._frames[fid, params.level] = {
            "change": maps.geographic(paints["change"], member, "x1"),
            "hex": maps.hexmap(paints["hex"], member, params.level, "x3"),
            "distance": maps.geographic(paints["distance"], member, "x2")}
        return self._frames[fid, params.level]


def format_years(start: str, n: int) -> list[str]:
    from fundform.base.years import years_from

    return years_from(start, n)


def command(fid: str, params: RunParameters, sets: list[str]) -> str:
    parts = ["fundform", "run", "--formula", fid, "--level", params.level, "--start-year", params.start_year,
             "--years", str(params.years)] + [x for s in sets for x in ("--set", s)]
    return " ".join(parts)
