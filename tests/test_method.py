"""The method documents: generated from each version's spec and the components' equations (so they cannot drift),
and sufficient to reproduce the engine. `test_year_one_rederived_from_the_method_document` is a small independent
implementation of docs/method/fundform-needs.md, steps 1-8, written from the document with numpy and math.fsum,
calling none of the engine's stages; it must match the engine to the penny.
`test_every_column_of_every_year_rederived_from_the_method_document` extends it to every column of
allocations.parquet in every year, for fundform-needs and for hdc-2021 (a version with four streams).
"""

from __future__ import annotations

import math
import re

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from cli import app
from fundform.base.paths import PROJECT_ROOT
from fundform.formula.components import EQUATIONS, INDICATOR_TRANSFORMS, TRANSITION_RULES, RuleContext
from fundform.formula.registry import available_formulas, load_formula, shipped_scenarios
from fundform.formula.scenario import resolve_formula
from fundform.outputs.method import method_markdown, method_of
from tests.conftest import DATA

runner = CliRunner()
VERSIONS = sorted(available_formulas())


@pytest.mark.parametrize("name", VERSIONS + sorted(shipped_scenarios()))
def test_each_shipped_version_and_scenario_has_its_method_document_and_it_is_current(name):
    path = PROJECT_ROOT / "docs" / "method" / f"{name}.md"
    assert path.exists(), f"{path} missing: run `fundform docs`"
    assert path.read_text() == method_of(resolve_formula(name)), f"{path} is out of date: run `fundform docs`"


def _cell_number(text: str, path: str) -> float:
    row = re.search(rf"^\| `{re.escape(path)}` \| ([^|]+) \|", text, re.M)
    assert row, f"{path} is not in the table of numbers"
    return float(row.group(1))


@pytest.mark.parametrize("version", VERSIONS)
def test_the_method_states_every_number_of_the_version_exactly(version):
    """Every number reads back as the float the engine uses (0.0666666667 is not shown as 0.0666667)."""
    from fundform.formula.spec import iter_quantities

    spec = load_formula(version).spec
    text = method_markdown(spec)
    for path, q in iter_quantities(spec):
        assert _cell_number(text, path) == q.value, path
    for need in [spec.need] + [s.need for s in spec.streams if s.need]:
        if need.age_cost_curve:
            for b in need.age_cost_curve.bands:
                rows = re.findall(rf"^\| {b.age_from}-{b.age_to} \| ([^|]+) \|", text, re.M)  # a table per curve
                assert b.weight in [float(x) for x in rows], (b.age_from, b.weight)
    assert EQUATIONS[spec.transition.rule] in text


def test_a_scenario_method_has_its_own_name_and_title_and_every_override():
    f = resolve_formula("nhs-icb-2024-all")
    text = method_of(f)
    first = text.splitlines()[0]
    assert first.startswith("# Method: nhs-icb-2024-all") and "nhs-icb-core-pmc" in first
    assert f"*{f.scenario_title}.*" in text and f.scenario_title != f.spec.title
    assert "fundform formulas method nhs-icb-2024-all" in text
    for o in f.overrides:
        assert f"| `{o.path}` |" in text, o.path
    assert str(PROJECT_ROOT) not in text  # the same bytes on every machine


@pytest.mark.parametrize("name", VERSIONS + sorted(shipped_scenarios()))
def test_each_streams_budget_neutrality_and_target_reading_are_stated(name):
    f = resolve_formula(name)
    text = method_of(f)
    for s in f.spec.streams:
        line = next(x for x in text.splitlines() if x.startswith(f"- **{s.name}** "))
        rule = s.transition or f.spec.transition
        assert ("not budget neutral" in line) == (not rule.budget_neutral), line
        assert ("budget neutral" in line), line
    if f.spec.baseline.source == "nhs_icb_allocations":
        assert "`G'` the target growth" in text
        for s in f.spec.streams:
            reads = f.spec.stream_view(s).baseline.target_total
            said = re.search(rf"{s.name}, targets from the (control total|published fair shares total)", text)
            assert said and (said.group(1) == "control total") == (reads == "control_total"), s.name


