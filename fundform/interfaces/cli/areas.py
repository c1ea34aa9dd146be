"""fundform places, ledger and rounds: need for places built from GP practices, the medium-term ledger, and the rule
each published NHS stream round follows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from fundform.base.errors import FundformError
from fundform.interfaces.cli.common import (
    DataOpt,
    JsonOpt,
    QuietOpt,
    app,
    current_settings,
    out,
    write_frame,
)
from fundform.outputs.text import gbp_pence


@app.command()
def places(
    file: Annotated[Path, typer.Argument(help="CSV of practice_code, place_code, place_name.")],
    formula: Annotated[str, typer.Option(help="A version whose need comes from practices.")] = "nhs-icb-2024",
    data: DataOpt = None,
    out_file: Annotated[Optional[Path], typer.Option("--out", help="Write the table as Parquet here.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Need for places built from GP practices (NHS England's place-based tool): weighted population by component,
    need index and share of England's need, per place."""
    from rich.table import Table

    from fundform.base.paths import default_data_dir
    from fundform.engine.need.places import place_need, read_places
    from fundform.formula.scenario import resolve_formula
    from fundform.studies.runs import checked_dataset

    spec = resolve_formula(formula).spec
    table = place_need(checked_dataset(data or default_data_dir()), spec, read_places(file), file.name)
    if out_file:
        write_frame(table, out_file)
    if json_out:
        out.print_json(json.dumps(table.to_dicts()))
        return
    t = Table(title=f"Need by place ({spec.id}, weights {spec.need.weights_year})")
    for c in ["place", "practices", "ICBs", "registered population", "need-weighted population", "need index",
              "share of England"]:
        t.add_column(c, justify="left" if c in ("place", "ICBs") else "right")
    for r in table.iter_rows(named=True):
        t.add_row(f"{r['place_name']} ({r['place_code']})", str(r["practices"]), r["icb_codes"],
                  f"{r['population']:,.0f}", f"{r['need_weighted_population']:,.0f}", f"{r['need_index']:.4f}",
                  f"{r['share_of_england']:.6f}")
    out.print(t)


@app.command("ledger")
def ledger_cmd(
    actuals: Annotated[Path, typer.Argument(help="CSV (or Parquet) of area_code, financial_year, spending (GBP).")],
    run_ref: Annotated[str, typer.Option("--run", metavar="RUN", help="A run's output folder or its id (as every "
                                         "command takes; see `fundform runs`).")],
    formula: Annotated[Optional[str], typer.Option(help="Version whose ledger limits apply. [default: the run's]",
                                                   show_default=False)] = None,
    out_file: Annotated[Optional[Path], typer.Option("--out", help="Write the ledger as Parquet here.")] = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """The medium-term ledger: each year's under- or overspend against a run's allocations, the balance carried
    within the settlement (within the version's carry-forward and borrowing limits), and whether each area balances
    over the window. Exit 1 if any area does not."""
    import polars as pl
    from rich.table import Table

    from fundform.engine.settlement.ledger import check_coverage, ledger, read_actuals
    from fundform.formula.scenario import resolve_formula
    from fundform.outputs.warehouse import find_run

    s = current_settings()
    run_dir = find_run(run_ref, s.warehouse, s.out_root)
    allocations = pl.read_parquet(run_dir / "allocations.parquet")
    manifest = json.loads((run_dir / "manifest.json").read_text())
    spec = resolve_formula(formula or manifest["formula"]["id"]).spec
    acts = read_actuals(actuals)
    check_coverage(acts, allocations, actuals.name)
    table = ledger(allocations, acts, spec.ledger)
    if out_file:
        write_frame(table, out_file)
    per_area = table.group_by("area_code", "area_name", maintain_order=True).agg(
        pl.col("allocation").sum(), pl.col("spending").sum(), pl.col("forfeited").sum(),
        pl.col("borrowing_breach").sum(), pl.col("status").first(), pl.col("first_breach_year").first())
    failing = per_area.filter(pl.col("status") != "balances")
    if json_out:
        out.print_json(json.dumps({"areas": per_area.height, "not_balancing": failing.to_dicts()}))
    elif not quiet:
        t = Table(title=f"Medium-term ledger: {per_area.height - failing.height} of {per_area.height} areas balance "
                        f"over {table['financial_year'].n_unique()} years")
        for c in ["area", "allocated", "spent", "balance", "forfeited", "status"]:
            t.add_column(c, justify="left" if c in ("area", "status") else "right")
        for r in (failing if failing.height else per_area).head(20).iter_rows(named=True):
            t.add_row(f"{r['area_name']} ({r['area_code']})", gbp_pence(r['allocation']),
                      gbp_pence(r['spending']), gbp_pence(r['allocation'] - r['spending']),
                      gbp_pence(r['forfeited']), r["status"] + (f" ({r['first_breach_year']})"
                                                                      if r["first_breach_year"] else ""))
        out.print(t)
    if failing.height:
        raise typer.Exit(1)


@app.command()
def rounds(data: DataOpt = None, json_out: JsonOpt = False) -> None:
    """Which rule each published NHS stream round follows (nhs_icb_allocations): for every round and stream with
    published outcomes, the largest residual over its ICBs of the multiplicative, additive and uniform identities,
    whether it publishes targets and whether its convergence is one figure per NHS region, and the rule that says
    what the sheet does (docs/nhs-rounds.md)."""
    from rich.table import Table

    from fundform.engine.settlement.rounds import round_identities
    from fundform.inputs.dataset import load_dataset

    s = current_settings()
    ds = load_dataset(data or s.data_dir)
    if "nhs_icb_allocations" not in ds.tables:
        raise FundformError(f"{ds.directory}: no nhs_icb_allocations table (NHS England's published rounds)")
    found = round_identities(ds["nhs_icb_allocations"])
    if json_out:
        out.print_json(json.dumps(found.to_dicts()))
        return
    from fundform.formula.scenario import ROUND_STREAM_TITLES

    t = Table(title="NHS England's published allocation sheets: how each line's allocation follows from its "
                    "baseline, base growth and convergence. Each identity's largest miss over the sheet's ICBs, "
                    "as a share of the allocation")
    money = ["x (1 + growth) x (1 + convergence)", "x (1 + growth + convergence)", "x (1 + growth)"]
    for c in ["round", "line", "ICBs", *money, "targets", "declare"]:
        t.add_column(c, justify="right" if c in ("ICBs", *money) else "left", no_wrap=c in ("line", "declare"))
    for r in found.iter_rows(named=True):
        t.add_row(r["allocation_round"], escape(ROUND_STREAM_TITLES.get(r["stream"], r["stream"])), str(r["icbs"]),
                  f"{r['multiplicative']:.4%}", f"{r['additive']:.4%}", f"{r['uniform']:.4%}",
                  "yes" if r["targets"] else "no", escape(r["rule"]))
    out.print(t)
    out.print("What each sheet does:")
    for (stream, words), part in found.group_by("stream", "in_words", maintain_order=True):
        out.print(f"  {escape(ROUND_STREAM_TITLES.get(stream, stream))} "
                  f"({', '.join(part['allocation_round'].to_list())}): {escape(words)}.")
    out.print("Baseline: the round's adjusted recurrent baseline (last year's allocation as restated); growth: its "
              "base growth; convergence: its convergence column. 'declare' is the rule a scenario states for the "
              "line (docs/nhs-rounds.md).")
