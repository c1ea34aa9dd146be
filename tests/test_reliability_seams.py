"""The seams (issue 35): where a user's choice could be read another way in silence. Each test is named for what it
guards: a scenario's streams extend its base's (the version's own stream included) unless it says otherwise; every
drawn number passes the gate a plain run's inputs pass; `--out` on the output root works and keeps its warehouse;
a fault of fundform's own exits 3 as one; `rounds` says when no rule fits; region codes are checked on every row;
an assumption whose reason is too short says so."""

from __future__ import annotations

import dataclasses
import re
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from cli import app
from fundform.base.errors import InternalError, InvalidInput, SpecError
from fundform.engine.draws import make_draws
from fundform.formula.scenario import resolve_formula
from fundform.inputs.dataset import load_dataset
from fundform.inputs.uncertainty import read_uncertainty
from fundform.studies.pipeline import RunParameters, compute
from tests.conftest import DATA
from tests.test_icb_allocation import RC_STREAM

runner = CliRunner()
YEARS = ["2026/27", "2027/28", "2028/29"]
RUNNING_COSTS = RC_STREAM  # the running-cost stream as the ICB letter's tests add it
NHS_2025 = RunParameters(level="icb", start_year="2025/26", years=1)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def pooled(bundled, ref: str | Path) -> int:
    return int(compute(bundled, resolve_formula(str(ref)), NHS_2025).allocations["allocation"].sum())


# -- composition: one meaning, stated --------------------------------------------------------------------------

def test_a_scenario_adding_a_stream_to_a_version_without_streams_keeps_the_versions_own(bundled, tmp_path):
    """nhs-icb-2025 has no [[streams]]: a scenario adding running costs pools core and running costs, never running
    costs alone (the GBP 116.7bn core dropped without a word)."""
    both = write(tmp_path, "both.toml", f'extends = "nhs-icb-2025"\n{RUNNING_COSTS}')
    alone = write(tmp_path, "alone.toml", f'extends = "nhs-icb-2025"\nreplace_streams = true\n{RUNNING_COSTS}')
    core, rc, total = pooled(bundled, "nhs-icb-2025"), pooled(bundled, alone), pooled(bundled, both)
    assert total == core + rc  # to the penny: the pool is the version's own stream plus the one added
    published = bundled["nhs_icb_allocations"].filter((pl.col("stream") == "running_costs")
                                                      & (pl.col("allocation_round") == "2025/26"))
    assert abs(rc / 100 - published["recurrent_allocation"].sum()) < 1_000  # the sheet's whole thousands
    assert core > 100 * rc  # core is the bulk: what a silent drop lost


