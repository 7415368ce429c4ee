"""The replies to the parent's tools about starting, cancelling, answering and waiting for tasks and regions.

Replies start with what happened, then give stable facts in a fixed order, then the next step. How one task is
shown inside them is in [`reports`][subagents_cancel._text.reports]; the refusals of bad input are in
[`refusals`][subagents_cancel._text.refusals].
"""

from __future__ import annotations

from collections.abc import Sequence

from subagents_cancel.messages import CancelMode, CancelReason
from subagents_cancel.regions import RegionCancelled, RegionCompleted, RegionIncomplete, RegionOutcome
from subagents_cancel.results import Cancelled, Completed, Failed, TaskInfo
from subagents_cancel.states import TaskStatus

from .reasons import FOR_PARENT_MODEL, in_words
from .reports import aftermath, partial_section, render_output, seconds_text, task_report, task_tree

__all__ = (
    'already_cancelled',
    'already_cancelling',
    'answer_delivered',
    'cancelled_before_start',
    'finished_before_cancel',
    'hard_cancel_timed_out',
    'hard_cancelled',
    'not_waiting',
    'region_already_delivered',
    'region_cancel_requested',
    'region_closed',
    'region_report',
    'soft_cancel_held',
    'soft_cancel_requested',
    'soft_cancel_unconfirmed',
    'task_list',
    'task_started',
    'wait_report',
)

_MAX_LISTED = 50


def task_started(info: TaskInfo) -> str:
    """Reply to `task(mode='async')`."""
    state = 'waits for a free slot' if info.status is TaskStatus.PENDING else 'runs in the background'
    return (
        f'Task started with ID: {info.task_id} ({info.subagent}); it {state}. '
        f'Follow it with check_task or wait_tasks; stop it with soft_cancel_task or hard_cancel_task.'
    )


def soft_cancel_requested(info: TaskInfo, *, answered_question: bool) -> str:
    """Reply to `soft_cancel_task` when the request was sent to a running task."""
    assert info.cancel is not None
    how = 'its open question was answered with the cancel request' if answered_question else 'it has been told'
    return (
        f'Cancellation requested for {info.task_id}: {how}, and it hands back partial results within '
        f'{info.cancel.grace_seconds:g}s or is stopped. check_task or wait_tasks will show them.'
    )


def soft_cancel_unconfirmed(info: TaskInfo) -> str:
    """Reply to `soft_cancel_task` when the task has not confirmed the request yet (its host is slow or down)."""
    assert info.cancel is not None
    return (
        f'Cancellation requested for {info.task_id}: the request is on its way, but the task has not confirmed it '
        'yet (its host may be busy or down); it is sent again until the task has it. It hands back partial results '
        f'within {info.cancel.grace_seconds:g}s of the request or is stopped. check_task or wait_tasks will show them.'
    )


def soft_cancel_held(info: TaskInfo) -> str:
    """Reply to `soft_cancel_task` when the task's final answer had arrived and was being checked."""
    assert info.cancel is not None
    return (
        f'Cancellation requested for {info.task_id}: its final answer had already arrived and is being checked. If '
        'it is accepted, the task completes and the cancel changes nothing; if not, the task is told then and hands '
        f'back partial results within {info.cancel.grace_seconds:g}s or is stopped. check_task or wait_tasks will '
        'show which.'
    )


def cancelled_before_start(info: TaskInfo) -> str:
    """Reply to a cancel of a PENDING task."""
    return f'Task cancelled: {info.task_id} before it started; nothing ran.'


def already_cancelling(info: TaskInfo) -> str:
    """Reply to a second soft cancel of the same task."""
    assert info.cancel is not None
    return (
        f'{info.task_id} is already being cancelled ({info.cancel.mode}); '
        f'check_task or wait_tasks will show its partial results.'
    )


def finished_before_cancel(info: TaskInfo) -> str:
    """Reply to a cancel of a task that had finished first (COMPLETED or FAILED): nothing was cancelled; its result.

    The task may still be ending (its run had committed its output when the cancel reached it, and is not over
    yet): its result is then what the cancel lost to.
    """
    lost_to = info.cancel.lost_to if info.cancel is not None else None
    match info.outcome if info.outcome is not None else lost_to:
        case Completed(output=output):
            head = (
                f'{info.task_id} had finished before the cancel arrived, so nothing was cancelled: COMPLETED in '
                f'{seconds_text(info.elapsed_seconds)}. Output:\n{render_output(output)}'
            )
        case Failed(error_type=error_type, message=message):
            head = (
                f'{info.task_id} had already ended before the cancel arrived, so nothing was cancelled: FAILED after '
                f'{seconds_text(info.elapsed_seconds)}: {error_type}: {message}'
            )
        case _:  # pragma: no cover - a cancelled task gets `already_cancelled`, a live one is cancelled
            raise AssertionError(f'{info.task_id} has not finished: {info.status.name}')
    return '\n'.join([head, *aftermath(info)])


def already_cancelled(info: TaskInfo) -> str:
    """Reply to a cancel of a CANCELLED task."""
    return f'{info.task_id} is already cancelled; check_task shows its partial results.'


def hard_cancelled(info: TaskInfo) -> str:
    """Reply to `hard_cancel_task` once the task has stopped."""
    assert isinstance(info.outcome, Cancelled) and info.cancel is not None and info.ended_at is not None
    if info.started_at is None:
        return cancelled_before_start(info)
    report = (
        f'Task cancelled: {info.task_id} stopped {seconds_text(info.ended_at - info.cancel.requested_at)} after the '
        f'hard cancel.{partial_section(info.outcome.partial)}'
    )
    return '\n'.join([report, *aftermath(info)])


