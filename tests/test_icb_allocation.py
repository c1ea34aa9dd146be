"""The whole ICB allocation (issue 30): every stream of NHS England's allocation workbook as data, each with the rule
its own sheet shows, composed by scenario and pooled per ICB to the penny; the rules' identities as small cases a
reviewer can check by hand; a two-part stream (converging and uniform) built from tables and a scenario alone; the
messages a user meets on the way."""

from __future__ import annotations

import io

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fundform.base.errors import FundformError, InvalidInput, SpecError
from fundform.engine.settlement.transition import run_transition
from fundform.formula.rules import make_rule
from fundform.formula.scenario import resolve_formula
from fundform.inputs.dataset import load_dataset
from fundform.outputs.letter import TOTAL, letter, line_columns
from fundform.studies.pipeline import RunParameters, compute
from tests.conftest import DATA

BAR = 0.0005  # the bar: every ICB within 0.05% of its published recurrent allocation
Q = lambda v, unit="share": {"value": v, "unit": unit, "source": "assumption: worked example"}

OPC_STREAM = '''
[[streams]]
name = "other_primary_care"
title = "Other primary care"
round_stream = "other_primary_care"
target_total = "control_total"
target_shares = "need"

[streams.transition]
rule = "given_convergence"
convergence = "published"
combine = "additive"
budget_neutral = false
over_total = "added"
'''
RC_STREAM = '''
[[streams]]
name = "running_costs"
title = "Running costs"
round_stream = "running_costs"
target_total = "control_total"
target_shares = "need"

[streams.transition]
rule = "uniform"
'''


def scenario(tmp_path, name: str, text: str):
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return str(path)


def deviations(run, data) -> pl.DataFrame:
    pub = data["nhs_icb_allocations"].select(financial_year="allocation_round", stream="stream", area_code="icb_code",
                                             pub="recurrent_allocation")
    return (run.streams.join(pub, on=["financial_year", "stream", "area_code"])
            .with_columns(dev=pl.col("allocation").cast(pl.Float64) / 100 / pl.col("pub") - 1))  # pence


@pytest.fixture(scope="module")
def reproduced(bundled, tmp_path_factory) -> pl.DataFrame:
    """Every run that reproduces a published stream round, by data and scenarios alone: the 2024/25 letter as
    shipped, the primary care streams chained over 2023/24 and 2024/25, core's three rounds chained, and the 2025/26
    letter as shipped (core, specialised services, pharmacy, optometry and dental, running costs v1.4)."""
    tmp = tmp_path_factory.mktemp("icb")
    runs = [
        (resolve_formula("nhs-icb-2024-all"), RunParameters(level="icb", start_year="2024/25", years=1)),
        (resolve_formula(scenario(tmp, "chain", 'extends = "nhs-icb-core-pmc"\n' + OPC_STREAM)),
         RunParameters(level="icb", start_year="2023/24", years=2)),
        (resolve_formula("nhs-icb-2025"), RunParameters(level="icb", start_year="2023/24", years=3)),
        (resolve_formula("nhs-icb-2025-all"), RunParameters(level="icb", start_year="2025/26", years=1)),
    ]
    out = []
    for formula, params in runs:
        run = compute(bundled, formula, params)
        assert run.reconciliation["holds"].all()
        pooled = run.streams.group_by("financial_year", "area_code").agg(pl.col("allocation").sum().alias("sum"))
        j = run.allocations.join(pooled, on=["financial_year", "area_code"])
        assert j.height == run.allocations.height and (j["allocation"] == j["sum"]).all()  # pooled to the penny
        out.append(deviations(run, bundled).with_columns(run=pl.lit(formula.spec.id)))
    return pl.concat(out)


