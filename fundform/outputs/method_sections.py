"""The method document's sections (method.py): each a function that writes its step, in the order SECTIONS
lists them, with the helpers they share. A section reads the version from the shared Doc and numbers itself; the
cross-references between sections (§key§) are resolved when the document is whole."""

from __future__ import annotations

import inspect

from fundform.base.errors import present
from fundform.base.years import FinancialYear, years_between
from fundform.formula.components import EQUATIONS, INDICATOR_TRANSFORMS, TRANSITION_RULES
from fundform.formula.quantities import Quantity
from fundform.formula.rules import rule_numbers
from fundform.formula.spec import AgeCostCurve, FormulaSpec, Need, iter_quantities
from fundform.inputs.tables import CONTRACTS
from fundform.outputs.method_parts import Doc, flat_section, neutrality, outputs_section, targets_read
from fundform.outputs.text import exact

# baseline table columns that are NHS England's published allocations, and the nhs_icb_allocations stream of each
NHS_PUBLISHED = {"nhs_core": "core", "nhs_primary_medical": "primary_medical_care"}

def _q(q: Quantity | None) -> str:
    return "none" if q is None else f"{exact(q.value)} ({_what(q)}; source: {q.source})"


def _what(q: Quantity | AgeCostCurve) -> str:
    """A number's unit, and in words what it is where the version says."""
    return q.unit + (f": {q.description}" if q.description else "")


def _v(q: Quantity | None) -> str:
    return "none" if q is None else exact(q.value)


def _col(table: str, column: str) -> str:
    contract = CONTRACTS.get(table)
    if contract is None:
        return f"`{table}.{column}`"
    col = next((c for c in contract.columns if c.name == column), None)
    unit = f", {col.unit}" if col else ""
    return f"`{table}.{column}`{unit}"


def _equation(name: str, kind: str) -> str:
    if name in EQUATIONS:
        return EQUATIONS[name]
    fn = (INDICATOR_TRANSFORMS if kind == "transform" else TRANSITION_RULES).get(name)
    doc = inspect.getdoc(fn) if fn else None
    return f"(a plugin component without a stated equation; its description: {doc or 'none'})"


def _index_rows(spec: FormulaSpec, years: list[str]) -> list[str]:
    from fundform.engine.settlement.control_total import cumulative_growth, index_growth

    ct = spec.control_total
    growth = index_growth(spec.indices, ct.inflation_index)
    rows = ["| year | index growth g | index level I (1 at the base year) | real factor R | I x R |", "|---|---|---|---|---|"]
    for y in years:
        try:
            i = cumulative_growth(growth, ct.base_year, y, ct.inflation_index)
        except Exception:  # a year the index does not cover: the run refuses it too
            rows.append(f"| {y} | not given | - | - | - |")
            continue
        r = (1 + ct.real_growth.value) ** years_between(y, ct.base_year)
        rows.append(f"| {y} | {exact(growth.get(y, 0.0))} | {i:.10f} | {r:.10f} | {i * r:.10f} |")
    return rows


