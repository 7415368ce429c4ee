"""How a sub-agent's output, an arbitrary Python object, travels in a JSON message and is turned back.

In JSON an output is `{"type": "<module>.<qualname>", "data": <its JSON form>}` (`None` travels as `null`).
Decoding a message gives an [`EncodedOutput`][subagents_cancel.output_codec.EncodedOutput] in its place, and
[`decode_output`][subagents_cancel.output_codec.decode_output] turns that back into the sub-agent's `output_type`.
In-process nothing is encoded: a message built or validated from Python objects keeps the output object itself.

An output pydantic cannot serialise (an instance of a plain class, a list that contains itself) is not lost:
its `repr`, shortened to a bounded size, travels as `data`, and its `type` ends in
[`UNSERIALISABLE`][subagents_cancel.output_codec.UNSERIALISABLE]; such an output cannot be turned back.
Neither is text that UTF-8 cannot carry, anywhere in a message (see
[`message_json`][subagents_cancel.output_codec.message_json]).
"""

from __future__ import annotations

import inspect
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import JsonValue, PlainSerializer, PlainValidator, TypeAdapter, ValidationError, ValidationInfo
from pydantic_ai import NativeOutput, PromptedOutput, TextOutput, ToolOutput
from pydantic_core import PydanticSerializationError, to_json, to_jsonable_python
from typing_extensions import TypedDict

from ._text.output_text import shortened

if TYPE_CHECKING:
    from typing_extensions import TypeForm

__all__ = (
    'UNSERIALISABLE',
    'EncodedOutput',
    'OutputRestorer',
    'TypedOutput',
    'decode_output',
    'encode_output',
    'in_place_of_unknown',
    'message_json',
)

UNSERIALISABLE = ' (unserialisable; data is its shortened repr)'
"""Ends the `type` of an output that pydantic could not serialise, whose `data` is its shortened `repr`."""


@dataclass(frozen=True, slots=True)
class EncodedOutput:
    """An output as it arrived in JSON: the name of its type and its JSON form."""

    type_name: str
    """`<module>.<qualname>` of the output's type, followed by `UNSERIALISABLE` if only its `repr` travelled."""
    data: JsonValue
    """The output's JSON form, as pydantic serialised it (`to_jsonable_python`)."""


_Message = typing.TypeVar('_Message')


class _OutputJson(TypedDict):
    type: str
    data: JsonValue


def encode_output(value: object) -> _OutputJson | None:
    """The JSON form of an output: its type's name and its data; `None` for `None`.

    An [`EncodedOutput`][subagents_cancel.output_codec.EncodedOutput] (an output that arrived from JSON and is
    sent on) encodes to the form it arrived in.
    """
    if value is None:
        return None
    if isinstance(value, EncodedOutput):
        return {'type': value.type_name, 'data': value.data}
    type_name = f'{type(value).__module__}.{type(value).__qualname__}'
    try:
        data: JsonValue = to_jsonable_python(value)
    except ValueError:  # pydantic's serialisation error, or a circular reference
        return {'type': type_name + UNSERIALISABLE, 'data': shortened(value)}
    return {'type': type_name, 'data': data}


def in_place_of_unknown(value: object) -> str:
    """What travels in place of a value pydantic has no JSON form for: its `repr`, shortened to a bounded size.

    Such a value may sit anywhere in a message (a tool's plain-object result in a run's conversation). Pass it as
    `fallback=` to a `TypeAdapter`'s `dump_json`, as [`encode_wire`][subagents_cancel.wire.encode_wire] does.
    """
    return shortened(value)


def message_json(adapter: TypeAdapter[_Message], message: _Message) -> bytes:
    """`message` as JSON, by `adapter`, with `in_place_of_unknown` for any value that has no JSON form.

    Text that UTF-8 cannot carry travels with U+FFFD in place of each lone surrogate (half of an emoji, which a
    model's SDK or a tool's `json.loads` can hand over): the message still goes, where pydantic would refuse it.
    """
    try:
        return adapter.dump_json(message, fallback=in_place_of_unknown)
    except PydanticSerializationError:
        data = adapter.dump_python(message, mode='json', fallback=in_place_of_unknown)
        return to_json(_whole_text(data), inf_nan_mode='null')  # as `dump_json` writes an infinite float


_LONE_SURROGATE = re.compile('[\ud800-\udfff]')


def _whole_text(data: object) -> object:
    """`data` (JSON-shaped Python) with each lone surrogate in its strings replaced by U+FFFD."""
    if isinstance(data, str):
        return _LONE_SURROGATE.sub('\ufffd', data)
    if isinstance(data, list):
        return [_whole_text(item) for item in typing.cast(list[object], data)]
    if isinstance(data, dict):
        return {_whole_text(key): _whole_text(value) for key, value in typing.cast(dict[object, object], data).items()}
    return data


_ENCODED = TypeAdapter(_OutputJson)


