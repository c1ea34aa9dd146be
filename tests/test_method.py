"""The method documents: generated from each version's spec and the components' equations (so they cannot drift),
and sufficient to reproduce the engine. `test_year_one_rederived_from_the_method_document` is a small independent
implementation of docs/method/fundform-needs.md, steps 1-8, written from the document with numpy and math.fsum,
calling none of the engine's stages; it must match the engine to the penny.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from cli import app
from fundform.formula.components import EQUATIONS, INDICATOR_TRANSFORMS, TRANSITION_RULES, RuleContext
from fundform.formula.registry import available_formulas, load_formula
from fundform.method import method_markdown
from fundform.paths import PROJECT_ROOT
from tests.conftest import DATA

runner = CliRunner()
VERSIONS = sorted(available_formulas())


@pytest.mark.parametrize("version", VERSIONS)
def test_each_shipped_version_has_its_method_document_and_it_is_current(version):
    path = PROJECT_ROOT / "docs" / "method" / f"{version}.md"
    assert path.exists(), f"{path} missing: run `fundform docs`"
    assert path.read_text() == method_markdown(load_formula(version).spec, f"formulas/{version}.toml"), \
        f"{path} is out of date: run `fundform docs`"


@pytest.mark.parametrize("version", VERSIONS)
def test_the_method_states_every_number_of_the_version(version):
    from fundform.formula.spec import iter_quantities

    spec = load_formula(version).spec
    text = method_markdown(spec)
    for path, q in iter_quantities(spec):
        assert f"| `{path}` | {q.value:g} |" in text, path
    for need in [spec.need] + [s.need for s in spec.streams if s.need]:
        if need.age_cost_curve:
            for b in need.age_cost_curve.bands:
                assert f"| {b.age_from}-{b.age_to} | {b.weight:g} |" in text
    assert EQUATIONS[spec.transition.rule] in text


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
    v = lambda k: getattr(nhs, k).value  # noqa: E731
    c = np.where(d < 0, np.minimum(v("gain_gap_closed") * -d, v("max_gain")),
                 -np.minimum(v("reduction_gap_closed") * d / (1 + d), v("max_reduction")))
    np.testing.assert_allclose(TRANSITION_RULES["nhs_convergence"](RuleContext(A, T, B, G, 1, nhs)), A * G * (1 + c))


def test_formulas_method_prints_a_scenarios_method_with_its_overrides(tmp_path):
    result = runner.invoke(app, ["formulas", "method", "fundform-needs", "--set", "transition.floor=-0.01"])
    assert result.exit_code == 0, result.output
    assert "`transition.floor` 0.0 -> -0.01 (--set)" in result.output
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
    read = lambda t: pl.read_parquet(DATA / f"{t}.parquet").sort("area_code")  # noqa: E731
    pop = read("population").filter(pl.col("financial_year") == "2026/27")  # year 1's residents (step 1)
    codes = sorted(set(pop["area_code"]))
    # step 1: need
    weight = {a: b.weight for b in spec.need.age_cost_curve.bands for a in range(b.age_from, b.age_to + 1)}
    P = np.array([math.fsum(g["population"]) for _, g in pop.group_by("area_code", maintain_order=True)])
    W = np.array([math.fsum(p * weight[a] for p, a in zip(g["population"], g["age"]))
                  for _, g in pop.group_by("area_code", maintain_order=True)])
    N = W.copy()
    for ind in spec.need.indicators:
        x = read(ind.table)[ind.column].to_numpy()
        X = math.fsum(x * P) / math.fsum(P)
        e = ind.elasticity.value
        m = (x / X) ** e if ind.transform == "ratio_power" else 1 + e * (x / X - 1)
        lo = ind.min_multiplier.value if ind.min_multiplier else -np.inf
        hi = ind.max_multiplier.value if ind.max_multiplier else np.inf
        N = N * np.minimum(np.maximum(m, lo), hi)
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
    # step 6: transition, year 1
    G = CT1 / A0.sum()
    f = spec.transition.gap_closed_per_year.value
    u = A0 * G + f * (T1 - A0 * G)
    L = np.ceil(A0 * (1 + spec.transition.floor.value) - 1e-6)
    h = np.maximum(u - L, 0)
    free = h > 0
    lam = (math.fsum(u[free]) + math.fsum(L[~free]) - CT1) / math.fsum(h[free])
    x = np.maximum(u - lam * h, L)
    held = x <= L + 1e-3
    A1 = np.where(held, L, 0).astype(np.int64)
    rest = CT1 - int(A1[held].sum())
    A1[~held] = apportion(rest, x[~held])
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
