"""The `fundform` command.

Exit codes: 0 success; 1 invalid input, spec or policy (the message says what and where), or a batch in which
some run failed; 2 usage error; 3 internal error (a bug: rerun with --debug for the traceback and report it);
4 another batch holds the output folder's lock; 5 the machine refused (permission denied, disk full, read-only).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape

from fundform import __version__
from fundform.base.errors import FundformError, InvalidInput, UsageProblem
from fundform.base.paths import PROJECT_ROOT
from fundform.outputs.text import gbp, gbp_bn, gbp_m, gbp_pence


def flag(*names: str, **kw):
    """A yes/no option: shown in --help without a type (a flag takes no value)."""
    return typer.Option(*names, metavar="", **kw)


def _no_type_for_flags() -> None:
    """Typer's own --help flag would still show `<bool>`: a flag takes no value, so its help shows no type."""
    from typer.core import TyperOption

    shown = TyperOption.display_type_rich
    if getattr(shown, "fundform", False):
        return

    def display(self, ctx):
        return None if self.is_flag else shown(self, ctx)
    display.fundform = True
    TyperOption.display_type_rich = display


_no_type_for_flags()


class _Command(typer.Typer):
    """The `fundform` command as a program: `--debug` is taken anywhere on the line (`fundform run --debug`, as
    messages say: "rerun with --debug"), and output cut off by a closed pipe (`fundform explain X | head`) ends
    quietly with exit 0, as a reader who stops reading is no failure."""

    def __call__(self, *args, **kwargs):
        import os

        if not args and "args" not in kwargs:
            argv = sys.argv[1:]
            if "--debug" in argv[1:] and "--" not in argv[:argv.index("--debug")]:
                argv = ["--debug", *(a for a in argv if a != "--debug")]
            kwargs = {**kwargs, "args": argv, "prog_name": "fundform"}
        try:
            return super().__call__(*args, **kwargs)
        except SystemExit as e:
            from typer._click.utils import PacifyFlushWrapper

            if e.code == 1 and isinstance(sys.stdout, PacifyFlushWrapper):  # the reader closed the pipe
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno() if hasattr(sys.stdout, "fileno") else 1)
                raise SystemExit(0) from None
            raise


app = _Command(
    name="fundform",
    help="Needs-based block grants for devolved health and care: five-year, inflation-linked, exact to the penny.\n\n"
    "Exit codes: 0 success, 1 invalid input (or a batch with a failed run), 2 usage error, 3 internal error, "
    "4 output folder locked by another batch, 5 the machine refused (permission denied, disk full, read-only).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",  # a docstring wrapped in the source reads as one paragraph, not broken lines
)
formulas_app = typer.Typer(help="List and show formula versions.", no_args_is_help=True)
app.add_typer(formulas_app, name="formulas")

# Messages never wrap (soft_wrap): a path or an error cut mid-line cannot be pasted back or matched by a
# script. Tables still lay out to the terminal's width, or 132 columns when the output is not a terminal.
class _Console(Console):
    def on_broken_pipe(self) -> None:
        """The reader closed the pipe (`| head`): stop writing, and end with exit 0 (Rich's own exits 1)."""
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        raise SystemExit(0)


out = _Console(width=None if sys.stdout.isatty() else 132, soft_wrap=True)
err = _Console(stderr=True, width=None if sys.stderr.isatty() else 132, soft_wrap=True)
STATE = {"debug": False}
LEVEL_HELP = ("Output level: ltla (lower-tier councils), utla (upper-tier), region, icb, nhs-region, ca (combined "
              "authorities), or deal:FILE.csv (your own deal areas).")


def write_frame(frame, path: Path, what: str = "table") -> None:
    """A table written whole or not at all, with fundform's metadata key (so a later run may replace it and nothing
    else is ever overwritten: outputs.write.atomic_write_file)."""
    from fundform.outputs.write import MANIFEST_KEY, atomic_write_file

    table = frame.to_arrow()
    table = table.replace_schema_metadata({**(table.schema.metadata or {}),
                                           MANIFEST_KEY: json.dumps({"table": what}).encode()})
    atomic_write_file(Path(path), table, what)


def fail(e: BaseException) -> None:
    from fundform.base.errors import environment_failure

    if isinstance(e, BrokenPipeError):  # the reader closed the pipe: not an error of the command
        raise e

    env = environment_failure(e, "the machine refused")  # permission, full or read-only disk: exit 5, not a bug
    if env is not None:
        e = env
    if isinstance(e, FundformError):
        err.print(f"[bold red]error:[/bold red] {escape(str(e))}", highlight=False, soft_wrap=True)
        raise typer.Exit(e.exit_code)
    if STATE["debug"]:
        raise e
    err.print(f"[bold red]internal error:[/bold red] {type(e).__name__}: {escape(str(e))}\n"
              "Rerun with --debug for the traceback.",
              soft_wrap=True)
    raise typer.Exit(3)


def _print_version(value: bool) -> None:
    if value:  # eager: answered before Typer asks for a command
        out.print(f"fundform {__version__}")
        raise typer.Exit(0)


@app.callback()
def main(
    debug: Annotated[bool, flag("--debug", help="Show tracebacks for internal errors.")] = False,
    version: Annotated[bool, flag("--version", help="Print the version and exit.", is_eager=True,
                                          callback=_print_version)] = False,
) -> None:
    STATE["debug"] = debug


DataOpt = Annotated[Optional[Path], typer.Option("--data", help="Dataset folder (default: the bundled England "
                                                 "dataset, data/default).", show_default=False)]
ExecutorOpt = Annotated[Optional[str], typer.Option("--executor", help="Where chunks of scenarios run: local "
                                                   "(threads, the default), dask (a local Dask cluster, a process "
                                                   "per core) or dask:tcp://HOST:PORT (needs fundform[distributed]; "
                                                   "docs/scale.md).", show_default=False)]
JsonOpt = Annotated[bool, flag("--json", help="Print a JSON result for scripts instead of tables.")]
QuietOpt = Annotated[bool, flag("--quiet", "-q", help="Print nothing but errors.")]
FormulaOpt = Annotated[Optional[str], typer.Option("--formula", help="Formula version id (formulas/ID.toml), a formula "
                                                  "file, or a scenario file (extends = \"ID\"). [default: "
                                                  "fundform-needs, or FUNDFORM_FORMULA]", show_default=False)]
