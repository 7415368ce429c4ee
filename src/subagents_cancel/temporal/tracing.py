"""Tracing on a Temporal worker: a task's spans in its owner's trace, each emitted once however often it is replayed.

A task's workflow opens the task's span under the trace context its owner sent in
[`StartTask`][subagents_cancel.wire.StartTask]; the sub-agent's run, and its model requests and tool calls (when
pydantic-ai's instrumentation is on), open theirs below it. That is workflow code, which Temporal runs again from
the history whenever a worker takes the task over or answers a query about a closed one; and the model requests and
tools themselves run in activities, which start in no trace at all. pydantic-ai's `LogfirePlugin` mends both: it
makes logfire's tracer replay-safe (a span is ended, hence exported, only outside a replay, with ids from the
workflow's seeded random, so a span opened before a worker died is ended once by the worker that takes over), and adds
Temporal's tracing interceptor, which carries the context into each activity.
"""

from __future__ import annotations

from pydantic_ai.durable_exec.temporal import LogfirePlugin

from subagents_cancel.telemetry import configured_logfire

__all__ = ('worker_tracing',)


def worker_tracing() -> list[LogfirePlugin]:
    """The plugins a task worker adds: pydantic-ai's `LogfirePlugin`, once the application has configured logfire.

    The plugin is given the application's configuration as it is: it neither configures logfire nor turns on
    pydantic-ai's instrumentation, and sends none of Temporal's own metrics. Without a configured logfire there is
    nothing to trace, and no plugin.
    """
    instance = configured_logfire()
    if instance is None:
        return []
    return [LogfirePlugin(lambda: instance, metrics=False)]
