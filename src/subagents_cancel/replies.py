"""Every sentence a tool returns to a model, rendered from typed values.

Replies start with what happened, then give stable facts in a fixed order, then the next step.
Ids and other echoed input are shortened, so a 10,000-character id is not sent back whole.
"""

from __future__ import annotations

from collections.abc import Sequence

import pydantic_core
from pydantic import ValidationError

from .messages import CancelMode, CancelReason, Checkpoint
from .regions import RegionCancelled, RegionCompleted, RegionIncomplete, RegionOutcome
from .results import CancelInfo, Cancelled, Completed, Failed, PartialResult, TaskInfo
from .states import TaskStatus

__all__ = (
    'already_cancelled',
    'already_cancelling',
    'answer_delivered',
    'answered_by_parent',
    'arguments_not_an_object',
    'bad_arguments',
    'cancelled_before_start',
    'checkpoint_recorded',
    'empty_task_id',
    'finished_before_cancel',
    'hard_cancel_timed_out',
    'hard_cancelled',
    'manager_closed',
    'no_region',
    'not_waiting',
    'one_question_at_a_time',
    'partial_text',
    'region_cancel_requested',
    'region_closed',
    'region_report',
    'refused_after_cancel',
    'soft_cancel_requested',
    'step_interrupted',
    'task_list',
    'task_report',
    'task_started',
    'tool_interrupted',
    'unknown_subagent',
    'unknown_task',
    'wait_report',
)

_MAX_ECHO = 40
_MAX_LISTED = 50
_MAX_OUTPUT = 20_000
"""The most characters of one output (or final message) a reply shows; the Python API keeps it whole."""
_MAX_PROGRESS = 5_000
"""The most characters of one checkpoint list (completed, in progress, not started, findings) a reply shows."""


def _show(value: str) -> str:
    """Quote `value` for a reply, cut to a readable length."""
    if len(value) <= _MAX_ECHO:
        return repr(value)
    return f'{value[:_MAX_ECHO]!r}… ({len(value):,} characters)'


def _cut(text: str, limit: int) -> str:
    """`text`, or its first `limit` characters and how many more there were."""
    if len(text) <= limit:
        return text
    return f'{text[:limit]}… ({len(text) - limit:,} more characters)'


def _seconds(value: float) -> str:
    if value < 1:
        return f'{value * 1000:.1f} ms'
    return f'{value:.1f}s'


def _items(values: Sequence[str]) -> str:
    """A list from a checkpoint, joined, and cut to `_MAX_PROGRESS` characters."""
    return _cut('; '.join(values), _MAX_PROGRESS) if values else 'nothing'


def _render_output(output: object) -> str:
    """A sub-agent's output as text, cut to `_MAX_OUTPUT` characters.

    Strings are shown as they are, anything else as JSON, or by its `repr` when pydantic has no JSON form
    for it (a plain class, a circular reference): the parent still sees what came back.
    """
    if isinstance(output, str):
        text = output
    else:
        try:
            text = pydantic_core.to_json(output).decode()
        except pydantic_core.PydanticSerializationError:
            text = repr(output)
    return _cut(text, _MAX_OUTPUT)


_STATUS_TEXT = {
    TaskStatus.PENDING: 'PENDING (waiting for a free slot)',
    TaskStatus.RUNNING: 'RUNNING',
    TaskStatus.WAITING_FOR_ANSWER: 'WAITING_FOR_ANSWER',
    TaskStatus.COMPLETED: 'COMPLETED',
    TaskStatus.FAILED: 'FAILED',
    TaskStatus.CANCELLED: 'CANCELLED',
}

_REASON_TEXT = {
    'user': 'on request',
    'parent_cancelled': 'its owner was cancelled',
    'parent_ended': 'its owner ended',
    'deadline': 'deadline',
    'region': 'its region was cancelled',
    'sibling': 'a sibling made it unnecessary',
    'budget': 'budget exhausted',
}


def _reason(reason: CancelReason) -> str:
    text = _REASON_TEXT[reason.kind]
    return f'{text}: {reason.detail}' if reason.detail else text


# --- parent tools -------------------------------------------------------------------------------


