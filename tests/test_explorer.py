"""fundform serve: the explorer's figures are the engine's (equal to a run with the same --set, to the penny), bad
requests get a 4xx JSON naming the parameter and its bounds, nothing reaches outside, and the page works end to end
in a real browser (Playwright driving Debian's Chromium)."""

from __future__ import annotations

import json
import os
import shutil
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import numpy as np
import polars as pl
import pytest

from fundform.formula.scenario import resolve_formula
from fundform.studies.pipeline import RunParameters, compute
from tests.conftest import DATA, require_chromium

if TYPE_CHECKING:
    from playwright.sync_api import Page

warnings.filterwarnings("ignore", message=".*httpx.*")  # starlette's test client names its successor; same API
from starlette.testclient import TestClient

from fundform.interfaces.explorer.engine import Explorer
from fundform.interfaces.explorer.server import create_app, serving

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def explorer():
    return Explorer(DATA)


@pytest.fixture(scope="module")
def client(explorer):
    return TestClient(create_app(explorer), base_url="http://127.0.0.1:8765")


def pence(pounds) -> np.ndarray:
    """The API's pounds (exact from whole pence) back to integer pence."""
    return np.rint(np.asarray(pounds, dtype=np.float64) * 100).astype(np.int64)


def run_grants(formula: str, sets: list[str], params: RunParameters, bundled) -> pl.DataFrame:
    r = compute(bundled, resolve_formula(formula, tuple(sets)), params)
    return r.allocations.sort("year_index", "area_code")


@pytest.mark.parametrize("values", [
    {"need.indicators.deprivation.elasticity": 0.41},
    {"need.age_cost_curve.bands.85-90.weight": 9.5, "transition.floor": -0.015},
    {"transition.gap_closed_per_year": 0.35, "local_tax.equalisation": 0.5, "control_total.real_growth": 0.01},
])
def test_the_figures_are_a_runs_with_the_same_set(client, bundled, values):
    r = client.post("/api/scenario", json={"formula": "fundform-needs", "level": "ltla", "values": values})
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["set"] == [f"{k}={v!r}" for k, v in values.items()]
    run = run_grants("fundform-needs", got["set"], RunParameters(), bundled)
    want = run["grant"].to_numpy().reshape(5, -1)  # integer pence
    assert np.array_equal(pence(got["areas"]["grant"]), want)  # every area, every year, to the penny
    assert list(pence(got["totals"]["grant"])) == list(want.sum(axis=1))
    last = run.filter(pl.col("year_index") == 5)
    assert np.allclose(got["areas"]["distance_from_target"], last["distance_from_target"].to_numpy(), atol=1e-12)
    per_head = run["grant_per_head"].to_numpy().reshape(5, -1)
    assert np.array_equal(pence(got["areas"]["grant_per_head"]), per_head)


def test_an_nhs_round_explores_its_pace_of_change(client, bundled):
    values = {"transition.max_gain": 0.004, "transition.gain_gap_closed": 0.1}
    got = client.post("/api/scenario", json={"formula": "nhs-icb-2025", "level": "icb", "values": values}).json()
    params = RunParameters(level="icb", start_year="2023/24", years=3)
    run = run_grants("nhs-icb-2025", got["set"], params, bundled)
    assert np.array_equal(pence(got["areas"]["grant"]), run["grant"].to_numpy().reshape(3, -1))


def test_save_as_scenario_gives_a_file_that_runs_to_the_same_figures(client, bundled, tmp_path):
    values = {"need.age_cost_curve.bands.75-84.weight": 5.0, "need.indicators.deprivation.elasticity": 0.3}
    saved = client.post("/api/save", json={"values": values}).json()
    f = tmp_path / "mine.toml"
    f.write_text(saved["toml"])
    run = compute(bundled, resolve_formula(str(f)), RunParameters()).allocations.sort("year_index", "area_code")
    got = client.post("/api/scenario", json={"values": values}).json()
    assert np.array_equal(pence(got["areas"]["grant"]), run["grant"].to_numpy().reshape(5, -1))
    assert saved["command"].startswith("fundform run --formula fundform-needs") and "--set" in saved["command"]


def test_the_waterfall_adds_to_the_areas_grant(client):
    values = {"need.indicators.deprivation.elasticity": 0.3}
    w = client.post("/api/waterfall", json={"values": values, "area": "E06000001"}).json()
    s = client.post("/api/scenario", json={"values": values}).json()
    i = s["areas"]["code"].index("E06000001")
    first = w["years"][0]
    assert round(sum(x["amount"] for x in first["steps"]), 2) == first["grant"] == s["areas"]["grant"][0][i]
    assert w["years"][-1]["grant"] == s["areas"]["grant"][-1][i]


@pytest.mark.parametrize("body, status, parameter", [
    ({"values": {"need.indicators.deprivation.elasticity": 11}}, 400, "need.indicators.deprivation.elasticity"),
    ({"values": {"need.indicators.deprivation.elasticity": "0.3"}}, 400, "need.indicators.deprivation.elasticity"),
    ({"values": {"need.indicators.deprivation.elasticity": True}}, 400, "need.indicators.deprivation.elasticity"),
    ({"values": {"__import__('os').system('id')": 1}}, 400, "__import__('os').system('id')"),
    ({"values": {"transition.floor": -0.05, "transition.ceiling": 0.1}}, 400, "transition.ceiling"),
    ({"formula": "../../../etc/passwd"}, 400, "formula"),
    ({"formula": "fundform-needs", "level": "deal:/etc/passwd"}, 400, "level"),
    ({"formula": "nhs-icb-2025", "level": "ltla"}, 400, "level"),
    ({"values": [1, 2]}, 400, "values"),
    ({"formula": 3}, 400, "formula"),
])
def test_bad_requests_get_a_4xx_naming_the_parameter(client, body, status, parameter):
    r = client.post("/api/scenario", json=body)
    assert r.status_code == status, r.text
    j = r.json()
    assert j["parameter"] == parameter and j["error"]
    if "bounds" in j and "min" in j["bounds"]:
        assert j["bounds"]["min"] < j["bounds"]["max"]


