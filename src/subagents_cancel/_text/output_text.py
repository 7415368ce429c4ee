"""Sub-agent outputs of any size and kind as text, at a cost that does not grow with the output.

An output is an arbitrary object: a million items, an object whose `repr` raises, a list that contains itself.
`fits_in_a_reply` looks at a bounded number of its parts to
tell whether it is small enough to be serialised whole; a larger one is shown
`shortened`, in Python notation, from a bounded number of its parts.
"""

from __future__ import annotations

import dataclasses
import reprlib
from collections.abc import Iterable, Sized
from itertools import islice
from typing import Any, cast

from pydantic import BaseModel

__all__ = ('MAX_PARTS', 'fits_in_a_reply', 'safe_repr', 'shortened')

MAX_PARTS = 40_000
"""The most parts (items, fields, and characters of strings) an output may have to be serialised whole.

Each part takes at least one character of JSON, so every output whose JSON fits in a reply (20,000 characters) is
serialised whole; looking at this many parts takes tens of milliseconds (`render_output` of a 2-million-item
output took 0.2 ms, and 3 s and 285 MB before it was shortened)."""
_MAX_SHOWN = 2_000
"""The most parts a shortened output shows; every one past it reads `...`."""


def safe_repr(value: object) -> str:
    """`repr(value)`, or what it is if its `repr` raises."""
    try:
        return repr(value)
    except Exception as error:  # noqa: BLE001 - an output's own repr may raise anything; a reply must not
        return f'<{type(value).__name__} object; its repr raised {type(error).__name__}>'


def _parts(value: object) -> Iterable[object]:
    """The parts of `value` that serialising it visits, or none."""
    if isinstance(value, dict):
        return (part for item in value.items() for part in item)  # pyright: ignore[reportUnknownVariableType]
    if isinstance(value, list | tuple | set | frozenset):
        return value  # pyright: ignore[reportUnknownVariableType]
    if isinstance(value, BaseModel):
        return vars(value).values()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return (getattr(value, field.name) for field in dataclasses.fields(value))
    return ()


def _is_text(value: object) -> bool:
    return isinstance(value, str | bytes)


def _size(value: object) -> int:
    """How many characters or items a string or builtin container holds; 0 for anything else."""
    return len(cast(Sized, value)) if isinstance(value, str | bytes | dict | list | tuple | set | frozenset) else 0


def fits_in_a_reply(value: object) -> bool:
    """Whether `value` has at most `MAX_PARTS` parts; it looks at `MAX_PARTS` of them at most."""
    budget = MAX_PARTS
    stack: list[object] = [value]
    while stack:
        item = stack.pop()
        if _is_text(item):
            budget -= _size(item)
        elif _size(item) > budget:
            return False
        budget -= 1
        stack.extend(islice(_parts(item), max(budget, 0)))
        if budget < 0:
            return False
    return True


class _ShortRepr(reprlib.Repr):
    """`reprlib.Repr` that stops after `_MAX_SHOWN` parts and never raises.

    It also shortens subclasses of the builtin containers, pydantic models and dataclasses.
    """

    def __init__(self) -> None:
        super().__init__()
        self.maxlevel = 6
        self.maxlist = self.maxtuple = self.maxset = self.maxfrozenset = self.maxdeque = self.maxarray = 30
        self.maxdict = 30
        self.maxstring = self.maxother = 200
        self.maxlong = 60
        self.shown = 0

    def repr1(self, x: Any, level: int) -> str:
        self.shown += 1
        if self.shown > _MAX_SHOWN:
            return '...'
        if isinstance(x, BaseModel):
            return self._fields(type(x).__name__, vars(x).items(), level)
        if dataclasses.is_dataclass(x) and not isinstance(x, type):
            fields = ((field.name, getattr(x, field.name)) for field in dataclasses.fields(x) if field.repr)
            return self._fields(type(x).__name__, fields, level)
        for kind in (str, bytes, dict, list, tuple, set, frozenset):
            if isinstance(x, kind):
                return getattr(self, f'repr_{kind.__name__}', self.repr_instance)(x, level)
        return super().repr1(x, level)

    def repr_bytes(self, x: bytes, level: int) -> str:
        return self.repr_str(x, level)  # pyright: ignore[reportArgumentType] - slicing and repr work alike

    def repr_instance(self, x: Any, level: int) -> str:
        text = safe_repr(x)
        return text if len(text) <= self.maxother else f'{text[: self.maxother - 3]}...'

    def _fields(self, name: str, fields: Iterable[tuple[str, object]], level: int) -> str:
        if level <= 0:
            return f'{name}(...)'
        shown = [f'{key}={self.repr1(value, level - 1)}' for key, value in islice(fields, self.maxlist + 1)]
        if len(shown) > self.maxlist:
            shown[-1] = '...'
        return f'{name}({", ".join(shown)})'


def shortened(value: object) -> str:
    """`value` in Python notation, each container shown by its first items, `_MAX_SHOWN` parts at most."""
    return _ShortRepr().repr1(value, 6)
