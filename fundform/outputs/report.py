"""A report a person would read: one self-contained HTML page per run, charts drawn as inline SVG.

Nothing is fetched from the network: no scripts, fonts or styles from elsewhere. The page's one small script only
checks that the charts are present and marks the page as rendered (the headless-browser test reads that mark).
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
import polars as pl

from fundform.base.failpoints import failpoint
from fundform.outputs.text import gbp, population_words, run_words

W, H, PAD = 640, 360, 64  # PAD: the left margin holds the axis title (x 4-16) and tick labels (x 20-60)
BLUE, ORANGE, GREY, GREEN, RED = "#1f5fa8", "#e07b18", "#888888", "#2e8b57", "#c0392b"


def short_number(v: float) -> str:
    a = abs(v)
    if a >= 1e9:
        return f"{v / 1e9:,.1f}bn"
    if a >= 1e6:
        return f"{v / 1e6:,.1f}m"
    if a >= 1e3:
        return f"{v / 1e3:,.1f}k"
    return f"{v:,.2f}".rstrip("0").rstrip(".") if a < 10 else f"{v:,.0f}"


def frame_svg(title: str, xlabel: str, ylabel: str, body: list[str], chart_id: str) -> str:
    return (f'<figure><svg class="chart" id="{chart_id}" viewBox="0 0 {W} {H}" width="{W}" height="{H}" '
            f'role="img" aria-label="{html.escape(title)}" xmlns="http://www.w3.org/2000/svg">'
            f'<title>{html.escape(title)}</title>'
            f'<text x="{W / 2}" y="18" text-anchor="middle" class="t">{html.escape(title)}</text>'
            f'<text x="{W / 2}" y="{H - 6}" text-anchor="middle" class="l">{html.escape(xlabel)}</text>'
            f'<text x="14" y="{H / 2}" text-anchor="middle" class="l" transform="rotate(-90 14 {H / 2})">'
            f'{html.escape(ylabel)}</text>' + "".join(body) + "</svg></figure>")


def nice_ticks(lo: float, hi: float, n: int = 5) -> np.ndarray:
    """Round tick values (1, 2, 2.5 or 5 x 10^k apart) inside [lo, hi], about n of them, 0 among them if in range."""
    span = hi - lo
    if not np.isfinite(span) or span <= 0:
        return np.array([lo])
    raw = span / n
    mag = 10.0 ** np.floor(np.log10(raw))
    step = min((m * mag for m in (1, 2, 2.5, 5, 10)), key=lambda st: abs(np.log(st / raw)))
    first = np.ceil(lo / step - 1e-9) * step
    ticks = np.arange(first, hi + step * 1e-9, step)
    return np.where(np.abs(ticks) < step * 1e-9, 0.0, ticks)


def linear_scale(lo: float, hi: float, a: float, b: float):
    span = (hi - lo) or 1.0
    return lambda v: a + (v - lo) / span * (b - a)


def y_axis(lo: float, hi: float, sy) -> list[str]:
    out = []
    for v in nice_ticks(lo, hi):
        y = sy(v)
        out.append(f'<line x1="{PAD}" x2="{W - 16}" y1="{y:.1f}" y2="{y:.1f}" class="g"/>'
                   f'<text x="{PAD - 4}" y="{y + 4:.1f}" text-anchor="end" class="k">{short_number(v)}</text>')
    return out


def scatter(xs, ys, names, title, xlabel, ylabel, chart_id) -> str:
    xs, ys = np.asarray(xs, float), np.asarray(ys, float)
    if not xs.size:
        return _empty(title, chart_id)
    xlo, xhi, ylo, yhi = xs.min(), xs.max(), ys.min(), ys.max()
    sx, sy = linear_scale(xlo, xhi, PAD + 6, W - 24), linear_scale(ylo, yhi, H - PAD, 34)
    body = y_axis(ylo, yhi, sy)
    for v in nice_ticks(xlo, xhi):
        body.append(f'<text x="{sx(v):.1f}" y="{H - PAD + 16}" text-anchor="middle" class="k">{v:.2f}</text>')
    for x, y, n in zip(xs, ys, names):
        body.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{BLUE}" fill-opacity="0.6">'
                    f'<title>{html.escape(str(n))}: {x:.3f}, {gbp(y, 0)}</title></circle>')
    return frame_svg(title, xlabel, ylabel, body, chart_id)


def bars(labels, values, title, xlabel, ylabel, chart_id, colors=None) -> str:
    values = np.asarray(values, float)
    if not values.size:
        return _empty(title, chart_id)
    lo, hi = min(0.0, values.min()), max(0.0, values.max())
    sy = linear_scale(lo, hi, H - PAD, 34)
    n = len(values)
    bw = (W - PAD - 24) / max(n, 1)
    body = y_axis(lo, hi, sy)
    for i, (lab, v) in enumerate(zip(labels, values)):
        x = PAD + 6 + i * bw
        y0, y1 = sorted((sy(0), sy(v)))
        c = (colors[i] if colors else (GREEN if v >= 0 else RED))
        body.append(f'<rect x="{x + 1:.1f}" y="{y0:.1f}" width="{max(bw - 2, 1):.1f}" height="{max(y1 - y0, 0.5):.1f}" '
                    f'fill="{c}"><title>{html.escape(str(lab))}: {short_number(v)}</title></rect>')
        if n <= 14:  # labels wrap onto two lines under their bar
            words = str(lab).split()
            half = (len(words) + 1) // 2
            for li, part in enumerate([" ".join(words[:half]), " ".join(words[half:])]):
                if part:
                    body.append(f'<text x="{x + bw / 2:.1f}" y="{H - PAD + 14 + 11 * li}" text-anchor="middle" '
                                f'class="k">{html.escape(part)}</text>')
    body.append(f'<line x1="{PAD}" x2="{W - 16}" y1="{sy(0):.1f}" y2="{sy(0):.1f}" stroke="#333"/>')
    return frame_svg(title, xlabel, ylabel, body, chart_id)


def _empty(title: str, chart_id: str) -> str:
    """A chart with nothing to draw says so (and still counts as drawn), rather than failing the report."""
    return frame_svg(title, "", "", [f'<text x="{W / 2}" y="{H / 2}" text-anchor="middle" class="l">no data to '
                                  'show for this run</text>'], chart_id)


def lines(xlabels, series: dict[str, list[float]], title, ylabel, chart_id, fmt=short_number) -> str:
    allv = np.concatenate([np.asarray(v, float) for v in series.values()])
    if not allv.size:
        return _empty(title, chart_id)
    lo, hi = allv.min() * 0.98, allv.max() * 1.02
    sx, sy = linear_scale(0, max(len(xlabels) - 1, 1), PAD + 20, W - 40), linear_scale(lo, hi, H - PAD, 34)
    body = y_axis(lo, hi, sy)
    for i, lab in enumerate(xlabels):
        body.append(f'<text x="{sx(i):.1f}" y="{H - PAD + 16}" text-anchor="middle" class="k">{html.escape(str(lab))}</text>')
    for k, (name, vals) in enumerate(series.items()):
        c = [BLUE, ORANGE, GREY][k % 3]
        pts = " ".join(f"{sx(i):.1f},{sy(v):.1f}" for i, v in enumerate(vals))
        body.append(f'<polyline points="{pts}" fill="none" stroke="{c}" stroke-width="2.5"/>')
        body += [f'<circle cx="{sx(i):.1f}" cy="{sy(v):.1f}" r="3" fill="{c}"><title>{html.escape(name)}, '
                 f'{html.escape(str(xlabels[i]))}: {html.escape(fmt(v))}</title></circle>' for i, v in enumerate(vals)]
        body.append(f'<text x="{W - 190}" y="{40 + 16 * k}" class="k" style="fill:{c}">&#9632; '
                    f'{html.escape(name)}</text>')
    return frame_svg(title, "financial year", ylabel, body, chart_id)


def histograms(series: dict[str, np.ndarray], title, xlabel, chart_id, bins=24) -> str:
    allv = np.concatenate(list(series.values()))
    allv = allv[np.isfinite(allv)]
    if not allv.size:
        return _empty(title, chart_id)
    edges = np.linspace(np.quantile(allv, 0.005), np.quantile(allv, 0.995), bins + 1)
    counts = {k: np.histogram(np.clip(v, edges[0], edges[-1]), edges)[0] for k, v in series.items()}
    hi = max(c.max() for c in counts.values())
    sx, sy = linear_scale(edges[0], edges[-1], PAD + 6, W - 24), linear_scale(0, hi, H - PAD, 34)
    body = y_axis(0, hi, sy)
    for v in nice_ticks(edges[0], edges[-1]):
        body.append(f'<text x="{sx(v):.1f}" y="{H - PAD + 16}" text-anchor="middle" class="k">{v:+.0%}</text>')
    for k, (name, c) in enumerate(counts.items()):
        col = [GREY, BLUE][k % 2]
        for i, n in enumerate(c):
            x0, x1 = sx(edges[i]), sx(edges[i + 1])
            body.append(f'<rect x="{x0:.1f}" y="{sy(n):.1f}" width="{max(x1 - x0 - 1, 1):.1f}" '
                        f'height="{sy(0) - sy(n):.1f}" fill="{col}" fill-opacity="0.55"><title>{html.escape(name)}: '
                        f'{n} area{"" if n == 1 else "s"} {_bin(edges, i)}</title></rect>')
        body.append(f'<text x="{PAD + 12}" y="{40 + 16 * k}" class="k" style="fill:{col}">&#9632; '
                    f'{html.escape(name)}</text>')
    return frame_svg(title, xlabel, "areas", body, chart_id)


def _bin(edges, i: int) -> str:
    """A histogram bar's span in words; the end bars hold every value beyond them."""
    if i == 0:
        return f"below {edges[1]:+.2%}"
    if i == len(edges) - 2:
        return f"at {edges[i]:+.2%} or above"
    return f"from {edges[i]:+.2%} to below {edges[i + 1]:+.2%}"


