"""A design's report: the question, the answer, the chosen numbers verified by an exact run, what relaxing each
constraint buys, the frontier between the two objectives and the feasible region of each pair of free numbers, as
one self-contained HTML page in the run report's style (inline SVG, nothing fetched, everything escaped)."""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import polars as pl

from fundform.base.numeric import number
from fundform.outputs.charts import BLUE, GREEN, GREY, ORANGE, PAD, RED, H, W, frame_svg, linear_scale, nice_ticks
from fundform.outputs.report import CSS

e = html.escape


def binding_words(b: dict[str, Any], fmt: Callable[[Any], str]) -> str:
    """What binds an infeasible question, in words that agree with the table of what dropping each buys: the
    constraint whose removal makes it feasible, or that no single removal does (and which cannot hold even alone)."""
    near = (f"value {fmt(b['value'])} against a limit of {fmt(b['limit'])}, short by {fmt(b['short_by'])} at the "
            "closest candidate")
    fixing, alone = b.get("removal_makes_feasible", [b["constraint"]]), b.get("infeasible_alone", [])
    if fixing:
        others = [c for c in fixing if c != b["constraint"]]
        return (f"{b['constraint']} binds: dropping it makes the question feasible ({near})"
                + (f"; dropping {', '.join(others)} would too" if others else "") + ".")
    return ("No single constraint binds: dropping any one of them still leaves the question infeasible"
            + (f"; each alone is infeasible: {', '.join(alone)}" if alone else "")
            + f". Closest: {b['constraint']}, {near}.")


def search_words(search: dict) -> str:
    """How precisely the answer is located: the polish's tolerance and the step it stopped at."""
    steps = ", ".join(f"{n} +-{s:.3g}" for n, s in search.get("step", {}).items())
    return (f"Located to within {search['tolerance']:.2%} of each free number's range (a compass search from the "
            f"best candidate, {search['evaluations']:,} more candidates, stopped at steps {steps}).")


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "none"
    if isinstance(v, float):
        return f"{v:,.6g}" if abs(v) < 1e6 else f"{v:,.0f}"
    return e(str(v))


def frontier_svg(points: pl.DataFrame, frontier: pl.DataFrame, objectives: Sequence[Any], chosen: int,
                 shipped_row: dict[str, Any],
                 chart_id: str = "frontier") -> str:
    """Every feasible candidate (grey), the frontier (blue), the shipped version (orange) and the choice (green)."""
    a, b = "objective_1", "objective_2"
    ok = points.filter(pl.col("feasible"))
    xs = np.concatenate([ok[a].to_numpy(), [shipped_row[a]]])
    ys = np.concatenate([ok[b].to_numpy(), [shipped_row[b]]])
    xs, ys = xs[np.isfinite(xs) & np.isfinite(ys)], ys[np.isfinite(xs) & np.isfinite(ys)]
    title = "The frontier between the two objectives"
    if not xs.size:
        return frame_svg(title, objectives[0].name, objectives[1].name, [
            f'<text x="{W / 2}" y="{H / 2}" text-anchor="middle" class="l">no candidate meets every constraint</text>'],
            chart_id)
    sx = linear_scale(xs.min(), xs.max(), PAD + 6, W - 24)
    sy = linear_scale(ys.min(), ys.max(), H - PAD, 34)
    body = []
    for v in nice_ticks(ys.min(), ys.max()):
        body.append(f'<line x1="{PAD}" x2="{W - 16}" y1="{sy(v):.1f}" y2="{sy(v):.1f}" class="g"/>'
                    f'<text x="{PAD - 4}" y="{sy(v) + 4:.1f}" text-anchor="end" class="k">{v:.4g}</text>')
    for v in nice_ticks(xs.min(), xs.max()):
        body.append(f'<text x="{sx(v):.1f}" y="{H - PAD + 16}" text-anchor="middle" class="k">{v:.4g}</text>')
    for x, y in zip(ok[a].to_numpy(), ok[b].to_numpy()):
        if np.isfinite(x) and np.isfinite(y):
            body.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2" fill="{GREY}" fill-opacity="0.35"/>')
    f = frontier.sort(a)
    pts = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in zip(f[a], f[b]) if np.isfinite(x) and np.isfinite(y))
    body.append(f'<polyline points="{pts}" fill="none" stroke="{BLUE}" stroke-width="2"/>')
    for r in f.iter_rows(named=True):
        body.append(f'<circle cx="{sx(r[a]):.1f}" cy="{sy(r[b]):.1f}" r="3.5" fill="{BLUE}" class="frontier">'
                    f'<title>candidate {r["candidate"]}: {r[a]:.4g}, {r[b]:.4g}</title></circle>')
    for row, colour, label in ((shipped_row, ORANGE, "the version as shipped"),
                               (points.row(chosen, named=True), GREEN, "the chosen design")):
        if np.isfinite(row[a]) and np.isfinite(row[b]):
            body.append(f'<circle cx="{sx(row[a]):.1f}" cy="{sy(row[b]):.1f}" r="6" fill="none" stroke="{colour}" '
                        f'stroke-width="2.5"><title>{e(label)}: {row[a]:.4g}, {row[b]:.4g}</title></circle>')
    for k, (colour, label) in enumerate(((ORANGE, "the version as shipped"), (GREEN, "the chosen design"),
                                         (BLUE, "the frontier"), (GREY, "a candidate meeting every constraint"))):
        y = 44 + 15 * k
        body.append(f'<circle cx="{W - 250}" cy="{y - 4}" r="5" fill="{colour}" fill-opacity="0.8"/>'
                    f'<text x="{W - 240}" y="{y}" class="k">{e(label)}</text>')
    return frame_svg(title, objectives[0].name, objectives[1].name, body, chart_id)


