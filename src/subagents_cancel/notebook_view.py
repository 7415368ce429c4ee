"""How tasks, outcomes, regions and cancel figures look in a notebook: small HTML, with every given text escaped.

Jupyter shows an object by its `_repr_html_()`. [`TaskInfo`][subagents_cancel.TaskInfo], the outcomes
([`Completed`][subagents_cancel.Completed], [`Failed`][subagents_cancel.Failed],
[`Cancelled`][subagents_cancel.Cancelled]), [`PartialResult`][subagents_cancel.PartialResult], the region outcomes
and [`CancelMetrics`][subagents_cancel.CancelMetrics] each hand theirs to a function here; their plain `repr` stays
the dataclass's. [`tasks_html`][subagents_cancel.notebook_view.tasks_html] draws a whole task tree, for a view
that is redrawn while tasks run (see the notebook guide).

Every text that comes from a user, a model or a sub-agent (descriptions, outputs, findings, questions, reasons,
errors, names) is escaped, so none can put markup or a script into the notebook; outputs are shown by a bounded
number of their parts, so a huge one costs no more than a small one.
"""

from __future__ import annotations

import html
import operator
from collections.abc import Iterable, Mapping, Sequence

from subagents_cancel.message_parts import CancelReason
from subagents_cancel.states import TaskStatus

from ._text.output_text import shortened
from .notebook_shapes import (
    CancelledShape,
    CancelShape,
    CompletedShape,
    DurationsShape,
    FailedShape,
    FiguresShape,
    PartialShape,
    RegionCancelledShape,
    RegionCompletedShape,
    RegionIncompleteShape,
    TaskFiguresShape,
    TaskShape,
)

__all__ = (
    'cancelled_html',
    'completed_html',
    'failed_html',
    'metrics_html',
    'partial_html',
    'region_cancelled_html',
    'region_completed_html',
    'region_incomplete_html',
    'task_html',
    'tasks_html',
)

_MAX_TEXT = 2_000
"""The most characters of one output, description or message shown; the rest is counted, not shown."""

_STATUS_COLOURS: Mapping[TaskStatus, str] = {
    TaskStatus.PENDING: '#6b7280',
    TaskStatus.RUNNING: '#2563eb',
    TaskStatus.WAITING_FOR_ANSWER: '#d97706',
    TaskStatus.COMPLETED: '#15803d',
    TaskStatus.FAILED: '#b91c1c',
    TaskStatus.CANCELLED: '#7c3aed',
}

_own_html = operator.methodcaller('_repr_html_')
"""Renders one of our outcomes through the protocol Jupyter uses: their types live in modules above this one."""


def _text(value: object) -> str:
    """`value` as escaped text: a string as it is, anything else in Python notation; cut to `_MAX_TEXT`."""
    text = value if isinstance(value, str) else shortened(value)
    if len(text) > _MAX_TEXT:
        text = f'{text[:_MAX_TEXT]}… ({len(text) - _MAX_TEXT:,} more characters)'
    return html.escape(text, quote=False)  # text only ever goes between tags, never into an attribute


def _seconds(value: float) -> str:
    return f'{value:.3g} s' if value >= 1e6 else f'{value:.2f} s'


def _badge(status: TaskStatus) -> str:
    colour = _STATUS_COLOURS[status]
    return f'<span style="background:{colour};color:#fff;padding:0 4px;border-radius:3px">{status.name}</span>'


def _reason(reason: CancelReason) -> str:
    return _text(reason.kind if reason.detail is None else f'{reason.kind}: {reason.detail}')


def _items(values: Sequence[str]) -> str:
    return '; '.join(_text(value) for value in values) if values else '<i>nothing</i>'


def _rows(rows: Iterable[tuple[str, str]]) -> str:
    """A two-column table; each label is ours, each value already escaped."""
    cells = ''.join(f'<tr><th style="text-align:left">{label}</th><td>{value}</td></tr>' for label, value in rows)
    return f'<table>{cells}</table>'


def _cancel_line(cancel: CancelShape) -> str:
    line = f'{cancel.mode} cancel ({_reason(cancel.reason)})'
    if cancel.acknowledged_at is not None:
        line += f', read after {_seconds(cancel.acknowledged_at - cancel.requested_at)}'
    if cancel.escalated_at is not None:
        line += f', escalated after {_seconds(cancel.escalated_at - cancel.requested_at)}'
    if cancel.lost:
        line += ', lost: the task had finished first'
    return line


