"""The import graph of reproduce/ and date/ (built by grimp from the source, nothing run):

- no import circle: no module imports itself back through other modules, in any package;
- the import-linter contracts of pyproject.toml hold: the harness's layers import one way (cli,
  then sweep and report, which never import each other, then run, then core), the report layer
  and core read records and never the training code, and no package's modules or subpackages
  import each other in a circle;
- importing the report layer and core loads no torch (a report is regenerated from records).

A failure names the circle or the chain of imports that breaks a contract.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import grimp

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("reproduce", "date")


def import_circles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Every set of modules that import each other in a circle (the graph's strongly connected
    components of more than one module, Tarjan's algorithm), each as a sorted list."""
    index: dict[str, int] = {}
    lowest: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles = []

    def visit(module: str) -> None:
        # Iterative depth-first search: (module, the imports still to follow)
        work = [(module, iter(sorted(graph.find_modules_directly_imported_by(module))))]
        index[module] = lowest[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        while work:
            current, imports = work[-1]
            for imported in imports:
                if imported not in index:
                    index[imported] = lowest[imported] = len(index)
                    stack.append(imported)
                    on_stack.add(imported)
                    work.append(
                        (imported, iter(sorted(graph.find_modules_directly_imported_by(imported))))
                    )
                    break
                if imported in on_stack:
                    lowest[current] = min(lowest[current], index[imported])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    lowest[parent] = min(lowest[parent], lowest[current])
                if lowest[current] == index[current]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == current:
                            break
                    if len(component) > 1:
                        circles.append(sorted(component))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return circles


def test_no_module_imports_itself_back():
    import reproduce

    # grimp reads the packages that `import` finds: this checkout's (the tests run from its root)
    assert Path(reproduce.__file__).resolve().parent == REPO / "reproduce"
    circles = import_circles(grimp.build_graph(*PACKAGES, cache_dir=None))
    assert not circles, "import circles: " + "; ".join(" <-> ".join(c) for c in circles)


def test_the_circle_finder_finds_a_circle():
    graph = grimp.ImportGraph()
    for module in ("a", "b", "c", "d"):
        graph.add_module(module)
    graph.add_import(importer="a", imported="b")
    graph.add_import(importer="b", imported="c")
    graph.add_import(importer="c", imported="a")
    graph.add_import(importer="c", imported="d")
    assert import_circles(graph) == [["a", "b", "c"]]


def test_the_import_contracts_hold():
    # lint-imports as CI would run it, from this checkout, on the contracts of pyproject.toml
    command = "from importlinter.cli import lint_imports_command; lint_imports_command()"
    result = subprocess.run(
        [sys.executable, "-c", command, "--no-cache", "--no-logo", "pyproject.toml"],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_the_report_layer_and_core_load_no_torch():
    modules = sorted(
        ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        for layer in ("report", "core")
        for path in (REPO / "reproduce" / "harness" / layer).rglob("*.py")
    )
    command = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", command],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]", f"{len(modules)} modules loaded: {result.stdout}"