def task_started(info: TaskInfo) -> str:
    """Reply to `task(mode='async')`."""
    state = 'waits for a free slot' if info.status is TaskStatus.PENDING else 'runs in the background'
    return (
        f'Task started with ID: {info.task_id} ({info.subagent}); it {state}. '
        f'Follow it with check_task or wait_tasks; stop it with soft_cancel_task or hard_cancel_task.'
    )


def task_report(info: TaskInfo, now: float) -> str:
    """Reply to `check_task`: status, time, progress, and the result once the task has ended."""
    match info.outcome:
        case None:
            return _live_report(info, now)
        case Completed(output=output):
            first = ' (it had finished before the cancel arrived)' if info.cancel is not None else ''
            report = (
                f'{info.task_id}: COMPLETED in {_seconds(info.elapsed_seconds)}{first}. '
                f'Output:\n{_render_output(output)}'
            )
        case Failed(error_type=error_type, message=message):
            first = ' (it had failed before the cancel arrived)' if info.cancel is not None else ''
            report = f'{info.task_id}: FAILED after {_seconds(info.elapsed_seconds)}{first}: {error_type}: {message}'
        case Cancelled() as cancelled:
            report = _cancelled_report(info, cancelled)
    return '\n'.join([report, *_aftermath(info)])


def _aftermath(info: TaskInfo) -> list[str]:
    notes: list[str] = []
    if info.fallback is not None:
        fallback = info.fallback
        if fallback.outcome is None:
            notes.append(
                f'Its fallback {fallback.task_id} ({fallback.subagent}) is {fallback.status.name} in its place.'
            )
        elif isinstance(fallback.outcome, Completed):
            notes.append(
                f'Its fallback {fallback.task_id} ({fallback.subagent}) delivered this result in its place:\n'
                f'{_render_output(fallback.outcome.output)}'
            )
        else:
            notes.append(f'Its fallback {fallback.task_id} ({fallback.subagent}) ended {fallback.status.name} too.')
    if info.lingering_threads:
        notes.append(
            f'A sync tool of it is still working in {info.lingering_threads} thread(s), which cannot be stopped; '
            f'its results are discarded.'
        )
    if info.cleanup_error is not None:
        notes.append(f'Its cleanup did not finish: {info.cleanup_error}.')
    return notes


def _live_report(info: TaskInfo, now: float) -> str:
    where = f' (region {info.region})' if info.region else ''
    lines = [f'{info.task_id}: {_STATUS_TEXT[info.status]} for {_seconds(info.elapsed_seconds)}{where}.']
    if info.deadline_at is not None:
        lines.append(f'Its time budget runs out in {_seconds(max(0.0, info.deadline_at - now))}.')
    if info.question is not None:
        lines.append(f'It asks: {info.question}')
        lines.append(
            f'Reply with answer_subagent(task_id={info.task_id!r}, answer=...); '
            f'it goes on in the background, and wait_tasks waits for its result.'
        )
    if info.cancel is not None:
        lines.append(_cancel_progress(info.cancel, now))
    if info.unresponsive:
        lines.append('It did not stop after a hard cancel and is marked unresponsive; it may still be running.')
    lines.extend(_progress(info.checkpoints))
    if info.subtasks:
        lines.append('Its own sub-agent tasks:')
        lines.extend(_tree(info.subtasks, depth=1))
    return '\n'.join(lines)


def _cancel_progress(cancel: CancelInfo, now: float) -> str:
    ago = _seconds(now - cancel.requested_at)
    if isinstance(cancel.lost_to, Completed):  # its output was committed first, and its run is ending
        return (
            f'It had finished before the {cancel.mode} cancel arrived (requested {ago} ago, {_reason(cancel.reason)}), '
            f'so nothing was cancelled; its run is ending. Output:\n{_render_output(cancel.lost_to.output)}'
        )
    if cancel.mode == 'hard':
        return f'A hard cancel was requested {ago} ago ({_reason(cancel.reason)}); it is being stopped.'
    read = (
        f'it read the request after {_seconds(cancel.acknowledged_at - cancel.requested_at)}'
        if cancel.acknowledged_at is not None
        else 'it has not read the request yet'
    )
    left = max(0.0, cancel.requested_at + cancel.grace_seconds - now)
    return (
        f'A soft cancel was requested {ago} ago ({_reason(cancel.reason)}); {read}. '
        f'It is wrapping up and is stopped in {_seconds(left)} if it has not finished.'
    )