def _task_line(task: TaskShape) -> str:
    """One line of the tree: id, status, sub-agent, checkpoints, and the cancel if any."""
    line = f'<b>{_text(task.task_id)}</b> {_badge(task.status)} {_text(task.subagent)}'
    line += f' · {len(task.checkpoints)} checkpoint(s) · {_seconds(task.elapsed_seconds)}'
    if task.cancel is not None:
        line += f' · {_cancel_line(task.cancel)}'
    if task.unresponsive:
        line += ' · <b>unresponsive</b>'
    return line


def tasks_html(tasks: Iterable[TaskShape]) -> str:
    """The tasks as a tree: one line each, with the tasks of their own sub-agents and their fallbacks below."""
    items = ''.join(f'<li>{_task_line(task)}{_below(task)}</li>' for task in tasks)
    return f'<ul class="subagents-cancel-tree">{items}</ul>' if items else '<p><i>no tasks</i></p>'


def _below(task: TaskShape) -> str:
    below = tasks_html(task.subtasks) if task.subtasks else ''
    if task.fallback is not None:
        below += f'<div>fallback: {_task_line(task.fallback)}</div>'
    return below


def task_html(task: TaskShape) -> str:
    """One task: what it was asked, where it stands, and how it ended."""
    rows = [('task', _task_line(task)), ('description', _text(task.description))]
    if task.region is not None:
        rows.append(('region', _text(task.region)))
    if task.question is not None:
        rows.append(('asks', _text(task.question)))
    if task.outcome is None and task.checkpoints:
        latest = task.checkpoints[-1]
        rows += [('completed', _items(latest.completed)), ('in progress', _items(latest.in_progress))]
    if task.outcome is not None:
        rows.append(('outcome', _own_html(task.outcome)))
    if task.usage is not None:
        rows.append(('usage', f'{task.usage.requests} request(s), {task.usage.total_tokens:,} tokens'))
    if task.subtasks or task.fallback is not None:
        rows.append(('tasks below', _below(task)))
    return f'<div class="subagents-cancel-task">{_rows(rows)}</div>'


def completed_html(outcome: CompletedShape) -> str:
    """A completed task's output."""
    return f'<div><b>Completed</b><pre>{_text(outcome.output)}</pre></div>'


def failed_html(outcome: FailedShape) -> str:
    """A failed task's error type and our message about it."""
    return f'<div><b>Failed</b>: {_text(outcome.error_type)}: {_text(outcome.message)}</div>'


def cancelled_html(outcome: CancelledShape) -> str:
    """How a task was cancelled, and what it handed back."""
    head = f'{outcome.mode} cancel ({_reason(outcome.reason)})'
    if outcome.escalated:
        head += ', escalated: the grace window expired'
    error = '' if outcome.error is None else f'<div>while wrapping up: {_text(outcome.error.error_type)}</div>'
    return f'<div><b>Cancelled</b>: {head}{error}{partial_html(outcome.partial)}</div>'


def partial_html(partial: PartialShape) -> str:
    """What a cancelled task handed back: progress, findings and its final message."""
    if partial.is_empty:
        return '<div><i>It handed back nothing: no checkpoint and no final message.</i></div>'
    read = 'read the cancel request' if partial.read_request else 'did not read the cancel request'
    rows = [
        ('checkpoints', f'{partial.checkpoints} ({read})'),
        ('completed', _items(partial.completed)),
        ('in progress', _items(partial.in_progress)),
        ('not started', _items(partial.not_started)),
        ('findings', _items(partial.findings)),
    ]
    if partial.final_message is not None:
        rows.append(('final message', f'<pre>{_text(partial.final_message)}</pre>'))
    return _rows(rows)


def region_completed_html(outcome: RegionCompletedShape) -> str:
    """A region whose tasks all completed: each task's output."""
    rows = ((_text(task_id), f'<pre>{_text(output)}</pre>') for task_id, output in outcome.outputs.items())
    return f'<div><b>Region {_text(outcome.region)}: completed</b>{_rows(rows)}</div>'


