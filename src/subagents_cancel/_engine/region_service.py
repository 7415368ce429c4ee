"""The regions of one owner: their time budgets, their cancels, and joining them all-or-nothing.

A region's cancel and its delivery are mutually exclusive, and whichever comes first decides: a join that finds no
cancel and every task completed delivers, and marks the region delivered; a cancel after that stops nothing.
"""

from __future__ import annotations

from subagents_cancel.clock import Clock, sleep_until
from subagents_cancel.config import SubAgentPolicy, check_duration
from subagents_cancel.errors import ManagerClosed
from subagents_cancel.message_parts import given_reason
from subagents_cancel.messages import CancelMode, CancelReason
from subagents_cancel.regions import (
    RegionCancel,
    RegionCancelOutcome,
    RegionClosed,
    RegionCompleted,
    RegionOutcome,
    check_region,
    region_outcome,
)

from .cancels import Cancels
from .registry import TaskRecord
from .supervisor import Supervisor
from .task_book import TaskBook

__all__ = ('RegionService',)


class RegionService:
    """Opens, cancels and joins one owner's regions; records change only through its task book."""

    def __init__(
        self, book: TaskBook, cancels: Cancels, supervisor: Supervisor, clock: Clock, policy: SubAgentPolicy
    ) -> None:
        self._book = book
        self._cancels = cancels
        self._supervisor = supervisor
        self._clock = clock
        self._deadline_cancel: CancelMode = policy.deadline_cancel

    def open(self, region: str, *, timeout_seconds: float) -> None:
        """Give a region a time budget (see `SubAgentManager.open_region`)."""
        check_duration('timeout_seconds', timeout_seconds)
        if self._supervisor.phase != 'open':
            raise ManagerClosed()
        check_region(region)
        if cancel := self._book.records.region_cancel(region):
            raise RegionClosed(region, cancel.reason)
        deadline = self._clock.now() + timeout_seconds
        self._supervisor.spawn(self._expire(region, deadline), name=f'region {region}')

    async def _expire(self, region: str, deadline: float) -> None:
        await sleep_until(self._clock, deadline)
        if self._supervisor.phase == 'open' and self._book.records.region_cancel(region) is None:
            self.cancel(region, self._deadline_cancel, CancelReason(kind='deadline', detail=region))

    def cancel(
        self,
        region: str,
        mode: CancelMode,
        reason: CancelReason | None,
        grace_seconds: float | None = None,
        *,
        awaited: bool = False,
    ) -> tuple[TaskRecord, ...] | None:
        """Close `region` and request a cancel of its running tasks; return them, or `None` if it had delivered.

        `awaited`: the caller waits for the hard-cancelled tasks to stop (`Cancels.await_stops`).
        """
        reason = given_reason(reason, CancelReason(kind='region', detail=region))
        self._book.close_region(region, RegionCancel(mode=mode, reason=reason, at=self._clock.now()))
        if self._book.records.region_delivered(region):
            return None
        records = tuple(record for record in self._book.records.in_region(region) if not record.status.is_terminal)
        self._cancels.request_each(records, mode, reason, grace_seconds, awaited=awaited)
        return records

    async def soft_cancel(
        self, region: str, reason: CancelReason | None, grace_seconds: float | None
    ) -> RegionCancelOutcome:
        """Cancel `region` softly; return once its running tasks have the request (see `Cancels.await_receipts`)."""
        records = self.cancel(check_region(region), 'soft', reason, grace_seconds)
        if records is not None:
            await self._cancels.await_receipts(records)  # so that the snapshots show the requests that lost
        return self._outcome(region, records)

    async def hard_cancel(self, region: str, reason: CancelReason | None) -> RegionCancelOutcome:
        """Stop the running tasks of `region` and wait for them within the bound."""
        records = self.cancel(check_region(region), 'hard', reason, awaited=True)
        if records is not None:
            await self._cancels.await_stops(records)
        return self._outcome(region, records)

    def _outcome(self, region: str, records: tuple[TaskRecord, ...] | None) -> RegionCancelOutcome:
        if records is None:
            delivered = tuple(map(self._book.info, self._book.records.in_region(region)))
            return RegionCancelOutcome(region=region, result='already_delivered', tasks=(), delivered=delivered)
        return RegionCancelOutcome(region=region, result='cancelled', tasks=tuple(map(self._book.info, records)))

    async def join(self, region: str) -> RegionOutcome:
        """Wait until every task of the region has ended; then its outcome (see `SubAgentManager.join_region`)."""
        records = self._book.records.in_region(check_region(region))
        await self._book.wait_until(records, 'all', deadline=None, stop_on_question=False)
        delivered = self._book.records.region_delivered(region)
        cancel = None if delivered else self._book.records.region_cancel(region)
        outcome = region_outcome(region, map(self._book.info, records), cancel)
        # It delivers only the tasks it waited for: not if one joined the region meanwhile (nor if it held none).
        if not delivered and isinstance(outcome, RegionCompleted) and outcome.outputs:
            if set(self._book.records.in_region(region)) <= set(records):
                self._book.deliver_region(region)
        return outcome
