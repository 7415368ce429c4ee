"""A task's lease on its owner: the owner's process renews it, and a task whose lease lapses ends as if its owner had.

An owner in a plain process (a web server) cannot have Temporal stop its tasks when the process dies, so it holds a
lease on every task it follows. The lease travels with the task's start (the workflow's input), so it covers a task
whose owner dies before renewing it once.

* The owner's side, [`LeaseRenewals`][subagents_cancel.temporal.lease.LeaseRenewals]: one asyncio task of the
  owner's transport sends the signal `renew_lease` to each task it follows, `RENEWALS_PER_LEASE` times per
  `lease_seconds`, so a renewal or two may be lost or late without harm. It runs only while there are tasks to
  follow, and stops with the transport.
* The workflow's side, [`Lease`][subagents_cancel.temporal.lease.Lease]: a durable timer runs out `lease_seconds`
  after the last renewal the workflow has seen (or after its start). Renewals that Temporal accepted while no worker
  was up are applied before that timer when a worker comes back, so a worker's absence never lapses a lease on
  its own. When it lapses, [`end_orphaned`][subagents_cancel.temporal.lease.end_orphaned] ends the task as an
  owner that ends does: a soft cancel (reason `parent_ended`) that gives the sub-agent its grace window (its
  config's `grace_seconds`, else the worker's policy's), then a hard one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import anyio
from temporalio import workflow
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from subagents_cancel._engine.defaults import Defaults
from subagents_cancel.config import index_subagents
from subagents_cancel.messages import CancelEscalated, CancelReason, CancelRequest, TaskId
from subagents_cancel.wire import StartTask, WireMessage

from .registry import HostedSubagents

__all__ = (
    'DEFAULT_LEASE_SECONDS',
    'LAPSED',
    'PARENT_CLOSED',
    'RENEWALS_PER_LEASE',
    'RENEW_LEASE',
    'Lease',
    'LeaseRenewals',
    'LeaseState',
    'end_orphaned',
)

_log = logging.getLogger('subagents_cancel')

DEFAULT_LEASE_SECONDS = 30.0
"""How long a task outlives its owner's last renewal by default; see `TemporalTransport`'s `lease_seconds`."""
RENEWALS_PER_LEASE = 3
"""How many times per `lease_seconds` an owner renews the lease of each task it follows."""
_RENEWING_AT_ONCE = 16
"""Renewals in flight at once: a round over many tasks on a distant server is not a round trip per task long."""
RENEW_LEASE = 'renew_lease'
"""The signal by which an owner renews a task's lease."""
LAPSED = CancelReason(kind='parent_ended', detail="its owner's process stopped renewing its lease")
"""Why a task whose lease lapsed is cancelled."""
PARENT_CLOSED = CancelReason(kind='parent_ended', detail='the workflow that owns it has closed')
"""Why a task whose owner is a workflow is cancelled when that workflow closes (its parent-close policy)."""


@dataclass
class LeaseState:
    """What a task's workflow knows of its lease (the query `lease`)."""

    lease_seconds: float | None = None
    """How long the task outlives its owner's last renewal; `None`: it has no lease."""
    renewals: int = 0
    """How many renewals the workflow has seen."""
    lapsed: bool = False
    """No renewal came for `lease_seconds`: the task was ended as its owner's process is gone."""


class Lease:
    """The workflow's side of a task's lease: renewals in, and a durable timer that runs out without them."""

    def __init__(self, lease_seconds: float | None) -> None:
        self.state = LeaseState(lease_seconds)
        self._renewed_at: float | None = None
        """Workflow time of the last renewal; `None` until the workflow runs (its start counts as one)."""

    def renew(self) -> None:
        """The owner renewed the lease (the signal `renew_lease`)."""
        self.state.renewals += 1
        self._renewed_at = workflow.time()

    async def held_until(self, done: Callable[[], bool]) -> bool:
        """Wait until `done()` is true, or until the lease lapses first; return whether it lapsed."""
        lease = self.state.lease_seconds
        if lease is None:
            await workflow.wait_condition(done)
            return False
        if self._renewed_at is None:
            self._renewed_at = workflow.time()
        while not done():
            left = self._renewed_at + lease - workflow.time()
            if left <= 0:
                self.state.lapsed = True
                return True
            try:  # one timer per lapse that may come, not one per renewal: renewals cost the history no timers
                await workflow.wait_condition(done, timeout=left, timeout_summary='lease')
            except TimeoutError:
                pass  # renewals applied with the timer's firing come first: `left` says whether it lapsed
        return False


