"""The cancel commands of one owner, and their typed outcomes: what a request found, and what it did.

The tools only format these outcomes; the Python API returns their `info` (and raises
[`CancelTimeout`][subagents_cancel.CancelTimeout] for a hard cancel that timed out).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from contextlib import nullcontext

from subagents_cancel.clock import Clock, reads_loop_time
from subagents_cancel.config import SubAgentPolicy
from subagents_cancel.messages import CancelMode, CancelReason
from subagents_cancel.outcomes import HardCancelOutcome, SoftCancelOutcome
from subagents_cancel.states import TaskStatus

from .defaults import Defaults
from .gc_pause import collector_paused
from .registry import TaskRecord
from .task_book import TaskBook

__all__ = ('Cancels',)

_UNBOUNDED = nullcontext()


def _end_wait(received: asyncio.Future[None]) -> None:
    """The wait for receipts reached its bound: the command returns what it knows."""
    if not received.done():
        received.set_result(None)


class Cancels:
    """Requests cancels of one owner's tasks through its book, and waits for hard-cancelled tasks to stop."""

    def __init__(self, book: TaskBook, defaults: Defaults, clock: Clock, policy: SubAgentPolicy) -> None:
        self._book = book
        self._defaults = defaults
        self._clock = clock
        self._on_loop_time = reads_loop_time(clock)
        """Whether a loop timer can stand for a deadline of the clock (the real clock): then a wait enters no scope."""
        self._hard_cancel_wait_seconds = policy.hard_cancel_wait_seconds
        self._receipt_wait_seconds = policy.receipt_wait_seconds

    async def soft(self, record: TaskRecord, reason: CancelReason, grace_seconds: float | None) -> SoftCancelOutcome:
        """Ask the task to wrap up, unless it has ended or was asked before; return once the task has the request.

        The task's receipt (received, held, or lost) is awaited for at most `receipt_wait_seconds` of real time: a
        transport that delivers late or a host that never answers does not hang the caller, and the outcome is then
        `'unconfirmed'` (a receipt that comes later still updates the task).
        """
        if record.status.is_terminal:
            return SoftCancelOutcome(info=self._book.info(record), result='already_ended')
        if record.cancel is not None and not record.cancel.lost:
            return SoftCancelOutcome(info=self._book.info(record), result='already_requested')
        answered_question = record.question is not None
        if record.cancel is None:
            grace = self._defaults.grace_seconds(record.subagent, grace_seconds)
            self._book.request_cancel(record, 'soft', reason, grace, awaited=True)
            await self._await_receipt(record)
        info = self._book.info(record)
        if info.cancel is not None and info.cancel.lost:  # its output was committed first; its run is ending
            return SoftCancelOutcome(info=info, result='lost')
        if info.is_terminal:
            return SoftCancelOutcome(info=info, result='never_started')
        if info.cancel is not None and info.cancel.held_at is not None:
            return SoftCancelOutcome(info=info, result='held')
        if self._book.receipt_pending(record):
            return SoftCancelOutcome(info=info, result='unconfirmed')
        return SoftCancelOutcome(info=info, result='requested', answered_question=answered_question)

    async def await_receipts(self, records: Sequence[TaskRecord]) -> None:
        """Wait for the receipts of the cancel requests just sent to `records`, at most `receipt_wait_seconds`.

        Real time, not the owner's clock: the bound is on the transport's delivery, which no test clock drives.
        """
        received = self._book.all_received(records)
        if received is None:
            return
        bound = asyncio.get_running_loop().call_later(self._receipt_wait_seconds, _end_wait, received)
        try:
            await received
        finally:
            bound.cancel()

    async def _await_receipt(self, record: TaskRecord) -> None:
        """Wait for the receipt of the soft request just sent to `record`, as `await_receipts` does.

        Meanwhile it sends the request again as its copies fall due on the owner's clock, so the request gets no
        timer of the owner's; when it stops waiting, the owner's timers take over a request still without a receipt.
        """
        task_ids = (record.task_id,)
        resends = self._book.resends
        loop = asyncio.get_running_loop()
        ends = loop.time() + self._receipt_wait_seconds
        try:
            while (received := self._book.all_received((record,))) is not None and loop.time() < ends:
                due = resends.next_due(task_ids)
                # On the loop's own time base, one loop timer ends the wait at the earlier of the bound and the due
                # copy; on any other clock, only the clock's own scope knows when the copy falls due.
                bound = loop.call_at(min(ends, due) if self._on_loop_time else ends, _end_wait, received)
                try:
                    if self._on_loop_time:
                        await received
                    else:
                        with self._clock.deadline_scope(due):
                            await received
                finally:
                    bound.cancel()
                resends.send_due(task_ids)
        finally:
            resends.release(task_ids)

    async def hard(self, record: TaskRecord, reason: CancelReason) -> HardCancelOutcome:
        """Stop the task and wait for it within the bound, unless it has ended."""
        if record.status.is_terminal:
            return HardCancelOutcome(info=self._book.info(record), result='already_ended')
        stopped = await self.stop(record, reason)
        info = self._book.info(record)
        if not stopped:
            return HardCancelOutcome(info=info, result='timed_out')
        # Its output may have been committed before the request reached it: then it completed, and the cancel lost.
        return HardCancelOutcome(info=info, result='stopped' if info.status is TaskStatus.CANCELLED else 'lost')

    def request_each(
        self,
        records: Sequence[TaskRecord],
        mode: CancelMode,
        reason: CancelReason,
        grace_seconds: float | None,
        *,
        awaited: bool = False,
    ) -> None:
        """Request a cancel of each of `records`; a soft request skips those already asked to stop.

        `awaited`: the caller then waits for these hard-cancelled records to stop (`await_stops`).
        """
        for record in records:
            if mode == 'hard' or record.cancel is None:
                grace = self._defaults.grace_seconds(record.subagent, grace_seconds)
                self._book.request_cancel(record, mode, reason, grace, awaited=awaited and mode == 'hard')

    async def stop(self, record: TaskRecord, reason: CancelReason) -> bool:
        """Hard-cancel `record` and wait for it within the bound; `False` (marked unresponsive) if it did not stop."""
        if record.status.is_terminal:
            return True
        self._book.request_cancel(record, 'hard', reason, 0.0, awaited=True)
        return await self.await_stops((record,))

    async def await_stops(self, records: Sequence[TaskRecord]) -> bool:
        """Wait for hard-cancelled `records` to stop and have their hooks run, within the bound.

        Meanwhile it sends again the awaited requests whose receipt has not come, as they fall due; if it stops
        waiting first, the owner's timers take them over. The ones that did not stop are marked unresponsive.
        """
        task_ids = [record.task_id for record in records]
        resends = self._book.resends
        deadline = self._clock.now() + self._hard_cancel_wait_seconds
        try:
            if self._on_loop_time:  # one scope per wait: the earlier of the bound and a copy's time
                with collector_paused(len(records)):
                    while not await self._stopped(records, min(deadline, resends.next_due(task_ids))):
                        if self._clock.now() >= deadline:
                            break
                        resends.send_due(task_ids)
            else:  # a test clock's scopes fire as it is advanced: the bound keeps a scope of its own
                with collector_paused(len(records)), self._clock.deadline_scope(deadline):
                    while not await self._stopped(records, resends.next_due(task_ids)):
                        resends.send_due(task_ids)
        finally:
            resends.release(task_ids)
        stuck = [record for record in records if not record.status.is_terminal]
        self._book.mark_stuck(stuck)
        return not stuck

    async def _stopped(self, records: Sequence[TaskRecord], due: float) -> bool:
        """Wait until `records` have ended (`True`), or until `due`, when a request is to be sent again (`False`)."""
        with self._clock.deadline_scope(due) if due < math.inf else _UNBOUNDED:
            for record in records:
                if not record.status.is_terminal:  # waiting on an ended task's event is a step of the loop
                    await record.ended.wait()
            return True
        return False