def _progress(checkpoints: Sequence[Checkpoint]) -> list[str]:
    if not checkpoints:
        return ['No checkpoints yet.']
    partial = PartialResult.assemble(checkpoints, final_message=None, read_request=False)
    return [
        f'Checkpoints: {len(checkpoints)}. Completed: {_items(partial.completed)}. '
        f'In progress: {_items(partial.in_progress)}. Not started: {_items(partial.not_started)}.',
        f'Findings so far: {_items(partial.findings)}.',
    ]


def _cancelled_report(info: TaskInfo, cancelled: Cancelled) -> str:
    cancel = info.cancel
    assert cancel is not None and info.ended_at is not None
    how = f'{cancelled.mode}, {_reason(cancelled.reason)}'
    if cancelled.escalated:
        how += f'; stopped when its {cancel.grace_seconds:g}s grace window ran out'
    elif cancel.acknowledged_at is not None:
        how += f'; it read the request after {_seconds(cancel.acknowledged_at - cancel.requested_at)}'
    how += f'; it ended {_seconds(info.ended_at - cancel.requested_at)} after the request'
    if cancelled.error is not None:
        how += f'; its wrap-up failed with {cancelled.error.error_type}'
    return f'Task cancelled: {info.task_id} ({how}).{_partial_section(cancelled.partial)}'


def _partial_section(partial: PartialResult) -> str:
    """What follows the first sentence of a cancelled task's report: its partial results, or that it has none."""
    if partial.is_empty:
        return f' {partial_text(partial)}'
    return f' Partial results:\n{partial_text(partial)}'


def partial_text(partial: PartialResult) -> str:
    """A partial result as lines: the progress picture from the checkpoints, then the final message."""
    if partial.is_empty:
        return 'It recorded no checkpoint and sent no final message.'
    lines: list[str] = []
    if partial.checkpoints:
        lines += [
            f'Completed: {_items(partial.completed)}',
            f'In progress: {_items(partial.in_progress)}',
            f'Not started: {_items(partial.not_started)}',
            f'Findings: {_items(partial.findings)}',
            f'(from {partial.checkpoints} checkpoint{"s" if partial.checkpoints != 1 else ""})',
        ]
    if partial.final_message is not None:
        heading = 'Its final message' if partial.read_request else 'Its output (it finished before reading the request)'
        lines.append(f'{heading}:\n{_render_output(partial.final_message)}')
    return '\n'.join(lines)


def soft_cancel_requested(info: TaskInfo, *, answered_question: bool) -> str:
    """Reply to `soft_cancel_task` when the request was sent to a running task."""
    assert info.cancel is not None
    how = 'its open question was answered with the cancel request' if answered_question else 'it has been told'
    return (
        f'Cancellation requested for {info.task_id}: {how}, and it hands back partial results within '
        f'{info.cancel.grace_seconds:g}s or is stopped. check_task or wait_tasks will show them.'
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
                f'{_seconds(info.elapsed_seconds)}. Output:\n{_render_output(output)}'
            )
        case Failed(error_type=error_type, message=message):
            head = (
                f'{info.task_id} had already ended before the cancel arrived, so nothing was cancelled: FAILED after '
                f'{_seconds(info.elapsed_seconds)}: {error_type}: {message}'
            )
        case _:  # pragma: no cover - a cancelled task gets `already_cancelled`, a live one is cancelled
            raise AssertionError(f'{info.task_id} has not finished: {info.status.name}')
    return '\n'.join([head, *_aftermath(info)])


def already_cancelled(info: TaskInfo) -> str:
    """Reply to a cancel of a CANCELLED task."""
    return f'{info.task_id} is already cancelled; check_task shows its partial results.'


