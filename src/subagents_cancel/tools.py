"""The parent's tools. Each one parses its arguments, calls the manager, and returns a rendered reply.

Every refusal is an ordinary tool result, never `ModelRetry`: a model that keeps sending a bad id gets
a clear answer each time and cannot exhaust a retry budget that would end its own run.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar, assert_never

from pydantic_ai import FunctionToolset
from pydantic_ai.messages import ToolReturn

from ._engine.parent_tool_args import (
    AnswerArgs,
    CancelArgs,
    CancelRegionArgs,
    NoArgs,
    ResumeArgs,
    TaskArgs,
    TaskIdArgs,
    WaitArgs,
    WaitRegionArgs,
)
from ._engine.started import with_task_id
from ._engine.tooling import ToolArgs, ValidatedToolset, validated_tool
from ._text import refusals, replies, reports, resume_replies
from .errors import (
    ManagerClosed,
    UnknownSubAgent,
    UnknownTask,
)
from .manager import SubAgentManager
from .messages import CancelMode, CancelReason
from .outcomes import NotResumable, WaitResult
from .regions import RegionCancelOutcome, RegionClosed
from .results import TaskInfo
from .states import NotWaitingForAnswer, TaskStatus

__all__ = ('create_subagent_toolset', 'parent_toolset')

_ArgsT = TypeVar('_ArgsT', bound=ToolArgs)

ManagerSource = Callable[[], SubAgentManager | None]
"""Finds the manager that owns the current run's tasks (`None` when there is none)."""

_PARENT_TOOLSET_ID = 'subagents_cancel'
"""The parent tools' toolset id: a durable agent (Temporal) names its toolsets' activities by their ids."""

_IN_WORKFLOW = {'temporal': False}
"""The parent tools act on the run's manager, so in a durable run (a sub-agent with sub-agents on a Temporal worker)
they run in the workflow beside it, not as activities; in any other run this changes nothing."""


def create_subagent_toolset(manager: SubAgentManager) -> FunctionToolset[object]:
    """The parent's tools as a plain toolset, for agents that wire their instructions themselves.

    The tasks belong to `manager`: open it with `async with manager:` around the runs that use the tools;
    it cancels whatever is still running when the block ends. Its
    [`instructions`][subagents_cancel.SubAgentManager.instructions] describe the sub-agents and the tools.
    """
    return parent_toolset(lambda: manager)


def parent_toolset(current_manager: ManagerSource) -> FunctionToolset[object]:
    """The parent's tools, bound to whatever manager `current_manager` returns when a tool is called."""

    def guarded(
        handle: Callable[[SubAgentManager, _ArgsT], Awaitable[str | ToolReturn]],
    ) -> Callable[[_ArgsT], Awaitable[str | ToolReturn]]:
        async def call(args: _ArgsT) -> str | ToolReturn:
            manager = current_manager()
            if manager is None:
                return refusals.manager_closed()
            if isinstance(args, TaskIdArgs) and not args.task_id:
                return refusals.empty_task_id()
            try:
                return await handle(manager, args)
            except UnknownTask as error:
                return refusals.unknown_task(error.task_id, finished_forgotten=error.finished_forgotten)
            except ManagerClosed:
                return refusals.manager_closed()
            except RegionClosed as error:
                return replies.region_closed(error.region, error.reason)

        return call

    return ValidatedToolset(
        [
            validated_tool(
                'task',
                'Start a sub-agent on a piece of work. mode="sync" waits and returns its result; mode="async" '
                'returns a task id at once while the sub-agent works in the background.',
                TaskArgs,
                guarded(_task),
            ),
            validated_tool(
                'check_task',
                'Report a task: status, elapsed time and checkpoints; its result, partial result or error once it '
                'has ended; its question while it waits for an answer.',
                TaskIdArgs,
                guarded(_check_task),
            ),
            validated_tool(
                'wait_tasks',
                'Wait until tasks end (all of them, or any one), without polling. Returns early when one of them '
                'asks you a question, or at the timeout; the tasks keep running either way.',
                WaitArgs,
                guarded(_wait_tasks),
            ),
            validated_tool(
                'soft_cancel_task',
                'Ask a task to stop and hand back partial results. Returns at once; the task wraps up within its '
                'grace window and is stopped if it takes longer.',
                CancelArgs,
                guarded(_soft_cancel_task),
            ),
            validated_tool(
                'hard_cancel_task',
                'Stop a task now, with no wrap-up. Returns once it has stopped, with the checkpoints it recorded.',
                CancelArgs,
                guarded(_hard_cancel_task),
            ),
            validated_tool(
                'list_active_tasks',
                'List your tasks that have not ended, with their status.',
                NoArgs,
                guarded(_list_active_tasks),
            ),
            validated_tool(
                'answer_subagent',
                'Answer the question a task is waiting on; it goes on at once.',
                AnswerArgs,
                guarded(_answer_subagent),
            ),
            validated_tool(
                'soft_cancel_region',
                'Ask every task of a region to stop and hand back partial results; none of them can complete now, '
                'and no new task starts in the region. Returns at once.',
                CancelRegionArgs,
                guarded(_soft_cancel_region),
            ),
            validated_tool(
                'hard_cancel_region',
                'Stop every task of a region now; returns once they have stopped.',
                CancelRegionArgs,
                guarded(_hard_cancel_region),
            ),
            validated_tool(
                'wait_region',
                'Wait until every task of a region has ended, then get all their results — or, if the region was '
                'cancelled or a task did not complete, why not. Returns early when a task asks you a question.',
                WaitRegionArgs,
                guarded(_wait_region),
            ),
            validated_tool(
                'resume_task',
                'Continue a cancelled or failed task with new instructions: a new task of the same sub-agent starts '
                'from where it stopped, with its conversation and checkpoints. Returns the new task id at once.',
                ResumeArgs,
                guarded(_resume_task),
            ),
        ],
        id=_PARENT_TOOLSET_ID,
        metadata=_IN_WORKFLOW,
    )


