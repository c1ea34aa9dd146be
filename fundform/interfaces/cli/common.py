"""The `fundform` command itself: the Typer application, its consoles, how a failure is printed and its exit code,
and the options the commands share (one declaration each). The commands are in the modules beside this one.

The `fundform` command.

Exit codes: 0 success; 1 invalid input, spec or policy (the message says what and where), or a batch in which
some run failed; 2 usage error; 3 internal error (a bug: rerun with --debug for the traceback and report it);
4 another batch holds the output folder's lock; 5 the machine refused (permission denied, disk full, read-only).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, NoReturn, Optional, TypeVar, cast

import typer
from rich.console import Console
from rich.markup import escape

from fundform import __version__
from fundform.base.errors import FundformError, UsageProblem, present

if TYPE_CHECKING:
    import polars as pl

    from fundform.base.config import Settings
    from fundform.engine.params import RunParameters
    from fundform.inputs.dataset import Dataset

F = TypeVar("F", bound=Callable[..., Any])


def flag(*names: str, **kw: Any) -> Any:
    """A yes/no option: shown in --help without a type (a flag takes no value)."""
    return typer.Option(*names, metavar="", **kw)


def _no_type_for_flags() -> None:
    """Typer's own --help flag would still show `<bool>`: a flag takes no value, so its help shows no type."""
    from typer.core import TyperOption

    shown = TyperOption.display_type_rich
    if getattr(shown, "fundform", False):
        return

    def display(self: TyperOption, ctx: Any) -> Any:
        return None if self.is_flag else shown(self, ctx)
    setattr(display, "fundform", True)
    setattr(TyperOption, "display_type_rich", display)


_no_type_for_flags()


def reported(fn: F) -> F:
    """A command whose every failure is told one way (`fail`): the user's input wrong (exit 1, the message), the
    machine refusing (exit 5), or a fault of fundform's own (exit 3, where to report it). The one error wrapper of
    the command line: a command's body raises, it never catches to print."""
    import functools

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, SystemExit, KeyboardInterrupt, GeneratorExit):
            raise
        except Exception as e:  # (every failure, told by fail)
            fail(e)
    return cast(F, run)  # functools.wraps keeps the signature Typer reads


class Commands(typer.Typer):
    """A group of commands, each wrapped by `reported`."""

    def command(self, *args: Any, **kwargs: Any) -> Callable[[F], F]:
        register = super().command(*args, **kwargs)

        def decorate(fn: F) -> F:
            register(reported(fn))
            return fn
        return decorate


