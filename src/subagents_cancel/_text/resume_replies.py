"""The replies to the parent's `resume_task` tool: the task that continues a stopped one, or why there is none."""

from __future__ import annotations

from subagents_cancel.messages import TaskId
from subagents_cancel.results import TaskInfo
from subagents_cancel.states import TaskStatus

__all__ = ('already_resumed', 'completed_not_resumable', 'still_running', 'task_resumed')


def task_resumed(info: TaskInfo, *, began: bool) -> str:
    """Reply to `resume_task` once the new task has started; `began`: the task it resumes had started its run."""
    state = 'waits for a free slot' if info.status is TaskStatus.PENDING else 'runs in the background'
    count = info.inherited_checkpoints
    inherited = f'{count or "no"} checkpoint{"s" if count != 1 else ""}'
    carried = (
        f'from where that task stopped, with its conversation and {inherited}'
        if began
        else "which was stopped before it began, from that task's request and your instructions"
    )
    return (
        f'Task started with ID: {info.task_id} ({info.subagent}); it resumes {info.resumed_from}'
        f'{" " if began else ", "}{carried}, and {state}. Follow it with check_task or wait_tasks.'
    )


def completed_not_resumable(task_id: TaskId) -> str:
    """Reply to `resume_task` for a task that completed."""
    return f'{task_id} COMPLETED, so it is not resumed: its answer stands. Start a new task with `task` for more work.'


def still_running(task_id: TaskId, status: TaskStatus) -> str:
    """Reply to `resume_task` for a task that has not ended."""
    return (
        f'{task_id} is still {status.name}, so it is not resumed: only a cancelled or failed task can be. '
        f'Cancel it or wait for it first.'
    )


def already_resumed(task_id: TaskId, resumed_by: TaskId) -> str:
    """Reply to `resume_task` for a task that was resumed before."""
    return (
        f'{task_id} was resumed already, as {resumed_by}: follow that task with check_task, or resume it if it was '
        f'stopped too.'
    )
