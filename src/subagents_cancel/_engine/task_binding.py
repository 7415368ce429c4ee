"""Which task a sub-agent's tool or hook acts for: the runner that drives the run the calling code is part of.

The task's tools and hooks are built once (one toolset for every run, one capability for every run of an agent that
`agent_for` built or that a user built with a `TaskCapability`); the runner binds itself before its run begins, in
its asyncio task, whose context pydantic-ai's step and tool tasks inherit, and each call finds its runner here.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic_ai import RunContext
from pydantic_ai.agent import AbstractAgent, WrapperAgent
from pydantic_ai.messages import ModelResponse
from pydantic_ai.tools import ToolDefinition

from subagents_cancel.messages import CancelRequest

__all__ = ('Binding', 'TaskChannel', 'bound_task', 'current_task_binding', 'in_task', 'task_of', 'use_channel')


class _RunSpec(Protocol):
    """What the capability reads of the task's spec: the agent it runs, and the run's added instructions."""

    @property
    def agent(self) -> AbstractAgent[None, object]: ...

    @property
    def instructions(self) -> str: ...


class TaskChannel(Protocol):
    """What the capability inside a sub-agent's run needs from the runner that drives it."""

    @property
    def spec(self) -> _RunSpec:
        """The task as its owner resolved it."""
        ...

    @property
    def cancel_request(self) -> CancelRequest | None:
        """The soft cancel request this task received, if any."""
        ...

    def request_going_out(self, still_queued: set[str], returned_calls: set[str]) -> None:
        """Note a model request as it goes out: the enqueue ids still queued, and the tool calls it answers."""
        ...

    def question_returned(self, tool_call_id: str) -> None:
        """Note that the `ask_parent` call `tool_call_id` has returned its reply."""
        ...

    def response_arrived(self, response: ModelResponse, output_tools: Collection[str]) -> None:
        """Note a model response as it arrives; `output_tools` names the tools that would make it the run's output."""
        ...

    def output_accepted(self, output: object) -> None:
        """Note that the run accepted its final output (validators and output function done)."""
        ...

    def step_failed(self, error: Exception) -> None:
        """Note that a step of the run raised `error` (the run fails with it unless something handles it)."""
        ...

    async def ask(self, question: str) -> str:
        """Ask the parent `question`; return the reply the sub-agent sees."""
        ...

    def checkpoint(
        self, completed: Sequence[str], in_progress: Sequence[str], not_started: Sequence[str], findings: Sequence[str]
    ) -> int:
        """Record progress; return how many checkpoints this task has now."""
        ...


@dataclass(frozen=True, slots=True)
class Binding:
    """The runner a task's tools and hooks act for, and its task's policy."""

    channel: TaskChannel
    refuse_tools_after_cancel: bool
    agent: AbstractAgent[None, object]
    """The agent the task runs, as a run's context names it (the one a `WrapperAgent` wraps)."""


_BINDING: ContextVar[Binding | None] = ContextVar('subagents_cancel_task_binding', default=None)
"""The runner of the sub-agent run that the calling code is part of, and its task's policy."""


def use_channel(channel: TaskChannel, *, refuse_tools_after_cancel: bool) -> None:
    """Make `channel` the runner that the task's tools and hooks act for, in the calling asyncio task and its tasks.

    The runner calls it before its run begins: pydantic-ai runs each tool call and each step in a task started from
    the run's. `refuse_tools_after_cancel` is the task's policy: refuse calls that could start new work after a soft
    cancel.
    """
    agent = channel.spec.agent
    while isinstance(agent, WrapperAgent):  # a run's context names the agent that runs, not its wrapper
        agent = agent.wrapped
    _BINDING.set(Binding(channel, refuse_tools_after_cancel, agent))


def current_task_binding() -> Binding | None:
    """The task the calling code's context is bound to, whatever run it is part of (for a capability of one run)."""
    return _BINDING.get()


def task_of(ctx: RunContext[Any]) -> Binding | None:
    """The task whose run `ctx` belongs to, if any.

    `None` outside a task, and in another agent's run inside one: an agent that a sub-agent's own tool runs inherits
    the task's context, but its run is not the task's.
    """
    binding = _BINDING.get()
    return binding if binding is not None and ctx.agent is binding.agent else None


def in_task(ctx: RunContext[Any], tool_def: ToolDefinition | None = None) -> bool:
    """Whether the run of `ctx` is a task's: only there are the task's tools offered."""
    return task_of(ctx) is not None


def bound_task() -> Binding:
    """The binding of the task whose tool is being called (offered only in a task's run)."""
    binding = _BINDING.get()
    assert binding is not None, "the task's tools are offered only in a task's run"
    return binding