def test_the_run_summary_lists_the_streams_pooled_with_their_totals(tmp_path, isolated):
    both = write(tmp_path, "both.toml", f'extends = "nhs-icb-2025"\n{RUNNING_COSTS}')
    r = runner.invoke(app, ["run", "--formula", str(both), "--start-year", "2025/26", "--years", "1",
                            "--no-record", "--out", str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
    assert "Streams pooled (2)" in r.output
    assert "Core services (core)" in r.output and "Running costs (running_costs)" in r.output


def test_a_stream_counting_the_versions_own_funding_twice_is_refused_naming_both(tmp_path):
    ph = write(tmp_path, "ph.toml", 'extends = "fundform-needs"\n[[streams]]\nname = "public_health"\n'
                                    'title = "Public health"\nbaseline_components = ["public_health"]\n')
    with pytest.raises(SpecError) as e:
        resolve_formula(str(ph))
    assert "public_health in all and public_health" in str(e.value) and "replace_streams" in str(e.value)


def test_replace_streams_without_streams_or_not_a_boolean_is_refused(tmp_path):
    for text, words in (('replace_streams = true\n', "lists no [[streams]]"),
                        (f'replace_streams = "yes"\n{RUNNING_COSTS}', "replace_streams = true")):
        path = write(tmp_path, "r.toml", f'extends = "nhs-icb-2025"\n{text}')
        with pytest.raises(SpecError, match=r"r\.toml") as e:
            resolve_formula(str(path))
        assert words in str(e.value)


def test_linked_growth_on_a_published_rounds_stream_is_refused_before_anything_runs(tmp_path, isolated):
    path = write(tmp_path, "l.toml", 'extends = "nhs-icb-core-pmc"\n[[streams]]\nname = "primary_medical_care"\n'
                                     'linked_to = "core"\n')
    r = runner.invoke(app, ["run", "--formula", str(path), "--no-record", "--out", str(tmp_path / "o")])
    assert r.exit_code == 1, r.output
    assert "linked_to = 'core'" in r.output and "internal error" not in r.output
    assert not (tmp_path / "o").exists()


# -- one gate for every number -----------------------------------------------------------------------------------

def copy_data(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    shutil.copytree(DATA, d)
    (d / "CHECKSUMS.sha256").unlink()
    return d


def unc(tmp_path: Path, text: str):
    return read_uncertainty(write(tmp_path, "u.toml", text))


def test_a_population_draw_at_or_below_zero_is_refused_even_when_implausible_input_is_allowed(tmp_path):
    """A population_variants ratio of 2.0 passes --allow-implausible, but a factor 1 + z x 1.0 below 0 for z < -1
    would make residents negative: a hard limit, named by draw, authority and year."""
    d = copy_data(tmp_path)
    pv = pl.read_parquet(d / "population_variants.parquet")
    first = pv["area_code"].min()
    pv.with_columns(ratio=pl.when(pl.col("area_code") == first).then(2.0).otherwise(pl.col("ratio"))).write_parquet(
        d / "population_variants.parquet")
    data = load_dataset(d, allow_implausible=True)
    u = unc(tmp_path, 'draws = 200\nseed = 3\n[[sources]]\ninput = "population"\nmethod = "vintages"\n'
                      'variant = "snpp2018"\n')
    with pytest.raises(InvalidInput) as e:
        make_draws(data, u, resolve_formula("fundform-needs").spec, YEARS)
    text = str(e.value)
    assert "uncertainty source population (vintages)" in text and f"{first} " in text and "factor -" in text


def test_a_drawn_user_indicator_is_checked_against_its_own_contract(tmp_path, monkeypatch):
    d = copy_data(tmp_path)
    (d / "indicators").mkdir()
    codes = pl.read_parquet(d / "areas.parquet")["area_code"]
    pl.DataFrame({"area_code": codes, "area_cost_index": np.linspace(0.9, 1.2, len(codes))}).write_csv(
        d / "indicators" / "area_cost.csv")
    formula = resolve_formula(str(Path(__file__).parents[1] / "docs" / "examples" / "area-cost-scenario.toml"))
    u = unc(tmp_path, 'draws = 50\nseed = 1\n[[sources]]\ninput = "indicators/area_cost"\ncolumn = '
                      '"area_cost_index"\nmethod = "distribution"\ndistribution = "normal"\nsd = 2.0\nrelative = '
                      'false\nsource = "assumption: a spread wider than the values"\n')
    with pytest.raises(InvalidInput) as e:
        make_draws(load_dataset(d), u, formula.spec, YEARS)
    assert "indicators/area_cost.area_cost_index" in str(e.value) and "> 0" in str(e.value)


def mortality_draws(tmp_path: Path, data, value_of) -> Path:
    rates = data["preventable_mortality"].sort("area_code")
    rows = [f"{k},{c},{value_of(k, i, r)}" for k in range(2)
            for i, (c, r) in enumerate(zip(rates["area_code"], rates["preventable_mortality_rate"]))]
    path = tmp_path / "mort.csv"
    path.write_text("draw,area_code,value\n" + "\n".join(rows) + "\n")
    return path


MORTALITY_DRAWS = ('draws = 2\nseed = 1\n[[sources]]\ninput = "preventable_mortality"\n'
                   'column = "preventable_mortality_rate"\nmethod = "draws"\nfile = "mort.csv"\nsource = "a test"\n')


def test_a_draws_table_value_a_plain_run_would_refuse_is_refused_unless_implausible_input_is_allowed(bundled,
                                                                                                     tmp_path):
    """5,000 deaths per 100,000 in a draws table: outside the rate's plausibility bound (10 to 2,000), refused
    as the same value in preventable_mortality would be; accepted, as there, with --allow-implausible."""
    mortality_draws(tmp_path, bundled, lambda k, i, r: 5000.0 if (k, i) == (1, 3) else r)
    spec = resolve_formula("fundform-needs").spec
    with pytest.raises(InvalidInput) as e:
        make_draws(bundled, unc(tmp_path, MORTALITY_DRAWS), spec, YEARS)
    code = bundled["preventable_mortality"].sort("area_code")["area_code"][3]
    assert "mort.csv" in str(e.value) and f"draw 1, {code}: 5000" in str(e.value) and "plausibility" in str(e.value)
    allowed = dataclasses.replace(bundled, allow_implausible=True)
    assert make_draws(allowed, unc(tmp_path, MORTALITY_DRAWS), spec, YEARS).size == 2


def test_a_population_five_times_over_in_a_draws_table_is_refused_as_a_plain_run_refuses_it(bundled, tmp_path):
    codes = sorted(bundled["areas"]["area_code"].to_list())
    big = "E08000025"  # Birmingham: 1.2m residents, x5 is past the 3m bound on an authority
    rows = [f"{k},{c},{y},{5.0 if (c, k) == (big, 1) else 1.0}" for k in range(2) for c in codes for y in YEARS]
    (tmp_path / "pop.csv").write_text("draw,area_code,financial_year,factor\n" + "\n".join(rows) + "\n")
    u = unc(tmp_path, 'draws = 2\nseed = 1\n[[sources]]\ninput = "population"\nmethod = "draws"\n'
                      'file = "pop.csv"\nsource = "a test"\n')
    with pytest.raises(InvalidInput) as e:
        make_draws(bundled, u, resolve_formula("fundform-needs").spec, YEARS)
    assert "pop.csv" in str(e.value) and f"draw 1, {big} 2026/27" in str(e.value) and "3,000,000" in str(e.value)


def test_a_borrowed_rate_carries_the_borrowings_spread_not_a_sampling_error_of_its_own(bundled):
    """The Isles of Scilly's preventable mortality is Cornwall's (declared: 'substituted from E06000052'): each draw
    is Cornwall's drawn estimate times the borrowing's own error, whose spread the source states (or, by default,
    the spread of the rate among the donor's region's other authorities), never the Poisson error of Scilly's ~3
    implied deaths (58%); the manifest's source says which spread and where it comes from."""
    from fundform.inputs.uncertainty import UncertaintySpec

    def draws_of(extra: dict):
        u = UncertaintySpec.model_validate({"draws": 4000, "seed": 9, "sources": [
            {"input": "preventable_mortality", "column": "preventable_mortality_rate", "method": "sampling", **extra}]})
        d = make_draws(bundled, u, resolve_formula("fundform-needs").spec, YEARS)
        return d, d.values[("preventable_mortality", "preventable_mortality_rate")]

    d, v = draws_of({})
    i, j = d.codes.index("E06000053"), d.codes.index("E06000052")
    stated = d.sources[0]["borrowing"]["E06000053"]
    assert d.sources[0]["borrowed_from"]["E06000053"] == "E06000052" and "donor's region" in stated["sd_source"]
    # by hand: the population-weighted spread of log rates among the South West's other authorities
    pm = bundled["preventable_mortality"]
    sw = bundled["area_lookup"].filter((pl.col("level") == "region") & (pl.col("target_code") == "E12000009"))
    peers = pm.join(sw.select("area_code"), on="area_code").filter(pl.col("area_code") != "E06000053")
    table = bundled.tables["population"]
    pop = table.filter(pl.col("financial_year") == YEARS[0]).group_by("area_code").agg(pl.col("population").sum())
    p = peers.join(pop, on="area_code")
    logs, w = np.log(p["preventable_mortality_rate"].to_numpy()), p["population"].to_numpy()
    hand = np.sqrt((w * (logs - (w * logs).sum() / w.sum()) ** 2).sum() / w.sum())
    assert abs(stated["relative_sd"] - hand) < 1e-9
    own = np.log(v[:, i] / v[:, i].mean()) - np.log(v[:, j] / v[:, j].mean())  # the borrowing's own error
    assert abs(own.std() - hand) < 4 * hand / np.sqrt(2 * len(own))
    # a stated spread replaces the estimate
    d2, v2 = draws_of({"borrowed_sd": 0.05, "borrowed_source": "assumption: within 5% of Cornwall's"})
    own2 = np.log(v2[:, i] / v2[:, j])
    assert abs(own2.std() - 0.05) < 0.005 and d2.sources[0]["borrowing"]["E06000053"]["relative_sd"] == 0.05


def test_the_outputs_flag_figures_resting_on_borrowed_values(bundled, tmp_path):
    formula = resolve_formula("fundform-needs")
    params = RunParameters(years=1)
    from fundform.studies.uncertainty import run_uncertainty

    u = unc(tmp_path, 'draws = 40\nseed = 2\n[[sources]]\ninput = "preventable_mortality"\n'
                      'column = "preventable_mortality_rate"\nmethod = "sampling"\n')
    b = run_uncertainty(bundled, formula, params, u, compute(bundled, formula, params)).bands
    flagged = dict(b.filter(pl.col("borrowed_inputs").is_not_null()).select("area_code", "borrowed_inputs").rows())
    assert set(flagged) == {"E06000053", "E09000001"} and "E06000052's" in flagged["E06000053"]


# -- the command line's words ------------------------------------------------------------------------------------

def test_out_naming_the_output_root_works_and_a_rerun_keeps_its_warehouse_and_cache(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FUNDFORM_OUT_ROOT", "out")
    monkeypatch.setenv("FUNDFORM_WAREHOUSE", "out/fundform.duckdb")
    monkeypatch.delenv("FUNDFORM_NO_CACHE", raising=False)
    monkeypatch.delenv("FUNDFORM_CACHE", raising=False)
    import fundform.inputs.cache as cache

    monkeypatch.setattr(cache, "_CHECKED", {})  # this process has read DATA already: check it again, cached on disk
    for _ in range(2):
        r = runner.invoke(app, ["run", "--data", str(DATA), "--out", "./out", "--years", "1", "--quiet"])
        assert r.exit_code == 0, r.output
        names = {p.name for p in (tmp_path / "out").iterdir()}
        assert {"manifest.json", "allocations.parquet", "fundform.duckdb", ".cache"} <= names, names
    r = runner.invoke(app, ["runs"])
    assert r.exit_code == 0 and "fundform-needs" in r.output


@pytest.mark.parametrize("fault", [InternalError("an identity failed"), RuntimeError("a bug")])
def test_a_fault_of_fundforms_own_exits_3_saying_where_to_report_it(fault, tmp_path, monkeypatch, isolated):
    import fundform.studies.runs as runs

    def broken(*a, **k):
        raise fault
    monkeypatch.setattr(runs, "run", broken)
    r = runner.invoke(app, ["run", "--no-record", "--out", str(tmp_path / "o")])
    assert r.exit_code == 3, r.output
    assert "internal error" in r.output and "not in your input" in r.output and "report it" in r.output


def test_no_internal_fault_is_raised_as_a_users_error():
    """A fault of fundform's own is an InternalError (exit 3), never FundformError (exit 1: 'your input')."""
    root = Path(__file__).parents[1] / "fundform"
    found = [f"{p.relative_to(root)}:{n}" for p in root.rglob("*.py")
             for n, line in enumerate(p.read_text().splitlines(), 1)
             if '"internal error' in line and "InternalError(" not in line and "removeprefix" not in line
             and p.name != "errors.py"]
    assert not found, found


def test_rounds_says_no_rule_fits_beyond_its_tolerance(bundled):
    from fundform.engine.settlement.rounds import RULE_TOLERANCE, round_identities

    t = bundled["nhs_icb_allocations"].filter(pl.col("stream") == "running_costs")
    first = t["icb_code"].min()
    off = t.with_columns(recurrent_allocation=pl.when(pl.col("icb_code") == first).then(
        pl.col("recurrent_allocation") * 1.036).otherwise(pl.col("recurrent_allocation")))
    got = {r["allocation_round"]: r for r in round_identities(off).iter_rows(named=True)}
    assert RULE_TOLERANCE < 0.036
    for r in got.values():
        assert not r["fits"] and r["rule"].startswith("no rule fits within 0.05%"), r
        assert re.search(r"largest residual 3\.(59|60)", r["rule"]), r  # 1.036 x one ICB, beside a 0.01% rounding
    fits = round_identities(t)
    assert fits["fits"].all() and (fits["rule"] == "uniform").all()


def test_a_region_code_naming_no_region_is_refused_on_every_stream_naming_the_row(tmp_path):
    d = copy_data(tmp_path)
    t = pl.read_parquet(d / "nhs_icb_allocations.parquet")
    row = t.with_row_index().filter(pl.col("stream") == "running_costs")["index"][0]
    t.with_columns(nhs_region_code=pl.when(pl.int_range(pl.len()) == row).then(pl.lit("Y99"))
                   .otherwise(pl.col("nhs_region_code"))).write_parquet(d / "nhs_icb_allocations.parquet")
    with pytest.raises(InvalidInput) as e:
        load_dataset(d)
    text = str(e.value)
    assert "nhs_icb_allocations.parquet, column 'nhs_region_code'" in text and "Y99" in text
    assert f"row {row + 1}" in text or f"(row {row + 1})" in text or str(row + 1) in text


def test_an_assumption_whose_reason_is_too_short_says_so():
    with pytest.raises(SpecError) as e:
        resolve_formula("fundform-needs", ['transition.floor={value=-0.01,unit="change per year",'
                                           'source="assumption: test"}'])
    assert "too short" in str(e.value) and "('test')" in str(e.value)


# -- memory bounded by design --------------------------------------------------------------------------------------

def test_bands_streamed_through_spill_files_equal_the_bands_held_in_memory(bundled, tmp_path, monkeypatch):
    """Beyond SPILL_ABOVE draws each chunk's figures go to a temporary folder and come back a year at a time: the
    same percentiles, floor probabilities and ranks to the bit, the same shares of variance to 1e-12."""
    import fundform.studies.uncertainty as uq

    formula = resolve_formula("fundform-needs")
    params = RunParameters(years=3)
    central = compute(bundled, formula, params)
    u = unc(tmp_path, 'draws = 60\nseed = 11\n[[sources]]\ninput = "population"\nmethod = "vintages"\n'
                      'variant = "snpp2018"\n[[sources]]\ninput = "preventable_mortality"\n'
                      'column = "preventable_mortality_rate"\nmethod = "sampling"\n')
    held = uq.run_uncertainty(bundled, formula, params, u, central, chunk=25)
    monkeypatch.setattr(uq, "SPILL_ABOVE", 10)
    spilled = uq.run_uncertainty(bundled, formula, params, u, central, chunk=25)
    assert held.arrays is not None and spilled.arrays is None
    exact = [c for c in held.bands.columns if c != "most_sensitive_share"]
    assert held.bands.select(exact).equals(spilled.bands.select(exact))
    share = lambda r: r.sensitivity["share_of_variance"].fill_null(-1.0).to_numpy()
    assert np.abs(share(held) - share(spilled)).max() < 1e-9
    # and the streamed shares are the regression's, computed directly from every draw's figures
    a = held.arrays.allocation.astype(np.float64)
    t, j = 2, 17
    w = bundled.tables["population"].filter(pl.col("financial_year") == "2026/27").group_by("area_code").agg(
        pl.col("population").sum()).sort("area_code")["population"].to_numpy()
    w = w / w.sum()
    feats = []
    for s in ("population", "preventable_mortality.preventable_mortality_rate"):
        m = held.draws.move(s)[:, t]
        feats += [m[:, j], m @ w]
    x = np.column_stack(feats)
    xc, yc = x - x.mean(0), a[:, t, j] - a[:, t, j].mean()
    b = np.linalg.lstsq(xc, yc, rcond=None)[0]
    by_hand = [(b[k:k + 2] * (xc[:, k:k + 2] * yc[:, None]).sum(0)).sum() / (yc ** 2).sum() for k in (0, 2)]
    got = held.sensitivity.filter(pl.col("year_index") == t + 1).sort("area_code")
    for name, want in zip(("population", "preventable_mortality.preventable_mortality_rate"), by_hand):
        assert abs(got.filter(pl.col("input") == name)["share_of_variance"][j] - want) < 1e-6


def test_each_areas_shares_of_variance_add_to_one(bundled, tmp_path):
    """The decomposition adds up: every area's sources and the remainder (interactions and nonlinearity) sum to 1,
    each share with a Monte Carlo standard error; most of the variance is the sources' linear effects."""
    from fundform.studies.uncertainty import REMAINDER, run_uncertainty

    formula = resolve_formula("fundform-needs")
    params = RunParameters(years=2)
    u = unc(tmp_path, 'draws = 200\nseed = 5\n[[sources]]\ninput = "population"\nmethod = "vintages"\n'
                      'variant = "snpp2018"\n[[sources]]\ninput = "preventable_mortality"\n'
                      'column = "preventable_mortality_rate"\nmethod = "sampling"\n')
    s = run_uncertainty(bundled, formula, params, u, compute(bundled, formula, params)).sensitivity
    sums = s.group_by("area_code", "financial_year").agg(pl.col("share_of_variance").sum(), pl.len(),
                                                         fixed=pl.col("share_of_variance").is_null().all())
    assert (sums["len"] == 3).all()
    varies = sums.filter(~pl.col("fixed"))  # (an area held at its floor in every draw has nothing to share)
    assert varies.height > 0.9 * sums.height and (varies["share_of_variance"] - 1).abs().max() < 1e-9
    rest = s.filter(pl.col("input") == REMAINDER)["share_of_variance"]
    assert rest.median() < 0.1
    moving = s.filter(pl.col("share_of_variance").is_not_null())
    assert moving["share_se"].is_not_null().mean() > 0.95 and (moving["share_se"].drop_nulls() >= 0).all()


def test_population_draws_share_a_regional_component_so_aggregates_are_not_understated(bundled):
    """The vintages' spread is mostly regional (the central projection is pinned to regional totals): a region's
    drawn population moves by its own spread between the vintages, sum_i w_i r_i (a hand computation), where
    independent draws per authority give only sqrt(sum_i (w_i r_i)^2); an authority's own band keeps its spread."""
    from fundform.inputs.uncertainty import UncertaintySpec

    spec = resolve_formula("fundform-needs").spec

    def factors(structure: str):
        u = UncertaintySpec.model_validate({"draws": 3000, "seed": 4, "sources": [
            {"input": "population", "method": "vintages", "variant": "snpp2018", "structure": structure}]})
        d = make_draws(bundled, u, spec, YEARS)
        return d, d.factor(YEARS[-1])

    reg, f_reg = factors("regional")
    ind, f_ind = factors("independent")
    y = YEARS[-1]
    v = bundled["population_variants"].filter((pl.col("variant") == "snpp2018") & (pl.col("financial_year") == y))
    pop = bundled.tables["population"].filter(pl.col("financial_year") == y).group_by("area_code").agg(
        pl.col("population").sum())
    lk = bundled["area_lookup"].filter(pl.col("level") == "region").select("area_code", region="target_code")
    frame = pl.DataFrame({"area_code": reg.codes}).join(v, on="area_code", how="left", maintain_order="left").join(
        pop, on="area_code", how="left", maintain_order="left").join(lk, on="area_code", how="left",
                                                                      maintain_order="left")
    london = (frame["region"] == "E12000007").to_numpy()
    w, r = frame["population"].to_numpy(), frame["ratio"].to_numpy() - 1
    total = w[london].sum()
    hand_regional = abs((w[london] * r[london]).sum()) / total  # the region's own spread between the vintages
    hand_independent = np.sqrt(((w[london] * r[london]) ** 2).sum()) / total
    sd = lambda f: ((f[:, london] * w[london]).sum(1) / total).std()
    assert abs(sd(f_reg) - hand_regional) < 0.06 * hand_regional
    assert abs(sd(f_ind) - hand_independent) < 0.06 * hand_independent
    assert sd(f_reg) > 1.4 * sd(f_ind)
    # the manifest states how much of the spread is regional (each year)
    share = reg.sources[0]["regional_share_of_spread"][y]
    assert 0.5 < share < 1 and reg.sources[0]["structure"] == "regional"


def test_draws_that_cannot_fit_are_refused_before_any_work_saying_why(tmp_path, monkeypatch, isolated):
    import fundform.studies.uncertainty as uq

    monkeypatch.setattr(uq, "_available_memory", lambda: 300 * 2 ** 20)  # a machine with 300 MiB free
    calls = []
    monkeypatch.setattr(uq, "make_draws", lambda *a, **k: calls.append(1))  # not one draw is made
    path = write(tmp_path, "u.toml", 'draws = 100000\nseed = 1\n[[sources]]\ninput = "population"\n'
                                     'method = "vintages"\nvariant = "snpp2018"\n')
    r = runner.invoke(app, ["run", "--uncertainty", str(path), "--no-record", "--out", str(tmp_path / "o")])
    assert r.exit_code == 5, r.output
    assert "100,000 draws need about" in r.output and "GiB available" in r.output and not calls
    assert not (tmp_path / "o").exists()


def test_an_infeasible_designs_words_agree_with_what_dropping_each_constraint_buys():
    from fundform.outputs.design_report import binding_words

    fmt = lambda v: f"{v:.3g}"
    near = {"constraint": "floor", "value": 0.05, "limit": 0.0, "short_by": 0.05}
    one = binding_words({**near, "removal_makes_feasible": ["floor"], "infeasible_alone": []}, fmt)
    assert one.startswith("floor binds: dropping it makes the question feasible")
    none = binding_words({**near, "removal_makes_feasible": [], "infeasible_alone": ["floor", "ceiling"]}, fmt)
    assert none.startswith("No single constraint binds") and "each alone is infeasible: floor, ceiling" in none
    assert "floor binds" not in none  # never names as binding a constraint whose removal buys nothing
