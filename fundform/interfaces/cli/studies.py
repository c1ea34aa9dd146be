"""fundform batch, sweep, design and levels: studies built on the outcome (many runs, thousands of scenarios,
the numbers that meet constraints, a body against its members)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from fundform.base.errors import present
from fundform.interfaces.cli.common import (
    ConfigOpt,
    DataOpt,
    ExecutorOpt,
    FormulaOpt,
    IndexOpt,
    JsonOpt,
    LevelOpt,
    QuietOpt,
    SetOpt,
    StartYearOpt,
    YearsOpt,
    app,
    current_settings,
    flag,
    out,
    parse_index_files,
    progress_bar,
    setup_options,
)
from fundform.outputs.text import gbp, gbp_bn, gbp_pence


@app.command()
def batch(
    spec: Annotated[Path, typer.Argument(help="Batch spec (TOML): output, data, and [[runs]] with formula, levels, "
                                         "start_year, years, set.")],
    force: Annotated[bool, flag("--force", help="Redo runs that are already complete.")] = False,
    dry_run: Annotated[bool, flag("--dry-run", help="Say what would run; run nothing.")] = False,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Run a batch: skips runs already complete with unchanged inputs (their id is a hash of everything that
    determines them), writes each run atomically, records it in the run warehouse (FUNDFORM_WAREHOUSE) that `runs`
    and `report` read, survives being killed, and refuses to share an output folder with another batch. Exit 1 if
    any run failed, 4 if the folder is locked, 5 if the machine refused."""
    from rich.table import Table

    from fundform.studies.batch import run_batch

    s = current_settings()  # FUNDFORM_WAREHOUSE(_WAIT) and the other settings apply to a batch's runs too
    with progress_bar("batch", quiet or json_out) as bar:
        summary = run_batch(spec, force=force, dry_run=dry_run, progress=bar, warehouse=s.warehouse)
    failed = summary["counts"]["failed"]
    if json_out:
        out.print_json(json.dumps(summary))
    elif not quiet:
        t = Table(title=f"batch {spec}: {summary['counts']['done']} done, {summary['counts']['skipped']} skipped, "
                        f"{failed} failed in {summary['seconds']:.2f}s")
        for c in ["run", "run id", "status", "seconds", "error"]:
            t.add_column(c, overflow="fold")
        for r in summary["runs"]:
            t.add_row(escape(r["run"]), r.get("run_id", ""), r["status"], f"{r['seconds']:.2f}",
                      escape(r.get("error", "")))
        out.print(t)
        out.print(f"summary: {summary['output']}/batch-summary.json; log: {summary['output']}/batch.log.jsonl")
    if failed:
        raise typer.Exit(1)


