"""What a person sees after a run: totals per year, who gains and loses most per head, where the output went."""

from __future__ import annotations

import polars as pl
from rich.console import Console
from rich.table import Table

from fundform.engine.results import RunResult
from fundform.outputs import text
from fundform.outputs.text import gbp, gbp_bn


def movers(result: RunResult, n: int = 5) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Final year: change from today's funding (uprated) per head, largest gains and losses."""
    last = result.allocations.filter(pl.col("year_index") == pl.col("year_index").max())
    ranked = last.with_columns(
        change_per_head=(pl.col("allocation") - pl.col("baseline")) / pl.col("population") / 100,
        change_pct=(pl.col("allocation") - pl.col("baseline")) / pl.col("baseline") * 100,
        cash_pct=(pl.col("allocation") - pl.col("todays_funding")) / pl.col("todays_funding") * 100,
    ).sort("change_per_head", "area_code")
    return ranked.tail(n).reverse(), ranked.head(n)


def population_words(result: RunResult) -> tuple[str, str]:
    """Whom the run counts ("registered patients", "per registered patient" or residents): outputs.text."""
    return text.population_words(result.need)


def print_summary(result: RunResult, console: Console) -> None:
    a = result.allocations
    m = result.manifest
    people, per = population_words(result)
    per_year = a.group_by("financial_year", maintain_order=True).agg(
        pl.col("control_total").first(), pl.col("allocation").sum(), pl.col("notional_local_tax").sum(),
        pl.col("grant").sum(), pl.col("grant_real").sum(), at_floor=(pl.col("transition_bound") == "floor").sum(),
        at_ceiling=(pl.col("transition_bound") == "ceiling").sum(), residents=pl.col("population").sum(),
    )
    words = text.run_words(m)
    nhs = words["kind"] == "nhs_allocation"
    of = f" (a scenario of {words['version']})" if words["name"] != m["formula"]["id"] else f" {m['formula']['version']}"
    t = Table(title=f"{words['name']}{of} · {a['area_level'][0]} · {a['area_code'].n_unique()} areas · run "
                    f"{m['run_id']}" + (f"\n{words['title']}" if words["title"] else ""))
    pb = m["parameters"]["price_base_year"]
    if nhs:  # an NHS allocation: its lines' total, and what convergence gave beyond base growth (not budget neutral)
        for col in ["year", people, "baselines grown by base growth", "recurrent allocation",
                    "convergence beyond base growth", f"allocation, {pb} prices"]:
            t.add_column(col, justify="right")
        for r in per_year.iter_rows(named=True):
            t.add_row(r["financial_year"], f"{r['residents'] / 1e6:,.2f}m", gbp_bn(r["control_total"]),
                      gbp_bn(r["allocation"]), gbp_bn(r["allocation"] - r["control_total"]), gbp_bn(r["grant_real"]))
    else:
        for col in ["year", people, "control total", "allocated", "notional tax", "grant", f"grant, {pb} prices",
                    "at floor", "at ceiling"]:
            t.add_column(col, justify="right")
        for r in per_year.iter_rows(named=True):
            t.add_row(r["financial_year"], f"{r['residents'] / 1e6:,.2f}m", gbp_bn(r["control_total"]),
                      gbp_bn(r["allocation"]),
                      gbp_bn(r["notional_local_tax"]), gbp_bn(r["grant"]), gbp_bn(r["grant_real"]),
                      str(r["at_floor"]), str(r["at_ceiling"]))
    console.print(t)
    print_streams(result, console)
    gain, lose = movers(result)
    year = str(a["financial_year"].max())
    against = ("allocation against the baseline grown by base growth" if nhs else
               "allocation against today's funding uprated")
    cash = a["todays_funding"].null_count() == 0  # today's funding in cash known: the cash change beside it
    for title, frame in [(f"Biggest gainers {per}, {year} ({against})", gain),
                         (f"Biggest losers {per}, {year} ({against})", lose)]:
        mt = Table(title=title)
        for col in ["area", "code", "need index", f"change {per}",
                    "change, % of the baseline grown" if nhs else "change, % of today's funding uprated",
                    *((["change, % of the baseline (cash)"] if nhs else ["change, % of today's funding in cash"])
                      if cash else [])]:
            mt.add_column(col, justify="left" if col in ("area", "code") else "right")
        for r in frame.iter_rows(named=True):
            mt.add_row(r["area_name"], r["area_code"], f"{r['need_index']:.3f}", gbp(r['change_per_head']),
                       f"{r['change_pct']:+.2f}%", *([f"{r['cash_pct']:+.2f}%"] if cash else []))
        console.print(mt)
    if result.out_dir:
        files = ", ".join(sorted(p.name for p in result.out_dir.iterdir()))
        console.print(f"Outputs written to [bold]{result.out_dir}[/bold] ({files})")