def test_every_published_stream_round_in_the_bundled_data_is_reproduced_within_the_bar(bundled, reproduced):
    published = (bundled["nhs_icb_allocations"].filter(pl.col("recurrent_allocation").is_not_null())
                 .select("allocation_round", "stream").unique().sort("allocation_round", "stream"))
    covered = reproduced.select(allocation_round="financial_year", stream="stream").unique().sort(
        "allocation_round", "stream")
    assert covered.equals(published)  # a round added to the data without a run reproducing it fails here
    worst = reproduced.group_by("financial_year", "stream").agg(n=pl.len(), worst=pl.col("dev").abs().max())
    assert (worst["n"] % 42 == 0).all()
    assert (worst["worst"] < BAR).all(), worst.sort("worst", descending=True)
    # the additive stream is reproduced exactly (but for floating point), chained as well as alone
    opc = reproduced.filter(pl.col("stream") == "other_primary_care")
    assert sorted(opc["financial_year"].unique()) == ["2023/24", "2024/25"] and opc["dev"].abs().max() < 1e-9
    # 2025/26's specialised line, whose convergence is the sheet's own, is exact but for the sheet's whole GBP k
    spec = reproduced.filter(pl.col("stream") == "specialised")
    assert spec.height == 42 and spec["dev"].abs().max() < 0.000_005


def test_the_2025_26_letter_shows_every_published_line_beside_fundforms(bundled):
    """letter.parquet's lines, built from the run's streams and the rounds it read: per ICB, fundform's allocation
    and NHS England's, their difference, the published baseline equal to the line's own in the round's first year,
    the base growth each line grew by equal to the published, and no target where the sheet publishes none."""
    run = compute(bundled, resolve_formula("nhs-icb-2025-all"), RunParameters(level="icb", start_year="2025/26",
                                                                              years=1))
    letter = run.letter
    assert letter.height == 4 * 42 and set(letter["stream"]) == {"core", "specialised",
                                                                  "pharmacy_optometry_dental", "running_costs"}
    pub = bundled["nhs_icb_allocations"].filter(pl.col("allocation_round") == "2025/26").select(
        "stream", area_code="icb_code", ra="recurrent_allocation", rb="adjusted_recurrent_baseline", g="base_growth")
    j = letter.join(pub, on=["stream", "area_code"])
    assert j.height == letter.height
    pence = lambda c: (pl.col(c).cast(pl.Float64) / 100)  # (pounds)
    assert (j["difference"] == j["allocation"] - j["published_allocation"]).all()
    assert (j.select((pence("published_allocation") - pl.col("ra")).abs().max()).item() < 0.006)
    assert (j.select((pence("baseline") - pl.col("rb")).abs().max()).item() < 0.006)  # the letter's baseline
    assert (j["base_growth"] - j["g"]).abs().max() < 1e-9
    assert j["difference_share"].abs().max() < BAR
    none = j.filter(pl.col("stream").is_in(["pharmacy_optometry_dental", "running_costs"]))
    assert none["target_allocation"].null_count() == none.height and none["convergence"].null_count() == none.height
    assert j.filter(pl.col("stream") == "core")["target_allocation"].null_count() == 0
    # a version that does not read NHS England's rounds has no lines
    assert compute(bundled, resolve_formula("fundform-needs"), RunParameters(years=1)).letter.height == 0


def test_the_2024_25_letter_pools_four_streams_and_its_total_is_the_published_streams_sum(bundled):
    run = compute(bundled, resolve_formula("nhs-icb-2024-all"), RunParameters(level="icb", start_year="2024/25",
                                                                              years=1))
    assert sorted(run.streams["stream"].unique()) == ["core", "other_primary_care", "primary_medical_care",
                                                      "running_costs"]
    pub = bundled["nhs_icb_allocations"].filter(pl.col("allocation_round") == "2024/25")["recurrent_allocation"].sum()
    total = run.allocations["allocation"].sum() / 100  # pence
    assert abs(total / pub - 1) < BAR  # GBP 121.3bn against the four sheets' sum
    titles = {s.name: s.title for s in resolve_formula("nhs-icb-2024-all").spec.streams}
    wide = letter(run.streams, titles)
    assert line_columns(wide) == ["Core services", "Primary medical care", "Other primary care", "Running costs"]
    j = wide.join(run.allocations.select("area_code", "financial_year", pence="allocation"),
                  on=["area_code", "financial_year"])
    assert j.height == 42 and (j[TOTAL] == j["pence"]).all()  # the letter's lines add to the allocation exactly