def bands(lows, centrals, highs, names, title, ylabel, chart_id) -> str:
    """An interval per area from its 5th to its 95th percentile over the draws of the inputs, drawn as a share of the
    area's central figure (so a 2% band is as tall for a small area as for a large one, and every whisker is seen:
    at least as tall as its dot), the dot at 0; areas ordered by the width of their interval (the least certain at
    the right); each tooltip gives the figures in pounds. `ylabel` names the figure."""
    lows, mids, highs = (np.asarray(a, float) for a in (lows, centrals, highs))
    if not len(mids):
        return _empty(title, chart_id)
    with np.errstate(divide="ignore", invalid="ignore"):
        lo_r, hi_r = np.where(mids != 0, (lows / mids - 1) * 100, 0.0), np.where(mids != 0, (highs / mids - 1) * 100, 0.0)
    order = np.argsort(hi_r - lo_r, kind="stable")
    lo, hi = min(float(lo_r.min()), -0.1), max(float(hi_r.max()), 0.1)
    sx, sy = linear_scale(0, max(len(mids) - 1, 1), PAD + 6, W - 24), linear_scale(lo, hi, H - PAD, 34)
    body = y_axis(lo, hi, sy)
    body.append(f'<line x1="{PAD}" x2="{W - 20}" y1="{sy(0):.1f}" y2="{sy(0):.1f}" stroke="#999" '
                'stroke-dasharray="3 3"/>')
    for k, i in enumerate(order):
        x = sx(k)
        top, bottom = sy(hi_r[i]), sy(lo_r[i])
        if bottom - top < 4:  # never shorter than the dot it carries
            top, bottom = sy(0) - 2, sy(0) + 2
        body.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top:.1f}" y2="{bottom:.1f}" stroke="{ORANGE}" '
                    f'stroke-width="1.6"/><circle cx="{x:.1f}" cy="{sy(0):.1f}" r="1.4" fill="{BLUE}"><title>'
                    f'{html.escape(str(names[i]))}: central {gbp(mids[i], 0)}, 5-95%: {gbp(lows[i], 0)} to '
                    f'{gbp(highs[i], 0)}</title></circle>')
    return frame_svg(title, "areas, by the width of their range", f"% of central {ylabel}", body, chart_id)


