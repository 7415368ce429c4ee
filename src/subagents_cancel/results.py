"""What a task produced, and read-only snapshots of tasks for callers of the Python API."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pydantic_ai import RunUsage

from .message_parts import CancelMode, CancelReason, Checkpoint, RunError, TaskId
from .notebook_view import cancelled_html, completed_html, failed_html, partial_html, task_html
from .output_codec import TypedOutput
from .states import TaskStatus

__all__ = ('CancelInfo', 'Cancelled', 'Completed', 'Failed', 'Outcome', 'PartialResult', 'TaskInfo')


@dataclass(frozen=True, slots=True, kw_only=True)
class PartialResult:
    """What a cancelled task hands back: its latest progress picture, its findings, and any final message.

    `completed`, `in_progress` and `not_started` come from the latest checkpoint; `findings` gathers
    the findings of every checkpoint in order; `final_message` is the output the run produced after
    the request (its wrap-up, or an answer it was already writing and finished before it read the request),
    or the content of a final response that had arrived when a hard cancel stopped the run before its output
    was accepted (the text, or a structured answer's arguments).
    """

    completed: tuple[str, ...] = ()
    in_progress: tuple[str, ...] = ()
    not_started: tuple[str, ...] = ()
    findings: tuple[str, ...] = ()
    final_message: TypedOutput = None
    checkpoints: int = 0
    """How many checkpoints the sub-agent recorded."""
    read_request: bool = False
    """Whether the cancel request reached the sub-agent's model before it stopped."""

    @classmethod
    def assemble(
        cls, checkpoints: Sequence[Checkpoint], *, final_message: object | None, read_request: bool
    ) -> PartialResult:
        """Build the partial result from the checkpoints recorded so far and the run's final message."""
        latest = checkpoints[-1] if checkpoints else None
        findings = dict.fromkeys(finding for checkpoint in checkpoints for finding in checkpoint.findings)
        return cls(
            completed=latest.completed if latest else (),
            in_progress=latest.in_progress if latest else (),
            not_started=latest.not_started if latest else (),
            findings=tuple(findings),
            final_message=final_message,
            checkpoints=len(checkpoints),
            read_request=read_request,
        )

    @property
    def is_empty(self) -> bool:
        """Whether nothing at all was handed back."""
        return self.checkpoints == 0 and self.final_message is None

    def _repr_html_(self) -> str:
        return partial_html(self)


@dataclass(frozen=True, slots=True)
class Completed:
    """The run ended with `output`, committed before any cancel request reached it."""

    output: TypedOutput

    def _repr_html_(self) -> str:
        return completed_html(self)


@dataclass(frozen=True, slots=True)
class Failed:
    """The run raised. `message` is written by this library, never copied from a provider's error."""

    error_type: str
    message: str

    def _repr_html_(self) -> str:
        return failed_html(self)


@dataclass(frozen=True, slots=True, kw_only=True)
class Cancelled:
    """A cancel was requested and the task stopped."""

    mode: CancelMode
    """`'hard'` when the run was stopped (directly, or after a soft cancel's grace window), else `'soft'`."""
    reason: CancelReason
    partial: PartialResult
    escalated: bool = False
    """A soft cancel whose grace window expired, so the run was stopped."""
    error: RunError | None = None
    """Set when the run raised while it was wrapping up."""

    def _repr_html_(self) -> str:
        return cancelled_html(self)


Outcome = Completed | Failed | Cancelled
"""How a task ended."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelInfo:
    """A cancel request and what became of it (times are the owner's clock readings, taken as it heard each step)."""

    mode: CancelMode
    """`'soft'` or `'hard'`; a soft cancel whose grace window expired becomes `'hard'`."""
    reason: CancelReason
    requested_at: float
    grace_seconds: float
    request_id: str
    """The `message_id` of the [`CancelRequest`][subagents_cancel.messages.CancelRequest]."""
    acknowledged_at: float | None = None
    """When the request reached a model request of the sub-agent (soft cancels only)."""
    escalated_at: float | None = None
    """When the grace window expired and the run was stopped."""
    held_at: float | None = None
    """When the task held the (soft) request because its final answer had already arrived and was being checked:
    the answer wins if it is accepted, the cancel if it is rejected."""
    lost: bool = False
    """The task's output was committed (or its run had raised) before the request reached it: it ends `COMPLETED`
    (or `FAILED`), and the cancel had no effect (it is not counted as a cancel). Set as soon as the owner learns
    it, which can be an instant before the task has ended."""
    lost_to: Completed | Failed | None = None
    """What the cancel lost to, set with `lost`: the output the run had committed, or its error. While the task
    is still ending it is the only place that shows them; once the task has ended, it is its `outcome`."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskInfo:
    """A snapshot of one task, taken when it was asked for.

    Its times (`created_at`, `started_at`, `ended_at`, `cancel`, …) are its owner's clock readings, taken as the owner
    sent or heard of each step, whatever the clock of the host that runs the task; its checkpoints' `at` and its
    subtasks' times are the exceptions, noted on those fields.
    """

    task_id: TaskId
    subagent: str
    description: str
    status: TaskStatus
    created_at: float
    started_at: float | None
    ended_at: float | None
    elapsed_seconds: float
    """Time since it was accepted, or its whole life once it has ended."""
    checkpoints: tuple[Checkpoint, ...]
    """Its progress records, in order; each one's `at` is the task's clock, as the sub-agent recorded it."""
    question: str | None
    """The open question while it is `WAITING_FOR_ANSWER`."""
    cancel: CancelInfo | None
    outcome: Outcome | None
    """Set once the task has ended."""
    usage: RunUsage | None
    """The sub-agent run's usage, once it has ended."""
    region: str | None = None
    """The cancel region it belongs to."""
    deadline_at: float | None = None
    """When its time budget runs out (clock seconds)."""
    parent_task_id: TaskId | None = None
    """The task whose sub-agent started this one, when sub-agents are nested."""
    root_id: str = ''
    """The owner at the root of its task tree (the `owner_id` of the top-level parent run's or scope's manager)."""
    subtasks: tuple[TaskInfo, ...] = ()
    """The tasks its own sub-agents are running (while it runs). Their times are those of the owner opened inside the
    task, on its clock; their `elapsed_seconds` ages on this owner's clock from when it heard of them."""
    fallback_for: TaskId | None = None
    """The cancelled task this one stands in for."""
    fallback: TaskInfo | None = None
    """The task started in its place after it was cancelled, if its config names a fallback."""
    unresponsive_since: float | None = None
    """When it was found still running after a stop: a hard cancel or teardown gave up waiting for its run,
    or a sync tool's thread outlived the run."""
    lingering_threads: int = 0
    """Worker threads of its sync tools that are still working after its run ended."""
    cleanup_error: str | None = None
    """Set when its cleanup or promote hook raised or ran out of time."""
    resumed_from: TaskId | None = None
    """The cancelled or failed task this one continues (see [`resume`][subagents_cancel.SubAgentManager.resume])."""
    resumed_by: TaskId | None = None
    """The task that continues this one, once it was resumed."""
    inherited_checkpoints: int = 0
    """How many of `checkpoints` it inherited from the task it continues (they come first)."""

    @property
    def is_terminal(self) -> bool:
        """Whether the task has ended."""
        return self.status.is_terminal

    @property
    def unresponsive(self) -> bool:
        """Whether something of the task still runs although it was stopped (it counts as an orphan)."""
        return self.lingering_threads > 0 or (self.unresponsive_since is not None and not self.status.is_terminal)

    def _repr_html_(self) -> str:
        return task_html(self)