@pytest.mark.parametrize("name", VERSIONS + sorted(shipped_scenarios()))
def test_no_symbol_of_a_method_document_names_two_things(name):
    """A symbol and its first index mean one thing in a document (N_i need, never also N_i,q notional resources);
    alternative definitions of the same symbol (T_k from the published total, or from the control total) may
    repeat it whole. One rounding phrase: half away from zero."""
    text = method_of(resolve_formula(name))
    defined: dict[tuple[str, str], set[str]] = {}
    for block in re.findall(r"```\n(.*?)```", text, re.S):
        for line in block.splitlines():
            for lhs in re.findall(r"(?:^|   )([A-Za-z]+(?:_[A-Za-z0-9,']+)?) = ", line):
                base, _, sub = lhs.partition("_")
                defined.setdefault((base, sub.split(",")[0]), set()).add(lhs)
    assert {k: v for k, v in defined.items() if len(v) > 1} == {}
    assert "half up" not in text and "half even" not in text


def test_the_minimum_grant_equation_is_what_the_engine_computes():
    """docs/method/localis-2016.md's minimum-grant rule, evaluated by hand: M = ceil(100 m P); the one lambda with
    sum max(g - lambda h, M) = sum g, h = max(g - M, 0); areas at their minimum exactly M, the rest apportioned."""
    from fundform.engine.localtax.grants import negative_grant_policy

    spec = load_formula("localis-2016").spec
    assert "M_k,a = ceil(100 * m * P_k,a)" in method_markdown(spec)
    m = spec.local_tax.minimum_grant_per_head.value
    g = np.array([[-50_000.0, 120_000.0, 3_000_000.0, 7_000_000.0]])  # pence; one year, four areas
    P = np.array([[1_000.0, 2_500.0, 4_000.0, 5_500.0]])
    M = np.ceil(100 * m * P)
    h = np.maximum(g - M, 0)
    # below the minimum: area 0 (and area 1 once scaled back); solve the piecewise-linear sum by bisection
    lo, hi = 0.0, 1.0
    for _ in range(200):
        lam = (lo + hi) / 2
        lo, hi = (lam, hi) if np.maximum(g - lam * h, M).sum() > g.sum() else (lo, lam)
    by_hand = np.maximum(g - lam * h, M)[0]
    at_min = np.isclose(by_hand, M[0], atol=1e-3)
    rest = g.sum() - M[0][at_min].sum()
    want = np.where(at_min, M[0], 0).astype(np.int64)
    want[~at_min] = apportion(int(rest), by_hand[~at_min])
    got = negative_grant_policy(g.astype(np.int64), P, spec.local_tax)[0]
    assert got.sum() == g.sum() and (got >= M[0]).all()
    assert got.tolist() == want.tolist()


def test_each_component_equation_is_what_its_function_computes():
    """The equations printed in the method are evaluated here by hand and compared with the functions."""
    x = np.array([5.0, 20.0, 43.0])
    X, e = 20.08, 0.25
    frame = pl.DataFrame({"x": x})
    for name, by_hand in (("ratio_power", (x / X) ** e), ("ratio_linear", 1 + e * (x / X - 1))):
        got = frame.select(INDICATOR_TRANSFORMS[name](pl.col("x"), pl.lit(X), e)).to_series().to_numpy()
        np.testing.assert_allclose(got, by_hand, rtol=1e-15)
    spec = load_formula("fundform-needs").spec
    A, G, T, B = np.array([100.0, 200.0]), np.array([1.03, 1.03]), np.array([150.0, 140.0]), np.array([90.0, 210.0])
    ctx = RuleContext(previous=A, target=T, baseline=B, growth=G, year=2, rule=spec.transition)
    f = spec.transition.gap_closed_per_year.value
    np.testing.assert_allclose(TRANSITION_RULES["convergence"](ctx), A * G + f * (T - A * G))
    phasing = spec.transition.model_copy(update={"rule": "phasing", "phasing_years": spec.transition.floor.model_copy(
        update={"value": 3.0})})
    w = min(2 / 3, 1)
    np.testing.assert_allclose(TRANSITION_RULES["phasing"](RuleContext(A, T, B, G, 2, phasing)), (1 - w) * B + w * T)
    nhs = load_formula("nhs-icb-2024").spec.transition
    d = A * G / T - 1
    v = lambda k: getattr(nhs, k).value
    c = np.where(d < 0, np.minimum(v("gain_gap_closed") * -d, v("max_gain")),
                 -np.minimum(v("reduction_gap_closed") * d / (1 + d), v("max_reduction")))
    np.testing.assert_allclose(TRANSITION_RULES["nhs_convergence"](RuleContext(A, T, B, G, 1, nhs)), A * G * (1 + c))


