"""Only the task book writes task records: a scan of the source, since no test run can prove a negative."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import subagents_cancel
from subagents_cancel._engine.registry import TaskRecord

SOURCE = Path(subagents_cancel.__file__).parent
WRITERS = {'registry', 'task_book', 'book_reports'}
"""The record's own module (its methods change it) and the book (the only one that calls them; `book_reports` is
the part of it that applies reports)."""
FIELDS = {field.name for field in dataclasses.fields(TaskRecord)}
READERS = {'info'}
"""The record's public methods that change nothing; every other one is a write."""
MUTATORS = {
    name for name in vars(TaskRecord) if not name.startswith('_') and callable(getattr(TaskRecord, name))
} - READERS
LIST_FIELDS = {
    field.name for field in dataclasses.fields(TaskRecord) if field.default_factory is not dataclasses.MISSING
} - {'ended'}
"""The record's mutable containers (`ended`, an event, is set by `apply` and waited on by anyone)."""


def _unpacked(target: ast.expr) -> list[ast.expr]:
    if isinstance(target, ast.Tuple | ast.List):
        return [leaf for element in target.elts for leaf in _unpacked(element)]
    if isinstance(target, ast.Starred):
        return _unpacked(target.value)
    return [target]


def _targets(node: ast.stmt) -> list[ast.expr]:
    if isinstance(node, ast.Assign):
        return [leaf for target in node.targets for leaf in _unpacked(target)]
    if isinstance(node, ast.AugAssign | ast.AnnAssign):
        return [node.target]
    return []


def _is_self(node: ast.expr) -> bool:
    return isinstance(node, ast.Name) and node.id == 'self'


def _may_be_a_record_call(method: str, call: ast.Call) -> bool:
    """`TaskRecord.apply` takes `at` by keyword only: an `.apply()` without it is a pydantic-ai visitor's, not a record's."""
    return method != 'apply' or any(keyword.arg == 'at' for keyword in call.keywords)


def record_writes(path: Path) -> list[str]:
    """Where `path` assigns a record field, calls a record method that writes, or changes a record's list."""
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text())):
        for target in _targets(node) if isinstance(node, ast.stmt) else ():
            if isinstance(target, ast.Attribute) and target.attr in FIELDS and not _is_self(target.value):
                found.append(f'{path.stem}:{target.lineno} assigns .{target.attr}')
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            if node.func.attr in MUTATORS and not _is_self(owner) and _may_be_a_record_call(node.func.attr, node):
                found.append(f'{path.stem}:{node.lineno} calls .{node.func.attr}()')
            if isinstance(owner, ast.Attribute) and owner.attr in LIST_FIELDS:
                found.append(f'{path.stem}:{node.lineno} changes .{owner.attr}')
    return found


def test_the_scan_knows_what_writes_a_record() -> None:
    """The scan looks for the record's fields, its writing methods and its lists."""
    assert MUTATORS == {'apply', 'note_lost'}
    assert LIST_FIELDS == {'checkpoints', 'dropped'}
    assert {'state', 'cancel', 'cleanup_error', 'hooks_done', 'lingering_threads'} <= FIELDS
    assert any('calls .apply()' in write for write in record_writes(SOURCE / '_engine' / 'task_book.py'))
    assert any('changes .checkpoints' in write for write in record_writes(SOURCE / '_engine' / 'book_reports.py'))


def test_only_the_task_book_writes_task_records() -> None:
    """No module (in any package of the library) but the registry and the task book writes a record."""
    writes = [
        write for path in sorted(SOURCE.rglob('*.py')) if path.stem not in WRITERS for write in record_writes(path)
    ]
    assert writes == []