LevelOpt = Annotated[Optional[str], typer.Option("--level", help=f"{LEVEL_HELP} [default: the version's, ltla unless it "
                                                 "says (the NHS versions: icb)]", show_default=False)]
StartYearOpt = Annotated[Optional[str], typer.Option("--start-year", help="First financial year, e.g. 2026/27. "
                                                     "[default: the version's first effective year]",
                                                     show_default=False)]
YearsOpt = Annotated[Optional[int], typer.Option("--years", help="Number of years. [default: the version's effective "
                                                 "years, 5 for the policy versions]", show_default=False)]
SetOpt = Annotated[Optional[list[str]], typer.Option("--set", help="Override one parameter: key.path=value, e.g. "
                                                     "transition.floor=-0.01 or need.indicators.deprivation."
                                                     "elasticity=0.3. Repeatable; recorded in the manifest.")]
IndexOpt = Annotated[Optional[list[str]], typer.Option("--index", help="NAME=FILE.csv: replace (or add) the index "
                                                       "series NAME with a CSV of financial_year, growth, source, "
                                                       "vintage. Repeatable; recorded in the manifest.")]
ConfigOpt = Annotated[Optional[Path], typer.Option("--config", help="TOML settings file (keys as the options, with "
                                                   "data_dir and out_root); FUNDFORM_* variables override it.")]


def _index_files(index: list[str] | None) -> dict[str, Path]:
    files = {}
    for item in index or ():
        if "=" not in item:
            raise UsageProblem(f"--index '{item}': expected NAME=FILE.csv")
        name, file = item.split("=", 1)
        files[name.strip()] = Path(file.strip())
    return files


def _setup(formula=None, data=None, level=None, start_year=None, years=None, config=None, sets=None, index=None,
           price_base_year=None, **extra):
    """The options every computing command shares, meaning the same everywhere (fundform.interfaces.api.parameters, which the
    Python API uses too): returns (settings, run parameters, index files)."""
    from fundform.interfaces.api import parameters

    s, params, index_files, _ = parameters(formula, data=data, level=level, start_year=start_year, years=years,
                                           set=list(sets or ()), index=_index_files(index), config=config,
                                           price_base_year=price_base_year, **extra)
    return s, params, index_files


ImplausibleOpt = Annotated[bool, flag("--allow-implausible", help="Accept input values outside their "
                                              "plausibility bounds (docs/reliability.md); the run's manifest lists "
                                              "each one. Hard limits still apply.")]


@app.command()
def run(
    formula: FormulaOpt = None,
    set_: SetOpt = None,
    index: IndexOpt = None,
    precept_rates: Annotated[Optional[Path], typer.Option(help="CSV of area_code, rate: each authority's adult social "
                                                          "care precept rate (0 opts out), within the version's cap.")
                             ] = None,
    local_bases: Annotated[Optional[Path], typer.Option(help="CSV of area_code, income_base, business_rates_discount "
                                                        "(GBP): bases for local taxes the bundled data lacks.")] = None,
    data: DataOpt = None,
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="Output folder. Default: out/RUN_ID/.",
                                                    show_default=False)] = None,
    level: LevelOpt = None,
    start_year: StartYearOpt = None,
    years: YearsOpt = None,
    price_base_year: Annotated[Optional[str], typer.Option(help="Price base of real-terms columns. "
                                                           "[default: the start year]", show_default=False)] = None,
    config: ConfigOpt = None,
    with_report: Annotated[bool, flag("--report", help="Also write report.html into the output folder.")
                           ] = False,
    record: Annotated[bool, flag("--record/--no-record", help="Record the run in the run warehouse "
                                         "(FUNDFORM_WAREHOUSE, default out/fundform.duckdb).")] = True,
    allow_implausible: ImplausibleOpt = False,
    no_cache: Annotated[bool, flag("--no-cache", help="Read and check every input file, even if an earlier run "
                                   "checked the same files (their checked tables are kept by content in "
                                   "out/.cache/inputs; `fundform cache clear` empties it).")] = False,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Run an allocation: need, targets, the five-year settlement, local tax, grants. Writes allocations, need,
    streams, waterfall, cohorts and reconciliation (Parquet) and manifest.json, and records the run in the warehouse.
    Writes nothing if any input or rule is invalid."""
    from fundform.outputs.summary import print_summary
    from fundform.studies.runs import run as run_pipeline

    try:
        s, params, index_files = _setup(formula, data, level, start_year, years, config, set_, index,
                                        price_base_year, precept_rates=precept_rates, local_bases=local_bases,
                                        allow_implausible=allow_implausible)
        with _progress_bar("run", quiet or json_out) as bar:  # a terminal only: piped output gets the result
            def progress(msg: str) -> None:
                bar(msg)
            result = run_pipeline(s.formula, s.data_dir, params, out_dir, s.out_root, progress,
                                  sets=tuple(set_ or ()), index_files=index_files,
                                  warehouse=s.warehouse if record else None, use_cache=not no_cache)
    except Exception as e:  # noqa: BLE001 - mapped to exit codes in fail()
        fail(e)
    if with_report:
        _write_report(str(result.out_dir), None, None, None, s.data_dir, quiet=quiet or json_out,
                      deal_file=params.deal_file)
    if json_out:
        out.print_json(json.dumps({"run_id": result.manifest["run_id"], "out_dir": str(result.out_dir),
                                   "formula": result.manifest["formula"], "parameters": params.as_dict(),
                                   "overrides": result.manifest["overrides"],
                                   "policies": result.policies}))
    elif not quiet:
        print_summary(result, out)


class _progress_bar:
    """A Rich progress bar on stderr while long work runs (batch runs, ...), only when stderr is a terminal: piped or
    redirected output gets nothing but the result. Called as progress(message, done, total)."""

    def __init__(self, title: str, silent: bool):
        self.title = title
        self.on = not silent and err.is_terminal
        self.progress = None
        self.task = None

    def __enter__(self):
        if self.on:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TimeElapsedColumn(), console=err, transient=True)
            self.progress.__enter__()
            self.task = self.progress.add_task(self.title, total=None)
        return self

    def __call__(self, message: str, done: int = 0, total: int = 0) -> None:
        if self.progress is not None:
            self.progress.update(self.task, description=escape(message), completed=done, total=total or None,
                                 refresh=True)

    def __exit__(self, *exc):
        if self.progress is not None:
            self.progress.__exit__(*exc)
        return False


@app.command()
def validate(data: DataOpt = None, allow_implausible: ImplausibleOpt = False, json_out: JsonOpt = False,
             quiet: QuietOpt = False) -> None:
    """Check a dataset folder against every table contract and report every problem at once (exit 1 if any)."""
    from fundform.base.paths import default_data_dir
    from fundform.inputs.dataset import load_dataset

    directory = data or default_data_dir()
    try:
        ds = load_dataset(directory, allow_implausible=allow_implausible)
    except InvalidInput as e:
        if json_out:
            out.print_json(json.dumps({"valid": False, "data_dir": str(directory), "problems": [
                {"file": p.file, "column": p.column, "problem": p.problem, "expected": p.expected,
                 "rows": list(p.rows)} for p in e.problems]}))
            raise typer.Exit(1)
        fail(e)
    except Exception as e:  # noqa: BLE001
        fail(e)
    if json_out:
        out.print_json(json.dumps({"valid": True, "data_dir": str(directory),
                                   "tables": {f.table: f.rows for f in ds.files},
                                   "implausible_allowed": list(ds.implausible)}))
    elif not quiet:
        for w in ds.implausible:
            err.print(f"[yellow]allowed (--allow-implausible):[/yellow] {escape(w)}", highlight=False)
        out.print(f"[green]valid[/green]: {escape(str(directory))} "
                  f"({', '.join(f'{f.table} {f.rows} rows' for f in ds.files)})")


@formulas_app.command("list")
def formulas_list(json_out: JsonOpt = False) -> None:
    """List the formula versions in formulas/."""
    from rich.table import Table

    from fundform.formula.registry import available_formulas
    from fundform.formula.scenario import resolve_formula

    rows = []
    try:
        for stem, path in available_formulas().items():
            try:  # one broken or misplaced file is listed as such; the others are still listed
                f = resolve_formula(str(path))
            except FundformError as e:
                rows.append({"id": stem, "file": path.name, "invalid": str(e).splitlines()[0]})
                continue
            rows.append({"id": stem if f.scenario else f.spec.id, "version": f.spec.version, "title": f.spec.title,
                         "effective_years": f.spec.effective_years, "sources": [s.id for s in f.spec.sources],
                         **({"extends": f.spec.id} if f.scenario else {})})
    except Exception as e:  # noqa: BLE001
        fail(e)
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

    try:
        f = resolve_formula(formula_id)
        if year is not None:
            from fundform.formula.quantities import parse_year

            try:
                parse_year(year)
            except ValueError as e:
                raise UsageProblem(str(e)) from None
            if year not in f.spec.effective_years:
                raise UsageProblem(f"--year {year}: {f.spec.id} is effective for {', '.join(f.spec.effective_years)}")
    except Exception as e:  # noqa: BLE001
        fail(e)
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
        dated = [y for y in f.spec.years if parse_year(y) <= parse_year(year)]
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

    try:
        rows = diff_specs(resolve_formula(a).spec, resolve_formula(b).spec)
    except Exception as e:  # noqa: BLE001
        fail(e)
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


def _leaves(path: str, x, y):
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
    input column or parameter (unit, value, source), the rounding points and the reconciliation checks. The shipped
    versions' are in docs/method/."""
    from fundform.formula.scenario import resolve_formula
    from fundform.outputs.method import method_markdown

    try:
        f = resolve_formula(formula_id, tuple(set_ or ()))
        text = method_markdown(f.spec, f.scenario or str(f.path.name), f.overrides)
        if out_file is not None:
            from fundform.outputs.write import atomic_write_file

            atomic_write_file(out_file, text, "method document")
    except Exception as e:  # noqa: BLE001
        fail(e)
    if out_file is None:
        sys.stdout.write(text)
    else:
        out.print(f"method written to {escape(str(out_file))}")


