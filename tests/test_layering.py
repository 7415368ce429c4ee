"""Imports inside the package point one way: from the capability down to the state table."""

from __future__ import annotations

import ast
from pathlib import Path

import subagents_cancel

# Lower layers never import higher ones. Modules on one layer do not import each other.
LAYERS: list[set[str]] = [
    {'errors', 'clock', 'shield', 'gc_pause', 'tool_threads', 'output_text'},
    {'states', 'processes', 'timers'},
    {'messages'},
    {'results', 'bus'},
    {'regions', 'config'},
    {'registry', 'reports', 'metrics'},
    {'replies', 'refusals', 'subagent_replies'},
    {'waiting', 'instructions', 'tooling', 'telemetry'},
    {'task_context', 'task_capability', 'preemption', 'run_usage', 'run_failures'},
    {'launch', 'runner'},
    {'manager'},
    {'tools', 'shutdown'},
    {'capability'},
    {'demo_scripts', 'demo_log'},
    {'demo'},
    {'__init__', '__main__'},
]
RANK = {module: rank for rank, layer in enumerate(LAYERS) for module in layer}
SOURCE = Path(subagents_cancel.__file__).parent


def internal_imports(path: Path) -> set[str]:
    """The package modules `path` imports at run time (imports under `if TYPE_CHECKING:` are for types only)."""
    tree = ast.parse(path.read_text())
    type_only = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == 'TYPE_CHECKING'
        for inner in ast.walk(node)
    }
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split('.')[0])
            else:
                found.update(alias.name for alias in node.names)
    return found


def test_every_module_has_a_layer() -> None:
    """A new module must be placed in the layering first."""
    assert {path.stem for path in SOURCE.glob('*.py')} <= set(RANK)


def test_imports_only_point_down() -> None:
    """No module imports one on its own layer or above."""
    back_edges = [
        (path.stem, imported)
        for path in sorted(SOURCE.glob('*.py'))
        for imported in internal_imports(path)
        if RANK[imported] >= RANK[path.stem]
    ]
    assert back_edges == []
