"""Third-party components arrive through the entry-point group `fundform.components`, without editing the engine.

The test builds a real (if minimal) installed distribution on a temporary path: a module that registers an
indicator transform, and a dist-info folder whose entry_points.txt names it, which is what pip would install."""

from __future__ import annotations

import importlib
import sys
import textwrap

import pytest

from fundform.base.errors import SpecError
from fundform.formula import components
from fundform.formula.scenario import resolve_formula
from fundform.studies.pipeline import RunParameters, compute

PLUGIN = textwrap.dedent('''
    """A plugin: need rises with the log of the indicator ratio."""
    import polars as pl
    from fundform.formula.components import indicator_transform

    @indicator_transform("log_ratio")
    def log_ratio(value: pl.Expr, national: pl.Expr, elasticity: float) -> pl.Expr:
        return 1.0 + elasticity * (value / national).log()
''')


@pytest.fixture
def plugin_on_path(tmp_path, monkeypatch):
    site = tmp_path / "site"
    (site / "fundform_logplugin").mkdir(parents=True)
    (site / "fundform_logplugin" / "__init__.py").write_text(PLUGIN)
    info = site / "fundform_logplugin-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fundform-logplugin\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text("[fundform.components]\nlogplugin = fundform_logplugin\n")
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    monkeypatch.setattr(components, "_plugins_loaded", False)
    yield
    components.INDICATOR_TRANSFORMS.pop("log_ratio", None)
    sys.modules.pop("fundform_logplugin", None)


def test_unknown_transform_without_the_plugin():
    with pytest.raises(SpecError, match="unknown component 'log_ratio'"):
        resolve_formula("fundform-needs", ['need.indicators.deprivation.transform="log_ratio"'])


def test_plugin_transform_is_used_by_a_spec(plugin_on_path, bundled):
    f = resolve_formula("fundform-needs", ['need.indicators.deprivation.transform="log_ratio"'])
    assert "log_ratio" in components.INDICATOR_TRANSFORMS
    plugged = compute(bundled, f, RunParameters(years=1))
    base = compute(bundled, resolve_formula("fundform-needs"), RunParameters(years=1))
    assert plugged.reconciliation["holds"].all()
    assert not plugged.need["target_share"].equals(base.need["target_share"])
