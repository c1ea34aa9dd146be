"""Money as people read it: the sign before the pound sign (-£1,234.56, not £-1,234.56), thousands separated."""

from __future__ import annotations


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
