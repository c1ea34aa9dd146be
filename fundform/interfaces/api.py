"""The Python API, for notebooks and Treasury models: the same engine, settings and checks as the command line,
with results as Polars frames.

    >>> import fundform
    >>> run = fundform.run("fundform-needs", set={"transition.floor": -0.01})
    >>> run.allocations.height, bool(run.reconciliation["holds"].all())  # 296 areas x 5 years; every identity holds
    (1480, True)
    >>> fundform.explain(run, "Hartlepool")["step"][0]  # its grant built step by step, to the penny
    'equal share per head'
    >>> fundform.compare("fundform-needs", "reform-2017").height  # winners and losers, per area and year
    1480
    >>> fundform.sweep("fundform-needs", {"need.indicators.deprivation.elasticity": (0.1, 0.4)},
    ...                draws=200).manifest["scenarios"]
    200

(`run.allocations` holds money as exact decimal pounds, the Parquet schema; these examples run as a test.)

Every function takes the options the command line's computing commands share: `data`, `level`, `start_year`,
`years`, `set` (a mapping of key path to value, or `key=value` strings), `index` (name -> CSV), `config`. What is
not given is the version's own (its default level, first effective year and effective years) or the `FUNDFORM_*`
setting. Errors are `fundform.base.errors.FundformError` subclasses, with the messages the command line prints.
docs/python-api.md has a worked example.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from fundform.base.errors import FundformError, UsageProblem

if TYPE_CHECKING:
    from fundform.base.config import Settings
    from fundform.engine.params import RunParameters
    from fundform.studies.designer import DesignResult

# --set as a mapping of key paths to values, or as KEY.PATH=VALUE strings
Sets = dict[str, Any] | list[str] | tuple[str, ...] | None
# a sweep's numbers: a key path to (lo, hi) for uniform draws or a list of values, or PATH=LO:HI / PATH=V1,V2 strings
SweepParams = dict[str, tuple[float, float] | list[float]] | list[str]

__all__ = ["FundformError", "parameters", "Run", "run", "Model", "load", "find", "Comparison", "comparison", "compare",
           "explain", "Sweep", "sweep", "design"]


def _sets(set: Sets) -> tuple[str, ...]:
    """`{"transition.floor": -0.01}` or `["transition.floor=-0.01"]` -> ("transition.floor=-0.01",)."""
    if set is None:
        return ()
    if isinstance(set, dict):
        return tuple(f"{k}={json.dumps(v) if isinstance(v, str) else v}" for k, v in set.items())
    if isinstance(set, str):
        raise UsageProblem("set: give a mapping {path: value} or a list of 'path=value' strings, not one string")
    return tuple(set)


def parameters(formula: str | None = None, *, data: str | Path | None = None, level: str | None = None,
               start_year: str | None = None, years: int | None = None, set: Sets = None,
               index: Mapping[str, str | Path] | None = None, config: str | Path | None = None,
               price_base_year: str | None = None, **extra: Any
               ) -> tuple[Settings, RunParameters, dict[str, Path], tuple[str, ...]]:
    """(settings, run parameters, index files, --set strings) for the options shared by every computing command:
    settings from the arguments, then FUNDFORM_*, then the config file, then the defaults; what is unset is the
    version's own. The command line calls this too."""
    from fundform.base.config import load_settings
    from fundform.formula.scenario import resolve_formula
    from fundform.formula.spec import run_defaults
    from fundform.studies.pipeline import RunParameters

    s = load_settings(Path(config) if config else None, formula=formula, data_dir=Path(data) if data else None,
                      level=level, start_year=start_year, years=years, price_base_year=price_base_year)
    index_files = {k: Path(v) for k, v in (index or {}).items()}
    sets = _sets(set)
    level0, start0, years0 = run_defaults(resolve_formula(s.formula, sets, index_files=index_files).spec)
    pick = lambda given, default: default if given is None else given  # (0 years is an error, not unset)
    params = RunParameters(level=pick(s.level, level0), start_year=pick(s.start_year, start0),
                           years=pick(s.years, years0), price_base_year=s.price_base_year, **extra)
    return s, params, index_files, sets