class _Command(Commands):
    """The `fundform` command as a program: `--debug` is taken anywhere on the line (`fundform run --debug`, as
    messages say: "rerun with --debug"), and output cut off by a closed pipe (`fundform explain X | head`) ends
    quietly with exit 0, as a reader who stops reading is no failure."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
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


def write_frame(frame: pl.DataFrame, path: Path, what: str = "table") -> None:
    """A table written whole or not at all, with fundform's metadata key (so a later run may replace it and nothing
    else is ever overwritten: outputs.write.atomic_write_file)."""
    from fundform.outputs.write import MANIFEST_KEY, atomic_write_file

    table = frame.to_arrow()
    table = table.replace_schema_metadata({**(table.schema.metadata or {}),
                                           MANIFEST_KEY: json.dumps({"table": what}).encode()})
    atomic_write_file(Path(path), table, what)


def fail(e: BaseException) -> NoReturn:
    from fundform.base.errors import REPORT_WHERE, InternalError, environment_failure

    if isinstance(e, BrokenPipeError):  # the reader closed the pipe: not an error of the command
        raise e

    env = environment_failure(e, "the machine refused")  # permission, full or read-only disk: exit 5, not a bug
    if env is not None:
        e = env
    if isinstance(e, InternalError):  # a fault of fundform's own, named as one: exit 3
        if STATE["debug"]:
            raise e
        err.print(f"[bold red]internal error:[/bold red] {escape(str(e).removeprefix('internal error: '))}",
                  highlight=False, soft_wrap=True)
        raise typer.Exit(e.exit_code)
    if isinstance(e, FundformError):
        err.print(f"[bold red]error:[/bold red] {escape(str(e))}", highlight=False, soft_wrap=True)
        raise typer.Exit(e.exit_code)
    if STATE["debug"]:
        raise e
    err.print(f"[bold red]internal error:[/bold red] {type(e).__name__}: {escape(str(e))}\n"
              f"This is a fault in fundform, not in your input: {REPORT_WHERE}.",
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


def parse_index_files(index: list[str] | None) -> dict[str, Path]:
    files = {}
    for item in index or ():
        if "=" not in item:
            raise UsageProblem(f"--index '{item}': expected NAME=FILE.csv")
        name, file = item.split("=", 1)
        files[name.strip()] = Path(file.strip())
    return files


def setup_options(formula: str | None = None, data: Path | None = None, level: str | None = None,
                  start_year: str | None = None, years: int | None = None, config: Path | None = None,
                  sets: list[str] | None = None, index: list[str] | None = None, price_base_year: str | None = None,
                  **extra: Any) -> tuple[Settings, RunParameters, dict[str, Path]]:
    """The options every computing command shares, meaning the same everywhere (fundform.interfaces.api.parameters, which the
    Python API uses too): returns (settings, run parameters, index files)."""
    from fundform.interfaces.api import parameters

    s, params, index_files, _ = parameters(formula, data=data, level=level, start_year=start_year, years=years,
                                           set=list(sets or ()), index=parse_index_files(index), config=config,
                                           price_base_year=price_base_year, **extra)
    return s, params, index_files


ImplausibleOpt = Annotated[bool, flag("--allow-implausible", help="Accept input values outside their "
                                              "plausibility bounds (docs/reliability.md); the run's manifest lists "
                                              "each one. Hard limits still apply.")]


class progress_bar:
    """A Rich progress bar on stderr while long work runs (batch runs, ...), only when stderr is a terminal: piped or
    redirected output gets nothing but the result. Called as progress(message, done, total)."""

    def __init__(self, title: str, silent: bool):
        self.title = title
        self.on = not silent and err.is_terminal
        self.progress: Any = None  # a Rich Progress while the bar is shown
        self.task: Any = None

    def __enter__(self) -> progress_bar:
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

    def __exit__(self, *exc: Any) -> Literal[False]:
        if self.progress is not None:
            self.progress.__exit__(*exc)
        return False


def current_settings() -> Settings:
    from fundform.base.config import load_settings

    return load_settings()


def write_report(run_ref: str, out_file: Path | None, compare_with: str | None, area: str | None, data: Path | None,
                 quiet: bool = False, sweep_dir: Path | None = None, deal_file: Path | None = None) -> Path:
    import polars as pl

    from fundform.base.paths import default_data_dir
    from fundform.outputs import compare as cmp
    from fundform.outputs.report import write_report
    from fundform.outputs.warehouse import find_run
    from fundform.studies.runs import checked_dataset

    s = current_settings()  # a failure is told by the command's one wrapper (`reported`)
    run_dir = find_run(run_ref, s.warehouse, s.out_root)
    alloc = pl.read_parquet(run_dir / "allocations.parquet")
    level = alloc["area_level"][0]
    dataset = None
    try:
        dataset = checked_dataset(data or default_data_dir())
        deciles = cmp.deprivation_deciles(dataset, level, alloc["area_code"].unique().to_list())
    except FundformError:
        deciles = None
    member = membership(dataset, level, deal_file, alloc["area_code"].unique().to_list())
    comparison = None
    if compare_with:
        other = pl.read_parquet(find_run(compare_with, s.warehouse, s.out_root) / "allocations.parquet")
        comparison = cmp.compare(other, alloc, deciles)
    target = write_report(run_dir, out_file or run_dir / "report.html", deciles=deciles, area=area,
                          comparison=comparison, sweep_dir=sweep_dir, member=member)
    if not quiet:
        out.print(f"report written to {escape(str(target))}")
    return target


def membership(dataset: Dataset | None, level: str, deal_file: Path | None = None, codes: list[str] | None = None) -> dict[str, str] | None:
    """Each lower-tier authority's area at the run's level, for the report's maps (None if not known)."""
    from fundform.inputs.tables import LEVELS
    from fundform.outputs.maps import membership

    if deal_file is not None:
        from fundform.engine.geography import with_level

        dataset = with_level(present(dataset, "the dataset of a deal-area run"), f"deal:{deal_file}", Path(deal_file))
        return membership(dataset["area_lookup"], [lv for lv in dataset["area_lookup"]["level"].unique()
                                                   if lv not in LEVELS][0])
    if dataset is None or level not in LEVELS:
        return None
    return membership(dataset["area_lookup"], level, dataset.tables.get("icb_changes"), codes or [])