# -- the rules, as small cases --------------------------------------------------------------------------------

def one_year(rule: dict, prev, growth, target=None, given_c=None, total=None):
    prev = np.asarray(prev, dtype=np.int64)
    growth = np.asarray(growth, dtype=np.float64)
    target = np.asarray(target if target is not None else prev * growth, dtype=np.int64)
    total = int(round((prev * growth).sum())) if total is None else total
    r = make_rule(**rule)
    tr = run_transition(prev, target[None, :], np.array([total]), r, ["y"], growth=growth[None, :],
                        given=None if given_c is None else np.asarray(given_c, dtype=np.float64)[None, :])
    return tr.allocation[0]


def test_additive_and_multiplicative_convergence_differ_by_the_cross_term():
    """GBP 1m growing 3% with convergence -1%: additive 1m x (1 + 0.03 - 0.01) = 1,020,000; multiplicative
    1m x 1.03 x 0.99 = 1,019,700 (in pence)."""
    base = {"rule": "given_convergence", "convergence": "by_icb", "by_icb": {"QAA": Q(-0.01, "change per year")},
            "budget_neutral": False, "over_total": "added"}
    add = one_year({**base, "combine": "additive"}, [100_000_000], [1.03], given_c=[-0.01])
    mult = one_year({**base, "combine": "multiplicative"}, [100_000_000], [1.03], given_c=[-0.01])
    assert add.tolist() == [102_000_000] and mult.tolist() == [101_970_000]


def test_a_uniform_stream_grows_by_its_base_growth_and_nothing_else():
    """Two ICBs far from their targets: a uniform stream takes no convergence (GBP 1m and 2m grown 5% and 4%)."""
    out = one_year({"rule": "uniform"}, [100_000_000, 200_000_000], [1.05, 1.04], target=[10, 10**12])
    assert out.tolist() == [105_000_000, 208_000_000]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(10**6, 10**12), st.floats(0.9, 1.1), st.floats(-0.02, 0.02)),
                min_size=1, max_size=8))
def test_additive_given_convergence_is_baseline_times_one_plus_growth_plus_convergence(rows):
    prev, g, c = (np.array(x) for x in zip(*rows))
    out = one_year({"rule": "given_convergence", "convergence": "published", "combine": "additive",
                    "budget_neutral": False, "over_total": "added"}, prev, g, given_c=c)
    assert np.abs(out - prev * (g + c)).max() <= 0.5  # rounded once, to the nearest penny


def test_the_nhs_rule_may_be_declared_additive_and_the_equation_says_so():
    rule = {"rule": "nhs_convergence", "gain_gap_closed": Q(0.25), "max_gain": Q(0.01), "reduction_gap_closed": Q(1.0),
            "max_reduction": Q(0.004), "reduction_of": "d", "budget_neutral": False, "over_total": "added"}
    # under target by 2% after growth: c = min(0.25 x 0.02, 0.01) = 0.5%
    prev, g = [100_000_000], [1.04]
    target = [int(100_000_000 * 1.04 / 0.98)]
    mult = one_year({**rule, "combine": "multiplicative"}, prev, g, target=target)
    add = one_year({**rule, "combine": "additive"}, prev, g, target=target)
    assert abs(mult[0] - 104_000_000 * 1.005) <= 1 and abs(add[0] - 100_000_000 * 1.045) <= 1
    from fundform.formula.components import EQUATIONS
    assert "A * (G + c) (additive)" in EQUATIONS["nhs_convergence"]