def _need_section(need: Need, title: str, n: int) -> list[str]:
    out = [f"## {n}. {title}", ""]
    if need.method == "practice_weighted_population":
        out += [
            f"Need is NHS England's needs-weighted registered population per GP practice, column "
            f"`practice_weighted_population.{need.weighted_population_column}` for `weights_year = "
            f"{need.weights_year}`" + (" (each settlement year's own weights)" if need.weights_year == "settlement_year"
                                       else "") + f" (source: {need.source}). Registered patients "
            "(`registered_population`) are the population.",
            "",
            "```",
            "N_a = sum over practices p in a of wp_p        P_a = sum over practices p in a of registered_population_p",
            "```",
            "",
            "At level `icb` (`nhs-region`) a practice belongs to its own `icb_code` (`nhs_region_code`); at council "
            "levels, to its `area_code`, rolled up through the area lookup as in step §areas§. Sums are exact (128-bit "
            "fixed point at 1e-12 of a person).",
            "",
        ]
        return out
    curve = need.curve
    out += [
        f"Population `P[i,s,a]` is `population.population` (persons) for lower-tier authority `i`, sex `s`, single year "
        "of age `a` (90 = 90 and over), summed over sex and any small areas first; where the table has a "
        "`financial_year`, each settlement year `k` takes that year's rows, and every quantity of steps §need§-§areas§ (need, "
        "target shares, population per head) is that year's (`P_k`, `N_k`, `tau_k`). The age cost curve gives each "
        f"age its band's weight `w(a)` ({_what(curve)}; source: {curve.source}):",
        "",
        "| ages | weight w(a) |",
        "|---|---|",
        *[f"| {b.age_from}-{b.age_to} | {exact(b.weight)} |" for b in curve.bands],
        "",
        "```",
        "P_i = sum over s, a of P[i,s,a]",
        "W_i = sum over bands b of w_b * P_b,i,   P_b,i = sum over s and ages a in b of P[i,s,a]   (age-weighted "
                "population: band by band, in the curve's order)",
        "```",
        "",
    ]
    if need.indicators:
        out += ["Each need indicator `j` turns an authority's value `x_ij` into a multiplier `m_ij`, relative to the "
                "population-weighted national value over all authorities of the dataset:", "",
                "```", "X_j = (sum over i of x_ij * P_i) / (sum over i of P_i)", "```", ""]
        for ind in need.indicators:
            bounds = []
            if ind.min_multiplier is not None:
                bounds.append(f"at least {_v(ind.min_multiplier)}")
            if ind.max_multiplier is not None:
                bounds.append(f"at most {_v(ind.max_multiplier)}")
            out += [f"- **{ind.name}**: `x` = {_col(ind.table, ind.column)}; transform `{ind.transform}`: "
                    f"`{_equation(ind.transform, 'transform')}` with `e` = {_q(ind.elasticity)}"
                    + (f"; then bounded: {' and '.join(bounds)} (`m = min(max(m, lo), hi)`, after the transform; "
                       f"lower bound source: {ind.min_multiplier.source if ind.min_multiplier else '-'})"
                       if bounds else "; not bounded") + "."]
        out += [""]
    product = " * ".join(f"m_i,{ind.name}" for ind in need.indicators) or "1"
    out += ["```", f"N_i = W_i * {product}          (need-weighted population)", "```", ""]
    return out


def _section_need(d: Doc) -> None:
    """Section need of the method document (SECTIONS lists them in order)."""
    spec = d.spec
    out = d.out
    n = d.step("need")
    needs = d.needs
    out += _need_section(spec.need, "Need" + (" (the version's; a stream without its own uses it)" if spec.streams
                                              else ""), n)
    for path, need in needs[1:]:
        n = d.step()
        out += _need_section(need, f"Need of stream {path.split('.')[1]}", n)


def _section_areas(d: Doc) -> None:
    """Section areas of the method document (SECTIONS lists them in order)."""
    spec = d.spec
    out = d.out
    n = d.step("areas")
    out += [f"## {n}. Areas of the output level and target shares", "",
            "An authority's quantities reach the areas of the run's level through the area lookup: `s_ia` = "
            "`area_lookup.share` for `level` = the run's level (1 where the authority lies wholly in the area; the "
            "shares of one authority sum to 1). Only additive quantities are rolled up; ratios are recomputed.", "",
            "```",
            "N_a = sum over i of s_ia * N_i        P_a = sum over i of s_ia * P_i",
            "tau_a = N_a / sum over a' of N_a'          (target share)",
            "need_index_a = (N_a / P_a) / ((sum of N) / (sum of P))",
            "```", ""]
    if spec.baseline.target_shares == "published_fair_shares":
        out += ["This version takes its target shares from the published round instead: `tau_a = FST_a / sum of "
                "FST`, `FST` = `nhs_icb_allocations.fair_shares_target` summed to the area.", ""]