def hard_cancelled(info: TaskInfo) -> str:
    """Reply to `hard_cancel_task` once the task has stopped."""
    assert isinstance(info.outcome, Cancelled) and info.cancel is not None and info.ended_at is not None
    if info.started_at is None:
        return cancelled_before_start(info)
    report = (
        f'Task cancelled: {info.task_id} stopped {_seconds(info.ended_at - info.cancel.requested_at)} after the '
        f'hard cancel.{_partial_section(info.outcome.partial)}'
    )
    return '\n'.join([report, *_aftermath(info)])


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
        [f'{len(infos)} active task{"s" if len(infos) != 1 else ""}:', *_tree(infos[:_MAX_LISTED], depth=0)]
        if infos
        else ['No active tasks.']
    )
    if len(infos) > _MAX_LISTED:
        lines.append(f'… and {len(infos) - _MAX_LISTED:,} more.')
    if lingering:
        lines.append('Ended, but a sync tool of theirs is still working in a thread that cannot be stopped:')
        lines.extend(f'- {info.task_id} {info.status.name} ({info.subagent})' for info in lingering)
    return '\n'.join(lines)


def _tree(infos: Sequence[TaskInfo], *, depth: int) -> list[str]:
    lines: list[str] = []
    for info in infos:
        line = f'{"  " * depth}- {info.task_id} {info.status.name} {_seconds(info.elapsed_seconds)} ({info.subagent}'
        line += f', region {info.region}): ' if info.region else '): '
        line += _show(info.description)
        if info.cancel is not None and info.cancel.lost:
            line += f'; it had finished before the {info.cancel.mode} cancel arrived, and is ending'
        elif info.cancel is not None:
            line += f'; {info.cancel.mode} cancel requested'
        if info.unresponsive:
            line += '; unresponsive'
        if info.question is not None:
            line += f'; asks: {_show(info.question)}'
        lines.append(line)
        lines.extend(_tree(info.subtasks, depth=depth + 1))
    return lines


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
            f'Stopped waiting after {_seconds(capped_seconds)}, the longest one wait may take (your timeout_seconds '
            f'was capped); still running: {", ".join(running)}.'
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


def region_closed(region: str, reason: CancelReason) -> str:
    """Reply to `task` in a region that was cancelled."""
    return f'Region {region!r} was cancelled ({_reason(reason)}); no new task can start in it.'


def region_report(outcome: RegionOutcome, now: float) -> str:
    """Reply to `wait_region` once every task of the region has ended: all results, or why not."""
    match outcome:
        case RegionCompleted(region=region, outputs=outputs):
            if not outputs:
                return f'Region {region!r} has no tasks.'
            results = '\n\n'.join(f'{task_id}:\n{_render_output(output)}' for task_id, output in outputs.items())
            return f'Region {region!r} completed: all {len(outputs)} results.\n\n{results}'
        case RegionCancelled(region=region, cancel=cancel, tasks=tasks):
            head = (
                f'Region {region!r} was cancelled ({cancel.mode}, {_reason(cancel.reason)}); '
                'there is no complete set of results.'
            )
        case RegionIncomplete(region=region, tasks=tasks):
            missing = [task.task_id for task in tasks if task.status is not TaskStatus.COMPLETED]
            head = f'Region {region!r} is incomplete: {", ".join(missing)} did not complete.'
    return '\n\n'.join([head, *(task_report(task, now) for task in tasks)])


def unknown_task(task_id: str, *, finished_forgotten: bool = False) -> str:
    """Reply for an id this owner does not know (including another run's task, and a forgotten finished one)."""
    reply = f'No task {_show(task_id)} in this run; call list_active_tasks() to see your tasks.'
    if finished_forgotten:
        reply += ' The oldest finished tasks are forgotten to save memory; it may have been one of them.'
    return reply


def empty_task_id() -> str:
    """Reply for an empty task id."""
    return "task_id is empty; pass the id that `task` returned, e.g. 'researcher-3f9a07c2'."


def no_region(region: str) -> str:
    """Reply for a region name that no task was started in."""
    return f'No task was started in region {_show(region)}; pass the region you gave to `task`.'


def unknown_subagent(name: str, available: Sequence[str]) -> str:
    """Reply for a `subagent_type` that is not configured."""
    return f'No sub-agent {_show(name)}; choose one of: {", ".join(available)}.'


