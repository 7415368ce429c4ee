"""What a runner needs to run one task, as its owner resolved it."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic_ai.agent import AbstractAgent
from pydantic_ai.capabilities import AbstractCapability
from pydantic_ai.messages import ModelMessage

from subagents_cancel.messages import TaskId

__all__ = ('TaskSpec',)


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskSpec:
    """Everything a runner needs to run one task."""

    task_id: TaskId
    owner_address: str
    root_id: str
    agent: AbstractAgent[None, object]
    prompt: str
    message_history: tuple[ModelMessage, ...] = ()
    """The conversation the run continues (a resumed task's repaired history); `prompt` is its next user message."""
    instructions: str
    """Added to the sub-agent's own instructions for this run."""
    task_capability: AbstractCapability[object] | None
    """The task capability added to the run: none if the agent carries its own (`run_capability`, decided once per
    sub-agent by the host, as the agent and its instructions are fixed)."""
    agent_declares_executor: bool
    """Whether the agent may bring a thread executor of its own (`declares_executor`, decided once per sub-agent)."""
    refuse_tools_after_cancel: bool
    preempt_on_soft_cancel: bool
    """A soft cancel interrupts the model request and tool calls in flight instead of waiting for them."""
    cascade_grace_factor: float
    final_answer_wait_seconds: float
    """How long a hard stop waits for the verdict on a final answer that has arrived."""
    durable: bool = False
    """The run is durable (inside a Temporal workflow): the agent's own tools run as activities, so no thread pool
    is offered to its sync tools, and the task's tools run in the workflow."""
