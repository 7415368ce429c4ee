"""Imports inside the package point one way: from the capability down to the state table."""

from __future__ import annotations

import ast
from pathlib import Path

import subagents_cancel

# Lower layers never import higher ones. Modules on one layer do not import each other.
LAYERS: list[set[str]] = [
    {'errors', 'clock', 'ids', 'testing', 'shield', 'gc_pause', 'tool_threads', 'output_text'},
    {'states', 'processes', 'output_codec', 'delivery', 'timers', 'task_timers'},
    {'message_parts'},
    {'notebook_shapes'},
    {'notebook_view'},
    {'results'},
    {'messages'},
    {'reasons', 'started', 'outcomes'},
    {'regions', 'config', 'wire'},
    {'transport', 'arrivals', 'settings'},
    {'registry', 'reports', 'metrics', 'defaults', 'owner_mailbox', 'grace_windows', 'receipts', 'cancel_resends'},
    {'replies', 'refusals', 'subagent_replies', 'resume_replies'},
    {'waiting', 'instructions', 'tooling', 'added_tools', 'task_binding', 'telemetry'},
    {'task_context', 'task_capability', 'preemption', 'run_usage', 'run_failures', 'parent_line', 'history_surgery'},
    {'run_race', 'task_spec'},
    {'cascade'},
    {'run_channel'},
    {'cancel_mailbox'},
    {'book_reports'},
    {'launch', 'runner', 'task_book'},
    {'host_settles'},
    {'cancels', 'task_host', 'lease', 'tracing', 'parent_reports', 'local_mailboxes'},
    {'taken_ids'},
    {'hooks'},
    {'nesting', 'task_workflow'},
    {'supervisor', 'owner_transport', 'child_transport'},
    {'region_service', 'resume'},
    {'owner'},
    {'region_front'},
    {'manager'},
    {'parent_tool_args'},
    {'tools', 'shutdown'},
    {'capability'},
    {'subagent_tree'},
    {'worker'},
    {'cli'},
    {'demo_scripts', 'demo_log'},
    {'demo'},
    {'__init__', '__main__'},
]
RANK = {module: rank for rank, layer in enumerate(LAYERS) for module in layer}
SOURCE = Path(subagents_cancel.__file__).parent


PACKAGES = {'_engine', '_text'}
"""The private subpackages; a module is ranked by its own name, wherever it lives."""


def modules() -> list[Path]:
    """Every module of the package, in its subpackages too (their `__init__` holds only a docstring)."""
    return sorted(path for path in SOURCE.rglob('*.py') if path.parent == SOURCE or path.name != '__init__.py')


def _named(module: str, names: list[str]) -> set[str]:
    """The modules an import names: `module` itself, or the `names` it imports from a (sub)package."""
    parts = [part for part in module.split('.') if part]
    if not parts or parts[-1] in PACKAGES:
        return set(names)
    return {parts[-1]}


def internal_imports(path: Path) -> set[str]:
    """The package modules `path` imports: every import at any level, those under `if TYPE_CHECKING:` included."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level >= 1:
            found |= _named(node.module or '', [alias.name for alias in node.names])
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith('subagents_cancel.'):
            found |= _named(node.module.removeprefix('subagents_cancel'), [alias.name for alias in node.names])
        elif isinstance(node, ast.Import):
            found |= {
                alias.name.rsplit('.', 1)[1] for alias in node.names if alias.name.startswith('subagents_cancel.')
            }
    return found


def test_every_module_has_a_layer() -> None:
    """A new module must be placed in the layering first."""
    assert {path.stem for path in modules()} <= set(RANK)


def test_imports_only_point_down() -> None:
    """No module imports one on its own layer or above."""
    back_edges = [
        (path.stem, imported)
        for path in modules()
        for imported in internal_imports(path)
        if RANK[imported] >= RANK[path.stem]
    ]
    assert back_edges == []


def test_the_engine_and_the_text_are_private_packages() -> None:
    """The engine's modules and the text for models and people live in private subpackages, not at the top."""
    top = {path.stem for path in SOURCE.glob('*.py')}
    assert {path.stem for path in (SOURCE / '_engine').glob('*.py')} - {'__init__'}
    assert {path.stem for path in (SOURCE / '_text').glob('*.py')} - {'__init__'}
    assert not top & {'runner', 'supervisor', 'task_book', 'registry', 'replies', 'refusals'}


def test_type_only_and_nested_imports_count(tmp_path: Path) -> None:
    """An import under `if TYPE_CHECKING:` or inside a function is an edge like any other."""
    source = tmp_path / 'module.py'
    source.write_text(
        'from typing import TYPE_CHECKING\n'
        'if TYPE_CHECKING:\n'
        '    from .states import TaskStatus\n'
        'def late() -> None:\n'
        '    from . import manager\n'
        '    import subagents_cancel.regions\n'
    )
    assert internal_imports(source) == {'states', 'manager', 'regions'}