@dataclass
class Run:
    """One run's tables as Polars frames, as written to Parquet (money as exact decimal pounds), one per entry of
    `fundform.outputs.registry.OUTPUTS` and read by name (`run.allocations`, `run.waterfall`), and its manifest.
    `out_dir` is where it was written (None if it was only computed)."""

    run_id: str
    manifest: dict
    tables: dict[str, pl.DataFrame]
    out_dir: Path | None = None
    _level: str = field(default="ltla", repr=False)

    def __getattr__(self, name: str) -> pl.DataFrame:
        tables = self.__dict__.get("tables", {})
        if name in tables:
            return tables[name]
        raise AttributeError(f"a run has no table '{name}' (its tables: {', '.join(tables)})")

    def __repr__(self) -> str:
        f = self.manifest.get("formula", {})
        p = self.manifest.get("parameters", {})
        years = self.allocations["financial_year"].unique().sort().to_list()
        return (f"Run({self.run_id}: {f.get('id')} {f.get('version')}, level {p.get('level')}, "
                f"{self.allocations['area_code'].n_unique()} areas, {years[0]} to {years[-1]}"
                + (f", written to {self.out_dir}" if self.out_dir else "") + ")")

    @classmethod
    def load(cls, ref: str | Path) -> Run:
        """A written run by its folder or id (from the warehouse, or the output root)."""
        from fundform.base.config import load_settings
        from fundform.outputs.manifest import read_run_manifest
        from fundform.outputs.warehouse import find_run

        s = load_settings()
        folder = find_run(str(ref), s.warehouse, s.out_root)
        manifest = read_run_manifest(folder)
        from fundform.outputs.registry import TABLE_NAMES

        # a table a later schema added (letter.parquet, 1.9) is absent from a run written before it: the run loads,
        # and asking for the table says it has none
        frames = {t: pl.read_parquet(folder / f"{t}.parquet") for t in TABLE_NAMES
                  if t == "allocations" or (folder / f"{t}.parquet").exists()}
        frames |= {t: pl.read_parquet(folder / f"{t}.parquet") for t in ("uncertainty", "sensitivity")
                   if (folder / f"{t}.parquet").exists()}  # a run with --uncertainty
        return cls(manifest["run_id"], manifest, frames, out_dir=folder, _level=manifest["parameters"]["level"])


def run(formula: str | None = None, *, data: str | Path | None = None, level: str | None = None,
        start_year: str | None = None, years: int | None = None, set: Sets = None,
        index: Mapping[str, str | Path] | None = None, config: str | Path | None = None,
        price_base_year: str | None = None, out: str | Path | None = None, record: bool = False,
        allow_implausible: bool = False, uncertainty: str | Path | None = None) -> Run:
    """Run a formula version (an id, a formula file or a scenario file) and return its tables. Written (atomically,
    with its manifest) to `out`, or to the output root when `record` is true (and recorded in the run warehouse);
    otherwise only computed. The numbers are those `fundform run` writes for the same options. `uncertainty`: an
    uncertainty file (docs/uncertainty.md): the run gains the tables `uncertainty` (the range of every figure over
    the draws of its inputs) and `sensitivity`."""
    from fundform.inputs.uncertainty import read_uncertainty
    from fundform.outputs.registry import OUTPUTS
    from fundform.outputs.write import to_arrow
    from fundform.studies.runs import plan_run
    from fundform.studies.runs import run as run_pipeline

    s, params, index_files, sets = parameters(formula, data=data, level=level, start_year=start_year, years=years,
                                              set=set, index=index, config=config, price_base_year=price_base_year,
                                              allow_implausible=allow_implausible)
    write = out is not None or record
    unc = read_uncertainty(uncertainty) if uncertainty is not None else None
    plan = plan_run(s.formula, s.data_dir, params, sets, index_files, uncertainty=unc)
    if not write:  # the same run (same id: formula, inputs, options, packages) already written: read it back
        folder = _recorded(plan.run_id, s.out_root)
        if folder is not None:
            return Run.load(folder)
    result = run_pipeline(s.formula, s.data_dir, params, Path(out) if out else None, s.out_root, write=write,
                          sets=sets, index_files=index_files, warehouse=s.warehouse if record else None, plan=plan,
                          uncertainty=unc)
    frames = {o.name: pl.DataFrame(to_arrow(result.tables[o.name], o.columns, params.price_base if o.priced else None,
                                             {})) for o in OUTPUTS}
    if result.uncertainty is not None:
        from fundform.outputs.schema import SENSITIVITY, UNCERTAINTY

        frames["uncertainty"] = pl.DataFrame(to_arrow(result.uncertainty.bands, UNCERTAINTY, None, {}))
        frames["sensitivity"] = pl.DataFrame(to_arrow(result.uncertainty.sensitivity, SENSITIVITY, None, {}))
    return Run(result.manifest["run_id"], result.manifest, frames, out_dir=result.out_dir, _level=params.level)


