"""The supervisor of one owner: its lifetime, the tasks it starts, their slots and timers.

It opens the owner's mailbox on entry. A task it starts is PENDING until a slot is free (or there is no limit);
then it sends [`StartTask`][subagents_cancel.wire.StartTask] to the task host, and when the task's run is over
(or it ended before it started) it frees the slot for the oldest PENDING task and sends
[`SettleTask`][subagents_cancel.wire.SettleTask] so the host runs its hook. Deadlines are the owner's timers. On
close it cancels what still runs, waits for the records to end and their hooks to be done, within the policy's
bounds and through messages alone, and reports those that did not as orphans. Records are changed only through
the task book; no runner object is read.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import deque
from collections.abc import Coroutine, Mapping
from functools import partial
from typing import Any, Literal

from pydantic_ai.messages import ModelMessage

from subagents_cancel._text.instructions import fallback_prompt
from subagents_cancel.clock import Clock
from subagents_cancel.config import SubAgentConfig, SubAgentPolicy
from subagents_cancel.errors import ManagerClosed, UnknownSubAgent
from subagents_cancel.ids import random_hex
from subagents_cancel.messages import CancelReason, TaskId
from subagents_cancel.regions import RegionClosed, check_region
from subagents_cancel.results import Cancelled
from subagents_cancel.states import TaskStatus
from subagents_cancel.task_context import TaskContext, current_task
from subagents_cancel.telemetry import TaskTelemetry, trace_context
from subagents_cancel.wire import StartTask

from .cancels import Cancels
from .defaults import Defaults
from .gc_pause import collector_paused
from .nesting import EnclosingTask
from .owner_mailbox import OwnerMailbox
from .registry import TaskRecord
from .shield import finish_shielded
from .task_book import TaskBook
from .timers import Timer, Timers

__all__ = ('Supervisor', 'new_owner_id')

_Phase = Literal['new', 'open', 'closing', 'closed']


def new_owner_id() -> str:
    """A fresh random owner address, `owner-<8 hex digits>`."""
    return f'owner-{random_hex(4)}'


class Supervisor:
    """Opens and closes one owner, launches its tasks' runs, and holds its background tasks."""

    def __init__(
        self,
        *,
        configs: Mapping[str, SubAgentConfig],
        policy: SubAgentPolicy,
        defaults: Defaults,
        clock: Clock,
        mailbox: OwnerMailbox,
        book: TaskBook,
        cancels: Cancels,
        telemetry: TaskTelemetry,
    ) -> None:
        self._configs = configs
        self._policy = policy
        self._defaults = defaults
        self._clock = clock
        self._mailbox = mailbox
        self._book = book
        self._cancels = cancels
        self.telemetry = telemetry
        """The owner's traces and metrics."""
        self.parent: TaskContext | None = None
        """The task this owner was opened in, if any: it is that task's child."""
        self._enclosing: EnclosingTask | None = None
        self.phase: _Phase = 'new'
        self._timers: set[asyncio.Task[None]] = set()
        self._deadlines = Timers(clock, name='owner timers')
        self._deadline_timers: dict[TaskId, Timer] = {}
        """The deadline of each task with a time budget, until it fires or the task ends."""
        self._orphans: list[TaskId] = []
        self._running: set[TaskId] = set()
        """The tasks holding a slot (started, and their run not over yet); kept only under a `max_running` bound."""
        self._pending: deque[tuple[TaskRecord, StartTask]] = deque()
        """The tasks waiting for a slot, oldest first."""
        self.teardown_deadline: float | None = None
        """When the owner's teardown stopped waiting for its tasks' runs (once it has closed)."""
        book.listen(ended=self._after_end, threads_finished=lambda record: None)

    # --- lifetime -----------------------------------------------------------------------------

    async def enter(self) -> None:
        """Open the owner: its place under the task it runs in, and its mailbox.

        Raises:
            ManagerClosed: it was opened before.
        """
        if self.phase != 'new':
            raise ManagerClosed()
        self.phase = 'open'
        self.parent = current_task()
        addresses = itertools.chain((self._book.address,), iter(new_owner_id, ''))
        self._book.address = await self._mailbox.claim(addresses)
        if self.parent is not None:
            transport = self._mailbox.transport
            self._enclosing = EnclosingTask(self.parent, transport=transport, book=self._book, cancels=self._cancels)
            self._enclosing.open()

    def quiet(self) -> bool:
        """Whether the closed owner has nothing left to hear: no task's end, hook or sync tool's thread to report."""
        records = self._book.records.all()
        return self.phase == 'closed' and not any(
            record.lingering_threads or not record.hooks_done for record in records
        )

    async def close(self, reason: CancelReason) -> None:
        """Cancel every task still running and wait for them, within the policy's bounds; idempotent.

        The owner runs it in a task of its own (`Owner.close`), so no cancellation of a caller reaches it.
        """
        if self.phase != 'open':
            return
        self.phase = 'closing'
        await self._close(reason)

    async def _close(self, reason: CancelReason) -> None:
        await self._deadlines.aclose()
        for timer in tuple(self._timers):
            timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await timer
        live = self._book.records.active()
        if live and self._policy.owner_end == 'soft':
            grace = self._policy.owner_end_grace_seconds
            self._cancels.request_each(self._book.records.active(), 'soft', reason, grace)
            deadline = self._clock.now() + grace
            await self._book.wait_until(live, 'all', deadline=deadline, stop_on_question=False)
        self._cancels.request_each(self._book.records.active(), 'hard', reason, 0.0)
        self.teardown_deadline = self._clock.now() + self._policy.teardown_seconds
        await self._join(self.teardown_deadline)
        await self._book.aclose()
        self.phase = 'closed'
        if self._enclosing is not None:
            await self._enclosing.aclose()
        await self._mailbox.close()
        self.telemetry.owner_closed()

    async def _join(self, deadline: float) -> None:
        """Wait for the tasks to end until `deadline`, then for the hooks of those that ended, within theirs."""
        records = [record for record in self._book.records.all() if not record.hooks_done]
        with collector_paused(len(records)), self._clock.deadline_scope(deadline):
            for record in records:
                if not record.status.is_terminal:  # waiting on an ended task's event is a step of the loop
                    await record.ended.wait()
        with self._clock.deadline_scope(self._clock.now() + self._policy.hook_seconds):
            await self._book.hooks_finished(records)
        stuck = {record.task_id for record in records if not record.hooks_done}
        stuck |= {record.task_id for record in self._book.records.all() if record.lingering_threads}
        for task_id in stuck:
            self._book.mark_unresponsive(self._book.records.get(task_id))
            self._orphans.append(task_id)

    def orphans(self) -> tuple[TaskRecord, ...]:
        """The tasks that had not stopped when teardown gave up waiting, and are still kept."""
        return tuple(record for task_id in self._orphans if (record := self._book.records.find(task_id)))

    def spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        """Run `work` in the background until it returns or the owner closes (a region's timer)."""
        timer = asyncio.get_running_loop().create_task(work, name=name)
        self._timers.add(timer)
        timer.add_done_callback(self._timers.discard)

    # --- starting -----------------------------------------------------------------------------

    def start(
        self,
        subagent: str,
        description: str,
        *,
        region: str | None,
        timeout_seconds: float | None,
        fallback: str | None,
        history: tuple[ModelMessage, ...] = (),
        prompt: str | None = None,
    ) -> TaskRecord:
        """Check where and what may start, then launch the task (see `SubAgentManager.start`) from `history`.

        `description` is what the task is for (its record keeps it); `prompt`, the run's prompt if it is not that.
        """
        if self.phase != 'open':
            raise ManagerClosed()
        config = self._config(subagent)
        if fallback is not None:
            self._config(fallback)
        if region is not None:
            check_region(region)
            self._book.forget_past_keeping()  # a cancel past its time to live closes nothing
            if cancel := self._book.records.region_cancel(region):
                raise RegionClosed(region, cancel.reason)
        return self._launch(
            config,
            description,
            region=region,
            timeout_seconds=self._defaults.timeout_seconds(config.name, timeout_seconds),
            fallback=self._defaults.fallback(config.name, fallback),
            history=history,
            prompt=prompt,
        )

    async def follow(self, record: TaskRecord) -> TaskRecord:
        """Wait until the task ends or asks a question; if the caller is cancelled meanwhile, stop the task first."""
        try:
            await self._book.wait_until((record,), 'all', deadline=None, stop_on_question=True)
        except BaseException:
            # The caller is gone: a task it was waiting for must not outlive it.
            await finish_shielded(self._cancels.stop(record, CancelReason(kind='parent_cancelled')))
            raise
        return record

    def _config(self, name: str) -> SubAgentConfig:
        config = self._configs.get(name) if isinstance(name, str) else None  # pyright: ignore[reportUnnecessaryIsInstance]
        if config is None:
            raise UnknownSubAgent(name, tuple(self._configs))
        return config

    def _launch(
        self,
        config: SubAgentConfig,
        description: str,
        *,
        timeout_seconds: float | None,
        region: str | None = None,
        fallback: str | None = None,
        fallback_for: TaskId | None = None,
        history: tuple[ModelMessage, ...] = (),
        prompt: str | None = None,
    ) -> TaskRecord:
        now = self._clock.now()
        self._book.forget_past_keeping()
        record = TaskRecord(
            task_id=self._book.records.new_task_id(config.name),
            subagent=config.name,
            description=description,
            created_at=now,
            region=region,
            deadline_at=now + timeout_seconds if timeout_seconds else None,
            parent_task_id=self.parent.task_id if self.parent else None,
            root_id=self.parent.root_id if self.parent else self._book.address,
            fallback_name=fallback,
            fallback_for=fallback_for,
        )
        self._book.add(record)
        start = StartTask(
            task_id=record.task_id,
            sent_at=now,
            subagent=config.name,
            prompt=description if prompt is None else prompt,
            owner_address=self._book.address,
            root_id=record.root_id,
            parent_task_id=record.parent_task_id,
            region=record.region,
            fallback_for=record.fallback_for,
            message_history=history,
            refuse_tools_after_cancel=self._policy.refuse_tools_after_cancel,
            preempt_on_soft_cancel=self._defaults.preempt_on_soft_cancel(config.name),
            cascade_grace_factor=self._policy.cascade_grace_factor,
            final_answer_wait_seconds=self._policy.final_answer_wait_seconds,
            hook_seconds=self._policy.hook_seconds,
            trace_context=trace_context(),  # its span nests under the caller's, wherever the host runs it
        )
        self.telemetry.follow(record.task_id)
        if record.deadline_at is not None:
            self._deadline_timers[record.task_id] = self._deadlines.call_at(
                record.deadline_at, partial(self._book.expire_deadline, record)
            )
        if self._policy.max_running is not None and len(self._running) >= self._policy.max_running:
            self._pending.append((record, start))
        else:
            self._start(record, start)
        return record

    def _start(self, record: TaskRecord, start: StartTask) -> None:
        if self._policy.max_running is not None:
            self._running.add(record.task_id)
        self._book.start(record, start)

    def _free_slot(self, record: TaskRecord) -> None:
        """The task's run is over (or it never started): its slot goes to the oldest PENDING task still PENDING."""
        self._running.discard(record.task_id)
        while self._pending and (self._policy.max_running is None or len(self._running) < self._policy.max_running):
            waiting, start = self._pending.popleft()
            if waiting.status is TaskStatus.PENDING:
                self._start(waiting, start)

    def _after_end(self, record: TaskRecord) -> None:
        """Free the ended task's slot, have its hook run, and start its fallback if it was cancelled."""
        if (deadline := self._deadline_timers.pop(record.task_id, None)) is not None:
            deadline.cancel()  # it would keep the record until then, past the book's forgetting
        self._free_slot(record)
        self._book.settle(record)
        if record.fallback_name is None or record.status is not TaskStatus.CANCELLED or self.phase != 'open':
            return
        assert record.cancel is not None and isinstance(record.outcome, Cancelled)
        config = self._configs[record.fallback_name]
        fallback = self._launch(
            config,
            fallback_prompt(record.description, record.cancel.reason, record.outcome.partial),
            timeout_seconds=self._defaults.timeout_seconds(config.name),
            fallback_for=record.task_id,
        )
        self._book.fallback_started(record, fallback)