def _section_funding(d: Doc) -> None:
    """Section funding of the method document (SECTIONS lists them in order)."""
    spec = d.spec
    b, ct = spec.baseline, spec.control_total
    out = d.out
    n = d.step("funding")
    b = spec.baseline
    if b.source == "baseline_table":
        comps = b.columns if not spec.streams else [c for s in spec.streams for c in s.baseline_components or []]
        nhs = [c for c in comps if c in NHS_PUBLISHED]
        out += [f"## {n}. Today's funding", "",
                "Today's funding `F_i` is the sum of the baseline table's components "
                + ", ".join(_col("baseline", c) for c in comps) + " (GBP, cash) for authority `i`, in "
                f"`baseline.baseline_year`, which must equal the control total's base year {ct.base_year} (a run "
                "with another year is refused). `F_a = sum over i of s_ia * F_i`.", ""]
        if nhs:
            out += ["The NHS components are NHS England's published recurrent allocations, not estimates: "
                    + "; ".join(f"`baseline.{c}` is the `{NHS_PUBLISHED[c]}` stream's `recurrent_allocation` "
                                f"in `nhs_icb_allocations`, of the round named by `baseline.{c}_source_year`"
                                for c in nhs)
                    + ". Each ICB's allocation is attributed to the authorities whose residents it funds, in "
                    "proportion to residents x NHS England's weighted population per registered patient of the "
                    "authority's practices (data/README.md), so the components sum to the published ICB totals.",
                    ""]
    else:
        out += [f"## {n}. Today's funding: the published rounds", "",
                "Each settlement year `y` reads round `y` of `nhs_icb_allocations` where the data holds it (the "
                "version's rounds start at " + f"`{b.allocation_round}`): per ICB its adjusted recurrent baseline "
                "`RB_y` (last year's allocation as restated for the round), base growth, fair shares targets `FST` "
                "of the base year and recurrent allocation `RA_y`, summed to the area (ICBs that later merged or "
                "split moved to the ICBs of the run's last year by `icb_changes.share`). The start `F_a` is the "
                "first year's `RB`, or the year before's `RA` where the data holds no round for the first year. "
                "Base growth is " + ("each ICB's published `base_growth` where the year's round is held (`G_a = "
                                     "(sum of RB * (1 + base_growth)) / (sum of RB)` over the area's ICBs), else "
                                     "uniform" if b.base_growth == "published" else "uniform")
                + "; the targets' total is " + ("the published fair shares targets' total `sum of FST` grown "
                                                + ("by each ICB's growth" if b.target_growth == "icb" else
                                                   "by the national growth")
                                                if b.target_total == "published_fair_shares" else "the year's total")
                + ".", ""]


def _section_control_total(d: Doc) -> None:
    """Section control_total of the method document (SECTIONS lists them in order)."""
    first, spec, year0, years = d.first, d.spec, d.year0, d.years
    b, ct = spec.baseline, spec.control_total
    out = d.out
    n = d.step("control_total")
    idx = spec.indices[ct.inflation_index]
    composite = ""
    if idx.composite:
        composite = (" It is a composite: `g_y = " + " + ".join(f"{exact(c.weight.value)} * g_{c.index}"
                                                               for c in idx.composite) + "` (weights' sources: "
                     + "; ".join(f"{c.index}: {c.weight.source}" for c in idx.composite) + ").")
    out += [f"## {n}. Control total", "",
            f"Base year `y0` = {ct.base_year}; index `{ct.inflation_index}` ({idx.description}; source: {idx.source}; "
            f"vintage {idx.vintage}), growth `g_y` into year `y` from the year before.{composite} Real growth `r` = "
            f"{_q(ct.real_growth)}. Inflation and real growth multiply:", "",
            "```",
            "I_y = product over t = y0+1 .. y of (1 + g_t)          R_y = (1 + r) ^ (y - y0)",
            ]
    if b.source == "baseline_table":
        out += ["B = round(100 * sum over i of F_i)                (pence; from the unrounded sum in pounds)",
                "CT_y = round(B * I_y * R_y)",
                "```", "",
                (f"The base year {ct.base_year} is the year before the settlement: its control total is `B` itself "
                 f"(`I` = `R` = 1), and growth applies from the first settlement year {first}. For this version:"
                 if ct.base_year == year0 else
                 f"So the first settlement year {first} is {years_between(first, ct.base_year)} year(s) of "
                 f"growth from the base year {ct.base_year}: the control total grows through every year after it, "
                 f"{year0} (the year before the settlement) included. For this version:"), ""]
    else:
        out += ["```", "",
                "For a published round the control total is the sum of each area's start grown by its own factors "
                "(step §start§). The uniform factor of a later year is `I_y * R_y / (I_{y-1} * R_{y-1})`.", ""]
    out += _index_rows(spec, years) + [""]