@dataclass
class Model:
    """A dataset loaded and checked once, for many runs in one process (a notebook, a model): `fundform.load()`.
    Its methods take the options of `fundform.run`, `compare`, `sweep` and `design` on this data; each run of a
    variant then costs the formula and the outputs only (about 36 ms for fundform-needs with every table). The data
    is held by the content of its files: change a file and the next call reads and checks it again."""

    data_dir: Path

    def run(self, formula: str | None = None, **options: Any) -> Run:
        return run(formula, data=self.data_dir, **options)

    def compare(self, a: Run | str, b: Run | str, **options: Any) -> pl.DataFrame:
        return compare(a, b, data=self.data_dir, **options)

    def sweep(self, formula: str | None, params: SweepParams, **options: Any) -> Sweep:
        return sweep(formula, params, data=self.data_dir, **options)

    def design(self, design_file: str | Path, **options: Any) -> DesignResult:
        return design(design_file, data=self.data_dir, **options)


def load(data: str | Path | None = None, *, config: str | Path | None = None,
         allow_implausible: bool = False) -> Model:
    """Load and check a dataset (default: the configured one, else the bundled England data) once, for many runs:
    `m = fundform.load(); m.run(set={...})`. `fundform.run(data=...)` with the same files reuses it too."""
    from fundform.base.config import load_settings
    from fundform.studies.runs import checked_dataset

    s = load_settings(Path(config) if config else None, data_dir=Path(data) if data else None)
    checked_dataset(s.data_dir, allow_implausible)
    return Model(Path(s.data_dir))


def find(ref: str | Path) -> Path | None:
    """A written run's folder by its folder or id (warehouse, then output root), or None if `ref` names none."""
    from fundform.base.config import load_settings
    from fundform.outputs.warehouse import find_run

    s = load_settings()
    try:
        return find_run(str(ref), s.warehouse, s.out_root)
    except FundformError:
        return None


def _recorded(run_id: str, out_root: Path) -> Path | None:
    """The folder of a run already written with this id under the output root (its manifest says so), if any: a
    run's id hashes its formula, inputs, parameters and packages, so its figures are the ones computing would give."""
    from fundform.outputs.manifest import read_run_manifest

    folder = Path(out_root) / run_id
    try:
        return folder if read_run_manifest(folder).get("run_id") == run_id else None
    except (FundformError, OSError, ValueError):
        return None


@dataclass
class Comparison:
    """Two sides compared (`compare`): `table` per area and year in pence (grant_a, grant_b, change, change per
    head, change in percent, deprivation decile), with the sides' names."""

    a: str
    b: str
    table: pl.DataFrame
    per: str = "per resident"  # whom side A's population counts: per resident, or per registered patient

    @property
    def frame(self) -> pl.DataFrame:
        """The table as `fundform compare` writes it: money in exact decimal pounds."""
        from fundform.outputs.schema import COMPARE
        from fundform.outputs.write import to_arrow

        return pl.DataFrame(to_arrow(self.table, COMPARE, None, {}))

    @property
    def summary(self) -> pl.DataFrame:
        """Per year, winners and losers of the change in grant (the pot's size and its split together)."""
        from fundform.outputs import compare as cmp

        return cmp.summary(self.table)

    @property
    def by_decile(self) -> pl.DataFrame:
        from fundform.outputs import compare as cmp

        return cmp.by_decile(self.table)

    @property
    def split_summary(self) -> pl.DataFrame:
        """Per year, winners and losers of the split alone: B's shares applied to A's total (gains = losses)."""
        from fundform.outputs import compare as cmp

        return cmp.summary(self.table, "change_in_split")

    @property
    def split_by_decile(self) -> pl.DataFrame:
        from fundform.outputs import compare as cmp

        return cmp.by_decile(self.table, "change_in_split")


