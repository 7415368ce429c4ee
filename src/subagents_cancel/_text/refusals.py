"""The replies that refuse bad input to the parent's tools: an unknown task, sub-agent or region, bad arguments.

Each says what was wrong and how to call the tool again. Echoed input is shortened, so a 10,000-character id
is not sent back whole.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import ValidationError

from .reports import MAX_ECHO, cut, show

__all__ = (
    'arguments_not_an_object',
    'bad_arguments',
    'empty_task_id',
    'manager_closed',
    'no_region',
    'unknown_subagent',
    'unknown_task',
)


def unknown_task(task_id: str, *, finished_forgotten: bool = False) -> str:
    """Reply for an id this owner does not know (including another run's task, and a forgotten finished one)."""
    reply = f'No task {show(task_id)} in this run; call list_active_tasks() to see your tasks.'
    if finished_forgotten:
        reply += ' The oldest finished tasks are forgotten to save memory; it may have been one of them.'
    return reply


def empty_task_id() -> str:
    """Reply for an empty task id."""
    return "task_id is empty; pass the id that `task` returned, e.g. 'researcher-3f9a07c2'."


def no_region(region: str) -> str:
    """Reply for a region name that no task was started in."""
    return f'No task was started in region {show(region)}; pass the region you gave to `task`.'


def unknown_subagent(name: str, available: Sequence[str]) -> str:
    """Reply for a `subagent_type` that is not configured."""
    return f'No sub-agent {show(name)}; choose one of: {", ".join(available)}.'


def manager_closed() -> str:
    """Reply when the owner of the tasks is not open (or is shutting down)."""
    return 'Sub-agents are not available: their owner is not open or is shutting down.'


def bad_arguments(tool_name: str, error: ValidationError) -> str:
    """Reply for arguments that do not fit the tool's schema."""
    found = error.errors(include_url=False, include_input=False)
    problems = '; '.join(
        f'{".".join(_argument_name(part) for part in problem["loc"]) or "arguments"}: {problem["msg"]}'
        for problem in found[:_MAX_PROBLEMS]
    )
    if len(found) > _MAX_PROBLEMS:
        problems += f'; and {len(found) - _MAX_PROBLEMS:,} more problems'
    return f'Invalid arguments for {tool_name}: {problems}. Call it again with arguments that fit its schema.'


_MAX_PROBLEMS = 5


def _argument_name(part: str | int) -> str:
    """One step of a path to a bad argument: a plain name or index as it is, any other key quoted and shortened."""
    if isinstance(part, int) or (part.isidentifier() and part.isascii() and len(part) <= MAX_ECHO):
        return str(part)
    return show(part)


_JSON_TYPE_TEXT = {
    'array': 'an array',
    'number': 'a number',
    'string': 'a string',
    'boolean': 'true or false',
    'null': 'null',
    'object with non-string keys': 'an object with keys that are not strings',
}


def arguments_not_an_object(
    tool_name: str,
    json_type: str | None,
    required: Sequence[str],
    optional: Sequence[str],
    *,
    parse_error: str | None = None,
) -> str:
    """Reply for arguments that are not a JSON object: `json_type` says what they are, `None` if not JSON at all."""
    if json_type is None:
        problem = f'the arguments are not valid JSON ({cut(parse_error or "", MAX_ECHO * 4)})'
        problem += f'; they must be {_json_object_with(required, optional)}'
    else:
        problem = f'the arguments must be {_json_object_with(required, optional)}, not {_JSON_TYPE_TEXT[json_type]}'
    return f'Invalid arguments for {tool_name}: {problem}. Call it again with arguments that fit its schema.'


def _json_object_with(required: Sequence[str], optional: Sequence[str]) -> str:
    if required and optional:
        return f'a JSON object with {_and(required)} (and optionally {", ".join(optional)})'
    if required:
        return f'a JSON object with {_and(required)}'
    if optional:
        return f'a JSON object (its fields {", ".join(optional)} are all optional)'
    return 'an empty JSON object, {}'


def _and(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else f'{", ".join(names[:-1])} and {names[-1]}'
