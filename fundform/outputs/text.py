"""Words for numbers. Money as people read it: the sign before the pound sign (-£1,234.56, not £-1,234.56),
thousands separated. Whom a run counts: residents, or registered patients."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import polars as pl


def gbp(pounds: float, dp: int = 2) -> str:
    """Pounds, e.g. -£1,234.56 (dp=0 for whole pounds)."""
    sign = "-" if pounds < 0 and round(abs(pounds), dp) != 0 else ""
    return f"{sign}£{abs(pounds):,.{dp}f}"


def gbp_pence(pence: float) -> str:
    """Computed money is integer pence; shown in pounds to the penny."""
    return gbp(pence / 100)


def gbp_bn(pence: float) -> str:
    """Pence shown in billions of pounds to three places (£1m)."""
    sign = "-" if pence < 0 and round(abs(pence) / 1e11, 3) != 0 else ""
    return f"{sign}£{abs(pence) / 1e11:,.3f}bn"


def gbp_m(pence: float) -> str:
    """Pence shown in millions of pounds to one place (£0.1m): an area's figure."""
    sign = "-" if pence < 0 and round(abs(pence) / 1e8, 1) != 0 else ""
    return f"{sign}£{abs(pence) / 1e8:,.1f}m"


def population_words(need: pl.DataFrame | None) -> tuple[str, str]:
    """Whom a run's population counts, from its need table: NHS England's registered patients where need is the
    practices' weighted populations (a wp_ column holds values), residents otherwise. Returns ("registered
    patients", "per registered patient") or ("residents", "per resident")."""
    practices = need is not None and any(c.startswith("wp_") and need[c].null_count() < need.height
                                         for c in need.columns)
    return ("registered patients", "per registered patient") if practices else ("residents", "per resident")


def exact(x: Any) -> str:
    """A version's number as the engine holds it: the shortest decimal that reads back as the same float (0.0666666667
    as written, never rounded to six figures), positional (0.000001, not 1e-06); whole numbers without a point."""
    import numpy as np

    if isinstance(x, bool) or not isinstance(x, int | float):
        return str(x)
    if float(x).is_integer() and abs(x) < 1e16:
        return str(int(x))
    return np.format_float_positional(float(x), unique=True, trim="-")


def run_words(manifest: dict) -> dict[str, str]:
    """The words a run's pages speak, from its manifest: what it is called (the scenario asked for, or the version),
    its title, and its kind's nouns. An NHS allocation speaks of allocations, baselines and the letter's lines; a
    needs-based grant of grants, today's funding and the transition."""
    f = manifest.get("formula", {})
    scenario = (f.get("scenario") or "").removesuffix(".toml")
    nhs = manifest.get("policies", {}).get("vocabulary") == "nhs_allocation"
    return {"name": scenario or f.get("id", ""), "version": f"{f.get('id', '')} {f.get('version', '')}".strip(),
            "title": f.get("scenario_title") or f.get("title") or "",
            "kind": "nhs_allocation" if nhs else "grant",
            "money": "recurrent allocations" if nhs else "needs-based grants",
            "figure": "allocation" if nhs else "grant", "start": "baseline" if nhs else "today's funding"}