def region_svg(region: pl.DataFrame, x: str, y: str, chart_id: str) -> str:
    """The share of candidates meeting every constraint in each cell of the pair (x, y): green all, red none."""
    cells = region.filter((pl.col("x") == x) & (pl.col("y") == y))
    title = "Where every constraint can be met"
    xlo, xhi = number(cells["x_low"].min()), number(cells["x_high"].max())
    ylo, yhi = number(cells["y_low"].min()), number(cells["y_high"].max())
    sx = linear_scale(xlo, xhi, PAD + 6, W - 24)
    sy = linear_scale(ylo, yhi, H - PAD, 34) if x != y else (lambda v: H - PAD if v == ylo else 34)
    body = []
    for r in cells.iter_rows(named=True):
        share = r["feasible_share"]
        colour = GREY if share is None else (GREEN if share >= 0.999 else RED if share <= 0.001 else ORANGE)
        opacity = 0.15 if share is None else 0.25 + 0.6 * (share if 0 < share < 1 else 1)
        x0, x1 = sx(r["x_low"]), sx(r["x_high"])
        y0, y1 = (sy(r["y_high"]), sy(r["y_low"])) if x != y else (34, H - PAD)
        label = "no candidate here" if share is None else f"{share:.0%} of {r['candidates']} candidates meet every constraint"
        body.append(f'<rect x="{x0:.1f}" y="{y0:.1f}" width="{x1 - x0:.1f}" height="{y1 - y0:.1f}" fill="{colour}" '
                    f'fill-opacity="{opacity:.2f}"><title>{e(x)} {r["x_low"]:.4g} to {r["x_high"]:.4g}'
                    + (f", {e(y)} {r['y_low']:.4g} to {r['y_high']:.4g}" if x != y else "")
                    + f": {e(label)}</title></rect>")
    for v in nice_ticks(xlo, xhi):
        body.append(f'<text x="{sx(v):.1f}" y="{H - PAD + 16}" text-anchor="middle" class="k">{v:.4g}</text>')
    if x != y:
        for v in nice_ticks(ylo, yhi):
            body.append(f'<text x="{PAD - 4}" y="{sy(v) + 4:.1f}" text-anchor="end" class="k">{v:.4g}</text>')
    return frame_svg(title, x, y if x != y else "", body, chart_id) + (
        "<p>Each cell: green where every candidate drawn in it meets every constraint, red where none does, orange "
        "where some do (hover a cell for the share).</p>")


