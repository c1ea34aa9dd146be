"""The Python API, for notebooks and Treasury models: the same engine, settings and checks as the command line,
with results as Polars frames.

    import fundform
    run = fundform.run("fundform-needs", set={"transition.floor": -0.01})
    run.allocations            # one row per area and year, money as exact decimal pounds (the Parquet schema)
    fundform.explain(run, "Hartlepool")
    fundform.compare("fundform-needs", "reform-2017")
    fundform.sweep("fundform-needs", {"need.indicators.deprivation.elasticity": (0.1, 0.4)}, draws=200)

Every function takes the options the command line's computing commands share: `data`, `level`, `start_year`,
`years`, `set` (a mapping of key path to value, or `key=value` strings), `index` (name -> CSV), `config`. What is
not given is the version's own (its default level, first effective year and effective years) or the `FUNDFORM_*`
setting. Errors are `fundform.errors.FundformError` subclasses, with the messages the command line prints.
docs/python-api.md has a worked example.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from fundform.errors import FundformError, UsageProblem


def _sets(set: dict[str, Any] | list[str] | tuple[str, ...] | None) -> tuple[str, ...]:  # noqa: A002
    """`{"transition.floor": -0.01}` or `["transition.floor=-0.01"]` -> ("transition.floor=-0.01",)."""
    if set is None:
        return ()
    if isinstance(set, dict):
        return tuple(f"{k}={json.dumps(v) if isinstance(v, str) else v}" for k, v in set.items())
    if isinstance(set, str):
        raise UsageProblem("set: give a mapping {path: value} or a list of 'path=value' strings, not one string")
    return tuple(set)


def parameters(formula: str | None = None, *, data: str | Path | None = None, level: str | None = None,
               start_year: str | None = None, years: int | None = None, set=None,  # noqa: A002
               index: dict[str, str | Path] | None = None, config: str | Path | None = None,
               price_base_year: str | None = None, **extra):
    """(settings, run parameters, index files, --set strings) for the options shared by every computing command:
    settings from the arguments, then FUNDFORM_*, then the config file, then the defaults; what is unset is the
    version's own. The command line calls this too."""
    from fundform.config import load_settings
    from fundform.formula.scenario import resolve_formula
    from fundform.formula.spec import run_defaults
    from fundform.pipeline import RunParameters

    s = load_settings(Path(config) if config else None, formula=formula, data_dir=Path(data) if data else None,
                      level=level, start_year=start_year, years=years, price_base_year=price_base_year)
    index_files = {k: Path(v) for k, v in (index or {}).items()}
    sets = _sets(set)
    level0, start0, years0 = run_defaults(resolve_formula(s.formula, sets, index_files=index_files).spec)
    pick = lambda given, default: default if given is None else given  # noqa: E731  (0 years is an error, not unset)
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
        from fundform.config import load_settings
        from fundform.outputs.manifest import read_run_manifest
        from fundform.outputs.warehouse import find_run

        s = load_settings()
        folder = find_run(str(ref), s.warehouse, s.out_root)
        manifest = read_run_manifest(folder)
        from fundform.outputs.registry import TABLE_NAMES

        frames = {t: pl.read_parquet(folder / f"{t}.parquet") for t in TABLE_NAMES}
        return cls(manifest["run_id"], manifest, frames, out_dir=folder, _level=manifest["parameters"]["level"])


