"""fundform compare, explain and report: a run's results read: winners and losers, one area's grant step by step,
the HTML report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.markup import escape

from fundform.base.errors import FundformError
from fundform.interfaces.cli.common import (
    ConfigOpt,
    DataOpt,
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
    write_report,
)
from fundform.outputs.text import gbp, gbp_bn, gbp_m, gbp_pence

if TYPE_CHECKING:
    import polars as pl

    from fundform.interfaces.api import Run


@app.command("compare")
def compare_cmd(
    a: Annotated[str, typer.Argument(help="A run (folder or id), or a formula id or scenario file to run now.")],
    b: Annotated[str, typer.Argument(help="The same, for the other side.")],
    level: LevelOpt = None,
    start_year: StartYearOpt = None,
    years: YearsOpt = None,
    set_: SetOpt = None,
    index: IndexOpt = None,
    config: ConfigOpt = None,
    data: DataOpt = None,
    out_file: Annotated[Optional[Path], typer.Option("--out", help="Write the comparison as Parquet here. "
                                                     "[default: out/compare-A-B.parquet]", show_default=False)
                        ] = None,
    shares: Annotated[bool, flag("--shares", help="Compare how the pot is split, apart from its size: B's shares "
                                 "of the grant applied to A's total (gains equal losses).")] = False,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Who gains and who loses between two runs, versions or scenarios: per area and year the change in grant, per
    head and in percent; winners and losers counted and summed; the biggest movers; the change by deprivation
    decile."""
    import polars as pl
    from rich.table import Table

    from fundform.interfaces.api import comparison
    from fundform.outputs.schema import COMPARE
    from fundform.outputs.write import atomic_write_file, to_arrow

    c = comparison(a, b, data=data, level=level, start_year=start_year, years=years, set=list(set_ or ()),
                   index=parse_index_files(index), config=config)
    table, per = c.table, c.per  # per: side A's population, per resident or per registered patient
    summ, dec = (c.split_summary, c.split_by_decile) if shares else (c.summary, c.by_decile)
    change = "change_in_split" if shares else "change"
    safe = lambda x: Path(x).stem.replace("/", "-")
    target = out_file or current_settings().out_root / f"compare-{safe(a)}-{safe(b)}.parquet"
    atomic_write_file(target, to_arrow(table, COMPARE, None, {"a": a, "b": b}), "comparison")
    if quiet:
        return
    last = str(table["financial_year"].max())
    movers = table.filter(pl.col("financial_year") == last).with_columns(
        moved=pl.col(change), moved_per_head=(pl.col(change) / pl.col("population")).round(0)).sort("moved_per_head")
    if json_out:
        out.print_json(json.dumps({"a": a, "b": b, "out": str(target), "measure": change, "per": per,
                                   "summary": summ.to_dicts(),
                                   "deciles": dec.to_dicts(),
                                   "biggest_gains": movers.tail(5).reverse().to_dicts(),
                                   "biggest_losses": movers.head(5).to_dicts()}, default=str))
        return
    what = ("how the pot is split: B's shares of the grant applied to A's total" if shares else
            "the grant in cash, B against A (the pot's size and its split)")
    t = Table(title=f"{a} -> {b}: who gains and who loses, {what}")
    for heading in ["year", "areas gaining", "total gained", "areas losing", "total lost", "change in the total"]:
        t.add_column(heading, justify="right")
    for r in summ.iter_rows(named=True):
        t.add_row(r["financial_year"], str(r["winners"]), gbp_bn(r['gains']), str(r["losers"]),
                  gbp_bn(r['losses']), gbp_bn(r['change_in_total']))
    out.print(t)
    t = Table(title=f"Change {per} by deprivation decile, {last} (1 = most deprived; {what})")
    for c_ in ["decile", "areas", f"change {per}"]:
        t.add_column(c_, justify="right")
    for r in dec.filter(pl.col("financial_year") == last).iter_rows(named=True):
        t.add_row(str(r["imd_decile"]), str(r["areas"]), gbp(r['change_per_head']))
    unscored = table.filter((pl.col("financial_year") == last) & pl.col("imd_decile").is_null()).height
    if unscored:
        t.caption = f"{unscored} area(s) have no deprivation score in the dataset and are not in this table"
    out.print(t)
    for title, frame in [(f"Biggest gains {per}", movers.tail(5).reverse()), (f"Biggest losses {per}",
                                                                               movers.head(5))]:
        t = Table(title=f"{title}, {last} ({what})")
        for c_ in ["area", f"change {per}", "change", "change, % of A's grant"]:
            t.add_column(c_, justify="left" if c_ == "area" else "right")
        for r in frame.iter_rows(named=True):
            t.add_row(f"{r['area_name']} ({r['area_code']})", gbp_pence(r['moved_per_head']), gbp_m(r["moved"]),
                      f"{r['moved'] / abs(r['grant_a']) * 100:+.2f}%" if r["grant_a"] else "n/a")
        out.print(t)
    out.print(f"comparison written to {target}")


