"""Traces and metrics through logfire (OpenTelemetry underneath); the only module that imports logfire.

Each task gets one span, opened on the task host around the task's run
([`TaskSpans`][subagents_cancel.telemetry.TaskSpans]), under the OpenTelemetry context its owner sent in
[`StartTask`][subagents_cancel.wire.StartTask]: the span nests under the parent's tool-call span wherever the host
runs, and an instrumented sub-agent run nests under it. Span events mark each step of a cancel, from the messages
the host sees; the end attributes come from the owner's [`SettleTask`][subagents_cancel.wire.SettleTask]. Metrics
stay on the owner's side ([`TaskTelemetry`][subagents_cancel.telemetry.TaskTelemetry]), recorded when a task ends
(its cleanup hook's failure when the hook reports, and the owner's own figures when it closes).

This library never configures logfire. Until the application calls `logfire.configure()`, the spans and
metrics go nowhere, and no warning is shown on their account.
"""

from __future__ import annotations

import contextvars
import warnings
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import logfire
from logfire.propagate import attach_context, get_context
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.trace import TracerProvider as SDKTracerProvider
from opentelemetry.trace import NoOpTracerProvider
from opentelemetry.util.types import AttributeValue
from pydantic_ai import RunUsage

from .clock import Clock
from .messages import (
    CancelAcknowledged,
    CancelEscalated,
    CancelRequest,
    RunFinished,
    TaskId,
    TaskUnresponsive,
    ThreadsFinished,
)
from .metrics import CancelledRun, CancelMetrics, MetricsCollector
from .results import TaskInfo
from .states import TaskStatus
from .wire import HooksFinished, SettleTask, StartTask, WireMessage

__all__ = (
    'CANCEL_ACKNOWLEDGED',
    'CANCEL_ESCALATED',
    'CANCEL_REQUESTED',
    'SCOPE',
    'TASK_SPAN',
    'TASK_TERMINATED',
    'TASK_UNRESPONSIVE',
    'TaskSpans',
    'trace_context',
    'TaskTelemetry',
    'configured_logfire',
)

SCOPE = 'logfire.subagents_cancel'
"""The OpenTelemetry scope of our spans and metrics: `logfire.suppress_scopes(SCOPE)` mutes them."""
TASK_SPAN = 'subagent task {task_id}'
"""The span of one task (a constant template: the id is an attribute)."""
CANCEL_REQUESTED = 'cancel requested'
"""Span event: a cancel request was sent to the task (attributes `mode`, `reason`, `grace_seconds`)."""
CANCEL_ACKNOWLEDGED = 'cancel acknowledged'
"""Span event: the request reached the sub-agent's model (attribute `after_seconds`)."""
CANCEL_ESCALATED = 'cancel escalated'
"""Span event: the grace window of a soft cancel expired; the run is being stopped (`after_seconds`)."""
TASK_TERMINATED = 'task terminated'
"""Span event: a cancelled task has stopped (`after_seconds` since the request)."""
TASK_UNRESPONSIVE = 'task unresponsive'
"""Span event: a hard cancel gave up waiting for the task to stop."""

_logfire = logfire.with_settings(custom_scope_suffix=SCOPE.removeprefix('logfire.'))
with warnings.catch_warnings():
    # Bind our tracer now, quietly: logfire warns on the first span of an application that has not configured
    # it, and a library must not make that choice for the application (nor fail its tests under `-W error`).
    warnings.filterwarnings('ignore', message='No logs or spans will be created', category=UserWarning)
    _logfire.span(TASK_SPAN, task_id='')