def test_formulas_method_prints_a_scenarios_method_with_its_overrides(tmp_path):
    result = runner.invoke(app, ["formulas", "method", "fundform-needs", "--set", "transition.floor=-0.01"])
    assert result.exit_code == 0, result.output
    assert "| `transition.floor` | 0 | -0.01 | --set |" in result.output
    assert "L_a = ceil(A_a * (1 + -0.01) - 0.000001)" in result.output
    target = tmp_path / "m.md"
    result = runner.invoke(app, ["formulas", "method", str(PROJECT_ROOT / "formulas" / "scenarios" /
                                                          "deprivation-weight-0.35.toml"), "--out", str(target)])
    assert result.exit_code == 0, result.output
    assert "`e` = 0.35" in target.read_text()


# ------------------------------------------------------------------------------------------------------------------
# An independent implementation of docs/method/fundform-needs.md, steps 1-8, for year 1 at level ltla


def round_half(x):
    """round(x): half away from zero, to a whole penny."""
    x = np.asarray(x, dtype=float)
    return (np.sign(x) * np.floor(np.abs(x) + 0.5)).astype(np.int64)


def apportion(total: int, w: np.ndarray) -> np.ndarray:
    """Step 10: floor of the exact shares, then one penny each to the largest remainders, ties to the earlier area."""
    exact = total * w / math.fsum(w)
    parts = np.floor(exact).astype(np.int64)
    missing = int(total - parts.sum())
    order = sorted(range(len(w)), key=lambda i: (-(exact[i] - parts[i]), i))
    for i in order[:missing]:
        parts[i] += 1
    return parts


def floor_penny(x):
    return np.floor(np.asarray(x) * 100 + 1e-9) / 100


def year_one_by_the_method() -> pl.DataFrame:
    spec = load_formula("fundform-needs").spec  # the version's numbers, as the method's tables state them
    read = lambda t: pl.read_parquet(DATA / f"{t}.parquet").sort("area_code")
    pop = read("population").filter(pl.col("financial_year") == "2026/27")  # year 1's residents (step 1)
    # step 1: need
    codes, P, N = need_by_the_method(spec.need, pop, read)
    # step 2: target shares (level ltla: every share 1)
    tau = N / math.fsum(N)
    # step 3: today's funding
    base = read("baseline")
    F = sum(base[c].to_numpy() for c in ("nhs_core", "nhs_primary_medical", "adult_social_care", "public_health"))
    # step 4: control total
    B = int(round_half(100 * math.fsum(F)))
    g, r = spec.indices["gdp_deflator"].growth, spec.control_total.real_growth.value
    assert spec.control_total.base_year == "2025/26"  # today's funding is 2025/26's: the year before the settlement
    I25 = 1.0  # the index level of the base year itself
    I26 = I25 * (1 + g["2026/27"])
    CT0, CT1 = int(round_half(B * I25 * (1 + r) ** 0)), int(round_half(B * I26 * (1 + r) ** 1))
    # step 5: the year before, targets
    A0 = apportion(CT0, F)
    T1 = apportion(CT1, tau)
    # step 6: transition, year 1 (the step as converge below writes it for every year)
    A1, held = converge(A0, T1, CT1, spec.transition.gap_closed_per_year.value, spec.transition.floor.value)
    # step 8: local resources, year 1 (2026/27), full equalisation
    lt = spec.local_tax
    ct = read("council_tax")
    t, D = ct["tax_base_band_d"].to_numpy(), ct[lt.band_d_column].to_numpy()
    NB = float(floor_penny(math.fsum(t * D) / math.fsum(t)))
    for _ in ("2025/26", "2026/27"):  # from the council tax data's year (2024-25)
        NB = float(floor_penny(NB * (1 + lt.core_increase.value + lt.precept.default_rate.value)))
    Nloc = t * (1 + lt.tax_base_growth.value) ** 2 * NB * lt.share_for_devolved_services.value
    d = lt.equalisation.value
    NT = apportion(int(round_half(100 * d * math.fsum(Nloc))), 100 * d * Nloc)
    return pl.DataFrame({"area_code": codes, "target_allocation": T1, "allocation": A1, "notional_local_tax": NT,
                         "grant": A1 - NT, "held": np.where(held, "floor", "none")})


