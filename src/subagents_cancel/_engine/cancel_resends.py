"""The cancel messages an owner sends again, on its own clock, until they are answered: a lost one is still enforced.

A transport may lose a message (say so, or not) or deliver it late. The owner sends a cancel request again, the
same message with the same `message_id`, every `cancel_resend_seconds` until the task's receipt comes; an escalation
has no receipt, and is sent again until the task ends. A soft request stops being sent at the end of its grace
window (its escalation takes over); a hard request and an escalation after `hard_cancel_wait_seconds`, when a task
that has not ended is marked unresponsive. The task answers a copy as it answered the first: copies are harmless.
"""

from __future__ import annotations

from collections.abc import Callable
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

    def follow(self, message: _CancelMessage) -> None:
        """`message` was just sent: send it again until it is answered (see the module docstring).

        It replaces the message followed for its task (a hard request or an escalation supersedes a soft request).
        No-op once closed.
        """
        self.end(message.task_id)
        if self._closed:
            return
        now = self._clock.now()
        if isinstance(message, CancelRequest) and message.mode == 'soft':
            followed = _Followed(message, now + message.grace_seconds, hard=False)
        else:
            followed = _Followed(message, now + self._hard_wait, hard=True)
        self._followed[message.task_id] = followed
        self._schedule(followed, now)

    def end(self, task_id: TaskId) -> None:
        """The task has ended (or has a newer cancel message): its message is not sent again."""
        if (followed := self._followed.pop(task_id, None)) is not None and followed.timer is not None:
            followed.timer.cancel()

    async def aclose(self) -> None:
        """Send nothing more; idempotent."""
        self._closed = True
        self._followed.clear()
        await self._timers.aclose()

    def _schedule(self, followed: _Followed, now: float) -> None:
        followed.timer = self._timers.call_at(min(now + self._every, followed.until), lambda: self._due(followed))

    def _due(self, followed: _Followed) -> None:
        task_id = followed.message.task_id
        if self._followed.get(task_id) is not followed:
            return
        message = followed.message
        if isinstance(message, CancelRequest) and not self._pending(task_id, message.message_id):
            del self._followed[task_id]  # its receipt came
            return
        now = self._clock.now()
        if now >= followed.until:
            del self._followed[task_id]
            if followed.hard:
                self._stuck(task_id)
            return
        self._send(followed.message)
        self._schedule(followed, now)
