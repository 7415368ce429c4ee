"""Tools whose arguments this library validates itself, so bad input gets a reply, never a retry.

pydantic-ai answers arguments that fail a tool's schema with a retry, and a tool that runs out of
retries ends the whole run. A model that keeps sending a wrong type or a missing argument must not
be able to end its parent's run, so our tools show the model a precise JSON schema but accept any
JSON object, validate it with a pydantic model, and reply with what is wrong.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from copy import deepcopy
from functools import cache
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_ai import Tool

from . import replies

__all__ = ('ToolArgs', 'validated_tool')


class ToolArgs(BaseModel):
    """Base of every tool's arguments: unknown arguments are reported, not ignored."""

    model_config = ConfigDict(extra='forbid', frozen=True)


_ArgsT = TypeVar('_ArgsT', bound=ToolArgs)


def validated_tool(
    name: str, description: str, args_type: type[_ArgsT], handle: Callable[[_ArgsT], Awaitable[str]]
) -> Tool[object]:
    """A tool named `name` that validates its arguments as `args_type` and replies via `handle`.

    Arguments that do not validate get [`bad_arguments`][subagents_cancel.replies.bad_arguments] as the
    tool's result; `handle` runs only with valid arguments.
    """

    async def call(**arguments: object) -> str:
        try:
            args = args_type.model_validate(arguments)
        except ValidationError as error:
            return replies.bad_arguments(name, error)
        return await handle(args)

    return Tool[object].from_schema(call, name=name, description=description, json_schema=deepcopy(_schema(args_type)))


@cache
def _schema(args_type: type[ToolArgs]) -> dict[str, Any]:
    """The JSON schema the model sees for `args_type`, without titles.

    Built once per type: every sub-agent run builds its own tools, and pydantic's schema generation
    was the largest cost of starting a task. Callers get a copy, so no tool can change another's.
    """
    schema = args_type.model_json_schema()
    schema.pop('title', None)
    for prop in schema.get('properties', {}).values():
        prop.pop('title', None)
    return schema
