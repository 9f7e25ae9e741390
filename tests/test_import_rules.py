"""The house's import rules, read from every import statement (lazy ones included: still a dependency):
no cycles between modules or packages; `answer/` and `geo/` import nothing else of geo-r, and `geo/` no ML
framework; `configs.py` reaches no rewards, training or evaluation code; `errors.py` and `compat.py` import
nothing of geo-r, `cli.py` only `errors.py`; `data/` reaches nothing of `rewards/` or `training/`, and
`evaluation/` nothing of `training/` or `rewards/`. "Reaches" is transitive, package `__init__`s included.
"""

from __future__ import annotations

import ast
import textwrap
from collections.abc import Iterable
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
HEAVY = ("torch", "transformers", "trl", "deepspeed", "datasets", "accelerate", "peft", "vllm")


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph(root: Path, package: str) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """({module: modules of `package` it imports}, {module: top-level third-party names it imports})."""
    files = {module_name(p, root): p for p in (root / package).rglob("*.py")}
    internal: dict[str, set[str]] = {name: set() for name in files}
    external: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = name.split(".") if is_package else name.split(".")[:-1]
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                # `from pkg import mod` imports the module pkg.mod when there is one, else a name of pkg
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names]
            for target in targets:
                if target == package or target.startswith(package + "."):
                    while target not in files and "." in target:
                        target = target.rsplit(".", 1)[0]
                    if target != name:
                        internal[name].add(target)
                elif target:
                    external[name].add(target.split(".")[0])
    return internal, external


def parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def reach(graph: dict[str, set[str]], start: str) -> set[str]:
    """Every module that importing `start` runs: its imports, their packages' __init__s, and so on."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        module = todo.pop()
        for nxt in [*graph.get(module, ()), *(p for p in parents(module) if p in graph)]:
            if nxt not in seen and nxt != start:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def part(module: str, package: str) -> str:
    """The part of the package a module belongs to: `open_r1.data` for `open_r1.data.convert.osv5m`."""
    pieces = module.split(".")
    return ".".join(pieces[:2]) if len(pieces) > 1 else package


def part_graph(graph: dict[str, set[str]], package: str) -> dict[str, set[str]]:
    parts: dict[str, set[str]] = {}
    for module, targets in graph.items():
        edges = parts.setdefault(part(module, package), set())
        edges.update(part(t, package) for t in targets if part(t, package) != part(module, package))
    return parts


def under(modules: Iterable[str], prefix: str) -> list[str]:
    return sorted(m for m in modules if m == prefix or m.startswith(prefix + "."))


@pytest.fixture(scope="module")
def graphs():
    return import_graph(SRC, "open_r1")


def test_the_checker_sees_cycles_lazy_imports_and_package_inits(tmp_path):
    """The rules below could fail: a synthetic package with the faults they look for is caught."""
    pkg = tmp_path / "pkg"
    (pkg / "a").mkdir(parents=True)
    (pkg / "b").mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a" / "__init__.py").write_text("from pkg.a import x\n")
    (pkg / "a" / "x.py").write_text("def f():\n    from pkg.b import y\n    import torch\n")
    (pkg / "b" / "__init__.py").write_text("")
    (pkg / "b" / "y.py").write_text("from pkg.a import x\n")
    internal, external = import_graph(tmp_path, "pkg")
    assert internal["pkg.a.x"] == {"pkg.b.y"}  # the import inside a function counts
    assert cycles(internal) == [["pkg.a.x", "pkg.b.y"]]
    assert cycles(part_graph(internal, "pkg")) == [["pkg.a", "pkg.b"]]
    (pkg / "c.py").write_text("from pkg.b.y import nothing\n")
    internal, external = import_graph(tmp_path, "pkg")
    assert "pkg.a" in reach(internal, "pkg.c")  # through y -> x, and x's package __init__
    assert external["pkg.a.x"] == {"torch"}


def test_no_import_cycles_between_modules(graphs):
    internal, _ = graphs
    assert cycles(internal) == []


def test_no_import_cycles_between_the_packages_parts(graphs):
    internal, _ = graphs
    assert cycles(part_graph(internal, "open_r1")) == []


@pytest.mark.parametrize("leaf", ["open_r1.answer", "open_r1.geo", "open_r1.schedules", "open_r1.compat",
                                  "open_r1.errors"])
def test_leaves_import_nothing_else_of_geo_r(graphs, leaf):
    internal, _ = graphs
    for module in under(internal, leaf):
        outside = sorted(m for m in reach(internal, module) if m != "open_r1" and not m.startswith(leaf))
        assert outside == [], f"{module} reaches {outside}"


def test_rows_and_data_errors_import_nothing_of_geo_r(graphs):
    """`data/rows.py` (Row, DataError) is a leaf bar `errors.py` (InputError, itself a leaf): any module may raise
    or hold them without importing a reader."""
    internal, _ = graphs
    assert internal["open_r1.data.rows"] == {"open_r1.errors"}


def test_cli_reaches_the_errors_alone(graphs):
    internal, external = graphs
    assert reach(internal, "open_r1.cli") == {"open_r1", "open_r1.errors"}
    assert not external["open_r1.cli"] & set(HEAVY)


def test_geo_is_pure_geography(graphs):
    internal, external = graphs
    for module in under(internal, "open_r1.geo"):
        heavy = sorted({lib for m in [module, *reach(internal, module)] for lib in external.get(m, ()) if lib in HEAVY})
        assert heavy == [], f"{module} imports {heavy}"


@pytest.mark.parametrize(
    "layer, forbidden",
    [
        ("open_r1.configs", ("open_r1.rewards", "open_r1.training", "open_r1.evaluation", "open_r1.modeling")),
        ("open_r1.data", ("open_r1.rewards", "open_r1.training", "open_r1.evaluation")),
        ("open_r1.evaluation", ("open_r1.training", "open_r1.rewards")),
        ("open_r1.modeling", ("open_r1.training", "open_r1.evaluation", "open_r1.rewards", "open_r1.data")),
        ("open_r1.rewards", ("open_r1.training", "open_r1.evaluation")),
    ],
)
def test_layers_reach_nothing_above_them(graphs, layer, forbidden):
    internal, _ = graphs
    for module in under(internal, layer):
        bad = sorted(m for m in reach(internal, module) for f in forbidden if m == f or m.startswith(f + "."))
        assert bad == [], f"{module} reaches {bad}"


# --- upstream internals: reached through open_r1/compat.py alone -------------------------------------------

UPSTREAM = ("transformers", "trl", "accelerate", "deepspeed", "peft")
COMPAT = "open_r1.compat"
# upstream submodules that are public API (documented for import from there); any other submodule's names are
# reached through compat, and every package's top level is public
PUBLIC_MODULES = {
    "accelerate.utils": "accelerate's documented utilities (gather_object, broadcast_object_list, DistributedType)",
    "transformers.integrations": "documented home of is_deepspeed_zero3_enabled",
    "transformers.generation": "the generation package's exports (GenerationMode)",
    "transformers.utils": "documented helpers (get_json_schema for tools, logging)",
}
# compat's internals whose names are ordinary words used on geo-r's own objects too (args.seed, a generator),
# so their use cannot be told apart from the source; compat.reseed_repeat_sampler is their one user
GENERIC_NAMES = {"seed", "generator"}


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def own_names(cls: ast.ClassDef) -> set[str]:
    """Names a class defines itself: its methods and class attributes, and every `self.<name> = ...` in it."""
    names: set[str] = set()
    for node in cls.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
    for node in ast.walk(cls):
        if (isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store)
                and isinstance(node.value, ast.Name) and node.value.id == "self"):
            names.add(node.attr)
    return names


def upstream_touches(tree: ast.AST, internal_names: set[str]) -> list[str]:
    """What a module (not compat.py) does that only compat.py may do, as `line: what`:
    - import an underscore name, or from an underscore module, of an upstream package;
    - import from an upstream submodule that is not in PUBLIC_MODULES (the top level is public);
    - read or write `x._name` (one leading underscore) unless x is `self`/`cls` in a class that defines `_name`
      itself, or a module the file imports that is not upstream (`hashlib._Hash`), or name such an attribute in a
      string to getattr/setattr/hasattr/delattr;
    - read or write an attribute named like one of compat's INTERNALS (bar GENERIC_NAMES)."""
    found: list[str] = []
    other_modules = {(a.asname or a.name).split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                     for a in node.names if a.name.split(".")[0] not in UPSTREAM}

    def visit(node: ast.AST, classes: tuple[set[str], ...]) -> None:
        if isinstance(node, ast.ClassDef):
            classes = (*classes, own_names(node))
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for module in modules:
                if node_level(node) or module.split(".")[0] not in UPSTREAM:
                    continue
                names = [a.name for a in node.names] if isinstance(node, ast.ImportFrom) else []
                if any(is_private(part) for part in module.split(".")) or any(is_private(n) for n in names):
                    found.append(f"{node.lineno}: imports a private name of {module}")
                elif "." in module and module not in PUBLIC_MODULES and isinstance(node, ast.ImportFrom):
                    found.append(f"{node.lineno}: imports {names} from {module}, which is not public API")
        elif isinstance(node, ast.Attribute):
            if is_private(node.attr):
                base = node.value.id if isinstance(node.value, ast.Name) else None
                on_own = base in ("self", "cls") and bool(classes) and node.attr in classes[-1]
                if not on_own and base not in other_modules:
                    found.append(f"{node.lineno}: .{node.attr}")
            elif node.attr in internal_names:
                found.append(f"{node.lineno}: .{node.attr} (an upstream internal)")
        elif (isinstance(node, ast.Call) and len(node.args) > 1
              and getattr(node.func, "id", None) in ("getattr", "setattr", "hasattr", "delattr")
              and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str)
              and is_private(node.args[1].value)):
            found.append(f"{node.lineno}: {node.func.id}(..., {node.args[1].value!r})")
        for child in ast.iter_child_nodes(node):
            visit(child, classes)

    visit(tree, ())
    return found