_ACKNOWLEDGE_TIME = _logfire.metric_histogram(
    'subagents.cancel.acknowledge_time', unit='s', description='From a cancel request until the sub-agent read it.'
)
_STOP_TIME = _logfire.metric_histogram(
    'subagents.cancel.stop_time', unit='s', description='From a cancel request until the task was terminal.'
)
_TOKENS = _logfire.metric_histogram(
    'subagents.cancelled.tokens', unit='{token}', description='Tokens a cancelled run consumed in all.'
)
_TOKENS_AFTER = _logfire.metric_histogram(
    'subagents.cancelled.tokens_after_request',
    unit='{token}',
    description='Tokens a cancelled run consumed in responses received after the request.',
)
_REQUESTS = _logfire.metric_histogram(
    'subagents.cancelled.requests', unit='{request}', description='Model requests a cancelled run made in all.'
)
_REQUESTS_AFTER = _logfire.metric_histogram(
    'subagents.cancelled.requests_after_request',
    unit='{request}',
    description='Model responses a cancelled run received after the request.',
)
_TOKENS_SAVED = _logfire.metric_histogram(
    'subagents.cancelled.tokens_saved',
    unit='{token}',
    description="Estimate: the mean tokens of the sub-agent's completed runs minus what the cancelled run consumed.",
)
_FINISHED = _logfire.metric_counter(
    'subagents.tasks.finished', unit='{task}', description='Tasks that ended, by sub-agent and final status.'
)
_UNRESPONSIVE = _logfire.metric_up_down_counter(
    'subagents.tasks.unresponsive', unit='{task}', description='Tasks a hard cancel gave up on that have not stopped.'
)
_REGION_FINISHED = _logfire.metric_counter(
    'subagents.region.tasks.finished', unit='{task}', description='Tasks of a region that ended, by final status.'
)
_REGION_STOP_TIME = _logfire.metric_histogram(
    'subagents.region.cancel.stop_time',
    unit='s',
    description="From a cancel request until a region's task was terminal, by region and mode.",
)
_ORPHANED = _logfire.metric_counter(
    'subagents.cancelled.orphaned',
    unit='{task}',
    description='Cancelled tasks that left side effects: their cleanup hook raised, ran out of time or never ran.',
)
_OWNER_CANCEL_RATE = _logfire.metric_histogram(
    'subagents.owner.cancel_rate',
    unit='1',
    description="An owner's cancelled tasks as a share of its finished ones, recorded once as it closes.",
)
_OWNER_ORPHANED_SHARE = _logfire.metric_histogram(
    'subagents.owner.orphaned_share',
    unit='1',
    description="An owner's orphaned tasks as a share of its cancelled ones, recorded once as it closes.",
)

_Attributes = dict[str, AttributeValue]


@dataclass(eq=False, slots=True)
class _TaskTrace:
    """What the owner's telemetry keeps about one task until it ends: the facts its metrics need."""

    request: CancelRequest | None = None
    """The first cancel request."""
    usage_after_request: RunUsage | None = None
    cancelled: CancelledRun | None = None
    """Its figures, once it has ended cancelled and until its cleanup hook has reported."""
    cleanup_failed: bool | None = None
    """How its hook did, if that was reported before the task's end was."""


@dataclass(eq=False, slots=True)
class _TaskSpan:
    """One task's span on its host, and its first cancel request."""

    span: trace.Span
    request: CancelRequest | None = None
    arrived_at: float = 0.0
    """The host's clock reading when the first cancel request arrived (its `sent_at` is the owner's clock)."""
    unresponsive: bool = False

    def event(self, name: str, attributes: _Attributes) -> None:
        self.span.add_event(name, attributes)

    def since_request(self, now: float) -> _Attributes:
        """Seconds from the request's arrival to `now`, both on the host's clock."""
        return {} if self.request is None else {'after_seconds': now - self.arrived_at}

    def mark_unresponsive(self) -> None:
        if not self.unresponsive:
            self.unresponsive = True
            self.event(TASK_UNRESPONSIVE, {})


def configured_logfire() -> logfire.Logfire | None:
    """The default logfire instance once the application has configured its tracing, else `None` (spans go nowhere)."""
    instance = logfire.DEFAULT_LOGFIRE_INSTANCE
    provider = instance.config.get_tracer_provider().provider
    return instance if isinstance(provider, SDKTracerProvider) else None


def _recording() -> bool:
    """Whether the application has configured logfire (its metrics or its spans).

    Until then, recording a metric is logfire's no-op, about ten calls per figure, which a task's end skips.
    """
    config = _logfire.config
    return not (
        isinstance(config.get_meter_provider().provider, NoOpMeterProvider)
        and isinstance(config.get_tracer_provider().provider, NoOpTracerProvider)
    )


def trace_context() -> dict[str, str]:
    """The caller's trace context, to carry in `StartTask` so that the task's span nests under the caller's span."""
    return dict(get_context())