def _section_start(d: Doc) -> None:
    """Section start of the method document (SECTIONS lists them in order)."""
    first, spec, year0 = d.first, d.spec, d.year0
    b, ct = spec.baseline, spec.control_total
    out = d.out
    n = d.step("start")
    out += [f"## {n}. The year before the settlement, targets and today's funding uprated", ""]
    if b.source == "baseline_table":
        out += ["The settlement starts from today's funding uprated to the year before it (the first-year rule): "
                f"`A_0` is the allocation of {year0} (for a run starting in {first}; in general the year before the "
                "run's start year), and year 1's floors and ceilings are measured from it, not from the cash "
                f"baseline of {ct.base_year}.", "",
                "```",
                "A_0,i = apportion(CT_{year before}, F_i)",
                "T_y,i = apportion(CT_y, tau_y,i)            (target allocation: year y's own need shares)",
                "BU_y,i = apportion(CT_y, F_i)               (today's funding uprated: phasing starts from it)",
                "X_a = sum over i of X_i->a                  (X = A_0, T_y, BU_y at the run's level)",
                "```", "",
                "These three are apportioned among the lower-tier authorities `i` (their shares `tau_y,i`, `F_i` as "
                "in the steps above, before any roll-up) and summed to the run's areas, so an area's are its members' "
                "to the penny at every level. `X_i->a` is authority `i`'s pence in area `a`: all of them where it lies "
                "wholly in `a`; an authority split between areas has its pence split by its shares, "
                "`X_i->a = apportion(X_i, s_ia)` over its areas `a` in code order. At level `ltla` `X_a = X_i`. "
                "The transition (next steps) then applies to the areas of the run's level, the bodies that receive "
                "the money.", ""]
    else:
        out += ["Year by year, `k` = 1, 2, ..." + (" (each year the version as dated for it, step §by_year§)" if spec.years
                                               else "") + ":", "",
                "```",
                "A_0,a = round(100 * F_a)",
                "S_k,a = A_k-1,a + round(100 * RB_k,a) - round(100 * RA_k-1,a)   (restatement: a later year whose "
                "round is held; else S_k,a = A_k-1,a)",
                "G_k,a = the round's published growth (base_growth published, round held), else (1 + g_k) * (1 + r)",
                "CT_k = round(sum over a of S_k,a * G_k,a)",
                "T_k = apportion(round(100 * FST * sum over a of tau_k,a * G'_k,a), tau_k,a * G'_k,a)   (targets "
                "from the published fair shares total, round held)",
                "T_k = apportion(CT_k, tau_k,a)                   (targets from the control total)",
                "BU_k = apportion(CT_k, S_k,a * G_k,a)",
                "```", "",
                "`FST` is the sum over the round's ICBs of `nhs_icb_allocations.fair_shares_target` (pounds, the base "
                "year's published targets) and `G'` the target growth, what those targets grow by into the "
                "allocation year: each ICB's own growth `G'_k,a = G_k,a` (`target_growth = \"icb\"`), or the national "
                "growth `G'_k = (sum over a of RB_k,a * G_k,a) / (sum over a of RB_k,a)`, the same for every ICB "
                "(`target_growth = \"national\"`). Where a year's round is not held, targets come from the control "
                "total. " + targets_read(spec) + (" A dated section may change how from its year (step §by_year§)."
                                                   if spec.years else ""), "",
                "A chain of rounds therefore reproduces each published round (its restated baseline replaces the "
                "previous allocation's published value) and carries a scenario's own differences forward.", "",
                "NHS England allocates to ICBs: every quantity above and every step after it is computed for the "
                "ICBs (`a` an ICB), also in a run at level `nhs-region`, where each of a region's figures is the sum "
                "of its ICBs' (the ICB's `nhs_region_code` in `nhs_icb_allocations`; an ICB formed from others, "
                "theirs): pence added exactly, a region at a floor where any of its ICBs is (else at a ceiling "
                "where any is), and its years to target its last ICB's. Its need columns are its own practices' "
                "weighted populations.", ""]
    if spec.local_tax.basis == "grant":
        out += ["On this grant-basis version the total shared by need (`CT_y` above, in every use) is the grant "
                "total plus the equalised notional resources of step §local§: `CT_y + round(d_k * 100 * sum over a of "
                "NR_y,a)` (the year before uses year 1's), so that grants sum to the grant total.", ""]


