"""A report a person would read: one self-contained HTML page per run, charts drawn as inline SVG.

Nothing is fetched from the network: no scripts, fonts or styles from elsewhere. The page's one small script only
checks that the charts are present and marks the page as rendered (the headless-browser test reads that mark).
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from fundform.base.failpoints import failpoint
from fundform.base.numeric import number
from fundform.outputs.charts import bands, bars, histograms, lines, ranges, scatter
from fundform.outputs.text import gbp, population_words, run_words

CSS = """.scroll{overflow-x:auto;max-width:100%}body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2rem auto;max-width:1340px;
color:#222;padding:0 1rem}h1{font-size:1.6rem}h2{font-size:1.2rem;margin-top:2rem}.cards{display:flex;gap:1rem;
flex-wrap:wrap}.card{border:1px solid #ccd;border-radius:6px;padding:.6rem 1rem;min-width:180px}.card b{display:block;
font-size:1.3rem}.charts{display:grid;grid-template-columns:repeat(2,minmax(0,1fr));gap:1rem}
figure{margin:0;border:1px solid #e3e3ea;border-radius:6px;min-width:0}svg.chart{width:100%;height:auto;display:block}
@media (max-width:760px){.charts{grid-template-columns:minmax(0,1fr)}body{padding:0 .5rem;margin:1rem auto}
figure{overflow-x:auto}svg.chart{min-width:560px}
table{font-size:.75rem}.card{min-width:140px}}th{cursor:pointer}th.asc:after{content:" \\25B2"}
th.desc:after{content:" \\25BC"}.filter input{font:inherit;padding:2px 6px}
@media print{.filter{display:none}body{max-width:none;margin:0}.charts{grid-template-columns:1fr 1fr}
figure{break-inside:avoid}th{position:static}}
svg .t{font-size:14px;font-weight:600}svg .l{font-size:12px;fill:#444}svg .k{font-size:10px;fill:#555}
svg .g{stroke:#eee}table{border-collapse:collapse;font-size:.85rem;width:100%}th,td{border-bottom:1px solid #eee;
padding:3px 6px;text-align:right}th{background:#f3f5f9;position:sticky;top:0}td:first-child,th:first-child{
text-align:left}.muted{color:#666;font-size:.85rem}"""

CHECK = """<script>
window.onerror=function(m){document.body.dataset.error=String(m);};
document.addEventListener('DOMContentLoaded',function(){
var t=document.getElementById('areas'),tb=t.tBodies[0],f=document.getElementById('filter');
f.addEventListener('input',function(){var q=f.value.toLowerCase();Array.prototype.forEach.call(tb.rows,function(r){
r.style.display=r.cells[0].textContent.toLowerCase().indexOf(q)>=0?'':'none';});});
Array.prototype.forEach.call(t.tHead.rows[0].cells,function(th,i){th.addEventListener('click',function(){
var asc=!th.classList.contains('asc');Array.prototype.forEach.call(t.tHead.rows[0].cells,function(c){
c.classList.remove('asc','desc');});th.classList.add(asc?'asc':'desc');
var rows=Array.prototype.slice.call(tb.rows);rows.sort(function(a,b){var x=a.cells[i],y=b.cells[i];
var u=x.dataset.v,v=y.dataset.v;var d=(u!==undefined&&v!==undefined)?(parseFloat(u)-parseFloat(v)):
x.textContent.localeCompare(y.textContent);return asc?d:-d;});rows.forEach(function(r){tb.appendChild(r);});});});
var n=document.querySelectorAll('svg.chart').length;
var ok=true;document.querySelectorAll('svg.chart').forEach(function(s){if(s.getBBox().width<=0)ok=false;});
var maps={};document.querySelectorAll('svg.mapsvg').forEach(function(s){var a={};
s.querySelectorAll('[data-area]').forEach(function(e){a[e.dataset.area]=1;});maps[s.id]=Object.keys(a).length;});
document.body.dataset.maps=JSON.stringify(maps);document.body.dataset.rows=String(tb.rows.length);
var g=document.querySelector('.charts');document.body.dataset.columns=String(
getComputedStyle(g).gridTemplateColumns.split(' ').length);
if(location.hash==='#selftest'){var ths=t.tHead.rows[0].cells,last=ths[ths.length-1];last.click();last.click();
var v=Array.prototype.map.call(tb.rows,function(r){return parseFloat(r.cells[ths.length-1].dataset.v);});
var desc=v.every(function(x,k){return k===0||v[k-1]>=x;});f.value='lond';f.dispatchEvent(new Event('input'));
var shown=Array.prototype.filter.call(tb.rows,function(r){return r.style.display!=='none';}).length;
document.body.dataset.sorted=desc?'desc':'no';document.body.dataset.filtered=String(shown);}
document.body.dataset.scrollwidth=String(document.documentElement.scrollWidth);document.body.dataset.clientwidth=String(document.documentElement.clientWidth);
document.body.dataset.charts=String(n);if(ok&&n>=5&&!document.body.dataset.error)document.body.dataset.rendered='ok';});
</script>"""


@dataclass(frozen=True, kw_only=True)
class Page:
    """What the report's sections read: the run's files, read once, and the figures several sections share."""

    run_dir: Path
    m: dict[str, Any]  # the run's manifest
    a: pl.DataFrame  # allocations, money as floats (pounds)
    w: pl.DataFrame  # the waterfall
    years: list[str]
    first: pl.DataFrame  # the first year's allocations
    last: pl.DataFrame  # the last year's
    per_year: pl.DataFrame  # totals by year
    pb: str  # the price base year
    people: str  # whom the version counts ("residents", "registered patients")
    per: str  # per one of them ("per resident")
    change: pl.DataFrame  # the last year's allocation against today's funding uprated, per head (ch), sorted
    area_code: str  # the waterfall's area
    words: dict[str, str]  # the run's words (outputs.text.run_words)
    nhs: bool  # an NHS allocation, told in NHS words
    deciles: pl.DataFrame | None
    comparison: pl.DataFrame | None
    sweep_dir: Path | None
    member: dict[str, str] | None


def read_page(run_dir: Path, deciles: pl.DataFrame | None = None, area: str | None = None,
              comparison: pl.DataFrame | None = None, sweep_dir: Path | None = None,
              member: dict[str, str] | None = None) -> Page:
    run_dir = Path(run_dir)
    m = json.loads((run_dir / "manifest.json").read_text())
    a = pl.read_parquet(run_dir / "allocations.parquet").with_columns(
        pl.col(pl.Decimal).cast(pl.Float64))
    w = pl.read_parquet(run_dir / "waterfall.parquet").with_columns(pl.col(pl.Decimal).cast(pl.Float64))
    years = a["financial_year"].unique().sort().to_list()
    first, last = a.filter(pl.col("financial_year") == years[0]), a.filter(pl.col("financial_year") == years[-1])
    per_year = a.group_by("financial_year").agg(pl.col("grant").sum(), pl.col("grant_real").sum(),
                                                pl.col("allocation").sum(), pl.col("population").sum(),
                                                floor=(pl.col("transition_bound") == "floor").sum()).sort(
        "financial_year")
    need_file = run_dir / "need.parquet"
    people, per = population_words(pl.read_parquet(need_file) if need_file.exists() else None)
    change = last.with_columns(ch=(pl.col("allocation") - pl.col("baseline")) / pl.col("population")).sort("ch")
    words = run_words(m)
    return Page(run_dir=run_dir, m=m, a=a, w=w, years=years, first=first, last=last, per_year=per_year,
                pb=m["parameters"]["price_base_year"], people=people, per=per, change=change,
                area_code=area or change["area_code"][-1], words=words, nhs=words["kind"] == "nhs_allocation",
                deciles=deciles, comparison=comparison, sweep_dir=sweep_dir, member=member)


def build_report(run_dir: Path, deciles: pl.DataFrame | None = None, area: str | None = None,
                 comparison: pl.DataFrame | None = None, sweep_dir: Path | None = None,
                 member: dict[str, str] | None = None) -> str:
    """The report's HTML: its sections (SECTIONS, in the order the page shows them) on the run's files read once.
    `member` maps each lower-tier authority to its area at the run's level (for the maps); without it the maps are
    left out with a note."""
    page = read_page(run_dir, deciles, area, comparison, sweep_dir, member)
    return (f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1"><title>fundform run {html.escape(str(page.m['run_id']))}</title>
<style>{CSS}</style></head><body>
""" + "".join(section(page) for section in SECTIONS) + "</body></html>\n")


def _span(p: Page) -> str:
    return p.years[0] if len(p.years) == 1 else f"{p.years[0]} to {p.years[-1]}"


def _heading(p: Page) -> str:
    """The run's name, what its money is, its years, and where it comes from."""
    m, words, f = p.m, p.words, p.m["formula"]
    of_version = f" (a scenario of {words['version']})" if words["name"] != f["id"] else f" ({words['version']})"
    return f"""<h1>{html.escape(words['name'])}: {html.escape(words['money'])}, {html.escape(_span(p))}</h1>
<p>{html.escape(words['title'])}{html.escape(of_version)}</p>
<p class="muted">Run {html.escape(str(m['run_id']))} · formula sha256 {html.escape(str(f['sha256'])[:12])} · level
{html.escape(str(m['parameters']['level']))} ·
{len(m['overrides'])} override(s) · fundform {html.escape(str(m['engine']['version']))} · money in pounds, cash
unless marked; real terms at {html.escape(str(p.pb))} prices.</p>
"""


def _cards(p: Page) -> str:
    """The headline numbers: areas, the money in the first and last years (cash and real terms), whom the version
    counts, floors, areas below today's funding in cash, the reconciliation."""
    first, last, years, a, fig = p.first, p.last, p.years, p.a, p.words["figure"]
    cards = [("areas", f"{first.height:,} ({first['area_level'][0]})"),
             (f"{fig} {years[0]}", f"{gbp(number(first['grant'].sum()) / 1e9)}bn"),
             *([(f"{fig} {years[-1]}", f"{gbp(number(last['grant'].sum()) / 1e9)}bn"),
                (f"{fig} {years[-1]}, {p.pb} prices", f"{gbp(number(last['grant_real'].sum()) / 1e9)}bn")]
               if len(years) > 1 else []),
             (f"{p.people} {years[0]}" + (f" to {years[-1]}" if len(years) > 1 else ""),
              f"{number(first['population'].sum()) / 1e6:,.2f}m" + (f" to {number(last['population'].sum()) / 1e6:,.2f}m"
                                                            if len(years) > 1 else "")),
             *([] if p.nhs and not a["transition_bound"].is_in(["floor"]).any() else
               [("areas at a floor, first year", str(p.per_year["floor"][0]))]),
             ("reconciliation", "all identities hold" if pl.read_parquet(p.run_dir / "reconciliation.parquet")
              ["holds"].all() else "FAILED")]
    if _cash_known(p):
        below = a.filter(pl.col("allocation") < pl.col("todays_funding"))["area_code"].n_unique()
        cards.insert(6, ("areas below their baseline in cash, any year" if p.nhs else
                         "areas below today's funding in cash, any year", str(below)))
    if p.nhs:
        cards.insert(3, _published_card(p.run_dir, years))
    return f"""<div class="cards">{''.join(f'<div class="card">{html.escape(k)}<b>{html.escape(v)}</b></div>' for k, v in cards)}</div>
"""


def _cash_known(p: Page) -> bool:
    """Whether today's funding in cash is known for every area (then shown beside the uprated)."""
    return p.a["todays_funding"].null_count() == 0


def _held_section(p: Page) -> str:
    return _held(p.a, p.years) + "\n"


def _maps_section(p: Page) -> str:
    return _maps(p.first, p.last, p.change, p.member, p.years, p.per) + "\n"


def _charts(p: Page) -> str:
    """The charts, in the page's order: need against grant, distance from target before and after, the path, the
    winners and losers (by decile, against a compared run, or the biggest), the waterfall, a sweep's and the
    draws' ranges, residents by year; the bands' caveats beside them."""
    first, last, years, per, pb, per_year = p.first, p.last, p.years, p.per, p.pb, p.per_year
    wf = p.w.filter((pl.col("area_code") == p.area_code) & (pl.col("financial_year") == years[0])).sort("step_order")
    charts = [
        scatter(first["need_index"], first["grant_per_head"], first["area_name"],
                f"Need index and grant {per}, {years[0]}", "need index (1 = England)", f"grant {per} (£)", "c1"),
        histograms({f"distance from target of today's funding uprated, {years[0]} (before transition)": (
                        (first["baseline"] - first["target_allocation"]) / first["target_allocation"]).to_numpy(),
                    f"allocation's distance from target, {years[-1]} (after transition)":
                        last["distance_from_target"].to_numpy()},
                   "Distance from target, before and after transition", "distance from target (% of target)", "c2"),
        lines(years, {"grant (cash)": per_year["grant"].to_list(), f"grant ({pb} prices)": per_year["grant_real"]
                      .to_list()}, f"The {len(years)}-year path: total grant", "£", "c3"),
        bars(wf["step"].to_list(), wf["amount"].to_list(),
             f"Waterfall: {wf['area_name'][0] if wf.height else p.area_code}, {years[0]}", "step",
             "£ (cash) the step adds", "c5"),
    ]
    if p.nhs:  # an NHS allocation is told by its letter's lines (below), not a grant's waterfall from an equal share
        charts = [c for c in charts if 'id="c5"' not in c]
        charts[2] = lines(years, {"allocation (cash)": per_year["allocation"].to_list(),
                                  f"allocation ({pb} prices)": per_year["grant_real"].to_list()},
                          f"The {len(years)}-year path: total recurrent allocation", "£", "c3")
    charts.insert(3, _movers(p))
    if p.sweep_dir is not None:
        sw = pl.read_parquet(Path(p.sweep_dir) / "sweep.parquet")
        sm = json.loads((Path(p.sweep_dir) / "manifest.json").read_text())
        fin = sw.filter(pl.col("financial_year") == sw["financial_year"].max()).join(
            last.select("area_code", "population"), on="area_code", how="inner")
        charts.append(ranges(_per_head(fin, "grant_p5"), _per_head(fin, "grant_median"), _per_head(fin, "grant_p95"),
                             fin["area_name"].to_list(),
                             f"Sweep of {sm['scenarios']:,} scenarios: grant {per}, 5th to 95th percentile, "
                             f"{fin['financial_year'][0]}", f"grant {per} (£)", "c6"))
    uncertainty = p.run_dir / "uncertainty.parquet"
    band_caveat = ""
    if uncertainty.exists():  # a run with --uncertainty: every area's range over the draws of its inputs
        ub = pl.read_parquet(uncertainty).with_columns(pl.col(pl.Decimal).cast(pl.Float64))
        draws = p.m.get("uncertainty", {}).get("draws")
        fin = ub.filter(pl.col("financial_year") == years[-1]).join(last.select("area_code", "population"),
                                                                    on="area_code", how="inner")
        charts.append(bands(_per_head(fin, "grant_p5"), _per_head(fin, "grant_central"), _per_head(fin, "grant_p95"),
                            fin["area_name"].to_list(),
                            f"Grant {per}, {years[-1]}: 5th-95th percentile of {draws:,} input draws",
                            f"grant {per}", "c8"))
        band_caveat = BAND_CAVEAT
    if len(years) > 1:  # why shares move within the settlement: each year's residents and targets
        charts.append(lines(years, {p.people: per_year["population"].to_list()},
                            f"{p.people.capitalize()} by year (each year's need and targets use that year's)",
                            "persons", "c7", fmt=lambda v: f"{v:,.0f}"))
    return f"""<h2>Charts</h2><div class="charts">{''.join(charts)}</div>{band_caveat}
"""


BAND_CAVEAT = ("<p class=\"muted\">The bands are the 5th to 95th percentile over draws of the inputs whose "
               "errors are stated (the run's manifest, uncertainty.sources: population projections, "
               "correlated by region, and preventable mortality's sampling error; a borrowed value with the "
               "borrowing's spread): a 90% range of what those errors do, no more. They leave out "
               "deprivation (no published error), every formula choice (the weights, the pace) and the "
               "control total (docs/uncertainty.md).</p>")


def _per_head(frame: pl.DataFrame, col: str) -> np.ndarray:
    return (frame[col] / frame["population"]).to_numpy()


def _movers(p: Page) -> str:
    """Who gains and who loses in the last year: against a compared run by deprivation decile, or against today's
    funding uprated by decile (where every area has one), or the eight biggest losers and gainers."""
    years, per, change = p.years, p.per, p.change
    if p.comparison is not None:
        dec = p.comparison.filter(pl.col("financial_year") == years[-1]).group_by("imd_decile").agg(
            (pl.col("change").sum() / 100 / pl.col("population").sum()).alias("pp")).sort("imd_decile")  # pence
        return bars([f"D{d}" for d in dec["imd_decile"]], dec["pp"].to_list(),
                    f"Change in grant from the compared run to this one, {years[-1]}, by deprivation decile",
                    "deprivation decile (D1 most deprived)", f"change in grant {per} (£)", "c4")
    if p.deciles is not None and change.join(p.deciles, on="area_code").height == change.height:
        dec = change.join(p.deciles, on="area_code").group_by("imd_decile").agg(
            ((pl.col("allocation") - pl.col("baseline")).sum() / pl.col("population").sum()).alias("pp")
        ).sort("imd_decile")
        return bars([f"D{d}" for d in dec["imd_decile"]], dec["pp"].to_list(),
                    f"Allocation against today's funding uprated, {years[-1]}, by deprivation decile",
                    "deprivation decile (D1 most deprived)", f"£ {per}", "c4")
    top = pl.concat([change.head(8), change.tail(8)])
    return bars(top["area_name"].to_list(), top["ch"].to_list(),
                f"Biggest losers and gainers: allocation against today's funding uprated, {years[-1]}", "area",
                f"£ {per}", "c4")


def _areas(p: Page) -> str:
    """Every area's last year, sortable and filterable: residents and their growth, target and its share's change,
    need, today's funding, allocation, distance from target, bound, grant."""
    years, people, per, first, last = p.years, p.people, p.per, p.first, p.last
    grown = last.join(first.select("area_code", p0="population", s0="target_share", t0="target_allocation"),
                      on="area_code", how="left").with_columns(growth=pl.col("population") / pl.col("p0") - 1,
                                                               share_change=pl.col("target_share") / pl.col("s0") - 1)
    grown = grown.with_columns(cash_change=pl.col("allocation") - pl.col("todays_funding"))
    cash = _cash_known(p)
    money0, pct2 = (lambda v: gbp(v, 0)), (lambda v: f"{v:+.2%}")
    columns = [  # (heading, column of `grown`, shown as; None: text)
        (people, "population", lambda v: f"{v:,.0f}"), (f"growth in {people} since {years[0]}", "growth", pct2),
        (f"target {years[0]}", "t0", money0), (f"target share change since {years[0]}", "share_change", pct2),
        ("need index", "need_index", lambda v: f"{v:.3f}"),
        *([("today's funding (cash)", "todays_funding", money0)] if cash else []),
        ("target", "target_allocation", money0), ("allocation", "allocation", money0),
        *([("allocation against today's funding (cash)", "cash_change", money0)] if cash else []),
        ("allocation's distance from target", "distance_from_target", pct2), ("bound", "transition_bound", None),
        ("grant", "grant", money0), (f"grant {per}", "grant_per_head", gbp)]
    rows = "".join(
        f"<tr><td>{html.escape(str(r['area_name']))} <span class=muted>{html.escape(str(r['area_code']))}</span></td>"
        + "".join(f"<td>{html.escape(str(r[c]))}</td>" if show is None else f'<td data-v="{r[c]}">{show(r[c])}</td>'
                  for _, c, show in columns) + "</tr>"
        for r in grown.sort("area_code").iter_rows(named=True))
    heads = "".join(f"<th>{html.escape(h)}</th>" for h, _, _ in columns)
    return f"""<h2>Areas, {years[-1]}</h2><p class="filter"><label>Filter areas <input id="filter" type="search"
placeholder="name or code"></label> <span class="muted">Click a column heading to sort.</span></p>
<div class="scroll"><table id="areas"><thead><tr><th>area</th>{heads}</tr></thead>
<tbody>{rows}</tbody></table></div>"""


def _letters(p: Page) -> str:
    """The NHS letter's lines beside NHS England's published figures, and a version's streams per area."""
    return _published_letter(p.run_dir, p.years) + _letter(p.run_dir, p.m, p.years)


def _assumptions(p: Page) -> str:
    """The version's numbers that rest on the project's assumptions rather than published figures."""
    assumed = p.m.get("assumptions", [])
    rows = "".join(f"<tr><td>{html.escape(x['path'])}</td><td>{x['value']:g}</td></tr>" for x in assumed)
    table = (f"<h2>Numbers that rest on assumptions</h2><details><summary>{len(assumed)} of the version's "
             "numbers are the project's assumptions, not published figures (their reasons are in "
             f"<code>fundform formulas show {html.escape(p.m['formula']['id'])} --assumptions</code>)</summary><table>"
             f"<thead><tr><th>parameter</th><th>value</th></tr></thead><tbody>{rows}</tbody></table>"
             "</details>") if assumed else ""
    return table + "\n"


def _footer(p: Page) -> str:
    return f"""<p class="muted">Generated by fundform from {html.escape(p.run_dir.name)}; every figure is in the run's Parquet outputs, whose
schema is in docs/output-schema.md.</p>{CHECK}"""


# The report's sections, in the order the page shows them: a new section is one function of the Page here
SECTIONS: tuple[Callable[[Page], str], ...] = (_heading, _cards, _held_section, _maps_section, _charts, _areas,
                                               _letters, _assumptions, _footer)


def _held(a: pl.DataFrame, years: list[str]) -> str:
    """The areas held at a floor or a ceiling, named, in the first and the last year ("" where none is)."""
    parts = []
    for y in dict.fromkeys([years[0], years[-1]]):
        for bound in ("floor", "ceiling"):
            names = a.filter((pl.col("financial_year") == y) & (pl.col("transition_bound") == bound)).sort(
                "area_name")["area_name"].to_list()
            if names:
                parts.append(f"<p id=\"held-{bound}-{html.escape(y.replace('/', '-'))}\"><b>Held at a {bound} in "
                             f"{html.escape(y)} ({len(names)}):</b> {html.escape(', '.join(names))}.</p>")
    return "".join(parts)


def _published_card(run_dir: Path, years: list[str]) -> tuple[str, str]:
    """The card of an NHS allocation: how far fundform's lines are from NHS England's published, at most."""
    path = run_dir / "letter.parquet"
    lines = pl.read_parquet(path).drop_nulls("difference_share") if path.exists() else None
    if lines is None or not lines.height:
        return ("published allocations", "none held for these years")
    worst = number(lines["difference_share"].abs().max())
    return (f"lines against NHS England's published, {len(lines):,} lines",
            f"within {worst:.4%}" if worst >= 0.000_05 else "within 0.005%")


def _published_letter(run_dir: Path, years: list[str]) -> str:
    """An NHS allocation's letter, every area and line in the last year: baseline, base growth, convergence and
    fundform's allocation, NHS England's published allocation beside it and the difference ("" for a version that
    does not read NHS England's rounds)."""
    path = run_dir / "letter.parquet"
    if not path.exists():
        return ""
    d = pl.read_parquet(path).filter(pl.col("financial_year") == years[-1]).with_columns(
        pl.col(pl.Decimal).cast(pl.Float64))
    if not d.height:
        return ""
    pct = lambda v: "" if v is None else f"{v:+.2%}"
    k = lambda v: "not published" if v is None else f"{v / 1000:,.1f}"  # (pounds in thousands)
    rows = "".join(
        f"<tr><td>{html.escape(str(r['area_name']))} <span class=muted>{html.escape(str(r['area_code']))}</span></td>"
        f"<td>{html.escape(str(r['line']))}</td><td data-v=\"{r['baseline']}\">{k(r['baseline'])}</td>"
        f"<td>{pct(r['base_growth'])}</td><td>{'none' if r['convergence'] is None else pct(r['convergence'])}</td>"
        f"<td data-v=\"{r['allocation']}\">{k(r['allocation'])}</td>"
        f"<td data-v=\"{r['published_allocation']}\">{k(r['published_allocation'])}</td>"
        + ("<td></td>" if r["difference"] is None else
           f"<td data-v=\"{r['difference']}\">{gbp(r['difference'])} ({r['difference_share']:+.4%})</td>")
        + f"<td>{'no published target' if r['distance_from_target'] is None else pct(r['distance_from_target'])}</td>"
        "</tr>" for r in d.iter_rows(named=True))
    from fundform.base.years import year_before

    prev = year_before(years[-1])
    heads = ["ICB", "line", f"baseline: the {prev} allocation as restated (£ thousand)", "base growth",
             "convergence", f"{years[-1]} recurrent allocation, fundform (£ thousand)",
             f"{years[-1]} recurrent allocation, NHS England (£ thousand)", "difference (£)",
             "distance from target after convergence"]
    return (f"<h2>The allocation letter, {years[-1]}: each line, fundform's figure beside NHS England's published "
            "(cash)</h2>"
            f'<div class="scroll"><table id="published"><thead><tr>{"".join(f"<th>{html.escape(h)}</th>" for h in heads)}'
            f"</tr></thead><tbody>{rows}</tbody></table></div>")


def _letter(run_dir: Path, m: dict, years: list[str]) -> str:
    """The allocation letter of a version of several streams: per area, each stream's allocation in the last year
    and their sum (the area's allocation to the penny); "" for a version of one stream."""
    from fundform.outputs.letter import TOTAL, letter, line_columns, titles_of

    path = run_dir / "streams.parquet"
    wide = letter(pl.read_parquet(path), titles_of(m)) if path.exists() else None
    if wide is None:
        return ""
    wide = wide.filter(pl.col("financial_year") == years[-1])
    cols = [*line_columns(wide), TOTAL]
    heads = "".join(f"<th>{html.escape(c)} (£)</th>" for c in cols)
    rows = "".join(
        f"<tr><td>{html.escape(str(r['area_name']))} <span class=muted>{html.escape(str(r['area_code']))}</span></td>"
        + "".join(f'<td data-v="{r[c]}">{gbp(r[c] / 100, 0)}</td>' for c in cols) + "</tr>"
        for r in wide.iter_rows(named=True))
    total = "".join(f"<td>{gbp(number(wide[c].sum()) / 100, 0)}</td>" for c in cols)
    return (f"<h2>The allocation letter, {years[-1]}: each stream's allocation per area (cash)</h2>"
            f'<div class="scroll"><table id="letter"><thead><tr><th>area</th>{heads}</tr></thead><tbody>{rows}'
            f"</tbody><tfoot><tr><td>all areas</td>{total}</tr></tfoot></table></div>")


def _maps(first: pl.DataFrame, last: pl.DataFrame, change: pl.DataFrame, member: dict[str, str] | None,
          years: list[str], per: str = "per resident") -> str:
    from fundform.outputs import maps

    if not maps.available():
        return ""
    if not member:
        return ('<h2>Maps</h2><p class="muted">The maps need to know which authorities make up each area of this '
                "run's level; for a deal-area run, write the report with <code>fundform run --level deal:FILE "
                "--report</code>.</p>")
    level = str(first["area_level"][0])
    names = dict(first.select("area_code", "area_name").iter_rows())
    per_head = dict(first.select("area_code", "grant_per_head").iter_rows())
    ch = dict(change.select("area_code", "ch").iter_rows())
    before = dict(first.select("area_code", ((pl.col("baseline") - pl.col("target_allocation"))
                                             / pl.col("target_allocation") * 100).alias("d")).iter_rows())
    after = dict(last.select("area_code", (pl.col("distance_from_target") * 100).alias("d")).iter_rows())
    money = lambda v: gbp(v, 0)
    pct = lambda v: f"{v:+.1f}%"
    grant_ph = maps.paint(per_head, names, f"Grant {per}, {years[0]}", f"£ {per}", money, False)
    against = maps.paint(ch, names, f"Allocation against today's funding uprated, {years[-1]}", f"£ {per}", money,
                         True)
    figs = [
        maps.geographic(grant_ph, member, "m1"),
        maps.geographic(against, member, "m2"),
        maps.geographic(maps.paint(before, names, f"Distance from target of today's funding uprated, {years[0]} (before transition)",
                                   "% of target", pct, True), member, "m3"),
        maps.geographic(maps.paint(after, names, f"Allocation's distance from target, {years[-1]} (after transition)",
                                   "% of target", pct, True), member, "m4"),
        maps.hexmap({**against, "title": against["title"] + " (hex cartogram)"}, member, level, "h1"),
        maps.hexmap({**grant_ph, "title": grant_ph["title"] + " (hex cartogram)"}, member, level, "h2"),
    ]
    return (maps.defs() + f'<h2>Maps</h2><p class="muted">{first.height:,} areas at level {html.escape(level)}; an '
            "area above lower tier is drawn as its member authorities. Hover for each area's value. Boundaries: "
            "Office for National Statistics licensed under the Open Government Licence v.3.0, contains OS data "
            "&copy; Crown copyright and database right 2024; hex cartograms: Open Innovations (MIT).</p>"
            f'<div class="charts maps">{"".join(figs)}</div>')


def write_report(run_dir: Path, target: Path, **kwargs: Any) -> Path:
    from fundform.outputs.write import atomic_write_file

    text = build_report(run_dir, **kwargs)
    failpoint("report.write", target)
    return atomic_write_file(Path(target), text, "report")
