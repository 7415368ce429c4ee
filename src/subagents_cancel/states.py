"""The task state machine: statuses, events, and the one transition table.

A task's state is its status plus whether a cancel was requested. The table below is the only place
that says how an event moves a task; [`next_state`][subagents_cancel.states.next_state] is the only
code that reads it. Terminal states are absorbing: an event that reaches a finished task lost the
race to whichever terminal event came first, and is reported as such instead of applied.

Completion and cancellation race, and the first to arrive wins; so do failure and cancellation. Completion
arrives at the *commit point*: the run has its final answer and has accepted it (pydantic-ai's output
processing is done and the run has reached its end). A failure arrives when the run's exception reaches the
runner. A cancel arrives when its request reaches the task's runner. Only the runner can tell which came
first, and it says so by how it reports the end of its run: `COMPLETE` when the output was committed before
any cancel request reached it, `FAIL` when the run raised before any did (the task ends `COMPLETED` or
`FAILED` even if a cancel was requested meanwhile: the cancel lost), `STOP` when a cancel request reached it
first (the task ends `CANCELLED`, and any output, a wrap-up or an answer that arrived after the request, is
the partial result; an error the run raised afterwards is noted with it). The owner never decides this from
the order in which messages reach it, so the rule holds however late the transport delivers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType

from .errors import SubAgentsError

__all__ = (
    'IllegalTransition',
    'NotWaitingForAnswer',
    'TaskAlreadyFinished',
    'TaskEvent',
    'TaskState',
    'TaskStatus',
    'TRANSITIONS',
    'next_state',
)


_TERMINAL = frozenset({'COMPLETED', 'FAILED', 'CANCELLED'})


class TaskStatus(Enum):
    """Where a task is in its life."""

    PENDING = 'PENDING'
    """Accepted, not started: waiting for a concurrency slot."""
    RUNNING = 'RUNNING'
    """The sub-agent's run is in progress."""
    WAITING_FOR_ANSWER = 'WAITING_FOR_ANSWER'
    """The sub-agent called `ask_parent` and waits for `answer_subagent`."""
    COMPLETED = 'COMPLETED'
    """The run ended with its output, committed before any cancel request reached it."""
    FAILED = 'FAILED'
    """The run raised before any cancel request reached it."""
    CANCELLED = 'CANCELLED'
    """A cancel was requested before the task's output was committed, and the task has stopped (any output it
    produced is the partial result)."""

    is_terminal: bool
    """Whether the task has ended; a terminal status never changes again."""

    def __init__(self, value: str) -> None:
        self.is_terminal = value in _TERMINAL  # read on every step of every task: an attribute, not a computation

    # A member is a singleton, equal only to itself, so its identity can be its hash: Enum's own `__hash__` is a call
    # in Python on every lookup of a status in a dict or set.
    __hash__ = object.__hash__


class TaskEvent(Enum):
    """Something that happens to a task."""

    START = 'START'
    """The runner got a slot and begins the sub-agent's run."""
    ASK = 'ASK'
    """The sub-agent asked its parent a question."""
    ANSWER = 'ANSWER'
    """The parent answered the open question."""
    COMPLETE = 'COMPLETE'
    """The run ended with an output that it committed before any cancel request reached it."""
    FAIL = 'FAIL'
    """The run raised an exception before any cancel request reached it."""
    SOFT_CANCEL = 'SOFT_CANCEL'
    """A soft cancel was requested: the sub-agent is told and may wrap up."""
    HARD_CANCEL = 'HARD_CANCEL'
    """A hard cancel was requested (or a soft one escalated): the run is being stopped."""
    STOP = 'STOP'
    """The run ended after a cancel request reached it: it wrapped up, it was stopped, or it raised."""

    __hash__ = object.__hash__  # as `TaskStatus`'s: the transition table is looked up by event on every step


@dataclass(frozen=True, slots=True)
class TaskState:
    """A task's status, and whether a cancel has been requested (once set, it stays set)."""

    status: TaskStatus
    cancel_requested: bool = False

    def __str__(self) -> str:
        return f'{self.status.name}{" (cancel requested)" if self.cancel_requested else ""}'


