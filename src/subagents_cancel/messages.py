"""The typed messages that travel on the transport between an owner and its tasks.

To a task (sent to the address of the task host that runs it, with its `task_id`):
[`CancelRequest`][subagents_cancel.messages.CancelRequest], [`Answer`][subagents_cancel.messages.Answer],
[`CancelEscalated`][subagents_cancel.messages.CancelEscalated] (the owner's grace window ran out: stop, as for a
hard request).

From a task (to its owner's mailbox):
[`CancelAcknowledged`][subagents_cancel.messages.CancelAcknowledged],
[`CancelHeld`][subagents_cancel.messages.CancelHeld], [`CancelLost`][subagents_cancel.messages.CancelLost],
[`CancelReceived`][subagents_cancel.messages.CancelReceived], [`Question`][subagents_cancel.messages.Question],
[`QuestionWithdrawn`][subagents_cancel.messages.QuestionWithdrawn],
[`CheckpointRecorded`][subagents_cancel.messages.CheckpointRecorded],
[`RunFinished`][subagents_cancel.messages.RunFinished], [`ThreadsFinished`][subagents_cancel.messages.ThreadsFinished].

From the owner to observers (to its own address, [`OwnerAnnouncement`][subagents_cancel.messages.OwnerAnnouncement]):
[`StatusChanged`][subagents_cancel.messages.StatusChanged],
[`TaskUnresponsive`][subagents_cancel.messages.TaskUnresponsive],
[`DeadlineExpired`][subagents_cancel.messages.DeadlineExpired].

Between a task and the owners opened inside it (nested owners): to a nested owner,
[`CancelAll`][subagents_cancel.messages.CancelAll]; from it, [`SubtasksEnded`][subagents_cancel.messages.SubtasksEnded]
(to the task's mailbox) and [`SubtasksChanged`][subagents_cancel.messages.SubtasksChanged] (to the task's owner).

Every message has its own `message_id`; a reply names the message it answers in `correlation_id`.

Every message is a member of one union, [`BusMessage`][subagents_cancel.messages.BusMessage], told apart by
its `kind` (`'cancel_request'`, `'run_finished'`...), which has a default, so a message is built without it.
[`MESSAGE_ADAPTER`][subagents_cancel.messages.MESSAGE_ADAPTER] validates and serialises the union:
[`encode_message`][subagents_cancel.messages.encode_message] and
[`decode_message`][subagents_cancel.messages.decode_message] carry a message through JSON, and
[`message_json_schema`][subagents_cancel.messages.message_json_schema] describes it. A sub-agent's output
travels in JSON as its type's name and its data (see [`output_codec`][subagents_cancel.output_codec]).

Messages are frozen slotted dataclasses checked by the adapter, not pydantic models: in-process the engine
builds them and passes them on without ever serialising them, and building a model costs more.
`benchmarks/message_costs.py` (CPU time per `CancelRequest`, best of 3 x 100,000, on the project's
2-core machine under load) measured 3.9 us for the dataclass, 4.7 us for a `BaseModel(frozen=True)` with the
same fields (+21 %), 4.8 us for the dataclass checked by `MESSAGE_ADAPTER.validate_python`, and 8.8 us
through `encode_message` and `decode_message`. pydantic validates, serialises and describes stdlib
dataclasses as it does models, discriminated unions included.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, ClassVar, Literal

from pydantic import ConfigDict, Field, JsonValue, TypeAdapter
from pydantic_ai import RunUsage
from pydantic_ai.messages import ModelMessage

from .ids import random_hex
from .message_parts import CancelMode as CancelMode
from .message_parts import CancelReason as CancelReason
from .message_parts import CancelReasonKind as CancelReasonKind
from .message_parts import Checkpoint as Checkpoint
from .message_parts import RunError as RunError
from .message_parts import TaskId as TaskId
from .output_codec import TypedOutput, message_json
from .results import TaskInfo
from .states import TaskState

__all__ = (
    'MESSAGE_ADAPTER',
    'Answer',
    'BusMessage',
    'CancelAcknowledged',
    'CancelAll',
    'CancelEscalated',
    'CancelHeld',
    'CancelLost',
    'CancelMode',
    'CancelReason',
    'CancelReasonKind',
    'CancelReceived',
    'CancelRequest',
    'Checkpoint',
    'CheckpointRecorded',
    'DeadlineExpired',
    'OwnerAnnouncement',
    'Question',
    'QuestionWithdrawn',
    'RunEnding',
    'RunError',
    'RunFinished',
    'RunOutput',
    'RunStopped',
    'StatusChanged',
    'SubtasksChanged',
    'SubtasksEnded',
    'CancelAllReceived',
    'TaskId',
    'TaskUnresponsive',
    'ThreadsFinished',
    'decode_message',
    'encode_message',
    'message_json_schema',
    'new_message_id',
)


def new_message_id() -> str:
    """12 random hex digits, as `uuid4().hex[:12]` gave, at a fifth of the cost."""
    return random_hex(6)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Message:
    task_id: TaskId
    sent_at: float
    """Clock time when the message was sent, on the sender's clock; the receiver times what it hears on its own."""
    message_id: str = field(default_factory=new_message_id)


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelRequest(_Message):
    """Ask a task to stop: `'soft'` tells it and allows `grace_seconds`, `'hard'` stops it now."""

    kind: Literal['cancel_request'] = field(default='cancel_request', repr=False)
    mode: CancelMode
    reason: CancelReason
    grace_seconds: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Answer(_Message):
    """The parent's answer to the question `correlation_id`."""

    kind: Literal['answer'] = field(default='answer', repr=False)
    text: str
    correlation_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelAcknowledged(_Message):
    """The cancel request `correlation_id` was delivered inside a model request: the sub-agent has read it."""

    kind: Literal['cancel_acknowledged'] = field(default='cancel_acknowledged', repr=False)
    correlation_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelEscalated(_Message):
    """The grace window of the soft cancel `correlation_id` expired on the owner's clock: the run is stopped now."""

    kind: Literal['cancel_escalated'] = field(default='cancel_escalated', repr=False)
    correlation_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Question(_Message):
    """The sub-agent asks its parent; an [`Answer`][subagents_cancel.messages.Answer] refers to `message_id`."""

    kind: Literal['question'] = field(default='question', repr=False)
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class QuestionWithdrawn(_Message):
    """The question `correlation_id` ended without an answer (its tool call was cut off) and the run goes on."""

    kind: Literal['question_withdrawn'] = field(default='question_withdrawn', repr=False)
    correlation_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckpointRecorded(_Message):
    """The sub-agent recorded its progress."""

    kind: Literal['checkpoint_recorded'] = field(default='checkpoint_recorded', repr=False)
    checkpoint: Checkpoint