def _section_transition(d: Doc) -> None:
    """Section transition of the method document (SECTIONS lists them in order)."""
    spec = d.spec
    b, t = spec.baseline, spec.transition
    out = d.out
    n = d.step("transition")
    rule_params = {name: getattr(t, name) for name in rule_numbers(t.rule)}  # the rule's own model says which
    out += [f"## {n}. Transition, year by year", "",
            "Each year starts from last year's allocation in whole pence, `A = A_{k-1}`. The growth factor is "
            + ("each area's own (step §start§) in the round's year and uniform after" if b.base_growth == "published"
               else "uniform, `G_k = CT_k / sum over a of A_{k-1},a`") + f". The rule `{t.rule}` gives the "
            "unconstrained allocation:", "",
            "```", _equation(t.rule, "rule"), "```", "",
            *[f"- `{k}` = {_q(q)}" for k, q in rule_params.items()],
            *[f"- `{k}` = {_q(q)} (plugin parameter)" for k, q in getattr(t, "parameters", {}).items()],
            ""]
    floor_txt = ("none" if t.floor is None else
                 f"`L_a = ceil(A_a * (1 + {_v(t.floor)})" + (" * (1 + g_k)" if t.floor_basis == "real" else "")
                 + " - 0.000001)` pence: " + _q(t.floor) + (", in real terms (grown by the index)"
                                                            if t.floor_basis == "real" else ", in cash"))
    ceil_txt = ("none" if t.ceiling is None else
                f"`U_a = floor(A_a * (1 + {_v(t.ceiling)}) + 0.000001)` pence: {_q(t.ceiling)}")
    out += ["Floors and ceilings bound the year-on-year change, each rounded so it is never missed by a fraction "
            "of a penny:", "", f"- Floor: {floor_txt}.", f"- Ceiling: {ceil_txt}."]
    if t.guarantee is not None:
        out += [f"- Guarantee ({t.guarantee.kind}, {t.guarantee.funding}; source: {t.guarantee.source}): "
                + ("the floor is at least `A_0,a`." if t.guarantee.funding == "within_total" else
                   "a payment `max(A_0,a - A_k,a, 0)` on top of the total, in `guarantee_payment`.")]
    out += [""]
    if t.budget_neutral:
        out += ["This rule is budget neutral (`transition.budget_neutral = true`): each year's allocations add to "
                "`CT_k` exactly, whatever the rule, floors and ceilings give. "
                "The floors, the ceilings and the total are solved together, exactly: the one number `lambda` with",
                "", "```",
                "sum over a of clip(u_a - lambda * h_a, L_a, U_a) = CT_k,   h_a = max(u_a - L_a, 0) (|u_a| without a "
                "floor)", "```", "",
                "so every area's headroom above its floor is scaled back by the same share (`transition_scale_back` "
                "in the manifest) and no floor is broken by the rescaling. If the floors alone cost more than `CT_k` "
                "(or the ceilings cannot spend it) the run stops and says by how much. Then money is rounded once: "
                "an area within 0.001p of its floor (ceiling) gets exactly `L_a` (`U_a`) and is reported as held "
                "there; the other areas share what is left, `CT_k - sum of the bound areas`, in proportion to their "
                "unrounded allocations, by `apportion`. So `sum of A_k = CT_k` to the penny.", ""]
    else:
        out += ["This rule is not budget neutral (`transition.budget_neutral = false`): `A_k,a = round(clip(u_a, L_a, U_a))`, rounded half away from zero to a whole penny (bound "
                "areas exactly at their bound); what it does not allocate, `CT_k - sum of A_k`, is released from the "
                "total and reported (`released_by_transition_gbp`), never spread.", ""]
        rules = [t] + [s.transition for s in spec.streams if s.transition is not None]
        added = [r for r in rules if getattr(r, "over_total", "refused") == "added"]
        out += [(("Where the rule gives more than `CT_k` (`over_total = added`, as NHS England's rounds, which are "
                 "not capped by the total), the excess is added: the release `CT_k - sum of A_k` is then negative. "
                 if added else "Where the rule would give more than `CT_k` the run stops (`over_total = refused`) "
                 "and says by how much. ") + ("Each stream's rule applies to that stream alone." if spec.streams else "")
                 ).rstrip(), ""]


