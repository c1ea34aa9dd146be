"""The house rules the code is held to: no import circles (counting imports inside functions, which only hide a
circle until the function runs), and the command line's entry file only imports the command."""

from __future__ import annotations

import ast

from fundform.base.paths import PROJECT_ROOT

PACKAGE = PROJECT_ROOT / "fundform"


def import_graph() -> dict[str, set[str]]:
    mods = {}
    for f in PACKAGE.rglob("*.py"):
        name = ".".join(f.relative_to(PROJECT_ROOT).with_suffix("").parts)
        mods[name.removesuffix(".__init__")] = f
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for m, f in mods.items():
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("fundform"):
                graph[m] |= {f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in mods}
                graph[m] |= {node.module} & set(mods)
            elif isinstance(node, ast.Import):
                graph[m] |= {a.name for a in node.names if a.name in mods}
    for m in graph:  # the package's __init__ only names the API lazily; a module importing itself is no circle
        graph[m] -= {"fundform", m}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    state: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(u: str) -> None:
        state[u] = 1
        stack.append(u)
        for v in sorted(graph[u]):
            if state.get(v) == 1:
                found.append(stack[stack.index(v):] + [v])
            elif v not in state:
                visit(v)
        stack.pop()
        state[u] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    return found


def test_the_import_graph_has_no_circle():
    graph = import_graph()
    assert len(graph) > 30 and graph["fundform.studies.levels"] >= {"fundform.studies.pipeline", "fundform.engine.geography"}
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]


def test_the_top_level_cli_only_imports_the_command():
    tree = ast.parse((PROJECT_ROOT / "cli.py").read_text())
    defs = [n for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)]
    assert defs == []
    assert any(isinstance(n, ast.ImportFrom) and n.module == "fundform.interfaces.cli" for n in tree.body)


def imported_names() -> dict[str, set[str]]:
    """Each module of the package: the fundform names it imports (module.name), at any depth."""
    out: dict[str, set[str]] = {}
    for f in PACKAGE.rglob("*.py"):
        name = ".".join(f.relative_to(PROJECT_ROOT).with_suffix("").parts).removesuffix(".__init__")
        out[name] = {f"{n.module}.{a.name}" for n in ast.walk(ast.parse(f.read_text()))
                     if isinstance(n, ast.ImportFrom) and n.module and n.module.startswith("fundform")
                     for a in n.names}
    return out


# what follows the transition (pooling, the deduction, grants, per-head and real-terms money) and the one source of
# the equalisation degree: called by fundform.engine.outcome alone, which a run, a sweep and the explorer all read
AFTER_TRANSITION = {"fundform.engine.localtax.grants.grants", "fundform.engine.localtax.grants.notional_pence",
                    "fundform.engine.localtax.grants.negative_grant_policy", "fundform.engine.localtax.grants.scenario_degree",
                    "fundform.engine.localtax.grants.grant_envelope", "fundform.engine.settlement.money.split_rounded",
                    "fundform.engine.localtax.resources.equalisation_degree"}


def test_what_follows_the_transition_is_computed_in_the_outcome_alone():
    users = {m: names & AFTER_TRANSITION for m, names in imported_names().items() if names & AFTER_TRANSITION}
    allowed = {"fundform.engine.outcome", "fundform.engine.localtax.grants"}  # the outcome, and the module defining them
    assert set(users) <= allowed, {m: sorted(n) for m, n in users.items() if m not in allowed}
    assert "fundform.engine.outcome" in users  # the check can fail: the outcome does import them
    for m in ("fundform.studies.sweeps", "fundform.interfaces.explorer.engine", "fundform.studies.pipeline"):  # each reads the one outcome
        assert any(n.startswith("fundform.engine.outcome.") for n in imported_names()[m]), m


def test_no_private_name_is_imported_across_modules():
    private = {m: sorted(n for n in names if n.rsplit(".", 1)[1].startswith("_") and not n.endswith("__"))
               for m, names in imported_names().items()}
    assert {m: n for m, n in private.items() if n} == {}


