"""What travels on a transport: the task messages, plus the three an owner and a task host exchange to run a task.

Owner → host: [`StartTask`][subagents_cancel.wire.StartTask] (everything the host needs to run the task, beyond
the sub-agent configs it was built with) and [`SettleTask`][subagents_cancel.wire.SettleTask] (the task has ended
on the owner's side: run its hooks with this snapshot). Host → owner:
[`HooksFinished`][subagents_cancel.wire.HooksFinished]. Every other message is a
[`BusMessage`][subagents_cancel.messages.BusMessage].

These live here rather than in `messages` because `SettleTask` carries a
[`TaskInfo`][subagents_cancel.results.TaskInfo], and `results` is built on `messages`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, ClassVar, Literal

from pydantic import ConfigDict, Field, TypeAdapter
from pydantic_ai.messages import ModelMessage

from .messages import BusMessage, TaskId, new_message_id
from .output_codec import message_json
from .results import TaskInfo

__all__ = ('WIRE_ADAPTER', 'HooksFinished', 'SettleTask', 'StartTask', 'WireMessage', 'decode_wire', 'encode_wire')


@dataclass(frozen=True, slots=True, kw_only=True)
class _Envelope:
    task_id: TaskId
    sent_at: float
    message_id: str = field(default_factory=new_message_id)


@dataclass(frozen=True, slots=True, kw_only=True)
class StartTask(_Envelope):
    """Run a task of the sub-agent `subagent` on `prompt`, reporting to `owner_address`.

    It carries everything a task needs that the host does not take from the sub-agent's config: a host is built
    from the configs alone.
    """

    kind: Literal['start_task'] = field(default='start_task', repr=False)
    __pydantic_config__: ClassVar[ConfigDict] = ConfigDict(ser_json_bytes='base64', val_json_bytes='base64')
    subagent: str
    prompt: str
    message_history: tuple[ModelMessage, ...] = ()
    """The conversation a resumed task starts from (its new instructions are `prompt`)."""
    owner_address: str
    root_id: str
    parent_task_id: TaskId | None = None
    region: str | None = None
    """Its cancel region, for its span."""
    fallback_for: TaskId | None = None
    """The cancelled task it stands in for, for its span."""
    refuse_tools_after_cancel: bool
    preempt_on_soft_cancel: bool
    cascade_grace_factor: float
    final_answer_wait_seconds: float
    hook_seconds: float
    """How long the task's cleanup or promote hook may run."""
    trace_context: dict[str, str] = field(default_factory=dict[str, str])
    """The caller's OpenTelemetry context (`opentelemetry.propagate.inject`), so the task's span nests under it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SettleTask(_Envelope):
    """The owner has recorded the task's end as `info`: run its hook and delete its scratch directory."""

    kind: Literal['settle_task'] = field(default='settle_task', repr=False)
    info: TaskInfo
    owner_address: str
    """Where [`HooksFinished`][subagents_cancel.wire.HooksFinished] goes."""


@dataclass(frozen=True, slots=True, kw_only=True)
class HooksFinished(_Envelope):
    """The task's hook has run (or was not there); `cleanup_error` says how it failed, if it did."""

    kind: Literal['hooks_finished'] = field(default='hooks_finished', repr=False)
    cleanup_error: str | None = None


WireMessage = BusMessage | StartTask | SettleTask | HooksFinished
"""Every message a transport carries."""

WIRE_ADAPTER: TypeAdapter[WireMessage] = TypeAdapter(Annotated[WireMessage, Field(discriminator='kind')])
"""Validates and serialises every message a transport carries, told apart by its `kind`: `dump_json` and
`validate_json` carry one through JSON, outputs as `EncodedOutput`s (see
[`encode_message`][subagents_cancel.messages.encode_message])."""


def encode_wire(message: WireMessage) -> bytes:
    """`message` as JSON, ready for a transport; every message can travel.

    Outputs go as `{"type", "data"}`, any value pydantic has no JSON form for (a tool's plain-object result in a
    run's conversation) as its shortened `repr`, and a lone surrogate in any text as U+FFFD (`message_json`).
    """
    return message_json(WIRE_ADAPTER, message)


def decode_wire(data: bytes) -> WireMessage:
    """The message `data` encodes; its outputs come back as `EncodedOutput`s.

    Raises:
        pydantic.ValidationError: `data` is not the JSON of a message.
    """
    return WIRE_ADAPTER.validate_json(data)