def test_convergence_stated_by_region_equals_the_published_column(bundled, tmp_path):
    """The sheet's convergence is one figure per NHS region: stating those figures by region gives the same
    allocations as reading the column."""
    rows = bundled["nhs_icb_allocations"].filter((pl.col("stream") == "other_primary_care")
                                                 & (pl.col("allocation_round") == "2024/25"))
    by_region = rows.group_by("nhs_region_code").agg(pl.col("convergence").first()).sort("nhs_region_code")
    table = "\n".join(f'{r} = {{ value = {c!r}, unit = "change per year", source = "nhse-allocations, Other Primary '
                      f'Care 2024/25" }}' for r, c in by_region.iter_rows())
    stated = OPC_STREAM.replace('convergence = "published"', 'convergence = "by_region"') + \
        f"\n[streams.transition.by_region]\n{table}\n"
    params = RunParameters(level="icb", start_year="2024/25", years=1)
    a = compute(bundled, resolve_formula(scenario(tmp_path, "a", 'extends = "nhs-icb-core-pmc"\n' + OPC_STREAM)),
                params).streams.filter(pl.col("stream") == "other_primary_care")
    b = compute(bundled, resolve_formula(scenario(tmp_path, "b", 'extends = "nhs-icb-core-pmc"\n' + stated)),
                params).streams.filter(pl.col("stream") == "other_primary_care")
    diff = (a["allocation"] - b["allocation"]).abs().max()
    assert diff <= 1  # at most a penny: the published column carries the region's figure to float precision
    # a region code that names no region, and a region left out, are each named
    bad = stated.replace("Y56 =", "Y99 =")
    with pytest.raises(FundformError, match=r"other_primary_care.*Y99.*name no NHS region") as e:
        compute(bundled, resolve_formula(scenario(tmp_path, "c", 'extends = "nhs-icb-core-pmc"\n' + bad)), params)
    assert "2024/25" in str(e.value)
    short = "\n".join(line for line in stated.splitlines() if not line.startswith("Y61 ="))
    with pytest.raises(FundformError, match=r"gives no convergence for Y61"):
        compute(bundled, resolve_formula(scenario(tmp_path, "d", 'extends = "nhs-icb-core-pmc"\n' + short)), params)


# -- a stream of two parts, from tables and a scenario alone --------------------------------------------------

def test_specialised_services_as_two_streams_one_converging_one_uniform(bundled, data_copy, tmp_path):
    """Specialised services is two parts: physical health services converge toward published targets, high-cost
    drugs and devices grow uniformly by each ICB's own base growth (4.91% to 5.63%). Two rounds' rows appended to
    the tables and a scenario of three lines' worth per stream reproduce the rule written out here."""
    core = bundled["nhs_icb_allocations"].filter((pl.col("stream") == "core")
                                                 & (pl.col("allocation_round") == "2025/26")).sort("icb_code")
    rng = np.random.default_rng(30)
    n = core.height
    phys_base = core["adjusted_recurrent_baseline"].to_numpy() * 0.15
    drug_base = core["adjusted_recurrent_baseline"].to_numpy() * 0.03
    g_phys = np.full(n, 0.0491)
    g_drug = rng.uniform(0.0491, 0.0563, n)
    fst = phys_base * rng.uniform(0.97, 1.03, n)
    keep = core.select("icb_code", "icb_name", "nhs_region_code")
    nul = pl.lit(None, pl.Float64)
    rows = pl.concat([
        keep.with_columns(allocation_round=pl.lit("2025/26"), stream=pl.lit("specialised_physical_health"),
                          adjusted_recurrent_baseline=pl.Series(phys_base), fair_shares_target=pl.Series(fst),
                          distance_from_target=nul, base_growth=pl.Series(g_phys), convergence=nul,
                          recurrent_allocation=nul, post_convergence_distance_from_target=nul),
        keep.with_columns(allocation_round=pl.lit("2025/26"), stream=pl.lit("specialised_drugs_devices"),
                          adjusted_recurrent_baseline=pl.Series(drug_base), fair_shares_target=nul,
                          distance_from_target=nul, base_growth=pl.Series(g_drug), convergence=nul,
                          recurrent_allocation=nul, post_convergence_distance_from_target=nul)])
    path = data_copy / "nhs_icb_allocations.parquet"
    t = pl.read_parquet(path)
    pl.concat([t, rows.select(t.columns)]).write_parquet(path)
    data = load_dataset(data_copy)
    text = '''extends = "nhs-icb-2025"
effective_years = ["2025/26"]

[[streams]]
name = "specialised_physical_health"
title = "Specialised services: physical health"
round_stream = "specialised_physical_health"
target_shares = "published_fair_shares"

[streams.transition]
rule = "nhs_convergence"
gain_gap_closed = { value = 0.5, unit = "share", source = "assumption: worked example" }
max_gain = { value = 0.01, unit = "share", source = "assumption: worked example" }
reduction_gap_closed = { value = 0.5, unit = "share", source = "assumption: worked example" }
max_reduction = { value = 0.01, unit = "share", source = "assumption: worked example" }
reduction_of = "d"
budget_neutral = false
over_total = "added"

[[streams]]
name = "specialised_drugs_devices"
title = "Specialised services: high-cost drugs and devices"
round_stream = "specialised_drugs_devices"
target_total = "control_total"
target_shares = "need"

[streams.transition]
rule = "uniform"
'''
    run = compute(data, resolve_formula(scenario(tmp_path, "spec", text)),
                  RunParameters(level="icb", start_year="2025/26", years=1))
    got = {s: run.streams.filter(pl.col("stream") == s).sort("area_code")["allocation"].to_numpy() / 100
           for s in ("specialised_physical_health", "specialised_drugs_devices")}
    # the rule by hand: targets are the published fair shares grown by each ICB's growth; d after growth
    grown = phys_base * (1 + g_phys)
    target = fst * (1 + g_phys)
    d = grown / target - 1
    c = np.where(d < 0, np.minimum(0.5 * -d, 0.01), -np.minimum(0.5 * d, 0.01))
    assert np.abs(got["specialised_physical_health"] - grown * (1 + c)).max() < 0.02  # GBP, rounding to pence
    assert np.abs(got["specialised_drugs_devices"] - drug_base * (1 + g_drug)).max() < 0.02
    assert run.reconciliation["holds"].all()