def node_level(node: ast.AST) -> int:
    return getattr(node, "level", 0) or 0


def compat_internal_names() -> set[str]:
    """The attribute names of compat's INTERNALS (compat imports no upstream package at import time)."""
    from open_r1.compat import INTERNALS

    return {internal.name for internal in INTERNALS} - GENERIC_NAMES


def test_upstream_internals_are_reached_through_compat_alone():
    names = compat_internal_names()
    assert {"_calculate_rewards", "rope_deltas", "create_model_from_path"} <= names
    problems = []
    for path in sorted((SRC / "open_r1").rglob("*.py")):
        if module_name(path, SRC) == COMPAT:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        problems += [f"{path.relative_to(SRC)}:{what}" for what in upstream_touches(tree, names)]
    assert problems == [], "upstream internals outside compat.py (add a function there):\n" + "\n".join(problems)


def test_the_compat_rule_catches_each_kind_of_touch():
    source = textwrap.dedent('''
        from trl.trainer.utils import create_model_from_path
        from transformers.integrations.deepspeed import _hf_deepspeed_config_weak_ref
        from transformers import PreTrainedModel
        from transformers.integrations import is_deepspeed_zero3_enabled
        import hashlib, transformers

        class Mine:
            def __init__(self):
                self._cache = {}

            def read(self, trainer, model):
                self._cache.clear(), hashlib._Hash, transformers._internal
                model.model.rope_deltas = None
                setattr(trainer, "_calculate_rewards", None)
                return self._metrics, trainer._metrics

        def wrapped(self):
            return self._log_metric
    ''')
    found = upstream_touches(ast.parse(source), {"rope_deltas"})
    assert found == [
        "2: imports ['create_model_from_path'] from trl.trainer.utils, which is not public API",
        "3: imports a private name of transformers.integrations.deepspeed",
        "13: ._internal",
        "14: .rope_deltas (an upstream internal)",
        "15: setattr(..., '_calculate_rewards')",
        "16: ._metrics",
        "16: ._metrics",
        "19: ._log_metric",
    ]