class TaskAlreadyFinished(SubAgentsError):
    """The task has ended (COMPLETED, FAILED or CANCELLED).

    No longer raised: a cancel of a task that has ended returns it as it ended (see
    [`SubAgentManager.soft_cancel`][subagents_cancel.SubAgentManager.soft_cancel]). Kept so that code that
    catches it still imports.
    """

    def __init__(self, task_id: str, status: TaskStatus) -> None:
        self.task_id = task_id
        self.status = status
        super().__init__(f'Task {task_id!r} has already ended ({status.name}).')


class NotWaitingForAnswer(SubAgentsError):
    """The task has not asked a question, so there is nothing to answer."""

    def __init__(self, task_id: str, status: TaskStatus) -> None:
        self.task_id = task_id
        self.status = status
        super().__init__(f'Task {task_id!r} is not waiting for an answer (it is {status.name}).')


class IllegalTransition(SubAgentsError):
    """The transition table has no entry for this state and event: the caller has a bug."""

    def __init__(self, state: TaskState, event: TaskEvent) -> None:
        self.state = state
        self.event = event
        super().__init__(f'No transition from {state} on {event.name}.')


_S = TaskStatus
_E = TaskEvent


def _row(
    status: TaskStatus, requested: bool, moves: Mapping[TaskEvent, TaskState]
) -> dict[tuple[TaskState, TaskEvent], TaskState]:
    return {(TaskState(status, requested), event): to for event, to in moves.items()}


_CANCELLED = TaskState(_S.CANCELLED, True)

TRANSITIONS: Mapping[tuple[TaskState, TaskEvent], TaskState] = MappingProxyType(
    {
        **_row(
            _S.PENDING,
            False,
            {
                _E.START: TaskState(_S.RUNNING),
                _E.FAIL: TaskState(_S.FAILED),
                _E.SOFT_CANCEL: _CANCELLED,  # it never starts
                _E.HARD_CANCEL: _CANCELLED,
            },
        ),
        **_row(
            _S.RUNNING,
            False,
            {
                _E.ASK: TaskState(_S.WAITING_FOR_ANSWER),
                _E.COMPLETE: TaskState(_S.COMPLETED),
                _E.FAIL: TaskState(_S.FAILED),
                _E.SOFT_CANCEL: TaskState(_S.RUNNING, True),  # told; wraps up within the grace window
                _E.HARD_CANCEL: TaskState(_S.RUNNING, True),  # CANCELLED once the run has really stopped
            },
        ),
        **_row(
            _S.WAITING_FOR_ANSWER,
            False,
            {
                _E.ANSWER: TaskState(_S.RUNNING),
                _E.FAIL: TaskState(_S.FAILED),
                # Either cancel answers the question: the sub-agent is no longer waiting for its parent. A soft one is
                # the answer it reads; a hard one cuts its `ask_parent` call off as the run is stopped.
                _E.SOFT_CANCEL: TaskState(_S.RUNNING, True),
                _E.HARD_CANCEL: TaskState(_S.RUNNING, True),
            },
        ),
        # Once a cancel was requested, the run ends CANCELLED when the request reached it first (STOP: an output
        # becomes the partial result, an error is noted), and as it ended when its output was committed or it
        # raised before the request reached it (COMPLETE, FAIL): the cancel lost.
        **_row(
            _S.RUNNING,
            True,
            {
                _E.COMPLETE: TaskState(_S.COMPLETED, True),
                _E.FAIL: TaskState(_S.FAILED, True),
                _E.STOP: _CANCELLED,
                _E.HARD_CANCEL: TaskState(_S.RUNNING, True),  # a soft cancel escalated, or repeated as hard
            },
        ),
    }
)
"""Every allowed `(state, event) -> state` move. A pair that is missing is a bug, except from a terminal state."""

_NEXT = {(state.status, state.cancel_requested, event): to for (state, event), to in TRANSITIONS.items()}
"""`TRANSITIONS` keyed by the state's fields: a lookup hashes no `TaskState` (its hash is a call in Python)."""


def next_state(state: TaskState, event: TaskEvent) -> TaskState | None:
    """Return the state that `event` moves a task in `state` to.

    Returns:
        The new state, or `None` when `state` is terminal: the event lost the race to the terminal
        event that came first (first writer wins), and the caller records it as dropped.

    Raises:
        IllegalTransition: the table has no entry for a non-terminal `(state, event)`; the caller has a bug.
    """
    if state.status.is_terminal:
        return None
    try:
        return _NEXT[state.status, state.cancel_requested, event]
    except KeyError:
        raise IllegalTransition(state, event) from None