def test_nan_not_json_too_large_and_unknown_routes(client):
    r = client.post("/api/scenario", content=b'{"values": {"transition.floor": NaN}}',
                    headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["parameter"] == "transition.floor"
    json_type = {"content-type": "application/json"}
    assert client.post("/api/scenario", content=b"not json", headers=json_type).status_code == 400
    assert client.post("/api/scenario", content=b"{" + b" " * 70_000 + b"}", headers=json_type).status_code == 413
    assert client.get("/api/scenario").status_code == 405
    r = client.get("/etc/passwd")
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/json")
    assert client.get("/api/../../data/default/population.parquet").status_code == 404


def test_an_infeasible_policy_is_a_422_without_the_servers_paths(client, explorer):
    r = client.post("/api/scenario", json={"values": {"transition.floor": 0.05, "transition.gap_closed_per_year": 0}})
    assert r.status_code == 422 and "floor" in r.json()["error"]
    assert str(DATA) not in r.text and "/work" not in r.text and "/tmp" not in r.text


def test_the_page_fetches_nothing_from_elsewhere_and_forbids_it(client):
    r = client.get("/")
    assert r.status_code == 200
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp
    import re
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", r.text)
    assert set(re.findall(r"https?://[^\"' )<]+", r.text)) <= {"http://www.w3.org/2000/svg"}


def test_serve_binds_to_this_machine_by_default():
    from typer.testing import CliRunner

    from cli import app

    out = CliRunner().invoke(app, ["serve", "--help"]).output
    assert "127.0.0.1" in out
    bad = CliRunner().invoke(app, ["serve", "--formula", "/etc/passwd"])
    assert bad.exit_code == 2


# -- end to end, in a real browser ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def server(explorer):
    with serving(explorer) as url:
        yield url


def need_browser():
    require_chromium(CHROMIUM)


@contextmanager
def opened(server: str, *, width: int, height: int, query: str = "") -> Iterator[Page]:
    """The explorer open in headless Debian Chromium at `width` x `height` (and `query`, a link's fragment), its
    first figures drawn; the browser closed on leaving, whatever the test found."""
    need_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.goto(server + query)
            page.wait_for_selector('body[data-updates="1"]', state="attached", timeout=30_000)
            yield page
        finally:
            browser.close()


def test_end_to_end_in_chromium(server, bundled, tmp_path):
    need_browser()
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        requests: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        page.goto(server)
        page.wait_for_selector('body[data-updates="1"]', state="attached", timeout=30_000)
        before = float(page.get_attribute("#grant-last", "data-pounds"))
        fills_before = page.eval_on_selector_all("#x1 use", "es => es.map(e => e.getAttribute('fill'))")
        drawn = page.eval_on_selector_all("#x1 [data-area]", "es => new Set(es.map(e => e.dataset.area)).size")
        assert drawn == 296  # every authority of the level on the map
        # move a slider and let go, as a person would: the map follows (need moves money between areas)
        move = ("(e, v) => { e.value = v; e.dispatchEvent(new Event('input')); e.dispatchEvent(new Event('change')); }")
        page.locator('input[data-path="need.indicators.deprivation.elasticity"]').evaluate(move, "0.55")
        page.wait_for_selector('body[data-updates="2"]', state="attached", timeout=30_000)
        fills_after = page.eval_on_selector_all("#x1 use", "es => es.map(e => e.getAttribute('fill'))")
        # and a second: the totals follow (real growth moves the control total)
        page.locator('input[data-path="control_total.real_growth"]').evaluate(move, "0.03")
        page.wait_for_selector('body[data-updates="3"]', state="attached", timeout=30_000)
        after = float(page.get_attribute("#grant-last", "data-pounds"))
        page.wait_for_selector("body[data-waterfall]", state="attached", timeout=30_000)
        command = page.inner_text("#command")
        page.screenshot(path=str(tmp_path / "explorer.png"), full_page=False)
        browser.close()
    assert not errors, errors
    assert all(u.startswith(server) for u in requests), [u for u in requests if not u.startswith(server)]
    assert fills_before != fills_after  # the map changed
    run = compute(bundled, resolve_formula("fundform-needs", ("need.indicators.deprivation.elasticity=0.55",
                                                              "control_total.real_growth=0.03")),
                  RunParameters()).allocations
    want = int(run.filter(pl.col("year_index") == 5)["grant"].sum())  # pence
    assert round(after * 100) == want and after != before  # a direct run's figure, to the penny
    assert "--set need.indicators.deprivation.elasticity=0.55 --set control_total.real_growth=0.03" in command
    assert (tmp_path / "explorer.png").stat().st_size > 20_000
    if os.environ.get("FUNDFORM_SCREENSHOTS"):  # refresh the picture in docs/ on purpose only
        shutil.copy(tmp_path / "explorer.png", os.environ["FUNDFORM_SCREENSHOTS"])
    json.dumps(errors)


BAD_BODIES = [  # (what, body bytes, extra headers, expected status, a word the message must hold)
    ("out of range", b'{"values": {"transition.floor": -9}}', {}, 400, "transition.floor"),
    ("a string", b'{"values": {"transition.floor": "x"}}', {}, 400, "transition.floor"),
    ("a boolean", b'{"values": {"transition.floor": true}}', {}, 400, "transition.floor"),
    ("null", b'{"values": {"transition.floor": null}}', {}, 400, "transition.floor"),
    ("NaN", b'{"values": {"transition.floor": NaN}}', {}, 400, "transition.floor"),
    ("Infinity", b'{"values": {"transition.floor": -Infinity}}', {}, 400, "transition.floor"),
    ("1e400", b'{"values": {"transition.floor": 1e400}}', {}, 400, "transition.floor"),
    ("unknown parameter", b'{"values": {"no.such.number": 1}}', {}, 400, "no.such.number"),
    ("not a slider", b'{"values": {"local_tax.price_year": 2024}}', {}, 400, "local_tax.price_year"),
    ("traversal formula", b'{"formula": "../../etc/passwd"}', {}, 400, "formula"),
    ("traversal level", b'{"level": "deal:../../../etc/passwd"}', {}, 400, "level"),
    ("not JSON", b"values=1", {}, 400, "not JSON"),
    ("not an object", b"[1, 2, 3]", {}, 400, "object"),
    ("oversized", b'{"values": {}, "pad": "' + b"x" * 70_000 + b'"}', {}, 413, "KiB"),
    ("lying length", b"{}", {"content-length": "99999999"}, 413, "KiB"),
    ("deep nesting", b"[" * 5000 + b"]" * 5000, {}, 400, "deeper"),
    ("deep in an object", b'{"values": ' + b'{"a": ' * 20 + b"1" + b"}" * 21, {}, 400, "deeper"),
]


@pytest.mark.parametrize("endpoint", ["/api/scenario", "/api/waterfall", "/api/save", "/api/bands"])
@pytest.mark.parametrize("what, raw, extra, status, word", BAD_BODIES, ids=[b[0] for b in BAD_BODIES])
def test_every_bad_input_class_gets_a_4xx_naming_it_at_every_endpoint(client, endpoint, what, raw, extra, status,
                                                                      word):
    if endpoint == "/api/waterfall" and raw.startswith(b"{") and b'"area"' not in raw and status == 400 \
            and word not in ("not JSON", "deeper"):
        raw = raw[:-1] + b', "area": "E06000001"}'  # so the class tested, not the missing area, is what is refused
    r = client.post(endpoint, content=raw, headers={"content-type": "application/json", **extra})
    assert r.status_code == status, (what, r.status_code, r.text[:300])
    assert word in r.text, (what, r.text[:300])
    assert client.get("/api/setup").status_code == 200  # and the server keeps serving


def test_a_chunked_body_is_read_no_further_than_the_bound(client):
    def chunks():
        for _ in range(100):
            yield b"x" * 8192  # 800 KB, no content-length
    r = client.post("/api/scenario", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and "KiB" in r.text


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8765", "127.0.0.1.evil.example", "", "[::2]:8765"])
def test_a_foreign_host_header_is_refused_before_any_route(explorer, host):
    """DNS rebinding: a page on another origin whose name resolves to 127.0.0.1 sends its own name as Host."""
    c = TestClient(create_app(explorer), base_url="http://127.0.0.1:8765")
    for method, path in (("GET", "/"), ("GET", "/api/setup"), ("POST", "/api/scenario")):
        r = c.request(method, path, headers={"host": host}, content=b"{}")
        assert r.status_code == 421 and "Host header" in r.json()["error"], (host, path)
    for ok in ("localhost:8765", "127.0.0.1", "[::1]:8765", "LOCALHOST"):
        assert c.get("/api/setup", headers={"host": ok}).status_code == 200, ok


def test_the_bound_address_is_an_allowed_host(explorer):
    c = TestClient(create_app(explorer, host="10.1.2.3"), base_url="http://10.1.2.3:8765")
    assert c.get("/api/setup").status_code == 200
    assert c.get("/api/setup", headers={"host": "10.1.2.4"}).status_code == 421


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
def test_the_wrong_method_is_a_405_naming_it(client, method):
    r = client.request(method, "/api/scenario", content=b"{}")
    assert r.status_code == 405 and method in r.json()["error"]


def _move(page, path: str, value: str, n: int) -> None:
    page.locator(f'input[data-path="{path}"]').evaluate(
        "(e, v) => { e.value = v; e.dispatchEvent(new Event('input')); e.dispatchEvent(new Event('change')); }", value)
    page.wait_for_selector(f'body[data-updates="{n}"]', state="attached", timeout=30_000)


def _csv(page) -> pl.DataFrame:
    import io
    import urllib.parse

    page.click("#csv")
    href = page.get_attribute("#csv-link", "href")
    return pl.read_csv(io.StringIO(urllib.parse.unquote(href.split(",", 1)[1])))


def test_the_analysts_explorer_in_chromium(server, bundled, tmp_path):
    """The link reopens the same figures; undo returns to them; the download equals `fundform run --set` and its
    change from the version as shipped equals `fundform compare` to the penny; headings say what they hold; no
    horizontal scroll on a phone; the design panel answers and loads a point of its frontier."""
    need_browser()
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(server)
        page.wait_for_selector('body[data-updates="1"]', state="attached", timeout=30_000)
        shipped = page.get_attribute("#grant-last", "data-pounds")
        assert "allocation against today's funding uprated" in page.inner_text("#movers-title")
        assert "per resident" in page.inner_text("#movers-title")
        _move(page, "need.indicators.deprivation.elasticity", "0.4", 2)
        _move(page, "control_total.real_growth", "0.03", 3)
        assert "against the version as shipped" in page.inner_text("#movers-title")
        assert "my change against the version as shipped" in page.inner_text("#x1 .t, #maps").lower() or \
            "my change against the version as shipped" in page.content()
        heads = page.eval_on_selector_all("#all-areas th", "es => es.map(e => e.textContent)")
        assert any(h.startswith("grant: change from the version as shipped") for h in heads)
        assert any(h.startswith("allocation against today’s funding uprated") for h in heads)
        # every area is in the table (it draws the rows in view, spacers for the rest): scrolled to the end, the
        # last of the sorted areas is drawn
        assert page.get_attribute("#areas-table", "data-rows") == "296"
        assert "296 of 296 areas" in page.inner_text("#areas-count")
        drawn = page.eval_on_selector_all("#all-areas tbody tr[data-area]", "es => es.map(e => e.dataset.area)")
        assert 10 <= len(drawn) < 296
        page.eval_on_selector("#areas-table", "e => { e.scrollTop = e.scrollHeight; }")
        page.wait_for_function("() => { const r = document.querySelectorAll('#all-areas tbody tr[data-area]'); "
                               "return r.length && r[0].dataset.area !== " + json.dumps(drawn[0]) + "; }")
        tail = page.eval_on_selector_all("#all-areas tbody tr[data-area]", "es => es.map(e => e.dataset.area)")
        assert not set(tail) & set(drawn[:5]) and len(set(drawn) | set(tail)) > len(drawn)
        # filtered while scrolled to the end: the matching areas are drawn (not a blank box)
        page.fill("#filter", "upon")  # in names only (the filter also reads each area's region, ICB and CA)
        names = page.eval_on_selector_all("#all-areas tbody tr[data-area] td:first-child", "es => es.map(e => "
                                          "e.textContent.toLowerCase())")
        assert names and all("upon" in n for n in names)
        assert page.inner_text("#areas-count").startswith(f"{len(names)} of 296")
        page.fill("#filter", "")
        # a heading sorts every area (not just those drawn); a row opens its area's waterfall
        page.click('#all-areas th[data-key="grant"]')
        page.wait_for_function("() => document.querySelector('#all-areas th[data-key=\"grant\"]').textContent"
                               ".includes('\u25bc')")
        biggest = page.get_attribute("#all-areas tbody tr[data-area]", "data-area")
        page.click('#all-areas th[data-key="grant"]')
        page.wait_for_function("() => document.querySelector('#all-areas th[data-key=\"grant\"]').textContent"
                               ".includes('\u25b2')")
        smallest = page.get_attribute("#all-areas tbody tr[data-area]", "data-area")
        page.click(f'#all-areas tr[data-area="{smallest}"]')
        try:
            page.wait_for_selector(f'body[data-waterfall="{smallest}"]', state="attached", timeout=30_000)
        except Exception:  # say what the page shows instead
            raise AssertionError((page.get_attribute("body", "data-waterfall"), page.inner_text("#waterfall")[:300],
                                  page.inner_text("#status"), errors)) from None
        scenario_pounds = page.get_attribute("#grant-last", "data-pounds")
        table = _csv(page)
        last_year = table.filter(pl.col("financial_year") == table["financial_year"].max()).sort("grant_gbp")
        assert (smallest, biggest) == (last_year["area_code"][0], last_year["area_code"][-1])
        page.click("#xlsx")  # the scenario's run as an Excel workbook, from the page
        page.wait_for_selector('body[data-download="xlsx"]', state="attached", timeout=30_000)
        assert int(page.get_attribute("#file-link", "data-bytes")) > 10_000
        assert page.get_attribute("#file-link", "download").endswith(".xlsx")
        url = page.url
        assert "need.indicators.deprivation.elasticity" in url and "#f=fundform-needs" in url
        # the link reopens the same figures
        other = browser.new_page(viewport={"width": 1400, "height": 1000})
        other.goto(url)
        other.wait_for_selector('body[data-updates="1"]', state="attached", timeout=30_000)
        assert other.get_attribute("#grant-last", "data-pounds") == scenario_pounds
        assert other.locator('input[data-path="need.indicators.deprivation.elasticity"]').input_value() == "0.4"
        # undo twice: the version as shipped again
        page.click("#undo")
        page.wait_for_selector('body[data-updates="4"]', state="attached", timeout=30_000)
        page.click("#undo")
        page.wait_for_selector('body[data-updates="5"]', state="attached", timeout=30_000)
        assert page.get_attribute("#grant-last", "data-pounds") == shipped
        # the design panel: two numbers, a constraint, an answer, a frontier point loaded as the scenario
        page.select_option("#d1", "transition.gap_closed_per_year")
        page.select_option("#d2", "transition.floor")
        page.fill("#dfall", "")
        page.fill("#dtarget", "30")
        page.click("#run-design")
        page.wait_for_selector("body[data-design]", state="attached", timeout=30_000)
        assert page.get_attribute("body", "data-design") == "feasible"
        assert "can be met" in page.inner_text("#design-answer")
        page.locator("#design-frontier button").first.click()
        page.wait_for_selector('body[data-updates="6"]', state="attached", timeout=30_000)
        assert page.locator('input[data-path="transition.floor"]').input_value() != "0"
        # a phone: figures first, no horizontal scroll
        phone = browser.new_page(viewport={"width": 390, "height": 844})
        phone.goto(url)
        phone.wait_for_selector('body[data-updates="1"]', state="attached", timeout=30_000)
        assert phone.evaluate("document.documentElement.scrollWidth") <= 390
        assert phone.evaluate("document.getElementById('figures').getBoundingClientRect().top < "
                              "document.getElementById('controls').getBoundingClientRect().top")
        browser.close()
    assert not errors, errors
    sets = ("need.indicators.deprivation.elasticity=0.4", "control_total.real_growth=0.03")
    run = run_grants("fundform-needs", list(sets), RunParameters(), bundled)
    got = table.sort("financial_year", "area_code")
    assert (pence(got["grant_gbp"].to_list()) == run.sort("financial_year", "area_code")["grant"].to_numpy()).all()
    scenario = tmp_path / "s.toml"
    scenario.write_text('extends = "fundform-needs"\nneed.indicators.deprivation.elasticity = 0.4\n'
                        "control_total.real_growth = 0.03\n")
    from typer.testing import CliRunner

    from cli import app as cli_app

    cmp = CliRunner().invoke(cli_app, ["compare", "fundform-needs", str(scenario), "--out", str(tmp_path / "c.parquet"),
                                       "-q"])
    assert cmp.exit_code == 0, cmp.output
    change = pl.read_parquet(tmp_path / "c.parquet").sort("financial_year", "area_code")
    mine = pence(got["grant_gbp"].to_list()) - pence(got["grant_as_shipped_gbp"].to_list())
    assert (mine == (change["change"].cast(pl.Float64) * 100).round(0).cast(pl.Int64).to_numpy()).all()


def test_a_typed_value_beyond_the_slider_is_bounded_by_the_version_as_set_and_sweep_are(client, bundled):
    """One source of bounds: the explorer accepts what `fundform run --set` accepts (an elasticity of 2, beyond the
    slider's 0 to 1) with the same figures, and refuses what it refuses (11, above the declared 10)."""
    ok = client.post("/api/scenario", json={"values": {"need.indicators.deprivation.elasticity": 2.0}})
    assert ok.status_code == 200, ok.text
    run = run_grants("fundform-needs", ["need.indicators.deprivation.elasticity=2.0"], RunParameters(), bundled)
    assert np.array_equal(pence(ok.json()["areas"]["grant"]), run["grant"].to_numpy().reshape(5, -1))
    bad = client.post("/api/scenario", json={"values": {"need.indicators.deprivation.elasticity": 11}})
    assert bad.status_code == 400 and bad.json()["parameter"] == "need.indicators.deprivation.elasticity"
    from fundform.formula.scenario import resolve_formula as resolve

    with pytest.raises(Exception, match="elasticity"):  # --set refuses the same value
        resolve("fundform-needs", ("need.indicators.deprivation.elasticity=11",))



@pytest.mark.parametrize("fmt", ["parquet", "xlsx"])
def test_the_scenario_downloads_as_the_run_its_set_writes(client, bundled, fmt, tmp_path):
    """The explorer's Parquet and Excel are the run `fundform run --set` writes: its allocations to the penny, its
    manifest (and run id) carried along."""
    import io

    import pyarrow.parquet as pq

    values = {"need.indicators.deprivation.elasticity": 0.3}
    r = client.post("/api/download", json={"values": values, "format": fmt})
    assert r.status_code == 200, r.text
    run = run_grants("fundform-needs", ["need.indicators.deprivation.elasticity=0.3"], RunParameters(), bundled)
    if fmt == "parquet":
        table = pq.read_table(io.BytesIO(r.content))
        got = pl.from_arrow(table).sort("year_index", "area_code")
        assert (pence(got["grant"].cast(pl.Float64).to_list()) == run["grant"].to_numpy()).all()
        manifest = json.loads(table.schema.metadata[b"fundform"])
        assert manifest["overrides"][0]["path"] == "need.indicators.deprivation.elasticity"
        assert manifest["run_id"] in r.headers["content-disposition"]
    else:
        import zipfile

        assert zipfile.ZipFile(io.BytesIO(r.content)).namelist()  # an xlsx is a zip of sheets
        assert r.headers["content-disposition"].endswith('.xlsx"')
    bad = client.post("/api/download", json={"values": values, "format": "../../etc/passwd"})
    assert bad.status_code == 400 and "format" in bad.text


def test_every_heading_and_title_of_the_explorer_names_its_figure(server, bundled):
    """The explorer's words read against a run of the same scenario and of the version as shipped (the glossary of
    tests/test_labels.py): the maps' titles, legends and every tooltip; each heading of the table of every area and
    the rows it draws; the winners' and losers' title and column; the totals' headings; the path's points."""
    need_browser()
    from playwright.sync_api import sync_playwright

    from tests.test_labels import CLEAR, TIP, Tree, marks, near, title_of

    sets = ("need.indicators.deprivation.elasticity=0.4",)
    mine = compute(bundled, resolve_formula("fundform-needs", sets), RunParameters()).allocations
    shipped = compute(bundled, resolve_formula("fundform-needs"), RunParameters()).allocations
    year = mine["financial_year"].max()
    pounds = lambda c: pl.col(c).cast(pl.Float64) / 100  # (the run's money is integer pence)
    a = mine.filter(pl.col("financial_year") == year).join(
        shipped.filter(pl.col("financial_year") == year).select("area_code", grant_shipped="grant",
                                                                 d_shipped="distance_from_target"), on="area_code")
    fig = {r["area_code"]: r for r in a.select(
        "area_code", "d_shipped", "distance_from_target", target=pounds("target_allocation"),
        allocation=pounds("allocation"), grant=pounds("grant"), uprated=pounds("baseline"),
        todays=pounds("todays_funding"),
        per_head=pounds("grant_per_head"), change=pounds("grant") - pounds("grant_shipped"),
        change_ph=(pounds("grant") - pounds("grant_shipped")) / pl.col("population")).iter_rows(named=True)}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(server)
        page.wait_for_selector('body[data-updates="1"]', state="attached", timeout=30_000)
        _move(page, "need.indicators.deprivation.elasticity", "0.4", 2)
        tree = Tree(page.content())
        assert page.evaluate(CLEAR) == []  # the maps' and the path's words inside their pictures, none overlapping
        browser.close()
    svgs = {n.attrs.get("id"): n for n in tree.root.iter() if n.tag == "svg"}
    per_area = {"grant: my change against the version as shipped": ("change_ph", "£ per resident"),
                "allocation's distance from target": ("distance_from_target", "% of target")}
    for map_id in ("x1", "x2", "x3"):
        title = title_of(svgs[map_id])
        (phrase,) = [p for p in per_area if p in title.lower().replace("’", "'")]
        key, unit = per_area[phrase]
        assert year in title and next(t.text() for t in svgs[map_id].iter() if "unit" in t.classes()) == unit
        for _, tip in marks(svgs[map_id]):
            m = TIP.fullmatch(tip)
            assert m["unit"] == unit, tip
            near(m["value"], fig[m["code"]][key] * (100 if unit.startswith("%") else 1), f"{title}: {tip}")
    # the table of every area: each heading's figure in the rows drawn
    cells = {  # heading -> the figure, from the two runs (pounds; the table shows £m and %)
        "target": lambda r: r["target"] / 1e6,
        "allocation's distance from target, as shipped": lambda r: r["d_shipped"] * 100,
        "allocation's distance from target, this scenario": lambda r: r["distance_from_target"] * 100,
        "allocation": lambda r: r["allocation"] / 1e6,
        "allocation against today's funding uprated": lambda r: (r["allocation"] - r["uprated"]) / 1e6,
        "grant": lambda r: r["grant"] / 1e6, "grant per resident (£)": lambda r: r["per_head"],
        "grant: change from the version as shipped": lambda r: r["change"] / 1e6}
    table = next(n for n in tree.root.iter() if n.attrs.get("id") == "all-areas")
    heads = [th.text().rstrip(" ▲▼").replace("’", "'") for th in table.iter() if th.tag == "th"]
    assert heads == ["area", "today's funding (cash, base year)", *list(cells)[:4],
                     "allocation against today's funding (cash)", *list(cells)[4:]], heads
    rows = [tr for tr in table.iter() if tr.tag == "tr" and "data-area" in tr.attrs]
    assert len(rows) >= 10
    for tr in rows:
        shown = dict(zip(heads, [td.text() for td in tr.children if td.tag == "td"]))
        r = fig[tr.attrs["data-area"]]
        for head, f in cells.items():
            near(shown[head].rstrip("m"), f(r), f"{head}, {tr.attrs['data-area']}")
        cash = number_or_none(shown["today's funding (cash, base year)"])
        near(shown["today's funding (cash, base year)"].rstrip("m"), r["todays"] / 1e6, "today's funding (cash)")
        if cash is not None:  # the cash change is the allocation against the cash shown, not the uprated
            change = number_or_none(shown["allocation against today's funding (cash)"])
            assert abs(change - (r["allocation"] / 1e6 - cash)) <= 0.1 + 1e-9  # two figures each shown to £0.1m
            assert abs(change - (r["allocation"] - r["uprated"]) / 1e6) > 0.1  # and not the uprated one
    # winners and losers: the title names the measure; the column is my change per resident
    movers = next(n for n in tree.root.iter() if n.attrs.get("id") == "movers-title").text()
    assert movers == f"Who gains and who loses, {year}: grant: my change against the version as shipped, £ per resident"
    for tid in ("winners", "losers"):
        t = next(n for n in tree.root.iter() if n.attrs.get("id") == tid)
        trs = [tr for tr in t.iter() if tr.tag == "tr"]
        assert [c.text() for c in trs[0].children] == [
            "area", "grant: my change against the version as shipped (£ per resident)",
            "allocation’s distance from target"]
        for tr in trs[1:]:
            name, change, dist = (c.text() for c in tr.children)
            code = name.rsplit("(", 1)[1].rstrip(")")
            near(change, fig[code]["change_ph"], f"{tid}: {name}")
            near(dist.rstrip("%"), fig[code]["distance_from_target"] * 100, f"{tid}: {name}")
    # the totals: each heading's sum, each year
    totals = next(n for n in tree.root.iter() if n.attrs.get("id") == "totals")
    trs = [tr for tr in totals.iter() if tr.tag == "tr"]
    pb = mine["financial_year"].min()  # the run's price base year: its first
    assert [c.text() for c in trs[0].children] == ["year", "target", "allocation", "grant, this scenario",
                                                   "grant, as shipped", f"grant, this scenario ({pb} prices)",
                                                   "moved between areas (cash, against as shipped)",
                                                   "areas held at a floor (as shipped)", "residents"]
    both = mine.join(shipped.select("area_code", "financial_year", g0="grant", b0="transition_bound"),
                     on=["area_code", "financial_year"])
    sums = both.group_by("financial_year").agg(
        pounds("target_allocation").sum(), pounds("allocation").sum(), pounds("grant").sum(),
        pl.col("population").sum(), pounds("grant_real").sum().alias("real"),
        shipped=pounds("g0").sum(), moved=((pl.col("grant") - pl.col("g0")).clip(0, None) / 100).sum(),
        floors=(pl.col("transition_bound") == "floor").sum(), floors0=(pl.col("b0") == "floor").sum())
    by_year = {r["financial_year"]: r for r in sums.iter_rows(named=True)}
    for tr in trs[1:]:
        y, target, alloc, grant, grant0, real, moved, held, people = (c.text() for c in tr.children)
        r = by_year[y]
        for s, v in ((target, r["target_allocation"]), (alloc, r["allocation"]), (grant, r["grant"]),
                     (grant0, r["shipped"]), (real, r["real"]), (moved, r["moved"]), (people, r["population"])):
            near(s, v, f"totals {y}")
        assert held == f"{r['floors']} ({r['floors0']})", (y, held)
    # the path: its title says cash, its points the scenario's total grant each year
    path = svgs["pathchart"]
    assert "Total grant by year (cash)" in next(t.text() for t in path.iter() if "t" in t.classes())
    for _, tip in marks(path):
        y, shown = tip.split(": ")
        near(shown, by_year[y]["grant"], f"path {y}")


def number_or_none(text: str) -> float | None:
    from tests.test_labels import number

    return None if not text.strip() else number(text.rstrip("m"))[0]


@pytest.mark.parametrize("fid", ["fundform-needs", "hdc-2021", "nhs-icb-2026"])
def test_every_slider_offers_a_range_the_version_accepts_around_its_own_value(fid):
    """A slider's ends are values `--set` accepts (the version's declared bounds, one source) with the shipped value
    between them; an age band's weight is offered from a third to three times its own (it was 0.1 to 60 for every
    band), on a grid of round steps through its own weight (a slider position)."""
    from fundform.interfaces.explorer.engine import sliders

    for s in sliders(resolve_formula(fid).spec):
        assert s.lo <= s.value <= s.hi, s
        for end in (s.lo, s.hi):
            resolve_formula(fid, (f"{s.path}={end!r}",))  # raises if the version's bounds refuse it
        if ".age_cost_curve.bands." in s.path:
            k = (s.value - s.lo) / s.step
            assert s.value / 3 - 1e-9 <= s.lo < s.value < s.hi <= s.value * 3 + 1e-9 and abs(k - round(k)) < 1e-6, s


def test_the_band_is_the_scenarios_grant_over_the_shipped_draws_as_a_run_with_uncertainty_gives(client, bundled):
    """/api/bands: the scenario's grant, 5th and 95th percentile per area and year over the draws the explorer
    ships, equal to `fundform run --set ... --uncertainty formulas/uncertainty/draws-100.toml` to the penny."""
    from fundform.base.paths import PROJECT_ROOT
    from fundform.inputs.uncertainty import read_uncertainty
    from fundform.studies.uncertainty import run_uncertainty

    values = {"transition.floor": -0.02}
    b = client.post("/api/bands", json={"values": values})
    assert b.status_code == 200, b.text
    b = b.json()
    params = RunParameters()
    f = resolve_formula("fundform-needs", ["transition.floor=-0.02"])
    run = compute(bundled, f, params)
    u = run_uncertainty(bundled, f, params, read_uncertainty(PROJECT_ROOT / "formulas" / "uncertainty" /
                                                              "draws-100.toml"), run).bands.sort("year_index",
                                                                                                  "area_code")
    n = u["area_code"].n_unique()
    assert b["draws"] == 100 and len(b["grant_p5"]) == 5
    for col, key in (("grant_p5", "grant_p5"), ("grant_p95", "grant_p95")):
        want = u[col].to_numpy().reshape(5, n)
        assert np.array_equal(pence(b[key]), want), col
    nhs = client.post("/api/bands", json={"formula": "nhs-icb-2025", "level": "icb"})
    assert nhs.status_code == 422 and "published without an error" in nhs.json()["error"]


def test_the_band_toggles_beside_each_areas_grant_in_chromium(server):
    need_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(server)
        page.wait_for_selector('body[data-updates="1"]', state="attached", timeout=30_000)
        heads = page.eval_on_selector_all("#all-areas th", "es => es.map(e => e.textContent)")
        assert not any("percentile" in h for h in heads)  # off until asked for
        page.check("#bands")
        page.wait_for_selector("body[data-bands]", state="attached", timeout=60_000)
        heads = page.eval_on_selector_all("#all-areas th", "es => es.map(e => e.textContent)")
        g = heads.index("grant")  # the band sits beside the figure it qualifies
        assert "grant, 5th percentile over 100 draws of the inputs" in heads[g + 1]
        assert "grant, 95th percentile over 100 draws of the inputs" in heads[g + 2]
        cells = page.eval_on_selector_all("#all-areas tbody tr[data-area]",
                                          "rs => rs.map(r => [...r.cells].map(c => c.textContent))")
        lo, hi = g + 1, g + 2
        num = lambda s: float(s.replace(",", "").replace("£", "").replace("m", ""))
        for row in cells[:20]:
            assert num(row[lo]) <= num(row[hi])  # the 5th percentile below the 95th, the central grant near them
            assert num(row[lo]) * 0.8 < num(row[g]) < num(row[hi]) * 1.2
        page.uncheck("#bands")
        page.wait_for_function("() => ![...document.querySelectorAll('#all-areas th')].some("
                               "t => t.textContent.includes('percentile'))", timeout=10_000)
        browser.close()
    assert errors == []


# -- the door (issue 35): numbers of any size, what a POST must say, who may send it, serving the network ---------

@pytest.mark.parametrize("digits", [400, 5_000, 50_000])
def test_a_number_of_any_size_is_a_4xx_naming_it(client, digits):
    for body in (b'{"values": {"transition.floor": ' + b"9" * digits + b"}}",
                 b'{"values": {"transition.floor": 0.' + b"1" * digits + b"}}",
                 b'{"formula": "fundform-needs", "level": ' + b"1" * digits + b"}"):
        r = client.post("/api/scenario", content=body, headers={"content-type": "application/json"})
        assert r.status_code == 400, (digits, r.status_code, r.text[:200])
        assert "digits" in r.json()["error"] or "characters" in r.json()["error"], r.text[:200]
    assert client.get("/api/setup").status_code == 200


@pytest.mark.parametrize("ctype", [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data"])
def test_a_post_not_declared_json_is_refused_415(client, ctype):
    """A form another site's page posts without asking (a 'simple' cross-origin request) is never JSON-typed."""
    headers = {} if ctype is None else {"content-type": ctype}
    for path in ("/api/scenario", "/api/design", "/api/download"):
        r = client.post(path, content=b"{}", headers=headers)
        assert r.status_code == 415 and "application/json" in r.json()["error"], (path, r.text)


def test_a_post_from_another_origin_is_refused_403_and_the_pages_own_is_answered(client):
    for origin in ("http://evil.example", "null", "http://127.0.0.1:9999", "https://127.0.0.1:8765"):
        r = client.post("/api/scenario", json={}, headers={"origin": origin})
        assert r.status_code == 403 and "another origin" in r.json()["error"], origin
    assert client.post("/api/scenario", json={}, headers={"origin": "http://127.0.0.1:8765"}).status_code == 200
    assert client.post("/api/scenario", json={}).status_code == 200  # no Origin: a script, curl, a test


def test_serving_every_interface_answers_the_machines_names_and_addresses_not_a_rebound_name(explorer):
    import socket

    c = TestClient(create_app(explorer, host="0.0.0.0"), base_url="http://0.0.0.0:8765")
    for ok in ("192.168.1.20:8765", "10.0.0.5", "[fe80::1]:8765", socket.gethostname(), "localhost:8765"):
        assert c.get("/api/setup", headers={"host": ok}).status_code == 200, ok
    for bad in ("evil.example", "evil.example:8765", f"{socket.gethostname()}.evil.example"):
        assert c.get("/api/setup", headers={"host": bad}).status_code == 421, bad


def test_serve_on_every_interface_prints_a_warning(monkeypatch):
    from typer.testing import CliRunner

    import fundform.interfaces.explorer.server as server
    from cli import app

    monkeypatch.setattr(server, "serve", lambda *a, **k: None)  # the warning, not a server left running
    r = CliRunner().invoke(app, ["serve", "--host", "0.0.0.0", "--port", "8799", "--quiet"])
    assert r.exit_code == 0, r.output
    assert "warning" in r.output and "every network interface" in r.output and "no sign-in" in r.output


def test_what_a_move_did_one_areas_years_back_and_the_copied_link_in_chromium(server, bundled, tmp_path):
    """Issue 36 items 2-4, on the page: after a move, the panel at the top says how much money moved between areas
    (the sum of every gain against a run of the version as shipped, computed here from the two runs), who gains
    and loses most and the floors held; a click on a row opens the area's five years, every figure the runs';
    Back returns to the step before; the copy button copies the scenario's link; no -0.00%. Screenshots at desktop
    and phone size."""
    need_browser()
    from playwright.sync_api import sync_playwright

    from tests.test_labels import near

    sets = ("transition.gap_closed_per_year=0.5",)
    mine = compute(bundled, resolve_formula("fundform-needs", sets), RunParameters()).allocations
    shipped = compute(bundled, resolve_formula("fundform-needs"), RunParameters()).allocations
    j = mine.join(shipped.select("area_code", "financial_year", g0="grant", b0="transition_bound"),
                  on=["area_code", "financial_year"])
    last = j["financial_year"].max()
    moved = j.filter(pl.col("financial_year") == last).select(
        ((pl.col("grant") - pl.col("g0")).clip(0, None).sum() / 100).alias("m"))["m"][0]
    floors = j.filter(pl.col("financial_year") == j["financial_year"].min())["transition_bound"].eq("floor").sum()
    code = "E06000001"
    area = j.filter(pl.col("area_code") == code).sort("financial_year")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        context = browser.new_context(viewport={"width": 1440, "height": 900})
        context.grant_permissions(["clipboard-read", "clipboard-write"])
        page = context.new_page()
        page.goto(server)
        page.wait_for_selector('body[data-updates="1"]', state="attached", timeout=30_000)
        assert "Move a slider" in page.inner_text("#move-words")
        _move(page, "transition.gap_closed_per_year", "0.5", 2)
        said = page.inner_text("#move-moved")
        shown = float(said.split("£", 1)[1].split("bn", 1)[0].replace(",", ""))
        assert abs(shown - moved / 1e9) <= 0.0005 + 1e-9, (said, moved)
        assert f"{floors} in" in page.inner_text("#move-floors")
        assert "-0.00%" not in page.inner_text("body")
        page.fill("#filter", code)
        page.click(f'#all-areas tr[data-area="{code}"]')
        page.wait_for_selector(f'body[data-area-years="{code}"]', state="attached")
        rows = page.eval_on_selector_all("#area-table tr", "rs => rs.map(r => [...r.cells].map(c => c.textContent))")[1:]
        assert len(rows) == area.height == 5
        for cells, r in zip(rows, area.iter_rows(named=True)):
            assert cells[0] == r["financial_year"]
            near(cells[8].lstrip("£").rstrip("m"), r["grant"] / 1e8, f"grant {r['financial_year']}")
            near(cells[9].lstrip("£").rstrip("m"), r["g0"] / 1e8, f"grant as shipped {r['financial_year']}")
            near(cells[11].lstrip("£").rstrip("m"), r["grant_real"] / 1e8, f"real {r['financial_year']}")
        page.screenshot(path=str(tmp_path / "move-desktop.png"), full_page=True)
        page.click("#copy-link")
        page.wait_for_selector("body[data-copied]", state="attached")
        copied = page.evaluate("navigator.clipboard.readText()")
        assert "gap_closed_per_year" in copied and copied == page.evaluate("document.body.dataset.copied")
        page.go_back()
        page.wait_for_selector('body[data-updates="3"]', state="attached", timeout=30_000)
        assert page.input_value('input[data-path="transition.gap_closed_per_year"]') != "0.5"
        assert "Move a slider" in page.inner_text("#move-words")
        page.set_viewport_size({"width": 390, "height": 844})
        page.screenshot(path=str(tmp_path / "move-phone.png"), full_page=True)
        browser.close()
    assert (tmp_path / "move-desktop.png").stat().st_size > 10_000 and (tmp_path / "move-phone.png").exists()


def test_the_filter_finds_an_areas_councils_by_any_body_and_the_phone_keeps_the_controls_in_view(server):
    """'West Yorkshire' finds the councils of West Yorkshire (its combined authority, and its ICB's), and the
    waterfall and the area's years follow the filter; on a 390 x 844 phone the sliders stay in view beside the
    figures as the page scrolls."""
    with opened(server, width=1440, height=900) as page:
        page.fill("#filter", "West Yorkshire")
        page.wait_for_function("() => document.getElementById('areas-table').dataset.rows === '6'", timeout=10_000)
        names = page.locator("#all-areas tr[data-area] td:first-child").all_inner_texts()
        # the combined authority's five, and North Yorkshire, part of whose residents (Craven's) NHS West
        # Yorkshire ICB serves
        assert sorted(n.split(" (")[0] for n in names) == ["Bradford", "Calderdale", "Kirklees", "Leeds",
                                                            "North Yorkshire", "Wakefield"]
        codes = page.eval_on_selector_all("#all-areas tr[data-area]", "rs => rs.map(r => r.dataset.area)")
        page.wait_for_function("(cs) => cs.includes(document.body.dataset.areaYears) && "
                               "cs.includes(document.body.dataset.waterfall)", arg=codes, timeout=20_000)
        page.set_viewport_size({"width": 390, "height": 844})
        page.evaluate("window.scrollTo(0, 2500)")
        box = page.locator("#sliders input[type=range]").first.bounding_box()
        top = page.evaluate("document.getElementById('controls').getBoundingClientRect().top")
        assert top < 844 and box is not None


def test_a_filter_typed_and_cleared_never_overrides_the_area_a_person_then_opens(server):
    """The waterfall follows the filter once typing pauses; a filter typed and cleared at once moves nothing, and a
    row clicked while a move is pending wins (a stale move once replaced the clicked area's waterfall with the
    filter's first match, three tenths of a second later, without a word)."""
    with opened(server, width=1440, height=900) as page:
        page.wait_for_function("() => document.body.dataset.waterfall", timeout=20_000)
        first = page.get_attribute("body", "data-waterfall")
        page.fill("#filter", "upon")  # Kingston upon Hull, Newcastle upon Tyne...: the open area is not one of them
        matching = page.eval_on_selector_all("#all-areas tr[data-area]", "rs => rs.map(r => r.dataset.area)")
        assert first not in matching
        page.fill("#filter", "")  # cleared before the pause
        other = page.eval_on_selector_all("#all-areas tr[data-area]", "rs => rs.map(r => r.dataset.area)")
        pick = next(c for c in other if c not in matching and c != first)
        page.click(f'#all-areas tr[data-area="{pick}"]')  # a person's choice, while the move would be pending
        page.wait_for_function("(c) => document.body.dataset.waterfall === c", arg=pick, timeout=20_000)
        page.wait_for_timeout(1200)  # past the pause and any waterfall a stale move would fetch
        assert page.get_attribute("body", "data-waterfall") == pick
        page.fill("#filter", "upon")  # and a filter left standing still moves the waterfall to an area it shows
        page.wait_for_function("(cs) => cs.includes(document.body.dataset.waterfall)", arg=matching, timeout=20_000)


def test_an_nhs_allocation_is_explored_in_nhs_words_with_its_letter(server, bundled):
    """nhs-icb-2025 in the explorer: allocations, not grants (an NHS allocation has no local tax); the baseline, not
    today's funding; an ICB's years carry its letter's lines with NHS England's published allocation beside, the
    figures those of the round (nhs_icb_allocations)."""
    need_browser()
    from playwright.sync_api import sync_playwright

    pub = bundled["nhs_icb_allocations"].filter((pl.col("allocation_round") == "2025/26") & (pl.col("stream") == "core")
                                                & (pl.col("icb_code") == "QOQ"))["recurrent_allocation"][0]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.goto(server + "#f=nhs-icb-2025&l=icb")
        page.wait_for_selector('body[data-updates="1"]', state="attached", timeout=30_000)
        heads = page.eval_on_selector_all("#all-areas th", "es => es.map(e => e.textContent.replace(/ [\u25b2\u25bc]$/, ''))")
        assert "grant" not in heads and "baseline (cash, the base year)" in heads
        assert not any(h.startswith("grant") or "today" in h for h in heads), heads
        totals = page.locator("#totals tr").first.inner_text()
        assert "allocation, this scenario" in totals and "grant" not in totals
        assert page.inner_text("#grant-last-label").startswith("Total allocation, ")
        page.fill("#filter", "QOQ")
        page.click('#all-areas tr[data-area="QOQ"]')
        page.wait_for_selector('body[data-area-years="QOQ"]', state="attached")
        rows = page.eval_on_selector_all("#area-letter tr", "rs => rs.map(r => [...r.cells].map(c => c.textContent))")[1:]
        core = next(r for r in rows if r[0] == "2025/26" and r[1] == "Core services")
        assert core[6] == f"£{pub / 1e6:,.1f}m"
        browser.close()
