"""Every effect or figure a formula file states in a source or comment is computed here and checked, so a claim
cannot go stale when the data or the number changes. A new claim (a source saying "gives", "so", "=", "closes",
"within"...) fails `test_every_stated_effect_is_checked_here` until a check is added below."""

from __future__ import annotations

import re

import polars as pl
import pytest

from fundform.base.paths import PROJECT_ROOT
from fundform.formula.registry import available_formulas
from fundform.formula.scenario import resolve_formula
from fundform.formula.spec import iter_quantities
from tests.conftest import DATA

CLAIM = re.compile(r"\bgives\b|\bso\b|=|\bcloses?\b|\bwithin\b|\bmaximum\b|\bminimum\b|\bland on\b", re.I)


def quantity(ref: str, path: str):
    return dict(iter_quantities(resolve_formula(ref).spec))[path]


def deprivation_effect(elasticity: float, lo: float, hi: float) -> dict:
    """The deprivation multiplier across the bundled authorities, as need computes it."""
    pop = pl.read_parquet(DATA / "population.parquet").filter(pl.col("financial_year") == "2026/27").group_by(
        "area_code").agg(pl.col("population").sum())
    dep = (pl.read_parquet(DATA / "deprivation.parquet").join(pop, on="area_code")
           .join(pl.read_parquet(DATA / "areas.parquet"), on="area_code"))
    national = (dep["imd_average_score"] * dep["population"]).sum() / dep["population"].sum()
    dep = dep.with_columns(m=((pl.col("imd_average_score") / national) ** elasticity).clip(lo, hi)).sort("m")
    ranked = dep.sort("imd_average_score", descending=True).with_columns(
        cum=pl.col("population").cum_sum() / pl.col("population").sum())
    mean = lambda f: (f["m"] * f["population"]).sum() / f["population"].sum()
    top, bottom = ranked.filter(pl.col("cum") <= 0.1), ranked.filter(pl.col("cum") > 0.9)
    return {"low": (dep["area_name"][0], dep["m"][0]), "high": (dep["area_name"][-1], dep["m"][-1]),
            "spread": dep["m"][-1] / dep["m"][0], "deciles": mean(top) / mean(bottom)}


@pytest.mark.parametrize("version", ["fundform-needs", "hdc-2021"])
def test_the_deprivation_elasticity_claim(version):
    ind = next(i for i in resolve_formula(version).spec.need.indicators if i.name == "deprivation")
    eff = deprivation_effect(ind.elasticity.value, ind.min_multiplier.value, ind.max_multiplier.value)
    src = ind.elasticity.source
    assert f"from {eff['low'][1]:.2f} ({eff['low'][0]}) to {eff['high'][1]:.2f} ({eff['high'][0]})" in src, src
    assert f"{round((eff['spread'] - 1) * 100)}% more need per head for the most deprived authority" in src, eff
    assert f"{round((eff['deciles'] - 1) * 100)}% between the most and the least deprived tenths" in src, eff


def test_a_fifth_a_year_closes_two_thirds_of_a_gap_in_five_years():
    q = quantity("fundform-needs", "transition.gap_closed_per_year")
    assert "two-thirds of any gap closes within the five-year settlement" in q.source
    assert abs((1 - (1 - q.value) ** 5) - 2 / 3) < 0.01  # 0.672


def test_reform_pace_closes_a_third_in_the_first_stage():
    q = quantity("reform-2017", "transition.gap_closed_per_year")
    assert "1 - (2/3)^(1/5)" in q.source and "closes a third of the gap in the first stage" in q.source
    assert abs((1 - (2 / 3) ** (1 / 5)) - q.value) < 1e-4  # 0.077892, stated to 4 places (truncated)
    assert abs(1 - (1 - q.value) ** 5 - 1 / 3) < 5e-4  # 33.32% of the gap in five years