def _section_local(d: Doc) -> None:
    """Section local of the method document (SECTIONS lists them in order)."""
    lt = d.spec.local_tax
    out = d.out
    n = d.step("local")
    out += [f"## {n}. Local resources and the grant", ""]
    if lt.rule == "none":
        out += ["This version deducts no local resources: `grant = A_k` (plus any guarantee payment).", ""]
    else:
        p0 = lt.price_year
        growth = lt.tax_base_growth
        projection = (f"`t_i,q = t_i * (1 + {exact(present(growth, 'local_tax.tax_base_growth').value)}) ^ (q - {p0})`: "
                      f"{_q(growth)}"
                      if lt.tax_base_projection == "fixed" else
                      f"`t_i,q = t_i * (t_i / t23_i) ^ (q - {p0})`, each authority's own growth from 2023-24 "
                      f"({_col('council_tax', 'tax_base_band_d_2023_24')}) to 2024-25")
        nbd = (f"`NB_{p0} = floor_penny(sum of t_i * D_i / sum of t_i)`, the tax-base-weighted national average"
               if not isinstance(lt.notional_band_d, Quantity) else f"`NB_{p0}` = {_q(lt.notional_band_d)}")
        prec = present(lt.precept, "local_tax.precept")
        out += [f"`local_tax.price_year` = {p0} is the year of the council tax data: Band D and the tax base move "
                "from it through every year to the settlement's last.", "",
                f"- `t_i` = {_col('council_tax', 'tax_base_band_d')}; `D_i` = {_col('council_tax', lt.band_d_column)}.",
                f"- Notional Band D: {nbd}; each later year `NB_q = floor_penny(NB_(q-1) * (1 + c + rho))` "
                f"(the referendum arithmetic: the core increase `c` = {_q(lt.core_increase)} and the adult social "
                f"care precept `rho` = {_q(prec.default_rate)} are added, not compounded, and Band D is rounded "
                "down to the penny every year).",
                f"- Precept rule `{prec.rule}` (cap {_q(prec.cap)}, above the cap: {prec.above_cap}): "
                + ("every authority at the default rate." if prec.rule == "uniform" else
                   "each authority's rate is the default rate times its need index (step §areas§, at lower tier), "
                   "capped.") + " An authority's own Band D moves the same way at its own rate; the difference is "
                "`precept_flex_yield`.",
                f"- Tax base: {projection}.",
                f"- Share of council tax funding the devolved services `sigma` = {_q(lt.share_for_devolved_services)}.",
                f"- Equalisation degree `e` = {_q(lt.equalisation)}"
                + (f", phased in: `d_k = e * min(k / {_v(lt.equalisation_phasing_years)}, 1)`"
                   if lt.equalisation_phasing_years is not None else "; `d_k = e` every year") + ".", "",
                "```",
                "NR_i,q = t_i,q * NB_q * sigma                (notional local resources, pounds; rolled up to NR_a)",
                "NT_k = apportion(round(100 * d_k * sum over a of NR_a,k), 100 * d_k * NR_a,k)   (notional local tax)",
                "grant_k,a = A_k,a + guarantee_k,a - NT_k,a",
                "```", "",
                f"Basis `{lt.basis}`: " + ("the control total is the spending envelope." if lt.basis == "spending" else
                                           "the control total is the grant total (see step §start§)."),
                f"Negative grants: `{lt.negative_grants}`" + (
                    " (a negative grant stands: the area pays in)." if lt.negative_grants == "tariff" else
                    " (grants below zero are raised to zero, every other grant's headroom scaled back exactly as "
                    "floors are, so the year's total is unchanged)." if lt.negative_grants == "floor_at_zero" else
                    f" (every grant at least `m` = {_q(lt.minimum_grant_per_head)} per resident, met by scaling "
                    "back the others' headroom exactly, total unchanged):"), ""]
        if lt.negative_grants != "tariff":
            low = ("M_a = 0" if lt.negative_grants == "floor_at_zero" else
                   "M_k,a = ceil(100 * m * P_k,a)                (pence: the minimum, rounded up to the penny)")
            out += ["```", "g_k,a = A_k,a + guarantee_k,a - NT_k,a      (the grant before the rule)", low,
                    "where any g_k,a < M_k,a: the one lambda with  sum over a of max(g_k,a - lambda * h_a, M_k,a) = "
                    "sum over a of g_k,a,   h_a = max(g_k,a - M_k,a, 0)",
                    "grant_k,a = max(g_k,a - lambda * h_a, M_k,a), rounded once as the transition's allocations are "
                    "(step §rounding§): areas at their minimum exactly M_k,a, the rest by apportion",
                    "```", "",
                    "`negative_grant_adjustment = grant - g` (it nets to 0 each year); a year where no grant is "
                    "below its minimum is unchanged.", ""]
        extras = []
        if lt.health_tax is not None:
            extras.append(f"a local health tax, basis `{lt.health_tax.basis}`, rate {_q(lt.health_tax.rate)}")
        if lt.business_rates_discount_per_head is not None:
            extras.append(f"a business-rates discount of {_q(lt.business_rates_discount_per_head)}")
        if extras:
            out += ["Local yields also include " + "; ".join(extras) + ". `local_yield = council tax yield + health "
                    "tax - business-rates discount`; `spending_power = grant + local_yield`.", ""]
        else:
            out += ["`local_yield = council tax yield (t_i,q * own Band D * sigma)`; `spending_power = grant + "
                    "local_yield`.", ""]


