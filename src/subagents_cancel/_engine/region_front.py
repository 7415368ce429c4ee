"""The manager's region methods: open, cancel, list and join the regions of an owner's tasks.

[`RegionFront`][subagents_cancel._engine.region_front.RegionFront] is the part of
[`SubAgentManager`][subagents_cancel.SubAgentManager] that hands each region call to the owner's region service
(`region_service.py`) or reads the regions off its task book; the manager inherits it, so a call costs no hop more.
See [Cancel regions](../concepts/regions.md) in the docs.
"""

from __future__ import annotations

from subagents_cancel.config import check_duration
from subagents_cancel.messages import CancelReason
from subagents_cancel.regions import RegionCancelOutcome, RegionOutcome
from subagents_cancel.results import TaskInfo

from .region_service import RegionService
from .task_book import TaskBook

__all__ = ('RegionFront',)


class RegionFront:
    """The region methods of [`SubAgentManager`][subagents_cancel.SubAgentManager]."""

    _book: TaskBook
    _regions: RegionService

    def open_region(self, region: str, *, timeout_seconds: float) -> None:
        """Give a region a time budget: when it runs out, the region is cancelled with reason `deadline`.

        The policy's `deadline_cancel` says whether softly or hard. A region needs no opening otherwise:
        `start(..., region=...)` creates it.

        Raises:
            ManagerClosed: the manager is not open.
            RegionClosed: the region was already cancelled.
            ValueError: the region name or `timeout_seconds` is not valid (a timeout is finite and greater than 0).
        """
        self._regions.open(region, timeout_seconds=timeout_seconds)

    async def soft_cancel_region(
        self, region: str, *, reason: CancelReason | None = None, grace_seconds: float | None = None
    ) -> tuple[TaskInfo, ...]:
        """Cancel a region softly: every running task in it (and in the regions inside it) is told to wrap up.

        From now on, no task of the region can complete, and none can start in it. Returns at once, with
        the tasks that were asked to stop. A region whose join had delivered every result stays delivered:
        nothing is stopped, and no new task can start in it (the
        [outcome][subagents_cancel.SubAgentManager.soft_cancel_region_outcome] says which happened).

        Raises:
            TypeError: `reason` is not a `CancelReason`.
            ValueError: the region name or `grace_seconds` is not valid (a grace window is finite and 0 or more).
        """
        return (await self.soft_cancel_region_outcome(region, reason=reason, grace_seconds=grace_seconds)).tasks

    async def soft_cancel_region_outcome(
        self, region: str, *, reason: CancelReason | None = None, grace_seconds: float | None = None
    ) -> RegionCancelOutcome:
        """[`soft_cancel_region`][subagents_cancel.SubAgentManager.soft_cancel_region], returning what it found and did.

        Raises:
            TypeError: `reason` is not a `CancelReason`.
            ValueError: the region name or `grace_seconds` is not valid (a grace window is finite and 0 or more).
        """
        if grace_seconds is not None:
            check_duration('grace_seconds', grace_seconds, zero_allowed=True)
        return await self._regions.soft_cancel(region, reason, grace_seconds)

    async def hard_cancel_region(self, region: str, *, reason: CancelReason | None = None) -> tuple[TaskInfo, ...]:
        """Stop every running task in a region (and in the regions inside it), and return once they have stopped.

        Tasks that do not stop within `hard_cancel_wait_seconds` are marked unresponsive, not waited for. A region
        whose join had delivered every result stays delivered: nothing is stopped.

        Raises:
            TypeError: `reason` is not a `CancelReason`.
            ValueError: the region name is not valid.
        """
        return (await self.hard_cancel_region_outcome(region, reason=reason)).tasks

    async def hard_cancel_region_outcome(
        self, region: str, *, reason: CancelReason | None = None
    ) -> RegionCancelOutcome:
        """[`hard_cancel_region`][subagents_cancel.SubAgentManager.hard_cancel_region], returning what it found and did.

        Raises:
            TypeError: `reason` is not a `CancelReason`.
            ValueError: the region name is not valid.
        """
        return await self._regions.hard_cancel(region, reason)

    def regions(self) -> tuple[str, ...]:
        """The regions this owner knows: those holding a task it keeps, and the cancelled ones it keeps closed.

        A region is forgotten with its last task (see `keep_finished`); a cancelled region stays closed while any
        of its tasks is kept, and one cancelled while it held no task until `keep_finished` more such are cancelled.
        """
        return self._book.records.regions()

    def region_tasks(self, region: str) -> tuple[TaskInfo, ...]:
        """Snapshots of the tasks of a region and of the regions inside it."""
        return tuple(map(self._book.info, self._book.records.in_region(region)))

    async def join_region(self, region: str) -> RegionOutcome:
        """Wait until every task of the region has ended; then deliver all their results, or why not.

        All-or-nothing: a region that was cancelled delivers a notice with the reason, even if some of its
        tasks had completed; a region where a task failed or was cancelled on its own delivers the tasks as
        they are, marked incomplete. Never a partial set as if it were complete. Once a join has delivered
        every result, the region stays delivered: a later cancel of it changes no join (a task started in it
        afterwards makes it undelivered again, until a join delivers that one's result too).
        """
        return await self._regions.join(region)