def stream_totals(result: RunResult) -> pl.DataFrame:
    """Each stream the run pooled, per year: its title, control total and allocation (pence); the pool is their
    sum (the reconciliation checks it to the penny). Empty for a version of one pool without streams."""
    st = result.tables.get("streams")
    if st is None or st.is_empty() or st["stream"].unique().to_list() == ["all"]:
        return pl.DataFrame()
    titles = result.manifest.get("policies", {}).get("stream_titles", {})
    return st.group_by("stream", "financial_year", maintain_order=True).agg(
        pl.col("control_total").first(), pl.col("allocation").sum()).with_columns(
        title=pl.col("stream").replace_strict(titles, default=pl.col("stream")))


def print_streams(result: RunResult, console: Console) -> None:
    """The streams pooled, so a stream a scenario added or dropped is seen, not inferred from a total."""
    totals = stream_totals(result)
    if totals.is_empty():
        return
    years = totals["financial_year"].unique(maintain_order=True).to_list()
    t = Table(title=f"Streams pooled ({totals['stream'].n_unique()}): allocation per year, cash")
    t.add_column("stream", justify="left")
    for y in years:
        t.add_column(y, justify="right")
    for (name, title), rows in totals.group_by("stream", "title", maintain_order=True):
        by_year = dict(zip(rows["financial_year"], rows["allocation"]))
        t.add_row(f"{title} ({name})", *[gbp_bn(by_year[y]) if y in by_year else "" for y in years])
    console.print(t)


def print_bands(result: RunResult, console: Console, n: int = 8) -> None:
    """A run with --uncertainty: in the last year, the areas whose grant is least certain (the widest 5-95% range
    against their central grant), with the input that moves each most."""
    u = result.uncertainty
    if u is None:
        return
    b = u.bands.filter(pl.col("year_index") == pl.col("year_index").max()).with_columns(
        width=(pl.col("grant_p95") - pl.col("grant_p5")) / pl.col("grant_central").abs())
    year = b["financial_year"][0]
    t = Table(title=f"{u.draws.size:,} draws of the inputs: the {n} areas whose {year} grant (cash) is least certain "
                    "(widest 5th-95th percentile range against the central grant)")
    for c in ("area", "central grant", "5th percentile", "95th percentile", "range", "moved most by"):
        t.add_column(c, justify="left" if c in ("area", "moved most by") else "right")
    for r in b.sort("width", descending=True).head(n).iter_rows(named=True):
        t.add_row(r["area_name"], gbp(r["grant_central"] / 100, 0), gbp(r["grant_p5"] / 100, 0),
                  gbp(r["grant_p95"] / 100, 0), f"{r['width']:.2%}",
                  f"{r['most_sensitive_input']} ({r['most_sensitive_share']:.0%} of the variance)"
                  + (" *" if r["borrowed_inputs"] else "") if r["most_sensitive_input"] else "")
    console.print(t)
    console.print(f"the range of every area and year: uncertainty.parquet; by source: sensitivity.parquet "
                  f"({result.out_dir})")