async def _task(manager: SubAgentManager, args: TaskArgs) -> str | ToolReturn:
    launch = manager.start if args.mode == 'async' else manager.run
    try:
        info = await launch(
            args.subagent_type,
            args.description,
            region=args.region,
            timeout_seconds=args.timeout_seconds,
            fallback=args.fallback,
        )
        if args.mode == 'async':
            return with_task_id(replies.task_started(info), info.task_id)
    except UnknownSubAgent as error:
        return refusals.unknown_subagent(error.name, error.available)
    return with_task_id(reports.task_report(info, manager.clock.now()), info.task_id)


async def _check_task(manager: SubAgentManager, args: TaskIdArgs) -> str:
    return reports.task_report(manager.get(args.task_id), manager.clock.now())


def _wait_timeout(manager: SubAgentManager, asked: float | None) -> tuple[float, float | None]:
    """How long a wait tool may wait: the model's timeout, capped by the policy's `wait_timeout_seconds`.

    Returns the timeout, and the cap when it was applied (for the reply to say so).
    """
    cap = manager.policy.wait_timeout_seconds
    if asked is None or asked <= cap:
        return asked or cap, None
    return cap, cap  # also an infinite or absurdly large timeout: a deadline must stay a finite clock reading


async def _wait_tasks(manager: SubAgentManager, args: WaitArgs) -> str:
    timeout, capped = _wait_timeout(manager, args.timeout_seconds)
    result = await manager.wait(args.task_ids, wait_for=args.wait_for, timeout_seconds=timeout)
    return replies.wait_report(result.tasks, manager.clock.now(), timed_out=result.timed_out, capped_seconds=capped)


def _reason(args: CancelArgs) -> CancelReason:
    return CancelReason(kind='user', detail=args.reason or None)


def _too_late(info: TaskInfo) -> str:
    """The reply to a cancel that found the task ended: first cancelled, or finished before the cancel arrived."""
    return (
        replies.already_cancelled(info) if info.status is TaskStatus.CANCELLED else replies.finished_before_cancel(info)
    )


async def _soft_cancel_task(manager: SubAgentManager, args: CancelArgs) -> str:
    outcome = await manager.soft_cancel_outcome(args.task_id, reason=_reason(args))
    info = outcome.info
    match outcome.result:
        case 'already_ended':
            return _too_late(info)
        case 'already_requested':
            return replies.already_cancelling(info)
        case 'lost':  # its output was committed first; its run is ending
            return replies.finished_before_cancel(info)
        case 'never_started':
            return replies.cancelled_before_start(info)
        case 'held':
            return replies.soft_cancel_held(info)
        case 'requested':
            return replies.soft_cancel_requested(info, answered_question=outcome.answered_question)
        case 'unconfirmed':
            return replies.soft_cancel_unconfirmed(info)
        case _:  # pragma: no cover - every result is listed above
            assert_never(outcome.result)


