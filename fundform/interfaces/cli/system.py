"""fundform serve, docs and cache: the live explorer, the generated documents, the checked-input cache."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape

from fundform.base.errors import UsageProblem
from fundform.base.paths import PROJECT_ROOT
from fundform.interfaces.cli.common import (
    Commands,
    DataOpt,
    FormulaOpt,
    JsonOpt,
    LevelOpt,
    QuietOpt,
    app,
    current_settings,
    err,
    flag,
    out,
)


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
    from fundform.interfaces.explorer.engine import Explorer
    from fundform.interfaces.explorer.server import serve as run_server

    s = current_settings()
    fid = formula or s.formula
    if fid not in available_formulas():
        raise UsageProblem(f"serve explores the shipped versions ({', '.join(sorted(available_formulas()))}); "
                           f"got '{fid}' (save a scenario from the page, then run it with fundform run)")
    explorer = Explorer(data or s.data_dir, fid, level or "")
    explorer.default_level = explorer.params(fid, level or None).level
    from fundform.interfaces.explorer.server import LOOPBACK, WILDCARDS

    if host.strip("[]") in WILDCARDS:  # said even with --quiet: who can reach it is not a detail
        err.print(f"[bold yellow]warning:[/bold yellow] serving every network interface on port {port}: anyone who "
                  "can reach this machine can use the explorer (there is no sign-in), and it answers this machine's "
                  "names and addresses. Serve 127.0.0.1 (the default) to keep it to this machine.", soft_wrap=True)
    elif host.strip("[]").lower() not in LOOPBACK:
        err.print(f"[bold yellow]warning:[/bold yellow] serving {host}: anyone on that network can use the "
                  "explorer (there is no sign-in).", soft_wrap=True)
    if not quiet:
        out.print(f"fundform explorer on http://{host}:{port}/ (Ctrl-C to stop)")
    run_server(explorer, host, port, quiet)  # a port in use or refused: told by the command's wrapper


@app.command()
def docs(check: Annotated[bool, flag("--check", help="Exit 1 if the generated files are out of date.")]
         = False, quiet: QuietOpt = False) -> None:
    """Regenerate data/DICTIONARY.md, docs/output-schema.md, docs/method/*.md (each shipped version and scenario)
    and docs/assumptions.md from the code's contracts and the formula versions."""
    from fundform.formula.registry import available_formulas, load_formula, shipped_scenarios
    from fundform.formula.scenario import resolve_formula
    from fundform.inputs.tables import dictionary_markdown
    from fundform.outputs.method import method_of
    from fundform.outputs.registry import schema_markdown

    targets = {PROJECT_ROOT / "data" / "DICTIONARY.md": dictionary_markdown(),
               PROJECT_ROOT / "docs" / "output-schema.md": schema_markdown()}
    for name in [*available_formulas(), *shipped_scenarios()]:  # one method document per shipped version and scenario
        targets[PROJECT_ROOT / "docs" / "method" / f"{name}.md"] = method_of(resolve_formula(name))
    from fundform.outputs.assumptions import assumptions_markdown

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



cache_app = Commands(help="The checked-input cache: the checked tables of earlier runs, kept by the content of "
                        "their files (out/.cache/inputs, or FUNDFORM_CACHE).", no_args_is_help=True)
app.add_typer(cache_app, name="cache")


@cache_app.command("clear")
def cache_clear(json_out: JsonOpt = False) -> None:
    """Remove every cached entry: the next run on any dataset reads and checks its files again."""
    from fundform.inputs import cache

    root = cache.cache_root()
    n = cache.clear(root)
    if json_out:
        out.print_json(json.dumps({"cache": str(root), "entries_removed": n}))
    else:
        out.print(f"removed {n} cached dataset(s) from {escape(str(root))}")
