"""fundform run and fundform validate: a run of a version on a dataset, and a dataset checked."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from fundform.base.errors import InvalidInput
from fundform.interfaces.cli.common import (
    ConfigOpt,
    DataOpt,
    ExecutorOpt,
    FormulaOpt,
    ImplausibleOpt,
    IndexOpt,
    JsonOpt,
    LevelOpt,
    QuietOpt,
    SetOpt,
    StartYearOpt,
    YearsOpt,
    app,
    err,
    flag,
    out,
    progress_bar,
    setup_options,
    write_report,
)


@app.command()
def run(
    formula: FormulaOpt = None,
    set_: SetOpt = None,
    index: IndexOpt = None,
    precept_rates: Annotated[Optional[Path], typer.Option(help="CSV of area_code, rate: each authority's adult social "
                                                          "care precept rate (0 opts out), within the version's cap.")
                             ] = None,
    local_bases: Annotated[Optional[Path], typer.Option(help="CSV of area_code, income_base, business_rates_discount "
                                                        "(GBP): bases for local taxes the bundled data lacks.")] = None,
    data: DataOpt = None,
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="Output folder. Default: out/RUN_ID/.",
                                                    show_default=False)] = None,
    level: LevelOpt = None,
    start_year: StartYearOpt = None,
    years: YearsOpt = None,
    price_base_year: Annotated[Optional[str], typer.Option(help="Price base of real-terms columns. "
                                                           "[default: the start year]", show_default=False)] = None,
    config: ConfigOpt = None,
    with_report: Annotated[bool, flag("--report", help="Also write report.html into the output folder.")
                           ] = False,
    record: Annotated[bool, flag("--record/--no-record", help="Record the run in the run warehouse "
                                         "(FUNDFORM_WAREHOUSE, default out/fundform.duckdb).")] = True,
    allow_implausible: ImplausibleOpt = False,
    no_cache: Annotated[bool, flag("--no-cache", help="Read and check every input file, even if an earlier run "
                                   "checked the same files (their checked tables are kept by content in "
                                   "out/.cache/inputs; `fundform cache clear` empties it).")] = False,
    uncertainty: Annotated[Optional[Path], typer.Option("--uncertainty", help="An uncertainty file (draws, seed, "
                                                        "sources: docs/uncertainty.md): also writes "
                                                        "uncertainty.parquet, every figure's range over the draws "
                                                        "of the inputs, and sensitivity.parquet.",
                                                        show_default=False)] = None,
    executor_spec: ExecutorOpt = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Run an allocation: need, targets, the five-year settlement, local tax, grants. Writes allocations, need,
    streams, waterfall, cohorts and reconciliation (Parquet) and manifest.json, and records the run in the warehouse.
    Writes nothing if any input or rule is invalid."""
    from fundform.inputs.uncertainty import read_uncertainty
    from fundform.outputs.summary import print_bands, print_summary
    from fundform.studies.runs import run as run_pipeline

    try:
        s, params, index_files = setup_options(formula, data, level, start_year, years, config, set_, index,
                                        price_base_year, precept_rates=precept_rates, local_bases=local_bases,
                                        allow_implausible=allow_implausible)
        unc = read_uncertainty(uncertainty) if uncertainty is not None else None
        from fundform.studies.executors import executor as make_executor

        ex = make_executor(executor_spec) if unc is not None else None
        with progress_bar("run", quiet or json_out) as bar:  # a terminal only: piped output gets the result
            def progress(msg: str) -> None:
                bar(msg)
            result = run_pipeline(s.formula, s.data_dir, params, out_dir, s.out_root, progress=progress,
                                  sets=tuple(set_ or ()), index_files=index_files,
                                  warehouse=s.warehouse if record else None, use_cache=not no_cache,
                                  uncertainty=unc, executor=ex)
    finally:
        if "ex" in locals() and ex is not None:
            ex.close()
    if with_report:
        write_report(str(result.out_dir), None, None, None, s.data_dir, quiet=quiet or json_out,
                      deal_file=params.deal_file)
    if json_out:
        out.print_json(json.dumps({"run_id": result.manifest["run_id"], "out_dir": str(result.out_dir),
                                   "formula": result.manifest["formula"], "parameters": params.as_dict(),
                                   "overrides": result.manifest["overrides"],
                                   "policies": result.policies}))
    elif not quiet:
        print_summary(result, out)
        if result.uncertainty is not None:
            print_bands(result, out)


@app.command()
def validate(data: DataOpt = None, allow_implausible: ImplausibleOpt = False, json_out: JsonOpt = False,
             quiet: QuietOpt = False) -> None:
    """Check a dataset folder against every table contract and report every problem at once (exit 1 if any)."""
    from fundform.base.paths import default_data_dir
    from fundform.inputs.dataset import load_dataset

    directory = data or default_data_dir()
    try:
        ds = load_dataset(directory, allow_implausible=allow_implausible)
    except InvalidInput as e:
        if json_out:
            out.print_json(json.dumps({"valid": False, "data_dir": str(directory), "problems": [
                {"file": p.file, "column": p.column, "problem": p.problem, "expected": p.expected,
                 "rows": list(p.rows)} for p in e.problems]}))
            raise typer.Exit(1)
        raise
    if json_out:
        out.print_json(json.dumps({"valid": True, "data_dir": str(directory),
                                   "tables": {f.table: f.rows for f in ds.files},
                                   "implausible_allowed": list(ds.implausible)}))
    elif not quiet:
        for w in ds.implausible:
            err.print(f"[yellow]allowed (--allow-implausible):[/yellow] {escape(w)}", highlight=False)
        out.print(f"[green]valid[/green]: {escape(str(directory))} "
                  f"({', '.join(f'{f.table} {f.rows} rows' for f in ds.files)})")