def _section_streams(d: Doc) -> None:
    """Section streams of the method document (SECTIONS lists them in order)."""
    spec = d.spec
    t = spec.transition
    out = d.out
    if spec.streams:
        n = d.step("streams")
        out += [f"## {n}. Funding streams", "",
                "Steps §need§-§transition§ run for each stream on its own: its own need (or the version's), its own today's funding "
                "(its baseline components, or its published round's stream), control total and transition. A stream's allocation is pooled with the "
                "others' before local tax, which applies to the pool (step §local§).", ""]
        for s in spec.streams:
            growth = (f"grows with stream `{s.linked_to}`: `CT_s,y = round(B_s * CT_{s.linked_to},y / "
                      f"B_{s.linked_to})`" if s.linked_to else
                      f"real growth {_q(s.real_growth)}" if s.real_growth else "the version's real growth")
            start = (f"components {', '.join(s.baseline_components)}" if s.baseline_components else
                     f"NHS England's published rounds of stream `{s.round_stream}` (`nhs_icb_allocations.stream`)")
            rule = s.transition or t
            own = "" if s.transition is None or s.transition.rule == t.rule else (
                f" (its own rule: `{EQUATIONS.get(rule.rule, 'a plugin rule')}`"
                + (f", combined {rule.combine}ly" if hasattr(rule, "combine") else "")
                + (f", convergence {rule.convergence}" if hasattr(rule, "convergence") else "") + ")")
            reads = "; ".join(f"{k.replace('_', ' ')} {getattr(s, k)}" for k in ("base_growth", "target_total",
                                                                               "target_shares") if getattr(s, k))
            out += [f"- **{s.name}** ({s.title}): {start}; "
                    f"need: {'its own (above)' if s.need else 'the version' + chr(39) + 's'}; {growth}; transition "
                    f"`{rule.rule}`{own}, {neutrality(rule)}" + (f"; reads its round with {reads}" if reads
                                                                  else "") + "."]
        out += ["", "The pooled figures of the version (allocations.parquet, need.parquet) are the streams' sums: "
                "`T_a`, `BU_a`, `A_a` and guarantee payments are the streams' own added in pence. Its need columns "
                "state the pool: `target_share_a = T_a / sum of T` (the share of the streams' summed targets), "
                "`need_weighted_population_a = target_share_a * sum of P`, `need_index_a = "
                "need_weighted_population_a / P_a`, no `age_weighted_population` (null); need.parquet holds the "
                "first settlement year's. An area is `transition_bound` \"floor\" (\"ceiling\", \"none\") where every "
                "stream is, else \"streams\" (streams.parquet has each stream's); its `years_to_target` is the "
                "latest of its streams' (empty where any stream's rule never gets there).", ""]


def _section_outputs(d: Doc) -> None:
    """Section outputs of the method document (SECTIONS lists them in order)."""
    spec = d.spec
    out = d.out
    n = d.step("outputs")
    out += outputs_section(spec, n)


