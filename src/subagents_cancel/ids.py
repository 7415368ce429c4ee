"""Where the random parts of ids come from: message ids, owner ids and task ids.

By default from a generator of this module's own, seeded from `os.urandom` (again in a forked child): not the
`random` module's shared one, which an application may seed (two processes seeded alike would draw the same ids). Code
that must run the same again when it is replayed (a task host inside a Temporal workflow) sets a source of its own
for everything it runs, with [`random_ids_from`][subagents_cancel.ids.random_ids_from]: a context variable, so it
applies to the tasks started in the block and nowhere else in the process.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Generator
from contextlib import contextmanager
from contextvars import ContextVar

__all__ = ('random_hex', 'random_ids_from')

_generator = random.Random()  # seeded from os.urandom
if hasattr(os, 'register_at_fork'):
    os.register_at_fork(after_in_child=_generator.seed)
_random_bits = _generator.getrandbits

_source: ContextVar[Callable[[int], str] | None] = ContextVar('subagents_cancel_random_ids', default=None)


def random_hex(size: int) -> str:
    """`size` random bytes as hex digits, from this context's source."""
    source = _source.get()
    return _random_bits(size * 8).to_bytes(size).hex() if source is None else source(size)


@contextmanager
def random_ids_from(source: Callable[[int], str]) -> Generator[None]:
    """Take the random parts of ids from `source` (it returns `size` bytes as hex) in this context, in the block."""
    token = _source.set(source)
    try:
        yield
    finally:
        _source.reset(token)