@app.command()
def sweep(
    param: Annotated[list[str], typer.Option("--param", help="PATH=LO:HI (uniform draws) or PATH=V1,V2,... (a grid), "
                                             "e.g. need.indicators.deprivation.elasticity=0.1:0.4 or "
                                             "need.age_cost_curve.bands.85-90.weight=4,6,8. Sweepable: age band "
                                             "weights, indicator elasticities and min/max multipliers, the "
                                             "transition's numbers (gap_closed_per_year, NHS convergence caps, "
                                             "phasing_years, floor, ceiling), real growth, equalisation, share for "
                                             "devolved services; a stream's own as streams.NAME.PATH; a number a "
                                             "dated section states, in its year, as years.YYYY/YY.PATH "
                                             "(years.2025/26.transition.max_gain). Repeatable.")],
    formula: FormulaOpt = None,
    draws: Annotated[Optional[int], typer.Option(help="Number of random scenarios (with LO:HI parameters).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the random draws (reproducible).")] = 20261122,
    level: LevelOpt = None,
    start_year: StartYearOpt = None,
    years: YearsOpt = None,
    set_: SetOpt = None,
    index: IndexOpt = None,
    config: ConfigOpt = None,
    data: DataOpt = None,
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="Folder to write. [default: out/sweep-HASH]",
                                                    show_default=False)] = None,
    executor: ExecutorOpt = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Vary a version's numbers over a grid or seeded random draws, all scenarios at once: per area and year the
    grant's distribution (min, p5, median, p95, max), how often it sits at a floor, and which parameter moves it
    most. Each scenario is what `fundform run --set` of the same values gives, to the penny (the run's own stages
    with a scenario axis), settled 1,000 at a time on a thread per core; beyond 20,000 scenarios the grants go to a
    temporary file a chunk at a time, so memory stays bounded. Writes sweep.parquet, sensitivity.parquet,
    scenarios.parquet and manifest.json."""
    from rich.table import Table

    from fundform.interfaces.api import sweep as run_sweep

    with progress_bar("sweep", quiet or json_out) as status:
        res = run_sweep(formula, list(param), draws=draws, seed=seed, out=out_dir, write=True, progress=status,
                        executor=executor,
                        data=data, level=level, start_year=start_year, years=years, set=list(set_ or ()),
                        index=parse_index_files(index), config=config)
    target, n = res.out_dir, res.manifest["scenarios"]
    if json_out:
        out.print_json(json.dumps({"out_dir": str(target), "scenarios": n,
                                   "sensitivity": res.sensitivity.to_dicts()}))
        return
    if quiet:
        return
    t = Table(title=f"{n:,} scenarios of {res.manifest['formula']['id']}: which parameters move grants most")
    for c in ["rank", "parameter", "mean |rank correlation| with grant"]:
        t.add_column(c)
    for r in res.sensitivity.iter_rows(named=True):
        t.add_row(str(r["rank"]), r["parameter"], f"{r['mean_abs_rank_correlation']:.3f}")
    out.print(t)
    import polars as pl

    last = str(res.stats["financial_year"].max())
    widest = res.stats.filter(pl.col("financial_year") == last).with_columns(
        spread=(pl.col("grant_p95") - pl.col("grant_p5")) / pl.col("grant_median").abs()).sort(
        "spread", descending=True, nulls_last=True).head(10)
    t = Table(title=f"Range of grants across the scenarios, {last} (cash): the ten areas whose grant varies most")
    for c in ["area", "lowest", "5th percentile", "median", "95th percentile", "highest", "p5 to p95, % of median"]:
        t.add_column(c, justify="left" if c == "area" else "right")
    for r in widest.iter_rows(named=True):
        t.add_row(f"{r['area_name']} ({r['area_code']})", *(f"{gbp(r[f'grant_{k}'] / 1e6, 1)}m"
                                                             for k in ("min", "p5", "median", "p95", "max")),
                  f"{r['spread']:.2%}")
    out.print(t)
    from fundform.base.numeric import number

    total = res.scenarios["total_grant_last_year"]
    out.print(f"Total grant in {last} across the scenarios: {gbp_bn(number(total.min()) * 100)} to "
              f"{gbp_bn(number(total.max()) * 100)} (median {gbp_bn(number(total.median()) * 100)}); every area's "
              "range is in sweep.parquet")
    out.print(f"sweep written to {target}")


@app.command()
def design(
    file: Annotated[str, typer.Argument(help="A design file (TOML: the version, free numbers with ranges, "
                                        "constraints, objectives; docs/design.md), or the name of one in "
                                        "formulas/designs/.")],
    level: LevelOpt = None,
    start_year: StartYearOpt = None,
    years: YearsOpt = None,
    config: ConfigOpt = None,
    data: DataOpt = None,
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="Folder to write. [default: out/design-HASH]",
                                                    show_default=False)] = None,
    executor: ExecutorOpt = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Which numbers of a version meet these constraints: candidates drawn over the free numbers' ranges (seeded
    Sobol draws, then differential evolution from the best) and settled exactly on the scenario axis; the best feasible one (or,
    when none is, the constraint that binds and by how much), verified by an exact run; what relaxing each
    constraint buys; the frontier between two objectives and the feasible region. Writes points, frontier and
    region (Parquet), design.json, report.html, a scenario.toml that reproduces the choice, and manifest.json.
    Exit 0 whether or not the constraints can be met.

    Over 80 lines: the command's output is its tables, printed in the order the answer reads."""
    from rich.table import Table

    from fundform.interfaces.api import design as run_design

    with progress_bar("design", quiet or json_out) as status:
        r = run_design(file, out=out_dir, write=True, progress=status, executor=executor, data=data, level=level,
                       start_year=start_year, years=years, config=config)
    if json_out:
        out.print_json(json.dumps({"out_dir": str(r.out_dir), "design_id": r.manifest["design_id"],
                                   "feasible": r.feasible, "chosen": r.chosen, "binding": r.binding,
                                   "relaxed": r.relaxed, "verified": r.verified,
                                   "candidates": r.points.height, "search": r.search}, default=str))
        return
    if quiet:
        return
    n = r.points.height
    if r.feasible:
        out.print(f"[bold]{escape(r.spec.title)}[/bold]\nThe constraints can be met: the best of {n:,} candidates "
                  f"on {escape(r.spec.objectives[0].name)}:")
    else:
        from fundform.outputs.design_report import binding_words

        b = present(r.binding, "the constraint that binds")  # an infeasible design names one
        out.print(f"[bold]{escape(r.spec.title)}[/bold]\nNo candidate of {n:,} meets every constraint. "
                  + binding_words(b, lambda x: f"{x:.6g}"))
    t = Table(title="Free numbers")
    for c in ["number", "as shipped", "chosen", "range searched"]:
        t.add_column(c, justify="left" if c == "number" else "right")
    for name in r.names:
        lo, hi = r.spec.free[name]
        t.add_row(name, f"{r.shipped['free'][name]:.6g}", f"{r.chosen['free'][name]:.6g}", f"{lo:.6g} to {hi:.6g}")
    out.print(t)
    if r.search.get("tolerance"):
        from fundform.outputs.design_report import search_words

        out.print(search_words(r.search))
    t = Table(title="Constraints, on the exact run of the chosen numbers")
    for c in ["constraint", "as shipped", "chosen", "limit", "holds"]:
        t.add_column(c, justify="left" if c == "constraint" else "right")
    for c, s0 in zip(r.verified["constraints"], r.shipped["constraints"]):
        t.add_row(c["constraint"], f"{s0['value']:.6g}", f"{c['value']:.6g}", f"{c['limit']:.6g}",
                  "yes" if c["holds"] else "no")
    out.print(t)
    t = Table(title=f"What dropping one constraint buys ({r.spec.objectives[0].name})")
    for c in ["constraint dropped", "with every constraint", "without it"]:
        t.add_column(c, justify="left" if c == "constraint dropped" else "right")
    fmt = lambda v: "none" if v is None else f"{v:.6g}"
    for x in r.relaxed:
        t.add_row(x["constraint"], fmt(x["with_it"]), fmt(x["without_it"]))
    out.print(t)
    v = r.verified
    out.print(("Verified: the exact run's grants equal the candidate's to the penny" if v["grants_equal_to_the_penny"]
               else f"The exact run's grants differ from the candidate's by up to {v['max_grant_difference_pence']}p")
              + f". Reproduce it: fundform run --formula {present(r.out_dir, 'the design folder') / 'scenario.toml'}")
    if "across_draws" in v:  # a robust design: the chosen numbers run exactly over every draw of the inputs
        a = v["across_draws"]
        for c in a["constraints"]:
            out.print(f"Over {a['draws']:,} draws of the inputs, run exactly: \"{escape(c['constraint'])}\" holds in "
                      f"{c['share_of_draws_holding']:.0%} of them (required: {c['probability']:.0%}): "
                      f"{'holds' if c['holds'] else 'does not hold'}")
    out.print(f"design written to {r.out_dir} (report.html)")


