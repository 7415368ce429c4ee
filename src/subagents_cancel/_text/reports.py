"""How a task is rendered in the replies to the parent: its report, its partial results, its tree of sub-tasks.

The parts here (durations, cancel reasons, outputs cut to a readable length, echoed input shortened) are shared
by the replies to the parent's tools ([`replies`][subagents_cancel._text.replies]) and by the refusals of bad input
([`refusals`][subagents_cancel._text.refusals]), so that a task reads the same wherever it appears.
"""

from __future__ import annotations

from collections.abc import Sequence

import pydantic_core

from subagents_cancel.messages import Checkpoint
from subagents_cancel.output_codec import EncodedOutput
from subagents_cancel.results import CancelInfo, Cancelled, Completed, Failed, PartialResult, TaskInfo
from subagents_cancel.states import TaskStatus

from .output_text import fits_in_a_reply, safe_repr, shortened
from .reasons import FOR_PARENT_MODEL, in_words

__all__ = (
    'MAX_ECHO',
    'aftermath',
    'cut',
    'partial_section',
    'partial_text',
    'render_output',
    'seconds_text',
    'show',
    'task_report',
    'task_tree',
)

MAX_ECHO = 40
"""The most characters of an echoed input (an id, a name, a description) a reply shows."""
_MAX_OUTPUT = 20_000
"""The most characters of one output (or final message) a reply shows; the Python API keeps it whole."""
_MAX_PROGRESS = 5_000
"""The most characters of one checkpoint list (completed, in progress, not started, findings) a reply shows."""


def show(value: str) -> str:
    """Quote `value` for a reply, cut to a readable length."""
    if len(value) <= MAX_ECHO:
        return repr(value)
    return f'{value[:MAX_ECHO]!r}… ({len(value):,} characters)'


def cut(text: str, limit: int) -> str:
    """`text`, or its first `limit` characters and how many more there were."""
    if len(text) <= limit:
        return text
    return f'{text[:limit]}… ({len(text) - limit:,} more characters)'


_MAX_PLAIN_SECONDS = 1e6
"""Seconds from which a duration is written with an exponent (`1e+308s`), not with every digit."""


def seconds_text(value: float) -> str:
    """A duration for a reply: milliseconds below one second, else seconds, with an exponent when absurdly long."""
    if value < 1:
        return f'{value * 1000:.1f} ms'
    if value >= _MAX_PLAIN_SECONDS:
        return f'{value:.3g}s'
    return f'{value:.1f}s'


def _items(values: Sequence[str]) -> str:
    """A list from a checkpoint, joined, and cut to `_MAX_PROGRESS` characters."""
    return cut('; '.join(values), _MAX_PROGRESS) if values else 'nothing'


def render_output(output: object) -> str:
    """A sub-agent's output as text, cut to `_MAX_OUTPUT` characters; it never raises.

    Strings are shown as they are, anything else as JSON, or by its `repr` when pydantic has no JSON form
    for it (a plain class, a circular reference): the parent still sees what came back. An output too large to
    be shown whole is shown `shortened` without being serialised, so
    a reply about it costs the same whatever its size. An output that arrived in JSON and could not be turned back
    into its type is shown by what travelled: its JSON form, or the `repr` that travelled in its place.
    """
    if isinstance(output, EncodedOutput):
        output = output.data
    if isinstance(output, str):
        text = output
    elif not fits_in_a_reply(output):
        text = f'Too large to show whole; shortened:\n{shortened(output)}'
    else:
        try:
            text = pydantic_core.to_json(output).decode()
        except Exception:  # noqa: BLE001 - any error of the output's own serialisers: show it by its repr instead
            text = safe_repr(output)
    return cut(text, _MAX_OUTPUT)


_STATUS_TEXT = {
    TaskStatus.PENDING: 'PENDING (waiting for a free slot)',
    TaskStatus.RUNNING: 'RUNNING',
    TaskStatus.WAITING_FOR_ANSWER: 'WAITING_FOR_ANSWER',
    TaskStatus.COMPLETED: 'COMPLETED',
    TaskStatus.FAILED: 'FAILED',
    TaskStatus.CANCELLED: 'CANCELLED',
}


def task_report(info: TaskInfo, now: float) -> str:
    """Reply to `check_task`: status, time, progress, and the result once the task has ended."""
    match info.outcome:
        case None:
            return _live_report(info, now)
        case Completed(output=output):
            first = ' (it had finished before the cancel arrived)' if info.cancel is not None else ''
            report = (
                f'{info.task_id}: COMPLETED in {seconds_text(info.elapsed_seconds)}{first}. '
                f'Output:\n{render_output(output)}'
            )
        case Failed(error_type=error_type, message=message):
            first = ' (it had failed before the cancel arrived)' if info.cancel is not None else ''
            report = (
                f'{info.task_id}: FAILED after {seconds_text(info.elapsed_seconds)}{first}: {error_type}: {message}'
            )
        case Cancelled() as cancelled:
            report = _cancelled_report(info, cancelled)
    return '\n'.join([report, *aftermath(info)])