def comparison(a: Run | str, b: Run | str, **options: Any) -> Comparison:
    """`a` against `b`. Each side is a Run, a written run's folder or id, or a formula or scenario computed now:
    sides computed now share the options, resolved from the first of them (its version's level and years unless
    given), and the data is read once; a side whose run was already written with the same id is read, not
    recomputed."""
    from fundform.base.config import load_settings
    from fundform.formula.scenario import resolve_formula
    from fundform.outputs import compare as cmp
    from fundform.outputs.schema import ALLOCATIONS
    from fundform.outputs.text import population_words
    from fundform.outputs.write import to_arrow
    from fundform.studies.pipeline import compute
    from fundform.studies.runs import checked_dataset, plan_run

    written = [None if isinstance(x, Run) else find(x) for x in (a, b)]
    now = [x for x, w in zip((a, b), written) if not isinstance(x, Run) and w is None]
    data = None
    if now:
        s, params, index_files, sets = parameters(str(now[0]), **options)
    else:
        s = load_settings(Path(options["config"]) if options.get("config") else None,
                          data_dir=Path(options["data"]) if options.get("data") else None)

    def side(x: Run | str, folder: Path | None) -> tuple[pl.DataFrame, pl.DataFrame | None]:
        """A side's allocations and need (whom its population counts)."""
        nonlocal data
        if isinstance(x, Run):
            return x.allocations, x.need
        if folder is None:
            plan = plan_run(str(x), s.data_dir, params, sets, index_files)
            folder = _recorded(plan.run_id, s.out_root)
        if folder is not None:
            need = folder / "need.parquet"
            return pl.read_parquet(folder / "allocations.parquet"), pl.read_parquet(need) if need.exists() else None
        data = data or checked_dataset(s.data_dir, params.allow_implausible)
        result = compute(data, resolve_formula(str(x), sets, index_files=index_files), params)
        return pl.DataFrame(to_arrow(result.allocations, ALLOCATIONS, params.price_base, {})), result.need

    (alloc_a, need_a), (alloc_b, _) = (side(x, w) for x, w in zip((a, b), written))
    data = data or checked_dataset(s.data_dir)
    deciles = cmp.deprivation_deciles(data, alloc_a["area_level"][0], alloc_a["area_code"].unique().to_list())
    name = lambda x: x.run_id if isinstance(x, Run) else str(x)
    return Comparison(name(a), name(b), cmp.compare(alloc_a, alloc_b, deciles), population_words(need_a)[1])


def compare(a: Run | str, b: Run | str, **options: Any) -> pl.DataFrame:
    """Who gains and who loses from `a` to `b`: per area and year the grant in each, the change (decimal pounds, as
    `fundform compare` writes), per head and in percent, and the area's deprivation decile. Each side is a Run, a
    run's folder or id, or a formula or scenario computed now with `options` (those of `run`; see `comparison`)."""
    return comparison(a, b, **options).frame


def explain(run_: Run | str, area: str, data: str | Path | None = None) -> pl.DataFrame:
    """One area's waterfall (by code, exact name or a unique part of it): each step of its grant, from an equal
    share per head through age, need, the transition and local tax, in pounds; the steps add to the grant. `data`:
    the dataset whose area lookup names the level a name belongs to, for the message when nothing matches."""
    from fundform.base.config import load_settings
    from fundform.engine.geography import hint_lookup, match_area

    r = run_ if isinstance(run_, Run) else Run.load(run_)
    return match_area(r.waterfall, area, r._level, hint_lookup(data or load_settings().data_dir)).sort(
        "financial_year", "step_order")


@dataclass
class Sweep:
    """A sweep's results: per area and year the grant's distribution (`stats`), which parameter moves it most
    (`sensitivity`), and the scenarios drawn (`scenarios`); its manifest, and where it was written (or None)."""

    stats: pl.DataFrame
    sensitivity: pl.DataFrame
    scenarios: pl.DataFrame
    manifest: dict = field(default_factory=dict)
    out_dir: Path | None = None


def sweep(formula: str | None, params: SweepParams, *,
          draws: int | None = None, seed: int = 20261122, out: str | Path | None = None, write: bool = False,
          progress: Callable[[str], None] | None = None, executor: str | None = None, **options: Any) -> Sweep:
    """Vary a version's numbers, all scenarios at once: `params` maps a sweepable key path to (lo, hi) for seeded
    uniform draws (give `draws`) or a list of values for a grid (or is a list of `PATH=LO:HI` / `PATH=V1,V2`
    strings, as `--param` takes them). Each scenario's numbers equal a run with the same --set. Written (atomically,
    with its manifest) to `out`, or to the output root's sweep-ID when `write` is true. `options` are those of
    `run`. `executor`: "local" (threads, the default), "dask" (a local Dask cluster) or "dask:tcp://HOST:PORT"
    (docs/scale.md); the figures are the same."""
    import hashlib

    from fundform.formula.scenario import resolve_formula
    from fundform.outputs.write import atomic_write_dir
    from fundform.studies.executors import executor as make_executor
    from fundform.studies.runs import checked_dataset
    from fundform.studies.sweeps import parse_parameters, run_sweep

    exprs = list(params) if isinstance(params, list | tuple) else [
        f"{k}={v[0]}:{v[1]}" if isinstance(v, tuple) else f"{k}={','.join(map(str, v))}" for k, v in params.items()]
    names, values = parse_parameters(exprs, draws, seed)
    s, run_params, index_files, sets = parameters(formula, **options)
    f = resolve_formula(s.formula, sets, index_files=index_files)
    ds = checked_dataset(s.data_dir)
    ex = make_executor(executor)
    try:
        res = run_sweep(ds, f, run_params, names, values, progress=progress, executor=ex)
    finally:
        ex.close()
    manifest: dict[str, Any] = {"formula": {"id": f.spec.id, "version": f.spec.version, "sha256": f.sha256,
                            "resolved_sha256": f.resolved_sha256},
                "parameters": run_params.as_dict(), "swept": exprs, "draws": draws, "seed": seed,
                "scenarios": int(values.shape[0]),
                "inputs": [{"table": x.table, "file": x.path.name, "sha256": x.sha256} for x in ds.files]}
    ident = hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()[:12]
    manifest = {"sweep_id": ident, **manifest}
    target = None
    if out is not None or write:
        target = atomic_write_dir(Path(out) if out else s.out_root / f"sweep-{ident}", {
            "sweep.parquet": res.stats.to_arrow(), "sensitivity.parquet": res.sensitivity.to_arrow(),
            "scenarios.parquet": res.scenarios.to_arrow(),
            "manifest.json": json.dumps(manifest, indent=2, sort_keys=True) + "\n"})
    return Sweep(res.stats, res.sensitivity, res.scenarios, manifest, target)


