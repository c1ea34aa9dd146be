"""The explorer's one page, from the files the package ships in assets/: explorer.html (the page, with $-placeholders
for the version, the level, the maps' shapes, the style and the script), explorer.css and explorer.js. Inline style and
script, nothing fetched but the server's own JSON API.

Text from the server is set with textContent (never parsed as HTML); the maps are the report's own SVG, whose every
name and value is escaped where it is drawn (fundform/outputs/maps.py); the two values put into the HTML here are
escaped.
"""

from __future__ import annotations

import functools
import html
from importlib.resources import files
from string import Template
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fundform.interfaces.explorer.engine import Explorer


@functools.cache
def asset(name: str) -> str:
    """One of the page's files, as shipped with the package."""
    return (files("fundform.interfaces.explorer") / "assets" / name).read_text(encoding="utf-8")


def page(explorer: Explorer) -> str:
    from fundform.outputs import maps

    return Template(asset("explorer.html")).substitute(
        formula=html.escape(explorer.default_formula), level=html.escape(explorer.default_level),
        defs=maps.defs() if maps.available() else "", css=asset("explorer.css"), script=asset("explorer.js"))