def test_year_one_rederived_from_the_method_document(default_run):
    mine = year_one_by_the_method()
    engine = default_run.allocations.filter(pl.col("year_index") == 1).sort("area_code").select(
        "area_code", "target_allocation", "allocation", "notional_local_tax", "grant", held="transition_bound")
    assert mine["area_code"].to_list() == engine["area_code"].to_list()
    for col in ("target_allocation", "allocation", "notional_local_tax", "grant", "held"):
        diff = mine.join(engine, on="area_code", suffix="_engine").filter(pl.col(col) != pl.col(f"{col}_engine"))
        assert diff.height == 0, f"{col}: {diff.height} areas differ, e.g.\n{diff.head(5)}"
    # a handful of areas named, so a reader can check them against a published figure by eye
    some = mine.filter(pl.col("area_code").is_in(["E06000001", "E08000025", "E09000022", "E07000089"]))
    assert some.height == 4 and (some["held"] == "floor").sum() >= 1


# ------------------------------------------------------------------------------------------------------------------
# Every column of allocations.parquet, every year, re-derived from the method document alone (steps need .. output
# columns) for fundform-needs and for hdc-2021 (four streams, three linked, two with needs of their own), at level
# ltla. It reads the data files and the version's numbers (as the document's tables state them) and calls none of
# the engine's stages: numpy, math.fsum and the document's formulas.


def year_of(fy: str) -> int:
    return int(fy[:4])


def fy_of(y: int) -> str:
    return f"{y}/{(y + 1) % 100:02d}"