@app.command()
def explain(
    area: Annotated[str, typer.Argument(help="Area code (or a unique part of its name).")],
    run_ref: Annotated[Optional[str], typer.Option("--run", help="A run's folder or id. Without it, the formula is "
                                                   "run now.")] = None,
    formula: FormulaOpt = None,
    level: LevelOpt = None,
    start_year: StartYearOpt = None,
    years: YearsOpt = None,
    set_: SetOpt = None,
    index: IndexOpt = None,
    config: ConfigOpt = None,
    year: Annotated[Optional[str], typer.Option(help="One financial year, or 'all'. [default: the first]",
                                                show_default=False)] = None,
    data: DataOpt = None,
    uncertainty: Annotated[Optional[Path], typer.Option("--uncertainty", help="An uncertainty file: also say how "
                                                        "sure the grant is and which input moves it most "
                                                        "(a --run written with --uncertainty says so too).",
                                                        show_default=False)] = None,
    json_out: JsonOpt = False,
) -> None:
    """The waterfall of one area's grant: an equal share per head, what age adds, what each need indicator adds,
    the transition (floor, ceiling, convergence), the local tax deduction, to the grant, to the penny; and, with
    uncertainty, the grant's range over the draws of the inputs and the inputs that move it most.

    Over 80 lines: its tables are printed in the order an area's explanation reads (waterfall, bridge, letter,
    years)."""
    import polars as pl
    from rich.table import Table

    from fundform.interfaces import api
    from fundform.outputs.letter import TOTAL, letter, line_columns, titles_of

    if run_ref:
        r = api.Run.load(run_ref)
    else:
        r = api.run(formula, data=data, level=level, start_year=start_year, years=years, set=list(set_ or ()),
                    index=parse_index_files(index), config=config, uncertainty=uncertainty)
    pence = lambda f, cols: f.with_columns((pl.col(cols) * 100).cast(pl.Int64))  # (exact pence)
    letter_of = letter(r.streams, titles_of(r.manifest))  # the allocation letter's lines, where streams are
    match = pence(api.explain(r, area, data), ["amount", "cumulative"])
    alloc = pence(r.allocations, ["target_allocation", "allocation"])
    chosen = year or match["financial_year"].min()
    if chosen != "all":
        match = match.filter(pl.col("financial_year") == chosen)
        if match.height == 0:
            raise FundformError(f"no year {chosen} in the run")
    if json_out:
        # pounds from whole pence by a correctly rounded division (x / 100 in Python, not x * 0.01)
        rows = [{**{k: v for k, v in r.items() if k not in ("amount", "cumulative")},
                 "amount_gbp": int(r["amount"]) / 100, "cumulative_gbp": int(r["cumulative"]) / 100}
                for r in match.to_dicts()]
        out.print_json(json.dumps(rows))
        return
    alloc = alloc.with_columns((pl.col(c) * 100).cast(pl.Int64) for c in (
        "todays_funding", "baseline", "guarantee_payment", "notional_local_tax", "negative_grant_adjustment", "grant"))
    quiet_steps = {"guarantee payment", "local tax deduction", "negative-grant rule"}  # shown where they move money
    nhs = r.tables.get("letter")
    if nhs is not None and nhs.height:  # an NHS allocation: told as NHS England's letter, line by line
        for (fy,), part in match.group_by("financial_year", maintain_order=True):
            _explain_letter(nhs, part["area_code"][0], part["area_name"][0], fy)
            if "uncertainty" in r.tables:
                _explain_uncertainty(r, part["area_code"][0], fy)
        return
    for (fy,), part in match.group_by("financial_year", maintain_order=True):
        t = Table(title=f"{part['area_name'][0]} ({part['area_code'][0]}), {fy}: the grant built from an equal "
                        "share per head (cash)")
        for c in ["step", "adds", "running total"]:
            t.add_column(c, justify="left" if c == "step" else "right")
        for s in part.sort("step_order").iter_rows(named=True):
            if s["step"] in quiet_steps and s["amount"] == 0:
                continue
            t.add_row(s["step"], gbp_pence(s['amount']), gbp_pence(s['cumulative']))
        t.add_row("[bold]grant[/bold]", "", f"[bold]{gbp_pence(part['cumulative'][-1])}[/bold]")
        out.print(t)
        a = alloc.filter((pl.col("area_code") == part["area_code"][0]) & (pl.col("financial_year") == fy)).row(
            0, named=True)
        cash = a["todays_funding"]  # today's funding in cash (None where the version's data holds none)
        t = Table(title=f"The same grant from today's funding: {'in cash, then ' if cash is not None else ''}"
                        f"today's funding uprated to {fy}, then what the formula changes (cash)")
        for c in ["step", "adds", "running total"]:
            t.add_column(c, justify="left" if c == "step" else "right")
        start = ([("today's funding (cash)", cash), (f"today's funding, uprated to {fy}: the total's growth",
                                                     a["baseline"] - cash)]
                 if cash is not None else [("today's funding, uprated", a["baseline"])])
        bridge = [*start, ("need: target against it", a["target_allocation"] - a["baseline"]),
                  ("transition", a["allocation"] - a["target_allocation"]),
                  ("guarantee payment", a["guarantee_payment"]), ("local tax deduction", -a["notional_local_tax"]),
                  ("negative-grant rule", a["negative_grant_adjustment"])]
        running = 0
        for name, amount in bridge:
            running += amount
            if name in quiet_steps and amount == 0:
                continue
            t.add_row(name, gbp_pence(amount), gbp_pence(running))
        t.add_row("[bold]grant[/bold]", "", f"[bold]{gbp_pence(running)}[/bold]")
        out.print(t)
        if "uncertainty" in r.tables:
            _explain_uncertainty(r, part["area_code"][0], fy)
        lines = None if letter_of is None else letter_of.filter(
            (pl.col("area_code") == part["area_code"][0]) & (pl.col("financial_year") == fy))
        if lines is not None and lines.height:
            t = Table(title=f"The allocation letter's lines, {fy}: each stream's allocation (cash)")
            for c in ["stream", "allocation", "share of the allocation"]:
                t.add_column(c, justify="left" if c == "stream" else "right")
            row = lines.row(0, named=True)
            for c in line_columns(lines):
                t.add_row(c, gbp_pence(row[c]), f"{row[c] / row[TOTAL]:.2%}" if row[TOTAL] else "")
            t.add_row(f"[bold]{TOTAL}[/bold]", f"[bold]{gbp_pence(row[TOTAL])}[/bold]", "")
            out.print(t)
    path = alloc.filter(pl.col("area_code") == match["area_code"][0]).sort("financial_year").with_columns(
        (pl.col("grant_real") * 100).cast(pl.Int64))
    if path.height > 1:  # the area's own settlement, year by year: why its share moves, and what it gets
        pb = r.manifest["parameters"].get("price_base_year") or path["financial_year"][0]
        t = Table(title="Year by year: population, need share and target (cash)")
        for c in ["year", "population", f"population growth since {path['financial_year'][0]}", "target share",
                  "target", "allocation", "allocation's distance from target"]:
            t.add_column(c, justify="right")
        p0 = path["population"][0]
        for x in path.iter_rows(named=True):
            t.add_row(x["financial_year"], f"{x['population']:,.0f}", f"{x['population'] / p0 - 1:+.2%}",
                      f"{x['target_share']:.5%}", gbp_pence(x["target_allocation"]), gbp_pence(x["allocation"]),
                      f"{x['distance_from_target']:+.2%}")
        out.print(t)
        # the area's own settlement: what it gets each year, in cash and in real terms
        t = Table(title=f"{path['area_name'][0]} ({path['area_code'][0]}), year by year: allocation and grant "
                        f"(cash; real terms at {pb} prices)")
        cash = path["todays_funding"].null_count() == 0
        for c in ["year", *(["today's funding (cash)"] if cash else []), "allocation", "held at", "grant",
                  f"grant, {pb} prices", "real change on the year before"]:
            t.add_column(c, justify="right")
        before = None
        for x in path.iter_rows(named=True):
            t.add_row(x["financial_year"], *([gbp_pence(x["todays_funding"])] if cash else []),
                      gbp_pence(x["allocation"]),
                      {"none": "", "streams": "some streams"}.get(x["transition_bound"], x["transition_bound"]),
                      gbp_pence(x["grant"]), gbp_pence(x["grant_real"]),
                      "" if not before else f"{x['grant_real'] / before - 1:+.2%}")
            before = x["grant_real"]
        out.print(t)