@formulas_app.command("validate")
def formulas_validate(file: Annotated[Path, typer.Argument(help="A formula or scenario TOML file.")]) -> None:
    """Check a formula or scenario file: every fault named with its key path (exit 1 if any)."""
    from fundform.formula.scenario import resolve_formula

    try:
        f = resolve_formula(str(file))
    except Exception as e:  # noqa: BLE001
        fail(e)
    extra = f" (extends {f.spec.id} with {len(f.overrides)} override(s))" if f.scenario else ""
    out.print(f"[green]valid[/green]: {file}: {f.spec.id} {f.spec.version}{extra}")


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

    try:
        spec = resolve_formula(formula).spec
        table = place_need(checked_dataset(data or default_data_dir()), spec, read_places(file), file.name)
        if out_file:
            write_frame(table, out_file)
    except Exception as e:  # noqa: BLE001
        fail(e)
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

    try:
        s = _settings()
        run_dir = find_run(run_ref, s.warehouse, s.out_root)
        allocations = pl.read_parquet(run_dir / "allocations.parquet")
        manifest = json.loads((run_dir / "manifest.json").read_text())
        spec = resolve_formula(formula or manifest["formula"]["id"]).spec
        acts = read_actuals(actuals)
        check_coverage(acts, allocations, actuals.name)
        table = ledger(allocations, acts, spec.ledger)
        if out_file:
            write_frame(table, out_file)
    except Exception as e:  # noqa: BLE001
        fail(e)
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


def _settings():
    from fundform.base.config import load_settings

    return load_settings()


@app.command()
def runs(json_out: JsonOpt = False) -> None:
    """List the runs recorded in the run warehouse."""
    from rich.table import Table

    from fundform.outputs.warehouse import list_runs

    try:
        rows = list_runs(_settings().warehouse)
    except Exception as e:  # noqa: BLE001
        fail(e)
    if json_out:
        out.print_json(json.dumps(rows))
        return
    t = Table(title=f"{len(rows)} run(s)")
    for c in ["run id", "formula", "version", "scenario", "level", "years", "created", "output"]:
        t.add_column(c, overflow="fold")
    for r in rows:
        t.add_row(r["run_id"], r["formula_id"], r["formula_version"], r["scenario"] or "", r["level"],
                  f"{r['start_year']} +{r['years']}", r["created_at"] or "", r["out_dir"])
    out.print(t)