@pytest.mark.parametrize("version", ["fundform-needs", "hdc-2021", "localis-2016"])
def test_the_share_of_council_tax_is_the_outturn_ratio(version):
    q = quantity(version, "local_tax.share_for_devolved_services")
    assert "29.35 / 73.58" in q.source
    assert round(29.35 / 73.58, 3) == q.value


@pytest.mark.parametrize("version", ["fundform-needs", "hdc-2021"])
def test_the_tax_base_growth_is_the_published_change(version):
    q = quantity(version, "local_tax.tax_base_growth")
    assert "19,093,162 to 19,317,386" in q.source
    assert round(19_317_386 / 19_093_162 - 1, 4) == q.value


def published(round_: str, stream: str = "core") -> pl.DataFrame:
    return pl.read_parquet(DATA / "nhs_icb_allocations.parquet").filter(
        (pl.col("allocation_round") == round_) & (pl.col("stream") == stream))


def test_the_nhs_pace_of_change_numbers_are_the_published_rounds():
    r24 = published("2024/25")
    assert quantity("nhs-icb-2024", "transition.max_gain").value == pytest.approx(r24["convergence"].max())
    assert quantity("nhs-icb-2024", "transition.max_reduction").value == pytest.approx(-r24["convergence"].min())
    r23 = published("2023/24")
    scen = str(PROJECT_ROOT / "formulas" / "scenarios" / "nhs-icb-2023.toml")
    assert quantity(scen, "transition.max_reduction").value == pytest.approx(-r23["convergence"].min())
    gain = quantity("nhs-icb-2024", "transition.gain_gap_closed")
    under = r24.filter((pl.col("distance_from_target") < 0) & (pl.col("convergence") < r24["convergence"].max()))
    ratios = (under["convergence"] / -under["distance_from_target"]).to_numpy()
    assert "1/15" in gain.source and abs(gain.value - 1 / 15) < 1e-9
    assert len(ratios) >= 3 and abs(ratios - 1 / 15).max() < 5e-6
    land = quantity("nhs-icb-2024", "transition.reduction_gap_closed")
    assert "within 0.006%" in land.source
    over = r24.filter((pl.col("distance_from_target") > 0) & (pl.col("convergence") > r24["convergence"].min()))
    assert over.height >= 1 and over["post_convergence_distance_from_target"].abs().max() < 0.00006


def test_the_rounds_of_nhs_icb_2025_state_what_each_published_round_shows():
    f = resolve_formula("nhs-icb-2025").spec
    q = lambda year, path: dict(iter_quantities(f.at(year)))[path]
    for year in ("2023/24", "2024/25", "2025/26"):
        r = published(year)
        assert q(year, "transition.max_gain").value == pytest.approx(r["convergence"].max(), abs=1e-9)
        assert q(year, "transition.max_reduction").value == pytest.approx(-r["convergence"].min(), abs=1e-9)
    # 2023/24: a fifteenth of the gap under target; over target within the cap, d itself comes off (post -d^2)
    r23 = published("2023/24")
    under = r23.filter((pl.col("distance_from_target") < 0) & (pl.col("convergence") < r23["convergence"].max()))
    assert (under["convergence"] / -under["distance_from_target"] - 1 / 15).abs().max() < 5e-6
    assert "1/15" in q("2023/24", "transition.gain_gap_closed").source
    over = r23.filter((pl.col("distance_from_target") > 0) & (pl.col("convergence") > r23["convergence"].min()))
    assert over.height >= 1
    d = over["distance_from_target"]
    assert (over["post_convergence_distance_from_target"] + d * d).abs().max() < 1e-6
    assert f.at("2023/24").transition.reduction_of == "d" and "-d^2" in q("2023/24",
                                                                           "transition.reduction_gap_closed").source
    # 2025/26: convergence = -0.2 x the distance after base growth, within +-0.5%
    r25 = published("2025/26").with_columns(
        target=pl.col("recurrent_allocation") / (1 + pl.col("post_convergence_distance_from_target")))
    r25 = r25.with_columns(d=pl.col("adjusted_recurrent_baseline") * (1 + pl.col("base_growth")) / pl.col("target") - 1)
    free = r25.filter(pl.col("convergence").abs() < 0.005 - 1e-9)
    assert free.height >= 10 and (free["convergence"] + 0.2 * free["d"]).abs().max() < 1e-6
    assert f.at("2025/26").transition.reduction_of == "d"
    r24 = published("2024/25")  # 2024/25: over target within the cap, d / (1 + d) comes off: they land on target
    land = r24.filter((pl.col("distance_from_target") > 0) & (pl.col("convergence") > r24["convergence"].min()))
    assert land.height >= 1 and land["post_convergence_distance_from_target"].abs().max() < 0.00006
    assert "within 0.006%" in q("2024/25", "transition.reduction_gap_closed").source
    assert q("2025/26", "transition.gain_gap_closed").value == 0.2 == q("2025/26",
                                                                        "transition.reduction_gap_closed").value