class TaskSpans:
    """The spans of the tasks one host runs: opened around each run, marked by the messages the host sees."""

    def __init__(self, clock: Clock) -> None:
        """Prepare the spans of one host; `clock` is the host's, which times the cancel events as the host sees them."""
        self._spans: dict[TaskId, _TaskSpan] = {}
        self._clock = clock

    @staticmethod
    def recording() -> bool:
        """Whether a task started now gets a span: the application has configured logfire (else it would go nowhere)."""
        return configured_logfire() is not None

    def traced(self, start: StartTask, run: Coroutine[Any, Any, None]) -> Coroutine[Any, Any, None]:
        """Return `run` wrapped in the task's span, a child of the context the owner sent in `start`.

        Await the result in the task's own asyncio task: the span is that task's current span, and the parent
        of whatever the run traces.
        """
        return self._in_span(start, run)

    @staticmethod
    def untraced(start: StartTask) -> contextvars.Context:
        """The context to run a task in that gets no span (see `recording`); it holds nothing once the task ends.

        The one a span of an unconfigured logfire would give the run, at a tenth of its cost: the context its owner
        sent in `start`, and no valid current span.
        """
        context = contextvars.copy_context()
        carried = trace.set_span_in_context(trace.INVALID_SPAN, propagate.extract(start.trace_context))
        context.run(otel_context.attach, carried)  # detached with the task's own context, as the task ends
        return context

    async def _in_span(self, start: StartTask, run: Coroutine[Any, Any, None]) -> None:
        with (
            attach_context(start.trace_context),
            _logfire.span(TASK_SPAN, task_id=start.task_id, subagent=start.subagent) as span,
        ):
            span.set_attributes(_start_attributes(start))
            self._spans[start.task_id] = _TaskSpan(trace.get_current_span())
            try:
                await run
            finally:
                del self._spans[start.task_id]

    def observe(self, message: WireMessage) -> None:
        """Take note of a message to or from one of the host's tasks."""
        if not self._spans:
            return  # no span open: nothing to mark
        task_span = self._spans.get(message.task_id)
        if task_span is None:
            return
        match message:
            case CancelRequest(mode=mode, reason=reason, grace_seconds=grace):
                if task_span.request is None:
                    task_span.request, task_span.arrived_at = message, self._clock.now()
                task_span.event(CANCEL_REQUESTED, {'mode': mode, 'reason': reason.kind, 'grace_seconds': grace})
            case CancelAcknowledged() | CancelEscalated():
                name = CANCEL_ACKNOWLEDGED if isinstance(message, CancelAcknowledged) else CANCEL_ESCALATED
                task_span.event(name, task_span.since_request(self._clock.now()))
            case TaskUnresponsive():
                task_span.mark_unresponsive()
            case RunFinished(lingering_threads=lingering) if lingering:
                task_span.mark_unresponsive()  # a sync tool's thread outlives the run
            case SettleTask(info=info):
                self._settled(info, task_span)
            case _:
                pass

    def _settled(self, task: TaskInfo, task_span: _TaskSpan) -> None:
        cancel = task.cancel
        if task.status is TaskStatus.CANCELLED and task.ended_at is not None and cancel is not None:
            # The owner's figure: both times are its clock's readings (the host's clock may have another origin).
            task_span.event(TASK_TERMINATED, {'after_seconds': task.ended_at - cancel.requested_at})
        task_span.span.set_attributes(_end_attributes(task, task_span.request))