def manager_closed() -> str:
    """Reply when the owner of the tasks is not open (or is shutting down)."""
    return 'Sub-agents are not available: their owner is not open or is shutting down.'


def bad_arguments(tool_name: str, error: ValidationError) -> str:
    """Reply for arguments that do not fit the tool's schema."""
    found = error.errors(include_url=False, include_input=False)
    problems = '; '.join(
        f'{".".join(_argument_name(part) for part in problem["loc"]) or "arguments"}: {problem["msg"]}'
        for problem in found[:_MAX_PROBLEMS]
    )
    if len(found) > _MAX_PROBLEMS:
        problems += f'; and {len(found) - _MAX_PROBLEMS:,} more problems'
    return f'Invalid arguments for {tool_name}: {problems}. Call it again with arguments that fit its schema.'


_MAX_PROBLEMS = 5


def _argument_name(part: str | int) -> str:
    """One step of a path to a bad argument: a plain name or index as it is, any other key quoted and shortened."""
    if isinstance(part, int) or (part.isidentifier() and part.isascii() and len(part) <= _MAX_ECHO):
        return str(part)
    return _show(part)


_JSON_TYPE_TEXT = {
    'array': 'an array',
    'number': 'a number',
    'string': 'a string',
    'boolean': 'true or false',
    'null': 'null',
    'object with non-string keys': 'an object with keys that are not strings',
}


def arguments_not_an_object(
    tool_name: str,
    json_type: str | None,
    required: Sequence[str],
    optional: Sequence[str],
    *,
    parse_error: str | None = None,
) -> str:
    """Reply for arguments that are not a JSON object: `json_type` says what they are, `None` if not JSON at all."""
    if json_type is None:
        problem = f'the arguments are not valid JSON ({_cut(parse_error or "", _MAX_ECHO * 4)})'
        problem += f'; they must be {_json_object_with(required, optional)}'
    else:
        problem = f'the arguments must be {_json_object_with(required, optional)}, not {_JSON_TYPE_TEXT[json_type]}'
    return f'Invalid arguments for {tool_name}: {problem}. Call it again with arguments that fit its schema.'


def _json_object_with(required: Sequence[str], optional: Sequence[str]) -> str:
    if required and optional:
        return f'a JSON object with {_and(required)} (and optionally {", ".join(optional)})'
    if required:
        return f'a JSON object with {_and(required)}'
    if optional:
        return f'a JSON object (its fields {", ".join(optional)} are all optional)'
    return 'an empty JSON object, {}'


def _and(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else f'{", ".join(names[:-1])} and {names[-1]}'


# --- sub-agent tools ----------------------------------------------------------------------------


def checkpoint_recorded(count: int, *, cancel_requested: bool) -> str:
    """Reply to the sub-agent's `checkpoint`."""
    if cancel_requested:
        return f'Checkpoint {count} recorded. You were asked to stop: reply now with your partial results.'
    return f'Checkpoint {count} recorded.'


def answered_by_parent(answer: str) -> str:
    """Reply to the sub-agent's `ask_parent` once the parent answered."""
    return f'Your parent answered: {answer}'


def one_question_at_a_time() -> str:
    """Reply to a second `ask_parent` while one is open."""
    return 'You already have an open question; wait for its answer before asking another.'


def step_interrupted() -> str:
    """What stands in the history for a sub-agent's model response cut short by a soft cancel."""
    return '[Interrupted before this response was finished: your parent asked you to stop (CANCEL_REQUEST).]'


def tool_interrupted(tool_name: str) -> str:
    """The result of a sub-agent tool call cut short by a soft cancel."""
    return (
        f'Interrupted ({tool_name}): your parent asked you to stop (CANCEL_REQUEST) before this call finished, so '
        f'it has no result. Do not call it again; reply now with your partial results.'
    )


def refused_after_cancel(tool_name: str) -> str:
    """The result of a sub-agent tool call refused because the sub-agent was asked to stop."""
    return (
        f'Not run ({tool_name}): your parent asked you to stop (CANCEL_REQUEST). Do not call tools; '
        f'reply now with your partial results.'
    )
