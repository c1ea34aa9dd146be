"""The `fundform` command, as the project layout names it: the command lives in the package (fundform/interfaces/cli.py);
this file only imports it, so `python cli.py ...` and `from cli import app` keep working from a checkout."""

import sys

from fundform.interfaces.cli import app

__all__ = ["app"]

if __name__ == "__main__":
    sys.exit(app())
