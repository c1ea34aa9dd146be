"""The `fundform` command (Typer), one module per group of commands, each parsing its options, calling the Python
API or the studies, and printing: run.py (run, validate), formulas.py, areas.py (places, ledger), warehouse.py
(runs, sql, export), results.py (compare, explain, report), studies.py (batch, sweep, design, levels), system.py
(serve, docs, cache). common.py holds the application, the shared options and how failures are printed. Importing this
package registers every command, in the order `fundform --help` lists them."""

from fundform.interfaces.cli import run, formulas, areas, warehouse, results, studies, system  # noqa: F401, I001
from fundform.interfaces.cli.common import app

__all__ = ["app"]
