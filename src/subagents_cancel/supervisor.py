"""The supervisor of one owner: its lifetime, the runs it launches, and the background tasks it must not outlive.

It opens the owner's mailbox on entry, starts each task's runner in an asyncio task of its own, and on close
cancels what still runs, joins the runners within the policy's bounds, and reports those that did not stop as
orphans. Records are changed only through the task book.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import uuid
from collections.abc import Callable, Coroutine, Iterator, Mapping
from typing import Any, Literal

import anyio
from pydantic_ai.agent import AbstractAgent
from pydantic_ai.messages import ModelMessage

from .bus import MailboxHandler, MessageBus
from .cancels import Cancels
from .clock import Clock
from .config import SubAgentConfig, SubAgentPolicy
from .defaults import Defaults
from .errors import ManagerClosed, UnknownSubAgent
from .gc_pause import collector_paused
from .instructions import fallback_prompt
from .launch import run_instructions, settle_task, take_free_slot
from .messages import BusMessage, CancelReason, TaskId
from .nesting import EnclosingTask
from .regions import RegionClosed, check_region
from .registry import TaskRecord
from .results import Cancelled
from .runner import TaskRunner, TaskSpec
from .shield import finish_shielded
from .states import TaskEvent, TaskStatus
from .task_book import TaskBook
from .task_context import TaskContext, current_task
from .telemetry import TaskTelemetry
from .tool_threads import SyncToolPool

__all__ = ('Supervisor', 'new_owner_id')

_Phase = Literal['new', 'open', 'closing', 'closed']
_ADDRESS_ATTEMPTS = 64
"""Random addresses tried before the bus is judged broken: with 32 random bits, a second try is already rare."""


def new_owner_id() -> str:
    """A fresh random owner address, `owner-<8 hex digits>`."""
    return f'owner-{uuid.uuid4().hex[:8]}'


class Supervisor:
    """Opens and closes one owner, launches its tasks' runs, and holds its background tasks."""

    def __init__(
        self,
        *,
        configs: Mapping[str, SubAgentConfig],
        agents: Mapping[str, AbstractAgent[None, object]],
        policy: SubAgentPolicy,
        defaults: Defaults,
        clock: Clock,
        bus: MessageBus,
        book: TaskBook,
        cancels: Cancels,
        telemetry: TaskTelemetry,
    ) -> None:
        self._configs = configs
        self._agents = agents
        self._policy = policy
        self._defaults = defaults
        self._clock = clock
        self._bus = bus
        self._book = book
        self._cancels = cancels
        self.telemetry = telemetry
        """The owner's traces and metrics."""
        self.parent: TaskContext | None = None
        """The task this owner was opened in, if any: it is that task's child."""
        self._enclosing: EnclosingTask | None = None
        self.phase: _Phase = 'new'
        self._runners: dict[TaskId, TaskRunner] = {}
        # Runners are asyncio tasks, not children of an anyio task group: a group's exit waits for every child
        # without a bound, and a sub-agent that swallows cancellation would hold its owner open for ever. The
        # supervisor keeps them here, cancels them, and waits for them with a bound instead (see `close`).
        self._background: set[asyncio.Task[None]] = set()
        self._timers: set[asyncio.Task[None]] = set()
        self._orphans: list[TaskId] = []
        self._slot: anyio.Semaphore | None = None
        self._pool: SyncToolPool | None = None
        self._unsubscribe_telemetry: Callable[[], None] = lambda: None
        book.listen(ended=self._after_end, threads_finished=lambda record: self._close_mailbox_when_quiet())

    # --- lifetime -----------------------------------------------------------------------------

    def enter(self) -> None:
        """Open the owner: its slots and thread pool, its place under the task it runs in, and its mailbox.

        Raises:
            ManagerClosed: it was opened before.
        """
        if self.phase != 'new':
            raise ManagerClosed()
        self.phase = 'open'
        if self._policy.max_running is not None:
            self._slot = anyio.Semaphore(self._policy.max_running)
        self._pool = SyncToolPool(
            self._policy.sync_tool_threads,
            max_lingering=self._policy.max_lingering_threads,
            name=f'{self._book.address}-tool',
        )
        self.parent = current_task()
        addresses = itertools.chain((self._book.address,), iter(new_owner_id, ''))
        self._book.address = self._claim_address(addresses, self._book.receive)
        if self.parent is not None:
            self._enclosing = EnclosingTask(self.parent, bus=self._bus, book=self._book, cancels=self._cancels)
            self._enclosing.open()
        self._unsubscribe_telemetry = self._bus.subscribe(self.telemetry.observe)

    def _claim_address(self, candidates: Iterator[str], handler: MailboxHandler) -> str:
        """Open a mailbox at the first of `candidates` that no owner on the bus has, and return that address."""
        for address in itertools.islice(candidates, _ADDRESS_ATTEMPTS):
            if self._bus.open_mailbox(address, handler):
                return address
        raise RuntimeError(f'The message bus refused {_ADDRESS_ATTEMPTS} fresh random addresses in a row.')

    async def close(self, reason: CancelReason) -> None:
        """Cancel every task still running and wait for them, within the policy's bounds; idempotent."""
        if self.phase != 'open':
            return
        self.phase = 'closing'
        await finish_shielded(self._close(reason))

    async def _close(self, reason: CancelReason) -> None:
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
        await self._join_runners(self._clock.now() + self._policy.teardown_seconds)
        self.phase = 'closed'
        if self._enclosing is not None:
            self._enclosing.close()
        assert self._pool is not None
        self._pool.shutdown()  # a sync tool's thread cannot be stopped; it is reported, not awaited
        self._close_mailbox_when_quiet()

    def _close_mailbox_when_quiet(self) -> None:
        """After teardown, leave the bus once no orphan (a run or a sync tool's thread) can report to it."""
        records = self._book.records.all()
        if self.phase == 'closed' and not self._runners and not any(r.lingering_threads for r in records):
            self._bus.close_mailbox(self._book.address)
            self._unsubscribe_telemetry()

    async def _join_runners(self, deadline: float) -> None:
        """Wait for the runs to stop until `deadline`, then for the hooks of those that stopped, within theirs."""
        runners = [  # a record already forgotten has settled: its runner is done
            (runner, record)
            for task_id, runner in self._runners.items()
            if (record := self._book.records.find(task_id))
        ]
        with collector_paused(len(runners)), self._clock.deadline_scope(deadline):
            for _, record in runners:
                await record.ended.wait()
        with self._clock.deadline_scope(self._clock.now() + self._policy.hook_seconds):
            for runner, record in runners:
                if record.status.is_terminal:
                    await runner.finished.wait()
        stuck = {task_id for task_id, runner in self._runners.items() if not runner.finished.is_set()}
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
    ) -> TaskRecord:
        """Check where and what may start, then launch the task (see `SubAgentManager.start`) from `history`."""
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
        config = self._configs.get(name)
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
    ) -> TaskRecord:
        now = self._clock.now()
        self._book.forget_past_keeping()
        runner: TaskRunner | None = None

        def deliver(message: BusMessage) -> None:
            if runner is not None:  # nothing is sent before the runner exists: this runs without awaiting
                runner.receive(message)

        records = self._book.records
        task_id = self._claim_address((records.new_task_id(config.name) for _ in itertools.count()), deliver)
        record = TaskRecord(
            task_id=TaskId(task_id),
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
        spec = TaskSpec(
            task_id=record.task_id,
            owner_address=self._book.address,
            root_id=record.root_id,
            agent=self._agents[config.name],
            prompt=description,
            message_history=history,
            instructions=run_instructions(config),
            refuse_tools_after_cancel=self._policy.refuse_tools_after_cancel,
            preempt_on_soft_cancel=self._defaults.preempt_on_soft_cancel(config.name),
            deadline_at=record.deadline_at,
            cascade_grace_factor=self._policy.cascade_grace_factor,
            final_answer_wait_seconds=self._policy.final_answer_wait_seconds,
            settle=lambda context: self._settle(record, context, config),
        )
        queued = self._slot is not None and not take_free_slot(self._slot)
        assert self._pool is not None
        runner = TaskRunner(spec, bus=self._bus, clock=self._clock, pool=self._pool, slot=self._slot, queued=queued)
        self._runners[record.task_id] = runner
        if not queued:
            self._book.transition(record, TaskEvent.START, now)
        # The span opens in the task's own asyncio task, which copies the caller's context: it nests under the
        # parent's tool-call span, and whatever the sub-agent's run traces nests under it.
        traced = self.telemetry.traced(self._book.info(record), runner.run())
        task = asyncio.get_running_loop().create_task(traced, name=f'subagent {record.task_id}')
        self._background.add(task)
        task.add_done_callback(lambda done: self._forget(record.task_id, done))
        return record

    async def _settle(self, record: TaskRecord, context: TaskContext, config: SubAgentConfig) -> None:
        """Run the task's hooks once its run is over; only then does waiting for it return."""
        cleanup_error = await settle_task(
            record, self._book.info(record), context, config, clock=self._clock, hook_seconds=self._policy.hook_seconds
        )
        self._book.hooks_done(record, cleanup_error)

    def _forget(self, task_id: TaskId, done: asyncio.Task[None]) -> None:
        self._background.discard(done)
        self._runners.pop(task_id, None)
        self._close_mailbox_when_quiet()

    def _after_end(self, record: TaskRecord) -> None:
        """Start a cancelled task's fallback, while the owner is open."""
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
