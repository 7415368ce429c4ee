"""Tools whose arguments this library validates itself, so bad input gets a reply, never a retry.

pydantic-ai answers arguments that fail a tool's schema with a retry, and a tool that runs out of
retries ends the whole run. A model that keeps sending a wrong type or a missing argument must not
be able to end its parent's run, so our tools show the model a precise JSON schema but accept any
JSON object, validate it with a pydantic model, and reply with what is wrong.

Arguments that are not a JSON object at all (not JSON, or an array, a number, a string, `null`) never
reach a tool function through pydantic-ai's own validator: it would retry the first and crash on the
others. A [`ValidatedToolset`][subagents_cancel._engine.tooling.ValidatedToolset] gives its tools a validator
that accepts anything and hands such arguments to the tool as a marker, so the tool replies to them too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from copy import deepcopy
from dataclasses import dataclass, replace
from functools import cache
from typing import Any, Literal, TypeVar, cast

import pydantic_core
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_ai import FunctionToolset, RunContext, Tool
from pydantic_ai.messages import ToolReturn
from pydantic_ai.toolsets import ToolsetTool

from subagents_cancel._text import refusals

__all__ = ('ToolArgs', 'ValidatedToolset', 'validated_tool')


class ToolArgs(BaseModel):
    """Base of every tool's arguments: unknown arguments are reported, not ignored."""

    model_config = ConfigDict(extra='forbid', frozen=True)


_ArgsT = TypeVar('_ArgsT', bound=ToolArgs)


def validated_tool(
    name: str,
    description: str,
    args_type: type[_ArgsT],
    handle: Callable[[_ArgsT], Awaitable[str | ToolReturn]],
    *,
    metadata: dict[str, Any] | None = None,
) -> Tool[object]:
    """A tool named `name` that validates its arguments as `args_type` and replies via `handle`.

    Arguments that do not validate get [`bad_arguments`][subagents_cancel._text.refusals.bad_arguments] as the
    tool's result; `handle` runs only with valid arguments. Put it in a
    [`ValidatedToolset`][subagents_cancel._engine.tooling.ValidatedToolset], so arguments that are not a JSON object
    get a reply as well. `metadata` is the tool's pydantic-ai metadata.
    """
    required, optional = _fields(args_type)

    async def call(**arguments: object) -> str | ToolReturn:
        malformed = arguments.get(_MALFORMED_KEY)
        if isinstance(malformed, _Malformed):
            return refusals.arguments_not_an_object(
                name, malformed.json_type, required, optional, parse_error=malformed.parse_error
            )
        try:
            args = args_type.model_validate(arguments)
        except ValidationError as error:
            return refusals.bad_arguments(name, error)
        return await handle(args)

    tool = Tool[object].from_schema(call, name=name, description=description, json_schema=deepcopy(_schema(args_type)))
    tool.metadata = metadata
    return tool


class ValidatedToolset(FunctionToolset[object]):
    """A toolset of `validated_tool`s that sees every argument a model sends.

    Its tools take pydantic-ai's validation out of the path: whatever the model sent reaches the tool,
    which validates it and replies. Arguments that are not a JSON object arrive as a marker the tool
    recognises, so no input can make pydantic-ai retry (and, after one retry, end the run) or crash.
    """

    _built: dict[int, dict[str, ToolsetTool[object]]] | None = None
    """The tools as `get_tools` returns them, by the retry budget they were built with."""

    async def get_tools(self, ctx: RunContext[object]) -> dict[str, ToolsetTool[object]]:
        """This toolset's tools, each with a validator that accepts any arguments.

        Built from each tool's fixed definition: a `validated_tool` has no `prepare` function, so the copy of the
        run context that `FunctionToolset.get_tools` makes for each tool on every step, to pass to one, is not made.
        The tools are the ones given at construction, so they are built once per retry budget (the only thing of
        the run they depend on), not on every step of every run.
        """
        if self._built is None:
            self._built = {}
        tools = self._built.get(ctx.max_retries)
        if tools is None:
            tools = self._built[ctx.max_retries] = {
                name: replace(
                    self.tool_for_tool_def(tool.tool_def, ctx=ctx, original_name=name), args_validator=_ANY_ARGUMENTS
                )
                for name, tool in self.tools.items()
            }
        return dict(tools)


_JsonType = Literal['array', 'number', 'string', 'boolean', 'null', 'object with non-string keys']
"""What a tool's arguments were instead of a JSON object."""

_MALFORMED_KEY = 'malformed arguments'
"""Where malformed arguments reach a tool. A model can send this key too, but only as JSON, never as a `_Malformed`."""


@dataclass(frozen=True, slots=True)
class _Malformed:
    """Arguments that are not a JSON object: what they are instead, or why they are not JSON."""

    json_type: _JsonType | None
    """`None` when they are not JSON at all."""
    parse_error: str | None = None


class _AnyArguments:
    """A validator for pydantic-ai's `ToolsetTool.args_validator` that never rejects: its tool judges the arguments.

    A JSON object comes back as it is; anything else comes back as `{_MALFORMED_KEY: _Malformed(...)}`.
    """

    def validate_json(
        self,
        input: str | bytes | bytearray,
        *,
        allow_partial: bool | Literal['off', 'on', 'trailing-strings'] = False,
        **kwargs: Any,
    ) -> dict[str, object]:
        try:
            value = pydantic_core.from_json(input, allow_partial=allow_partial)
        except ValueError as error:  # not JSON, or nested deeper than the parser allows
            return {_MALFORMED_KEY: _Malformed(None, str(error))}
        return self.validate_python(value)

    def validate_python(
        self, input: Any, *, allow_partial: bool | Literal['off', 'on', 'trailing-strings'] = False, **kwargs: Any
    ) -> dict[str, object]:
        if not isinstance(input, dict):
            return {_MALFORMED_KEY: _Malformed(_json_type(input))}
        arguments = cast('dict[object, object]', input)
        if not all(isinstance(key, str) for key in arguments):  # only a Python caller can send these, never JSON
            return {_MALFORMED_KEY: _Malformed('object with non-string keys')}
        return cast('dict[str, object]', arguments)


_ANY_ARGUMENTS = _AnyArguments()


def _json_type(value: object) -> _JsonType:
    match value:
        case None:
            return 'null'
        case bool():
            return 'boolean'
        case int() | float():
            return 'number'
        case str():
            return 'string'
        case _:
            return 'array'


@cache
def _fields(args_type: type[ToolArgs]) -> tuple[Sequence[str], Sequence[str]]:
    """The names of `args_type`'s required and optional arguments, in schema order."""
    fields = args_type.model_fields
    return (
        tuple(name for name, field in fields.items() if field.is_required()),
        tuple(name for name, field in fields.items() if not field.is_required()),
    )


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