@app.command()
def sql(query: Annotated[str, typer.Argument(help="SQL over the warehouse tables runs, allocations, streams, "
                                             "reconciliation, waterfall; read_parquet() reads any output file.")],
        json_out: JsonOpt = False) -> None:
    """Query the run warehouse (DuckDB) and the Parquet outputs."""
    from rich.table import Table

    from fundform.outputs.warehouse import query as run_query

    query_text = query
    try:
        s = _settings()
        cols, rows = run_query(s.warehouse, query_text, readable=[s.out_root])
    except Exception as e:  # noqa: BLE001
        fail(e)
    if json_out:
        out.print_json(json.dumps([dict(zip(cols, r)) for r in rows], default=str))
        return
    t = Table()
    for c in cols:
        t.add_column(c, overflow="fold")
    for r in rows[:1000]:
        t.add_row(*["" if v is None else str(v) for v in r])
    out.print(t)
    if len(rows) > 1000:
        out.print(f"({len(rows)} rows; first 1000 shown; use --json for all)")


@app.command()
def export(
    run_ref: Annotated[str, typer.Argument(metavar="RUN", help="A run's output folder or its id.")],
    fmt: Annotated[str, typer.Option("--format", help="csv, xlsx or parquet.")] = "parquet",
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="Folder to write. [default: out/RUN_ID-FORMAT]",
                                                    show_default=False)] = None,
    hive: Annotated[Optional[Path], typer.Option(help="Also add the run's allocations to this Hive-partitioned "
                                                 "dataset (formula_id=/financial_year=).")] = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Export a run's tables as CSV files, an Excel workbook, or Parquet (optionally into a Hive dataset)."""
    from fundform.outputs.export import export_hive, export_run
    from fundform.outputs.manifest import read_run_manifest
    from fundform.outputs.warehouse import find_run

    try:
        s = _settings()
        run_dir = find_run(run_ref, s.warehouse, s.out_root)
        run_id = read_run_manifest(run_dir)["run_id"]  # checked: it names the export's folder
        target = export_run(run_dir, fmt, out_dir or s.out_root / f"{run_id}-{fmt}")
        extra = export_hive(run_dir, hive) if hive else []
    except Exception as e:  # noqa: BLE001
        fail(e)
    if json_out:
        out.print_json(json.dumps({"run_id": run_id, "format": fmt, "out": str(target),
                                   "hive_files": [str(x) for x in extra]}))
    elif not quiet:
        out.print(f"exported run {run_id} as {fmt} to {escape(str(target))}"
                  + (f"; {len(extra)} partition file(s) in {escape(str(hive))}" if extra else ""))


