"""Policy design: which of a version's numbers meet stated constraints, solved on the scenario axis.

A design names a version, free numbers with ranges (any sweepable path), constraints in policy terms and one or two
objectives. The search evaluates candidates as scenarios of the one outcome (`fundform.engine.outcome`), a chunk of
1,000 at a time, never one run per point:

1. space-filling draws: a scrambled Sobol sequence over the free numbers' box (`scipy.stats.qmc`), seeded, with the
   version's own numbers as a candidate: they say whether the constraints can be met at all, and draw the feasible
   region and the frontier;
2. refinement: `scipy.optimize.differential_evolution`, seeded, started from the best Sobol candidates, its
   population evaluated on the scenario axis (`_refine`; chosen by measurement: docs/design.md);
3. polish: a compass search from the best candidate at four scales at once, stopping when its finest scale is below
   the stated `tolerance` of each free number's range (default 0.01%; `_polish`), so the answer is located to that
   tolerance, not to a count;
4. the choice: the feasible candidate best on the first objective (the second breaks ties); if none is feasible,
   the candidate whose largest violation (each constraint's shortfall over its own scale) is least, with the
   constraint that binds there and by how much.

The chosen design is then run exactly, as `fundform run --set` would (the version with its numbers set, one
scenario), its constraints re-checked on that run, and its grants compared with the candidate's to the penny.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from fundform.base.errors import FundformError, present
from fundform.engine.params import RunParameters
from fundform.formula.scenario import LoadedFormula
from fundform.formula.spec import FormulaSpec
from fundform.inputs.dataset import Dataset
from fundform.studies.design_measures import constraint_values, limit_of, objective_value_shown, objective_values
from fundform.studies.design_spec import (  # noqa: F401  (the design file's names, re-exported)
    MEASURES,
    Constraint,
    DesignSpec,
    Objective,
    Robust,
    load_design,
)

if TYPE_CHECKING:
    from fundform.engine.draws import DataDraws
    from fundform.studies.executors import Executor

CHUNK = 1_000
Measures = dict[str, np.ndarray]  # per candidate: each constraint's value (c0, c1...), objective's (o0...), "infeasible"


@dataclass(kw_only=True)
class DesignResult:
    spec: DesignSpec
    version: str
    names: list[str]
    points: pl.DataFrame  # every candidate: its free numbers, constraint values, objectives, feasibility, stage
    feasible: bool
    chosen: dict[str, Any]  # the chosen candidate: its numbers, constraint values and objectives
    binding: dict[str, Any] | None  # where nothing is feasible: the constraint that binds at the best candidate
    relaxed: list[dict[str, Any]]  # for each constraint: what the first objective reaches with it dropped
    frontier: pl.DataFrame  # the Pareto frontier of two objectives among feasible candidates
    region: pl.DataFrame  # the feasible share of candidates in each cell of each pair of free numbers
    shipped: dict[str, Any]  # the version's own numbers, as a candidate
    verified: dict[str, Any] = field(default_factory=dict)  # the exact run of the chosen design
    search: dict[str, Any] = field(default_factory=dict)  # the polish's tolerance and what it reached (its final step)
    manifest: dict[str, Any] = field(default_factory=dict)
    out_dir: Path | None = None

    def sets(self) -> list[str]:
        return [f"{n}={self.chosen['free'][n]!r}" for n in self.names]

    def scenario_toml(self) -> str:
        from fundform.formula.scenario import toml_key

        lines = [f'extends = "{self.version}"', f"title = {json.dumps('Design: ' + self.spec.title)}", "",
                 "# found by fundform design (its numbers below); run it with", "#   fundform run --formula THIS-FILE",
                 ""]
        lines += [f"{toml_key(n)} = {self.chosen['free'][n]!r}" for n in self.names]
        return "\n".join(lines) + "\n"


def _shipped_values(spec: FormulaSpec, names: list[str]) -> np.ndarray:
    """The version's own value of each free number (its scenario that sets nothing)."""
    from fundform.formula.scenario import flatten

    flat = flatten(spec.model_dump(mode="json", by_alias=True))
    out = []
    for n in names:
        v = flat.get(f"{n}.value", flat.get(n))
        if not isinstance(v, int | float) or isinstance(v, bool):
            raise FundformError(f"free.{n}: {spec.id} states no number at this path to vary")
        out.append(float(v))
    return np.array(out)


