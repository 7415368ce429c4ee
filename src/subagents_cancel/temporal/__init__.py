"""Sub-agent tasks on Temporal workers, in other processes and on other machines.

Install with `pip install 'subagents-cancel[temporal]'`.

An owner talks to its tasks through a [`TemporalTransport`][subagents_cancel.temporal.TemporalTransport]; workers
started with [`task_worker`][subagents_cancel.temporal.task_worker] (or `python -m subagents_cancel worker`) run
them, each task a workflow. The guide "Across machines" shows the whole setup.
"""

from __future__ import annotations

try:
    import temporalio  # noqa: F401  # pyright: ignore[reportUnusedImport]
except ImportError as missing:  # pragma: no cover - checked in a process without it
    raise ImportError(
        "subagents_cancel.temporal needs Temporal's SDK: pip install 'subagents-cancel[temporal]'"
    ) from missing

from .child_transport import ChildWorkflowTransport, TaskOwnerWorkflow
from .owner_transport import TemporalTransport
from .settings import WorkerSettings
from .task_workflow import TaskWorkflow, WorkflowClock
from .worker import activity_config, connect, durable_agent, task_worker

__all__ = (
    'ChildWorkflowTransport',
    'TaskOwnerWorkflow',
    'TaskWorkflow',
    'TemporalTransport',
    'WorkerSettings',
    'WorkflowClock',
    'activity_config',
    'connect',
    'durable_agent',
    'task_worker',
)