@dataclass(frozen=True, slots=True)
class RunOutput:
    """The run ended with this output, committed before any cancel request reached the runner (it wins)."""

    output: TypedOutput
    kind: Literal['run_output'] = field(default='run_output', repr=False)


@dataclass(frozen=True, slots=True)
class RunStopped:
    """The run ended after a cancel request reached the runner (the cancel wins).

    `output` is what the run produced after the request: its wrap-up, an answer it finished before reading
    the request, or the content of a final answer that had arrived when a hard cancel stopped the run.
    `error` is set when the run raised after the request (while it was wrapping up, or being stopped).
    """

    output: TypedOutput = None
    error: RunError | None = None
    kind: Literal['run_stopped'] = field(default='run_stopped', repr=False)


RunEnding = RunOutput | RunError | RunStopped
"""How a sub-agent's run ended."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelHeld(_Message):
    """The soft cancel request `correlation_id` reached the task while its final answer was being checked.

    The runner holds it: if the run accepts the answer, the cancel loses (the task ends `COMPLETED`); if it
    rejects the answer and goes on, the request is delivered then, and wins.
    """

    kind: Literal['cancel_held'] = field(default='cancel_held', repr=False)
    correlation_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelLost(_Message):
    """The cancel request `correlation_id` reached the task after its run had committed its output, or had raised.

    The cancel lost: the task ends `COMPLETED` with `ending.output` (or `FAILED` with `ending`'s error), as it would
    have without the request. The runner says so the moment the request reaches it, so that the owner knows before
    the run is over ([`RunFinished`][subagents_cancel.messages.RunFinished] follows once it is, a moment or an
    `after_run` hook later); once the runner has left, its task host says so in its place.
    """

    kind: Literal['cancel_lost'] = field(default='cancel_lost', repr=False)
    correlation_id: str
    ending: RunOutput | RunError


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelReceived(_Message):
    """The cancel request `correlation_id` reached the task, and neither lost nor is held: the receipt of the rest.

    Every request gets one receipt the moment it reaches the task: this,
    [`CancelHeld`][subagents_cancel.messages.CancelHeld] or [`CancelLost`][subagents_cancel.messages.CancelLost]. An
    owner's cancel command waits for it (bounded), so that what it returns already shows a request held or lost.
    """

    kind: Literal['cancel_received'] = field(default='cancel_received', repr=False)
    correlation_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadlineExpired(_Message):
    """The task's time budget ran out; the owner decides how to cancel it."""

    kind: Literal['deadline_expired'] = field(default='deadline_expired', repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class RunFinished(_Message):
    """The task's run is over; nothing of it is running any more, except `lingering_threads`.

    pydantic-ai runs sync tools in worker threads, which no cancel can stop: when the run was stopped
    while such a tool was working, its thread goes on, and is reported here until it returns.
    """

    # Bytes in the conversation (an image a tool returned) travel as base64, as pydantic-ai's own adapter sends them.
    __pydantic_config__: ClassVar[ConfigDict] = ConfigDict(ser_json_bytes='base64', val_json_bytes='base64')
    kind: Literal['run_finished'] = field(default='run_finished', repr=False)
    ending: Annotated[RunEnding, Field(discriminator='kind')]
    usage: RunUsage
    lingering_threads: int = 0
    usage_after_cancel: RunUsage | None = None
    """The part of `usage` in model responses received after the first cancel request reached the runner
    (the response in flight at the request counts, since it arrived after it); `None` when no request did."""
    messages: tuple[ModelMessage, ...] = ()
    """The run's conversation as it ended (pydantic-ai's `all_messages()`), empty if it never started: a cancelled
    or failed task is resumed from it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ThreadsFinished(_Message):
    """The worker threads that outlived the task's run have all returned."""

    kind: Literal['threads_finished'] = field(default='threads_finished', repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusChanged(_Message):
    """The owner moved the task from `old` to `new`."""

    kind: Literal['status_changed'] = field(default='status_changed', repr=False)
    old: TaskState
    new: TaskState


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskUnresponsive(_Message):
    """The owner found the task still running after a stop (or a sync tool's thread outliving its run).

    It counts as an orphan until it ends, or until its threads return.
    """

    kind: Literal['task_unresponsive'] = field(default='task_unresponsive', repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelAll(_Message):
    """Sent to a nested owner: cancel every task you have that is still running (the cascade of a cancel).

    `task_id` is the task the nested owner was opened in, whose own cancel cascades; a
    [`SubtasksEnded`][subagents_cancel.messages.SubtasksEnded] goes back to its mailbox once every task of the
    nested owner has ended.
    """

    kind: Literal['cancel_all'] = field(default='cancel_all', repr=False)
    mode: CancelMode
    reason: CancelReason
    grace_seconds: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class SubtasksEnded(_Message):
    """A nested owner's answer to the [`CancelAll`][subagents_cancel.messages.CancelAll] `correlation_id`.

    Every task it had when the request arrived has ended (at once, if none was running).
    """

    kind: Literal['subtasks_ended'] = field(default='subtasks_ended', repr=False)
    correlation_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelAllReceived(_Message):
    """A nested owner's receipt of the soft [`CancelAll`][subagents_cancel.messages.CancelAll] `correlation_id`.

    It has asked each of its running tasks to stop, has their own receipts (or waited for them as long as its
    owner waits for any receipt), and has reported them with a
    [`SubtasksChanged`][subagents_cancel.messages.SubtasksChanged] first. The task that cascaded gives its own
    receipt once every nested owner has sent this, so the owner's reply already shows the whole tree asked to stop.
    """

    kind: Literal['cancel_all_received'] = field(default='cancel_all_received', repr=False)
    correlation_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SubtasksChanged(_Message):
    """The tasks of the nested owner at `owner_address`, opened inside task `task_id`, have changed.

    `subtasks` are those that have not ended, as they are now (an owner with none left sends an empty tuple).
    Sent to the owner of task `task_id`, which shows them as that task's `subtasks`.
    """

    kind: Literal['subtasks_changed'] = field(default='subtasks_changed', repr=False)
    owner_address: str
    subtasks: tuple[TaskInfo, ...]


OwnerAnnouncement = StatusChanged | TaskUnresponsive | DeadlineExpired
"""What an owner sends to its own address, for observers: its own mailbox reads them and does nothing with them."""

BusMessage = (
    CancelRequest
    | Answer
    | CancelAcknowledged
    | CancelEscalated
    | CancelHeld
    | CancelLost
    | CancelReceived
    | Question
    | QuestionWithdrawn
    | CheckpointRecorded
    | DeadlineExpired
    | RunFinished
    | ThreadsFinished
    | StatusChanged
    | TaskUnresponsive
    | CancelAll
    | SubtasksEnded
    | CancelAllReceived
    | SubtasksChanged
)
"""Every message about a task that a transport carries."""


MESSAGE_ADAPTER: TypeAdapter[BusMessage] = TypeAdapter(Annotated[BusMessage, Field(discriminator='kind')])
"""Validates and serialises every message, told apart by its `kind`."""


def encode_message(message: BusMessage) -> bytes:
    """`message` as JSON; outputs as `{"type", "data"}`, a value JSON has no form for as its shortened `repr`.

    A lone surrogate in any text goes as U+FFFD ([`message_json`][subagents_cancel.output_codec.message_json]).
    """
    return message_json(MESSAGE_ADAPTER, message)


def decode_message(data: bytes) -> BusMessage:
    """The message `data` encodes; its outputs come back as `EncodedOutput`s.

    Raises:
        pydantic.ValidationError: `data` is not the JSON of a message.
    """
    return MESSAGE_ADAPTER.validate_json(data)


def message_json_schema() -> dict[str, JsonValue]:
    """The JSON schema of every message, one `oneOf` member per `kind`."""
    return MESSAGE_ADAPTER.json_schema()