def run(formula: str | None = None, *, data: str | Path | None = None, level: str | None = None,
        start_year: str | None = None, years: int | None = None, set=None,  # noqa: A002
        index: dict[str, str | Path] | None = None, config: str | Path | None = None,
        price_base_year: str | None = None, out: str | Path | None = None, record: bool = False,
        allow_implausible: bool = False) -> Run:
    """Run a formula version (an id, a formula file or a scenario file) and return its tables. Written (atomically,
    with its manifest) to `out`, or to the output root when `record` is true (and recorded in the run warehouse);
    otherwise only computed. The numbers are those `fundform run` writes for the same options."""
    from fundform.outputs.registry import OUTPUTS
    from fundform.outputs.write import to_arrow
    from fundform.runs import run as run_pipeline

    s, params, index_files, sets = parameters(formula, data=data, level=level, start_year=start_year, years=years,
                                              set=set, index=index, config=config, price_base_year=price_base_year,
                                              allow_implausible=allow_implausible)
    write = out is not None or record
    result = run_pipeline(s.formula, s.data_dir, params, Path(out) if out else None, s.out_root, write=write,
                          sets=sets, index_files=index_files, warehouse=s.warehouse if record else None)
    frames = {o.name: pl.from_arrow(to_arrow(result.tables[o.name], o.columns, params.price_base if o.priced else None,
                                             {})) for o in OUTPUTS}
    return Run(result.manifest["run_id"], result.manifest, frames, out_dir=result.out_dir, _level=params.level)


def _allocations(x: Run | str | Path, **options) -> pl.DataFrame:
    if isinstance(x, Run):
        return x.allocations
    try:
        return Run.load(x).allocations
    except FundformError:
        return run(str(x), **options).allocations


def compare(a: Run | str, b: Run | str, **options) -> pl.DataFrame:
    """Who gains and who loses from `a` to `b`: per area and year the grant in each, the change (decimal pounds, as
    `fundform compare` writes), per head and in percent, and the area's deprivation decile. Each side is a Run, a run's folder or id, or a formula or scenario
    computed now with `options` (those of `run`)."""
    from fundform.config import load_settings
    from fundform.inputs.dataset import load_dataset
    from fundform.outputs import compare as cmp
    from fundform.outputs.schema import COMPARE
    from fundform.outputs.write import to_arrow

    alloc_a, alloc_b = _allocations(a, **options), _allocations(b, **options)
    data_dir = options.get("data") or load_settings().data_dir
    deciles = cmp.deprivation_deciles(load_dataset(Path(data_dir)), alloc_a["area_level"][0])
    return pl.from_arrow(to_arrow(cmp.compare(alloc_a, alloc_b, deciles), COMPARE, None, {}))  # pounds, as written


def explain(run_: Run | str, area: str) -> pl.DataFrame:
    """One area's waterfall (by code, exact name or a unique part of it): each step of its grant, from an equal
    share per head through age, need, the transition and local tax, in pounds; the steps add to the grant."""
    from fundform.config import load_settings
    from fundform.geography import hint_lookup, match_area

    r = run_ if isinstance(run_, Run) else Run.load(run_)
    return match_area(r.waterfall, area, r._level, hint_lookup(load_settings().data_dir)).sort(
        "financial_year", "step_order")


@dataclass
class Sweep:
    """A sweep's results: per area and year the grant's distribution (`stats`), which parameter moves it most
    (`sensitivity`), and the scenarios drawn (`scenarios`)."""

    stats: pl.DataFrame
    sensitivity: pl.DataFrame
    scenarios: pl.DataFrame


def sweep(formula: str | None, params: dict[str, tuple[float, float] | list[float]], *, draws: int | None = None,
          seed: int = 20261122, **options) -> Sweep:
    """Vary a version's numbers, all scenarios at once: `params` maps a sweepable key path to (lo, hi) for seeded
    uniform draws (give `draws`) or a list of values for a grid. Each scenario's numbers equal a run with the same
    --set. `options` are those of `run`."""
    from fundform.formula.scenario import resolve_formula
    from fundform.inputs.dataset import load_dataset
    from fundform.sweeps import parse_parameters, run_sweep

    exprs = [f"{k}={v[0]}:{v[1]}" if isinstance(v, tuple) else f"{k}={','.join(map(str, v))}"
             for k, v in params.items()]
    names, values = parse_parameters(exprs, draws, seed)
    s, run_params, index_files, sets = parameters(formula, **options)
    f = resolve_formula(s.formula, sets, index_files=index_files)
    res = run_sweep(load_dataset(s.data_dir), f, run_params, names, values)
    return Sweep(res.stats, res.sensitivity, res.scenarios)
