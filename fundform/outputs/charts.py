"""The report's charts as inline SVG (no script, no fetched font): scatter, bars, lines, histograms, and an area's
range beside its central figure (bands, ranges), each with its title and axis words; design_report.py draws with the
same frame and scales."""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Union

import numpy as np

from fundform.outputs.text import gbp

if TYPE_CHECKING:
    import polars as pl

# what a chart draws: numbers and labels as a column, an array or a list
Numbers = Union["pl.Series", np.ndarray, Sequence[float]]
Names = Union["pl.Series", Sequence[str]]

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


def linear_scale(lo: float, hi: float, a: float, b: float) -> Callable[[float], float]:
    span = (hi - lo) or 1.0
    return lambda v: a + (v - lo) / span * (b - a)


def y_axis(lo: float, hi: float, sy: Callable[[float], float]) -> list[str]:
    out = []
    for v in nice_ticks(lo, hi):
        y = sy(v)
        out.append(f'<line x1="{PAD}" x2="{W - 16}" y1="{y:.1f}" y2="{y:.1f}" class="g"/>'
                   f'<text x="{PAD - 4}" y="{y + 4:.1f}" text-anchor="end" class="k">{short_number(v)}</text>')
    return out


def scatter(xs: Numbers, ys: Numbers, names: Names, title: str, xlabel: str, ylabel: str, chart_id: str) -> str:
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


def bars(labels: Names, values: Numbers, title: str, xlabel: str, ylabel: str, chart_id: str,
         colors: list[str] | None = None) -> str:
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


def lines(xlabels: Names, series: dict[str, list[float]], title: str, ylabel: str, chart_id: str,
          fmt: Callable[[float], str] = short_number) -> str:
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


def histograms(series: dict[str, np.ndarray], title: str, xlabel: str, chart_id: str, bins: int = 24) -> str:
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


def _bin(edges: np.ndarray, i: int) -> str:
    """A histogram bar's span in words; the end bars hold every value beyond them."""
    if i == 0:
        return f"below {edges[1]:+.2%}"
    if i == len(edges) - 2:
        return f"at {edges[i]:+.2%} or above"
    return f"from {edges[i]:+.2%} to below {edges[i + 1]:+.2%}"


def bands(lows: Numbers, centrals: Numbers, highs: Numbers, names: Names, title: str, ylabel: str, chart_id: str
          ) -> str:
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


def ranges(lows: Numbers, mids: Numbers, highs: Numbers, names: Names, title: str, ylabel: str, chart_id: str,
           by_width: bool = False) -> str:
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
