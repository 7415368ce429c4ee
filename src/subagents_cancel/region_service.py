"""The regions of one owner: their time budgets, their cancels, and joining them all-or-nothing."""

from __future__ import annotations

from .cancels import Cancels
from .clock import Clock, sleep_until
from .config import SubAgentPolicy, check_duration
from .errors import ManagerClosed
from .messages import CancelMode, CancelReason
from .regions import RegionCancel, RegionClosed, RegionOutcome, check_region, region_outcome
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
        self, region: str, mode: CancelMode, reason: CancelReason | None, grace_seconds: float | None = None
    ) -> tuple[TaskRecord, ...]:
        """Close `region` and request a cancel of its running tasks; return them."""
        reason = reason or CancelReason(kind='region', detail=region)
        self._book.close_region(region, RegionCancel(mode=mode, reason=reason, at=self._clock.now()))
        records = tuple(record for record in self._book.records.in_region(region) if not record.status.is_terminal)
        self._cancels.request_each(records, mode, reason, grace_seconds)
        return records

    async def hard_cancel(self, region: str, reason: CancelReason | None) -> tuple[TaskRecord, ...]:
        """Stop the running tasks of `region` and wait for them within the bound; return them."""
        records = self.cancel(check_region(region), 'hard', reason)
        await self._cancels.await_stops(records)
        return records

    async def join(self, region: str) -> RegionOutcome:
        """Wait until every task of the region has ended; then its outcome (see `SubAgentManager.join_region`)."""
        records = self._book.records.in_region(check_region(region))
        await self._book.wait_until(records, 'all', deadline=None, stop_on_question=False)
        return region_outcome(region, map(self._book.info, records), self._book.records.region_cancel(region))