def test_nhs_icb_core_pmc_states_what_each_published_round_of_each_stream_shows():
    f = resolve_formula("nhs-icb-core-pmc").spec
    core, pmc = f.streams
    q = lambda st, year, path: dict(iter_quantities(f.stream_view(st).at(year)))[path]
    # core: the same numbers as nhs-icb-2025's rounds, which test_the_rounds_of_nhs_icb_2025_... checks
    ref = resolve_formula("nhs-icb-2025").spec
    for year in ("2023/24", "2024/25"):
        for k in ("gain_gap_closed", "max_gain", "reduction_gap_closed", "max_reduction"):
            assert q(core, year, f"transition.{k}").value == dict(iter_quantities(ref.at(year)))[
                f"transition.{k}"].value, (year, k)
        assert f.stream_view(core).at(year).transition.reduction_of == ref.at(year).transition.reduction_of
    for year in ("2023/24", "2024/25"):  # primary medical care: the caps are the convergence column's extremes
        r = published(year, "primary_medical_care")
        assert q(pmc, year, "transition.max_reduction").value == pytest.approx(-r["convergence"].min(), abs=1e-9)
        assert q(pmc, year, "transition.max_gain").value >= r["convergence"].max() - 1e-9
    r23 = published("2023/24", "primary_medical_care")
    assert q(pmc, "2023/24", "transition.max_gain").value == pytest.approx(r23["convergence"].max(), abs=1e-9)
    under = r23.filter(pl.col("distance_from_target") < 0)
    ratio = under["convergence"] / -under["distance_from_target"]
    assert ((ratio - 0.25).abs() < 1e-6).sum() == under.height - 1  # "for every ICB under target but one"
    over = r23.filter((pl.col("distance_from_target") > 0) & (pl.col("convergence") > r23["convergence"].min()))
    d = over["distance_from_target"]
    assert over.height >= 3 and (over["convergence"] + d).abs().max() < 1e-9  # d itself comes off
    # so they end -d^2 from target (to the published allocations' rounding to GBP thousands)
    assert (over["post_convergence_distance_from_target"] + d * d).abs().max() < 5e-6
    r24 = published("2024/25", "primary_medical_care")
    over = r24.filter((pl.col("distance_from_target") > 0) & (pl.col("convergence") > r24["convergence"].min()))
    assert over.height >= 3
    assert (over["convergence"] / over["distance_from_target"] + 0.952381).abs().max() < 1e-6
    assert q(pmc, "2024/25", "transition.reduction_gap_closed").value == 0.952381
    assert f.need.source == ref.need.source.replace("Final WP;", "Final WP;")  # the core need's claim, as checked


def test_localis_health_tax_is_zero_until_a_place_sets_one():
    q = quantity("localis-2016", "local_tax.health_tax.rate")
    assert "so 0 until a place sets one" in q.source and q.value == 0