def design_html(result: Any) -> str:
    """The design's page (result: fundform.studies.designer.DesignResult, verified; the studies sit above this
    layer, so it is typed by what it reads, not imported)."""
    ds = result.spec
    chosen, v = result.chosen, result.verified
    rows = lambda items: "".join(items)
    answer = (f"<p class=\"answer ok\">The constraints can be met. The design below is the feasible candidate "
              f"best on {e(ds.objectives[0].name)}, of {result.points.height:,} evaluated.</p>" if result.feasible else
              f"<p class=\"answer no\">No candidate of the {result.points.height:,} evaluated (every corner of the "
              f"ranges covered by Sobol draws, then refined) meets every constraint. "
              f"{e(binding_words(result.binding, _fmt))}</p>")
    free = rows(f"<tr><td>{e(n)}</td><td>{_fmt(result.shipped['free'][n])}</td><td>{_fmt(chosen['free'][n])}</td>"
                f"<td>{_fmt(ds.free[n][0])} to {_fmt(ds.free[n][1])}</td></tr>" for n in result.names)
    cons = rows(f"<tr><td>{e(c['constraint'])}</td><td>{_fmt(s['value'])}</td><td>{_fmt(c['value'])}</td>"
                f"<td>{_fmt(c['limit'])}</td><td>{'yes' if c['holds'] else 'no'}</td></tr>"
                for c, s in zip(v.get("constraints", chosen["constraints"]), result.shipped["constraints"]))
    objs = rows(f"<tr><td>{e(o['objective'])}</td><td>{_fmt(s['value'])}</td><td>{_fmt(o['value'])}</td></tr>"
                for o, s in zip(chosen["objectives"], result.shipped["objectives"]))
    relax = rows(f"<tr><td>{e(r['constraint'])}</td><td>{_fmt(r['with_it'])}</td><td>{_fmt(r['without_it'])}</td>"
                 "</tr>" for r in result.relaxed)
    charts = []
    if len(ds.objectives) == 2:
        shipped_row = result.points.row(0, named=True)
        charts.append(frontier_svg(result.points, result.frontier, ds.objectives, chosen["candidate"], shipped_row))
    pairs = result.region.select("x", "y").unique(maintain_order=True).rows()
    charts += [region_svg(result.region, x, y, f"region{i}") for i, (x, y) in enumerate(pairs)]
    located = f"<p>{e(search_words(result.search))}</p>" if result.search.get("tolerance") else ""
    check = (f"<p>Verified by an exact run (<code>fundform run --formula {e(result.version)} "
             + " ".join(f"--set {e(s)}" for s in v.get("set", [])) + "</code>): grants "
             + ("equal the candidate's to the penny" if v.get("grants_equal_to_the_penny") else
                f"differ from the candidate's by up to {v.get('max_grant_difference_pence')}p")
             + ("; every constraint holds on the run." if v.get("all_hold") else
                "; not every constraint holds on the run (the table says which).") + "</p>") if v else ""
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(ds.title)}</title><style>{CSS}
.answer{{font-size:1.1rem;padding:.6rem .8rem;border-left:4px solid}} .ok{{border-color:{GREEN}}} .no{{border-color:{RED}}}
.scroll{{overflow-x:auto}}</style></head><body>
<h1>{e(ds.title)}</h1>
<p>Version <b>{e(result.version)}</b>; free numbers, constraints and objectives from the design file; every candidate
is the version with those numbers set, settled exactly (integer pence) on the scenario axis.</p>
{answer}{located}
<h2>The numbers</h2><div class="scroll"><table><thead><tr><th>free number</th><th>as shipped</th><th>chosen</th>
<th>range searched</th></tr></thead><tbody>{free}</tbody></table></div>
<h2>The constraints</h2><div class="scroll"><table><thead><tr><th>constraint</th><th>as shipped</th>
<th>chosen (exact run)</th><th>limit</th><th>holds</th></tr></thead><tbody>{cons}</tbody></table></div>
<h2>The objectives</h2><div class="scroll"><table><thead><tr><th>objective</th><th>as shipped</th><th>chosen</th></tr>
</thead><tbody>{objs}</tbody></table></div>
{check}
<h2>What relaxing one constraint buys</h2><p>The best value of {e(ds.objectives[0].name)} among the same candidates
with every constraint, and with all but the one named.</p><div class="scroll"><table><thead><tr><th>constraint
dropped</th><th>with every constraint</th><th>without it</th></tr></thead><tbody>{relax}</tbody></table></div>
<h2>Frontier and feasible region</h2>
{''.join(charts)}
</body></html>
"""