# -- composing streams by scenario ----------------------------------------------------------------------------

def test_a_scenario_removes_and_replaces_a_stream_by_name(bundled, tmp_path):
    params = RunParameters(level="icb", start_year="2024/25", years=1)
    letter_run = compute(bundled, resolve_formula("nhs-icb-2024-all"), params)
    without = resolve_formula(scenario(tmp_path, "w", 'extends = "nhs-icb-2024-all"\n[[streams]]\n'
                                                      'name = "running_costs"\nremove = true\n'))
    assert [s.name for s in without.spec.streams] == ["core", "primary_medical_care", "other_primary_care"]
    run = compute(bundled, without, params)
    rc = letter_run.streams.filter(pl.col("stream") == "running_costs").select("area_code", rc="allocation")
    j = run.allocations.join(letter_run.allocations.select("area_code", full="allocation"), on="area_code").join(
        rc, on="area_code")
    assert (j["full"] - j["allocation"] == j["rc"]).all()  # removing a stream takes exactly its lines away
    # replaced whole: the other primary care stream as a uniform one grows by base growth alone
    replaced = resolve_formula(scenario(tmp_path, "r", 'extends = "nhs-icb-2024-all"\n' + OPC_STREAM.replace(
        "[[streams]]", "[[streams]]\nreplace = true", 1).split("[streams.transition]")[0]
        + '[streams.transition]\nrule = "uniform"\n'))
    opc = compute(bundled, replaced, params).streams.filter(pl.col("stream") == "other_primary_care")
    base = bundled["nhs_icb_allocations"].filter((pl.col("stream") == "other_primary_care")
                                                 & (pl.col("allocation_round") == "2024/25")).sort("icb_code")
    want = base["adjusted_recurrent_baseline"] * (1 + base["base_growth"])
    assert (opc.sort("area_code")["allocation"] / 100 - want).abs().max() < 0.01


def test_a_scenario_naming_a_stream_the_version_lacks_is_refused_naming_those_it_has(tmp_path):
    with pytest.raises(SpecError, match=r"no item named 'dental' to remove \(known: core, primary_medical_care"):
        resolve_formula(scenario(tmp_path, "x", 'extends = "nhs-icb-core-pmc"\n[[streams]]\nname = "dental"\n'
                                                'remove = true\n'))
    with pytest.raises(SpecError, match=r"no item named 'dental' to change"):
        resolve_formula(scenario(tmp_path, "y", 'extends = "nhs-icb-core-pmc"\n[[streams]]\nname = "dental"\n'
                                                'real_growth = 0.01\n'))