@app.command()
def levels(
    area: Annotated[str, typer.Argument(help="A receiving body at --level, e.g. E47000001 (Greater Manchester).")],
    level: Annotated[str, typer.Option(help="The receiving body's level: ca, utla, icb, region, nhs-region or "
                                       "deal:FILE.csv.")] = "ca",
    formula: FormulaOpt = None,
    start_year: StartYearOpt = None,
    years: YearsOpt = None,
    set_: SetOpt = None,
    index: IndexOpt = None,
    config: ConfigOpt = None,
    data: DataOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """The comparison of levels: a body's grant computed for it as one area (transition from its own baseline)
    against the sum of its members' grants computed authority by authority. Need adds up exactly; the transition,
    applied to the body that receives the money, need not."""
    from rich.table import Table

    from fundform.formula.scenario import resolve_formula
    from fundform.studies.levels import compare_levels
    from fundform.studies.runs import checked_dataset

    s, params, index_files = setup_options(formula, data, level, start_year, years, config, set_, index)
    name, members, rows = compare_levels(checked_dataset(s.data_dir), resolve_formula(
        s.formula, tuple(set_ or ()), index_files=index_files), area, level, params.start_year, years=params.years)
    if json_out:
        out.print_json(json.dumps({"area": area, "members": members, "years": rows.to_dicts()}, default=str))
        return
    t = Table(title=f"{name} ({area}): as one body, and as the sum of its {len(members)} members (pounds)")
    for c in ["year", "need-weighted pop.", "members", "target", "members' targets", "grant", "members' grants"]:
        t.add_column(c, justify="right")
    for r in rows.iter_rows(named=True):
        t.add_row(r["financial_year"], f"{r['need_weighted_population']:,.0f}",
                  f"{r['need_weighted_population_members']:,.0f}", gbp_pence(r["target_allocation"]),
                  gbp_pence(r["target_allocation_members"]), gbp_pence(r["grant"]), gbp_pence(r["grant_members"]))
    out.print(t)


@app.command()
def cases(
    folder: Annotated[Optional[Path], typer.Argument(help="A folder of policy case files (TOML), or one file. "
                                                      "[default: the project's cases/]", show_default=False)] = None,
    json_out: JsonOpt = False,
) -> None:
    """Run policy cases written as data (docs/cases.md): each file states inputs, a rule or a version, and the
    figures it must give with a tolerance and their source. Exit 1 naming every figure that does not hold."""
    import json as _json

    from rich.table import Table

    from fundform.base.errors import FundformError
    from fundform.base.paths import PROJECT_ROOT
    from fundform.studies.cases import case_files, check_case, load_case

    where = folder or PROJECT_ROOT / "cases"
    files = [where] if where.is_file() else case_files(where)
    if not files:
        raise FundformError(f"{where}: no policy case files (*.toml) there")
    results = [(f, load_case(f)) for f in files]
    outcome = [(f, c, check_case(c)) for f, c in results]
    failed = [(f, c, p) for f, c, p in outcome if p]
    if json_out:
        out.print_json(_json.dumps([{"case": f.name, "title": c.title, "holds": not p, "problems": p}
                                    for f, c, p in outcome]))
    else:
        t = Table(title=f"Policy cases in {escape(str(where))}: {len(outcome) - len(failed)} of {len(outcome)} hold")
        for col in ("case", "title", "holds"):
            t.add_column(col)
        for f, c, p in outcome:
            t.add_row(escape(f.name), escape(c.title), "yes" if not p else "[red]no[/red]: " + escape("; ".join(p)))
        out.print(t)
    if failed:
        raise typer.Exit(1)
