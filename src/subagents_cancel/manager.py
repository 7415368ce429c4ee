"""The typed Python API: start, check, answer, wait for and cancel sub-agent tasks and regions, and own them.

A [`SubAgentManager`][subagents_cancel.SubAgentManager] is the owner of its tasks: they live inside its
`async with` block and are cancelled when it ends. [`SubAgentCapability`][subagents_cancel.SubAgentCapability]
opens one per parent run; an application opens its own to cancel from a button, a deadline or a webhook.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import uuid
from collections.abc import Callable, Iterator, Sequence
from types import TracebackType
from typing import Literal, Self

import anyio
from pydantic_ai.models import Model

from .bus import InProcessBus, MailboxHandler, MessageBus
from .clock import Clock, MonotonicClock, sleep_until
from .config import SubAgentConfig, SubAgentPolicy, check_duration, index_subagents
from .errors import (
    CancelTimeout,
    ManagerClosed,
    UnknownSubAgent,
)
from .gc_pause import collector_paused
from .instructions import fallback_prompt, parent_instructions
from .launch import agent_for, run_instructions, settle_task, take_free_slot
from .messages import (
    Answer,
    BusMessage,
    CancelAcknowledged,
    CancelEscalated,
    CancelHeld,
    CancelLost,
    CancelMode,
    CancelReason,
    CancelRequest,
    CheckpointRecorded,
    DeadlineExpired,
    Question,
    QuestionWithdrawn,
    RunEnding,
    RunError,
    RunFinished,
    RunOutput,
    RunStopped,
    StatusChanged,
    TaskId,
    TaskStarted,
    TaskUnresponsive,
    ThreadsFinished,
)
from .metrics import CancelMetrics
from .regions import RegionCancel, RegionClosed, RegionOutcome, check_region, region_outcome
from .registry import Registry, TaskRecord
from .results import CancelInfo, Cancelled, TaskInfo
from .runner import TaskRunner, TaskSpec
from .shield import finish_shielded
from .states import NotWaitingForAnswer, TaskEvent, TaskStatus
from .task_context import TaskContext, current_task
from .telemetry import TaskTelemetry
from .tool_threads import SyncToolPool
from .waiting import Waiters, WaitFor, WaitResult

__all__ = ('SubAgentManager',)

_Phase = Literal['new', 'open', 'closing', 'closed']
_ADDRESS_ATTEMPTS = 64
"""Random addresses tried before the bus is judged broken: with 32 random bits, a second try is already rare."""


def _new_owner_id() -> str:
    return f'owner-{uuid.uuid4().hex[:8]}'


class SubAgentManager:
    """Starts, tracks and stops sub-agent tasks, and owns them for the length of an `async with` block.

    When the block ends, tasks still running are cancelled (hard by default, see
    [`SubAgentPolicy.owner_end`][subagents_cancel.SubAgentPolicy.owner_end]) and waited for, within
    [`teardown_seconds`][subagents_cancel.SubAgentPolicy.teardown_seconds]; a task that does not stop is
    reported by [`orphans`][subagents_cancel.SubAgentManager.orphans] instead of holding the block open.
    Opened inside a sub-agent task, it is that task's child: a cancel of the task reaches its tasks first.

    Example:
        ```python
        async with SubAgentManager([researcher], default_model=model) as manager:
            task = await manager.start('researcher', 'Comprehensive market research')
            ...  # later, from a button, a deadline or a webhook:
            await manager.soft_cancel(task.task_id)
            (info,) = (await manager.wait([task.task_id])).tasks
            print(info.outcome)  # Cancelled(..., partial=PartialResult(completed=(...), ...))
        ```
    """

    def __init__(
        self,
        subagents: Sequence[SubAgentConfig],
        *,
        default_model: str | Model | None = None,
        policy: SubAgentPolicy | None = None,
        clock: Clock | None = None,
        bus: MessageBus | None = None,
    ) -> None:
        """Configure the manager; tasks can start once it is entered with `async with`.

        Args:
            subagents: The sub-agents that can be started, by name.
            default_model: The model of sub-agents whose config names neither `model` nor `agent`.
            policy: Grace windows, waiting bounds and concurrency; [`SubAgentPolicy()`][subagents_cancel.SubAgentPolicy]
                by default.
            clock: Where time comes from; inside a sub-agent task, that task's clock, else
                [`MonotonicClock`][subagents_cancel.clock.MonotonicClock].
            bus: The message bus between this owner and its tasks; a new
                [`InProcessBus`][subagents_cancel.bus.InProcessBus] by default.

        Raises:
            ConfigError: no sub-agents, duplicate names, a bad fallback or `default_model`, or a sub-agent
                without a model.
        """
        self._configs = index_subagents(subagents)
        self._agents = {name: agent_for(config, default_model) for name, config in self._configs.items()}
        self.policy = policy or SubAgentPolicy()
        parent = current_task()
        self.clock = clock or (parent.clock if parent is not None else MonotonicClock())
        self._bus = bus or InProcessBus()
        self.owner_id = _new_owner_id()
        """This owner's mailbox address on the bus (another one is picked on entry if an owner on the bus has it)."""
        self._parent: TaskContext | None = None
        self._registry = Registry(
            keep_finished=self.policy.keep_finished, finished_ttl_seconds=self.policy.finished_ttl_seconds
        )
        self._waiters = Waiters(self.clock)
        self._runners: dict[TaskId, TaskRunner] = {}
        # Runners are asyncio tasks, not children of an anyio task group: a group's exit waits for every child
        # without a bound, and a sub-agent that swallows cancellation would hold its owner open for ever. The
        # manager keeps them here, cancels them, and waits for them with a bound instead (see `aclose`).
        self._background: set[asyncio.Task[None]] = set()
        self._region_timers: set[asyncio.Task[None]] = set()
        self._orphans: list[TaskId] = []
        self._phase: _Phase = 'new'
        self._slot: anyio.Semaphore | None = None
        self._pool: SyncToolPool | None = None
        self._telemetry = TaskTelemetry(self.get)
        self._unsubscribe_telemetry: Callable[[], None] = lambda: None

    @property
    def subagents(self) -> tuple[SubAgentConfig, ...]:
        """The configured sub-agents."""
        return tuple(self._configs.values())

    @property
    def instructions(self) -> str:
        """The instructions that tell a parent model about these sub-agents and the tools, for hand-wired toolsets."""
        return parent_instructions(self._configs.values())

    # --- lifetime -----------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._phase != 'new':
            raise ManagerClosed()
        self._phase = 'open'
        if self.policy.max_running is not None:
            self._slot = anyio.Semaphore(self.policy.max_running)
        self._pool = SyncToolPool(
            self.policy.sync_tool_threads, max_lingering=self.policy.max_lingering_threads, name=f'{self.owner_id}-tool'
        )
        self._parent = current_task()
        if self._parent is not None:
            self._parent.adopt(self)
        self.owner_id = self._claim_address(itertools.chain((self.owner_id,), iter(_new_owner_id, '')), self._receive)
        self._unsubscribe_telemetry = self._bus.subscribe(self._telemetry.observe)
        return self

    def _claim_address(self, candidates: Iterator[str], handler: MailboxHandler) -> str:
        """Open a mailbox at the first of `candidates` that no owner on the bus has, and return that address."""
        for address in itertools.islice(candidates, _ADDRESS_ATTEMPTS):
            if self._bus.open_mailbox(address, handler):
                return address
        raise RuntimeError(f'The message bus refused {_ADDRESS_ATTEMPTS} fresh random addresses in a row.')

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        cancelled = exc_type is not None and issubclass(exc_type, anyio.get_cancelled_exc_class())
        await self.aclose(CancelReason(kind='parent_cancelled' if cancelled else 'parent_ended'))

    async def aclose(self, reason: CancelReason | None = None) -> None:
        """Cancel every task still running and wait for them, within the policy's bounds; idempotent.

        With `owner_end='soft'` the tasks are first told to wrap up and get `owner_end_grace_seconds`; the
        rest are hard-cancelled and awaited for `teardown_seconds`. Tasks that still have not stopped are
        marked unresponsive and listed by [`orphans`][subagents_cancel.SubAgentManager.orphans].
        """
        if self._phase != 'open':
            return
        self._phase = 'closing'
        await finish_shielded(self._close(reason or CancelReason(kind='parent_ended')))

    async def _close(self, reason: CancelReason) -> None:
        for timer in tuple(self._region_timers):
            timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await timer
        live = self._registry.active()
        if live and self.policy.owner_end == 'soft':
            self.cancel_all('soft', reason=reason, grace_seconds=self.policy.owner_end_grace_seconds)
            deadline = self.clock.now() + self.policy.owner_end_grace_seconds
            await self._waiters.wait_until(live, 'all', deadline=deadline, stop_on_question=False)
        self.cancel_all('hard', reason=reason, grace_seconds=0.0)
        await self._join_runners(self.clock.now() + self.policy.teardown_seconds)
        self._phase = 'closed'
        if self._parent is not None:
            self._parent.disown(self)
        assert self._pool is not None
        self._pool.shutdown()  # a sync tool's thread cannot be stopped; it is reported, not awaited
        self._close_mailbox_when_quiet()

    def _close_mailbox_when_quiet(self) -> None:
        """After teardown, leave the bus once no orphan (a run or a sync tool's thread) can report to it."""
        if self._phase == 'closed' and not self._runners and not any(r.lingering_threads for r in self._registry.all()):
            self._bus.close_mailbox(self.owner_id)
            self._unsubscribe_telemetry()

    async def _join_runners(self, deadline: float) -> None:
        """Wait for the runs to stop until `deadline`, then for the hooks of those that stopped, within theirs."""
        runners = [  # a record already forgotten has settled: its runner is done
            (runner, record) for task_id, runner in self._runners.items() if (record := self._registry.find(task_id))
        ]
        with collector_paused(len(runners)), self.clock.deadline_scope(deadline):
            for _, record in runners:
                await record.ended.wait()
        with self.clock.deadline_scope(self.clock.now() + self.policy.hook_seconds):
            for runner, record in runners:
                if record.status.is_terminal:
                    await runner.finished.wait()
        stuck = {task_id for task_id, runner in self._runners.items() if not runner.finished.is_set()}
        stuck |= {record.task_id for record in self._registry.all() if record.lingering_threads}
        for task_id in stuck:
            self._mark_unresponsive(self._registry.get(task_id))
            self._orphans.append(task_id)

    def orphans(self) -> tuple[TaskInfo, ...]:
        """Tasks that had not stopped when the owner's teardown gave up waiting (a run, or a sync tool's thread).

        An orphan that stopped later and was then forgotten (`keep_finished`, `finished_ttl_seconds`) is left out.
        """
        return tuple(self._info(record) for task_id in self._orphans if (record := self._registry.find(task_id)))

    # --- starting -----------------------------------------------------------------------------

    async def start(
        self,
        subagent: str,
        description: str,
        *,
        region: str | None = None,
        timeout_seconds: float | None = None,
        fallback: str | None = None,
    ) -> TaskInfo:
        """Start a task in the background and return at once.

        Args:
            subagent: The name of a configured sub-agent.
            description: What it should do; this is its whole prompt.
            region: The cancel region it belongs to (`research`, `research/patents`, …).
            timeout_seconds: Its time budget; by default the sub-agent's, else the policy's (none).
            fallback: The sub-agent that takes over if it is cancelled; by default the sub-agent's.

        Raises:
            ManagerClosed: the manager is not open.
            UnknownSubAgent: no sub-agent has this name (or the fallback's).
            RegionClosed: the region was cancelled.
            ValueError: the region name or `timeout_seconds` is not valid (a timeout is finite and greater than 0).
        """
        if timeout_seconds is not None:
            check_duration('timeout_seconds', timeout_seconds)
        if self._phase != 'open':
            raise ManagerClosed()
        config = self._config(subagent)
        if fallback is not None:
            self._config(fallback)
        if region is not None:
            check_region(region)
            self._registry.forget_past_keeping(self.clock.now())  # a cancel past its time to live closes nothing
            if cancel := self._registry.region_cancel(region):
                raise RegionClosed(region, cancel.reason)
        timeout = next(
            (value for value in (timeout_seconds, config.timeout_seconds, self.policy.task_timeout_seconds) if value),
            None,
        )
        record = self._launch(
            config, description, region=region, timeout_seconds=timeout, fallback=fallback or config.fallback
        )
        return self._info(record)

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
    ) -> TaskRecord:
        now = self.clock.now()
        self._registry.forget_past_keeping(now)
        runner: TaskRunner | None = None

        def deliver(message: BusMessage) -> None:
            if runner is not None:  # nothing is sent before the runner exists: this runs without awaiting
                runner.receive(message)

        task_id = self._claim_address((self._registry.new_task_id(config.name) for _ in itertools.count()), deliver)
        record = TaskRecord(
            task_id=TaskId(task_id),
            subagent=config.name,
            description=description,
            created_at=now,
            region=region,
            deadline_at=now + timeout_seconds if timeout_seconds else None,
            parent_task_id=self._parent.task_id if self._parent else None,
            root_id=self._parent.root_id if self._parent else self.owner_id,
            fallback_name=fallback,
            fallback_for=fallback_for,
        )
        self._registry.add(record)
        spec = TaskSpec(
            task_id=record.task_id,
            owner_address=self.owner_id,
            root_id=record.root_id,
            agent=self._agents[config.name],
            prompt=description,
            instructions=run_instructions(config),
            refuse_tools_after_cancel=self.policy.refuse_tools_after_cancel,
            preempt_on_soft_cancel=(
                self.policy.preempt_on_soft_cancel
                if config.preempt_on_soft_cancel is None
                else config.preempt_on_soft_cancel
            ),
            deadline_at=record.deadline_at,
            cascade_grace_factor=self.policy.cascade_grace_factor,
            final_answer_wait_seconds=self.policy.final_answer_wait_seconds,
            settle=lambda context: self._settle(record, context, config),
        )
        queued = self._slot is not None and not take_free_slot(self._slot)
        assert self._pool is not None
        runner = TaskRunner(spec, bus=self._bus, clock=self.clock, pool=self._pool, slot=self._slot, queued=queued)
        self._runners[record.task_id] = runner
        if not queued:
            self._apply(record, TaskEvent.START, now)
        # The span opens in the task's own asyncio task, which copies the caller's context: it nests under the
        # parent's tool-call span, and whatever the sub-agent's run traces nests under it.
        traced = self._telemetry.traced(self._info(record), runner.run())
        task = asyncio.get_running_loop().create_task(traced, name=f'subagent {record.task_id}')
        self._background.add(task)
        task.add_done_callback(lambda done: self._forget(record.task_id, done))
        return record

    async def _settle(self, record: TaskRecord, context: TaskContext, config: SubAgentConfig) -> None:
        """Run the task's hooks once its run is over; only then does waiting for it return."""
        await settle_task(
            record, self._info(record), context, config, clock=self.clock, hook_seconds=self.policy.hook_seconds
        )
        record.hooks_done = True
        self._registry.done(record, self.clock.now())
        self._waiters.notify(record)

    def _forget(self, task_id: TaskId, done: asyncio.Task[None]) -> None:
        self._background.discard(done)
        self._runners.pop(task_id, None)
        self._close_mailbox_when_quiet()

    async def run(
        self,
        subagent: str,
        description: str,
        *,
        region: str | None = None,
        timeout_seconds: float | None = None,
        fallback: str | None = None,
    ) -> TaskInfo:
        """Start a task and wait until it ends or asks a question; cancelling the caller hard-cancels the task.

        Takes the arguments of [`start`][subagents_cancel.SubAgentManager.start], and raises what it raises.
        """
        info = await self.start(
            subagent, description, region=region, timeout_seconds=timeout_seconds, fallback=fallback
        )
        record = self._registry.get(info.task_id)
        try:
            await self._waiters.wait_until((record,), 'all', deadline=None, stop_on_question=True)
        except BaseException:
            # The caller is gone: a task it was waiting for must not outlive it.
            await finish_shielded(self._stop(record, CancelReason(kind='parent_cancelled')))
            raise
        return self._info(record)

    # --- reading ------------------------------------------------------------------------------

    def get(self, task_id: str) -> TaskInfo:
        """A snapshot of one task.

        Raises:
            TypeError: `task_id` is not a `str`.
            UnknownTask: this owner has no such task.
        """
        return self._info(self._registry.get(task_id))

    def active_tasks(self) -> tuple[TaskInfo, ...]:
        """Snapshots of the tasks that have not ended, oldest first, each with its own sub-agents' tasks."""
        return tuple(self._info(record) for record in self._registry.active())

    def unresponsive_tasks(self) -> tuple[TaskInfo, ...]:
        """Tasks that were stopped but may still be running; each leaves this list once it really stops.

        That is a run that ignored its hard cancel, or a sync tool's thread that outlived its run (a thread
        cannot be stopped from outside; see [`TaskContext.cancel_requested`][subagents_cancel.TaskContext]).
        """
        return tuple(info for info in map(self._info, self._registry.unresponsive()) if info.unresponsive)

    def tasks(self) -> tuple[TaskInfo, ...]:
        """Snapshots of every task of this owner, oldest first."""
        return tuple(self._info(record) for record in self._registry.all())

    def _info(self, record: TaskRecord) -> TaskInfo:
        now = self.clock.now()
        runner = self._runners.get(record.task_id)
        subtasks = (
            tuple(info for child in runner.context.children for info in child.active_tasks())
            if runner is not None and not record.status.is_terminal
            else ()
        )
        fallback_record = self._registry.find(record.fallback_id) if record.fallback_id else None
        fallback = fallback_record.info(now) if fallback_record is not None else None
        return record.info(now, fallback=fallback, subtasks=subtasks)

    def metrics(self) -> CancelMetrics:
        """The cancel figures of this owner's tasks that have ended: statuses, response times, compute."""
        return self._telemetry.summary()

    async def wait(
        self, task_ids: Sequence[str] | None = None, *, wait_for: WaitFor = 'all', timeout_seconds: float | None = None
    ) -> WaitResult:
        """Wait until the tasks end, without polling; waiting never cancels them.

        A cancelled task with a fallback counts as ended once its fallback has ended too. Returns early
        when one of the tasks asks a question, since it needs an answer before it can go on.

        Args:
            task_ids: The tasks to wait for; all active tasks by default.
            wait_for: `'all'` to wait until every task has ended, `'any'` until one has.
            timeout_seconds: The longest to wait; the policy's `wait_timeout_seconds` by default.

        Raises:
            TypeError: `task_ids` is a single `str`, or one of the ids is not a `str`.
            UnknownTask: one of the ids is not a task of this owner.
            ValueError: `timeout_seconds` is not finite and greater than 0.
        """
        if isinstance(task_ids, str):
            raise TypeError(f'task_ids must be a list of task ids, not one str: pass [{task_ids!r}].')
        if timeout_seconds is not None:
            check_duration('timeout_seconds', timeout_seconds)
        records = (
            tuple(self._registry.get(task_id) for task_id in task_ids)
            if task_ids is not None
            else self._registry.active()
        )
        timeout = self.policy.wait_timeout_seconds if timeout_seconds is None else timeout_seconds
        finished = await self._waiters.wait_until(
            records, wait_for, deadline=self.clock.now() + timeout, stop_on_question=True
        )
        return WaitResult(tasks=tuple(self._info(record) for record in records), timed_out=not finished)

    # --- cancelling and answering -------------------------------------------------------------

    async def soft_cancel(
        self, task_id: str, *, reason: CancelReason | None = None, grace_seconds: float | None = None
    ) -> TaskInfo:
        """Tell a task to wrap up and hand back partial results; return at once.

        A PENDING task is cancelled on the spot and never starts. A task waiting for an answer gets the
        cancel request as the answer. A running task reads it at its next model request, after its own
        sub-agents' tasks have handed back theirs. If it has not ended when the grace window expires, it is
        hard-cancelled. Asking again changes nothing, and neither does asking once the task has ended.

        First writer wins: a task whose final answer was committed before the request reached it ends
        `COMPLETED` with its output, and `cancel.lost` says so; a task whose run had raised first ends `FAILED`.
        With the in-process bus, the returned snapshot already shows a cancel that lost, while the task may still
        be `RUNNING` for an instant (its run is ending): `cancel.lost` is set and `cancel.lost_to` holds the output.

        Args:
            task_id: The task to cancel.
            reason: Why; `CancelReason(kind='user')` by default.
            grace_seconds: How long it may wrap up; the sub-agent's or the policy's grace window by default.

        Returns:
            The task as of now; a task that had already ended is returned untouched (its `status` says how it
            ended, and its `cancel` is `None` unless a cancel was requested before).

        Raises:
            TypeError: `task_id` is not a `str`.
            UnknownTask: this owner has no such task.
            ValueError: `grace_seconds` is not finite and 0 or more.
        """
        if grace_seconds is not None:
            check_duration('grace_seconds', grace_seconds, zero_allowed=True)
        record = self._registry.get(task_id)
        if record.cancel is None and not record.status.is_terminal:
            self._request_cancel(record, 'soft', reason or CancelReason(), self._grace(record, grace_seconds))
        return self._info(record)

    async def hard_cancel(self, task_id: str, *, reason: CancelReason | None = None) -> TaskInfo:
        """Stop a task now and return once it has stopped: its sub-agents first, then its own run.

        A task that had already ended is returned untouched. A task whose final answer was committed before the
        request reached it ends `COMPLETED` with its output (one whose run had raised first, `FAILED`), and
        `cancel.lost` says so.

        Raises:
            TypeError: `task_id` is not a `str`.
            UnknownTask: this owner has no such task.
            CancelTimeout: it did not stop within `hard_cancel_wait_seconds`; it is now marked unresponsive.
        """
        record = self._registry.get(task_id)
        if not await self._stop(record, reason or CancelReason()):
            raise CancelTimeout(record.task_id, self.policy.hard_cancel_wait_seconds)
        return self._info(record)

    def cancel_all(self, mode: CancelMode, *, reason: CancelReason, grace_seconds: float | None = None) -> None:
        """Request a cancel of every task that is still running, and return at once.

        A soft request skips tasks that were already asked to stop; a hard one reaches them all.

        Raises:
            ValueError: `grace_seconds` is not finite and 0 or more.
        """
        if grace_seconds is not None:
            check_duration('grace_seconds', grace_seconds, zero_allowed=True)
        for record in self._registry.active():
            if mode == 'hard' or record.cancel is None:
                self._request_cancel(record, mode, reason, self._grace(record, grace_seconds))

    async def answer(self, task_id: str, answer: str) -> TaskInfo:
        """Answer the question a task is waiting on; it goes on at once.

        Raises:
            TypeError: `task_id` is not a `str`.
            UnknownTask: this owner has no such task.
            NotWaitingForAnswer: the task has no open question (or is being cancelled).
        """
        record = self._registry.get(task_id)
        question = record.question
        if question is None or record.state.cancel_requested:
            raise NotWaitingForAnswer(record.task_id, record.status)
        now = self.clock.now()
        self._apply(record, TaskEvent.ANSWER, now)
        self._bus.send(
            record.task_id, Answer(task_id=record.task_id, sent_at=now, text=answer, correlation_id=question.message_id)
        )
        return self._info(record)

    def _grace(self, record: TaskRecord, grace_seconds: float | None) -> float:
        config = self._configs[record.subagent]
        return next(
            value for value in (grace_seconds, config.grace_seconds, self.policy.grace_seconds) if value is not None
        )

    async def _stop(self, record: TaskRecord, reason: CancelReason) -> bool:
        """Hard-cancel `record` and wait for it within the bound; `False` (marked unresponsive) if it did not stop."""
        if record.status.is_terminal:
            return True
        self._request_cancel(record, 'hard', reason, 0.0)
        return await self._await_stops((record,))

    async def _await_stops(self, records: Sequence[TaskRecord]) -> bool:
        """Wait for hard-cancelled `records` to stop, within the bound; mark the ones that did not unresponsive."""
        with (
            collector_paused(len(records)),
            self.clock.deadline_scope(self.clock.now() + self.policy.hard_cancel_wait_seconds),
        ):
            for record in records:
                await record.ended.wait()
        stuck = [record for record in records if not record.status.is_terminal]
        for record in stuck:
            self._mark_unresponsive(record)
            self._waiters.notify(record)
        return not stuck

    def _mark_unresponsive(self, record: TaskRecord, at: float | None = None) -> None:
        """Record that something of the task still runs although it was stopped, and tell observers once."""
        if record.unresponsive_since is None:
            record.unresponsive_since = now = self.clock.now() if at is None else at
            self._registry.note_unresponsive(record)
            self._bus.send(self.owner_id, TaskUnresponsive(task_id=record.task_id, sent_at=now))

    def _request_cancel(
        self, record: TaskRecord, mode: CancelMode, reason: CancelReason, grace: float, *, at: float | None = None
    ) -> None:
        now = self.clock.now() if at is None else at
        request = CancelRequest(task_id=record.task_id, sent_at=now, mode=mode, reason=reason, grace_seconds=grace)
        if record.cancel is None:
            record.cancel = CancelInfo(
                mode=mode, reason=reason, requested_at=now, grace_seconds=grace, request_id=request.message_id
            )
        elif mode == 'hard':
            record.cancel = dataclasses.replace(record.cancel, mode='hard')
        self._apply(record, TaskEvent.SOFT_CANCEL if mode == 'soft' else TaskEvent.HARD_CANCEL, now)
        self._bus.send(record.task_id, request)

    # --- regions ------------------------------------------------------------------------------

    def open_region(self, region: str, *, timeout_seconds: float) -> None:
        """Give a region a time budget: when it runs out, the region is cancelled with reason `deadline`.

        The policy's `deadline_cancel` says whether softly or hard. A region needs no opening otherwise:
        `start(..., region=...)` creates it.

        Raises:
            ManagerClosed: the manager is not open.
            RegionClosed: the region was already cancelled.
            ValueError: the region name or `timeout_seconds` is not valid (a timeout is finite and greater than 0).
        """
        check_duration('timeout_seconds', timeout_seconds)
        if self._phase != 'open':
            raise ManagerClosed()
        check_region(region)
        if cancel := self._registry.region_cancel(region):
            raise RegionClosed(region, cancel.reason)
        deadline = self.clock.now() + timeout_seconds
        timer = asyncio.get_running_loop().create_task(self._expire_region(region, deadline), name=f'region {region}')
        self._region_timers.add(timer)
        timer.add_done_callback(self._region_timers.discard)

    async def _expire_region(self, region: str, deadline: float) -> None:
        await sleep_until(self.clock, deadline)
        if self._phase == 'open' and self._registry.region_cancel(region) is None:
            self._cancel_region(region, self.policy.deadline_cancel, CancelReason(kind='deadline', detail=region))

    async def soft_cancel_region(
        self, region: str, *, reason: CancelReason | None = None, grace_seconds: float | None = None
    ) -> tuple[TaskInfo, ...]:
        """Cancel a region softly: every running task in it (and in the regions inside it) is told to wrap up.

        From now on, no task of the region can complete, and none can start in it. Returns at once, with
        the tasks that were asked to stop.

        Raises:
            ValueError: the region name or `grace_seconds` is not valid (a grace window is finite and 0 or more).
        """
        if grace_seconds is not None:
            check_duration('grace_seconds', grace_seconds, zero_allowed=True)
        records = self._cancel_region(check_region(region), 'soft', reason, grace_seconds)
        return tuple(self._info(record) for record in records)

    async def hard_cancel_region(self, region: str, *, reason: CancelReason | None = None) -> tuple[TaskInfo, ...]:
        """Stop every running task in a region (and in the regions inside it), and return once they have stopped.

        Tasks that do not stop within `hard_cancel_wait_seconds` are marked unresponsive, not waited for.

        Raises:
            ValueError: the region name is not valid.
        """
        records = self._cancel_region(check_region(region), 'hard', reason, None)
        await self._await_stops(records)
        return tuple(self._info(record) for record in records)

    def _cancel_region(
        self, region: str, mode: CancelMode, reason: CancelReason | None, grace_seconds: float | None = None
    ) -> tuple[TaskRecord, ...]:
        reason = reason or CancelReason(kind='region', detail=region)
        self._registry.cancel_region(region, RegionCancel(mode=mode, reason=reason, at=self.clock.now()))
        records = tuple(record for record in self._registry.in_region(region) if not record.status.is_terminal)
        for record in records:
            if mode == 'hard' or record.cancel is None:
                self._request_cancel(record, mode, reason, self._grace(record, grace_seconds))
        return records

    def regions(self) -> tuple[str, ...]:
        """The regions this owner knows: those holding a task it keeps, and the cancelled ones it keeps closed.

        A region is forgotten with its last task (see `keep_finished`); a cancelled region stays closed while any
        of its tasks is kept, and one cancelled while it held no task until `keep_finished` more such are cancelled.
        """
        return self._registry.regions()

    def region_tasks(self, region: str) -> tuple[TaskInfo, ...]:
        """Snapshots of the tasks of a region and of the regions inside it."""
        return tuple(self._info(record) for record in self._registry.in_region(region))

    async def join_region(self, region: str) -> RegionOutcome:
        """Wait until every task of the region has ended; then deliver all their results, or why not.

        All-or-nothing: a region that was cancelled delivers a notice with the reason, even if some of its
        tasks had completed; a region where a task failed or was cancelled on its own delivers the tasks as
        they are, marked incomplete. Never a partial set as if it were complete.
        """
        records = self._registry.in_region(check_region(region))
        await self._waiters.wait_until(records, 'all', deadline=None, stop_on_question=False)
        return region_outcome(region, (self._info(record) for record in records), self._registry.region_cancel(region))

    # --- what the tasks report ----------------------------------------------------------------

    def _receive(self, message: BusMessage) -> None:
        record = self._reported_task(message)
        if record is None:
            return
        match message:
            case TaskStarted():
                self._apply(record, TaskEvent.START, message.sent_at)
            case Question() | QuestionWithdrawn() if not record.state.cancel_requested:  # else the cancel answers it
                self._on_question(record, message)
            case CheckpointRecorded(checkpoint=checkpoint):
                record.checkpoints.append(checkpoint)
                self._waiters.notify(record)
            case CancelAcknowledged() | CancelEscalated() | CancelHeld() | CancelLost() if record.cancel is not None:
                self._on_cancel_report(record, message)
            case DeadlineExpired() if record.cancel is None and not record.status.is_terminal:
                reason = CancelReason(kind='deadline')
                self._request_cancel(record, self.policy.deadline_cancel, reason, self._grace(record, None))
            case RunFinished():
                self._finish(record, message)
            case ThreadsFinished():
                self._threads_finished(record, message.sent_at)
            case _:  # a question, acknowledgement or deadline that lost a race with a cancel or the end
                pass

    def _reported_task(self, message: BusMessage) -> TaskRecord | None:
        """The task a report is about; `None` for what is not a task's report to this owner."""
        if isinstance(message, StatusChanged | TaskUnresponsive | CancelRequest | Answer):
            return None  # our own announcements, for observers; requests for tasks sent here by mistake
        return self._registry.find(message.task_id)  # `None`: a sender on a shared bus used the wrong address

    def _on_cancel_report(
        self, record: TaskRecord, message: CancelAcknowledged | CancelEscalated | CancelHeld | CancelLost
    ) -> None:
        """What became of the task's cancel request: the sub-agent read it, it escalated, it waits, or it lost."""
        assert record.cancel is not None
        match message:
            case CancelAcknowledged():
                record.cancel = dataclasses.replace(record.cancel, acknowledged_at=message.sent_at)
            case CancelEscalated():
                record.cancel = dataclasses.replace(record.cancel, mode='hard', escalated_at=message.sent_at)
            case CancelHeld():
                record.cancel = dataclasses.replace(record.cancel, held_at=message.sent_at)
            case CancelLost(ending=ending):
                record.note_lost(ending)
        self._waiters.notify(record)

    def _threads_finished(self, record: TaskRecord, at: float) -> None:
        record.lingering_threads = 0
        self._registry.done(record, at)
        self._waiters.notify(record)
        self._close_mailbox_when_quiet()

    def _on_question(self, record: TaskRecord, message: Question | QuestionWithdrawn) -> None:
        if isinstance(message, Question):
            record.question = message
            self._apply(record, TaskEvent.ASK, message.sent_at)
        elif record.question is not None and record.question.message_id == message.correlation_id:
            self._apply(record, TaskEvent.ANSWER, message.sent_at)  # its ask_parent call was cut off: it works on

    def _finish(self, record: TaskRecord, message: RunFinished) -> None:
        record.usage = message.usage
        if message.lingering_threads:
            record.lingering_threads = message.lingering_threads
            self._mark_unresponsive(record, message.sent_at)
        match message.ending:
            case RunOutput():
                event = TaskEvent.COMPLETE
            case RunError():
                event = TaskEvent.FAIL
            case RunStopped():
                if record.cancel is None and not record.status.is_terminal:
                    # Stopped from outside (its owner's task was cancelled): record that as the cancel, requested when
                    # the run reported it had stopped, so that the stop time is never negative.
                    reason = CancelReason(kind='parent_cancelled')
                    self._request_cancel(record, 'hard', reason, 0.0, at=message.sent_at)
                event = TaskEvent.STOP
        self._apply(record, event, message.sent_at, ending=message.ending)

    def _apply(self, record: TaskRecord, event: TaskEvent, at: float, *, ending: RunEnding | None = None) -> None:
        old = record.state
        if not record.apply(event, at=at, ending=ending):
            return
        if record.status.is_terminal:
            self._registry.settle(record)
            self._after_end(record)
        self._bus.send(self.owner_id, StatusChanged(task_id=record.task_id, sent_at=at, old=old, new=record.state))
        self._waiters.notify(record)

    def _after_end(self, record: TaskRecord) -> None:
        """Start a cancelled task's fallback; tell a fallback's original that it has ended."""
        if record.fallback_for is not None:
            original = self._registry.get(record.fallback_for)
            original.awaiting_fallback = False
            self._registry.done(original, self.clock.now())
            self._waiters.notify(original)
        if record.fallback_name is None or record.status is not TaskStatus.CANCELLED or self._phase != 'open':
            return
        assert record.cancel is not None and isinstance(record.outcome, Cancelled)
        config = self._configs[record.fallback_name]
        fallback = self._launch(
            config,
            fallback_prompt(record.description, record.cancel.reason, record.outcome.partial),
            timeout_seconds=config.timeout_seconds or self.policy.task_timeout_seconds,
            fallback_for=record.task_id,
        )
        record.fallback_id = fallback.task_id
        record.awaiting_fallback = True
