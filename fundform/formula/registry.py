"""Finding, reading and checking formula versions (``formulas/*.toml``)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from fundform.base.errors import SpecError
from fundform.base.paths import formulas_dir
from fundform.base.toml import parse_toml
from fundform.formula.components import INDICATOR_TRANSFORMS, TRANSITION_RULES, load_plugins
from fundform.formula.rules import loc_path
from fundform.formula.spec import FormulaSpec, iter_needs
from fundform.inputs.tables import CONTRACTS, INDICATOR_NAME, INDICATOR_PREFIX


@dataclass(frozen=True)
class LoadedFormula:
    spec: FormulaSpec
    path: Path
    sha256: str


def format_validation(path: Path, err: ValidationError) -> str:
    lines = [f"{path}: invalid formula version ({err.error_count()} problem(s))"]
    for e in err.errors():
        loc = loc_path(e["loc"]) or "(top level)"
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key (not part of the formula schema)"
        elif e["type"] in ("model_type", "dict_type") and isinstance(e.get("input"), (int, float)):
            msg += ("; a number the version does not state yet needs its unit and source: "
                    "{ value = ..., unit = \"...\", source = \"assumption: <why>\" }")
        lines.append(f"  - {loc}: {msg}")
    return "\n".join(lines)


def check_references(spec: FormulaSpec, path: Path) -> None:
    """What pydantic cannot know: component names and input columns."""
    load_plugins()
    problems = []
    for prefix, need in iter_needs(spec):
        for ind in need.indicators:
            where = f"{prefix}.indicators.{ind.name}"
            if ind.transform not in INDICATOR_TRANSFORMS:
                problems.append(f"{where}.transform: unknown component '{ind.transform}' "
                                f"(known: {', '.join(sorted(INDICATOR_TRANSFORMS))})")
            if ind.table.startswith(INDICATOR_PREFIX):  # the dataset's own indicator table: checked when it loads
                if not INDICATOR_NAME.match(ind.table.removeprefix(INDICATOR_PREFIX)):
                    problems.append(f"{where}.table: '{ind.table}' is not indicators/<name> (lower case, digits, _)")
                continue
            contract = CONTRACTS.get(ind.table)
            if contract is None:
                problems.append(f"{where}.table: unknown input table '{ind.table}' (known: {', '.join(CONTRACTS)}, "
                                f"or indicators/<name> for a table of your own)")
            elif ind.column not in {c.name for c in contract.columns if c.dtype in ('int', 'float')}:
                problems.append(f"{where}.column: '{ind.column}' is not a numeric column of table '{ind.table}'")
    rules = [("transition", spec.transition)] + [(f"streams.{st.name}.transition", st.transition)
                                                  for st in spec.streams if st.transition is not None]
    for where, rule in rules:
        if rule.rule not in TRANSITION_RULES:
            problems.append(f"{where}.rule: unknown component '{rule.rule}' "
                            f"(known: {', '.join(sorted(TRANSITION_RULES))})")
    # a column a version names is typed: it must be a column of the table in the unit the formula reads
    wp_cols = {c.name for c in CONTRACTS["practice_weighted_population"].columns if c.name.startswith("wp_")}
    for prefix, need in iter_needs(spec):
        if need.method == "practice_weighted_population" and need.weighted_population_column not in wp_cols:
            problems.append(f"{prefix}.weighted_population_column: '{need.weighted_population_column}' is not one "
                            f"of {', '.join(sorted(wp_cols))}")
    band_d = {c.name: c for c in CONTRACTS["council_tax"].columns}
    money = sorted(n for n, c in band_d.items() if c.dtype in ("int", "float") and c.unit.startswith("GBP per Band D"))
    col = band_d.get(spec.local_tax.band_d_column)
    if col is None:
        problems.append(f"local_tax.band_d_column: '{spec.local_tax.band_d_column}' is not a council_tax column "
                        f"(expected one of {', '.join(money)})")
    elif col.name not in money:
        problems.append(f"local_tax.band_d_column: '{col.name}' is {col.unit} ({col.dtype}), not a Band D amount in "
                        f"GBP per Band D dwelling (expected one of {', '.join(money)})")
    if problems:
        raise SpecError(f"{path}: invalid formula version ({len(problems)} problem(s))\n"
                        + "\n".join(f"  - {p}" for p in problems))


def load_formula_file(path: Path) -> LoadedFormula:
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"{path}: formula file not found")
    raw = path.read_bytes()
    data = parse_toml(raw, path, "TOML formula file")
    if "extends" in data:
        raise SpecError(f"{path}: a scenario (extends = {data['extends']!r}), not a formula version: use it as "
                        "--formula FILE, or `fundform formulas validate` it")
    try:
        spec = FormulaSpec.model_validate(data)
    except ValidationError as e:
        raise SpecError(format_validation(path, e)) from e
    except (TypeError, ValueError, KeyError, IndexError, AttributeError) as e:  # a validator meeting odd input
        raise SpecError(f"{path}: invalid formula version ({type(e).__name__}: {e})") from None
    check_references(spec, path)
    return LoadedFormula(spec, path, hashlib.sha256(raw).hexdigest())


def available_formulas(directory: Path | None = None) -> dict[str, Path]:
    directory = directory or formulas_dir()
    if not directory.is_dir():
        raise SpecError(f"formula folder not found: {directory}. The formula versions ship beside the package in its "
                        "checkout: install it with `pip install -e .` (as `make run` does), or set "
                        "FUNDFORM_FORMULAS_DIR")
    return {p.stem: p for p in sorted(directory.glob("*.toml"))}


def shipped_scenarios(directory: Path | None = None) -> dict[str, Path]:
    """The scenarios shipped beside the versions (formulas/scenarios/NAME.toml), by name: `--formula NAME` finds one
    where no version has that id."""
    folder = (directory or formulas_dir()) / "scenarios"
    return {p.stem: p for p in sorted(folder.glob("*.toml"))} if folder.is_dir() else {}


def load_formula(ref: str, directory: Path | None = None) -> LoadedFormula:
    """A formula by id (a file formulas/<id>.toml) or by path."""
    candidate = Path(ref)
    if candidate.suffix == ".toml" or candidate.exists():
        return load_formula_file(candidate)
    known = available_formulas(directory)
    if ref not in known:
        raise SpecError(f"unknown formula '{ref}' (available: {', '.join(known) or 'none'})")
    loaded = load_formula_file(known[ref])
    if loaded.spec.id != ref:
        raise SpecError(f"{known[ref]}: id '{loaded.spec.id}' does not match its file name '{ref}'")
    return loaded
