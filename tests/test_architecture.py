"""The shape of the code: no import circle inside the package (counting imports made inside
functions too), and no `if backend == ...` outside the backends' own modules."""

from __future__ import annotations

import ast
import re

from conftest import ROOT

PACKAGE = ROOT / "bench"


def module_name(path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(("mnist_bench", *parts))


def imports(path, modules: set[str]) -> set[str]:
    """The package's modules that `path` imports anywhere (top level or inside a function), not
    counting imports for type checkers only (`if TYPE_CHECKING:`)."""
    tree = ast.parse(path.read_text())
    typing_only = {
        id(child)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING")
        for child in ast.walk(node)
    }
    found = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found.update(name for name in names if name in modules)
    return found


def test_no_import_circle_in_the_package():
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {name: imports(path, set(paths)) - {name} for name, path in paths.items()}
    # A package's __init__ importing its own submodules is not a circle worth naming; an edge
    # from a module back to its parent package is (it runs the __init__).
    for name, targets in graph.items():
        graph[name] = {t for t in targets if not t.startswith(name + ".")}

    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return stack[stack.index(target) :] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            raise AssertionError("import circle: " + " -> ".join(cycle))
    assert len(graph) > 30  # the walk saw the package


def test_backend_chains_live_only_in_the_backends_modules():
    chain = re.compile(r"\bif\b[^\n]*\bbackend\b\s*(==|!=)\s*[\"']")
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in [*PACKAGE.rglob("*.py"), *(ROOT / "models").rglob("*.py")]
        if "backends" not in path.relative_to(ROOT).parts
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if chain.search(line)
    ]
    assert offenders == []