def test_every_output_is_declared_once_and_read_from_the_registry():
    """A run's result, its files, the Python API's Run, the warehouse and the schema document all take their tables
    from fundform.outputs.registry: no other module lists the table names."""
    from fundform.outputs.registry import OUTPUTS, TABLES, schema_markdown
    from fundform.outputs.warehouse import RUN_TABLES

    names = [o.name for o in OUTPUTS]
    assert len(set(names)) == len(names) and "allocations" in names
    assert set(RUN_TABLES) == {o.name for o in OUTPUTS if o.recorded}
    assert list(TABLES)[:len(names)] == names
    doc = schema_markdown()
    assert all(f"## {n}.parquet" in doc for n in names)
    listed = '("allocations", "need"'
    for f in PACKAGE.rglob("*.py"):  # a hand-written list of the tables anywhere else would drift
        assert listed not in f.read_text().replace("'", '"'), f


def test_need_is_computed_in_one_place():
    """The indicator multiplier and the need's step-by-step product are fundform.engine.need.axis's alone: the need frames
    of a run, the waterfall's need steps and a sweep's varied need all call it (no second need computation)."""
    names = imported_names()
    users = {m for m, n in names.items() if "fundform.engine.need.weighted_population.multiplier" in n}
    assert users == {"fundform.engine.need.axis"}
    for m in ("fundform.engine.need.frames", "fundform.engine.waterfall"):
        assert "fundform.engine.need.axis.version_need" in names[m], m
    assert "fundform.engine.need.axis.scenario_shares" in names["fundform.engine.settlement.allocate"]


# The layers, lowest first: a module may import its own layer and those below it, never one above. The package's
# __init__ and fundform.api (the public path of the Python API) are its faces, above every layer.
LAYERS = ("base", "inputs", "formula", "engine", "outputs", "studies", "interfaces")
FACES = {"fundform", "fundform.api"}


def layer_of(module: str) -> int:
    return LAYERS.index(module.split(".")[1])