def test_a_new_stream_whose_round_is_not_in_the_data_is_named_with_the_rounds_held(bundled, tmp_path):
    f = resolve_formula(scenario(tmp_path, "z", 'extends = "nhs-icb-core-pmc"\n' + OPC_STREAM.replace(
        'round_stream = "other_primary_care"', 'round_stream = "dental"').replace(
        'name = "other_primary_care"', 'name = "dental"')))
    with pytest.raises(FundformError, match=r"stream 'dental'.*holds core: .*other_primary_care"):
        compute(bundled, f, RunParameters(level="icb", start_year="2024/25", years=1))


# -- bad input --------------------------------------------------------------------------------------------------

def test_a_stream_round_missing_an_icb_is_refused_naming_file_stream_round_and_icb(data_copy):
    path = data_copy / "nhs_icb_allocations.parquet"
    t = pl.read_parquet(path)
    t.filter(~((pl.col("stream") == "other_primary_care") & (pl.col("allocation_round") == "2024/25")
               & (pl.col("icb_code") == "QOQ"))).write_parquet(path)
    with pytest.raises(InvalidInput) as e:
        load_dataset(data_copy)
    text = str(e.value)
    assert "nhs_icb_allocations.parquet" in text and "round 2024/25 of stream 'other_primary_care'" in text
    assert "2024/25/other_primary_care/QOQ" in text


def test_a_growth_beyond_its_bounds_and_a_half_published_target_column_are_refused_by_row(data_copy):
    path = data_copy / "nhs_icb_allocations.parquet"
    t = pl.read_parquet(path)
    hit = (pl.col("stream") == "running_costs") & (pl.col("icb_code") == "QHM") & (pl.col("allocation_round") == "2024/25")
    t.with_columns(base_growth=pl.when(hit).then(12.0).otherwise(pl.col("base_growth")),
                   fair_shares_target=pl.when((pl.col("stream") == "other_primary_care") & (pl.col("icb_code") == "QF7"))
                   .then(1e8).otherwise(pl.col("fair_shares_target"))).write_parquet(path)
    with pytest.raises(InvalidInput) as e:
        load_dataset(data_copy)
    text = str(e.value)
    assert "base_growth" in text and "QHM" in text  # the contract's bound, by row
    assert "fair_shares_target" in text and "stream 'other_primary_care' gives fair_shares_target for 1 of its 42" in text


def test_the_report_and_the_workbook_show_the_letter_adding_to_the_allocation(tmp_path):
    from fundform.outputs.export import workbook_of
    from fundform.outputs.report import build_report
    from fundform.studies.runs import run

    out = tmp_path / "run"
    run("nhs-icb-2024-all", DATA, RunParameters(level="icb", start_year="2024/25", years=1), out, tmp_path,
        warehouse=None)
    html = build_report(out)
    assert "<h2>The allocation letter, 2024/25: each stream's allocation per area (cash)</h2>" in html
    assert "<th>Other primary care (£)</th>" in html and f"<th>{TOTAL} (£)</th>" in html
    import zipfile

    book = zipfile.ZipFile(io.BytesIO(workbook_of(out)))
    sheets = book.read("xl/workbook.xml").decode()
    assert 'name="letter"' in sheets and 'name="letter, by area"' in sheets  # the NHS letter, and its lines by area
    assert 'name="cohorts"' not in sheets  # a table with no rows has no sheet, never an empty one
    # the NHS words: titled by the scenario asked for, the lines with NHS England's figures beside
    assert "<h1>nhs-icb-2024-all: recurrent allocations, 2024/25</h1>" in html
    assert "each line, fundform&#x27;s figure beside NHS England&#x27;s published" in html or \
        "each line, fundform's figure beside NHS England's published" in html
    assert "equal share per head" not in html and "areas at a floor" not in html