def ranges(lows, mids, highs, names, title, ylabel, chart_id, by_width: bool = False) -> str:
    """One vertical line per area from low to high, a dot at the middle, areas sorted by the middle (a sweep's
    median), or by the width of their range (`by_width`: an uncertainty band, the dot its central figure)."""
    if not len(mids):
        return _empty(title, chart_id)
    lows, mids, highs = (np.asarray(a, float) for a in (lows, mids, highs))
    order = np.argsort(highs - lows if by_width else mids, kind="stable")
    lows, mids, highs = lows[order], mids[order], highs[order]
    names = [names[i] for i in order]
    lo, hi = min(lows.min(), mids.min()), max(highs.max(), mids.max())
    sx, sy = linear_scale(0, max(len(mids) - 1, 1), PAD + 6, W - 24), linear_scale(lo, hi, H - PAD, 34)
    body = y_axis(lo, hi, sy)
    middle = "central" if by_width else "median"
    for i, (a, m, b, n) in enumerate(zip(lows, mids, highs, names)):
        x = sx(i)
        body.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{sy(a):.1f}" y2="{sy(b):.1f}" stroke="{ORANGE}"/>'
                    f'<circle cx="{x:.1f}" cy="{sy(m):.1f}" r="1.8" fill="{BLUE}"><title>{html.escape(str(n))}: '
                    f'{middle} {gbp(m, 0)}, 5-95%: {gbp(a, 0)} to {gbp(b, 0)}</title></circle>')
    return frame_svg(title, "areas, by the width of their range" if by_width else "areas, by median", ylabel, body,
                     chart_id)


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