def against_the_layers(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    return sorted((m, d) for m, deps in graph.items() if m not in FACES
                  for d in deps if d not in FACES and layer_of(d) > layer_of(m))


def test_every_module_sits_in_a_layer_folder_with_a_docstring_saying_what_lives_there():
    graph = import_graph()
    assert {m.split(".")[1] for m in graph if m not in FACES} == set(LAYERS)
    for layer in LAYERS:
        doc = ast.get_docstring(ast.parse((PACKAGE / layer / "__init__.py").read_text()))
        assert doc and "may import" in doc.lower(), f"fundform/{layer}/__init__.py says what lives there and what it may import"


def test_no_module_imports_a_layer_above_its_own():
    assert against_the_layers(import_graph()) == []


def test_the_layer_check_finds_an_import_upwards():
    graph = {"fundform.engine.waterfall": {"fundform.outputs.schema", "fundform.base.numeric"},
             "fundform.outputs.schema": set(), "fundform.base.numeric": set()}
    assert against_the_layers(graph) == [("fundform.engine.waterfall", "fundform.outputs.schema")]


def test_no_module_is_over_600_lines_without_saying_why():
    for f in PACKAGE.rglob("*.py"):
        text = f.read_text()
        if text.count("\n") > 600:
            doc = ast.get_docstring(ast.parse(text)) or ""
            assert "over 600 lines" in doc, f"{f.relative_to(PROJECT_ROOT)}: split it, or say in its docstring why not"


def test_one_toml_reader_and_one_command_line_error_wrapper():
    """Every TOML file is read by base/toml.py (a --set value's literal is parsed as TOML in scenario.py, not a
    file); no command catches to print its own error: the commands' one wrapper (cli/common.py `reported`) does."""
    import re

    readers = [f.relative_to(PROJECT_ROOT) for f in PACKAGE.rglob("*.py")
               if "tomllib.load" in f.read_text() and f.name not in ("toml.py",)
               and not (f.name == "scenario.py" and f.read_text().count("tomllib.loads") == 1
                        and 'tomllib.loads(f"v = {raw}")' in f.read_text())]
    assert readers == [], readers
    cli = PACKAGE / "interfaces" / "cli"
    catching = [f.name for f in cli.glob("*.py") if f.name != "common.py"
                and re.search(r"except Exception as e:.*\n\s+fail\(e\)", f.read_text())]
    assert catching == [], catching
    from fundform.interfaces.cli.common import Commands, app
    from fundform.interfaces.cli.formulas import formulas_app
    from fundform.interfaces.cli.system import cache_app

    assert all(isinstance(g, Commands) for g in (app, formulas_app, cache_app))
    wrapped = [c.callback for c in app.registered_commands]
    assert wrapped and all(getattr(cb, "__wrapped__", None) is not None for cb in wrapped)


def undocumented_modules(folder_docs: dict[str, tuple[str, list[str]]]) -> dict[str, list[str]]:
    """{folder: modules its docstring does not name}, from {folder: (docstring, module names)}."""
    return {f: gone for f, (doc, mods) in folder_docs.items() if (gone := [m for m in mods if m not in doc])}


def folder_docs() -> dict[str, tuple[str, list[str]]]:
    out = {}
    for init in PACKAGE.rglob("__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        if doc:
            out[str(init.parent.relative_to(PROJECT_ROOT))] = (
                doc, [f.stem for f in init.parent.glob("*.py") if f.stem not in ("__init__", "__main__")])
    return out


STAGES = ["fundform.engine.need", "fundform.engine.settlement", "fundform.engine.localtax", "fundform.engine.outcome"]


def stage_violations(graph: dict[str, set[str]]) -> list[tuple[str, list[str]]]:
    """(module, the later stages it imports) for every stage module that reads a stage after its own."""
    inside = lambda m, s: m == s or m.startswith(s + ".")
    found = []
    for i, stage in enumerate(STAGES):
        for mod, deps in graph.items():
            if inside(mod, stage):
                bad = sorted(d for d in deps if any(inside(d, x) for x in STAGES[i + 1:]))
                if bad:
                    found.append((mod, bad))
    return found


def test_each_folder_docstring_names_every_module_in_it():
    """A newcomer finds every module from its folder's docstring (fundform/<folder>/__init__.py)."""
    assert undocumented_modules(folder_docs()) == {}
    # and the rule finds a module left out
    assert undocumented_modules({"x": ("a.py, b.py", ["a", "b", "c"])}) == {"x": ["c"]}


def test_the_engines_stages_run_in_their_order():
    """Need before settlement before local tax before the outcome: no stage reads a later one, and the outcome
    reads each stage."""
    graph = import_graph()
    assert stage_violations(graph) == []
    assert all(any(d == s or d.startswith(s + ".") for d in graph["fundform.engine.outcome"]) for s in STAGES[:-1])
    # and the rule finds a need module that reads the settlement
    bad = {**graph, "fundform.engine.need.axis": graph["fundform.engine.need.axis"]
           | {"fundform.engine.settlement.transition"}}
    assert stage_violations(bad) == [("fundform.engine.need.axis", ["fundform.engine.settlement.transition"])]


def long_functions(sources: dict[str, str], limit: int = 80) -> list[tuple[str, str, int]]:
    """(file, function, lines) for every function over `limit` lines whose docstring does not say why."""
    found = []
    for name, text in sources.items():
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = node.end_lineno - node.lineno + 1
                if n > limit and f"over {limit} lines" not in (ast.get_docstring(node) or "").lower():
                    found.append((name, node.name, n))
    return found


def test_no_function_is_over_80_lines_without_saying_why():
    sources = {str(f.relative_to(PROJECT_ROOT)): f.read_text() for f in PACKAGE.rglob("*.py")}
    assert long_functions(sources) == []
    # and the rule finds one that does not say why
    body = "\n".join(f"    x{i} = {i}" for i in range(85))
    assert long_functions({"m.py": f'def f():\n    """Short."""\n{body}\n'}) == [("m.py", "f", 87)]


def test_every_noqa_names_a_rule_the_project_enables():
    """A `# noqa` that names a rule ruff does not run (pyproject.toml: F, I, E9) silences nothing and misleads."""
    import re

    enabled = ("F", "I", "E9")
    found = []
    for f in [*PACKAGE.rglob("*.py"), *(PROJECT_ROOT / "tests").rglob("*.py")]:
        for i, line in enumerate(f.read_text().splitlines(), 1):
            for m in re.finditer(r"# noqa: ([A-Z0-9, ]+)", line):
                found += [(f.name, i, c.strip()) for c in m.group(1).split(",") if not c.strip().startswith(enabled)]
            if re.search(r"#\s*noqa\s*$", line):  # a bare noqa silences every rule on its line, real faults too
                found.append((f.name, i, "bare"))
    assert found == [], found[:10]


def test_the_type_checker_holds_every_layer_with_every_definition_typed():
    """pyproject.toml [tool.mypy], run by `make typecheck` in `make test`: the whole package, no layer read for its
    types only, every definition typed."""
    import tomllib

    cfg = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    assert cfg["files"] == ["fundform"]
    assert not [o for o in cfg.get("overrides", []) if any(m.startswith("fundform") for m in o["module"])]
    assert cfg["disallow_untyped_defs"] and cfg["disallow_incomplete_defs"] and cfg["check_untyped_defs"]
    make = (PROJECT_ROOT / "Makefile").read_text()
    assert "test: lint typecheck" in make and "$(BIN)/mypy" in make


def object_annotations(sources: dict[str, str]) -> list[tuple[str, int, str]]:
    """(file, line, name) of every parameter, return or field annotated `object`: a type that says nothing of
    what the value is (a `**kwargs: object` included)."""
    def says_object(ann: ast.expr | None) -> bool:
        return ann is not None and any(isinstance(n, ast.Name) and n.id == "object" for n in ast.walk(ann))

    found = []
    for name, text in sources.items():
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                a = node.args
                args = [*a.posonlyargs, *a.args, *a.kwonlyargs, *filter(None, (a.vararg, a.kwarg))]
                found += [(name, x.lineno, x.arg) for x in args if says_object(x.annotation)]
                if says_object(node.returns):
                    found.append((name, node.lineno, f"{node.name} returns"))
            elif isinstance(node, ast.AnnAssign) and says_object(node.annotation):
                found.append((name, node.lineno, ast.unparse(node.target)))
    return found


def test_no_parameter_or_field_is_typed_object():
    sources = {str(f.relative_to(PROJECT_ROOT)): f.read_text() for f in PACKAGE.rglob("*.py")}
    assert len(sources) > 90 and object_annotations(sources) == []
    # and the rule finds each kind
    case = "def f(a: object, *, b: int | object = 1) -> object:\n    x: dict[str, object] = {}\n"
    assert object_annotations({"m.py": case}) == [("m.py", 1, "a"), ("m.py", 1, "b"), ("m.py", 1, "f returns"),
                                                  ("m.py", 2, "x")]


MAX_BY_POSITION = 5  # a stage's arguments beyond these are named at the call (keyword-only)


def positional_overflow(sources: dict[str, str]) -> list[tuple[str, str, int]]:
    """(file, function, how many) for every function taking more than MAX_BY_POSITION arguments that may be passed
    by position (self and cls not counted), and (file, class, fields) for every dataclass of more than that many
    fields not built by keyword (kw_only=True): eight arrays of pence in a row are too easy to pass in the wrong
    order."""
    found = []
    for name, text in sources.items():
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                pos = [x for x in (*node.args.posonlyargs, *node.args.args) if x.arg not in ("self", "cls")]
                if len(pos) > MAX_BY_POSITION:
                    found.append((name, node.name, len(pos)))
            elif isinstance(node, ast.ClassDef):
                dc = [d for d in node.decorator_list if ast.unparse(d).startswith("dataclass")]
                fields = sum(isinstance(b, ast.AnnAssign) for b in node.body)
                if dc and fields > MAX_BY_POSITION and "kw_only=True" not in ast.unparse(dc[0]):
                    found.append((name, node.name, fields))
    return found


def test_the_engines_stages_and_the_studies_take_their_inputs_by_name():
    """The engine's and the studies' functions take at most five arguments by position (a stage reads one context,
    engine.context, a design's search studies.designer.Search, and names the rest), and their larger dataclasses
    are built by keyword."""
    sources = {str(f.relative_to(PROJECT_ROOT)): f.read_text() for f in (PACKAGE / "engine").rglob("*.py")}
    assert positional_overflow(sources) == []
    studies = {str(f.relative_to(PROJECT_ROOT)): f.read_text() for f in (PACKAGE / "studies").rglob("*.py")}
    assert positional_overflow(studies) == []
    # and the rule finds both kinds
    case = ("def f(a, b, c, d, e, g, *, h=1):\n    pass\n\n\n@dataclass(frozen=True)\nclass C:\n"
            + "".join(f"    x{i}: int\n" for i in range(6)))
    assert positional_overflow({"m.py": case}) == [("m.py", "f", 6), ("m.py", "C", 6)]