def test_explain_tells_an_icb_its_letter_and_export_writes_the_workbook_file_it_is_given(tmp_path):
    from typer.testing import CliRunner

    from cli import app

    runner = CliRunner()
    out = tmp_path / "run"
    r = runner.invoke(app, ["run", "--formula", "nhs-icb-2025-all", "--out", str(out), "--quiet", "--no-record"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["explain", "QOQ", "--run", str(out)], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    text = r.output
    assert "line by line as NHS England's allocation letter states it" in text
    for words in ("Core services", "Specialised services", "Pharmacy, optometry and dental", "Running costs",
                  "base growth", "convergence", "NHS England", "no target"):
        assert words in text, words
    assert "equal share per head" not in text and "transition" not in text
    book = tmp_path / "letter.xlsx"
    r = runner.invoke(app, ["export", str(out), "--out", str(book)])
    assert r.exit_code == 0, r.output
    assert book.is_file() and zipfile_names(book) >= {"letter", "letter, by area", "allocations", "manifest"}
    r = runner.invoke(app, ["export", str(out), "--out", str(book)])  # its own workbook: replaced
    assert r.exit_code == 0, r.output
    foreign = tmp_path / "theirs.xlsx"
    foreign.write_bytes(b"not ours")
    r = runner.invoke(app, ["export", str(out), "--out", str(foreign)])
    assert r.exit_code == 1 and "not a file fundform wrote" in r.output and foreign.read_bytes() == b"not ours"
    r = runner.invoke(app, ["export", str(out), "--format", "csv", "--out", str(tmp_path / "x.xlsx")])
    assert r.exit_code == 1 and "--format is csv" in r.output and not (tmp_path / "x.xlsx").exists()
    r = runner.invoke(app, ["export", str(out), "--out", str(tmp_path / "tables.csv")])
    assert r.exit_code == 1 and "give a folder name" in r.output and not (tmp_path / "tables.csv").exists()


def zipfile_names(path) -> set[str]:
    import re
    import zipfile

    return set(re.findall(r'<sheet name="([^"]+)"', zipfile.ZipFile(path).read("xl/workbook.xml").decode()))


def test_the_rounds_command_names_the_rule_each_sheet_follows():
    """`fundform rounds` reads each published round's own columns: the sheet's identities decide the rule."""
    import json

    from typer.testing import CliRunner

    from cli import app

    r = CliRunner().invoke(app, ["rounds", "--json"])
    assert r.exit_code == 0, r.output
    found = {(x["allocation_round"], x["stream"]): x for x in json.loads(r.output)}
    assert found["2024/25", "other_primary_care"]["rule"] == 'given_convergence, combine = "additive"'
    assert found["2024/25", "other_primary_care"]["additive"] < 1e-12 < found["2024/25", "other_primary_care"][
        "multiplicative"]
    assert found["2024/25", "other_primary_care"]["by_region"] and not found["2024/25", "core"]["by_region"]
    assert found["2025/26", "running_costs"]["rule"] == "uniform"
    assert {found[k]["rule"] for k in found if k[1] in ("core", "primary_medical_care")} == {"nhs_convergence"}


def test_round_identities_on_a_sheet_built_by_each_rule():
    from fundform.engine.settlement.rounds import round_identities

    base = np.array([1e8, 2e8, 3e8])
    g, c = np.array([0.03, 0.04, 0.05]), np.array([0.01, -0.01, 0.0])
    rows = []
    for stream, alloc, conv in (("m", base * (1 + g) * (1 + c), c), ("a", base * (1 + g + c), c),
                                ("u", base * (1 + g), [None] * 3)):
        rows.append(pl.DataFrame({"allocation_round": ["2026/27"] * 3, "stream": [stream] * 3,
                                  "nhs_region_code": ["Y56", "Y56", "Y58"], "adjusted_recurrent_baseline": base,
                                  "base_growth": g, "convergence": pl.Series(conv, dtype=pl.Float64),
                                  "fair_shares_target": pl.Series([None] * 3, dtype=pl.Float64),
                                  "recurrent_allocation": alloc}))
    got = {r["stream"]: r["rule"] for r in round_identities(pl.concat(rows)).iter_rows(named=True)}
    assert got == {"m": "given_convergence", "a": 'given_convergence, combine = "additive"', "u": "uniform"}
