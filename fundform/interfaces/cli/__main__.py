"""`python -m fundform.interfaces.cli`: the command, as the installed `fundform` script runs it."""

import sys

from fundform.interfaces.cli import app

sys.exit(app())
