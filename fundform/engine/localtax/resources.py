"""Local resources per area and year: notional council tax, what each area actually raises, and local taxes.

Everything here is computed per lower-tier authority (the billing authority, where council tax is set) and year,
then summed to the output level. Band D moves by the referendum arithmetic: each year's Band D is last year's times
(1 + core increase + adult social care precept), the precept added, not compounded, rounded down to the penny.

- notional_local_resources N: tax base x notional Band D x the share of council tax funding the devolved services;
  the notional Band D starts at the national average (tax-base weighted, to the penny) and moves by the national
  core increase and the version's default precept. The equalisation deducts e x N (e may phase in).
- council_tax_yield: tax base x the area's own Band D (moved by its own precept rate) x the same share: what the area
  actually raises for the devolved services. What it raises above N it keeps (no clawback).
- precept_flex_yield: the part of council_tax_yield due to the area's precept rate differing from the default.
- health_tax_yield and business_rates_discount: the optional local health tax, and the cost of business-rates
  discounts for qualifying employers, which reduces local resources.
The 2024-25 returns report only that year's adult social care precept increment, not the cumulative precept, so the
engine never uses the precept as a level: it moves Band D, the whole of which funds the services in proportion.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from fundform.base.errors import InvalidInput, Problem, present
from fundform.base.numeric import fixed_sum
from fundform.base.years import FinancialYear, year_text
from fundform.engine.geography import roll_up
from fundform.formula.quantities import Quantity
from fundform.formula.spec import LocalTax
from fundform.inputs.contracts import Column, TableContract, row_labels
from fundform.inputs.dataset import Dataset
from fundform.inputs.files import check_user_file

PRECEPT_RATES = TableContract(
    name="precept rates", description="Per-area adult social care precept rates (share of Band D per year).",
    source="the user", vintage="-",
    columns=(Column("area_code", "str", "code", "lower-tier authority"),
             Column("rate", "float", "share of Band D per year", "precept rate; 0 opts out", min=0, max=1)),
    key=("area_code",), covers_every_area=False,
)
LOCAL_BASES = TableContract(
    name="local bases", description="Per-area bases for local taxes the bundled data does not hold.",
    source="the user", vintage="-",
    columns=(Column("area_code", "str", "code", "lower-tier authority"),
             Column("income_base", "float", "GBP per year", "taxable income base for an income-rate health tax",
                    min=0, required=False),
             Column("business_rates_discount", "float", "GBP per year", "cost of business-rates discounts for "
                    "qualifying employers", min=0, required=False)),
    key=("area_code",), covers_every_area=False,
)
RESOURCE_COLUMNS = ("notional_local_resources", "council_tax_yield", "precept_flex_yield", "health_tax_yield",
                    "business_rates_discount")


@dataclass
class LocalResources:
    """Per area of the output level (rows, sorted by code) and year (columns follow the settlement years), GBP."""

    frame: pl.DataFrame  # area_code, financial_year, RESOURCE_COLUMNS
    notional_band_d: dict[str, float]
    policies: dict = field(default_factory=dict)
    applies: bool = True  # False: the version has no local tax (every figure is zero, for any area)
    _arrays: dict = field(default_factory=dict, repr=False, compare=False)  # what array() gave, by its arguments

    def array(self, column: str, codes: list[str], years: list[str]) -> np.ndarray:
        """(years, areas) in the given orders; an area absent from the frame is an error, never a zero (unless the
        version has no local tax at all: then every area's is zero, also on areas the council tax data lacks).
        Read-only: the same arrays serve every scenario and every request for them."""
        key = (column, tuple(codes), tuple(years))
        if key not in self._arrays:
            arr = self._array(column, codes, years)
            arr.setflags(write=False)
            self._arrays[key] = arr
        return self._arrays[key]

    def _array(self, column: str, codes: list[str], years: list[str]) -> np.ndarray:
        if not self.applies:
            return np.zeros((len(years), len(codes)))
        wide = self.frame.pivot(on="financial_year", index="area_code", values=column)
        got = pl.DataFrame({"area_code": codes}).join(wide, on="area_code", how="left", maintain_order="left")
        arr = got.select(years).to_numpy().T
        if np.isnan(arr).any():
            missing = got.filter(pl.any_horizontal(pl.col(years).is_null()))["area_code"].to_list()
            raise InvalidInput([Problem("council_tax", "area_code", "areas without local resources",
                                        "every area of the output level", tuple(missing[:50]))])
        return arr


def equalisation_degree(rule: LocalTax, n_years: int, e: np.ndarray | float | None = None) -> np.ndarray:
    """The equalisation degree in each settlement year: e, phased in over equalisation_phasing_years if the version
    says so. With `e` an array (S,), one row per scenario (S, years): a run is the case of one."""
    e = present(rule.equalisation, "local_tax.equalisation").value if e is None else e
    k = np.arange(1, n_years + 1)
    phase = (np.minimum(k / rule.equalisation_phasing_years.value, 1.0) if rule.equalisation_phasing_years
             is not None else np.ones(n_years))
    return np.asarray(e)[..., None] * phase if np.ndim(e) else e * phase


def floor_penny(x: np.ndarray) -> np.ndarray:
    """Round down to the penny, as Band D is; the 1e-9 absorbs float noise in exact products."""
    return np.floor(np.asarray(x) * 100 + 1e-9) / 100


def referendum_band_d(band_d: np.ndarray | float, core: float, precept: np.ndarray | float) -> np.ndarray:
    """Next year's Band D under the referendum principles: core increase plus precept, added, rounded down."""
    return floor_penny(band_d * (1.0 + core + np.asarray(precept)))


def read_user_table(path: Path, contract: TableContract, codes: set[str]) -> pl.DataFrame:
    path = Path(path)
    frame, problems = check_user_file(path, contract)
    if frame is not None:
        unknown = frame.with_row_index("__row").filter(~pl.col("area_code").is_in(list(codes)))
        if unknown.height:
            problems.append(Problem(path.name, "area_code", f"{unknown.height} unknown authority code(s)",
                                    "lower-tier authority codes of the dataset", row_labels(unknown, ["area_code"])))
    if problems or frame is None:
        raise InvalidInput(problems, str(path))
    return frame


def precept_rates(rule: LocalTax, ltla: pl.DataFrame, need_index: pl.DataFrame | None, user: pl.DataFrame | None,
                  file: str) -> tuple[np.ndarray, list[str]]:
    """Per-authority precept rate, and the authorities whose requested rate was capped."""
    p = present(rule.precept, "local_tax.precept")
    rates = np.full(ltla.height, p.default_rate.value)
    if p.rule == "tied_to_need":
        if need_index is None:
            raise InvalidInput([Problem("formula", "local_tax.precept.rule", "tied_to_need needs a need index per "
                                        "authority", "a version whose need method is age_cost_curve")])
        idx = ltla.select("area_code").join(need_index, on="area_code", how="left")["need_index"].to_numpy()
        rates = p.default_rate.value * idx
    if user is not None:
        given = ltla.select("area_code").join(user, on="area_code", how="left")["rate"].to_numpy()
        rates = np.where(np.isnan(given.astype(float)), rates, given)
    over = rates > p.cap.value + 1e-12
    codes = ltla["area_code"].filter(pl.Series(over)).to_list()
    if over.any() and p.above_cap == "error":
        raise InvalidInput([Problem(file, "rate", f"{len(codes)} precept rate(s) above the version's cap",
                                    f"rates <= {p.cap.value:g} ({p.cap.source})", tuple(codes[:50]))])
    return np.minimum(rates, p.cap.value), codes


def local_resources(data: Dataset, rule: LocalTax, level: str, years: list[str], *,
                    need_index: pl.DataFrame | None = None, precept_file: Path | None = None,
                    bases_file: Path | None = None) -> LocalResources:
    """Local resources per area of `level` and year. Years are the settlement's; Band D and the tax base move from
    the version's price year (the council tax data's year) through every year to the last.

    Over 80 lines: the Band D recurrence runs year by year over every yield at once, one loop whose parts share its
    state."""
    ct = data["council_tax"].sort("area_code")
    codes = set(ct["area_code"].to_list())
    n = ct.height
    zero = {c: np.zeros((len(years), n)) for c in RESOURCE_COLUMNS}
    policies: dict = {}
    nbd_path: dict[str, float] = {}
    if rule.rule == "notional_council_tax":
        p0 = FinancialYear.parse(rule.price_year).start
        last = FinancialYear.parse(years[-1]).start
        share = present(rule.share_for_devolved_services, "local_tax.share_for_devolved_services").value
        tb0 = ct["tax_base_band_d"].to_numpy()
        if rule.tax_base_projection == "fixed":
            g = np.full(n, present(rule.tax_base_growth, "local_tax.tax_base_growth").value)
        else:  # each authority's own growth over the years the data holds (2023-24 to 2024-25)
            g = tb0 / ct["tax_base_band_d_2023_24"].to_numpy() - 1.0
        user_rates = read_user_table(precept_file, PRECEPT_RATES, codes) if precept_file else None
        rates, capped = precept_rates(rule, ct, need_index, user_rates, precept_file.name if precept_file else "formula")
        policies["precept_capped"] = capped
        bases = read_user_table(bases_file, LOCAL_BASES, codes) if bases_file else None
        if isinstance(rule.notional_band_d, Quantity):
            nbd = rule.notional_band_d.value
        else:
            avg = ct.select(fixed_sum(pl.col("tax_base_band_d") * pl.col(rule.band_d_column))
                            / fixed_sum(pl.col("tax_base_band_d"))).item()
            nbd = float(floor_penny(avg))
        policies["notional_band_d_price_year_gbp"] = nbd
        own = ct[rule.band_d_column].to_numpy()
        default = own.copy()
        by_area = data["population"].group_by("area_code").agg(pl.col("population").sum()).sort("area_code")
        pop = ct.select("area_code").join(by_area, on="area_code", how="left")["population"].to_numpy()
        out: dict[str, list[np.ndarray]] = {c: [] for c in RESOURCE_COLUMNS}
        core = present(rule.core_increase, "local_tax.core_increase").value
        default_rate = present(rule.precept, "local_tax.precept").default_rate.value
        for year in range(p0 + 1, last + 1):  # Band D moves year by year: a recurrence, vectorised over areas
            nbd = float(referendum_band_d(nbd, core, default_rate))
            own = referendum_band_d(own, core, rates)
            default = referendum_band_d(default, core, default_rate)
            fy = year_text(year)
            if fy not in years:
                continue
            nbd_path[fy] = nbd
            tb = tb0 * (1.0 + g) ** (year - p0)
            out["notional_local_resources"].append(tb * nbd * share)
            out["council_tax_yield"].append(tb * own * share)
            out["precept_flex_yield"].append(tb * (own - default) * share)
            ht: np.ndarray = np.zeros(n)
            if rule.health_tax is not None:
                h = rule.health_tax
                if h.basis == "per_head":
                    ht = h.rate.value * pop
                elif h.basis == "per_band_d":
                    ht = h.rate.value * tb
                else:
                    if bases is None or "income_base" not in bases.columns:
                        raise InvalidInput([Problem("--local-bases", "income_base", "no income base given",
                                                    "a CSV with area_code, income_base for an income-rate health tax")])
                    inc = ct.select("area_code").join(bases, on="area_code", how="left")["income_base"]
                    if inc.null_count():
                        raise InvalidInput([Problem(bases_file.name if bases_file else "--local-bases", "income_base", "authorities without an income "
                                                    "base", "every authority", tuple(ct["area_code"].filter(
                                                        inc.is_null()).to_list()[:50]))])
                    ht = h.rate.value * inc.to_numpy()
            out["health_tax_yield"].append(ht)
            disc = np.zeros(n)
            if rule.business_rates_discount_per_head is not None:
                disc = rule.business_rates_discount_per_head.value * pop
            if bases is not None and "business_rates_discount" in bases.columns:
                given = ct.select("area_code").join(bases, on="area_code", how="left")["business_rates_discount"]
                disc = disc + given.fill_null(0.0).to_numpy()  # absent means no discount scheme in that area
            out["business_rates_discount"].append(disc)
        zero = {c: np.stack(v) for c, v in out.items()}
    long = pl.DataFrame({
        "area_code": np.tile(ct["area_code"].to_numpy(), len(years)),
        "financial_year": np.repeat(years, n),
        **{c: zero[c].reshape(-1) for c in RESOURCE_COLUMNS},
    })
    rolled = roll_up(long.lazy(), data.lazy("area_lookup"), level, list(RESOURCE_COLUMNS), by=["financial_year"])
    return LocalResources(rolled.collect(), nbd_path, policies, applies=rule.rule != "none")