def _sobol(lo: np.ndarray, hi: np.ndarray, n: int, seed: int) -> np.ndarray:
    from scipy.stats import qmc

    m = max(0, math.ceil(math.log2(max(n, 1))))
    return qmc.scale(qmc.Sobol(len(lo), scramble=True, seed=seed).random_base2(m), lo, hi) if n else \
        np.empty((0, len(lo)))


def _measure(data: Dataset, spec: FormulaSpec, params: RunParameters, names: list[str], values: np.ndarray,
             *, constraints: list[Constraint], objectives: list[Objective], draws: DataDraws | None = None,
             probabilities: list[float] | None = None) -> Measures:
    """One chunk of candidates: their outcome, then each constraint's and objective's value and the marks. With
    `draws` (a robust design), each candidate is settled over every draw of the inputs (the data axis); a
    constraint's value is the one it stays within in its `probabilities` share of the draws (the order statistic:
    it holds in at least that share exactly when that value is within its limit), an objective's value its mean
    over the draws, and a candidate is infeasible if its bounds fail in any draw."""
    from fundform.engine.outcome import evaluate
    from fundform.engine.scenarios import Scenarios

    C = values.shape[0]
    D = 1 if draws is None else draws.size
    v = values if draws is None else np.repeat(values, D, axis=0)
    scen = Scenarios(size=C * D, values={n: v[:, i] for i, n in enumerate(names)}, detail=False, mark_infeasible=True,
                     draws=None if draws is None else draws.tiled(C))
    oc = evaluate(data, spec, params, scen)
    free = {n: v[:, i] for i, n in enumerate(names)}
    if draws is None:
        out = {f"c{j}": constraint_values(c, oc) for j, c in enumerate(constraints)}
        out.update({f"o{j}": objective_values(o, oc, free) for j, o in enumerate(objectives)})
        out["infeasible"] = oc.infeasible
        return out
    probs = present(probabilities, "each constraint's probability")
    out = {f"c{j}": np.quantile(constraint_values(c, oc).reshape(C, D), probs[j], axis=1,
                                method="inverted_cdf") for j, c in enumerate(constraints)}
    out.update({f"o{j}": objective_values(o, oc, free).reshape(C, D).mean(axis=1) for j, o in enumerate(objectives)})
    out["infeasible"] = np.asarray(oc.infeasible.reshape(C, D).any(axis=1))
    return out


def design_chunk_task(task: tuple[Any, ...]) -> Measures:
    """One chunk of a design's candidates as a task for another process or machine (fundform.studies.executors)."""
    from fundform.studies.executors import worker_data

    directory, allow_implausible, spec, params, names, values, constraints, objectives, draws, probabilities = task
    return _measure(worker_data(directory, allow_implausible), spec, params, names, values, constraints=constraints,
                    objectives=objectives, draws=draws, probabilities=probabilities)


