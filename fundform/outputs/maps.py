"""Maps for the report: inline SVG of England at any level, geographic and as a hex cartogram.

The lower-tier authorities' outlines (data/maps/ltla.json, built by data/build_maps.py from ONS boundaries) are
defined once in the page and reused by every map. An area of a higher level (an upper-tier council, a region, an ICB,
a combined authority, a deal area) is drawn as the union of its member authorities, all filled with its colour: each
authority belongs to the area holding the largest share of it. Every drawn shape carries `data-area` and a tooltip
(`<title>`) with the area's name and value. Palettes are ColorBrewer's colour-blind-safe PuOr (diverging, for
changes and distances from target) and YlGnBu (sequential, for amounts).
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

import polars as pl

from fundform.base.paths import PROJECT_ROOT

MAPS = PROJECT_ROOT / "data" / "maps"
DIVERGING = ("#b35806", "#e08214", "#fdb863", "#fee0b6", "#f7f7f7", "#d8daeb", "#b2abd2", "#8073ac", "#542788")
SEQUENTIAL = ("#ffffcc", "#c7e9b4", "#7fcdbb", "#41b6c4", "#1d91c0", "#225ea8", "#0c2c84")


@lru_cache(maxsize=4)
def _load(name: str) -> dict:
    return json.loads((MAPS / name).read_text())


def available() -> bool:
    return (MAPS / "ltla.json").is_file()


def membership(lookup: pl.DataFrame, level: str, icb_changes: pl.DataFrame | None = None,
               codes: list[str] | None = None) -> dict[str, str]:
    """Each lower-tier authority's area at `level`: the one holding the largest share of it. At level icb, with the
    dataset's ICB changes (mergers, splits), an authority belongs to the later ICB that took the largest share of
    its own, so a run on the 2026 ICBs is drawn on them: always, or (given the run's area `codes`) only when the run
    is on ICBs the lookup predates."""
    lk = lookup.filter(pl.col("level") == level).sort(["area_code", "share", "target_code"],
                                                       descending=[False, True, False])
    out = dict(lk.group_by("area_code", maintain_order=True).agg(pl.col("target_code").first()).iter_rows())
    predates = codes is None or not set(codes) <= set(out.values())
    if level == "icb" and predates and icb_changes is not None and icb_changes.height:
        later = dict(icb_changes.sort(["old_code", "share", "new_code"], descending=[False, True, False])
                     .group_by("old_code", maintain_order=True).agg(pl.col("new_code").first()).iter_rows())
        return {ltla: str(later.get(icb, icb)) for ltla, icb in out.items()}
    return out


def defs() -> str:
    """The authorities' outlines, once per page: <path id="ltla-CODE">."""
    paths = _load("ltla.json")["paths"]
    body = "".join(f'<path id="ltla-{html.escape(c)}" d="{d}"/>' for c, d in paths.items())
    return f'<svg width="0" height="0" style="position:absolute" aria-hidden="true"><defs>{body}</defs></svg>'


def _range(values: Mapping[str, float | None], diverging: bool) -> tuple[float, float, bool]:
    """The colour scale's ends: a diverging scale is symmetric about zero and reaches the 95th percentile of the
    values' size, a sequential one the 2nd to 98th percentiles, so one extreme area does not wash out the rest
    (values beyond take the end colours; the legend says so). Returns (lo, hi, clipped)."""
    finite = sorted(v for v in values.values() if v is not None and math.isfinite(v))
    if not finite:
        return 0.0, 1.0, False
    pick = lambda xs, p: xs[min(len(xs) - 1, max(0, int(round(p * (len(xs) - 1)))))]
    if diverging:
        lim = pick(sorted(abs(v) for v in finite), 0.95) or max(abs(v) for v in finite) or 1.0
        return -lim, lim, max(abs(v) for v in finite) > lim
    lo, hi = pick(finite, 0.02), pick(finite, 0.98)
    if hi <= lo:
        lo, hi = finite[0], finite[-1]
    return lo, hi, finite[0] < lo or finite[-1] > hi


def _colour(v: float | None, lo: float, hi: float, diverging: bool) -> str:
    if v is None or not math.isfinite(v):
        return "#dddddd"
    if diverging:
        lim = max(abs(lo), abs(hi)) or 1.0
        i = int(round((v / lim + 1) / 2 * (len(DIVERGING) - 1)))
        return DIVERGING[min(max(i, 0), len(DIVERGING) - 1)]
    span = (hi - lo) or 1.0
    i = int((v - lo) / span * len(SEQUENTIAL))
    return SEQUENTIAL[min(max(i, 0), len(SEQUENTIAL) - 1)]


def paint(values: Mapping[str, float | None], names: Mapping[str, str], title: str, unit: str, fmt: Callable[[float], str],
          diverging: bool) -> dict[str, Any]:
    """What a map says of its values: each area's colour and tooltip, the legend's ends, the title. `geographic` and
    `hexmap` draw it; the explorer repaints a drawn map with a new one (the same colours and words either way)."""
    lo, hi, clipped = _range(values, diverging)
    le, ge = ("\u2264 ", "\u2265 ") if clipped else ("", "")
    return {"title": title, "unit": unit, "diverging": diverging, "low": le + fmt(lo), "high": ge + fmt(hi),
            "fill": {a: _colour(v, lo, hi, diverging) for a, v in values.items()},
            "tip": {a: f"{names.get(a, a)} ({a}): {fmt(v) if v is not None else 'no value'} {unit}"
                    for a, v in values.items()}}


def _legend(p: dict, width: float) -> str:
    """The colour scale, its two ends (classes lo and hi) and the unit."""
    colours = DIVERGING if p["diverging"] else SEQUENTIAL
    w = min(width * 0.6, 260) / len(colours)
    x0 = 10
    parts = [f'<rect x="{x0 + i * w:.1f}" y="0" width="{w:.1f}" height="10" fill="{c}"/>'
             for i, c in enumerate(colours)]
    parts.append(f'<text x="{x0}" y="24" class="k lo">{html.escape(p["low"])}</text>')
    parts.append(f'<text x="{x0 + len(colours) * w}" y="24" class="k hi" text-anchor="end">'
                 f'{html.escape(p["high"])}</text>')
    parts.append(f'<text x="{x0 + len(colours) * w + 8}" y="9" class="k unit">{html.escape(p["unit"])}</text>')
    return '<g class="legend">' + "".join(parts) + "</g>"


def _shape(tag: str, geometry: str, area: str, p: dict) -> str:
    return (f'<{tag} {geometry} data-area="{html.escape(area)}" fill="{p["fill"][area]}">'
            f'<title>{html.escape(p["tip"][area])}</title></{tag}>')


TITLE_LINE = 16  # a map's title may take two lines of this height, above the map


def wrap(title: str, chars: int) -> list[str]:
    """A title in at most two lines of about `chars` characters, broken between words (the page's script breaks a
    repainted title the same way: explorer_page.py, wrapTitle)."""
    words, lines = title.split(" "), [""]
    for w in words:
        if lines[-1] and len(lines[-1]) + 1 + len(w) > chars and len(lines) < 2:
            lines.append(w)
        else:
            lines[-1] = f"{lines[-1]} {w}" if lines[-1] else w
    return lines


def _frame(map_id: str, viewbox: str, title_at: tuple[float, float], p: dict, shapes: list[str], stroke: float,
           legend_at: str, width: float) -> str:
    chars = int(width / 8)  # a 14px bold title: about 8 units a character
    lines = "".join(f'<tspan x="{title_at[0]}" dy="{0 if i == 0 else TITLE_LINE}">{html.escape(line)}</tspan>'
                    for i, line in enumerate(wrap(p["title"], chars)))
    return (f'<figure class="map"><svg class="chart mapsvg" id="{map_id}" viewBox="{viewbox}" '
            f'role="img" aria-label="{html.escape(p["title"])}" xmlns="http://www.w3.org/2000/svg">'
            f'<title>{html.escape(p["title"])}</title>'
            f'<text x="{title_at[0]}" y="{title_at[1]}" class="t" data-chars="{chars}">{lines}</text>'
            f'<g class="areas" stroke="#ffffff" stroke-width="{stroke}">{"".join(shapes)}</g>'
            f'<g transform="translate({legend_at})">{_legend(p, width)}</g></svg></figure>')


def geographic(p: dict, member: dict[str, str], map_id: str) -> str:
    """A map of England: each authority's outline filled with its area's colour, the area's tooltip."""
    vb = _load("ltla.json")["viewBox"]
    uses = [_shape("use", f'href="#ltla-{html.escape(ltla)}"', area, p)
            for ltla, area in sorted(member.items()) if area in p["fill"]]
    return _frame(map_id, f"{vb[0]} {vb[1] - 30 - TITLE_LINE} {vb[2]} {vb[3] + 50 + TITLE_LINE}",
                  (vb[0] + 10, vb[1] - 12 - TITLE_LINE), p, uses, 0.25,
                  f"{vb[0]},{vb[1] + vb[3] - 10}", vb[2])


def _hex_points(cx: float, cy: float, r: float) -> str:
    return " ".join(f"{cx + r * math.cos(math.radians(60 * k - 30)):.1f},{cy + r * math.sin(math.radians(60 * k - 30)):.1f}"
                    for k in range(6))


def hexmap(p: dict, member: dict[str, str], level: str, map_id: str) -> str:
    """A hex cartogram: one equal hexagon per authority (per ICB at level icb), so London reads as well as the
    shires; an area of a higher level is its members' hexagons."""
    icb_hexes = _load("icb_hex.json")["hexes"]
    by_icb = level == "icb" and all(a in icb_hexes for a in p["fill"])  # ICBs of the hex map's vintage: one hex each
    hexes = icb_hexes if by_icb else _load("ltla_hex.json")["hexes"]
    owner = {c: c for c in hexes} if by_icb else member
    r = 22.0 if by_icb else 11.0
    w, hgt = math.sqrt(3) * r, 1.5 * r
    qs = [q for q, _ in hexes.values()]
    rs = [rr for _, rr in hexes.values()]
    top = max(rs)
    cells = []
    for code, (q, rr) in sorted(hexes.items()):
        area = owner.get(code)
        if area is None or area not in p["fill"]:
            continue
        cx = (q - min(qs)) * w + (w / 2 if rr % 2 else 0) + w
        cy = (top - rr) * hgt + r + 30 + TITLE_LINE  # odd-r rows count up from the south
        cells.append(_shape("polygon", f'points="{_hex_points(cx, cy, r * 0.98)}"', area, p))
    width = (max(qs) - min(qs) + 2) * w + w
    height = (top - min(rs) + 1) * hgt + r + 70 + TITLE_LINE
    return _frame(map_id, f"0 0 {width:.0f} {height:.0f}", (10, 18), p, cells, 0.6, f"0,{height - 36:.0f}", width)
