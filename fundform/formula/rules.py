"""The transition rules' models: what each rule of a version's [transition] table holds, chosen by `rule`
(convergence, nhs_convergence, phasing, or a plugin's), with the floor, ceiling and guarantee every rule has. The
rules' code is in fundform/engine/settlement/transition.py and fundform/formula/components.py."""

from __future__ import annotations

import functools
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    model_validator,
)

from fundform.formula.quantities import Change, Quantity, Share, Strict, WholeYears


class Guarantee(Strict):
    """No area gets less cash in any year than it had before the settlement (its start allocation)."""

    kind: Literal["no_area_worse_off"] = "no_area_worse_off"
    funding: Literal["within_total", "additional"]
    source: str = Field(min_length=1)


class _Rule(Strict):
    """What every transition rule has: a floor and a ceiling on each year's change, and the cash guarantee."""

    rule: str
    floor: Change | None = None
    ceiling: Change | None = None
    floor_basis: Literal["cash", "real"] = "cash"
    guarantee: Guarantee | None = None
    budget_neutral: Literal[True] = True  # only NHS England's convergence may release what it does not allocate

    @model_validator(mode="after")
    def _order(self) -> _Rule:
        if self.floor and self.ceiling and self.ceiling.value < self.floor.value:
            raise ValueError("ceiling must be >= floor")
        return self


class Convergence(_Rule):
    """Uniform growth of last year's allocation plus a fixed fraction of the gap to target."""

    rule: Literal["convergence"]
    gap_closed_per_year: Share


class _Released(_Rule):
    """A rule that may allocate other than the year's total (NHS England's rounds): what it does not allocate is
    released, and what it gives beyond the total is refused or added."""

    budget_neutral: bool = True  # type: ignore[assignment]  # a released rule may say False; every other rule True
    # a rule that is not budget neutral and gives more than the year's control total: "refused" (the total is a cap)
    # or "added" (NHS England's rounds: the total is what the rule allocates; the excess is reported as a negative
    # release, released_by_transition_gbp)
    over_total: Literal["refused", "added"] = "refused"
    # how the convergence percentage c meets the base growth factor G: A*G*(1 + c) ("multiplicative": core and
    # primary medical care rounds) or A*(G + c) ("additive": other primary care's sheet, allocation = baseline x (1 +
    # base growth + convergence))
    combine: Literal["multiplicative", "additive"] = "multiplicative"

    @model_validator(mode="after")
    def _over(self) -> _Released:
        if self.over_total == "added" and self.budget_neutral:
            raise ValueError("over_total = \"added\" is for a rule that is not budget neutral (budget_neutral = "
                             "false); a budget-neutral rule shares the total exactly")
        return self


class NhsConvergence(_Released):
    """NHS England's pace of change (see docs/nhs-convergence.md)."""

    rule: Literal["nhs_convergence"]
    gain_gap_closed: Share
    max_gain: Share
    reduction_gap_closed: Share
    max_reduction: Share
    # what reduction_gap_closed is a share of, for an ICB over target by d: d / (1 + d), the way to target (2023/24
    # and 2024/25 rounds), or d itself (2025/26 round: 0.2 x d)
    reduction_of: Literal["d/(1+d)", "d"] = "d/(1+d)"


REGION_CODE = r"^Y[0-9]{2}$"
AREA_CODE = r"^[A-Z][A-Z0-9]{2,8}$"


class GivenConvergence(_Released):
    """Convergence given, not computed from targets: a sheet that publishes each ICB's (or each NHS region's)
    convergence percentage and no fair shares targets (other primary care). `convergence = "published"` takes the
    round's own convergence column (nhs_icb_allocations.convergence); `by_region` or `by_icb` state it per NHS region
    (Yxx) or per ICB (Qxx), each with its unit and source."""

    rule: Literal["given_convergence"]
    convergence: Literal["published", "by_region", "by_icb"]
    by_region: dict[Annotated[str, Field(pattern=REGION_CODE)], Change] | None = None
    by_icb: dict[Annotated[str, Field(pattern=AREA_CODE)], Change] | None = None

    @model_validator(mode="after")
    def _given(self) -> GivenConvergence:
        for kind in ("by_region", "by_icb"):
            given = getattr(self, kind)
            if (self.convergence == kind) != (given is not None):
                raise ValueError(f"convergence = \"{self.convergence}\" " + (
                    f"needs the table {kind} (code = {{ value, unit, source }})" if given is None else
                    f"reads no {kind} table: remove it, or set convergence = \"{kind}\""))
            if given is not None and not given:
                raise ValueError(f"{kind} must name at least one code")
        return self


class Uniform(_Rule):
    """No convergence: every area's allocation grows by its base growth (a stream that grows uniformly, as NHS
    England's high-cost drugs and devices or the running cost allowances). One word: rule = "uniform"."""

    rule: Literal["uniform"]


class Phasing(_Rule):
    """A straight-line blend from today's funding (uprated) to target over N whole years."""

    rule: Literal["phasing"]
    phasing_years: WholeYears


class PluginRule(_Rule):
    """A rule a plugin registers (`fundform.formula.components.transition_rule`): its numbers in `parameters`."""

    rule: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    parameters: dict[str, Quantity] = Field(default_factory=dict)


def _quantity_fields(model: type[BaseModel]) -> tuple[str, ...]:
    """The fields of a model that hold one number (a Quantity): the names --set, sweeps and sliders address."""
    return tuple(name for name, f in model.model_fields.items()
                 if "Quantity" in str(f.annotation) and "dict" not in str(f.annotation))


# one model per built-in rule, chosen by `rule`; any other name is a plugin's
RULES: dict[str, type[_Rule]] = {"convergence": Convergence, "nhs_convergence": NhsConvergence, "phasing": Phasing,
                                 "given_convergence": GivenConvergence, "uniform": Uniform}
# the numbers of every built-in rule (each rule's pace, and the floor and ceiling all have), derived from the models
TRANSITION_NUMBERS = tuple(dict.fromkeys(k for m in RULES.values() for k in _quantity_fields(m)))


def _rule_tag(v: Any) -> str:
    rule = v.get("rule") if isinstance(v, dict) else getattr(v, "rule", None)
    return rule if rule in RULES else "plugin"


Transition = Annotated[Union[Annotated[Convergence, Tag("convergence")],
                             Annotated[NhsConvergence, Tag("nhs_convergence")],
                             Annotated[Phasing, Tag("phasing")],
                             Annotated[GivenConvergence, Tag("given_convergence")], Annotated[Uniform, Tag("uniform")],
                             Annotated[PluginRule, Tag("plugin")]],
                       Discriminator(_rule_tag)]


def make_rule(**fields: Any) -> Transition:
    """A transition rule from its fields, as a version's [transition] table gives them."""
    return _transition_adapter().validate_python(fields)


@functools.cache
def _transition_adapter() -> TypeAdapter[Transition]:  # built when first asked for, not at import
    return TypeAdapter(Transition)


def rule_numbers(rule: str) -> tuple[str, ...]:
    """The numbers a rule has of its own (a plugin's are in its `parameters`)."""
    model = RULES.get(rule)
    return () if model is None else tuple(k for k in _quantity_fields(model) if k not in _Rule.model_fields)


def loc_path(loc: tuple) -> str:
    """A validation error's key path as the file names it: the model chosen by `rule` is not part of the path."""
    tags = set(RULES) | {"plugin"}
    parts = [str(p) for i, p in enumerate(loc) if not (p in tags and i > 0 and loc[i - 1] == "transition")]
    return ".".join(parts)
