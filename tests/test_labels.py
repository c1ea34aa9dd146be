"""Words against numbers: every chart title, legend, axis title, tooltip and table heading of the report read
against the figure it shows.

The test holds its own glossary: the phrases a title, legend or heading may use and the figure each names, computed
here from the run's Parquet outputs as docs/output-schema.md defines the columns (baseline is today's funding
uprated to the year; population is residents, or registered patients for a version whose need is practice-based).
Each chart's words must name exactly one figure of the glossary (a title that says "today's funding" where the
figure is today's funding uprated names none, and fails), its unit must be the version's population's (per resident
or per registered patient), and the values a reader sees on hover must be that figure, to the rounding shown.
Three reports: fundform-needs with a sweep beside it (residents, deprivation deciles), the same against another
version (a comparison), and NHS England's 2026/27 round (registered patients, ICBs).
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from cli import app

runner = CliRunner()
YEAR = re.compile(r"\d{4}/\d{2}")
VOID = {"meta", "input", "br", "col", "img", "link", "hr"}


class Node:
    def __init__(self, tag: str, attrs: dict, parent: Node | None):
        self.tag, self.attrs, self.parent, self.children, self.parts = tag, attrs, parent, [], []

    def text(self) -> str:
        return "".join(p if isinstance(p, str) else p.text() for p in self.parts)

    def iter(self):
        yield self
        for c in self.children:
            yield from c.iter()

    def classes(self) -> set[str]:
        return set((self.attrs.get("class") or "").split())

    def child(self, tag: str) -> Node | None:
        return next((c for c in self.children if c.tag == tag), None)


class Tree(HTMLParser):
    """A page as a tree of elements (the standard library's parser; the report is our own well-formed markup)."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.root = self.at = Node("#root", {}, None)
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        node = Node(tag, dict(attrs), self.at)
        self.at.children.append(node)
        self.at.parts.append(node)
        if tag not in VOID:
            self.at = node

    def handle_startendtag(self, tag, attrs):
        node = Node(tag, dict(attrs), self.at)
        self.at.children.append(node)
        self.at.parts.append(node)

    def handle_endtag(self, tag):
        n = self.at
        while n is not None and n.tag != tag:
            n = n.parent
        if n is not None and n.parent is not None:
            self.at = n.parent

    def handle_data(self, data):
        self.at.parts.append(data)


def number(text: str) -> tuple[float, float]:
    """A number as shown ('-£1,234', '+1.2%', '1.5k', '-£12.3m', '0.987') and half its last shown digit."""
    m = re.fullmatch(r"\s*([+-]?)(-?)£?\s*([\d,]+)(?:\.(\d+))?\s*(bn|m|k)?%?\s*", text)
    assert m, f"not a number as shown: {text!r}"
    sign = -1.0 if "-" in (m[1] + m[2]) else 1.0
    scale = {"bn": 1e9, "m": 1e6, "k": 1e3, None: 1.0}[m[5]]
    decimals = len(m[4] or "")
    value = float(m[3].replace(",", "") + ("." + m[4] if m[4] else ""))
    return sign * value * scale, 0.5 * 10.0 ** -decimals * scale + 1e-9


def near(shown: str, value: float, what: str) -> None:
    v, tol = number(shown)
    assert abs(v - value) <= tol, f"{what}: shows {shown!r}, the figure is {value}"


class Glossary:
    """The phrases and the figures they name, for one run (a: its allocations, money in pounds)."""

    def __init__(self, run_dir, compared_dir=None):
        self.a = pl.read_parquet(run_dir / "allocations.parquet").with_columns(pl.col(pl.Decimal).cast(pl.Float64))
        need = pl.read_parquet(run_dir / "need.parquet")
        practice = any(c.startswith("wp_") and need[c].null_count() < need.height for c in need.columns)
        self.people = "registered patients" if practice else "residents"
        self.per = "per registered patient" if practice else "per resident"
        manifest = pl.read_json(run_dir / "manifest.json")
        self.price_base = manifest["parameters"][0]["price_base_year"]
        self.years = self.a["financial_year"].unique().sort().to_list()
        self.compared = None if compared_dir is None else pl.read_parquet(
            compared_dir / "allocations.parquet").with_columns(pl.col(pl.Decimal).cast(pl.Float64))
        a = pl.col
        per_area = {  # phrase -> (per-area figure, unit shown)
            "allocation against today's funding uprated": ((a("allocation") - a("baseline")) / a("population"),
                                                           f"£ {self.per}"),
            "allocation's distance from target": (a("distance_from_target") * 100, "% of target"),
            "distance from target of today's funding uprated": (
                (a("baseline") - a("target_allocation")) / a("target_allocation") * 100, "% of target"),
            f"grant {self.per}": (a("grant_per_head"), f"£ {self.per}"),
            "need index": (a("need_index"), "1 = england"),
        }
        self.per_area = per_area
        totals = {"grant (cash)": a("grant").sum(), f"grant ({self.price_base} prices)": a("grant_real").sum(),
                  self.people: a("population").sum(),
                  # an NHS allocation's path is its allocation (its grant is the allocation: no local tax)
                  "allocation (cash)": a("allocation").sum(),
                  f"allocation ({self.price_base} prices)": a("grant_real").sum()}
        self.totals = totals

    def name(self, words: str, table: dict) -> str:
        """The one phrase of `table` the words use (a phrase inside a longer one that also matches does not count)."""
        w = words.lower().replace("’", "'")
        found = [p for p in table if p.lower() in w]
        found = [p for p in found if not any(p != q and p.lower() in q.lower() for q in found)]
        assert len(found) == 1, f"{words!r} names {found or 'no figure'} of {list(table)}"
        return found[0]

    def year(self, words: str) -> pl.DataFrame:
        ys = YEAR.findall(words)
        assert len(ys) == 1, f"{words!r} should name one financial year"
        return self.a.filter(pl.col("financial_year") == ys[0])

    def area_values(self, words: str) -> tuple[dict[str, float], str]:
        phrase = self.name(words, self.per_area)
        expr, unit = self.per_area[phrase]
        rows = self.year(words)
        return dict(zip(rows["area_code"], rows.select(expr).to_series().to_list())), unit


def charts(tree: Tree) -> list[Node]:
    return [n for n in tree.root.iter() if n.tag == "svg" and "chart" in n.classes()]


def title_of(svg: Node) -> str:
    title = svg.child("title").text()
    shown = [" ".join(s.text() for s in t.children) if t.child("tspan") else t.text()
             for t in svg.iter() if t.tag == "text" and "t" in t.classes()]  # a title in lines: read whole
    assert shown == [title] and svg.attrs.get("aria-label") == title, (shown, title)
    return title


def marks(svg: Node) -> list[tuple[Node, str]]:
    return [(n, n.child("title").text()) for n in svg.iter() if n is not svg and n.child("title") is not None]


def axes(svg: Node) -> list[str]:
    return [t.text() for t in svg.children if t.tag == "text" and "l" in t.classes()]


def legend(svg: Node) -> list[str]:
    return [t.text().lstrip("■ ").strip() for t in svg.iter() if t.tag == "text" and t.text().startswith("■")]


TIP = re.compile(r"(?P<name>.+) \((?P<code>[A-Z0-9]+)\): (?P<value>\S+) (?P<unit>.+)")


def check_map(svg: Node, g: Glossary) -> str:
    title = title_of(svg)
    values, unit = g.area_values(title)
    shown_unit = next(t.text() for t in svg.iter() if t.tag == "text" and "unit" in t.classes())
    assert shown_unit == unit, f"{title}: legend says {shown_unit!r}, the figure is in {unit!r}"
    seen = set()
    for node, tip in marks(svg):
        m = TIP.fullmatch(tip)
        assert m and m["unit"] == unit, f"{title}: tooltip {tip!r} (unit {unit!r})"
        assert node.attrs["data-area"] == m["code"]
        near(m["value"], values[m["code"]], f"{title}, {m['code']}")
        seen.add(m["code"])
    assert seen == set(values), f"{title}: {len(seen)} areas drawn of {len(values)}"
    return title


def check_scatter(svg: Node, g: Glossary) -> None:
    title = title_of(svg)
    xlabel, ylabel = axes(svg)
    x, y = g.name(xlabel, g.per_area), g.name(ylabel, g.per_area)
    assert x.lower() in title.lower() and y.lower() in title.lower(), (title, x, y)
    assert "(£)" in ylabel if "£" in g.per_area[y][1] else "(£)" not in ylabel
    rows = g.year(title)
    xs = dict(zip(rows["area_name"], rows.select(g.per_area[x][0]).to_series()))
    ys = dict(zip(rows["area_name"], rows.select(g.per_area[y][0]).to_series()))
    tips = marks(svg)
    assert len(tips) == rows.height
    for _, tip in tips:
        name, rest = tip.rsplit(": ", 1)
        sx, sy = rest.split(", ")
        near(sx, xs[name], f"{title}, {name}, x")
        near(sy, ys[name], f"{title}, {name}, y")


def check_histogram(svg: Node, g: Glossary) -> None:
    title = title_of(svg)
    assert "distance from target" in title.lower() and "% of target" in axes(svg)[0]
    entries = legend(svg)
    assert len(entries) == 2
    for entry in entries:  # each series: a figure and its year, its bars' counts those of the figure
        values, unit = g.area_values(entry)
        v = np.array(list(values.values())) / 100
        bars_ = [tip for _, tip in marks(svg) if tip.startswith(entry + ":")]
        counts = [re.fullmatch(r"(\d+) areas? (.+)", t[len(entry) + 2:]) for t in bars_]
        assert bars_ and all(counts) and sum(int(m[1]) for m in counts) == len(v)
        for m in counts:
            n, tip = int(m[1]), m[2]
            edges = [number(e)[0] / 100 for e in re.findall(r"[+-][\d.]+%", tip)]
            lo = -np.inf if "below" in tip and "from" not in tip else edges[0]
            hi = np.inf if "or above" in tip else edges[-1]
            inside = ((v >= lo) & (v < hi)).sum()
            close = sum(np.isclose(v, e, atol=5e-5).sum() for e in edges)  # the shown edge is rounded
            assert abs(inside - n) <= close, f"{title}: {tip!r}, the figure has {inside}"


def check_lines(svg: Node, g: Glossary) -> None:
    title = title_of(svg)
    for entry in legend(svg):
        phrase = g.name(entry, g.totals)
        per_year = g.a.group_by("financial_year").agg(g.totals[phrase]).sort("financial_year")
        expected = dict(zip(per_year["financial_year"], per_year.to_series(1)))
        points = [tip for _, tip in marks(svg) if tip.startswith(entry + ", ")]
        assert len(points) == len(g.years), f"{title}: {entry!r} has {len(points)} points"
        for tip in points:
            year, shown = tip[len(entry) + 2:].split(": ")
            near(shown, expected[year], f"{title}, {entry}, {year}")


def check_waterfall(svg: Node, g: Glossary, run_dir) -> None:
    title = title_of(svg)
    assert axes(svg)[1] == "£ (cash) the step adds"
    w = pl.read_parquet(run_dir / "waterfall.parquet").with_columns(pl.col(pl.Decimal).cast(pl.Float64))
    name = title.split(": ", 1)[1].rsplit(", ", 1)[0]
    steps = w.filter((pl.col("area_name") == name) & (pl.col("financial_year") == YEAR.findall(title)[0]))
    expected = dict(zip(steps["step"], steps["amount"]))
    tips = [tip for _, tip in marks(svg)]
    assert len(tips) == len(expected) > 3
    for tip in tips:
        step, shown = tip.rsplit(": ", 1)
        near(shown, expected[step], f"{title}, {step}")


def check_deciles(svg: Node, g: Glossary, deciles: pl.DataFrame) -> None:
    title = title_of(svg)
    assert axes(svg)[1] == f"£ {g.per}" or axes(svg)[1] == f"change in grant {g.per} (£)", axes(svg)
    if "deprivation decile" not in title:  # no deciles at this level: the biggest losers and gainers by name
        values, unit = g.area_values(title)
        names = dict(zip(g.a["area_code"], g.a["area_name"]))
        by_name = {names[c]: v for c, v in values.items()}
        assert axes(svg)[1] == unit and "biggest losers and gainers" in title.lower()
        for _, tip in marks(svg):
            name, shown = tip.rsplit(": ", 1)
            near(shown, by_name[name], f"{title}, {name}")
        return
    rows = g.year(title).join(deciles, on="area_code")
    if "compared run" in title:
        assert g.compared is not None
        other = g.compared.select("area_code", "financial_year", grant_a=pl.col("grant"),
                                  population_a=pl.col("population"))
        rows = rows.join(other, on=["area_code", "financial_year"])
        figure = (pl.col("grant") - pl.col("grant_a")).sum() / pl.col("population_a").sum()
    else:
        assert g.name(title, g.per_area) == "allocation against today's funding uprated"
        figure = (pl.col("allocation") - pl.col("baseline")).sum() / pl.col("population").sum()
    expected = dict(rows.group_by("imd_decile").agg(figure.alias("v")).iter_rows())
    tips = [tip for _, tip in marks(svg)]
    assert len(tips) == 10
    for tip in tips:
        d, shown = tip.split(": ")
        near(shown, expected[int(d[1:])], f"{title}, {d}")


def check_sweep(svg: Node, g: Glossary, sweep_dir) -> None:
    title = title_of(svg)
    assert f"grant {g.per}" in title and axes(svg)[1] == f"grant {g.per} (£)"
    sw = pl.read_parquet(sweep_dir / "sweep.parquet").with_columns(pl.col(pl.Decimal).cast(pl.Float64))
    rows = sw.filter(pl.col("financial_year") == YEAR.findall(title)[0]).join(
        g.year(title).select("area_code", "area_name", "population"), on=["area_code", "area_name"])
    by_name = {r["area_name"]: r for r in rows.iter_rows(named=True)}
    tips = [tip for _, tip in marks(svg)]
    assert len(tips) == rows.height
    for tip in tips:
        m = re.fullmatch(r"(.+): median (\S+), 5-95%: (\S+) to (\S+)", tip)
        r = by_name[m[1]]
        for shown, col in zip(m.groups()[1:], ("grant_median", "grant_p5", "grant_p95")):
            near(shown, r[col] / r["population"], f"{title}, {m[1]}, {col}")


def check_bands(svg: Node, g: Glossary, run_dir) -> None:
    """A run with --uncertainty: each area's grant per head, central, 5th and 95th percentile over the draws."""
    title = title_of(svg)
    assert f"Grant {g.per}" in title and "5th-95th percentile" in title and "input draws" in title
    assert axes(svg)[1] == f"% of central grant {g.per}"  # each area's band against its own central figure
    u = pl.read_parquet(run_dir / "uncertainty.parquet").with_columns(pl.col(pl.Decimal).cast(pl.Float64))
    rows = u.filter(pl.col("financial_year") == YEAR.findall(title)[0]).join(
        g.year(title).select("area_code", "population"), on="area_code")
    by_name = {r["area_name"]: r for r in rows.iter_rows(named=True)}
    tips = [tip for _, tip in marks(svg)]
    assert len(tips) == rows.height
    widths = []
    for tip in tips:
        m = re.fullmatch(r"(.+): central (\S+), 5-95%: (\S+) to (\S+)", tip)
        r = by_name[m[1]]
        for shown, col in zip(m.groups()[1:], ("grant_central", "grant_p5", "grant_p95")):
            near(shown, r[col] / r["population"], f"{title}, {m[1]}, {col}")
        widths.append((r["grant_p95"] - r["grant_p5"]) / r["grant_central"])
    assert widths == sorted(widths)  # ordered by the width of the range (against the central figure, as drawn)


def check_table(tree: Tree, g: Glossary) -> None:
    """The areas table: each heading names the column under it (every row's value read against the run)."""
    table = next(n for n in tree.root.iter() if n.tag == "table" and n.attrs.get("id") == "areas")
    heads = [th.text() for th in table.iter() if th.tag == "th"]
    y0, y1 = g.years[0], g.years[-1]
    first = g.a.filter(pl.col("financial_year") == y0).select(
        "area_code", p0="population", t0="target_allocation", s0="target_share")
    last = g.a.filter(pl.col("financial_year") == y1).join(first, on="area_code")
    c = pl.col
    cash = g.a["todays_funding"].null_count() == 0  # today's funding in cash: shown where the version knows it
    meaning = {"area": None, g.people: c("population"), f"growth in {g.people} since {y0}": c("population") / c("p0") - 1,
               f"target {y0}": c("t0"), f"target share change since {y0}": c("target_share") / c("s0") - 1,
               "need index": c("need_index"), **({"today's funding (cash)": c("todays_funding")} if cash else {}),
               "target": c("target_allocation"), "allocation": c("allocation"),
               **({"allocation against today's funding (cash)": c("allocation") - c("todays_funding")} if cash else {}),
               "allocation's distance from target": c("distance_from_target"), "bound": None, "grant": c("grant"),
               f"grant {g.per}": c("grant_per_head")}
    assert heads == list(meaning), heads
    if cash:  # the card counting areas below today's funding in cash, in any year
        card = next(d for d in tree.root.iter() if d.tag == "div" and "card" in d.classes()
                    and d.text().startswith("areas below today's funding in cash"))
        below = g.a.filter(pl.col("allocation") < pl.col("todays_funding"))["area_code"].n_unique()
        assert card.child("b").text() == str(below)
    rows = [tr for tr in table.iter() if tr.tag == "tr" and tr.parent.tag == "tbody"]
    assert len(rows) == last.height
    by_code = {r["area_code"]: r for r in last.with_columns(
        **{f"h{i}": e for i, e in enumerate(meaning.values()) if e is not None}).iter_rows(named=True)}
    for tr in rows:
        cells = [td for td in tr.children if td.tag == "td"]
        code = cells[0].child("span").text()
        r = by_code[code]
        assert cells[heads.index("bound")].text() == r["transition_bound"]
        for i, td in enumerate(cells):
            if meaning[heads[i]] is not None:
                assert float(td.attrs["data-v"]) == pytest.approx(r[f"h{i}"], rel=1e-9, abs=1e-9), (heads[i], code)


def read_report(report, g: Glossary, run_dir, deciles=None, sweep_dir=None) -> list[str]:
    tree = Tree(report.read_text())
    seen = []
    for svg in charts(tree):
        kind = svg.attrs["id"]
        if "mapsvg" in svg.classes():
            check_map(svg, g)
        elif kind == "c1":
            check_scatter(svg, g)
        elif kind == "c2":
            check_histogram(svg, g)
        elif kind in ("c3", "c7"):
            check_lines(svg, g)
        elif kind == "c4":
            check_deciles(svg, g, deciles)
        elif kind == "c5":
            check_waterfall(svg, g, run_dir)
        elif kind == "c6":
            check_sweep(svg, g, sweep_dir)
        elif kind == "c8":
            check_bands(svg, g, run_dir)
        else:
            raise AssertionError(f"chart {kind} ({title_of(svg)!r}) is not read by this test: add it")
        seen.append(kind)
    check_table(tree, g)
    return seen


def run(tmp, name: str, *args: str):
    r = runner.invoke(app, ["run", "--out", str(tmp / name), "--quiet", "--no-record", *args])
    assert r.exit_code == 0, r.output
    return tmp / name


@pytest.fixture(scope="module")
def bundled_deciles():
    from fundform.base.paths import default_data_dir
    from fundform.outputs.compare import deprivation_deciles
    from fundform.studies.runs import checked_dataset

    data = checked_dataset(default_data_dir())
    def deciles(run_dir, level):  # the grouping the report used: deciles among the run's own areas
        codes = pl.read_parquet(run_dir / "allocations.parquet")["area_code"].unique().to_list()
        return deprivation_deciles(data, level, codes).select("area_code", "imd_decile")
    return deciles


@pytest.fixture(scope="module")
def needs_report(tmp_path_factory):
    """fundform-needs at lower tier with a sweep's range beside it and the bands of 20 draws of its inputs: every
    chart the report draws."""
    tmp = tmp_path_factory.mktemp("labels")
    (tmp / "u.toml").write_text('draws = 20\nseed = 1\n[[sources]]\ninput = "population"\nmethod = "vintages"\n'
                                'variant = "snpp2018"\n[[sources]]\ninput = "preventable_mortality"\n'
                                'column = "preventable_mortality_rate"\nmethod = "sampling"\n')
    run_dir = run(tmp, "needs", "--uncertainty", str(tmp / "u.toml"))
    sweep = runner.invoke(app, ["sweep", "--param", "transition.gap_closed_per_year=0.2:0.5", "--draws", "6",
                                "--out", str(tmp / "sweep"), "--quiet"])
    assert sweep.exit_code == 0, sweep.output
    r = runner.invoke(app, ["report", str(run_dir), "--sweep", str(tmp / "sweep"), "--quiet"])
    assert r.exit_code == 0, r.output
    return run_dir, tmp / "sweep"


def test_every_word_of_the_report_names_the_figure_it_shows(needs_report, bundled_deciles):
    """fundform-needs (residents) with a sweep's range beside it: maps, charts, legends, tooltips, table."""
    run_dir, sweep_dir = needs_report
    g = Glossary(run_dir)
    assert g.per == "per resident"
    seen = read_report(run_dir / "report.html", g, run_dir, bundled_deciles(run_dir, "ltla"), sweep_dir)
    assert sorted(seen) == ["c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8", "h1", "h2", "m1", "m2", "m3", "m4"]


def test_a_comparison_report_says_what_changed_in_pounds(tmp_path, bundled_deciles):
    """The comparison's change by decile is in pounds per resident (it was drawn in pence, 100 times too big)."""
    run_dir, other = run(tmp_path, "needs"), run(tmp_path, "reform", "--formula", "reform-2017")
    r = runner.invoke(app, ["report", str(run_dir), "--compare", str(other), "--quiet"])
    assert r.exit_code == 0, r.output
    g = Glossary(run_dir, other)
    seen = read_report(run_dir / "report.html", g, run_dir, bundled_deciles(run_dir, "ltla"))
    assert "c4" in seen


def test_an_nhs_report_counts_registered_patients(tmp_path, bundled_deciles):
    """NHS England's round: need from practice registers, so every per-head figure is per registered patient."""
    run_dir = run(tmp_path, "nhs", "--formula", "nhs-icb-2026", "--report")
    g = Glossary(run_dir)
    assert g.per == "per registered patient"
    seen = read_report(run_dir / "report.html", g, run_dir, bundled_deciles(run_dir, "icb"))
    # no c5: an NHS allocation is told by its letter's lines, not a grant's waterfall from an equal share per head
    assert sorted(seen) == ["c1", "c2", "c3", "c4", "c7", "h1", "h2", "m1", "m2", "m3", "m4"]


def test_the_glossary_refuses_words_that_say_less_than_the_figure(tmp_path):
    """The test can fail: a title naming today's funding (not uprated), or per head where patients are counted."""
    g = Glossary(run(tmp_path, "needs"))
    with pytest.raises(AssertionError, match="no figure"):
        g.area_values("Allocation against today's funding, 2030/31")
    with pytest.raises(AssertionError, match="no figure"):
        g.area_values("Grant per head, 2026/27")
    with pytest.raises(AssertionError, match="shows"):
        near("£1,234", 1236.0, "a tooltip")


CLEAR = """() => {  // every chart's words inside its picture and none over another
  const bad = [];
  document.querySelectorAll('svg.chart').forEach((svg) => {
    const box = svg.getBoundingClientRect();
    const texts = Array.from(svg.querySelectorAll('text')).filter((t) => t.textContent.trim());
    const r = texts.map((t) => t.getBoundingClientRect());
    r.forEach((a, i) => { if (a.left < box.left - 0.5 || a.right > box.right + 0.5 || a.top < box.top - 0.5 ||
                               a.bottom > box.bottom + 0.5) bad.push(svg.id + ': "' + texts[i].textContent + '" clipped');
      for (let j = i + 1; j < r.length; j++) { const b = r[j];
        const w = Math.min(a.right, b.right) - Math.max(a.left, b.left);
        const h = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
        if (w > 1 && h > 1) bad.push(svg.id + ': "' + texts[i].textContent + '" over "' + texts[j].textContent + '"'); } });
  });
  return bad;
}"""


def test_no_chart_clips_or_overlaps_its_words(needs_report, tmp_path):
    """In Chromium: the run report's every chart and map (titles, axis titles, ticks, legends, bar labels) and a
    design report's frontier and region, each text inside its picture and clear of every other (the explorer's are
    checked in tests/test_explorer.py)."""
    from tests.test_report import CHROMIUM, need_chromium

    need_chromium()
    from playwright.sync_api import sync_playwright

    import fundform

    run_dir, _ = needs_report
    nhs = run(tmp_path, "nhs", "--formula", "nhs-icb-2026", "--report")
    fundform.design("needs-fastest-pace", out=tmp_path / "design")  # a design's report: frontier and region
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        for report in (run_dir / "report.html", nhs / "report.html", tmp_path / "design" / "report.html"):
            page.goto(report.as_uri())
            page.wait_for_load_state()
            assert page.evaluate("document.querySelectorAll('svg.chart').length") >= (
                2 if "design" in report.parent.name else 11 if report.parent.name == "nhs" else 12)  # NHS: no
            # grant waterfall (its letter's lines instead)
            bad = page.evaluate(CLEAR)
            assert bad == [], (report, bad)
        browser.close()
