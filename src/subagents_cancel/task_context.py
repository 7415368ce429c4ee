"""What code running inside a sub-agent task can know about its task, and the links between nested tasks.

Inside a task — in the sub-agent's tools, hooks, and the worker threads of its sync tools —
[`current_task()`][subagents_cancel.current_task] returns its [`TaskContext`][subagents_cancel.TaskContext]: its
id, whether it was asked to stop (a sync tool in a thread cannot be interrupted, so it should look), and a scratch
directory that is deleted when the task is cancelled. A sub-agent that has sub-agents of its own registers their
owner here, so a cancel of the task reaches them first.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ._engine.tool_threads import SyncToolPool
from .clock import Clock
from .messages import TaskId
from .transport import Transport

__all__ = ('NestedOwner', 'TaskCancelRequested', 'TaskContext', 'TaskThreads', 'current_task', 'task_scope')

_T = TypeVar('_T')


@dataclass(frozen=True, slots=True)
class NestedOwner:
    """An owner of tasks opened inside another task (a nested sub-agent's manager), as that task knows it.

    Only where to reach it: the task sends it a [`CancelAll`][subagents_cancel.messages.CancelAll] when its own
    cancel cascades, and learns about its tasks from the messages it sends back.
    """

    transport: Transport
    """The transport its mailbox is on."""
    address: str
    """Its mailbox address on that transport."""


_SCRATCH = threading.Lock()
"""Makes a scratch directory and settles it one at a time: a thread may ask for one while its task is settled."""


class TaskCancelRequested(Exception):
    """Raised by [`TaskContext.raise_if_stopped`][subagents_cancel.TaskContext.raise_if_stopped]."""

    def __init__(self, task_id: str) -> None:
        self.task_id = task_id
        super().__init__(f'Task {task_id!r} was asked to stop.')


class TaskContext:
    """The task that the current code runs in; get it with [`current_task()`][subagents_cancel.current_task]."""

    def __init__(
        self,
        task_id: TaskId,
        *,
        root_id: str,
        clock: Clock,
        transport: Transport,
        owner_address: str,
        host_address: str,
        cancel_requested: Callable[[], bool],
        stop_requested: Callable[[], bool],
    ) -> None:
        self.task_id = task_id
        """The task's id."""
        self.root_id = root_id
        """The id of the top-level owner (the parent run or manager scope at the root of the task tree)."""
        self.clock = clock
        """The clock of the task's owner; nested owners use it too."""
        self.transport = transport
        """The transport between the task and its owner."""
        self.owner_address = owner_address
        """The mailbox address of the task's owner on `transport`."""
        self.host_address = host_address
        """The mailbox address of the host that runs the task: messages for the task go there, with its `task_id`."""
        self._cancel_requested = cancel_requested
        self._stop_requested = stop_requested
        self._nested: tuple[NestedOwner, ...] = ()
        self._scratch_dir: Path | None = None
        self._scratch_settled = False

    @property
    def cancel_requested(self) -> bool:
        """Whether the task was asked to stop, softly or hard; safe to read from a worker thread.

        Under a soft cancel the sub-agent still reads what a tool returns: a long tool can return early
        with what it has, and the model wraps up with it.
        """
        return self._cancel_requested()

    @property
    def stopped(self) -> bool:
        """Whether the task's run is being stopped (a hard cancel, an expired grace window, its owner gone).

        Nothing a tool returns from now on is read; safe to read from a worker thread.
        """
        return self._stop_requested()

    def raise_if_stopped(self) -> None:
        """Raise [`TaskCancelRequested`][subagents_cancel.task_context.TaskCancelRequested] if the run is being stopped.

        A sync tool runs in a worker thread that no cancel can interrupt; call this between steps of
        long work so the thread ends soon after its task is stopped, without side effects nobody will read.
        """
        if self.stopped:
            raise TaskCancelRequested(self.task_id)

    @property
    def scratch_dir(self) -> Path:
        """A directory of this task's own, created on first use.

        Write intermediate files here: when the task is cancelled (or fails) the directory is deleted,
        so no partial writes are left behind; when it completes, the sub-agent's `promote` hook gets it
        first, to keep what it wants.

        Raises:
            TaskCancelRequested: the task has ended and been settled (asked from a sync tool's thread that outlived
                its task): its directory is gone, and no new one is made.
        """
        with _SCRATCH:
            if self._scratch_settled:
                raise TaskCancelRequested(self.task_id)
            if self._scratch_dir is None:
                self._scratch_dir = Path(tempfile.mkdtemp(prefix=f'subagents-{self.task_id}-'))
            return self._scratch_dir

    @property
    def scratch_dir_if_created(self) -> Path | None:
        """The scratch directory, or `None` if nothing asked for it."""
        return self._scratch_dir

    def settle_scratch_dir(self) -> Path | None:
        """The task is being settled: its scratch directory, or `None`; from now on `scratch_dir` makes none.

        A sync tool's thread can outlive its task: a directory made after the settle would be left behind.
        """
        with _SCRATCH:
            self._scratch_settled = True
            return self._scratch_dir

    @property
    def nested_owners(self) -> tuple[NestedOwner, ...]:
        """Where the owners of tasks opened inside this task can be reached."""
        return self._nested

    def adopt(self, owner: NestedOwner) -> None:
        """Register an owner of tasks opened inside this task: a cancel of the task reaches it first."""
        self._nested = (*self._nested, owner)

    def disown(self, owner: NestedOwner) -> None:
        """Forget an owner that has closed."""
        nested = list(self._nested)
        nested.remove(owner)
        self._nested = tuple(nested)


_current: ContextVar[TaskContext | None] = ContextVar('subagents_cancel_task', default=None)


def current_task() -> TaskContext | None:
    """The task the calling code runs in, or `None` outside any sub-agent task."""
    return _current.get()


def task_scope(context: TaskContext) -> None:
    """Make `context` the current task for the calling asyncio task and everything it starts."""
    _current.set(context)


_FIRST_CALLS = threading.Lock()
"""Held while a task's first sync tool call makes the task's lock."""


class TaskThreads(Executor):
    """The worker threads of one task's sync tools, on a pool shared by the owner's tasks.

    It counts the calls that have not returned, so a run that was stopped while a sync tool was working
    can be reported until the thread finishes; `on_idle` is called (in the worker thread) when the last
    one returns.
    """

    def __init__(self, pool: SyncToolPool) -> None:
        self._pool = pool
        self._lock: threading.Lock | None = None
        """Made by the first call (most tasks make none): worker threads report their return concurrently with
        `linger`."""
        self._running: set[Future[Any]] | None = None
        """The calls that have not returned; made by the first call (most tasks make none)."""
        self._on_idle: Callable[[], None] | None = None

    def submit(self, fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> Future[_T]:
        """Run `fn` on the shared pool and track it."""
        future = self._pool.submit(fn, *args, **kwargs)
        if (lock := self._lock) is None:
            with _FIRST_CALLS:
                if self._lock is None:
                    self._lock = threading.Lock()
                lock = self._lock
        with lock:
            if self._running is None:
                self._running = set()
            self._running.add(future)
        future.add_done_callback(self._returned)
        return future

    def linger(self, on_idle: Callable[[], None]) -> int:
        """How many calls are still running; if any, `on_idle` is called (in a worker thread) when the last returns.

        The task has stopped: its calls still running leave the pool's budget (see `SyncToolPool.linger`).
        """
        if self._lock is None:
            return 0  # it made no call
        with self._lock:
            if not self._running:
                return 0
            self._on_idle = on_idle
            self._pool.linger(set(self._running))
            return len(self._running)

    def _returned(self, future: Future[Any]) -> None:
        assert self._lock is not None  # `submit` made it before the call could return
        with self._lock:
            assert self._running is not None  # `submit` made it before the call could return
            self._running.discard(future)
            on_idle = self._on_idle if not self._running else None
            if on_idle is not None:
                self._on_idle = None
        if on_idle is not None:
            on_idle()