def aftermath(info: TaskInfo) -> list[str]:
    """The notes that follow a finished task's report: its fallback, its lingering threads, its failed cleanup."""
    notes = _resumption(info)
    if info.fallback is not None:
        fallback = info.fallback
        if fallback.outcome is None:
            notes.append(
                f'Its fallback {fallback.task_id} ({fallback.subagent}) is {fallback.status.name} in its place.'
            )
        elif isinstance(fallback.outcome, Completed):
            notes.append(
                f'Its fallback {fallback.task_id} ({fallback.subagent}) delivered this result in its place:\n'
                f'{render_output(fallback.outcome.output)}'
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


def _resumption(info: TaskInfo) -> list[str]:
    """The notes that link a resumed task and the task that continues it."""
    notes: list[str] = []
    if info.resumed_from is not None:
        inherited = f'{info.inherited_checkpoints} of its checkpoints are inherited'
        notes.append(f'It continues {info.resumed_from} from where that task stopped ({inherited}).')
    if info.resumed_by is not None:
        notes.append(f'It was resumed as {info.resumed_by}; check_task({info.resumed_by!r}) follows it.')
    return notes


def _live_report(info: TaskInfo, now: float) -> str:
    where = f' (region {info.region})' if info.region else ''
    lines = [f'{info.task_id}: {_STATUS_TEXT[info.status]} for {seconds_text(info.elapsed_seconds)}{where}.']
    lines.extend(_resumption(info))
    if info.deadline_at is not None:
        lines.append(f'Its time budget runs out in {seconds_text(max(0.0, info.deadline_at - now))}.')
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
        lines.extend(task_tree(info.subtasks, depth=1))
    return '\n'.join(lines)


def _cancel_progress(cancel: CancelInfo, now: float) -> str:
    ago = seconds_text(now - cancel.requested_at)
    why = in_words(cancel.reason, FOR_PARENT_MODEL)
    if isinstance(cancel.lost_to, Completed):  # its output was committed first, and its run is ending
        return (
            f'It had finished before the {cancel.mode} cancel arrived '
            f'(requested {ago} ago, {why}), so nothing was cancelled; its run is ending. '
            f'Output:\n{render_output(cancel.lost_to.output)}'
        )
    if cancel.mode == 'hard':
        return f'A hard cancel was requested {ago} ago ({why}); it is being stopped.'
    read = (
        f'it read the request after {seconds_text(cancel.acknowledged_at - cancel.requested_at)}'
        if cancel.acknowledged_at is not None
        else 'it has not read the request yet'
    )
    left = max(0.0, cancel.requested_at + cancel.grace_seconds - now)
    return (
        f'A soft cancel was requested {ago} ago ({why}); {read}. '
        f'It is wrapping up and is stopped in {seconds_text(left)} if it has not finished.'
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
    how = f'{cancelled.mode}, {in_words(cancelled.reason, FOR_PARENT_MODEL)}'
    if cancelled.escalated:
        how += f'; stopped when its {cancel.grace_seconds:g}s grace window ran out'
    elif cancel.acknowledged_at is not None:
        how += f'; it read the request after {seconds_text(cancel.acknowledged_at - cancel.requested_at)}'
    how += f'; it ended {seconds_text(info.ended_at - cancel.requested_at)} after the request'
    if cancelled.error is not None:
        how += f'; its wrap-up failed with {cancelled.error.error_type}'
    return f'Task cancelled: {info.task_id} ({how}).{partial_section(cancelled.partial)}'


def partial_section(partial: PartialResult) -> str:
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
        lines.append(f'{heading}:\n{render_output(partial.final_message)}')
    return '\n'.join(lines)


def task_tree(infos: Sequence[TaskInfo], *, depth: int) -> list[str]:
    """One line per task, indented by `depth`, each followed by its own sub-agent tasks one level deeper."""
    lines: list[str] = []
    for info in infos:
        line = (
            f'{"  " * depth}- {info.task_id} {info.status.name} {seconds_text(info.elapsed_seconds)} ({info.subagent}'
        )
        line += f', region {info.region}): ' if info.region else '): '
        line += show(info.description)
        if info.cancel is not None and info.cancel.lost:
            line += f'; it had finished before the {info.cancel.mode} cancel arrived, and is ending'
        elif info.cancel is not None:
            line += f'; {info.cancel.mode} cancel requested'
        if info.unresponsive:
            line += '; unresponsive'
        if info.question is not None:
            line += f'; asks: {show(info.question)}'
        lines.append(line)
        lines.extend(task_tree(info.subtasks, depth=depth + 1))
    return lines