def _arrive(value: object, info: ValidationInfo) -> object:
    """Keep a Python output untouched; read one that arrived in JSON as an `EncodedOutput`."""
    if info.mode != 'json' or value is None:
        return value
    encoded = _ENCODED.validate_python(value)
    return EncodedOutput(encoded['type'], encoded['data'])


TypedOutput = Annotated[
    object,
    PlainValidator(_arrive, json_schema_input_type=_OutputJson | None),
    PlainSerializer(encode_output, when_used='json'),
]
"""A message field that holds a sub-agent's output: any object in-process, `{"type", "data"}` in JSON."""


def decode_output(value: object, output_type: TypeForm[object]) -> object:
    """Turn an output that arrived in JSON back into `output_type`; any other value is returned untouched.

    Args:
        value: a message's output field: an [`EncodedOutput`][subagents_cancel.output_codec.EncodedOutput] if the
            message was decoded from JSON, else the output object itself (returned as it is).
        output_type: the sub-agent's `output_type` (a type, a union, `list[Model]`...); its `TypeAdapter`
            validates the data, so plain JSON types come back as themselves.

    Returns:
        The output as `output_type`, or `value` itself if it was not encoded, or could not be serialised (the
        `EncodedOutput` of its `repr` then comes back unchanged).

    Raises:
        pydantic.ValidationError: the data does not fit `output_type`.
    """
    if not isinstance(value, EncodedOutput) or value.type_name.endswith(UNSERIALISABLE):
        return value
    return TypeAdapter(output_type).validate_python(value.data)


_JSON_TYPES = frozenset(
    {'builtins.str', 'builtins.int', 'builtins.float', 'builtins.bool', 'builtins.list', 'builtins.dict'}
)
"""Types whose JSON form is the value itself: an output of one of them comes back as its data."""


class OutputRestorer:
    """Turns the outputs of one sub-agent that arrived in JSON back into the types its agent can produce.

    Built from the agent's `output_type` (pydantic-ai's output spec: a type, a union, a list of types, a
    `ToolOutput`/`NativeOutput`/`PromptedOutput`/`TextOutput`, an output function). An output comes back as the
    type among those whose `<module>.<qualname>` it names, validated from its data; an output of a JSON type that
    fits none of them (a wrap-up text of a structured sub-agent) comes back as its data. Anything else (a type
    the spec does not name: never imported from a name that arrived in a message) stays an `EncodedOutput`.
    """

    def __init__(self, output_spec: object) -> None:
        self._forms: dict[str, object] = {}
        for form in _forms_of(output_spec):
            self._forms.setdefault(_name_of(form), form)
        self._adapters: dict[str, TypeAdapter[Any]] = {}

    def restore(self, value: object) -> object:
        """`value` as the sub-agent's own type if it arrived in JSON and names one; otherwise as it is."""
        if not isinstance(value, EncodedOutput) or value.type_name.endswith(UNSERIALISABLE):
            return value
        if (form := self._forms.get(value.type_name)) is not None:
            adapter = self._adapters.get(value.type_name)
            if adapter is None:
                adapter = self._adapters[value.type_name] = TypeAdapter[Any](form)  # pyright: ignore[reportArgumentType]
            try:
                return adapter.validate_python(value.data)
            except ValidationError:
                pass  # it says it is that type but its data does not fit: keep what arrived
        return value.data if value.type_name in _JSON_TYPES else value


def _name_of(form: object) -> str:
    origin = typing.get_origin(form) or form
    return f'{getattr(origin, "__module__", "")}.{getattr(origin, "__qualname__", repr(origin))}'


def _forms_of(spec: object) -> list[object]:
    """The type forms an output spec can produce, outermost first."""
    match spec:
        case ToolOutput():
            return _forms_of(typing.cast(object, spec.output))  # pyright: ignore[reportUnknownMemberType]
        case NativeOutput() | PromptedOutput():
            return _forms_of(typing.cast(object, spec.outputs))  # pyright: ignore[reportUnknownMemberType]
        case TextOutput():
            return _forms_of(typing.cast(object, spec.output_function))  # pyright: ignore[reportUnknownMemberType]
        case list() | tuple():
            return [form for item in typing.cast('list[object]', spec) for form in _forms_of(item)]
        case _ if typing.get_origin(spec) in (typing.Union, types.UnionType):
            return [form for arg in typing.get_args(spec) for form in _forms_of(arg)]
        case _ if typing.get_origin(spec) is Annotated:
            return _forms_of(typing.get_args(spec)[0])
        case type() | types.GenericAlias():
            return [spec]
        case _ if callable(spec):
            return _forms_of(_return_type(spec))
        case _:
            return []


def _return_type(function: Callable[..., object]) -> object:
    try:
        return typing.get_type_hints(function).get('return')
    except (NameError, TypeError):  # an annotation that does not resolve: nothing to restore to
        annotation = inspect.signature(function).return_annotation
        return None if annotation is inspect.Signature.empty or isinstance(annotation, str) else annotation
