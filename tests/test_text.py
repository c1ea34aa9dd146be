"""Money shown to people: sign before the pound sign, no negative zero."""

from decimal import Decimal

import pytest

from fundform.outputs.text import gbp, gbp_bn, gbp_pence


@pytest.mark.parametrize("value, dp, shown", [
    (1234.5, 2, "£1,234.50"), (-1234.5, 2, "-£1,234.50"), (-0.004, 2, "£0.00"), (-0.4, 0, "£0"),
    (Decimal("-39026425.28"), 2, "-£39,026,425.28"), (2.5e9, 0, "£2,500,000,000"),
])
def test_gbp(value, dp, shown):
    assert gbp(value, dp) == shown


def test_pence_and_billions():
    assert gbp_pence(-3_902_642_528) == "-£39,026,425.28"
    assert gbp_bn(14_442_000_000_00) == "£14.442bn"
    assert gbp_bn(-1_707_000_000_00) == "-£1.707bn"
    assert gbp_bn(-10_000_000) == "£0.000bn"  # -£100,000 rounds to nothing at £1m precision
