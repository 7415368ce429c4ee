"""Pausing Python's cyclic garbage collector while many runs unwind at once.

Stopping many pydantic-ai runs at once allocates, for each, exceptions, tracebacks and loop callbacks. The
collector runs by allocation count, so it keeps starting, and each pass scans every live object, including
the runs not yet unwound. With 1,000 runs blocked in model requests, collection was about half of the unwind
time (timed with `gc.callbacks`); with the pause, the fan-out scenario of `benchmarks/run_all.py` went from
2.2 s to 0.9 s for the parent run's end, and from 1.3 s to 1.0 s for a region cancel. So while a bulk stop
is awaited (a region cancel, an owner's teardown), the collector is paused; it resumes as it was when the
last such wait ends. Memory freed by reference counting (nearly all of it) is freed as usual meanwhile; only
cycles wait for the next collection.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Generator
from contextlib import AbstractContextManager, contextmanager, nullcontext

__all__ = ('BULK', 'collector_paused')

BULK = 64
"""Runs stopped at once from which pausing pays off; fewer are stopped with the collector as it is."""

_lock = threading.Lock()
_pauses = 0
_resume = False


_UNPAUSED = nullcontext()
"""What fewer than `BULK` runs get: a reusable context manager that does nothing, so a single hard cancel
allocates nothing here."""


def collector_paused(runs: int) -> AbstractContextManager[None]:
    """Pause the cyclic collector while `runs` runs (at least `BULK`) unwind; nested and concurrent uses stack."""
    return _paused() if runs >= BULK else _UNPAUSED


@contextmanager
def _paused() -> Generator[None]:
    _pause()
    try:
        yield
    finally:
        _unpause()


def _pause() -> None:
    global _pauses, _resume
    with _lock:
        if _pauses == 0:
            _resume = gc.isenabled()
            gc.disable()
        _pauses += 1


def _unpause() -> None:
    global _pauses
    with _lock:
        _pauses -= 1
        if _pauses == 0 and _resume:
            gc.enable()
