"""The worker threads that run one owner's sync tools, where a thread stuck in a stopped task gives up its place.

A sync tool runs in a worker thread, and nothing can stop a thread from outside. When a task is stopped while
one of its sync tools is still working, the call *lingers*: its thread is taken for as long as the tool runs,
perhaps for ever. A plain fixed-size pool would lose that thread, and once every thread is held so, every
later task that calls a sync tool would wait for ever. Here a lingering call leaves the pool's budget instead:
the pool may start one more thread in its place, up to `max_lingering` lingering threads at once. Past that
bound, lingering threads count against the budget again, and new calls wait for a thread.

The threads are daemon threads that are not registered for the interpreter's exit: a tool stuck for ever does
not keep the process from exiting (a `ThreadPoolExecutor` joins its threads at exit, and would).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic_ai import Agent
from pydantic_ai.agent import AbstractAgent
from pydantic_ai.capabilities import AbstractCapability, UseThreadExecutor

__all__ = ('SyncToolPool', 'declares_executor')

_T = TypeVar('_T')
_log = logging.getLogger('subagents_cancel')


@dataclass(eq=False, slots=True)
class _Call:
    future: Future[Any]
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


class SyncToolPool(Executor):
    """Runs sync tool calls on daemon threads: `size` for live tasks, plus one per lingering call, up to a bound."""

    def __init__(self, size: int, *, max_lingering: int, name: str) -> None:
        """Prepare the pool; threads start as calls arrive.

        Args:
            size: How many threads may work for tasks that have not been stopped.
            max_lingering: How many lingering calls may each have a thread started in their place.
            name: The prefix of the threads' names.
        """
        self._size = size
        self._max_lingering = max_lingering
        self._name = name
        self._lock = threading.Lock()
        self._calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._threads = 0
        self._idle = 0
        """Threads waiting for a call that no call is promised to yet."""
        self._unclaimed = 0
        """Calls queued that no thread is promised to yet."""
        self._lingering: set[Future[Any]] = set()
        self._closed = False
        self._warned = False

    @property
    def lingering(self) -> int:
        """How many calls of stopped tasks are still running (each holds a thread)."""
        return len(self._lingering)

    @property
    def threads(self) -> int:
        """How many worker threads exist now."""
        return self._threads

    def submit(self, fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> Future[_T]:
        """Run `fn(*args, **kwargs)` in a worker thread; a thread is started if none is idle and the budget allows."""
        future: Future[_T] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError('The sync tool pool is shut down.')
            self._calls.put(_Call(future, fn, args, kwargs))
            if self._idle:
                self._idle -= 1  # an idle thread takes it
            else:
                self._unclaimed += 1
                self._start_threads()
        return future

    def linger(self, futures: set[Future[Any]]) -> None:
        """Note that `futures` belong to a stopped task: their threads leave the budget, within the bound."""
        with self._lock:
            self._lingering.update(future for future in futures if not future.done())
            if len(self._lingering) > self._max_lingering and not self._warned:
                self._warned = True
                _log.warning(
                    '%d sync tool calls of stopped tasks are still running, more than max_lingering_threads (%d): '
                    'new sync tool calls wait for a thread',
                    len(self._lingering),
                    self._max_lingering,
                )
            self._start_threads()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Let the idle threads end, and each busy one once its call returns; never waits for a thread."""
        with self._lock:
            self._closed = True
            for _ in range(self._threads):
                self._calls.put(None)

    def _budget(self) -> int:
        return self._size + min(len(self._lingering), self._max_lingering)

    def _start_threads(self) -> None:
        """Start a thread for each unclaimed call, within the budget; the caller holds the lock."""
        while self._unclaimed and self._threads < self._budget() and not self._closed:
            self._unclaimed -= 1
            self._threads += 1
            thread = threading.Thread(target=self._work, name=f'{self._name}-{self._threads}', daemon=True)
            thread.start()

    def _work(self) -> None:
        while (call := self._calls.get()) is not None:
            if call.future.set_running_or_notify_cancel():
                try:
                    result = call.fn(*call.args, **call.kwargs)
                except BaseException as error:  # noqa: BLE001 - the call's failure belongs to its future
                    call.future.set_exception(error)
                else:
                    call.future.set_result(result)
                    del result
            with self._lock:
                self._lingering.discard(call.future)
                del call  # an idle thread must not keep its last call (and the task it ran for) alive
                if self._threads > self._budget():
                    self._threads -= 1  # a lingering call has returned: the pool shrinks back to its budget
                    return
                if self._unclaimed:
                    self._unclaimed -= 1  # take a call that is waiting for a thread
                else:
                    self._idle += 1


def declares_executor(agent: AbstractAgent[None, object]) -> bool:
    """Whether `agent` may bring a thread executor of its own (a `UseThreadExecutor` capability).

    Such a capability sets the executor inside the run, over one set around it; only a run capability replaces
    it. An agent that is not an `Agent` (a wrapper) is not looked into, and counts as declaring one.
    """
    if not isinstance(agent, Agent):
        return True
    found: list[AbstractCapability[None]] = []
    agent.root_capability.apply(lambda capability: found.append(capability))
    return any(isinstance(capability, UseThreadExecutor) for capability in found)
