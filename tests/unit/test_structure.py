"""The code's shape, checked by walking fixbridge/ with `ast` (issue 12): no class over 400 lines,
no mixins (a class with more than one base that is not a Protocol, an exception, an enum, Generic
or a typing base), and no import cycle among fixbridge modules.

Imports counted: module-level ones, including those inside try/except and if-blocks, but not
those under `if TYPE_CHECKING:` (they never run, so they cannot make a cycle at import time, and
type hints need them) nor imports inside functions (deferred on purpose; none may hide a cycle
at import time either)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "fixbridge"
MAX_CLASS_LINES = 400
# Bases that may stand beside another: they describe what a class is, they do not bring behaviour in.
ALLOWED_EXTRA_BASES = {"Protocol", "Generic", "Exception", "BaseException", "ValueError", "RuntimeError",
                       "OSError", "KeyError", "TypeError", "LookupError", "Enum", "IntEnum", "StrEnum", "str",
                       "int", "NamedTuple", "TypedDict", "ABC"}


def _modules() -> dict[str, ast.Module]:
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = ast.parse(path.read_text(), filename=str(path))
    return out


MODULES = _modules()


def _base_name(node: ast.expr) -> str:
    if isinstance(node, ast.Subscript):
        node = node.value
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    return ast.unparse(node)


def _classes():
    for mod, tree in MODULES.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                yield mod, node


def test_walks_the_package():
    assert "fixbridge.engine.execution" in MODULES and len(MODULES) > 50


def test_no_class_over_400_lines():
    big = [f"{mod}.{c.name}: {c.end_lineno - c.lineno + 1} lines" for mod, c in _classes()
           if c.end_lineno - c.lineno + 1 > MAX_CLASS_LINES]
    assert not big, "classes over 400 lines: " + "; ".join(big)


def test_no_mixins():
    mixed = []
    for mod, c in _classes():
        names = [_base_name(b) for b in c.bases]
        if len(names) > 1 and len([n for n in names if n not in ALLOWED_EXTRA_BASES]) > 1:
            mixed.append(f"{mod}.{c.name}({', '.join(names)})")
        if any(n.endswith("Mixin") for n in names):
            mixed.append(f"{mod}.{c.name}({', '.join(names)})")
    assert not mixed, "classes with more than one behaviour base (mixins): " + "; ".join(mixed)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _module_level_imports(mod: str, tree: ast.Module) -> set[str]:
    """fixbridge modules `mod` imports when it is imported (see the module docstring)."""
    found: set[str] = set()
    package = mod if mod in _packages() else mod.rsplit(".", 1)[0]

    def resolve(name: str) -> str | None:
        while name and name not in MODULES:
            name = name.rsplit(".", 1)[0] if "." in name else ""
        return name or None

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.startswith("fixbridge") and (r := resolve(a.name)):
                        found.add(r)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    target = f"{base}.{node.module}" if node.module else base
                else:
                    target = node.module or ""
                if not target.startswith("fixbridge"):
                    continue
                for a in node.names:  # `from pkg import module` imports the module
                    r = resolve(f"{target}.{a.name}")
                    if r and r != resolve(target) and f"{target}.{a.name}" in MODULES:
                        found.add(r)
                    elif (r := resolve(target)):
                        found.add(r)
            elif isinstance(node, ast.If):
                if not _is_type_checking(node.test):
                    visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                for h in node.handlers:
                    visit(h.body)
                visit(node.orelse)
                visit(node.finalbody)
    visit(tree.body)
    found.discard(mod)
    return found


def _packages() -> set[str]:
    return {m for m in MODULES if (ROOT.parent / m.replace(".", "/") / "__init__.py").exists()}


def _graph() -> dict[str, set[str]]:
    # The edges are the imports written: importing a.b.c also runs a/__init__ first, but a module
    # below its package is how packages work, not a cycle of ours.
    return {mod: _module_level_imports(mod, tree) for mod, tree in MODULES.items()}


def _cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def strong(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in g.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    import sys
    sys.setrecursionlimit(10_000)
    for v in sorted(g):
        if v not in index:
            strong(v)
    return out


def test_no_import_cycles():
    cycles = _cycles(_graph())
    assert not cycles, "import cycles among fixbridge modules: " + " | ".join(" <-> ".join(c) for c in cycles)


@pytest.mark.parametrize("source, expected", [
    ("class A(Base, OtherMixin): pass", False),
    ("class A(Base, Other): pass", False),
    ("class A(Protocol, Generic[T]): pass", True),
    ("class A(str, Enum): pass", True),
    ("class A(Base): pass", True),
])
def test_mixin_rule_tells_them_apart(source, expected):
    c = ast.parse(source).body[0]
    names = [_base_name(b) for b in c.bases]
    ok = not (len(names) > 1 and len([n for n in names if n not in ALLOWED_EXTRA_BASES]) > 1) \
        and not any(n.endswith("Mixin") for n in names)
    assert ok is expected


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