def _section_rounding(d: Doc) -> None:
    """Section rounding of the method document (SECTIONS lists them in order)."""
    spec = d.spec
    b, lt, t = spec.baseline, spec.local_tax, spec.transition
    out = d.out
    n = d.step("rounding")
    published = b.source == "nhs_icb_allocations"
    points = (["the base total `B` and each year's control total `CT_y` (round half away from zero);",
               "`A_0`, targets `T_y` and today's funding uprated `BU_y`: `apportion` among authorities, then summed "
               "(step §start§);"] if not published else
              ["the start `A_0,a = round(100 * F_a)` and the restatements `round(100 * RB)`, `round(100 * RA)`; each "
               "year's control total `CT_k` (round half away from zero);",
               "targets `T_k` and today's funding uprated `BU_k`: `apportion` (step §start§);"])
    points += ["each year's allocation: " + ("bound areas exactly at their (whole-penny) bound, the rest by "
                                             "`apportion`;" if t.budget_neutral else
                                             "`clip(u, L, U)` rounded half away from zero, bound areas exactly at "
                                             "their bound;")]
    if lt.rule != "none":
        points += ["Band D, every year: down to the penny;",
                   "notional local tax `NT`, notional local resources, each yield (council tax, precept flexibility, "
                   "health tax, business-rates discount): `apportion(round(sum of x), x)` of the year's unrounded "
                   "amounts x in pence;"]
    points += ["real-terms grants: `apportion(round(sum of x), x)`, x = grant / D; grant per head: round half away "
               "from zero;", "the waterfall's need steps: `round(share x sum of T)` area by area, the last need step "
               "exactly `T_a` (step §outputs§);"]
    if spec.need.method == "age_cost_curve" and spec.cohorts:
        points += ["cohorts: `apportion(grant, cohort shares)` per area and year."]
    out += [f"## {n}. Rounding points and `apportion`", "",
            "Money is whole pence (int64); each published figure is rounded once:", "",
            *[f"{i}. {p}" for i, p in enumerate(points, 1)], "",
            "`apportion(T, w)`: each part is `floor(T * w_a / sum of w)` pence; the pennies still missing from `T` "
            "go one each to the parts with the largest fractional remainders, ties to the earlier area code. The "
            "parts sum to `T` exactly. It is the one rule every money split follows."
            + (" Convergence aims at the whole-penny targets; the control total grows from the unrounded base sum, "
               "so `B` may differ by a few pence from the sum of the areas' rounded baselines." if not published
               else ""), ""]


def _section_reconciliation(d: Doc) -> None:
    """Section reconciliation of the method document (SECTIONS lists them in order)."""
    spec = d.spec
    lt = spec.local_tax
    out = d.out
    n = d.step()
    out += [f"## {n}. What the reconciliation checks", "",
            "Every run checks, per year and exactly in pence (`reconciliation.parquet`; a run whose check fails "
            "writes nothing):", "",
            "- sum of allocation = control total - released by a non-neutral rule;",
            "- sum of target allocation = target total; sum of today's funding uprated = control total;",
            "- sum of grant = allocations + guarantee payments - notional local tax;",
            "- total shortfall below floors = 0; total excess above ceilings = 0;",
            "- negative-grant adjustments net to 0; spending power = grants + local yield"
            + ("; grants = the grant control total" if lt.basis == "grant" else "") + ";"]
    if spec.streams:
        out += ["- each stream's allocations = its own control total (parity: none funds another); a linked stream's "
                "control total grows exactly with its link;"]
    out += ["- each area's waterfall steps add to its grant" + ("; the cohorts add to the grant." if
            spec.need.method == "age_cost_curve" and spec.cohorts else "."), ""]


def _section_numbers(d: Doc) -> None:
    """Section numbers of the method document (SECTIONS lists them in order)."""
    needs, spec = d.needs, d.spec
    out = d.out
    n = d.step()
    if spec.years:
        d.num["by_year"] = n
        out += [f"## {n}. Values by year", "",
                "These sections of the version apply from their year on (later ones on top of earlier ones); the "
                "values above are the version's before the first of them.", "",
                "| from | key | value | source |", "|---|---|---|---|"]
        for year, section in sorted(spec.years.items(), key=lambda kv: FinancialYear.parse(kv[0])):
            for key, value in flat_section(section):
                v = value.get("value") if isinstance(value, dict) else value
                src = value.get("source", "") if isinstance(value, dict) else ""
                out.append(f"| {year} | `{key}` | {v} | {src} |")
        out.append("")
        n = d.step()
    out += [f"## {n}. Every number of the version", "", "| parameter | value | unit | what it is | source |",
            "|---|---|---|---|---|"]
    out += [f"| `{path}` | {exact(q.value)} | {q.unit} | {q.description or ''} | {q.source} |"
            for path, q in iter_quantities(spec)]
    curves = any(need.age_cost_curve is not None for _, need in needs)
    out += ["", ("Age band weights are in step §need§, index" if curves else "Index") + " growth by year in step "
            "§control_total§. Sources:", ""]
    out += [f"- `{s.id}`: {s.title}, {s.publisher}" + (f" ({s.url})" if s.url else "") + (f". {s.note}" if s.note
                                                                                           else "")
            for s in spec.sources]
    out += [""]


SECTIONS = (_section_need, _section_areas, _section_funding, _section_control_total, _section_start,
            _section_transition, _section_local, _section_streams, _section_outputs, _section_rounding,
            _section_reconciliation, _section_numbers)  # the document's steps, in order
