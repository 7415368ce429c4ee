"""The cancel messages an owner sends again, on its own clock, until they are answered: a lost one is still enforced.

A transport may lose a message (say so, or not) or deliver it late. The owner sends a cancel request again, the
same message with the same `message_id`, every `cancel_resend_seconds` until the task's receipt comes; an escalation
has no receipt, and is sent again until the task ends. A soft request stops being sent at the end of its grace
window (its escalation takes over); a hard request and an escalation after `hard_cancel_wait_seconds`, when a task
that has not ended is marked unresponsive. The task answers a copy as it answered the first: copies are harmless.

A request that its sender waits for is *awaited*: it gets no timer while the sender waits. A hard cancel command
(or a region's) sends its copies as its own bounded wait comes to their time (`next_due`, `send_due`), so a hard
cancel that stops at once sets no timer of the owner's; a soft cancel command does the same while it waits for the
request's receipt. When a command stops waiting (`release`), a request whose receipt has come is dropped, and the
timers take over the others.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from subagents_cancel.clock import Clock
from subagents_cancel.config import SubAgentPolicy
from subagents_cancel.messages import CancelEscalated, CancelRequest, TaskId

from .timers import Timer, Timers

__all__ = ('CancelResends',)

_CancelMessage = CancelRequest | CancelEscalated


@dataclass(eq=False, slots=True)
class _Followed:
    message: _CancelMessage
    until: float
    hard: bool
    awaited: bool
    """Its sender waits for the task and sends it again itself: no timer is set for it."""
    due: float = 0.0
    """When it is next sent again (or given up)."""
    timer: Timer | None = None


class CancelResends:
    """The latest cancel message of each of one owner's tasks, sent again until answered; at most one per task."""

    def __init__(
        self,
        clock: Clock,
        policy: SubAgentPolicy,
        *,
        send: Callable[[_CancelMessage], None],
        pending: Callable[[TaskId, str], bool],
        stuck: Callable[[TaskId], None],
    ) -> None:
        """Send copies with `send`; `pending` says whether a request's receipt is still awaited; `stuck` marks a task.

        Only task ids are kept, never a task's record: a cancelled timer waits in the heap until its time.
        """
        self._clock = clock
        self._pending, self._stuck = pending, stuck
        self._every = policy.cancel_resend_seconds
        self._hard_wait = policy.hard_cancel_wait_seconds
        self._send = send
        self._timers = Timers(clock, name='cancel resends')
        self._followed: dict[TaskId, _Followed] = {}
        self._closed = False

    def follow(self, message: _CancelMessage, now: float, *, awaited: bool = False) -> None:
        """`message` was just sent, at `now`: send it again until it is answered (see the module docstring).

        It replaces the message followed for its task (a hard request or an escalation supersedes a soft request).
        `awaited`: its sender waits for the task, and sends the copies itself until it `release`s it. No-op once
        closed.
        """
        self.end(message.task_id)
        if self._closed:
            return
        if isinstance(message, CancelRequest) and message.mode == 'soft':
            followed = _Followed(message, now + message.grace_seconds, hard=False, awaited=awaited)
        else:
            followed = _Followed(message, now + self._hard_wait, hard=True, awaited=awaited)
        self._followed[message.task_id] = followed
        self._schedule(followed, now)

    def next_due(self, task_ids: Iterable[TaskId]) -> float:
        """When the first awaited message of these tasks is next due (infinity if none is)."""
        return min((followed.due for followed in self._awaited(task_ids)), default=math.inf)

    def send_due(self, task_ids: Iterable[TaskId]) -> None:
        """Send again the awaited messages of these tasks that are due (or give them up)."""
        now = self._clock.now()
        for followed in self._awaited(task_ids):
            if followed.due <= now:
                self._due(followed)

    def release(self, task_ids: Iterable[TaskId]) -> None:
        """Their sender no longer waits for these tasks: the timers send the messages still unanswered from now on."""
        for followed in self._awaited(task_ids):
            if self._answered(followed):
                del self._followed[followed.message.task_id]
            else:
                followed.awaited = False
                self._arm(followed)

    def end(self, task_id: TaskId) -> None:
        """The task has ended (or has a newer cancel message): its message is not sent again."""
        if (followed := self._followed.pop(task_id, None)) is not None and followed.timer is not None:
            followed.timer.cancel()

    async def aclose(self) -> None:
        """Send nothing more; idempotent."""
        self._closed = True
        self._followed.clear()
        await self._timers.aclose()

    def _awaited(self, task_ids: Iterable[TaskId]) -> list[_Followed]:
        return [
            followed
            for task_id in task_ids
            if (followed := self._followed.get(task_id)) is not None and followed.awaited
        ]

    def _schedule(self, followed: _Followed, now: float) -> None:
        followed.due = min(now + self._every, followed.until)
        if not followed.awaited:
            self._arm(followed)

    def _answered(self, followed: _Followed) -> bool:
        """Whether `followed` is a request whose receipt came (an escalation has none: it is followed until the end)."""
        message = followed.message
        return isinstance(message, CancelRequest) and not self._pending(message.task_id, message.message_id)

    def _arm(self, followed: _Followed) -> None:
        followed.timer = self._timers.call_at(followed.due, lambda: self._due(followed))

    def _due(self, followed: _Followed) -> None:
        task_id = followed.message.task_id
        if self._followed.get(task_id) is not followed:
            return
        if self._answered(followed):
            del self._followed[task_id]
            return
        now = self._clock.now()
        if now >= followed.until:
            del self._followed[task_id]
            if followed.hard:
                self._stuck(task_id)
            return
        self._send(followed.message)
        self._schedule(followed, now)