class TaskTelemetry:
    """Observes one owner's transport: records metrics, counts orphans, and adds up the summary figures."""

    def __init__(self, lookup: Callable[[str], TaskInfo]) -> None:
        """Prepare to follow the tasks of one owner.

        Args:
            lookup: Returns the current snapshot of one of the owner's tasks.
        """
        self._lookup = lookup
        self._traces: dict[TaskId, _TaskTrace] = {}
        self._orphans: dict[TaskId, str] = {}
        """Tasks found still running after a stop, with their sub-agent, until they end and their threads return."""
        self._collector = MetricsCollector()

    def follow(self, task_id: TaskId) -> None:
        """Follow the task `task_id` from now on, until it ends."""
        self._traces[task_id] = _TaskTrace()

    def observe(self, address: str, message: WireMessage) -> None:
        """Take note of one message on the owner's transport (an [`Observer`][subagents_cancel.transport.Observer])."""
        if isinstance(message, ThreadsFinished):
            self._orphan_gone(message.task_id)
        task_trace = self._traces.get(message.task_id)
        if task_trace is None:
            return  # a task of another owner on a shared transport, or one that has ended
        match message:
            case CancelRequest():
                task_trace.request = task_trace.request or message
            case TaskUnresponsive() if message.task_id not in self._orphans:
                subagent = self._orphans[message.task_id] = self._lookup(message.task_id).subagent
                _UNRESPONSIVE.add(1, {'subagent': subagent})
            case RunFinished(usage_after_cancel=usage_after):
                task_trace.usage_after_request = usage_after
            case SettleTask(info=info):  # sent once, as the task ends: its final snapshot, taken for the host
                self._task_ended(info, task_trace)
            case HooksFinished(cleanup_error=error):
                task_trace.cleanup_failed = error is not None
                self._settled(message.task_id, task_trace)
            case _:
                pass

    def _task_ended(self, task: TaskInfo, task_trace: _TaskTrace) -> None:
        recording = _recording()
        if recording:
            _FINISHED.add(1, {'subagent': task.subagent, 'status': task.status.name})
            if task.region is not None:
                _REGION_FINISHED.add(1, {'region': task.region, 'status': task.status.name})
        if not task.lingering_threads:
            self._orphan_gone(task.task_id)
        task_trace.cancelled = cancelled = self._collector.task_ended(
            task,
            requested_mode=task_trace.request.mode if task_trace.request else None,
            usage_after_request=task_trace.usage_after_request,
        )
        if cancelled is None:
            del self._traces[task.task_id]  # its hook tells nothing these figures count
            return
        if recording:
            _record_cancelled(cancelled)
        if task_trace.cleanup_failed is not None:
            self._settled(task.task_id, task_trace)

    def _settled(self, task_id: TaskId, task_trace: _TaskTrace) -> None:
        """Once a cancelled task has ended and its hook has reported: count it orphaned if the hook failed."""
        cancelled = task_trace.cancelled
        if cancelled is None:
            return  # the hook reported before the task's end did
        del self._traces[task_id]
        if task_trace.cleanup_failed:
            self._collector.cleanup_failed(cancelled)
            _ORPHANED.add(1, _where(cancelled))

    def _orphan_gone(self, task_id: TaskId) -> None:
        subagent = self._orphans.pop(task_id, None)
        if subagent is not None:
            _UNRESPONSIVE.add(-1, {'subagent': subagent})

    def summary(self) -> CancelMetrics:
        """The figures of the tasks that have ended so far, and the current orphan count."""
        return self._collector.summary(unresponsive=len(self._orphans))

    def owner_closed(self) -> None:
        """Record the owner's own cancel rate and orphaned share, once, as it closes (when they are defined)."""
        owner = self._collector.owner()
        if owner.cancel_rate is not None:
            _OWNER_CANCEL_RATE.record(owner.cancel_rate)
        if owner.orphaned_share is not None:
            _OWNER_ORPHANED_SHARE.record(owner.orphaned_share)


def _where(run: CancelledRun) -> _Attributes:
    """The sub-agent of a cancelled run, and its region if it had one."""
    return {'subagent': run.subagent} if run.region is None else {'subagent': run.subagent, 'region': run.region}


def _record_cancelled(run: CancelledRun) -> None:
    if run.region is not None:
        _REGION_STOP_TIME.record(run.stopped_after_seconds, {'region': run.region, 'mode': run.mode})
    attributes: _Attributes = {'subagent': run.subagent, 'mode': run.mode, 'escalated': run.escalated}
    if run.acknowledged_after_seconds is not None:
        _ACKNOWLEDGE_TIME.record(run.acknowledged_after_seconds, attributes)
    _STOP_TIME.record(run.stopped_after_seconds, attributes)
    _TOKENS.record(run.tokens, attributes)
    _TOKENS_AFTER.record(run.tokens_after_request, attributes)
    _REQUESTS.record(run.requests, attributes)
    _REQUESTS_AFTER.record(run.requests_after_request, attributes)
    if run.tokens_saved is not None:
        _TOKENS_SAVED.record(run.tokens_saved, attributes)


def _start_attributes(task: StartTask) -> _Attributes:
    """Where the task sits, when it has a parent, a region, or is a fallback."""
    known = {
        'parent_task_id': task.parent_task_id,
        'region': task.region,
        'fallback_for': task.fallback_for,
    }
    return {name: value for name, value in known.items() if value is not None}


def _end_attributes(task: TaskInfo, request: CancelRequest | None) -> _Attributes:
    attributes: _Attributes = {'status': task.status.name, 'checkpoints': len(task.checkpoints)}
    if task.usage is not None:
        attributes.update(tokens=task.usage.total_tokens, requests=task.usage.requests)
    if task.cancel is not None:
        attributes.update(
            cancel_mode=request.mode if request else task.cancel.mode,
            cancel_reason=task.cancel.reason.kind,
            escalated=task.cancel.escalated_at is not None,
        )
        if task.cancel.lost:
            attributes['cancel_lost'] = True  # its output was committed first: COMPLETED, not counted as a cancel
    return attributes