async def end_orphaned(
    start: StartTask,
    hosted: HostedSubagents,
    send: Callable[[WireMessage], object],
    run_over: Callable[[], bool],
    *,
    reason: CancelReason = LAPSED,
) -> None:
    """End the task `start` began, whose owner is gone: soft-cancel it for `reason`, then stop it after its grace.

    `send` hands a message to the task's host as its owner would; `run_over()` tells when its run has ended. Returns
    once the run has ended, or `teardown_seconds` after the hard cancel if it does not (the host's close bounds the
    rest).
    """
    configs = index_subagents(hosted.subagents)
    grace = (
        Defaults(configs, hosted.policy).grace_seconds(start.subagent)
        if start.subagent in configs
        else hosted.policy.grace_seconds  # its host refused to start it: there is no run to wait for
    )
    request = CancelRequest(
        task_id=start.task_id,
        sent_at=workflow.time(),
        message_id=workflow.uuid4().hex[:12],
        mode='soft',
        reason=reason,
        grace_seconds=grace,
    )
    send(request)
    if await _within(run_over, grace):
        return
    send(
        CancelEscalated(
            task_id=start.task_id,
            sent_at=workflow.time(),
            message_id=workflow.uuid4().hex[:12],
            correlation_id=request.message_id,
        )
    )
    await _within(run_over, hosted.policy.teardown_seconds)


async def _within(condition: Callable[[], bool], seconds: float) -> bool:
    try:
        await workflow.wait_condition(condition, timeout=seconds)
    except TimeoutError:
        return condition()
    return True


class LeaseRenewals:
    """The owner's side of its tasks' leases: renews each task it follows, `RENEWALS_PER_LEASE` times a lease.

    `spawn` starts the renewing coroutine as a task of the transport; it runs while there is a task to follow.
    """

    def __init__(
        self, client: Client, lease_seconds: float, spawn: Callable[[Coroutine[Any, Any, None], str], None]
    ) -> None:
        self._client = client
        self.lease_seconds = lease_seconds
        self._spawn = spawn
        self._followed: dict[TaskId, None] = {}
        self._renewing = False

    def follow(self, task_id: TaskId) -> None:
        """Renew the lease of `task_id` from now on (its workflow has started)."""
        self._followed[task_id] = None
        if not self._renewing:
            self._renewing = True
            self._spawn(self._renew_while_following(), 'lease renewals')

    def forget(self, task_id: TaskId) -> None:
        """Stop renewing the lease of `task_id` (its workflow has ended)."""
        self._followed.pop(task_id, None)

    async def _renew_while_following(self) -> None:
        period = self.lease_seconds / RENEWALS_PER_LEASE
        try:
            next_round = anyio.current_time()
            while self._followed:  # nothing awaited between this check and `finally`: `follow` sees the flag right
                next_round += period
                await anyio.sleep_until(next_round)  # a pace: rounds start every period, a late one at once
                await self._renew_all(tuple(self._followed), period)
        finally:
            self._renewing = False

    async def _renew_all(self, task_ids: tuple[TaskId, ...], period: float) -> None:
        pending = iter(task_ids)  # shared by the senders below: each takes the next task

        async def renew_next() -> None:
            for task_id in pending:
                await self._renew(task_id, period)

        async with anyio.create_task_group() as senders:
            for _ in range(min(_RENEWING_AT_ONCE, len(task_ids))):
                senders.start_soon(renew_next)

    async def _renew(self, task_id: TaskId, period: float) -> None:
        try:
            await self._client.get_workflow_handle(task_id).signal(RENEW_LEASE, rpc_timeout=timedelta(seconds=period))
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:  # its workflow has ended: there is nothing left to hold
                self.forget(task_id)
            else:  # the next round tries again; the lease allows for a lost renewal or two
                _log.warning('the lease of task %s could not be renewed: %s', task_id, error)