def _explain_letter(letter_rows: pl.DataFrame, code: str, name: str, fy: str) -> None:
    """One ICB's allocation in a year as NHS England's letter states it: each line's baseline, base growth,
    convergence and recurrent allocation, NHS England's published allocation beside fundform's and the difference."""
    import polars as pl
    from rich.table import Table

    from fundform.base.years import year_before

    rows = letter_rows.filter((pl.col("area_code") == code) & (pl.col("financial_year") == fy))
    if not rows.height:
        return
    pence = rows.with_columns((pl.col(c) * 100).cast(pl.Int64) for c in (
        "baseline", "allocation", "published_allocation", "difference", "target_allocation"))
    prev = year_before(fy)
    t = Table(title=f"{name} ({code}), recurrent allocation {fy}, line by line as NHS England's allocation letter "
                    f"states it. Baseline: the {prev} allocation as the round restates it; allocations {fy}; cash, "
                    "GBP thousand, the difference in pounds; distance from target after convergence (no target: the "
                    "line has none, its sheet publishing none and its rule converging toward none)")
    k = lambda x: f"{x / 100_000:,.1f}"  # (pence shown in thousands of pounds, as the letter's)
    heads = ["line", "baseline", "base growth", "convergence", "allocation, fundform", "allocation, NHS England",
             "difference", "distance from target"]
    for h in heads:
        t.add_column(h, justify="left" if h == "line" else "right", no_wrap=h == "line")
    pct = lambda x: "" if x is None else f"{x:+.2%}".replace("-0.00%", "0.00%").replace("+0.00%", "0.00%")
    for x in pence.iter_rows(named=True):
        t.add_row(x["line"], k(x["baseline"]), pct(x["base_growth"]),
                  pct(x["convergence"]) if x["convergence"] is not None else "none",
                  k(x["allocation"]), "not published" if x["published_allocation"] is None
                  else k(x["published_allocation"]),
                  "" if x["difference"] is None else f"{gbp_pence(x['difference'])} ({x['difference_share']:+.4%})",
                  "no target" if x["distance_from_target"] is None else pct(x["distance_from_target"]))
    total = pence.select(pl.col("baseline", "allocation").sum(), published=pl.col("published_allocation").sum()
                         if pence["published_allocation"].null_count() == 0 else pl.lit(None, pl.Int64))
    b, a, p = total.row(0)
    t.add_row("[bold]allocation (sum of the lines)[/bold]", f"[bold]{k(b)}[/bold]", f"{a / b - 1:+.2%}", "",
              f"[bold]{k(a)}[/bold]", "" if p is None else f"[bold]{k(p)}[/bold]",
              "" if p is None else f"{gbp_pence(a - p)} ({(a - p) / p:+.4%})", "")
    out.print(t)
    grown = float((pence["baseline"].cast(pl.Float64) * (1 + pence["base_growth"])).sum())
    out.print(f"Base growth takes the baseline of {gbp_pence(b)} to {gbp_pence(round(grown))}; convergence then "
              f"moves it by {gbp_pence(a - round(grown))} to the allocation (NHS England's rounds are not budget "
              "neutral: convergence adds or takes money beyond the base growth).")