@app.command("compare")
def compare_cmd(
    a: Annotated[str, typer.Argument(help="A run (folder or id), or a formula id or scenario file to run now.")],
    b: Annotated[str, typer.Argument(help="The same, for the other side.")],
    level: LevelOpt = None,
    start_year: StartYearOpt = None,
    years: YearsOpt = None,
    set_: SetOpt = None,
    index: IndexOpt = None,
    config: ConfigOpt = None,
    data: DataOpt = None,
    out_file: Annotated[Optional[Path], typer.Option("--out", help="Write the comparison as Parquet here. "
                                                     "[default: out/compare-A-B.parquet]", show_default=False)
                        ] = None,
    shares: Annotated[bool, flag("--shares", help="Compare how the pot is split, apart from its size: B's shares "
                                 "of the grant applied to A's total (gains equal losses).")] = False,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Who gains and who loses between two runs, versions or scenarios: per area and year the change in grant, per
    head and in percent; winners and losers counted and summed; the biggest movers; the change by deprivation
    decile."""
    import polars as pl
    from rich.table import Table

    from fundform.interfaces.api import comparison
    from fundform.outputs.schema import COMPARE
    from fundform.outputs.write import atomic_write_file, to_arrow

    try:
        c = comparison(a, b, data=data, level=level, start_year=start_year, years=years, set=list(set_ or ()),
                       index=_index_files(index), config=config)
        table, per = c.table, c.per  # per: side A's population, per resident or per registered patient
        summ, dec = (c.split_summary, c.split_by_decile) if shares else (c.summary, c.by_decile)
        change = "change_in_split" if shares else "change"
        safe = lambda x: Path(x).stem.replace("/", "-")  # noqa: E731
        target = out_file or _settings().out_root / f"compare-{safe(a)}-{safe(b)}.parquet"
        atomic_write_file(target, to_arrow(table, COMPARE, None, {"a": a, "b": b}), "comparison")
    except Exception as e:  # noqa: BLE001
        fail(e)
    if quiet:
        return
    last = table["financial_year"].max()
    movers = table.filter(pl.col("financial_year") == last).with_columns(
        moved=pl.col(change), moved_per_head=(pl.col(change) / pl.col("population")).round(0)).sort("moved_per_head")
    if json_out:
        out.print_json(json.dumps({"a": a, "b": b, "out": str(target), "measure": change, "per": per,
                                   "summary": summ.to_dicts(),
                                   "deciles": dec.to_dicts(),
                                   "biggest_gains": movers.tail(5).reverse().to_dicts(),
                                   "biggest_losses": movers.head(5).to_dicts()}, default=str))
        return
    what = ("how the pot is split: B's shares of the grant applied to A's total" if shares else
            "the grant in cash, B against A (the pot's size and its split)")
    t = Table(title=f"{a} -> {b}: who gains and who loses, {what}")
    for c in ["year", "areas gaining", "total gained", "areas losing", "total lost", "change in the total"]:
        t.add_column(c, justify="right")
    for r in summ.iter_rows(named=True):
        t.add_row(r["financial_year"], str(r["winners"]), gbp_bn(r['gains']), str(r["losers"]),
                  gbp_bn(r['losses']), gbp_bn(r['change_in_total']))
    out.print(t)
    t = Table(title=f"Change {per} by deprivation decile, {last} (1 = most deprived; {what})")
    for c_ in ["decile", "areas", f"change {per}"]:
        t.add_column(c_, justify="right")
    for r in dec.filter(pl.col("financial_year") == last).iter_rows(named=True):
        t.add_row(str(r["imd_decile"]), str(r["areas"]), gbp(r['change_per_head']))
    unscored = table.filter((pl.col("financial_year") == last) & pl.col("imd_decile").is_null()).height
    if unscored:
        t.caption = f"{unscored} area(s) have no deprivation score in the dataset and are not in this table"
    out.print(t)
    for title, frame in [(f"Biggest gains {per}", movers.tail(5).reverse()), (f"Biggest losses {per}",
                                                                               movers.head(5))]:
        t = Table(title=f"{title}, {last} ({what})")
        for c_ in ["area", f"change {per}", "change", "change, % of A's grant"]:
            t.add_column(c_, justify="left" if c_ == "area" else "right")
        for r in frame.iter_rows(named=True):
            t.add_row(f"{r['area_name']} ({r['area_code']})", gbp_pence(r['moved_per_head']), gbp_m(r["moved"]),
                      f"{r['moved'] / abs(r['grant_a']) * 100:+.2f}%" if r["grant_a"] else "n/a")
        out.print(t)
    out.print(f"comparison written to {target}")


@app.command()
def explain(
    area: Annotated[str, typer.Argument(help="Area code (or a unique part of its name).")],
    run_ref: Annotated[Optional[str], typer.Option("--run", help="A run's folder or id. Without it, the formula is "
                                                   "run now.")] = None,
    formula: FormulaOpt = None,
    level: LevelOpt = None,
    start_year: StartYearOpt = None,
    years: YearsOpt = None,
    set_: SetOpt = None,
    index: IndexOpt = None,
    config: ConfigOpt = None,
    year: Annotated[Optional[str], typer.Option(help="One financial year, or 'all'. [default: the first]",
                                                show_default=False)] = None,
    data: DataOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """The waterfall of one area's grant: an equal share per head, what age adds, what each need indicator adds,
    the transition (floor, ceiling, convergence), the local tax deduction, to the grant, to the penny."""
    import polars as pl
    from rich.table import Table

    from fundform.interfaces import api

    try:
        if run_ref:
            r = api.Run.load(run_ref)
        else:
            r = api.run(formula, data=data, level=level, start_year=start_year, years=years, set=list(set_ or ()),
                        index=_index_files(index), config=config)
        pence = lambda f, cols: f.with_columns((pl.col(cols) * 100).cast(pl.Int64))  # noqa: E731  (exact pence)
        match = pence(api.explain(r, area, data), ["amount", "cumulative"])
        alloc = pence(r.allocations, ["target_allocation", "allocation"])
        chosen = year or match["financial_year"].min()
        if chosen != "all":
            match = match.filter(pl.col("financial_year") == chosen)
            if match.height == 0:
                raise FundformError(f"no year {chosen} in the run")
    except Exception as e:  # noqa: BLE001
        fail(e)
    if json_out:
        # pounds from whole pence by a correctly rounded division (x / 100 in Python, not x * 0.01)
        rows = [{**{k: v for k, v in r.items() if k not in ("amount", "cumulative")},
                 "amount_gbp": int(r["amount"]) / 100, "cumulative_gbp": int(r["cumulative"]) / 100}
                for r in match.to_dicts()]
        out.print_json(json.dumps(rows))
        return
    alloc = alloc.with_columns((pl.col(c) * 100).cast(pl.Int64) for c in (
        "todays_funding", "baseline", "guarantee_payment", "notional_local_tax", "negative_grant_adjustment", "grant"))
    quiet_steps = {"guarantee payment", "local tax deduction", "negative-grant rule"}  # shown where they move money
    for (fy,), part in match.group_by("financial_year", maintain_order=True):
        t = Table(title=f"{part['area_name'][0]} ({part['area_code'][0]}), {fy}: the grant built from an equal "
                        "share per head (cash)")
        for c in ["step", "adds", "running total"]:
            t.add_column(c, justify="left" if c == "step" else "right")
        for r in part.sort("step_order").iter_rows(named=True):
            if r["step"] in quiet_steps and r["amount"] == 0:
                continue
            t.add_row(r["step"], gbp_pence(r['amount']), gbp_pence(r['cumulative']))
        t.add_row("[bold]grant[/bold]", "", f"[bold]{gbp_pence(part['cumulative'][-1])}[/bold]")
        out.print(t)
        a = alloc.filter((pl.col("area_code") == part["area_code"][0]) & (pl.col("financial_year") == fy)).row(
            0, named=True)
        cash = a["todays_funding"]  # today's funding in cash (None where the version's data holds none)
        t = Table(title=f"The same grant from today's funding: {'in cash, then ' if cash is not None else ''}"
                        f"today's funding uprated to {fy}, then what the formula changes (cash)")
        for c in ["step", "adds", "running total"]:
            t.add_column(c, justify="left" if c == "step" else "right")
        start = ([("today's funding (cash)", cash), (f"today's funding, uprated to {fy}: the total's growth",
                                                     a["baseline"] - cash)]
                 if cash is not None else [("today's funding, uprated", a["baseline"])])
        bridge = [*start, ("need: target against it", a["target_allocation"] - a["baseline"]),
                  ("transition", a["allocation"] - a["target_allocation"]),
                  ("guarantee payment", a["guarantee_payment"]), ("local tax deduction", -a["notional_local_tax"]),
                  ("negative-grant rule", a["negative_grant_adjustment"])]
        running = 0
        for name, amount in bridge:
            running += amount
            if name in quiet_steps and amount == 0:
                continue
            t.add_row(name, gbp_pence(amount), gbp_pence(running))
        t.add_row("[bold]grant[/bold]", "", f"[bold]{gbp_pence(running)}[/bold]")
        out.print(t)
    path = alloc.filter(pl.col("area_code") == match["area_code"][0]).sort("financial_year")
    if path.height > 1:  # why the share moves within the settlement: each year's population and target
        t = Table(title="Year by year: population, need share and target (cash)")
        for c in ["year", "population", f"population growth since {path['financial_year'][0]}", "target share",
                  "target", "allocation", "allocation's distance from target"]:
            t.add_column(c, justify="right")
        p0 = path["population"][0]
        for r in path.iter_rows(named=True):
            t.add_row(r["financial_year"], f"{r['population']:,.0f}", f"{r['population'] / p0 - 1:+.2%}",
                      f"{r['target_share']:.5%}", gbp_pence(r["target_allocation"]), gbp_pence(r["allocation"]),
                      f"{r['distance_from_target']:+.2%}")
        out.print(t)


@app.command()
def report(
    run_ref: Annotated[str, typer.Argument(metavar="RUN", help="A run's output folder or its id.")],
    out_file: Annotated[Optional[Path], typer.Option("--out", help="HTML file. [default: the run folder/report.html]",
                                                     show_default=False)] = None,
    compare_with: Annotated[Optional[str], typer.Option("--compare", help="Another run (folder or id) to show "
                                                        "winners and losers against.")] = None,
    area: Annotated[Optional[str], typer.Option(help="Area code for the waterfall chart. [default: the biggest "
                                                "gainer]", show_default=False)] = None,
    sweep_dir: Annotated[Optional[Path], typer.Option("--sweep", help="A sweep's output folder to chart beside the "
                                                      "run (same formula and level).")] = None,
    data: DataOpt = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Write a self-contained HTML report of a run: headline numbers, maps of England at the run's level (geographic
    and hex cartogram), charts (inline SVG, works offline, printable) and a sortable, filterable table of areas."""
    target = _write_report(run_ref, out_file, compare_with, area, data, quiet=quiet or json_out, sweep_dir=sweep_dir)
    if json_out:
        out.print_json(json.dumps({"run": run_ref, "report": str(target)}))


def _write_report(run_ref, out_file, compare_with, area, data, quiet=False, sweep_dir=None, deal_file=None) -> None:
    import polars as pl

    from fundform.base.paths import default_data_dir
    from fundform.outputs import compare as cmp
    from fundform.outputs.report import write_report
    from fundform.outputs.warehouse import find_run
    from fundform.studies.runs import checked_dataset

    try:
        s = _settings()
        run_dir = find_run(run_ref, s.warehouse, s.out_root)
        alloc = pl.read_parquet(run_dir / "allocations.parquet")
        level = alloc["area_level"][0]
        dataset = None
        try:
            dataset = checked_dataset(data or default_data_dir())
            deciles = cmp.deprivation_deciles(dataset, level, alloc["area_code"].unique().to_list())
        except FundformError:
            deciles = None
        member = _membership(dataset, level, deal_file, alloc["area_code"].unique().to_list())
        comparison = None
        if compare_with:
            other = pl.read_parquet(find_run(compare_with, s.warehouse, s.out_root) / "allocations.parquet")
            comparison = cmp.compare(other, alloc, deciles)
        target = write_report(run_dir, out_file or run_dir / "report.html", deciles=deciles, area=area,
                              comparison=comparison, sweep_dir=sweep_dir, member=member)
    except Exception as e:  # noqa: BLE001
        fail(e)
    if not quiet:
        out.print(f"report written to {escape(str(target))}")
    return target


def _membership(dataset, level: str, deal_file=None, codes: list[str] | None = None) -> dict[str, str] | None:
    """Each lower-tier authority's area at the run's level, for the report's maps (None if not known)."""
    from fundform.inputs.tables import LEVELS
    from fundform.outputs.maps import membership

    if deal_file is not None:
        from fundform.engine.geography import with_level

        dataset = with_level(dataset, f"deal:{deal_file}", Path(deal_file))
        return membership(dataset["area_lookup"], [lv for lv in dataset["area_lookup"]["level"].unique()
                                                   if lv not in LEVELS][0])
    if dataset is None or level not in LEVELS:
        return None
    return membership(dataset["area_lookup"], level, dataset.tables.get("icb_changes"), codes or [])


@app.command()
def batch(
    spec: Annotated[Path, typer.Argument(help="Batch spec (TOML): output, data, and [[runs]] with formula, levels, "
                                         "start_year, years, set.")],
    force: Annotated[bool, flag("--force", help="Redo runs that are already complete.")] = False,
    dry_run: Annotated[bool, flag("--dry-run", help="Say what would run; run nothing.")] = False,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Run a batch: skips runs already complete with unchanged inputs (their id is a hash of everything that
    determines them), writes each run atomically, records it in the run warehouse (FUNDFORM_WAREHOUSE) that `runs`
    and `report` read, survives being killed, and refuses to share an output folder with another batch. Exit 1 if
    any run failed, 4 if the folder is locked, 5 if the machine refused."""
    from rich.table import Table

    from fundform.studies.batch import run_batch

    try:
        s = _settings()  # FUNDFORM_WAREHOUSE(_WAIT) and the other settings apply to a batch's runs too
        with _progress_bar("batch", quiet or json_out) as bar:
            summary = run_batch(spec, force=force, dry_run=dry_run, progress=bar, warehouse=s.warehouse)
    except Exception as e:  # noqa: BLE001
        fail(e)
    failed = summary["counts"]["failed"]
    if json_out:
        out.print_json(json.dumps(summary))
    elif not quiet:
        t = Table(title=f"batch {spec}: {summary['counts']['done']} done, {summary['counts']['skipped']} skipped, "
                        f"{failed} failed in {summary['seconds']:.2f}s")
        for c in ["run", "run id", "status", "seconds", "error"]:
            t.add_column(c, overflow="fold")
        for r in summary["runs"]:
            t.add_row(escape(r["run"]), r.get("run_id", ""), r["status"], f"{r['seconds']:.2f}",
                      escape(r.get("error", "")))
        out.print(t)
        out.print(f"summary: {summary['output']}/batch-summary.json; log: {summary['output']}/batch.log.jsonl")
    if failed:
        raise typer.Exit(1)


@app.command()
def sweep(
    param: Annotated[list[str], typer.Option("--param", help="PATH=LO:HI (uniform draws) or PATH=V1,V2,... (a grid), "
                                             "e.g. need.indicators.deprivation.elasticity=0.1:0.4 or "
                                             "need.age_cost_curve.bands.85-90.weight=4,6,8. Sweepable: age band "
                                             "weights, indicator elasticities and min/max multipliers, the "
                                             "transition's numbers (gap_closed_per_year, NHS convergence caps, "
                                             "phasing_years, floor, ceiling), real growth, equalisation, share for "
                                             "devolved services; a stream's own as streams.NAME.PATH; a number a "
                                             "dated section states, in its year, as years.YYYY/YY.PATH "
                                             "(years.2025/26.transition.max_gain). Repeatable.")],
    formula: FormulaOpt = None,
    draws: Annotated[Optional[int], typer.Option(help="Number of random scenarios (with LO:HI parameters).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the random draws (reproducible).")] = 20261122,
    level: LevelOpt = None,
    start_year: StartYearOpt = None,
    years: YearsOpt = None,
    set_: SetOpt = None,
    index: IndexOpt = None,
    config: ConfigOpt = None,
    data: DataOpt = None,
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="Folder to write. [default: out/sweep-HASH]",
                                                    show_default=False)] = None,
    executor: ExecutorOpt = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Vary a version's numbers over a grid or seeded random draws, all scenarios at once: per area and year the
    grant's distribution (min, p5, median, p95, max), how often it sits at a floor, and which parameter moves it
    most. Each scenario is what `fundform run --set` of the same values gives, to the penny (the run's own stages
    with a scenario axis), settled 1,000 at a time on a thread per core; beyond 20,000 scenarios the grants go to a
    temporary file a chunk at a time, so memory stays bounded. Writes sweep.parquet, sensitivity.parquet,
    scenarios.parquet and manifest.json."""
    from rich.table import Table

    from fundform.interfaces.api import sweep as run_sweep

    try:
        with _progress_bar("sweep", quiet or json_out) as status:
            res = run_sweep(formula, list(param), draws=draws, seed=seed, out=out_dir, write=True, progress=status,
                            executor=executor,
                            data=data, level=level, start_year=start_year, years=years, set=list(set_ or ()),
                            index=_index_files(index), config=config)
        target, n = res.out_dir, res.manifest["scenarios"]
    except Exception as e:  # noqa: BLE001
        fail(e)
    if json_out:
        out.print_json(json.dumps({"out_dir": str(target), "scenarios": n,
                                   "sensitivity": res.sensitivity.to_dicts()}))
        return
    if quiet:
        return
    t = Table(title=f"{n:,} scenarios of {res.manifest['formula']['id']}: which parameters move grants most")
    for c in ["rank", "parameter", "mean |rank correlation| with grant"]:
        t.add_column(c)
    for r in res.sensitivity.iter_rows(named=True):
        t.add_row(str(r["rank"]), r["parameter"], f"{r['mean_abs_rank_correlation']:.3f}")
    out.print(t)
    import polars as pl

    last = res.stats["financial_year"].max()
    widest = res.stats.filter(pl.col("financial_year") == last).with_columns(
        spread=(pl.col("grant_p95") - pl.col("grant_p5")) / pl.col("grant_median").abs()).sort(
        "spread", descending=True, nulls_last=True).head(10)
    t = Table(title=f"Range of grants across the scenarios, {last} (cash): the ten areas whose grant varies most")
    for c in ["area", "lowest", "5th percentile", "median", "95th percentile", "highest", "p5 to p95, % of median"]:
        t.add_column(c, justify="left" if c == "area" else "right")
    for r in widest.iter_rows(named=True):
        t.add_row(f"{r['area_name']} ({r['area_code']})", *(f"{gbp(r[f'grant_{k}'] / 1e6, 1)}m"
                                                             for k in ("min", "p5", "median", "p95", "max")),
                  f"{r['spread']:.2%}")
    out.print(t)
    total = res.scenarios["total_grant_last_year"]
    out.print(f"Total grant in {last} across the scenarios: {gbp_bn(total.min() * 100)} to {gbp_bn(total.max() * 100)}"
              f" (median {gbp_bn(total.median() * 100)}); every area's range is in sweep.parquet")
    out.print(f"sweep written to {target}")


cache_app = typer.Typer(help="The checked-input cache: the checked tables of earlier runs, kept by the content of "
                        "their files (out/.cache/inputs, or FUNDFORM_CACHE).", no_args_is_help=True)
app.add_typer(cache_app, name="cache")


@cache_app.command("clear")
def cache_clear(json_out: JsonOpt = False) -> None:
    """Remove every cached entry: the next run on any dataset reads and checks its files again."""
    from fundform.inputs import cache

    try:
        root = cache.cache_root()
        n = cache.clear(root)
    except Exception as e:  # noqa: BLE001
        fail(e)
    if json_out:
        out.print_json(json.dumps({"cache": str(root), "entries_removed": n}))
    else:
        out.print(f"removed {n} cached dataset(s) from {escape(str(root))}")


@app.command()
def design(
    file: Annotated[str, typer.Argument(help="A design file (TOML: the version, free numbers with ranges, "
                                        "constraints, objectives; docs/design.md), or the name of one in "
                                        "formulas/designs/.")],
    level: LevelOpt = None,
    start_year: StartYearOpt = None,
    years: YearsOpt = None,
    config: ConfigOpt = None,
    data: DataOpt = None,
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="Folder to write. [default: out/design-HASH]",
                                                    show_default=False)] = None,
    executor: ExecutorOpt = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Which numbers of a version meet these constraints: candidates drawn over the free numbers' ranges (seeded
    Sobol draws, then differential evolution from the best) and settled exactly on the scenario axis; the best feasible one (or,
    when none is, the constraint that binds and by how much), verified by an exact run; what relaxing each
    constraint buys; the frontier between two objectives and the feasible region. Writes points, frontier and
    region (Parquet), design.json, report.html, a scenario.toml that reproduces the choice, and manifest.json.
    Exit 0 whether or not the constraints can be met."""
    from rich.table import Table

    from fundform.interfaces.api import design as run_design

    try:
        with _progress_bar("design", quiet or json_out) as status:
            r = run_design(file, out=out_dir, write=True, progress=status, executor=executor, data=data, level=level,
                           start_year=start_year, years=years, config=config)
    except Exception as e:  # noqa: BLE001
        fail(e)
    if json_out:
        out.print_json(json.dumps({"out_dir": str(r.out_dir), "design_id": r.manifest["design_id"],
                                   "feasible": r.feasible, "chosen": r.chosen, "binding": r.binding,
                                   "relaxed": r.relaxed, "verified": r.verified,
                                   "candidates": r.points.height}, default=str))
        return
    if quiet:
        return
    n = r.points.height
    if r.feasible:
        out.print(f"[bold]{escape(r.spec.title)}[/bold]\nThe constraints can be met: the best of {n:,} candidates "
                  f"on {escape(r.spec.objectives[0].name)}:")
    else:
        b = r.binding
        out.print(f"[bold]{escape(r.spec.title)}[/bold]\nNo candidate of {n:,} meets every constraint. At the "
                  f"closest, this one binds: {escape(b['constraint'])} (value {b['value']:.6g}, limit "
                  f"{b['limit']:.6g}, short by {b['short_by']:.6g}).")
    t = Table(title="Free numbers")
    for c in ["number", "as shipped", "chosen", "range searched"]:
        t.add_column(c, justify="left" if c == "number" else "right")
    for name in r.names:
        lo, hi = r.spec.free[name]
        t.add_row(name, f"{r.shipped['free'][name]:.6g}", f"{r.chosen['free'][name]:.6g}", f"{lo:.6g} to {hi:.6g}")
    out.print(t)
    t = Table(title="Constraints, on the exact run of the chosen numbers")
    for c in ["constraint", "as shipped", "chosen", "limit", "holds"]:
        t.add_column(c, justify="left" if c == "constraint" else "right")
    for c, s0 in zip(r.verified["constraints"], r.shipped["constraints"]):
        t.add_row(c["constraint"], f"{s0['value']:.6g}", f"{c['value']:.6g}", f"{c['limit']:.6g}",
                  "yes" if c["holds"] else "no")
    out.print(t)
    t = Table(title=f"What dropping one constraint buys ({r.spec.objectives[0].name})")
    for c in ["constraint dropped", "with every constraint", "without it"]:
        t.add_column(c, justify="left" if c == "constraint dropped" else "right")
    fmt = lambda v: "none" if v is None else f"{v:.6g}"  # noqa: E731
    for x in r.relaxed:
        t.add_row(x["constraint"], fmt(x["with_it"]), fmt(x["without_it"]))
    out.print(t)
    v = r.verified
    out.print(("Verified: the exact run's grants equal the candidate's to the penny" if v["grants_equal_to_the_penny"]
               else f"The exact run's grants differ from the candidate's by up to {v['max_grant_difference_pence']}p")
              + f". Reproduce it: fundform run --formula {r.out_dir / 'scenario.toml'}")
    out.print(f"design written to {r.out_dir} (report.html)")


@app.command()
def levels(
    area: Annotated[str, typer.Argument(help="A receiving body at --level, e.g. E47000001 (Greater Manchester).")],
    level: Annotated[str, typer.Option(help="The receiving body's level: ca, utla, icb, region, nhs-region or "
                                       "deal:FILE.csv.")] = "ca",
    formula: FormulaOpt = None,
    start_year: StartYearOpt = None,
    years: YearsOpt = None,
    set_: SetOpt = None,
    index: IndexOpt = None,
    config: ConfigOpt = None,
    data: DataOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """The comparison of levels: a body's grant computed for it as one area (transition from its own baseline)
    against the sum of its members' grants computed authority by authority. Need adds up exactly; the transition,
    applied to the body that receives the money, need not."""
    from rich.table import Table

    from fundform.formula.scenario import resolve_formula
    from fundform.studies.levels import compare_levels
    from fundform.studies.runs import checked_dataset

    try:
        s, params, index_files = _setup(formula, data, level, start_year, years, config, set_, index)
        name, members, rows = compare_levels(checked_dataset(s.data_dir), resolve_formula(
            s.formula, tuple(set_ or ()), index_files=index_files), area, level, params.start_year, params.years)
    except Exception as e:  # noqa: BLE001
        fail(e)
    if json_out:
        out.print_json(json.dumps({"area": area, "members": members, "years": rows.to_dicts()}, default=str))
        return
    t = Table(title=f"{name} ({area}): as one body, and as the sum of its {len(members)} members (pounds)")
    for c in ["year", "need-weighted pop.", "members", "target", "members' targets", "grant", "members' grants"]:
        t.add_column(c, justify="right")
    for r in rows.iter_rows(named=True):
        t.add_row(r["financial_year"], f"{r['need_weighted_population']:,.0f}",
                  f"{r['need_weighted_population_members']:,.0f}", gbp_pence(r["target_allocation"]),
                  gbp_pence(r["target_allocation_members"]), gbp_pence(r["grant"]), gbp_pence(r["grant_members"]))
    out.print(t)


@app.command()
def serve(
    formula: FormulaOpt = None,
    level: LevelOpt = None,
    data: DataOpt = None,
    host: Annotated[str, typer.Option(help="Address to listen on. The default serves this machine only; another "
                                      "address exposes the explorer to the network it names.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 8765,
    quiet: QuietOpt = False,
) -> None:
    """A live explorer in the browser: choose a version and a level, move the version's numbers on sliders, and
    the map, the winners and losers, the five-year path and an area's waterfall follow, each figure the engine's
    own (the same as `fundform run --set` with those values). "Save as scenario" gives the TOML file and the
    command. Offline: the page fetches nothing but its own server's JSON."""
    from fundform.formula.registry import available_formulas
    from fundform.interfaces.explorer.server import Explorer
    from fundform.interfaces.explorer.server import serve as run_server

    try:
        s = _settings()
        fid = formula or s.formula
        if fid not in available_formulas():
            raise UsageProblem(f"serve explores the shipped versions ({', '.join(sorted(available_formulas()))}); "
                               f"got '{fid}' (save a scenario from the page, then run it with fundform run)")
        explorer = Explorer(data or s.data_dir, fid, level or "")
        explorer.default_level = explorer.params(fid, level or None).level
    except Exception as e:  # noqa: BLE001
        fail(e)
    if not quiet:
        out.print(f"fundform explorer on http://{host}:{port}/ (Ctrl-C to stop)")
    try:
        run_server(explorer, host, port, quiet)
    except OSError as e:
        fail(e)


