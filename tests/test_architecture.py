"""The shape of the code: every module in the folder of its stage, each stage importing only
the stages before it, no import circle inside the package (imports made inside functions and
for type checkers counted too), and no `if backend == ...` outside the backends' own modules."""

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
    """The package's modules that `path` imports anywhere: at the top level, inside a function,
    or for type checkers only (`if TYPE_CHECKING:`)."""
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
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


# The stages, in the order data flows through them; a stage imports only those before it.
STAGES = (
    "core",  # the vocabulary: config, identity, metrics, errors, machine, statistics
    "models",  # the built-in variants (the `mnist_bench.models` package, from models/)
    "runfile",  # run files: records, journal, storage, bounded reads, schema, loading, index
    "data",  # datasets (bench/data.py and the bundled MNIST beside it)
    "plan",  # jobs from options and suites, shards, estimates
    "execute",  # the run, executors (local, Ray), worker, training loop, backends
    "analyse",  # rows, compare and the gate, change points, history, parity
    "render",  # tables, Markdown, CSV, HTML, figures
    "publish",  # exports
    "api",  # the public Python API (api.py, results.py, the package itself)
    "commands",  # one module per command, and cli.py that dispatches to them
)
FLAT = {"data": "data", "api": "api", "results": "api", "cli": "commands", "__main__": "commands"}


def stage_of(module: str) -> str:
    parts = module.split(".")[1:]
    if not parts:
        return "api"
    return parts[0] if parts[0] in STAGES else FLAT[parts[0]]


def package_modules() -> dict[str, object]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def test_every_module_sits_in_the_folder_of_its_stage():
    stray = [
        name
        for name in package_modules()
        if name != "mnist_bench"
        and name.split(".")[1] not in STAGES
        and name.split(".")[1] not in FLAT
    ]
    assert stray == []
    assert set(FLAT) | set(STAGES) >= {p.name for p in PACKAGE.iterdir() if p.is_dir()} - {
        "__pycache__"
    }


def test_no_stage_imports_a_later_stage():
    modules = package_modules()
    names = set(modules) | {"mnist_bench.models"}
    upward = [
        f"{name} ({stage_of(name)}) imports {target} ({stage_of(target)})"
        for name, path in sorted(modules.items())
        for target in sorted(imports(path, names))
        if target != "mnist_bench" and STAGES.index(stage_of(target)) > STAGES.index(stage_of(name))
    ]
    assert upward == []