@app.command()
def report(
    run_ref: Annotated[str, typer.Argument(metavar="RUN", help="A run's output folder or its id.")],
    out_file: Annotated[Optional[Path], typer.Option("--out", help="HTML file. [default: the run folder/report.html]",
                                                     show_default=False)] = None,
    compare_with: Annotated[Optional[str], typer.Option("--compare", help="Another run (folder or id) to show "
                                                        "winners and losers against.")] = None,
    area: Annotated[Optional[str], typer.Option(help="Area code for the waterfall chart. [default: the biggest "
                                                "gainer]", show_default=False)] = None,
    sweep_dir: Annotated[Optional[Path], typer.Option("--sweep", help="A sweep's output folder to chart beside the "
                                                      "run (same formula and level).")] = None,
    data: DataOpt = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Write a self-contained HTML report of a run: headline numbers, maps of England at the run's level (geographic
    and hex cartogram), charts (inline SVG, works offline, printable) and a sortable, filterable table of areas."""
    target = write_report(run_ref, out_file, compare_with, area, data, quiet=quiet or json_out, sweep_dir=sweep_dir)
    if json_out:
        out.print_json(json.dumps({"run": run_ref, "report": str(target)}))


def _explain_uncertainty(r: Run, code: str, fy: str) -> None:
    """How sure an area's grant is: its range over the draws of the inputs, and each input's share of it."""
    import polars as pl
    from rich.table import Table

    u = r.uncertainty.filter((pl.col("area_code") == code) & (pl.col("financial_year") == fy)).with_columns(
        pl.col(pl.Decimal).cast(pl.Float64))
    if u.height == 0:
        return
    row = u.row(0, named=True)
    draws = r.manifest.get("uncertainty", {}).get("draws", 0)
    t = Table(title=f"How sure, {fy}: the grant over {draws:,} draws of the inputs (cash)")
    for c in ("figure", "value"):
        t.add_column(c, justify="left" if c == "figure" else "right")
    t.add_row("grant, central (this run)", gbp(row["grant_central"]))
    t.add_row("grant, 5th to 95th percentile", f"{gbp(row['grant_p5'])} to {gbp(row['grant_p95'])}")
    t.add_row("grant, median", gbp(row["grant_p50"]))
    t.add_row("held at a floor (share of draws)", f"{row['p_floor']:.0%}")
    t.add_row("rank by grant per resident (5th to 95th percentile)", f"{row['rank_p5']} to {row['rank_p95']}")
    out.print(t)
    s = r.sensitivity.filter((pl.col("area_code") == code) & (pl.col("financial_year") == fy)).sort(
        "share_of_variance", descending=True)
    t = Table(title="Which input's uncertainty matters: each input's share of the allocation's variance over the "
                    "draws (the shares add to 1)")
    for c in ("input", "share of the variance", "Monte Carlo standard error"):
        t.add_column(c, justify="left" if c == "input" else "right")
    for inp, share, se in s.select("input", "share_of_variance", "share_se").iter_rows():
        t.add_row(escape(inp), f"{share:.1%}", "" if se is None or se != se else f"{se:.1%}")
    out.print(t)
    if row.get("borrowed_inputs"):
        out.print(f"Rests on borrowed values: {escape(row['borrowed_inputs'])} (drawn with the borrowing's own "
                  "spread: the run's manifest, uncertainty.sources)")
