"""The typed Python API: start, check, answer, wait for and cancel sub-agent tasks and regions, and own them.

A [`SubAgentManager`][subagents_cancel.SubAgentManager] is the owner of its tasks: they live inside its
`async with` block and are cancelled when it ends. [`SubAgentCapability`][subagents_cancel.SubAgentCapability]
opens one per parent run; an application opens its own to cancel from a button, a deadline or a webhook.

The manager is a front over one owner (`_engine/owner.py`), whose pieces each method delegates to: the task book
(`task_book`) is the only writer of task records and the owner's side of the transport (`owner_mailbox` reads it);
a task host (`task_host`) runs the tasks, reached only through the transport; the supervisor (`supervisor`) opens
and closes the owner and launches the runs; the cancel commands (`cancels`) return typed outcomes; the region
service (`region_service`) handles regions, which the manager's region methods (`region_front`) hand to it;
`Defaults` (`defaults`) resolves every setting, per call → per sub-agent → policy. See the architecture page of
the docs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Self

import anyio
from pydantic_ai.models import Model

from ._engine.launch import check_runnable
from ._engine.owner import Owner
from ._engine.region_front import RegionFront
from ._engine.registry import TaskRecord
from ._text.instructions import parent_instructions
from .clock import Clock, MonotonicClock
from .config import SubAgentConfig, SubAgentPolicy, check_duration, check_text, index_subagents
from .errors import CancelTimeout
from .message_parts import given_reason
from .messages import CancelMode, CancelReason
from .metrics import CancelMetrics
from .outcomes import HardCancelOutcome, SoftCancelOutcome, WaitFor, WaitResult
from .results import TaskInfo
from .task_context import current_task
from .transport import InProcessTransport, Transport

__all__ = ('SubAgentManager',)

_BY_USER = CancelReason()
_PARENT_ENDED = CancelReason(kind='parent_ended')

# A private seam for the test suite, which runs every test on each transport: what a manager given no transport
# creates (and opens and closes itself). Applications pass `transport=` instead.
_default_transport: Callable[[], Transport] = InProcessTransport


class SubAgentManager(RegionFront):
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
        transport: Transport | None = None,
        host: str | None = None,
    ) -> None:
        """Configure the manager; tasks can start once it is entered with `async with`.

        Args:
            subagents: The sub-agents that can be started, by name.
            default_model: The model of sub-agents whose config names neither `model` nor `agent`.
            policy: Grace windows, waiting bounds and concurrency; [`SubAgentPolicy()`][subagents_cancel.SubAgentPolicy]
                by default.
            clock: Where time comes from; inside a sub-agent task, that task's clock, else
                [`MonotonicClock`][subagents_cancel.clock.MonotonicClock].
            transport: The one way between this owner and its tasks; by default a new
                [`InProcessTransport`][subagents_cancel.InProcessTransport] that the manager opens and closes. A
                transport given here is entered by its caller, around the manager's block.
            host: The address of a [`TaskHost`][subagents_cancel.task_host.TaskHost] already serving on `transport`
                that runs this owner's tasks; by default the transport's own if it has one (a
                [`TemporalTransport`][subagents_cancel.temporal.TemporalTransport] runs tasks on its workers), else
                the manager runs its own host, in this process, at `<owner_id>/tasks` (or the first free
                `<owner_id>/tasks-<n>`).

        Raises:
            ConfigError: no sub-agents, duplicate names, a bad fallback or `default_model`, or a sub-agent
                without a model.
        """
        self._configs = index_subagents(subagents)
        for config in self._configs.values():
            check_runnable(config, default_model)  # a sub-agent without a model is refused here, not when it starts
        self.policy = policy or SubAgentPolicy()
        parent = current_task()
        self.clock = clock or (parent.clock if parent is not None else MonotonicClock())
        self._owner = owner = Owner(
            subagents,
            self._configs,
            default_model=default_model,
            policy=self.policy,
            clock=self.clock,
            transport=transport,
            new_transport=_default_transport,
            host=host,
            lookup=self.get,
        )
        self._book, self._cancels, self._supervisor = owner.book, owner.cancels, owner.supervisor
        self._regions, self._resumes, self._defaults = owner.regions, owner.resumes, owner.defaults

    @property
    def owner_id(self) -> str:
        """This owner's mailbox address on its transport (another one is picked on entry if it is taken)."""
        return self._book.address

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
        await self._owner.enter()
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
        marked unresponsive and listed by [`orphans`][subagents_cancel.SubAgentManager.orphans]. Raises TypeError if
        `reason` is not a `CancelReason`.
        """
        await self._owner.close(given_reason(reason, _PARENT_ENDED))

    def orphans(self) -> tuple[TaskInfo, ...]:
        """Tasks that had not stopped when the owner's teardown gave up waiting (a run, or a sync tool's thread).

        An orphan that stopped later and was then forgotten (`keep_finished`, `finished_ttl_seconds`) is left out.
        """
        return tuple(map(self._book.info, self._supervisor.orphans()))

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
            TypeError: `description` is not a `str`.
            ValueError: `description` is empty, or the region name or `timeout_seconds` is not valid (a timeout is
                finite and greater than 0).
        """
        return self._book.info(self._start(subagent, description, region, timeout_seconds, fallback))

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
        record = self._start(subagent, description, region, timeout_seconds, fallback)
        return self._book.info(await self._supervisor.follow(record))

    def _start(
        self, subagent: str, description: str, region: str | None, timeout_seconds: float | None, fallback: str | None
    ) -> TaskRecord:
        """Start a task (see `start`) and return its record: `run` follows it without a snapshot taken first."""
        check_text('description', description)
        if timeout_seconds is not None:
            check_duration('timeout_seconds', timeout_seconds)
        return self._supervisor.start(
            subagent, description, region=region, timeout_seconds=timeout_seconds, fallback=fallback
        )

    async def resume(
        self,
        task_id: str,
        instructions: str,
        *,
        region: str | None = None,
        timeout_seconds: float | None = None,
        fallback: str | None = None,
    ) -> TaskInfo:
        """Continue a CANCELLED or FAILED task as a new task that starts from its conversation; return at once.

        The new task (same sub-agent) gets `instructions` as its next message and the old task's checkpoints; the
        old task keeps its outcome. `region`, `timeout_seconds` and `fallback` are as for
        [`start`][subagents_cancel.SubAgentManager.start]: the old task's are not carried over. The conversation is
        repaired first ([`resumable_history`][subagents_cancel.history_surgery.resumable_history]).

        Raises:
            NotResumable: the task completed, has not ended, or was resumed already.
            TypeError, UnknownTask: as [`get`][subagents_cancel.SubAgentManager.get] raises them; `TypeError` also
                when `instructions` is not a `str`, and `ValueError` when it is empty.
            ManagerClosed, UnknownSubAgent, RegionClosed, ValueError: as `start` raises them.
        """
        check_text('instructions', instructions)
        if timeout_seconds is not None:
            check_duration('timeout_seconds', timeout_seconds)
        record = self._book.records.get(task_id)
        resumption = self._resumes.resume(
            record, instructions, region=region, timeout_seconds=timeout_seconds, fallback=fallback
        )
        return self._book.info(resumption)

    # --- reading ------------------------------------------------------------------------------

    def get(self, task_id: str) -> TaskInfo:
        """A snapshot of one task.

        Raises:
            TypeError: `task_id` is not a `str`.
            UnknownTask: this owner has no such task.
        """
        return self._book.info(self._book.records.get(task_id))

    def active_tasks(self) -> tuple[TaskInfo, ...]:
        """Snapshots of the tasks that have not ended, oldest first, each with its own sub-agents' tasks."""
        return tuple(map(self._book.info, self._book.records.active()))

    def unresponsive_tasks(self) -> tuple[TaskInfo, ...]:
        """Tasks that were stopped but may still be running; each leaves this list once it really stops.

        That is a run that ignored its hard cancel, or a sync tool's thread that outlived its run (a thread
        cannot be stopped from outside; see [`TaskContext.cancel_requested`][subagents_cancel.TaskContext]).
        """
        return tuple(info for info in map(self._book.info, self._book.records.unresponsive()) if info.unresponsive)

    def tasks(self) -> tuple[TaskInfo, ...]:
        """Snapshots of every task of this owner, oldest first."""
        return tuple(map(self._book.info, self._book.records.all()))

    def metrics(self) -> CancelMetrics:
        """The cancel figures of this owner's tasks that have ended: statuses, response times, compute."""
        return self._supervisor.telemetry.summary()

    async def wait(
        self, task_ids: Sequence[str] | None = None, *, wait_for: WaitFor = 'all', timeout_seconds: float | None = None
    ) -> WaitResult:
        """Wait until the tasks end, without polling; waiting never cancels them.

        A cancelled task with a fallback counts as ended once its fallback has ended too. Returns early
        when one of the tasks asks a question, since it needs an answer before it can go on.

        Args:
            task_ids: The tasks to wait for; all active tasks by default. An id given twice counts once: the
                result has each task once, in the order first given.
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
        return await self._book.wait(task_ids, wait_for, self._defaults.wait_timeout_seconds(timeout_seconds))

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
        The call waits for the task's receipt of the request (at most `hard_cancel_wait_seconds`), so the returned
        snapshot already shows a cancel that lost, while the task may still
        be `RUNNING` for an instant (its run is ending): `cancel.lost` is set and `cancel.lost_to` holds the output.

        Args:
            task_id: The task to cancel.
            reason: Why; `CancelReason(kind='user')` by default.
            grace_seconds: How long it may wrap up; the sub-agent's or the policy's grace window by default.

        Returns:
            The task as of now; a task that had already ended is returned untouched (its `status` says how it
            ended, and its `cancel` is `None` unless a cancel was requested before).

        Raises:
            TypeError: `task_id` is not a `str`, or `reason` not a `CancelReason`.
            UnknownTask: this owner has no such task.
            ValueError: `grace_seconds` is not finite and 0 or more.
        """
        return (await self.soft_cancel_outcome(task_id, reason=reason, grace_seconds=grace_seconds)).info

    async def soft_cancel_outcome(
        self, task_id: str, *, reason: CancelReason | None = None, grace_seconds: float | None = None
    ) -> SoftCancelOutcome:
        """[`soft_cancel`][subagents_cancel.SubAgentManager.soft_cancel], returning what the request found and did.

        Raises:
            TypeError: `task_id` is not a `str`, or `reason` not a `CancelReason`.
            UnknownTask: this owner has no such task.
            ValueError: `grace_seconds` is not finite and 0 or more.
        """
        record = self._book.records.get(task_id)
        if grace_seconds is not None:
            check_duration('grace_seconds', grace_seconds, zero_allowed=True)
        return await self._cancels.soft(record, given_reason(reason, _BY_USER), grace_seconds)

    async def hard_cancel(self, task_id: str, *, reason: CancelReason | None = None) -> TaskInfo:
        """Stop a task now and return once it has stopped: its sub-agents first, then its own run.

        A task that had already ended is returned untouched. A task whose final answer was committed before the
        request reached it ends `COMPLETED` with its output (one whose run had raised first, `FAILED`), and
        `cancel.lost` says so.

        Raises:
            TypeError: `task_id` is not a `str`, or `reason` not a `CancelReason`.
            UnknownTask: this owner has no such task.
            CancelTimeout: it did not stop within `hard_cancel_wait_seconds`; it is now marked unresponsive.
        """
        outcome = await self.hard_cancel_outcome(task_id, reason=reason)
        if outcome.result == 'timed_out':
            raise CancelTimeout(outcome.info.task_id, self.policy.hard_cancel_wait_seconds)
        return outcome.info

    async def hard_cancel_outcome(self, task_id: str, *, reason: CancelReason | None = None) -> HardCancelOutcome:
        """[`hard_cancel`][subagents_cancel.SubAgentManager.hard_cancel], returning what the request found and did.

        A task that did not stop within `hard_cancel_wait_seconds` is the outcome `'timed_out'`, not an error.

        Raises:
            TypeError: `task_id` is not a `str`, or `reason` not a `CancelReason`.
            UnknownTask: this owner has no such task.
        """
        record = self._book.records.get(task_id)
        return await self._cancels.hard(record, given_reason(reason, _BY_USER))

    def cancel_all(self, mode: CancelMode, *, reason: CancelReason, grace_seconds: float | None = None) -> None:
        """Request a cancel of every task that is still running, and return at once.

        A soft request skips tasks that were already asked to stop; a hard one reaches them all.

        Raises:
            TypeError: `reason` is not a `CancelReason`.
            ValueError: `mode` is neither `'soft'` nor `'hard'`, or `grace_seconds` is not finite and 0 or more.
        """
        if mode not in ('soft', 'hard'):
            raise ValueError(f"mode must be 'soft' or 'hard'; got {mode!r}.")
        if grace_seconds is not None:
            check_duration('grace_seconds', grace_seconds, zero_allowed=True)
        reason = given_reason(reason, _BY_USER)
        self._cancels.request_each(self._book.records.active(), mode, reason, grace_seconds)

    async def answer(self, task_id: str, answer: str) -> TaskInfo:
        """Answer the question a task is waiting on; it goes on at once.

        Raises:
            TypeError: `task_id` or `answer` is not a `str`.
            UnknownTask: this owner has no such task.
            NotWaitingForAnswer: the task has no open question (or is being cancelled).
        """
        record = self._book.records.get(task_id)
        self._book.answer(record, check_text('answer', answer, empty_allowed=True))
        return self._book.info(record)