# where each stated effect is checked (the NHS weights' fair-shares claim: tests/test_nhs_reproduction.py)
CHECKED = {
    ("fundform-needs", "need.indicators.deprivation.elasticity"), ("hdc-2021", "need.indicators.deprivation.elasticity"),
    ("fundform-needs", "transition.gap_closed_per_year"), ("reform-2017", "transition.gap_closed_per_year"),
    ("fundform-needs", "local_tax.share_for_devolved_services"), ("hdc-2021", "local_tax.share_for_devolved_services"),
    ("localis-2016", "local_tax.share_for_devolved_services"), ("fundform-needs", "local_tax.tax_base_growth"),
    ("hdc-2021", "local_tax.tax_base_growth"), ("nhs-icb-2024", "transition.gain_gap_closed"),
    ("nhs-icb-2024", "transition.max_gain"), ("nhs-icb-2024", "transition.max_reduction"),
    ("nhs-icb-2024", "transition.reduction_gap_closed"), ("nhs-icb-2023.toml", "transition.max_reduction"),
    ("nhs-icb-2024", "need.source"), ("localis-2016", "local_tax.health_tax.rate"),
    # nhs-icb-2025, every round: test_the_rounds_of_nhs_icb_2025_state_what_each_published_round_shows; its need
    # (published targets set the 2023/24 shares; the 2025/26 weights) by the reproductions in tests/test_nhs_rounds.py
    *((("nhs-icb-2025", f"{pre}transition.{k}") for pre in ("", "years.2024/25.", "years.2025/26.")
       for k in ("gain_gap_closed", "max_gain", "reduction_gap_closed", "max_reduction"))),
    ("nhs-icb-2025", "need.source"),
    # nhs-icb-core-pmc: test_nhs_icb_core_pmc_states_what_each_published_round_of_each_stream_shows
    *((("nhs-icb-core-pmc", f"{pre}transition.{k}") for pre in ("", "streams.primary_medical_care.",
                                                                 "years.2024/25.streams.core.",
                                                                 "years.2024/25.streams.primary_medical_care.")
       for k in ("gain_gap_closed", "max_gain", "reduction_gap_closed", "max_reduction"))),
    ("nhs-icb-core-pmc", "need.source"),
}


def test_every_stated_effect_is_checked_here():
    refs = list(available_formulas()) + [str(p) for p in (PROJECT_ROOT / "formulas" / "scenarios").glob("*.toml")]
    unchecked = []
    for ref in refs:
        f = resolve_formula(ref)
        name = ref.rsplit("/", 1)[-1] if ref.endswith(".toml") else ref
        texts = {path: q.source for path, q in iter_quantities(f.spec)}
        texts["need.source"] = f.spec.need.source or ""
        for year in f.spec.years:  # the dated sections' own numbers, as the version stands in that year
            texts |= {f"years.{year}.{path}": q.source for path, q in iter_quantities(f.spec.at(year))
                      if q.source != texts.get(path)}
            for st in f.spec.streams:  # and as each stream stands in it (its own dated sections)
                own = {p.removeprefix(f"streams.{st.name}."): q.source for p, q in iter_quantities(f.spec)
                       if p.startswith(f"streams.{st.name}.")}
                texts |= {f"years.{year}.streams.{st.name}.{path}": q.source
                          for path, q in iter_quantities(f.spec.stream_view(st).at(year))
                          if q.source != (own.get(path) or texts.get(path)) and q.source != texts.get(
                              f"years.{year}.{path}")}
        for o in f.overrides:  # a scenario's own claims are those of the numbers it changes
            texts = {k: v for k, v in texts.items() if k.startswith(o.path.rsplit(".value", 1)[0])} | {}
        for path, text in texts.items():
            if CLAIM.search(text.split(":", 1)[-1] if text.startswith("assumption") else text) and \
                    (name, path) not in CHECKED and not text.lower().startswith("assumption: value set by"):
                unchecked.append(f"{name} {path}: {text}")
    assert not unchecked, "claims without a check:\n" + "\n".join(unchecked)