async def _hard_cancel_task(manager: SubAgentManager, args: CancelArgs) -> str:
    outcome = await manager.hard_cancel_outcome(args.task_id, reason=_reason(args))
    info = outcome.info
    match outcome.result:
        case 'already_ended' | 'lost':  # 'lost': its output was committed before the request reached it
            return _too_late(info)
        case 'timed_out':
            return replies.hard_cancel_timed_out(info.task_id, manager.policy.hard_cancel_wait_seconds)
        case 'stopped':
            return replies.hard_cancelled(info)
        case _:  # pragma: no cover - every result is listed above
            assert_never(outcome.result)


async def _list_active_tasks(manager: SubAgentManager, args: NoArgs) -> str:
    lingering = tuple(info for info in manager.unresponsive_tasks() if info.is_terminal)
    return replies.task_list(manager.active_tasks(), lingering)


async def _answer_subagent(manager: SubAgentManager, args: AnswerArgs) -> str:
    try:
        return replies.answer_delivered(await manager.answer(args.task_id, args.answer))
    except NotWaitingForAnswer as error:
        return replies.not_waiting(manager.get(error.task_id))


def _region_reason(args: CancelRegionArgs) -> CancelReason:
    return CancelReason(kind='region', detail=f'{args.region}: {args.reason}' if args.reason else args.region)


def _region_cancel_reply(outcome: RegionCancelOutcome, mode: CancelMode) -> str:
    match outcome.result:
        case 'already_delivered':
            return replies.region_already_delivered(outcome.region, outcome.delivered)
        case 'cancelled':
            return replies.region_cancel_requested(outcome.region, mode, outcome.tasks)
        case _:  # pragma: no cover - every result is listed above
            assert_never(outcome.result)


async def _soft_cancel_region(manager: SubAgentManager, args: CancelRegionArgs) -> str:
    outcome = await manager.soft_cancel_region_outcome(args.region, reason=_region_reason(args))
    return _region_cancel_reply(outcome, 'soft')


async def _hard_cancel_region(manager: SubAgentManager, args: CancelRegionArgs) -> str:
    outcome = await manager.hard_cancel_region_outcome(args.region, reason=_region_reason(args))
    return _region_cancel_reply(outcome, 'hard')


async def _wait_region(manager: SubAgentManager, args: WaitRegionArgs) -> str:
    tasks = manager.region_tasks(args.region)
    if not tasks:
        return refusals.no_region(args.region)
    timeout, capped = _wait_timeout(manager, args.timeout_seconds)
    deadline = manager.clock.now() + timeout
    waited: tuple[str, ...] = ()
    # Tasks may join the region while the parent waits (a parallel `task` call): wait again for them, within the
    # same bound and again returning on a question, until one wait has covered every task of the region.
    while (task_ids := tuple(task.task_id for task in tasks)) != waited:
        waited = task_ids
        left = deadline - manager.clock.now()
        result = (
            await manager.wait(task_ids, timeout_seconds=left) if left > 0 else WaitResult(tasks=tasks, timed_out=True)
        )
        if result.timed_out or any(task.question is not None for task in result.tasks):
            return replies.wait_report(
                result.tasks, manager.clock.now(), timed_out=result.timed_out, capped_seconds=capped
            )
        tasks = manager.region_tasks(args.region)
    return replies.region_report(await manager.join_region(args.region), manager.clock.now())


async def _resume_task(manager: SubAgentManager, args: ResumeArgs) -> str | ToolReturn:
    began = manager.get(args.task_id).started_at is not None  # read first: resuming may forget the old record
    try:
        info = await manager.resume(
            args.task_id,
            args.instructions,
            region=args.region,
            timeout_seconds=args.timeout_seconds,
            fallback=args.fallback,
        )
    except NotResumable as error:
        match error.reason:
            case 'completed':
                return resume_replies.completed_not_resumable(error.task_id)
            case 'running':
                return resume_replies.still_running(error.task_id, error.status)
            case 'resumed':
                assert error.resumed_by is not None
                return resume_replies.already_resumed(error.task_id, error.resumed_by)
            case _:  # pragma: no cover - every reason is listed above
                assert_never(error.reason)
    except UnknownSubAgent as error:
        return refusals.unknown_subagent(error.name, error.available)
    return with_task_id(resume_replies.task_resumed(info, began=began), info.task_id)