def hard_cancel_timed_out(task_id: str, waited_seconds: float) -> str:
    """Reply to `hard_cancel_task` when the run did not stop in time."""
    return (
        f'{task_id} did not stop within {waited_seconds:g}s of the hard cancel; it is marked unresponsive and may '
        f'still be running. check_task shows whether it stops later.'
    )


def answer_delivered(info: TaskInfo) -> str:
    """Reply to `answer_subagent`."""
    return f'Answer delivered to {info.task_id}; it continues its work.'


def not_waiting(info: TaskInfo) -> str:
    """Reply to `answer_subagent` for a task with no open question."""
    if info.cancel is not None and not info.is_terminal:
        return (
            f'{info.task_id} is not waiting for an answer: it is being cancelled ({info.cancel.mode}), so it takes no '
            'answer (the cancel answers any question it had); nothing was sent.'
        )
    return f'{info.task_id} is not waiting for an answer (it is {info.status.name}); nothing was sent.'


def task_list(infos: Sequence[TaskInfo], lingering: Sequence[TaskInfo] = ()) -> str:
    """Reply to `list_active_tasks`: the active tasks, then the ended ones whose sync tool threads still run."""
    lines = (
        [f'{len(infos)} active task{"s" if len(infos) != 1 else ""}:', *task_tree(infos[:_MAX_LISTED], depth=0)]
        if infos
        else ['No active tasks.']
    )
    if len(infos) > _MAX_LISTED:
        lines.append(f'… and {len(infos) - _MAX_LISTED:,} more.')
    if lingering:
        lines.append('Ended, but a sync tool of theirs is still working in a thread that cannot be stopped:')
        lines.extend(f'- {info.task_id} {info.status.name} ({info.subagent})' for info in lingering)
    return '\n'.join(lines)


def wait_report(infos: Sequence[TaskInfo], now: float, *, timed_out: bool, capped_seconds: float | None = None) -> str:
    """Reply to `wait_tasks`: why the wait ended, then each task's report.

    `capped_seconds` is the policy's longest wait, when the model asked for a longer one.
    """
    if not infos:
        return 'No active tasks to wait for.'
    asking = [info.task_id for info in infos if info.question is not None]
    running = [info.task_id for info in infos if not info.is_terminal]
    if asking:
        head = f'Waiting for your answer: {", ".join(asking)}.'
    elif timed_out and capped_seconds is not None:
        head = (
            f'Stopped waiting after {seconds_text(capped_seconds)}, the longest one wait may take '
            f'(your timeout_seconds was capped); still running: {", ".join(running)}.'
        )
    elif timed_out:
        head = f'Stopped waiting; still running: {", ".join(running)}.'
    elif running:
        head = f'A task has ended; still running: {", ".join(running)}.'
    else:
        head = 'The task has ended.' if len(infos) == 1 else f'All {len(infos)} tasks have ended.'
    return '\n\n'.join([head, *(task_report(info, now) for info in infos)])


def region_cancel_requested(region: str, mode: CancelMode, infos: Sequence[TaskInfo]) -> str:
    """Reply to `soft_cancel_region` / `hard_cancel_region`."""
    if not infos:
        return f'Region {region!r} is cancelled; it had no running task, and no new task can start in it.'
    first = [info.task_id for info in infos if info.cancel is not None and info.cancel.lost]
    rest = [info.task_id for info in infos if info.task_id not in first]
    done = f'{", ".join(first)} had finished before the cancel arrived' if first else ''
    if mode == 'hard':
        what = '; '.join(part for part in (f'stopped {", ".join(rest)}' if rest else '', done) if part)
        return f'Region {region!r} is cancelled: {what}. wait_region shows what each had.'
    told = f'{", ".join(rest)} {"have" if len(rest) != 1 else "has"} been told to wrap up' if rest else ''
    if not first:
        return (
            f'Region {region!r} is cancelled: {told}. '
            f'wait_region shows their partial results; no task in it can complete now.'
        )
    what = '; '.join(part for part in (told, done) if part)
    return (
        f'Region {region!r} is cancelled: {what}. '
        f'wait_region shows what each had; no other task in it can complete now.'
    )


def region_already_delivered(region: str, delivered: Sequence[TaskInfo]) -> str:
    """Reply to `soft_cancel_region` / `hard_cancel_region` once the region's join has delivered every result."""
    task_ids = ', '.join(info.task_id for info in delivered)
    return (
        f'Region {region!r} had already delivered every result ({task_ids}), so the cancel stopped nothing and '
        'wait_region still returns them. No new task can start in the region now.'
    )


def region_closed(region: str, reason: CancelReason) -> str:
    """Reply to `task` in a region that was cancelled."""
    return f'Region {region!r} was cancelled ({in_words(reason, FOR_PARENT_MODEL)}); no new task can start in it.'


def region_report(outcome: RegionOutcome, now: float) -> str:
    """Reply to `wait_region` once every task of the region has ended: all results, or why not."""
    match outcome:
        case RegionCompleted(region=region, outputs=outputs):
            if not outputs:
                return f'Region {region!r} has no tasks.'
            results = '\n\n'.join(f'{task_id}:\n{render_output(output)}' for task_id, output in outputs.items())
            return f'Region {region!r} completed: all {len(outputs)} results.\n\n{results}'
        case RegionCancelled(region=region, cancel=cancel, tasks=tasks):
            head = (
                f'Region {region!r} was cancelled ({cancel.mode}, {in_words(cancel.reason, FOR_PARENT_MODEL)}); '
                'there is no complete set of results.'
            )
        case RegionIncomplete(region=region, tasks=tasks):
            missing = [task.task_id for task in tasks if task.status is not TaskStatus.COMPLETED]
            head = f'Region {region!r} is incomplete: {", ".join(missing)} did not complete.'
    return '\n\n'.join([head, *(task_report(task, now) for task in tasks)])
