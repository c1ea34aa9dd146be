"""What one year's data gives an age-cost-curve need (NeedInputs): the one shape both the need's computation
(need.axis, from the dataset) and the data axis (engine.draws, each draw's from its variant rows) fill. Its own
module so the draws, which the need's computation reads, never import that computation back."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class NeedInputs:
    """What one year's data gives an age-cost-curve need, per lower-tier authority in code order."""

    codes: list[str]
    population: np.ndarray  # (authorities,) residents, exact sums
    bands: np.ndarray  # (bands, authorities) residents in each of the curve's age bands, exact sums
    values: list[np.ndarray]  # each indicator's value, (authorities,)
    # each indicator's population-weighted national value: a number, or (draws,) one per draw (engine.draws)
    national: list[float] | list[np.ndarray]