@dataclass(frozen=True, kw_only=True)
class Search:
    """What every stage of a design's search reads, built once (run_design): the question, the run's data, version
    and parameters, the free numbers with their ranges, where candidates are settled (`workers` threads, or
    `executor`), and for a robust design the draws of the inputs with each constraint's probability."""

    ds: DesignSpec
    data: Dataset
    spec: FormulaSpec
    params: RunParameters
    names: list[str]
    lo: np.ndarray
    hi: np.ndarray
    workers: int | None = None
    executor: Executor | None = None
    draws: DataDraws | None = None
    probabilities: list[float] | None = None

    def evaluate(self, values: np.ndarray, constraints: list[Constraint]) -> Measures:
        """Constraint values, objectives and infeasibility of every candidate, chunk by chunk on the scenario axis:
        on threads of this process, or as tasks of the executor (fundform.studies.executors). With draws, a chunk
        holds CHUNK scenarios of candidates x draws."""
        data, spec, params, names, objectives = self.data, self.spec, self.params, self.names, self.ds.objectives
        draws, probabilities, executor = self.draws, self.probabilities, self.executor
        S = values.shape[0]
        step = CHUNK if draws is None else max(1, CHUNK // draws.size)
        slices = [slice(i, min(i + step, S)) for i in range(0, S, step)]
        def one(sl: slice) -> Measures:
            return _measure(data, spec, params, names, values[sl], constraints=constraints, objectives=objectives,
                            draws=draws, probabilities=probabilities)

        if executor is not None and executor.name != "local":
            parts = list(executor.map(design_chunk_task, [
                (str(data.directory), bool(data.implausible), spec, params, names, values[sl], constraints,
                 objectives, draws, probabilities) for sl in slices]))
        elif len(slices) <= 1:
            parts = [one(sl) for sl in slices]
        else:
            with ThreadPoolExecutor(max_workers=max(1, self.workers or min(os.cpu_count() or 1, len(slices)))) as pool:
                parts = list(pool.map(one, slices))
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _frontier(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Indices of the non-dominated points of two objectives, both minimised, in order of the first."""
    order = np.lexsort((b, a))
    keep, best = [], np.inf
    for i in order:
        if b[i] < best:
            keep.append(i)
            best = b[i]
    return np.array(keep, dtype=np.int64)


def _region(names: list[str], values: np.ndarray, ok: np.ndarray, lo: np.ndarray, hi: np.ndarray, *, cells: int = 12
            ) -> pl.DataFrame:
    """For each pair of free numbers, the share of candidates that meet every constraint in each cell."""
    rows = []
    pairs = [(i, j) for i in range(len(names)) for j in range(i + 1, len(names))] or [(0, 0)]
    for i, j in pairs:
        bi = np.clip(((values[:, i] - lo[i]) / (hi[i] - lo[i]) * cells).astype(int), 0, cells - 1)
        bj = np.clip(((values[:, j] - lo[j]) / (hi[j] - lo[j]) * cells).astype(int), 0, cells - 1)
        for ci in range(cells):
            for cj in range(cells if i != j else 1):
                sel = (bi == ci) & ((bj == cj) if i != j else True)
                n = int(sel.sum())
                rows.append({"x": names[i], "y": names[j], "x_low": lo[i] + (hi[i] - lo[i]) * ci / cells,
                             "x_high": lo[i] + (hi[i] - lo[i]) * (ci + 1) / cells,
                             "y_low": lo[j] + (hi[j] - lo[j]) * cj / cells,
                             "y_high": lo[j] + (hi[j] - lo[j]) * (cj + 1) / cells, "candidates": n,
                             "feasible_share": float(ok[sel].mean()) if n else None})
    return pl.DataFrame(rows)


def run_design(ds: DesignSpec, data: Dataset, formula: LoadedFormula, params: RunParameters,
               progress: Callable[[str], None] | None = None, *, workers: int | None = None,
               executor: Executor | None = None) -> DesignResult:
    """Search, choose and verify a design (the module's docstring says how).

    Over 80 lines: the search's stages share its candidates; each stage is a function it calls in the order the
    module's docstring gives."""
    from fundform.studies.sweeps import check_names

    say = progress or (lambda _m: None)
    spec = formula.spec
    names = list(ds.free)
    check_names(spec, names)
    lo = np.array([ds.free[n][0] for n in names])
    hi = np.array([ds.free[n][1] for n in names])
    shipped = _shipped_values(spec, names)
    cons, objs = ds.constraints, ds.objectives
    draws, probabilities = robust_draws(ds, data, spec, params)
    s = Search(ds=ds, data=data, spec=spec, params=params, names=names, lo=lo, hi=hi, workers=workers,
               executor=executor, draws=draws, probabilities=probabilities)
    if draws is not None:
        say(f"each candidate over {draws.size:,} draws of the inputs (constraints held in "
            f"{', '.join(f'{p:.0%}' for p in probabilities or [])} of them)")
    say(f"drawing {ds.draws:,} candidates")
    first = np.vstack([shipped[None, :], _sobol(lo, hi, ds.draws, ds.seed)])
    res = s.evaluate(first, cons)
    stage = np.array(["shipped"] + ["draw"] * (first.shape[0] - 1))
    values = first

    def scores(r: Measures) -> tuple[np.ndarray, np.ndarray]:
        viol = np.stack([(r[f"c{j}"] - limit_of(c)) / c.scale for j, c in enumerate(cons)], axis=1)
        viol = np.where(np.isnan(viol), np.inf, viol)
        worst = np.where(r["infeasible"], np.inf, viol.max(axis=1))
        return viol, worst

    viol, worst = scores(res)
    ok = worst <= 0
    best = _pick(res, ok, worst, objs)

    def joined(more_values: np.ndarray, more: Measures, label: str) -> None:  # a stage's candidates added, chosen again
        nonlocal res, values, stage, viol, worst, ok, best
        if more_values.shape[0]:
            res = {k: np.concatenate([res[k], more[k]]) for k in res}
            values = np.vstack([values, more_values])
            stage = np.concatenate([stage, np.array([label] * more_values.shape[0])])
            viol, worst = scores(res)
            ok = worst <= 0
            best = _pick(res, ok, worst, objs)

    if ds.refine:
        say(f"refining: differential evolution on the scenario axis ({ds.refine:,} more candidates at most)")
        joined(*_refine(s, values, res, ok, cons), "refine")
    search: dict[str, Any] = {"tolerance": None}
    if ds.tolerance:
        say(f"polishing: a compass search from the best candidate until its step is below {ds.tolerance:.2%} of "
            "each free number's range")
        more_values, more, search = _polish(s, values, res, ok, cons)
        joined(more_values, more, "polish")
    points = pl.DataFrame({"candidate": np.arange(values.shape[0]), "stage": stage,
                           **{n: values[:, i] for i, n in enumerate(names)},
                           **{f"constraint_{j + 1}": res[f"c{j}"] for j in range(len(cons))},
                           **{f"objective_{j + 1}": np.array([objective_value_shown(o, v) for v in res[f"o{j}"]])
                              for j, o in enumerate(objs)},
                           "bounds_met": ~res["infeasible"], "feasible": ok})
    feasible = bool(ok.any())

    def describe(i: int) -> dict[str, Any]:
        return {"candidate": int(i), "free": {n: float(values[i, k]) for k, n in enumerate(names)},
                "constraints": [{"constraint": c.name, "value": float(res[f"c{j}"][i]), "limit": limit_of(c),
                                 "holds": bool(res[f"c{j}"][i] <= limit_of(c) and not res["infeasible"][i])}
                                for j, c in enumerate(cons)],
                "objectives": [{"objective": o.name, "value": objective_value_shown(o, float(res[f"o{j}"][i]))}
                               for j, o in enumerate(objs)],
                "bounds_met": bool(not res["infeasible"][i])}

    relaxed: list[dict[str, Any]] = []
    removal_feasible: list[bool] = []
    for j, c in enumerate(cons):  # what dropping one constraint buys: the first objective, re-solved without it
        got, fixes = _without(s, values, res, viol, j)
        removal_feasible.append(fixes)
        relaxed.append({"constraint": c.name, "objective": objs[0].name,
                        "with_it": objective_value_shown(objs[0], float(res["o0"][ok].min())) if feasible else None,
                        "without_it": objective_value_shown(objs[0], got) if got is not None else None,
                        "re_solved": bool(ds.refine)})
    binding = None
    if not feasible:
        # the constraint that binds is one whose removal makes the question feasible (re-solved without it); where
        # no single removal does, the answer says so and names the constraints that cannot hold even alone
        fixing = [j for j, f in enumerate(removal_feasible) if f]
        alone = [c.name for j, c in enumerate(cons) if not ((viol[:, j] <= 0) & ~res["infeasible"]).any()]
        j = (max(fixing, key=lambda k: viol[best, k]) if fixing else int(np.argmax(viol[best])))
        c = cons[j]
        binding = {"constraint": c.name, "value": float(res[f"c{j}"][best]), "limit": limit_of(c),
                   "short_by": float(res[f"c{j}"][best] - limit_of(c)),
                   "bounds_met": bool(not res["infeasible"][best]),
                   "removal_makes_feasible": [cons[k].name for k in fixing],
                   "infeasible_alone": alone}
    if len(objs) == 2 and feasible:
        idx = np.flatnonzero(ok)
        f = idx[_frontier(res["o0"][idx], res["o1"][idx])]
    else:
        f = np.array([best], dtype=np.int64)
    frontier = points[f.tolist()]
    region = _region(names, values, ok, lo, hi)
    return DesignResult(spec=ds, version=spec.id, names=names, points=points, feasible=feasible,
                        chosen=describe(best), binding=binding, relaxed=relaxed, frontier=frontier, region=region,
                        shipped=describe(0), search=search)


def _without(s: Search, values: np.ndarray, res: Measures, viol: np.ndarray, j: int) -> tuple[float | None, bool]:
    """(the best first objective with constraint j dropped, whether dropping it makes the question feasible): the
    candidates searched so far that meet the other constraints, then, when the design refines, a refinement of its
    own with the other constraints alone, so the figure is the optimum without j, not the best of a search aimed
    at the question with it."""
    ds, cons = s.ds, s.ds.constraints
    rest = [c for k, c in enumerate(cons) if k != j]
    others = np.delete(viol, j, axis=1)
    ok_j = (others.max(axis=1) <= 0 if others.shape[1] else np.ones(viol.shape[0], bool)) & ~res["infeasible"]
    got = [float(res["o0"][ok_j].min())] if ok_j.any() else []
    if ds.refine:
        sub = {k: v for k, v in res.items() if not (k.startswith("c") and k[1:].isdigit())}
        sub.update({f"c{i}": res[f"c{k}"] for i, k in enumerate(k for k in range(len(cons)) if k != j)})
        more_values, more = _refine(s, values, sub, ok_j, rest)
        if ds.tolerance and more_values.shape[0]:  # polished to the same tolerance as the answer itself
            sub2 = {k: np.concatenate([sub[k], more[k]]) for k in more}
            v2 = np.vstack([values, more_values])
            rv = (np.stack([(sub2[f"c{i}"] - limit_of(c)) / c.scale for i, c in enumerate(rest)], axis=1).max(axis=1)
                  if rest else np.zeros(v2.shape[0]))
            ok2 = (np.where(np.isnan(rv), np.inf, rv) <= 0) & ~sub2["infeasible"]
            pv, pr, _ = _polish(s, v2, sub2, ok2, rest, calls=4)  # a secondary figure: a few steps of the same search
            if pv.shape[0]:
                more_values = np.vstack([more_values, pv])
                more = {k: np.concatenate([more[k], pr[k]]) for k in more}
        if more_values.shape[0]:
            v = (np.stack([(more[f"c{i}"] - limit_of(c)) / c.scale for i, c in enumerate(rest)], axis=1).max(axis=1)
                 if rest else np.zeros(more_values.shape[0]))
            fine = (np.where(np.isnan(v), np.inf, v) <= 0) & ~more["infeasible"]
            if fine.any():
                got.append(float(more["o0"][fine].min()))
    return (min(got) if got else None), bool(got)


def robust_draws(ds: DesignSpec, data: Dataset, spec: FormulaSpec, params: RunParameters
                 ) -> tuple[DataDraws, list[float]] | tuple[None, None]:
    """(the draws of the inputs, each constraint's probability) for a design with [uncertainty], else (None, None)."""
    if ds.uncertainty is None:
        return None, None
    from fundform.engine.draws import make_draws
    from fundform.engine.settlement.control_total import settlement_years
    from fundform.inputs.uncertainty import read_uncertainty

    unc = read_uncertainty(Path(ds.folder or ".") / ds.uncertainty.file)
    fy = settlement_years(params.start_year, params.years)["financial_year"].to_list()
    return make_draws(data, unc, spec, fy), [ds.probability(c) for c in ds.constraints]


def _refine(s: Search, values: np.ndarray, res: Measures, ok: np.ndarray, cons: list[Constraint]
            ) -> tuple[np.ndarray, Measures]:
    """Refinement by scipy.optimize.differential_evolution, seeded, its population evaluated on the scenario axis
    (vectorized: a generation is one chunk of scenarios), started from the best Sobol candidates. It minimises the
    first objective over feasible candidates and, below them, the largest violation (each constraint's shortfall
    over its scale): a feasible candidate always beats an infeasible one. Measured on worked question (c): it reaches
    the range's bound (a gain cap of 0.100%) where a second Sobol box stopped at 0.108% (docs/design.md)."""
    from scipy.optimize import differential_evolution

    ds, names, lo, hi = s.ds, s.names, s.lo, s.hi
    score = _scorer(res, ok, cons)
    seen_values: list[np.ndarray] = []
    seen: list[Measures] = []
    budget = ds.refine

    def fn(x: np.ndarray) -> np.ndarray:
        v = np.atleast_2d(x.T)  # (S, P): one row per member of the generation
        r = s.evaluate(v, cons)
        seen_values.append(v)
        seen.append(r)
        return score(r)

    popsize = 15
    n_pop = popsize * len(names)
    order = np.argsort(score(res), kind="stable")[:n_pop]  # the best Sobol candidates start the population
    init = values[order]
    if init.shape[0] < n_pop:
        init = np.vstack([init, _sobol(lo, hi, n_pop - init.shape[0], ds.seed + 2)[: n_pop - init.shape[0]]])
    differential_evolution(fn, list(zip(lo, hi)), vectorized=True, updating="deferred", seed=ds.seed,
                           maxiter=max(1, budget // n_pop - 1), popsize=popsize, init=init, polish=False, tol=0)
    if not seen:
        return np.empty((0, len(names))), {}
    return np.vstack(seen_values), {k: np.concatenate([r[k] for r in seen]) for k in seen[0]}


def _scorer(res: Measures, ok: np.ndarray, cons: list[Constraint]) -> Callable[[Measures], np.ndarray]:
    """The one number a refinement minimises: the first objective over feasible candidates and, above every
    feasible one, the largest violation (each constraint's shortfall over its scale)."""
    o0 = np.where(np.isfinite(res["o0"]), res["o0"], np.nan)
    feasible = o0[ok]
    top = float(np.nanmax(np.abs(feasible))) * 2 + 1 if feasible.size and np.isfinite(feasible).any() else 0.0

    def score(r: Measures) -> np.ndarray:
        v = (np.stack([(r[f"c{j}"] - limit_of(c)) / c.scale for j, c in enumerate(cons)], axis=1).max(axis=1)
             if cons else np.zeros(len(r["o0"])))  # no constraint left (one dropped): the objective alone
        v = np.where(r["infeasible"] | np.isnan(v), np.inf, v)
        o = np.where(np.isfinite(r["o0"]), r["o0"], top)
        return np.where(v <= 0, o, top + np.minimum(v, 1e9))
    return score


def _polish(s: Search, values: np.ndarray, res: Measures, ok: np.ndarray, cons: list[Constraint], *, calls: int = 200
            ) -> tuple[np.ndarray, Measures, dict[str, Any]]:
    """A compass search from the best candidate so far, stopping on a stated tolerance rather than a count. Each step
    tries every free number up and down at four scales at once (the step, a half, a quarter and an eighth of it:
    16 x free numbers scenarios, one chunk on the scenario axis), moves to the best that improves the score and
    keeps the scale that won, else shrinks the step sixteenfold; it stops when the finest scale tried is below
    `tolerance` of each free number's range. It lands on a constraint's edge (where most optima of a policy question
    lie) to within that scale. `calls` caps the steps (what dropping a constraint buys takes a few). Returns the
    candidates it evaluated and what it reached."""
    ds, names, lo, hi = s.ds, s.names, s.lo, s.hi
    score = _scorer(res, ok, cons)
    span = hi - lo
    start = score(res)
    x = values[int(np.argmin(start))].astype(np.float64)
    fx = float(start.min())
    step = span / 8
    scales = np.array([1.0, 0.5, 0.25, 0.125])
    seen_values: list[np.ndarray] = []
    seen: list[Measures] = []
    moves = 0
    eye = np.eye(len(names))
    while (step * scales[-1] / span).max() > ds.tolerance and len(seen) < calls:
        cand = np.vstack([np.clip(x + sign * eye[k] * step * f, lo, hi)
                          for f in scales for k in range(len(names)) for sign in (1, -1)])
        r = s.evaluate(cand, cons)
        seen_values.append(cand)
        seen.append(r)
        sc = score(r)
        k = int(np.argmin(sc))
        if sc[k] < fx:
            x, fx, moves = cand[k], float(sc[k]), moves + 1
            step = np.minimum(step * scales[k // (2 * len(names))] * 2, span / 8)  # the winning scale, and twice it
        else:
            step = step / 16
    final = step * scales[-1]
    reached = {"tolerance": ds.tolerance, "evaluations": int(sum(v.shape[0] for v in seen_values)), "moves": moves,
               "step": {n: float(final[i]) for i, n in enumerate(names)}}
    if not seen:
        return np.empty((0, len(names))), {}, reached
    return np.vstack(seen_values), {k: np.concatenate([r[k] for r in seen]) for k in seen[0]}, reached


def _pick(res: Measures, ok: np.ndarray, worst: np.ndarray, objs: list[Objective]) -> int:
    """The feasible candidate best on the first objective (the second breaks ties), else the least violating."""
    if ok.any():
        idx = np.flatnonzero(ok)
        keys = [res["o1"][idx]] if len(objs) == 2 else []
        return int(idx[np.lexsort((*keys, res["o0"][idx]))[0]])
    return int(np.argmin(worst))


def verify(result: DesignResult, data: Dataset, params: RunParameters) -> dict[str, Any]:
    """The chosen design run exactly, as `fundform run --set` runs it (the version with its numbers set, one
    scenario): its constraints re-checked on that run, and its grants against the candidate's, to the penny."""
    from fundform.engine.outcome import evaluate
    from fundform.engine.scenarios import Scenarios
    from fundform.formula.scenario import resolve_formula

    sets = result.sets()
    formula = resolve_formula(result.version, sets)
    run = evaluate(data, formula.spec, params)  # one scenario that sets nothing: the version as --set made it
    names = result.names
    v = np.array([[result.chosen["free"][n] for n in names]])
    cand = evaluate(data, resolve_formula(result.version).spec, params,
                    Scenarios(size=1, values={n: v[:, i] for i, n in enumerate(names)}, detail=False))
    free = {n: v[:, i] for i, n in enumerate(names)}
    checks = [{"constraint": c.name, "value": float(constraint_values(c, run)[0]), "limit": limit_of(c),
               "holds": bool(constraint_values(c, run)[0] <= limit_of(c))} for c in result.spec.constraints]
    draws, probs = robust_draws(result.spec, data, formula.spec, params)
    across = None
    if draws is not None and probs is not None:  # the chosen design over every draw, each a run on its variant
        oc = evaluate(data, formula.spec, params, Scenarios(size=draws.size, detail=False, draws=draws))
        across = [{"constraint": c.name, "probability": p, "limit": limit_of(c),
                   "share_of_draws_holding": float((constraint_values(c, oc) <= limit_of(c)).mean()),
                   "holds": bool((constraint_values(c, oc) <= limit_of(c)).mean() >= p)}
                  for c, p in zip(result.spec.constraints, probs)]
    return {"set": sets, "grants_equal_to_the_penny": bool(np.array_equal(run.grant, cand.grant)),
            **({"across_draws": {"draws": present(draws, "the draws").size, "constraints": across,
                                 "all_hold": all(c["holds"] for c in across)}} if across is not None else {}),
            "allocations_equal_to_the_penny": bool(np.array_equal(run.allocation, cand.allocation)),
            "max_grant_difference_pence": int(np.abs(run.grant - cand.grant).max()),
            "constraints": checks, "all_hold": all(c["holds"] for c in checks),
            "objectives": [{"objective": o.name, "value": objective_value_shown(o, float(objective_values(
                o, run, free)[0]))} for o in result.spec.objectives]}