@app.command()
def docs(check: Annotated[bool, flag("--check", help="Exit 1 if the generated files are out of date.")]
         = False, quiet: QuietOpt = False) -> None:
    """Regenerate data/DICTIONARY.md, docs/output-schema.md, docs/method/*.md and docs/assumptions.md from the
    code's contracts and the formula versions."""
    from fundform.formula.registry import available_formulas, load_formula
    from fundform.inputs.tables import dictionary_markdown
    from fundform.outputs.method import method_markdown
    from fundform.outputs.registry import schema_markdown

    targets = {PROJECT_ROOT / "data" / "DICTIONARY.md": dictionary_markdown(),
               PROJECT_ROOT / "docs" / "output-schema.md": schema_markdown()}
    for version in available_formulas():  # one method document per shipped version
        targets[PROJECT_ROOT / "docs" / "method" / f"{version}.md"] = method_markdown(
            load_formula(version).spec, f"formulas/{version}.toml")
    from fundform.outputs.method import assumptions_markdown

    targets[PROJECT_ROOT / "docs" / "assumptions.md"] = assumptions_markdown(
        [load_formula(v).spec for v in available_formulas()])
    stale = [p for p, text in targets.items() if not p.exists() or p.read_text() != text]
    if check:
        if stale:
            err.print("out of date: " + ", ".join(str(p) for p in stale) + " (run `fundform docs`)")
            raise typer.Exit(1)
        if not quiet:
            out.print("generated docs are up to date")
        return
    for p, text in targets.items():
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        if not quiet:
            out.print(f"wrote {p}")


if __name__ == "__main__":
    sys.exit(app())
