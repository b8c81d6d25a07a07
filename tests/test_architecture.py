"""The package's layering, read from the source: no import cycle between depthscope's modules (imports inside
functions count: a lazy import hides a cycle, it does not remove it) and no import from a higher layer."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "depthscope"

# Lowest first. A module may import its own layer and the ones below; errors/seeding < data < models <
# metrics, explain < assess, efficiency < optimize, compare < report < cli (the order), with the shared helpers
# (registry, config, ops, output) beside errors at the bottom.
LAYERS = [
    {"errors", "seeding", "registry", "config", "ops", "output"},
    {"data"},
    {"models"},
    {"metrics", "explain", "predict", "probe"},
    {"assess", "efficiency", "robustness"},
    {"optimize", "engine", "compare", "meta"},
    {"report", "view"},
    {"cli", "launch"},
]
LAYER = {top: i for i, tops in enumerate(LAYERS) for top in tops}


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in SRC.rglob("*.py")}


def imports(path: Path) -> set[str]:
    """The depthscope modules ``path`` imports, anywhere in the file (``from pkg import sub`` names ``pkg.sub``
    when ``sub`` is a module, else ``pkg``)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("depthscope")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("depthscope"):
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                out.add(sub if sub in MODULES else node.module)
    return {m for m in out if m in MODULES}


GRAPH = {name: imports(path) - {name} for name, path in MODULES.items()}


def top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_every_module_has_a_layer():
    assert {top(m) for m in MODULES if top(m)} <= set(LAYER), "add the new package to LAYERS"


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a list of nodes (first == last), or None (iterative DFS, white/grey/black)."""
    colour = dict.fromkeys(graph, 0)
    for start in graph:
        if colour[start]:
            continue
        stack = [(start, iter(sorted(graph[start])))]
        path = [start]
        colour[start] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                colour[node] = 2
                stack.pop()
                path.pop()
            elif colour.get(child) == 1:
                return path[path.index(child) :] + [child]
            elif colour.get(child) == 0:
                colour[child] = 1
                stack.append((child, iter(sorted(graph[child]))))
                path.append(child)
    return None


def test_find_cycle_finds_a_planted_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_between_modules():
    # The top-level facade (depthscope/__init__.py) imports everything and nothing imports it.
    graph = {m: {d for d in deps if d != "depthscope"} for m, deps in GRAPH.items() if m != "depthscope"}
    assert find_cycle(graph) is None


def test_no_import_cycle_between_packages():
    graph: dict[str, set[str]] = {}
    for m, deps in GRAPH.items():
        if top(m):
            graph.setdefault(top(m), set()).update(top(d) for d in deps if top(d) and top(d) != top(m))
    assert find_cycle(graph) is None


@pytest.mark.parametrize("module", sorted(m for m in MODULES if top(m)))
def test_no_import_from_a_higher_layer(module):
    upward = sorted(d for d in GRAPH[module] if top(d) and LAYER[top(d)] > LAYER[top(module)])
    assert not upward, f"{module} (layer {LAYER[top(module)]}) imports {upward}"


def test_nothing_imports_the_top_level_facade():
    assert not [m for m, deps in GRAPH.items() if "depthscope" in deps and m != "depthscope"]


def test_no_module_uses_the_deprecated_fx_quantisation_flow():
    """int8 is PT2E (``torch.export`` + torchao's quantizer); torch 2.13 deprecates FX graph-mode quantisation."""
    users = [
        m for m, p in MODULES.items() if any(n in p.read_text() for n in ("quantize_fx", "prepare_fx", "convert_fx"))
    ]
    assert not users, users