def design(design: str | Path, *, out: str | Path | None = None, write: bool = False,
           progress: Callable[[str], None] | None = None, executor: str | None = None, **options: Any
           ) -> DesignResult:
    """Which numbers of a version meet a design's constraints (a design file, TOML: docs/design.md): candidates
    searched on the scenario axis, the chosen one verified by an exact run, the feasible region and the frontier.
    Returns a `fundform.studies.designer.DesignResult`; written (atomically, with its manifest, report and a scenario file
    that reproduces the choice) to `out`, or to the output root's design-ID when `write` is true. `options`: those
    of `run` (data, level, start_year, years, config), over the design file's own."""
    import hashlib
    import platform

    from fundform import __version__
    from fundform.formula.scenario import resolve_formula
    from fundform.outputs.design_report import design_html
    from fundform.outputs.write import atomic_write_dir
    from fundform.studies.designer import load_design, run_design, verify
    from fundform.studies.runs import checked_dataset

    path = Path(design)
    if not path.is_file():
        from fundform.base.paths import PROJECT_ROOT

        shipped = PROJECT_ROOT / "formulas" / "designs" / f"{design}.toml"
        if not shipped.is_file():
            raise FundformError(f"no design file {design} (nor formulas/designs/{design}.toml)")
        path = shipped
    ds = load_design(path)
    given = {k: v for k in ("level", "start_year", "years") if (v := options.pop(k, None)) is not None}
    s, params, _, _ = parameters(ds.version, level=given.get("level", ds.level),
                                 start_year=given.get("start_year", ds.start_year),
                                 years=given.get("years", ds.years), **options)
    formula = resolve_formula(ds.version)
    data = checked_dataset(s.data_dir)
    from fundform.studies.executors import executor as make_executor

    ex = make_executor(executor)
    try:
        result = run_design(ds, data, formula, params, progress=progress, executor=ex)
    finally:
        ex.close()
    (progress or (lambda _m: None))("verifying the chosen design by an exact run")
    result.verified = verify(result, data, params)
    from importlib.metadata import version as pkg

    manifest = {"design": ds.model_dump(mode="json"), "design_file": path.name,
                "formula": {"id": formula.spec.id, "version": formula.spec.version, "sha256": formula.sha256},
                "parameters": params.as_dict(),
                "inputs": [{"table": x.table, "file": x.path.name, "sha256": x.sha256} for x in data.files],
                "packages": {"python": platform.python_version(), "fundform": __version__,
                             **{p: pkg(p) for p in ("numpy", "scipy", "polars")}}}
    ident = hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()[:12]
    result.manifest = {"design_id": ident, **manifest}
    if out is not None or write:
        summary = {"design_id": ident, "title": ds.title, "version": result.version, "feasible": result.feasible,
                   "chosen": result.chosen, "binding": result.binding, "relaxed": result.relaxed,
                   "shipped": result.shipped, "verified": result.verified, "candidates": result.points.height}
        result.out_dir = atomic_write_dir(Path(out) if out else s.out_root / f"design-{ident}", {
            "points.parquet": result.points.to_arrow(), "frontier.parquet": result.frontier.to_arrow(),
            "region.parquet": result.region.to_arrow(), "scenario.toml": result.scenario_toml(),
            "design.json": json.dumps(summary, indent=2, sort_keys=True, allow_nan=False, default=str) + "\n",
            "report.html": design_html(result),
            "manifest.json": json.dumps(result.manifest, indent=2, sort_keys=True) + "\n"})
    return result
