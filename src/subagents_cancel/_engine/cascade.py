"""A task's side of the cascade: its cancel reaches the owners opened inside it first, as messages.

The task knows those owners only as [`NestedOwner`][subagents_cancel.task_context.NestedOwner]s (a transport and
an address). A soft cancel sends each a soft [`CancelAll`][subagents_cancel.messages.CancelAll] and waits, within
a bound, until each has answered with [`SubtasksEnded`][subagents_cancel.messages.SubtasksEnded]; a hard cancel
sends a hard one and waits for nothing: the nested owners live inside the task's run, and each one's
`async with` exit stops its tasks and waits for them before the run can end, so the deepest tasks stop first.
"""

from __future__ import annotations

from collections.abc import Sequence

import anyio

from subagents_cancel.clock import Clock
from subagents_cancel.messages import CancelAll, CancelMode, CancelReason, TaskId
from subagents_cancel.task_context import NestedOwner

__all__ = ('Cascade',)


class Cascade:
    """Sends one task's cancel on to the owners opened inside it, and collects their answers."""

    __slots__ = ('_clock', '_ended', '_task_id', '_unreceived', '_waiting')

    def __init__(self, task_id: TaskId, clock: Clock) -> None:
        self._task_id = task_id
        self._clock = clock
        self._waiting: set[str] = set()
        """Soft `CancelAll`s not answered yet (`SubtasksEnded`)."""
        self._unreceived: set[str] = set()
        """Soft `CancelAll`s whose receipt (`CancelAllReceived`) has not come yet."""
        self._ended: anyio.Event | None = None
        """Made only when a soft cascade waits: most tasks open no owner."""

    def send(self, owners: Sequence[NestedOwner], mode: CancelMode, reason: CancelReason, grace: float) -> None:
        """Send every owner in `owners` a `CancelAll`; a soft one's answers are awaited by `wait_ended`."""
        if not owners:
            return  # most tasks open no owner: a cancel of theirs allocates nothing here
        cascaded = CancelReason(kind='parent_cancelled', detail=reason.detail)
        for owner in owners:
            request = CancelAll(
                task_id=self._task_id, sent_at=self._clock.now(), mode=mode, reason=cascaded, grace_seconds=grace
            )
            if mode == 'soft':
                self._waiting.add(request.message_id)  # before sending: an owner with no task answers at once
                self._unreceived.add(request.message_id)
            owner.transport.send_nowait(owner.address, request)

    @property
    def awaiting_receipts(self) -> bool:
        """Whether a soft `CancelAll` sent has not been received yet (its owner has not asked its tasks to stop)."""
        return bool(self._unreceived)

    def received(self, correlation_id: str) -> bool:
        """A nested owner received the `CancelAll` `correlation_id`; return whether every one sent has been."""
        self._unreceived.discard(correlation_id)
        return not self._unreceived

    def stop_awaiting_receipts(self) -> None:
        """Give up waiting for the receipts still missing (the cascade is over, or the run is)."""
        self._unreceived.clear()

    def ended(self, correlation_id: str) -> None:
        """A nested owner answered the `CancelAll` `correlation_id`: all its tasks have ended."""
        self._waiting.discard(correlation_id)
        if not self._waiting and self._ended is not None:
            self._ended.set()

    async def wait_ended(self, deadline: float) -> None:
        """Wait until every soft `CancelAll` sent has been answered, or until the clock reaches `deadline`."""
        self._ended = self._ended or anyio.Event()
        if not self._waiting:
            self._ended.set()
        with self._clock.deadline_scope(deadline):
            await self._ended.wait()
