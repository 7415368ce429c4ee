"""What the page is sent: a research request and its task tree as JSON-ready dicts."""

from __future__ import annotations

from typing import assert_never

from subagents_cancel import Cancelled, Completed, Failed, Outcome, PartialResult, TaskInfo

__all__ = ('task_view',)

JsonDict = dict[str, object]


def task_view(info: TaskInfo) -> JsonDict:
    """One task: its status, latest checkpoint, cancel request, outcome and the tasks of its own sub-agents."""
    latest = info.checkpoints[-1] if info.checkpoints else None
    return {
        'task_id': info.task_id,
        'subagent': info.subagent,
        'description': info.description,
        'status': info.status.name,
        'checkpoints': len(info.checkpoints),
        'completed': list(latest.completed) if latest else [],
        'in_progress': list(latest.in_progress) if latest else [],
        'findings': [finding for checkpoint in info.checkpoints for finding in checkpoint.findings],
        'cancel': None
        if info.cancel is None
        else {
            'mode': info.cancel.mode,
            'reason': info.cancel.reason.kind,
            'acknowledged': info.cancel.acknowledged_at is not None,
            'escalated': info.cancel.escalated_at is not None,
        },
        'outcome': None if info.outcome is None else _outcome_view(info.outcome),
        'subtasks': [task_view(subtask) for subtask in info.subtasks],
    }


def _outcome_view(outcome: Outcome) -> JsonDict:
    match outcome:
        case Completed(output=output):
            return {'kind': 'completed', 'output': str(output)}
        case Failed(error_type=error_type, message=message):
            return {'kind': 'failed', 'error': f'{error_type}: {message}'}
        case Cancelled(mode=mode, partial=partial):
            return {'kind': 'cancelled', 'mode': mode, 'partial': _partial_view(partial)}
        case _:
            assert_never(outcome)


def _partial_view(partial: PartialResult) -> JsonDict:
    return {
        'completed': list(partial.completed),
        'in_progress': list(partial.in_progress),
        'not_started': list(partial.not_started),
        'findings': list(partial.findings),
        'final_message': None if partial.final_message is None else str(partial.final_message),
        'read_request': partial.read_request,
    }
