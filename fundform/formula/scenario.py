"""Scenarios: small overrides of a formula version, never copies of it.

A scenario file is TOML with ``extends = "<formula id>"`` (plus optional ``title`` and ``description``) and only the
keys it changes, in the same shape as the formula file. ``--set key.path=value`` does the same from the command
line. Paths are dotted; an item of a named list (``need.indicators``) is addressed by its name, and a number given
for a ``{value, unit, source}`` parameter sets its value (the unit stays; the source becomes the override's origin).

Overrides are applied to the version's data, then the result is validated as a whole, so a scenario can never run
what a formula file could not. Each override is recorded (path, old value, new value, origin) in the manifest.
Index series hold growth by year, so overriding one year's growth changes that year and carries through the levels
of later years; the other years keep their own growth (no year's index is frozen by an override).
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from fundform.base.errors import Problem, SpecError
from fundform.base.toml import read_toml  # noqa: F401  (scenarios, designs and cases read TOML here)
from fundform.formula.registry import (
    LoadedFormula,
    available_formulas,
    check_references,
    format_validation,
    shipped_scenarios,
)
from fundform.formula.rules import rule_numbers
from fundform.formula.spec import FormulaSpec

if TYPE_CHECKING:
    from fundform.inputs.contracts import TableContract

SCENARIO_KEYS = {"extends", "title", "description", "replace_streams"}

# the titles of a published round's streams, for the stream a version without [[streams]] pools implicitly
ROUND_STREAM_TITLES = {"core": "Core services", "primary_medical_care": "Primary medical care",
                       "other_primary_care": "Other primary care", "running_costs": "Running costs",
                       "specialised": "Specialised services",
                       "pharmacy_optometry_dental": "Pharmacy, optometry and dental"}


@dataclass(frozen=True)
class Override:
    path: str
    old: Any
    new: Any
    origin: str

    def as_dict(self) -> dict:
        return {"path": self.path, "old": self.old, "new": self.new, "origin": self.origin}


@dataclass(frozen=True)
class ResolvedFormula(LoadedFormula):
    """A formula version with any scenario and --set overrides applied and validated."""

    overrides: tuple[Override, ...] = field(default=())
    scenario: str | None = None
    scenario_title: str | None = None  # the scenario file's own title, where it gives one
    scenario_description: str | None = None  # and its description

    @property
    def name(self) -> str:
        """What the user runs: the scenario's name (its file's stem) or the version's id."""
        return Path(self.scenario).stem if self.scenario else self.spec.id

    @property
    def resolved_sha256(self) -> str:
        """Hash of the base file and the overrides: what identifies the formula actually run."""
        payload = json.dumps({"base": self.sha256, "overrides": [o.as_dict() for o in self.overrides]},
                             sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()


def _key_fields(item: Any) -> tuple[str, ...] | None:
    """The fields that address a list item in a dotted path: its name, a source's id, or an age band's range."""
    if isinstance(item, dict):
        for fields in (("name",), ("id",), ("from", "to")):
            if all(f in item for f in fields):
                return fields
    return None


def item_key(item: Any) -> str | None:
    """How a list item is addressed in a dotted path: 'deprivation', 'ons-mye-2023', or an age band '85-90'."""
    fields = _key_fields(item)
    return None if fields is None else "-".join(str(item[f]) for f in fields)


def _keyed(items: list) -> bool:
    return bool(items) and all(item_key(i) is not None for i in items)


def _all_named(items: list) -> bool:
    return bool(items) and all(isinstance(i, dict) and "name" in i for i in items)


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted path -> leaf value; list items are addressed by name, age bands by their range."""
    out: dict[str, Any] = {}
    if isinstance(data, dict):
        for k, v in data.items():
            out.update(flatten(v, f"{prefix}{k}."))
    elif isinstance(data, list) and _keyed(data):
        for item in data:
            fields = _key_fields(item) or ()
            out.update(flatten({k: v for k, v in item.items() if k not in fields}, f"{prefix}{item_key(item)}."))
    else:
        out[prefix[:-1]] = data
    return out


def _child(node: Any, key: str, path: str, create: bool) -> Any:
    if isinstance(node, dict):
        if key not in node:
            if not create:
                raise SpecError(f"override {path}: no key '{key}' here (known: {', '.join(map(str, node))})")
            node[key] = {}
        return node[key]
    if isinstance(node, list) and _keyed(node):
        for item in node:
            if item_key(item) == key:
                return item
        raise SpecError(f"override {path}: no item '{key}' here (known: {', '.join(str(item_key(i)) for i in node)})")
    raise SpecError(f"override {path}: '{key}' is below a value, not a table")


def _override_source(origin: str) -> str:
    return f"assumption: value set by {origin}"


def set_path(data: dict, path: str, value: Any, origin: str = "--set") -> Any:
    """Set a dotted path in the formula data; returns the old value. A quantity given a bare number takes it as its
    value, and its source becomes the override's origin."""
    parts = path.split(".")
    node = data
    for key in parts[:-1]:
        node = _child(node, key, path, create=False)
    last = parts[-1]
    if isinstance(node, list) and _keyed(node):
        node = _child(node, last, path, create=False)
        last = "value"
    if not isinstance(node, dict):
        raise SpecError(f"override {path}: the parent is not a table")
    current = node.get(last)
    if last == "rule" and len(parts) >= 2 and parts[-2] == "transition":  # a new rule replaces the old one's numbers
        _switch_rule(node, {"rule": value})
    if isinstance(current, dict) and "value" in current and not isinstance(value, dict):
        old = current["value"]
        current["value"] = value
        current["source"] = _override_source(origin)
        return old
    node[last] = value
    return current


def _switch_rule(base: dict, patch: dict) -> None:
    """A scenario that changes a transition table's rule replaces the rule: the numbers of the rule it leaves
    (one model per rule) go with it; what every rule has (floor, ceiling, guarantee) stays."""
    old = base.get("rule")
    if "rule" in patch and old is not None and patch["rule"] != old:
        for k in (*rule_numbers(old), "reduction_of", "parameters"):
            if k not in patch:
                base.pop(k, None)
        from typing import get_args

        from fundform.formula.rules import RULES

        model = RULES.get(patch["rule"])  # a rule whose model fixes budget neutrality drops the old rule's choice
        field = model.model_fields.get("budget_neutral") if model is not None else None
        if (field is None or get_args(field.annotation) == (True,)) and "budget_neutral" not in patch:
            base.pop("budget_neutral", None)


def merge(base: dict, patch: dict, origin: str, prefix: str = "") -> None:
    """Deep-merge a scenario's tables into the formula data (named lists merged by name)."""
    if prefix == "transition." or prefix.endswith(".transition."):
        _switch_rule(base, patch)
    for k, v in patch.items():
        path = f"{prefix}{k}"
        if k not in base:  # a key the base file leaves at its default; the schema check rejects unknown ones
            base[k] = v
            continue
        is_quantity = isinstance(base[k], dict) and "value" in base[k] and "unit" in base[k]
        if is_quantity and isinstance(v, dict) and "unit" in v:  # a whole number (value, unit, words): replaces
            base[k] = {**v, **({} if "source" in v else {"source": _override_source(origin)})}
        elif isinstance(v, dict) and isinstance(base[k], dict):
            merge(base[k], v, origin, path + ".")
            if is_quantity and "source" not in v:
                base[k]["source"] = _override_source(origin)
        elif isinstance(v, list) and isinstance(base[k], list) and _all_named(v) and _all_named(base[k]):
            merge_named(base, k, v, origin, path)
        elif isinstance(v, dict) and isinstance(base[k], list) and _keyed(base[k]):
            # a table keyed like a dotted path: [need.age_cost_curve.bands."85-90"] or [need.indicators.deprivation]
            by_key = {item_key(i): i for i in base[k]}
            for key, sub in v.items():
                if key not in by_key or not isinstance(sub, dict):
                    raise SpecError(f"scenario key {path}.{key}: no item '{key}' here (known: {', '.join(map(str, by_key))})")
                merge(by_key[key], sub, origin, f"{path}.{key}.")
        elif is_quantity:
            base[k]["value"] = v
            base[k]["source"] = _override_source(origin)
        else:
            base[k] = v


def implicit_stream(data: dict) -> dict:
    """The one stream a version without [[streams]] pools: its own need, today's funding, growth and rule. A
    scenario that adds streams to such a version adds them to this one (named by the round's stream, `core`, or
    `all` for the baseline table's components), so the version's own money is never dropped unnamed."""
    baseline = data.get("baseline") or {}
    if baseline.get("source") == "nhs_icb_allocations":
        name = baseline.get("round_stream") or "core"
        return {"name": name, "title": ROUND_STREAM_TITLES.get(name, name.replace("_", " ").capitalize()),
                "round_stream": name}
    components = baseline.get("components") or ["nhs_core", "nhs_primary_medical", "adult_social_care",
                                                 "public_health"]
    return {"name": "all", "title": "Today's funding, every component the version pools",
            "baseline_components": list(components)}


def compose_streams(data: dict, patch: dict, where: str) -> None:
    """How a scenario's [[streams]] meet its base's, one meaning, stated: they extend the base's streams (a base
    without [[streams]] has one, `implicit_stream`), item by item (`remove = true` drops one by name), unless the
    scenario says `replace_streams = true`, when its streams are the whole list. Applied to `data` before the
    patch's other keys are merged; `replace_streams` leaves the patch."""
    replace = patch.pop("replace_streams", None)
    if replace not in (None, True, False):
        raise SpecError(f"{where}: replace_streams = true (the scenario's [[streams]] are the whole list) or false "
                        f"(they extend the base's), got {replace!r}")
    if "streams" not in patch:
        if replace:
            raise SpecError(f"{where}: replace_streams = true but the scenario lists no [[streams]] to replace "
                            "the base's with")
        return
    if not isinstance(patch["streams"], list):
        return  # the shape check in merge names it
    if replace:
        keep = {i.get("name") for i in patch["streams"] if isinstance(i, dict)}
        data["streams"] = []
        for section in (data.get("years") or {}).values():  # the dated sections of streams no longer there go too
            if isinstance(section, dict) and isinstance(section.get("streams"), dict):
                for name in [n for n in section["streams"] if n not in keep]:
                    section["streams"].pop(name)
        patch["streams"] = [{k: v for k, v in i.items() if k != "replace"} if isinstance(i, dict) else i
                            for i in patch["streams"]]
    elif not data.get("streams"):
        data["streams"] = [implicit_stream(data)]


def merge_named(base: dict, k: str, items: list[dict], origin: str, path: str) -> None:
    """A scenario's items of a named list (need.indicators, streams), each by its name: an item the base has is
    merged into it, or replaces it whole (`replace = true`), or is removed (`remove = true`); a new item is added
    whole (an indicator with its `table`, a stream with its `title`). A name the base does not have is otherwise an
    error naming the ones it has. A removed stream's dated sections (years.Y.streams.NAME) go with it."""
    by_name = {i["name"]: i for i in base[k]}
    for item in items:
        name, remove, replace = item["name"], item.get("remove"), item.get("replace")
        if remove not in (None, True) or replace not in (None, True) or (remove and replace):
            raise SpecError(f"scenario key {path}.{name}: remove = true or replace = true (one of them), got "
                            f"remove = {remove!r}, replace = {replace!r}")
        body = {kk: vv for kk, vv in item.items() if kk not in ("remove", "replace")}
        new = name not in by_name and ("table" in item or "title" in item) and not remove
        if name not in by_name and not new:
            what = "remove" if remove else "change"
            raise SpecError(f"scenario key {path}: no item named '{name}' to {what} (known: {', '.join(by_name)}; "
                            "a new indicator gives its table, column, transform and elasticity, a new stream its "
                            "title and its round_stream or baseline_components)")
        if new:
            base[k].append(copy.deepcopy(body))
        elif remove:
            base[k].remove(by_name.pop(name))
            if k == "streams":
                for section in base.get("years", {}).values():
                    if isinstance(section.get("streams"), dict):
                        section["streams"].pop(name, None)
        elif replace:
            base[k][base[k].index(by_name[name])] = by_name[name] = copy.deepcopy(body)
        else:
            merge(by_name[name], {kk: vv for kk, vv in body.items() if kk != "name"}, origin, f"{path}.{name}.")


def parse_set(expr: str) -> tuple[str, Any]:
    if "=" not in expr:
        raise SpecError(f"--set '{expr}': expected key.path=value")
    path, raw = expr.split("=", 1)
    path, raw = path.strip(), raw.strip()
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw  # a bare word: a string
    return path, value


def index_file_contract() -> TableContract:
    """The contract of a user's index CSV (built when one is read: reading a version imports no table library)."""
    from fundform.inputs.contracts import Column, TableContract

    return TableContract(
        name="index file",
        description="An index series: growth by financial year, with its source and vintage on every row.",
        source="the user", vintage="-",
        columns=(Column("financial_year", "str", "financial year", "year the growth is into, e.g. 2027/28"),
                 Column("growth", "float", "growth per year", "growth into the year from the one before", min=-0.5,
                        max=1.0),
                 Column("source", "str", "text", "where the series comes from (a publication)"),
                 Column("vintage", "str", "text", "which release of the series")),
        key=("financial_year",), covers_every_area=False,
    )


def read_index_file(name: str, path: Path) -> dict[str, Any]:
    """A user's index CSV as a formula index series; every problem named by file, column and row."""
    if not path.is_file():
        raise SpecError(f"--index {name}: file {path} not found")
    import polars as pl

    from fundform.inputs.contracts import check_table, row_labels
    from fundform.inputs.files import read_table_file

    raw, problems = read_table_file(path, path.name)  # strict: duplicate headers, ragged rows, encoding, empty
    if raw is None:
        raise SpecError(f"--index {name}: {path}\n" + "\n".join(f"  - {p.render()}" for p in problems))
    frame, problems = check_table(raw, index_file_contract(), path.name)
    if frame is None or problems:
        raise SpecError(f"--index {name}: {path}\n" + "\n".join(f"  - {p.render()}" for p in problems))
    bad_years = frame.with_row_index("__row").filter(~pl.col("financial_year").str.contains(r"^\d{4}/\d{2}$"))
    if bad_years.height:
        problems.append(Problem(path.name, "financial_year", f"{bad_years.height} value(s) not a financial year",
                                "years written like 2027/28", row_labels(bad_years, ["financial_year"])))
    for col in ("source", "vintage"):
        if frame[col].n_unique() != 1:
            problems.append(Problem(path.name, col, "differs between rows", "one value for the whole series"))
    if problems:
        raise SpecError(f"--index {name}: {path}\n" + "\n".join(f"  - {p.render()}" for p in problems))
    return {"description": f"{name} from {path.name}", "unit": "growth per year",
            "source": f"{index_source_id(name)}: {frame['source'][0]}",
            "vintage": frame["vintage"][0],
            "growth": dict(zip(frame["financial_year"].to_list(), frame["growth"].to_list()))}


def index_source_id(name: str) -> str:
    """The [[sources]] id under which a user's index file is cited: the file, its hash and its own stated source
    become the citation, so a loaded OBR vintage counts as sourced, not as the project's assumption."""
    return f"index-file-{name.replace('_', '-')}"


def extends_chain(start: Path, known: dict[str, Path]) -> tuple[Path, list[tuple[Path, dict]]]:
    """Follow `extends` from a file to the formula version it rests on: (the version's file, the scenarios from
    the one nearest the version to `start`). A scenario may extend a version or another scenario (by id in
    formulas/, or by a path relative to itself); a cycle is named as one."""
    chain: list[tuple[Path, dict]] = []
    seen: list[Path] = []
    path = Path(start)
    while True:
        resolved = path.resolve()
        if resolved in seen:
            names = [p.stem for p in seen] + [path.stem]
            raise SpecError(f"{start}: extends cycle: {' -> '.join(names)} (a scenario must rest on a formula "
                            "version in the end)")
        seen.append(resolved)
        data = read_toml(path)
        if "extends" not in data:
            return path, list(reversed(chain))
        ext = data["extends"]
        if not isinstance(ext, str) or not ext.strip():
            raise SpecError(f"{path}: extends must name one formula version or scenario (text, e.g. "
                            f"extends = \"fundform-needs\"), got {type(ext).__name__} {ext!r}")
        chain.append((path, data))
        if ext in known:
            path = known[ext]
        elif ext.endswith(".toml") and (path.parent / ext).is_file():
            path = path.parent / ext
        else:
            raise SpecError(f"{path}: extends unknown formula '{ext}' (available: {', '.join(known)}, or a scenario "
                            "file's path relative to this one)")


def resolve_formula(ref: str, sets: list[str] | tuple[str, ...] = (), directory: Path | None = None,
                    index_files: dict[str, Path] | None = None) -> ResolvedFormula:
    """A formula id, a formula file or a scenario file, with --set overrides and --index files applied,
    validated. An index file replaces (or adds) the named index series."""
    known = available_formulas(directory)
    ref_path = Path(ref)
    if ref_path.suffix == ".toml" and ref_path.exists():
        start = ref_path
    elif ref in known:
        start = known[ref]
    elif ref in (scenarios := shipped_scenarios(directory)):
        start = scenarios[ref]
    else:
        raise SpecError(f"unknown formula '{ref}' (available: {', '.join(known) or 'none'}; shipped scenarios: "
                        f"{', '.join(shipped_scenarios(directory)) or 'none'})")
    base_path, chain = extends_chain(start, {**shipped_scenarios(directory), **known})  # a scenario may extend one
    scenario_name = str(chain[-1][0]) if chain else None
    scenario_data = chain[-1][1] if chain else None

    raw = base_path.read_bytes()
    base = read_toml(base_path)
    data = copy.deepcopy(base)
    overrides: list[Override] = []
    for path, scenario in chain:  # the base's own scenario first, the file named last
        patch = {k: v for k, v in scenario.items() if k not in SCENARIO_KEYS - {"replace_streams"}}
        origin_name = f"scenario {Path(path).name}"
        before = flatten(data)
        try:
            compose_streams(data, patch, str(path))
            merge(data, patch, origin_name)
        except SpecError as e:
            raise SpecError(f"{path}: {e}") from None
        except (TypeError, KeyError, AttributeError, ValueError) as e:  # a patch whose shape the version lacks
            raise SpecError(f"{path}: a key does not fit the shape of the formula it extends ({type(e).__name__}: "
                            f"{e}); expected the same tables and lists as the formula file") from None
        after = flatten(data)
        overrides += [Override(p, before.get(p), after[p], origin_name)
                      for p in sorted(after) if before.get(p) != after[p] and not p.endswith(".source")]
    for name, file in (index_files or {}).items():
        series = read_index_file(name, Path(file))
        old = data.setdefault("indices", {}).get(name)
        data["indices"][name] = series
        digest = hashlib.sha256(Path(file).read_bytes()).hexdigest()
        data.setdefault("sources", []).append({
            "id": index_source_id(name), "title": series["source"].split(": ", 1)[1],
            "publisher": f"user index file {Path(file).name}", "note": f"sha256 {digest}, vintage {series['vintage']}"})
        overrides.append(Override(f"indices.{name}", "series in the formula file" if old else None,
                                  f"{Path(file).name} (sha256 {digest}, vintage {series['vintage']})", "--index"))
    for expr in sets:
        key, value = parse_set(expr)
        if not key or any(not part for part in key.split(".")):
            raise SpecError(f"--set '{expr}': '{key}' is not a dotted key path (e.g. transition.floor)")
        try:
            old = set_path(data, key, value, f"--set {key}")
        except (TypeError, KeyError, AttributeError, ValueError) as e:
            raise SpecError(f"--set '{expr}': cannot set {key} here ({type(e).__name__}: {e}); see `fundform "
                            "formulas show` for the key paths") from None
        overrides.append(Override(key, old, value, "--set"))
    origin = (scenario_name or str(base_path)) + (f" with {', '.join('--set ' + e for e in sets)}" if sets else "")
    try:
        spec = FormulaSpec.model_validate(data)
    except ValidationError as e:
        raise SpecError(format_validation(Path(origin), e)) from e
    except (TypeError, ValueError, KeyError, IndexError, AttributeError) as e:  # a validator meeting odd input
        raise SpecError(f"{origin}: invalid formula version ({type(e).__name__}: {e})") from None
    check_references(spec, Path(origin))
    if scenario_data is None and ref in known and spec.id != ref:
        raise SpecError(f"{base_path}: id '{spec.id}' does not match its file name '{ref}'")
    title, description = ((scenario_data.get("title"), scenario_data.get("description")) if scenario_data
                          else (None, None))
    return ResolvedFormula(spec, base_path, hashlib.sha256(raw).hexdigest(), tuple(overrides), scenario_name,
                           title if isinstance(title, str) else None,
                           description if isinstance(description, str) else None)


PROSE_KEYS = ("source", "title", "summary", "description", "note", "publisher", "unit", "vintage", "url")


def diff_kind(path: str, a: Any, b: Any) -> str:
    """'number' (a value or a weight), 'text' (a source, title, unit or description) or 'setting' (a rule, a basis,
    a year, a flag): how `formulas diff` orders and filters a difference."""
    if path.rsplit(".", 1)[-1] in PROSE_KEYS or path.startswith("sources."):
        return "text"
    values = [v for v in (a, b) if v is not None]
    if values and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return "number"
    return "setting"


def diff_specs(a: FormulaSpec, b: FormulaSpec) -> list[tuple[str, Any, Any]]:
    """Every parameter that differs between two versions: (path, value in a, value in b)."""
    fa = flatten(a.model_dump(mode="json", by_alias=True))
    fb = flatten(b.model_dump(mode="json", by_alias=True))
    return [(p, fa.get(p), fb.get(p)) for p in sorted(set(fa) | set(fb)) if fa.get(p) != fb.get(p)]


def toml_key(path: str) -> str:
    """A --set path as a TOML dotted key (an age band's range quoted)."""
    return ".".join(f'"{p}"' if not re.match(r"^[A-Za-z0-9_]+$", p) else p for p in path.split("."))