def need_by_the_method(need, pop: pl.DataFrame, read) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Step 'Need': P_i and N_i of one year's residents (band sums, then each indicator's multiplier)."""
    # the document's exact sums: 128-bit fixed point at 1e-12 of a person, so no order matters
    exact = lambda e: ((e * 1e12).round(0).cast(pl.Int128).sum().cast(pl.Float64) / 1e12)
    bands = need.age_cost_curve.bands
    sums = pop.group_by("area_code").agg(exact(pl.col("population")).alias("P"), *[
        exact(pl.col("population").filter(pl.col("age").is_between(b.age_from, b.age_to))).alias(f"b{i}")
        for i, b in enumerate(bands)]).sort("area_code")
    codes, P = sums["area_code"].to_list(), sums["P"].to_numpy()
    W = np.zeros(len(codes))
    for i, b in enumerate(bands):  # band by band, in the curve's order
        W = W + b.weight * sums[f"b{i}"].to_numpy()
    N = W.copy()
    for ind in need.indicators:
        x = read(ind.table)[ind.column].to_numpy().astype(float)
        X = math.fsum(x * P) / math.fsum(P)
        e = ind.elasticity.value
        m = (x / X) ** e if ind.transform == "ratio_power" else 1 + e * (x / X - 1)
        lo = ind.min_multiplier.value if ind.min_multiplier else -np.inf
        hi = ind.max_multiplier.value if ind.max_multiplier else np.inf
        N = N * np.minimum(np.maximum(m, lo), hi)
    return codes, P, N


def converge(A_prev: np.ndarray, T: np.ndarray, CT: int, f: float, floor: float):
    """Step 'Transition' for one year: convergence, a cash floor, budget neutral, money rounded once."""
    G = CT / A_prev.sum()
    u = A_prev * G + f * (T - A_prev * G)
    L = np.ceil(A_prev * (1 + floor) - 1e-6)
    h = np.maximum(u - L, 0)
    free = h > 0
    lam = (math.fsum(u[free]) + math.fsum(L[~free]) - CT) / math.fsum(h[free])
    x = np.maximum(u - lam * h, L)
    held = x <= L + 1e-3
    A = np.where(held, L, 0).astype(np.int64)
    A[~held] = apportion(CT - int(A[held].sum()), x[~held])
    return A, held


def split_rounded(x: np.ndarray) -> np.ndarray:
    """apportion(round(sum of x), x): a quantity computed per area, published in whole pence."""
    return apportion(int(round_half(math.fsum(x))), x) if np.any(x) else np.zeros(len(x), dtype=np.int64)


def every_column_by_the_method(version: str) -> pl.DataFrame:
    spec = load_formula(version).spec
    read = lambda t: pl.read_parquet(DATA / f"{t}.parquet").sort("area_code")
    years = spec.effective_years
    y0 = fy_of(year_of(years[0]) - 1)
    g = spec.indices[spec.control_total.inflation_index].growth
    ct = spec.control_total
    I = {ct.base_year: 1.0}  # (index level, 1 at the base year)
    for y in range(year_of(ct.base_year) + 1, year_of(years[-1]) + 1):
        I[fy_of(y)] = I[fy_of(y - 1)] * (1 + g[fy_of(y)])
    R = lambda y, r: (1 + r) ** (year_of(y) - year_of(ct.base_year))
    base = read("baseline")
    streams = spec.streams or [None]
    pops = {y: read("population").filter(pl.col("financial_year") == y).sort("area_code", "age") for y in years}
    out = {}  # stream -> per-year arrays
    for st in streams:
        need = st.need if st is not None and st.need is not None else spec.need
        comps = st.baseline_components if st is not None else spec.baseline.columns
        F = sum(base[c].to_numpy() for c in comps)
        B = int(round_half(100 * math.fsum(F)))
        r = st.real_growth.value if st is not None and st.real_growth is not None else ct.real_growth.value
        CT = {y: int(round_half(B * I[y] * R(y, r))) for y in [y0, *years]}
        if st is not None and st.linked_to:  # grows with its link: round(B_s * CT_link,y / B_link)
            link = out[st.linked_to]
            CT = {y: int(round_half(B * link["CT"][y] / link["B"])) for y in [y0, *years]}
        rule = st.transition if st is not None and st.transition is not None else spec.transition
        f, floor = rule.gap_closed_per_year.value, rule.floor.value
        A = apportion(CT[y0], F)
        rows = {"B": B, "CT": CT, "T": {}, "BU": {}, "prev": {}, "A": {}, "held": {}, "N": {}, "P": {},
                "today": apportion(B, F)}  # today's funding in cash: the base year's B split by F
        for y in years:
            codes, P, N = need_by_the_method(need, pops[y], read)
            tau = N / math.fsum(N)
            T = apportion(CT[y], tau)
            rows["prev"][y], rows["T"][y], rows["BU"][y], rows["N"][y], rows["P"][y] = A, T, apportion(CT[y], F), N, P
            A, held = converge(A, T, CT[y], f, floor)
            rows["A"][y], rows["held"][y] = A, held
        d = rows["A"][years[-1]] / rows["T"][years[-1]] - 1
        with np.errstate(divide="ignore"):
            rows["ytt"] = np.where(np.abs(d) <= 0.001, 0.0, np.ceil(np.log(0.001 / np.abs(d)) / np.log(1 - f)))
        out[st.name if st is not None else "all"] = rows
    # the pool: streams added in pence
    pool = lambda key, y: sum(s[key][y] for s in out.values())
    lt = spec.local_tax
    ctx = read("council_tax")
    t, D = ctx["tax_base_band_d"].to_numpy(), ctx[lt.band_d_column].to_numpy()
    c, rho, sigma = lt.core_increase.value, lt.precept.default_rate.value, lt.share_for_devolved_services.value
    NB = {lt.price_year: float(floor_penny(math.fsum(t * D) / math.fsum(t)))}
    Down = {lt.price_year: D.astype(float)}
    for y in range(year_of(lt.price_year) + 1, year_of(years[-1]) + 1):
        NB[fy_of(y)] = float(floor_penny(NB[fy_of(y - 1)] * (1 + c + rho)))
        Down[fy_of(y)] = floor_penny(Down[fy_of(y - 1)] * (1 + c + rho))  # uniform: every authority at rho
    frames = []
    for k, y in enumerate(years, 1):
        tq = t * (1 + lt.tax_base_growth.value) ** (year_of(y) - year_of(lt.price_year))
        Nloc = tq * NB[y] * sigma
        dk = lt.equalisation.value * (min(k / lt.equalisation_phasing_years.value, 1)
                                      if lt.equalisation_phasing_years is not None else 1)
        NT = apportion(int(round_half(100 * dk * math.fsum(Nloc))), 100 * dk * Nloc)
        A, T, BU, prev = pool("A", y), pool("T", y), pool("BU", y), pool("prev", y)
        grant = A - NT
        yield_ct = split_rounded(100 * tq * Down[y] * sigma)
        Dk = I[y] / I[years[0]]
        P = next(iter(out.values()))["P"][y]
        if len(out) > 1:  # pooled need columns
            share = T / T.sum()
            N = share * P.sum()
            held = [np.where(s["held"][y], "floor", "none") for s in out.values()]
            label = np.where(np.all([h == held[0] for h in held], axis=0), held[0], "streams")
            ytt = np.max([s["ytt"] for s in out.values()], axis=0)
        else:
            N = out["all"]["N"][y]
            share = N / math.fsum(N)
            label = np.where(out["all"]["held"][y], "floor", "none")
            ytt = out["all"]["ytt"]
        frames.append(pl.DataFrame({
            "area_code": codes, "financial_year": y, "population": P, "need_weighted_population": N,
            "need_index": (N / P) / (N.sum() / P.sum()), "target_share": share,
            "control_total": sum(s["CT"][y] for s in out.values()), "target_allocation": T, "baseline": BU,
            "todays_funding": sum(s["today"] for s in out.values()),
            "previous_allocation": prev, "allocation": A, "distance_from_target": A / T - 1,
            "transition_bound": label, "years_to_target": ytt, "guarantee_payment": 0,
            "notional_local_resources": split_rounded(100 * Nloc), "notional_local_tax": NT, "equalisation": -NT,
            "negative_grant_adjustment": 0, "council_tax_yield": yield_ct, "precept_flex_yield": 0,
            "health_tax_yield": 0, "business_rates_discount": 0, "local_yield": yield_ct,
            "spending_power": grant + yield_ct, "grant": grant, "grant_real": split_rounded(grant / Dk),
            "grant_per_head": round_half(grant / P)}))
    return pl.concat(frames)


@pytest.mark.parametrize("version", ["fundform-needs", "hdc-2021"])
def test_every_column_of_every_year_rederived_from_the_method_document(bundled, version):
    from fundform.studies.pipeline import RunParameters, compute

    spec = load_formula(version).spec
    assert spec.transition.rule == "convergence" and spec.transition.ceiling is None  # what this re-implements
    assert spec.local_tax.negative_grants == "tariff" and spec.local_tax.precept.rule == "uniform"
    mine = every_column_by_the_method(version)
    engine = compute(bundled, load_formula(version), RunParameters(level="ltla")).allocations
    j = mine.join(engine, on=["area_code", "financial_year"], suffix="_engine")
    assert j.height == engine.height == mine.height
    floats = {"population", "need_weighted_population", "need_index", "target_share", "distance_from_target",
              "years_to_target"}
    checked = [c for c in mine.columns if c not in ("area_code", "financial_year")]
    assert set(checked) == set(engine.columns) - {"area_code", "area_name", "area_level", "financial_year",
                                                  "year_index", "age_weighted_population"} - (
        {"age_weighted_population"}), "every output column is re-derived"
    for col in checked:
        a, b = j[col], j[f"{col}_engine"]
        if col in floats:
            np.testing.assert_allclose(a.cast(pl.Float64).to_numpy(), b.cast(pl.Float64).fill_null(np.nan).to_numpy(),
                                       rtol=1e-9, err_msg=col)
        else:
            bad = j.filter(a.cast(pl.String) != b.cast(pl.String))
            assert bad.height == 0, f"{version} {col}: {bad.height} rows differ, e.g.\n" \
                f"{bad.select('area_code', 'financial_year', col, f'{col}_engine').head(5)}"