def build_report(run_dir: Path, deciles: pl.DataFrame | None = None, area: str | None = None,
                 comparison: pl.DataFrame | None = None, sweep_dir: Path | None = None,
                 member: dict[str, str] | None = None) -> str:
    """The report's HTML. `member` maps each lower-tier authority to its area at the run's level (for the maps);
    without it the maps are left out with a note.

    Over 80 lines: it gathers the page's charts, cards and tables in the order the page shows them, then fills the
    one template."""
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
    pb = m["parameters"]["price_base_year"]
    need_file = run_dir / "need.parquet"
    need = pl.read_parquet(need_file) if need_file.exists() else None
    people, per = population_words(need)  # whom the version counts
    change = last.with_columns(ch=(pl.col("allocation") - pl.col("baseline")) / pl.col("population")).sort("ch")
    area_code = area or change["area_code"][-1]
    wf = w.filter((pl.col("area_code") == area_code) & (pl.col("financial_year") == years[0])).sort("step_order")
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
             f"Waterfall: {wf['area_name'][0] if wf.height else area_code}, {years[0]}", "step",
             "£ (cash) the step adds", "c5"),
    ]
    words = run_words(m)
    nhs = words["kind"] == "nhs_allocation"
    if nhs:  # an NHS allocation is told by its letter's lines (below), not a grant's waterfall from an equal share
        charts = [c for c in charts if 'id="c5"' not in c]
        charts[2] = lines(years, {"allocation (cash)": per_year["allocation"].to_list(),
                                  f"allocation ({pb} prices)": per_year["grant_real"].to_list()},
                          f"The {len(years)}-year path: total recurrent allocation", "£", "c3")
    if comparison is not None:
        dec = comparison.filter(pl.col("financial_year") == years[-1]).group_by("imd_decile").agg(
            (pl.col("change").sum() / 100 / pl.col("population").sum()).alias("pp")).sort("imd_decile")  # pence
        charts.insert(3, bars([f"D{d}" for d in dec["imd_decile"]], dec["pp"].to_list(),
                              f"Change in grant from the compared run to this one, {years[-1]}, by deprivation "
                              "decile",
                              "deprivation decile (D1 most deprived)", f"change in grant {per} (£)", "c4"))
    elif deciles is not None and change.join(deciles, on="area_code").height == change.height:
        dec = change.join(deciles, on="area_code").group_by("imd_decile").agg(
            ((pl.col("allocation") - pl.col("baseline")).sum() / pl.col("population").sum()).alias("pp")
        ).sort("imd_decile")
        charts.insert(3, bars([f"D{d}" for d in dec["imd_decile"]], dec["pp"].to_list(),
                              f"Allocation against today's funding uprated, {years[-1]}, by deprivation decile",
                              "deprivation decile (D1 most deprived)", f"£ {per}", "c4"))
    else:
        top = pl.concat([change.head(8), change.tail(8)])
        charts.insert(3, bars(top["area_name"].to_list(), top["ch"].to_list(),
                              f"Biggest losers and gainers: allocation against today's funding uprated, "
                              f"{years[-1]}", "area", f"£ {per}", "c4"))
    if sweep_dir is not None:
        sw = pl.read_parquet(Path(sweep_dir) / "sweep.parquet")
        sm = json.loads((Path(sweep_dir) / "manifest.json").read_text())
        fin = sw.filter(pl.col("financial_year") == sw["financial_year"].max()).join(
            last.select("area_code", "population"), on="area_code", how="inner")
        head = lambda c: (fin[c] / fin["population"]).to_numpy()
        charts.append(ranges(head("grant_p5"), head("grant_median"), head("grant_p95"), fin["area_name"].to_list(),
                             f"Sweep of {sm['scenarios']:,} scenarios: grant {per}, 5th to 95th percentile, "
                             f"{fin['financial_year'][0]}", f"grant {per} (£)", "c6"))
    uncertainty = run_dir / "uncertainty.parquet"
    band_caveat = ""
    if uncertainty.exists():  # a run with --uncertainty: every area's range over the draws of its inputs
        ub = pl.read_parquet(uncertainty).with_columns(pl.col(pl.Decimal).cast(pl.Float64))
        draws = m.get("uncertainty", {}).get("draws")
        fin = ub.filter(pl.col("financial_year") == years[-1]).join(last.select("area_code", "population"),
                                                                    on="area_code", how="inner")
        head = lambda c: (fin[c] / fin["population"]).to_numpy()
        charts.append(bands(head("grant_p5"), head("grant_central"), head("grant_p95"), fin["area_name"].to_list(),
                            f"Grant {per}, {years[-1]}: 5th-95th percentile of {draws:,} input draws",
                            f"grant {per}", "c8"))
        band_caveat = ("<p class=\"muted\">The bands are the 5th to 95th percentile over draws of the inputs whose "
                       "errors are stated (the run's manifest, uncertainty.sources: population projections, "
                       "correlated by region, and preventable mortality's sampling error; a borrowed value with the "
                       "borrowing's spread): a 90% range of what those errors do, no more. They leave out "
                       "deprivation (no published error), every formula choice (the weights, the pace) and the "
                       "control total (docs/uncertainty.md).</p>")
    if len(years) > 1:  # why shares move within the settlement: each year's residents and targets
        charts.append(lines(years, {people: per_year["population"].to_list()},
                            f"{people.capitalize()} by year (each year's need and targets use that year's)",
                            "persons", "c7", fmt=lambda v: f"{v:,.0f}"))
    maps_html = _maps(first, last, change, member, years, per)
    fig = words["figure"]
    cards = [("areas", f"{first.height:,} ({first['area_level'][0]})"),
             (f"{fig} {years[0]}", f"{gbp(first['grant'].sum() / 1e9)}bn"),
             *([(f"{fig} {years[-1]}", f"{gbp(last['grant'].sum() / 1e9)}bn"),
                (f"{fig} {years[-1]}, {pb} prices", f"{gbp(last['grant_real'].sum() / 1e9)}bn")]
               if len(years) > 1 else []),
             (f"{people} {years[0]}" + (f" to {years[-1]}" if len(years) > 1 else ""),
              f"{first['population'].sum() / 1e6:,.2f}m" + (f" to {last['population'].sum() / 1e6:,.2f}m"
                                                            if len(years) > 1 else "")),
             *([] if nhs and not a["transition_bound"].is_in(["floor"]).any() else
               [("areas at a floor, first year", str(per_year["floor"][0]))]),
             ("reconciliation", "all identities hold" if pl.read_parquet(run_dir / "reconciliation.parquet")
              ["holds"].all() else "FAILED")]
    grown = last.join(first.select("area_code", p0="population", s0="target_share", t0="target_allocation"),
                      on="area_code", how="left").with_columns(growth=pl.col("population") / pl.col("p0") - 1,
                                                               share_change=pl.col("target_share") / pl.col("s0") - 1)
    grown = grown.with_columns(cash_change=pl.col("allocation") - pl.col("todays_funding"))
    cash = a["todays_funding"].null_count() == 0  # today's funding in cash is known: shown beside the uprated
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
    if cash:
        below = a.filter(pl.col("allocation") < pl.col("todays_funding"))["area_code"].n_unique()
        cards.insert(6, ("areas below their baseline in cash, any year" if nhs else
                         "areas below today's funding in cash, any year", str(below)))
    held_html = _held(a, years)
    letter_html = _published_letter(run_dir, years) + _letter(run_dir, m, years)
    if nhs:
        cards.insert(3, _published_card(run_dir, years))
    f = m["formula"]
    span = years[0] if len(years) == 1 else f"{years[0]} to {years[-1]}"
    of_version = f" (a scenario of {words['version']})" if words["name"] != f["id"] else f" ({words['version']})"
    assumed = m.get("assumptions", [])
    assumed_rows = "".join(f"<tr><td>{html.escape(a['path'])}</td><td>{a['value']:g}</td></tr>" for a in assumed)
    assumptions = (f"<h2>Numbers that rest on assumptions</h2><details><summary>{len(assumed)} of the version's "
                   "numbers are the project's assumptions, not published figures (their reasons are in "
                   f"<code>fundform formulas show {html.escape(f['id'])} --assumptions</code>)</summary><table>"
                   f"<thead><tr><th>parameter</th><th>value</th></tr></thead><tbody>{assumed_rows}</tbody></table>"
                   "</details>") if assumed else ""
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1"><title>fundform run {html.escape(str(m['run_id']))}</title>
<style>{CSS}</style></head><body>
<h1>{html.escape(words['name'])}: {html.escape(words['money'])}, {html.escape(span)}</h1>
<p>{html.escape(words['title'])}{html.escape(of_version)}</p>
<p class="muted">Run {html.escape(str(m['run_id']))} · formula sha256 {html.escape(str(f['sha256'])[:12])} · level
{html.escape(str(m['parameters']['level']))} ·
{len(m['overrides'])} override(s) · fundform {html.escape(str(m['engine']['version']))} · money in pounds, cash
unless marked; real terms at {html.escape(str(pb))} prices.</p>
<div class="cards">{''.join(f'<div class="card">{html.escape(k)}<b>{html.escape(v)}</b></div>' for k, v in cards)}</div>
{held_html}
{maps_html}
<h2>Charts</h2><div class="charts">{''.join(charts)}</div>{band_caveat}
<h2>Areas, {years[-1]}</h2><p class="filter"><label>Filter areas <input id="filter" type="search"
placeholder="name or code"></label> <span class="muted">Click a column heading to sort.</span></p>
<div class="scroll"><table id="areas"><thead><tr><th>area</th>{heads}</tr></thead>
<tbody>{rows}</tbody></table></div>{letter_html}{assumptions}
<p class="muted">Generated by fundform from {html.escape(run_dir.name)}; every figure is in the run's Parquet outputs, whose
schema is in docs/output-schema.md.</p>{CHECK}</body></html>
"""


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
    worst = lines["difference_share"].abs().max()
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
    total = "".join(f"<td>{gbp(wide[c].sum() / 100, 0)}</td>" for c in cols)
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


def write_report(run_dir: Path, target: Path, **kwargs) -> Path:
    from fundform.outputs.write import atomic_write_file

    text = build_report(run_dir, **kwargs)
    failpoint("report.write", target)
    return atomic_write_file(Path(target), text, "report")