def region_cancelled_html(outcome: RegionCancelledShape) -> str:
    """A cancelled region: its cancel, and what each task had (no complete set of results)."""
    cancel = outcome.cancel
    head = f'Region {_text(outcome.region)}: cancelled ({cancel.mode}, {_reason(cancel.reason)})'
    return f'<div><b>{head}</b>; no complete set of results.{_each(outcome.tasks)}</div>'


def region_incomplete_html(outcome: RegionIncompleteShape) -> str:
    """A region that was not cancelled but where some task did not complete."""
    return f'<div><b>Region {_text(outcome.region)}: incomplete</b>{_each(outcome.tasks)}</div>'


def _each(tasks: Iterable[TaskShape]) -> str:
    return ''.join(task_html(task) for task in tasks)


def metrics_html(metrics: FiguresShape) -> str:
    """The cancel figures as tables: per sub-agent, per region (if any), then each recent cancelled run.

    A line counts the orphaned side effects, when a cancelled task's cleanup failed.
    """
    per_subagent = _table(
        ('sub-agent', 'completed', 'failed', 'cancelled', 'cancel rate', 'p50 read (soft)', 'p50 stop (soft)'),
        ('p50 stop (hard)', 'tokens after request', 'tokens saved'),
        rows=(
            (_text(entry.subagent), entry.completed, entry.failed, entry.cancelled, _share(entry.cancel_rate))
            + (_p50(entry.acknowledge_times()), _p50(entry.stop_times('soft')), _p50(entry.stop_times('hard')))
            + (f'{entry.tokens_after_request:,}', _count(entry.tokens_saved))
            for entry in metrics.subagents
        ),
    )
    runs = _table(
        ('task', 'mode', 'reason', 'checkpoints', 'read after', 'stopped after', 'tokens', 'tokens after request'),
        rows=(
            (_text(run.task_id), f'{run.mode}{" (escalated)" if run.escalated else ""}', _text(run.reason))
            + (run.checkpoints, _optional_seconds(run.acknowledged_after_seconds))
            + (_seconds(run.stopped_after_seconds), f'{run.tokens:,}', f'{run.tokens_after_request:,}')
            for run in metrics.cancelled_runs
        ),
    )
    left_behind = (
        f'<p>orphaned side effects (cleanup failed): {_orphaned(metrics.owner)} of the cancelled tasks</p>'
        if metrics.owner.orphaned
        else ''
    )
    orphans = f'{left_behind}<p>unresponsive (orphans): {metrics.unresponsive}</p>'
    return f'<div class="subagents-cancel-metrics">{per_subagent}{_regions_table(metrics)}{runs}{orphans}</div>'


def _regions_table(metrics: FiguresShape) -> str:
    """A row per region and one for all the owner's tasks; nothing when no task of a region has ended."""
    if not metrics.regions:
        return ''
    rows = ((_text(entry.region), entry) for entry in metrics.regions)
    return _table(
        ('region', 'completed', 'failed', 'cancelled', 'cancel rate', 'p50 stop (soft)', 'p50 stop (hard)'),
        ('orphaned side effects',),
        rows=(
            (name, entry.completed, entry.failed, entry.cancelled, _share(entry.cancel_rate))
            + (_p50(entry.stop_times('soft')), _p50(entry.stop_times('hard')), _orphaned(entry))
            for name, entry in (*rows, ('<i>all tasks</i>', metrics.owner))
        ),
    )


def _orphaned(figures: TaskFiguresShape) -> str:
    share = figures.orphaned_share
    return '-' if share is None else f'{figures.orphaned} ({share:.0%})'


def _table(*headers: tuple[str, ...], rows: Iterable[tuple[object, ...]]) -> str:
    """A table with a header row of our labels; each cell is a number or already escaped."""
    head = ''.join(f'<th>{label}</th>' for group in headers for label in group)
    body = ''.join('<tr>' + ''.join(f'<td>{cell}</td>' for cell in row) + '</tr>' for row in rows)
    return f'<table><tr>{head}</tr>{body}</table>'


def _optional_seconds(value: float | None) -> str:
    return '-' if value is None else _seconds(value)


def _p50(durations: DurationsShape) -> str:
    return _optional_seconds(durations.p50_seconds)


def _share(value: float | None) -> str:
    return '-' if value is None else f'{value:.0%}'


def _count(value: int | None) -> str:
    return '-' if value is None else f'{value:,}'
