"""Need: need-weighted population and target shares. axis.py computes need once (with a scenario axis)
from inputs.py's NeedInputs (what one year's data gives it, which the draws fill too), weighted_population.py holds the age weights and indicator multipliers, frames.py each area's need and today's
funding per settlement year, places.py places built from GP practices."""
