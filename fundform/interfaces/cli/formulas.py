"""fundform formulas: list, show, diff, method and validate formula versions and scenarios."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.markup import escape

from fundform.base.errors import FundformError, UsageProblem
from fundform.interfaces.cli.common import (
    Commands,
    JsonOpt,
    app,
    flag,
    out,
)

formulas_app = Commands(help="List and show formula versions.", no_args_is_help=True)
app.add_typer(formulas_app, name="formulas")


@formulas_app.command("list")
def formulas_list(json_out: JsonOpt = False) -> None:
    """List the formula versions in formulas/ and the scenarios shipped in formulas/scenarios/ (each runs by its
    name: --formula NAME)."""
    from rich.table import Table

    from fundform.formula.registry import available_formulas, shipped_scenarios
    from fundform.formula.scenario import resolve_formula

    rows: list[dict[str, Any]] = []
    versions = available_formulas()  # the versions, then the shipped scenarios a version does not shadow
    for stem, path in {**versions, **{k: v for k, v in shipped_scenarios().items() if k not in versions}}.items():
        try:  # one broken or misplaced file is listed as such; the others are still listed
            f = resolve_formula(str(path))
        except FundformError as e:
            rows.append({"id": stem, "file": path.name, "invalid": str(e).splitlines()[0]})
            continue
        rows.append({"id": stem if f.scenario else f.spec.id, "version": f.spec.version,
                     "title": f.scenario_title or f.spec.title,
                     "effective_years": f.spec.effective_years, "sources": [s.id for s in f.spec.sources],
                     **({"extends": f.spec.id} if f.scenario else {})})
    if json_out:
        out.print_json(json.dumps(rows))
        return
    t = Table(title="Formula versions")
    for c in ["id", "version", "title", "effective years", "sources"]:
        t.add_column(c)
    for r in rows:
        if "invalid" in r:
            t.add_row(escape(r["id"]), "", f"[red]invalid[/red]: {escape(r['invalid'])}", "", "")
            continue
        ys = r["effective_years"]
        title = r["title"] + (f" (scenario of {r['extends']})" if "extends" in r else "")
        t.add_row(escape(r["id"]), r["version"], escape(title), f"{ys[0]} to {ys[-1]}", ", ".join(r["sources"]))
    out.print(t)


@formulas_app.command("show")
def formulas_show(formula_id: Annotated[str, typer.Argument(help="Formula id, formula file or scenario file.")],
                  json_out: JsonOpt = False,
                  assumptions: Annotated[bool, flag(
                      "--assumptions", help="Only the numbers that rest, wholly or partly, on the project's "
                      "assumptions rather than a published source: the ones to replace first.")] = False,
                  year: Annotated[Optional[str], typer.Option(
                      "--year", help="Show the values in force in this financial year (the version's dated "
                      "sections applied). [default: the version's undated values]", show_default=False)] = None
                  ) -> None:
    """Show a formula version (or a scenario, resolved): every number with its unit and source."""
    from rich.table import Table

    from fundform.formula.scenario import resolve_formula
    from fundform.formula.spec import assumed_numbers, count_numbers, iter_age_curves, iter_quantities

    f = resolve_formula(formula_id)
    if year is not None:
        from fundform.base.years import FinancialYear

        try:
            FinancialYear.parse(year)
        except ValueError as e:
            raise UsageProblem(str(e)) from None
        if year not in f.spec.effective_years:
            raise UsageProblem(f"--year {year}: {f.spec.id} is effective for {', '.join(f.spec.effective_years)}")
    if assumptions:
        rows = assumed_numbers(f.spec)
        total = count_numbers(f.spec)
        if json_out:
            out.print_json(json.dumps({"formula": f.spec.id, "numbers": total, "assumed": rows}))
            return
        t = Table(title=f"{f.spec.id}: {len(rows)} of {total} numbers rest on assumptions")
        for c in ["key", "value", "unit", "source"]:
            t.add_column(c, overflow="fold")
        for r in rows:
            t.add_row(r["path"], f"{r['value']:g}", r["unit"], r["source"])
        out.print(t)
        return
    if json_out:
        out.print_json(json.dumps({"sha256": f.sha256, "overrides": [o.as_dict() for o in f.overrides],
                                   **f.spec.model_dump(mode="json", by_alias=True)}))
        return
    s = f.spec if year is None else f.spec.at(year)
    out.print(f"[bold]{escape(s.id)}[/bold] {escape(s.version)}: {escape(s.title)}\nfile {escape(str(f.path))} "
              f"sha256 {f.sha256}\neffective {', '.join(s.effective_years)}\n\n{escape(s.summary.strip())}\n")
    if f.scenario:
        out.print(f"scenario {escape(str(f.scenario))}" + (f": [bold]{escape(f.scenario_title)}[/bold]"
                                                          if f.scenario_title else ""))
    if f.overrides:
        out.print("changes: " + "; ".join(f"{escape(o.path)} {o.old} -> {o.new}" for o in f.overrides) + "\n")
    if year is not None:
        dated = [y for y in f.spec.years if FinancialYear.parse(y) <= FinancialYear.parse(year)]
        out.print(f"values in force in {year}" + (f" (dated sections of {', '.join(sorted(dated))} applied)" if dated
                                                  else " (no dated section applies)") + "\n")
    t = Table(title="Parameters" + (f" in force in {year}" if year else ""))
    for c in ["key", "value", "unit"]:  # a key, a number or a unit is never broken across lines
        t.add_column(c, no_wrap=True)
    for c in ["what it is", "source"]:
        t.add_column(c, overflow="fold")
    for path, q in iter_quantities(s):
        t.add_row(path, f"{q.value:g}", q.unit, q.description or "", q.source)
    out.print(t)
    for path, curve in iter_age_curves(s):
        t = Table(title=f"Age cost curve {path} ({curve.unit}" + (f": {curve.description}" if curve.description
                                                                   else "") + ")", caption=f"source: {curve.source}")
        for c in ["key", "ages", "weight"]:
            t.add_column(c, overflow="fold")
        for b in curve.bands:
            t.add_row(f"{path}.bands.{b.age_from}-{b.age_to}.weight", f"{b.age_from}-{b.age_to}", f"{b.weight:g}")
        out.print(t)
    t = Table(title="Sources")
    for c in ["id", "title", "publisher"]:
        t.add_column(c, overflow="fold")
    for src in s.sources:
        t.add_row(src.id, src.title, src.publisher)
    out.print(t)


@formulas_app.command("diff")
def formulas_diff(a: Annotated[str, typer.Argument(help="Formula id, formula file or scenario file.")],
                  b: Annotated[str, typer.Argument(help="Formula id, formula file or scenario file.")],
                  prose: Annotated[bool, flag("--prose", help="Also list differences of text: sources, "
                                                      "titles, units, descriptions.")] = False,
                  json_out: JsonOpt = False) -> None:
    """Every parameter that differs between two versions (or scenarios), with both values: the numbers first, then
    the rules and settings; differences of text (sources, titles, units) with --prose."""
    from rich.table import Table

    from fundform.formula.scenario import diff_kind, diff_specs, resolve_formula

    rows = diff_specs(resolve_formula(a).spec, resolve_formula(b).spec)
    order = {"number": 0, "setting": 1, "text": 2}
    kinds = sorted(((diff_kind(p, x, y), p, x, y) for p, x, y in rows), key=lambda r: (order[r[0]], r[1]))
    if json_out:
        out.print_json(json.dumps([{"path": p, "kind": k, "a": x, "b": y} for k, p, x, y in kinds]))
        return
    shown = [r for r in kinds if prose or r[0] != "text"]
    counts = {k: sum(1 for r in kinds if r[0] == k) for k in order}
    t = Table(title=f"{a} -> {b}: {counts['number']} number(s) and {counts['setting']} setting(s) differ"
                    + (f"; {counts['text']} text difference(s) not shown (--prose)" if counts["text"] and not prose
                       else ""))
    t.add_column("key", no_wrap=True)
    for c in (a, b):
        t.add_column(escape(c), overflow="fold")
    missing = "(not in this version)"
    for _k, p, x, y in shown:
        for key, vx, vy in _leaves(p, x, y):  # a table of numbers (a composite index) as one row per number
            t.add_row(escape(key), missing if vx is None else escape(str(vx)), missing if vy is None else
                      escape(str(vy)))
    out.print(t)


def _leaves(path: str, x: Any, y: Any) -> Iterator[tuple[str, Any, Any]]:
    """(key, a, b) for each leaf that differs under `path`: a value that is itself a table or a list of them (a
    composite index, a list of indicators) becomes one row per number, never a printed dict."""
    from fundform.formula.scenario import flatten

    if not isinstance(x, dict | list) and not isinstance(y, dict | list):
        yield path, x, y
        return
    fx = flatten(x, f"{path}.") if isinstance(x, dict | list) else ({} if x is None else {path: x})
    fy = flatten(y, f"{path}.") if isinstance(y, dict | list) else ({} if y is None else {path: y})
    for key in sorted(set(fx) | set(fy)):
        if fx.get(key) != fy.get(key):
            yield key, fx.get(key), fy.get(key)


@formulas_app.command("method")
def formulas_method(
    formula_id: Annotated[str, typer.Argument(help="Formula id, formula file or scenario file.")],
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Override one parameter: key.path=value. "
                                                      "Repeatable.")] = None,
    out_file: Annotated[Optional[Path], typer.Option("--out", help="Write the Markdown to this file instead of "
                                                     "printing it.")] = None,
) -> None:
    """The version's method: every step as an equation in the order the engine applies it, each symbol tied to its
    input column or parameter (unit, value, source), the rounding points and the reconciliation checks; a scenario's
    under its own name and title, its overrides listed. The shipped versions' and scenarios' are in docs/method/."""
    from fundform.formula.scenario import resolve_formula
    from fundform.outputs.method import method_of

    f = resolve_formula(formula_id, tuple(set_ or ()))
    text = method_of(f)
    if out_file is not None:
        from fundform.outputs.write import atomic_write_file

        atomic_write_file(out_file, text, "method document")
    if out_file is None:
        sys.stdout.write(text)
    else:
        out.print(f"method written to {escape(str(out_file))}")


@formulas_app.command("validate")
def formulas_validate(file: Annotated[Path, typer.Argument(help="A formula or scenario TOML file.")]) -> None:
    """Check a formula or scenario file: every fault named with its key path (exit 1 if any)."""
    from fundform.formula.scenario import resolve_formula

    f = resolve_formula(str(file))
    extra = f" (extends {f.spec.id} with {len(f.overrides)} override(s))" if f.scenario else ""
    out.print(f"[green]valid[/green]: {file}: {f.spec.id} {f.spec.version}{extra}")
