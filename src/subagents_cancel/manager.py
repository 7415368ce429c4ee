"""The typed Python API: start, check, answer, wait for and cancel sub-agent tasks, and own them.

A [`SubAgentManager`][subagents_cancel.SubAgentManager] is the owner of its tasks: they live inside its
`async with` block and are cancelled when it ends. [`SubAgentCapability`][subagents_cancel.SubAgentCapability]
opens one per parent run; an application opens its own to cancel from a button, a deadline or a webhook.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal, Self

import anyio
from pydantic_ai import Agent
from pydantic_ai.agent import AbstractAgent
from pydantic_ai.models import Model

from .bus import InProcessBus, MessageBus
from .clock import Clock, MonotonicClock
from .config import SubAgentConfig, SubAgentPolicy, check_model, index_subagents
from .errors import (
    CancelTimeout,
    ConfigError,
    ManagerClosed,
    NotWaitingForAnswer,
    TaskAlreadyFinished,
    UnknownSubAgent,
)
from .instructions import DEFAULT_CANCEL_INSTRUCTIONS, parent_instructions
from .messages import (
    Answer,
    BusMessage,
    CancelAcknowledged,
    CancelEscalated,
    CancelMode,
    CancelReason,
    CancelRequest,
    CheckpointRecorded,
    Question,
    RunEnding,
    RunError,
    RunFinished,
    RunOutput,
    RunStopped,
    StatusChanged,
    TaskId,
    TaskStarted,
)
from .registry import Registry, TaskRecord
from .results import CancelInfo, Cancelled, Completed, Failed, Outcome, PartialResult, TaskInfo
from .runner import TaskRunner, TaskSpec
from .states import TaskEvent, TaskStatus

__all__ = ('SubAgentManager', 'WaitFor', 'WaitResult')

WaitFor = Literal['all', 'any']
"""Wait until all of the tasks have ended, or until any one of them has."""

_Phase = Literal['new', 'open', 'closing', 'closed']


@dataclass(frozen=True, slots=True, kw_only=True)
class WaitResult:
    """What [`SubAgentManager.wait`][subagents_cancel.SubAgentManager.wait] saw when it returned."""

    tasks: tuple[TaskInfo, ...]
    timed_out: bool
    """The timeout passed before the tasks ended or one of them asked a question."""


@dataclass(eq=False, slots=True)
class _Waiter:
    """One caller of `wait`: woken when the tasks it watches are done, or one of them asks a question."""

    watched: frozenset[TaskId]
    unfinished: set[TaskId]
    wait_for: WaitFor
    stop_on_question: bool
    count: int
    woken: anyio.Event = field(default_factory=anyio.Event)

    def update(self, record: TaskRecord) -> None:
        if record.status.is_terminal:
            self.unfinished.discard(record.task_id)
        done = not self.unfinished or (self.wait_for == 'any' and len(self.unfinished) < self.count)
        if done or (self.stop_on_question and record.status is TaskStatus.WAITING_FOR_ANSWER):
            self.woken.set()


class SubAgentManager:
    """Starts, tracks and stops sub-agent tasks, and owns them for the length of an `async with` block.

    When the block ends, tasks still running are cancelled (hard by default, see
    [`SubAgentPolicy.owner_end`][subagents_cancel.SubAgentPolicy.owner_end]) and waited for, within
    [`teardown_seconds`][subagents_cancel.SubAgentPolicy.teardown_seconds]; a task that does not stop is
    reported by [`orphans`][subagents_cancel.SubAgentManager.orphans] instead of holding the block open.

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
            clock: Where time comes from; [`MonotonicClock`][subagents_cancel.MonotonicClock] by default.
            bus: The message bus between this owner and its tasks; a new
                [`InProcessBus`][subagents_cancel.InProcessBus] by default.

        Raises:
            ConfigError: no sub-agents, duplicate names, a bad `default_model`, or a sub-agent without a model.
        """
        self._configs = index_subagents(subagents)
        self._agents = {name: _agent_for(config, default_model) for name, config in self._configs.items()}
        self.policy = policy or SubAgentPolicy()
        self.clock = clock or MonotonicClock()
        self._bus = bus or InProcessBus()
        self.owner_id = f'owner-{uuid.uuid4().hex[:8]}'
        """This owner's mailbox address on the bus."""
        self._registry = Registry()
        self._runners: dict[TaskId, TaskRunner] = {}
        # Runners are asyncio tasks, not children of an anyio task group: a group's exit waits for every child
        # without a bound, and a sub-agent that swallows cancellation would hold its owner open for ever. The
        # manager keeps them here, cancels them, and waits for them with a bound instead (see `aclose`).
        self._background: set[asyncio.Task[None]] = set()
        self._waiters: set[_Waiter] = set()
        self._orphans: list[TaskId] = []
        self._phase: _Phase = 'new'
        self._slot: anyio.Semaphore | None = None

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
        self._bus.open_mailbox(self.owner_id, self._receive)
        return self

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
        reason = reason or CancelReason(kind='parent_ended')
        with anyio.CancelScope(shield=True):
            live = self._registry.active()
            if live and self.policy.owner_end == 'soft':
                for record in live:
                    if record.cancel is None:
                        self._request_cancel(record, 'soft', reason, self.policy.owner_end_grace_seconds)
                deadline = self.clock.now() + self.policy.owner_end_grace_seconds
                await self._wait_until(live, 'all', deadline=deadline, stop_on_question=False)
            for record in self._registry.active():
                self._request_cancel(record, 'hard', reason, 0.0)
            await self._join_runners(self.clock.now() + self.policy.teardown_seconds)
        self._phase = 'closed'
        if not self._runners:  # else orphans still report to this mailbox, and the last one closes it
            self._bus.close_mailbox(self.owner_id)

    async def _join_runners(self, deadline: float) -> None:
        with self.clock.deadline_scope(deadline):
            for runner in tuple(self._runners.values()):
                await runner.finished.wait()
        now = self.clock.now()
        for task_id, runner in self._runners.items():
            if not runner.finished.is_set():
                record = self._registry.get(task_id)
                record.unresponsive_since = record.unresponsive_since or now
                self._orphans.append(task_id)

    def orphans(self) -> tuple[TaskInfo, ...]:
        """Tasks that had not stopped when the owner's teardown gave up waiting for them."""
        now = self.clock.now()
        return tuple(self._registry.get(task_id).info(now) for task_id in self._orphans)

    # --- starting -----------------------------------------------------------------------------

    async def start(self, subagent: str, description: str) -> TaskInfo:
        """Start a task in the background and return at once.

        Args:
            subagent: The name of a configured sub-agent.
            description: What it should do; this is its whole prompt.

        Raises:
            ManagerClosed: the manager is not open.
            UnknownSubAgent: no sub-agent has this name.
        """
        if self._phase != 'open':
            raise ManagerClosed()
        config = self._configs.get(subagent)
        if config is None:
            raise UnknownSubAgent(subagent, tuple(self._configs))
        record = TaskRecord(
            task_id=self._registry.new_task_id(subagent),
            subagent=subagent,
            description=description,
            created_at=self.clock.now(),
        )
        self._registry.add(record)
        spec = TaskSpec(
            task_id=record.task_id,
            owner_address=self.owner_id,
            agent=self._agents[subagent],
            prompt=description,
            instructions=_run_instructions(config),
            refuse_tools_after_cancel=self.policy.refuse_tools_after_cancel,
        )
        queued = self._slot is not None and not _take_free_slot(self._slot)
        runner = TaskRunner(spec, bus=self._bus, clock=self.clock, slot=self._slot, queued=queued)
        self._runners[record.task_id] = runner
        if not queued:
            self._apply(record, TaskEvent.START, record.created_at)
        task = asyncio.get_running_loop().create_task(runner.run(), name=f'subagent {record.task_id}')
        self._background.add(task)
        task.add_done_callback(lambda done: self._forget(record.task_id, done))
        return record.info(self.clock.now())

    def _forget(self, task_id: TaskId, done: asyncio.Task[None]) -> None:
        self._background.discard(done)
        self._runners.pop(task_id, None)
        if self._phase == 'closed' and not self._runners:
            self._bus.close_mailbox(self.owner_id)

    async def run(self, subagent: str, description: str) -> TaskInfo:
        """Start a task and wait until it ends or asks a question; cancelling the caller hard-cancels the task.

        Raises:
            ManagerClosed: the manager is not open.
            UnknownSubAgent: no sub-agent has this name.
        """
        info = await self.start(subagent, description)
        record = self._registry.get(info.task_id)
        try:
            await self._wait_until((record,), 'all', deadline=None, stop_on_question=True)
        except BaseException:
            # The caller is gone: a task it was waiting for must not outlive it.
            with anyio.CancelScope(shield=True):
                await self._stop(record, CancelReason(kind='parent_cancelled'))
            raise
        return record.info(self.clock.now())

    # --- reading ------------------------------------------------------------------------------

    def get(self, task_id: str) -> TaskInfo:
        """A snapshot of one task.

        Raises:
            UnknownTask: this owner has no such task.
        """
        return self._registry.get(task_id).info(self.clock.now())

    def active_tasks(self) -> tuple[TaskInfo, ...]:
        """Snapshots of the tasks that have not ended, oldest first."""
        now = self.clock.now()
        return tuple(record.info(now) for record in self._registry.active())

    def tasks(self) -> tuple[TaskInfo, ...]:
        """Snapshots of every task of this owner, oldest first."""
        now = self.clock.now()
        return tuple(record.info(now) for record in self._registry.all())

    async def wait(
        self, task_ids: Sequence[str] | None = None, *, wait_for: WaitFor = 'all', timeout_seconds: float | None = None
    ) -> WaitResult:
        """Wait until the tasks end, without polling; waiting never cancels them.

        Returns early when one of the tasks asks a question, since it needs an answer before it can go on.

        Args:
            task_ids: The tasks to wait for; all active tasks by default.
            wait_for: `'all'` to wait until every task has ended, `'any'` until one has.
            timeout_seconds: The longest to wait; the policy's `wait_timeout_seconds` by default.

        Raises:
            UnknownTask: one of the ids is not a task of this owner.
        """
        records = (
            tuple(self._registry.get(task_id) for task_id in task_ids)
            if task_ids is not None
            else self._registry.active()
        )
        timeout = self.policy.wait_timeout_seconds if timeout_seconds is None else timeout_seconds
        finished = await self._wait_until(records, wait_for, deadline=self.clock.now() + timeout, stop_on_question=True)
        now = self.clock.now()
        return WaitResult(tasks=tuple(record.info(now) for record in records), timed_out=not finished)

    async def _wait_until(
        self, records: Sequence[TaskRecord], wait_for: WaitFor, *, deadline: float | None, stop_on_question: bool
    ) -> bool:
        """Wait until `records` are done by `wait_for` (or one asks, if `stop_on_question`); `False` on timeout."""
        waiter = _Waiter(
            watched=frozenset(record.task_id for record in records),
            unfinished={record.task_id for record in records if not record.status.is_terminal},
            wait_for=wait_for,
            stop_on_question=stop_on_question,
            count=len(records),
        )
        for record in records:
            waiter.update(record)
        if waiter.woken.is_set() or not records:
            return True
        self._waiters.add(waiter)
        try:
            with self.clock.deadline_scope(deadline) if deadline is not None else nullcontext():
                await waiter.woken.wait()
        finally:
            self._waiters.discard(waiter)
        return waiter.woken.is_set()

    # --- cancelling and answering -------------------------------------------------------------

    async def soft_cancel(
        self, task_id: str, *, reason: CancelReason | None = None, grace_seconds: float | None = None
    ) -> TaskInfo:
        """Tell a task to wrap up and hand back partial results; return at once.

        A PENDING task is cancelled on the spot and never starts. A task waiting for an answer gets the
        cancel request as the answer. A running task reads it at its next model request. If it has not
        ended when the grace window expires, it is hard-cancelled. Asking again changes nothing.

        Args:
            task_id: The task to cancel.
            reason: Why; `CancelReason(kind='user')` by default.
            grace_seconds: How long it may wrap up; the sub-agent's or the policy's grace window by default.

        Raises:
            UnknownTask: this owner has no such task.
            TaskAlreadyFinished: the task has already ended.
        """
        record = self._live_record(task_id)
        if record.cancel is None:
            config = self._configs[record.subagent]
            grace = next(
                value for value in (grace_seconds, config.grace_seconds, self.policy.grace_seconds) if value is not None
            )
            self._request_cancel(record, 'soft', reason or CancelReason(), grace)
        return record.info(self.clock.now())

    async def hard_cancel(self, task_id: str, *, reason: CancelReason | None = None) -> TaskInfo:
        """Stop a task now and return once it has stopped: its model stream is closed, its tools cancelled.

        Raises:
            UnknownTask: this owner has no such task.
            TaskAlreadyFinished: the task has already ended.
            CancelTimeout: it did not stop within `hard_cancel_wait_seconds`; it is now marked unresponsive.
        """
        record = self._live_record(task_id)
        if not await self._stop(record, reason or CancelReason()):
            raise CancelTimeout(record.task_id, self.policy.hard_cancel_wait_seconds)
        return record.info(self.clock.now())

    async def answer(self, task_id: str, answer: str) -> TaskInfo:
        """Answer the question a task is waiting on; it goes on at once.

        Raises:
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
        return record.info(now)

    def _live_record(self, task_id: str) -> TaskRecord:
        record = self._registry.get(task_id)
        if record.status.is_terminal:
            raise TaskAlreadyFinished(record.task_id, record.status)
        return record

    async def _stop(self, record: TaskRecord, reason: CancelReason) -> bool:
        """Hard-cancel `record` and wait for it within the bound; `False` (marked unresponsive) if it did not stop."""
        if record.status.is_terminal:
            return True
        self._request_cancel(record, 'hard', reason, 0.0)
        with self.clock.deadline_scope(self.clock.now() + self.policy.hard_cancel_wait_seconds):
            await record.ended.wait()
        if record.status.is_terminal:
            return True
        record.unresponsive_since = record.unresponsive_since or self.clock.now()
        self._notify(record)
        return False

    def _request_cancel(self, record: TaskRecord, mode: CancelMode, reason: CancelReason, grace: float) -> None:
        now = self.clock.now()
        request = CancelRequest(task_id=record.task_id, sent_at=now, mode=mode, reason=reason, grace_seconds=grace)
        if record.cancel is None:
            record.cancel = CancelInfo(
                mode=mode, reason=reason, requested_at=now, grace_seconds=grace, request_id=request.message_id
            )
        elif mode == 'hard':
            record.cancel = dataclasses.replace(record.cancel, mode='hard')
        self._apply(record, TaskEvent.SOFT_CANCEL if mode == 'soft' else TaskEvent.HARD_CANCEL, now)
        self._bus.send(record.task_id, request)

    # --- what the tasks report ----------------------------------------------------------------

    def _receive(self, message: BusMessage) -> None:
        match message:
            case StatusChanged():
                return  # our own announcement, for observers
            case CancelRequest() | Answer():  # pragma: no cover - only tasks receive these
                raise AssertionError(f'unexpected message for an owner: {message!r}')
            case _:
                pass
        record = self._registry.get(message.task_id)
        match message:
            case TaskStarted():
                self._apply(record, TaskEvent.START, message.sent_at)
            case Question() if not record.state.cancel_requested:  # else the cancel request answers it
                record.question = message
                self._apply(record, TaskEvent.ASK, message.sent_at)
            case CheckpointRecorded(checkpoint=checkpoint):
                record.checkpoints.append(checkpoint)
                self._notify(record)
            case CancelAcknowledged() if record.cancel is not None:
                record.cancel = dataclasses.replace(record.cancel, acknowledged_at=message.sent_at)
                self._notify(record)
            case CancelEscalated() if record.cancel is not None:
                record.cancel = dataclasses.replace(record.cancel, mode='hard', escalated_at=message.sent_at)
                self._notify(record)
            case RunFinished():
                self._finish(record, message)
            case _:  # pragma: no cover - a question or acknowledgement that lost a race with a cancel
                pass

    def _finish(self, record: TaskRecord, message: RunFinished) -> None:
        record.usage = message.usage
        match message.ending:
            case RunOutput():
                event = TaskEvent.COMPLETE
            case RunError():
                event = TaskEvent.FAIL
            case RunStopped():
                if record.cancel is None and not record.status.is_terminal:
                    # Stopped from outside (its owner's task was cancelled): record that as the cancel.
                    self._request_cancel(record, 'hard', CancelReason(kind='parent_cancelled'), 0.0)
                event = TaskEvent.STOP
        self._apply(record, event, message.sent_at, ending=message.ending)

    def _apply(self, record: TaskRecord, event: TaskEvent, at: float, *, ending: RunEnding | None = None) -> None:
        old = record.state
        if not record.apply(event, at=at):
            return
        if record.status.is_terminal:
            record.outcome = _outcome(record, ending)
            self._registry.settle(record)
        self._bus.send(self.owner_id, StatusChanged(task_id=record.task_id, sent_at=at, old=old, new=record.state))
        self._notify(record)

    def _notify(self, record: TaskRecord) -> None:
        for waiter in tuple(self._waiters):
            if record.task_id in waiter.watched:
                waiter.update(record)


def _take_free_slot(slot: anyio.Semaphore) -> bool:
    """Take a slot if one is free and nobody is queued for it (a released slot goes to the first in the queue)."""
    if slot.value == 0:
        return False
    slot.acquire_nowait()
    return True


def _outcome(record: TaskRecord, ending: RunEnding | None) -> Outcome:
    match record.status:
        case TaskStatus.COMPLETED:
            assert isinstance(ending, RunOutput)
            return Completed(ending.output)
        case TaskStatus.FAILED:
            assert isinstance(ending, RunError)
            return Failed(ending.error_type, ending.message)
        case _:
            assert record.status is TaskStatus.CANCELLED and record.cancel is not None
            cancel = record.cancel
            final = ending.output if isinstance(ending, RunOutput | RunStopped) else None
            return Cancelled(
                mode=cancel.mode,
                reason=cancel.reason,
                escalated=cancel.escalated_at is not None,
                error=ending if isinstance(ending, RunError) else None,
                partial=PartialResult.assemble(
                    record.checkpoints, final_message=final, read_request=cancel.acknowledged_at is not None
                ),
            )


def _agent_for(config: SubAgentConfig, default_model: str | Model | None) -> AbstractAgent[None, object]:
    if config.agent is not None:
        return config.agent
    model = config.model or default_model
    if model is None:
        raise ConfigError(
            f'Sub-agent {config.name!r} has no model: set `SubAgentConfig.model`, or `default_model` on the manager.'
        )
    try:
        model = check_model(model)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    return Agent(model, instructions=config.instructions or None, name=config.name, defer_model_check=True)


def _run_instructions(config: SubAgentConfig) -> str:
    """What each run of this sub-agent gets on top of its agent's own instructions."""
    cancel = DEFAULT_CANCEL_INSTRUCTIONS if config.cancel_instructions is None else config.cancel_instructions
    own = config.instructions if config.agent is not None else ''  # a built agent already has them
    return '\n\n'.join(text for text in (own, cancel) if text)
