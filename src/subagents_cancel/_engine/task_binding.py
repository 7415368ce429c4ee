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

    @property
    def task_capability(self) -> object | None:
        """The task capability the runner adds to the run, if it adds one."""
        ...


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


@dataclass(slots=True)
class Binding:
    """The runner a task's tools and hooks act for, and its task's policy."""

    channel: TaskChannel
    refuse_tools_after_cancel: bool
    agent: AbstractAgent[None, object] | None
    """The agent the task runs, as a run's context names it (the one a `WrapperAgent` wraps); `None` if the runner adds
    its own task capability to the run, which then serves it alone (an agent's `TaskCapability` that the runner could
    not see, built per run or inside another capability, stays idle)."""
    run_id: str | None = None
    """The task's run, once one of its hooks or tools has asked (see `task_of`)."""


_BINDING: ContextVar[Binding | None] = ContextVar('subagents_cancel_task_binding', default=None)
"""The runner of the sub-agent run that the calling code is part of, and its task's policy."""


def use_channel(channel: TaskChannel, *, refuse_tools_after_cancel: bool) -> None:
    """Make `channel` the runner that the task's tools and hooks act for, in the calling asyncio task and its tasks.

    The runner calls it before its run begins: pydantic-ai runs each tool call and each step in a task started from
    the run's. `refuse_tools_after_cancel` is the task's policy: refuse calls that could start new work after a soft
    cancel.
    """
    agent: AbstractAgent[None, object] | None = None
    if channel.spec.task_capability is None:  # the agent carries a `TaskCapability`: which runs are the task's?
        agent = channel.spec.agent
        while isinstance(agent, WrapperAgent):  # a run's context names the agent that runs, not its wrapper
            agent = agent.wrapped
    _BINDING.set(Binding(channel, refuse_tools_after_cancel, agent))


def current_task_binding() -> Binding | None:
    """The task the calling code's context is bound to, whatever run it is part of (for a capability of one run)."""
    return _BINDING.get()


def task_of(ctx: RunContext[Any]) -> Binding | None:
    """The task whose run `ctx` belongs to, if any (for an agent's own `TaskCapability`).

    `None` outside a task, and in another run inside one: an agent that a sub-agent's own tool runs (another, or the
    task's agent again) inherits the task's context, but its run is not the task's. The task's run is the first run
    of the task's agent to ask: the runner starts it before any of its tools can start another.
    """
    binding = _BINDING.get()
    if binding is None or binding.agent is None or ctx.agent is not binding.agent:
        return None
    if binding.run_id is None:
        binding.run_id = ctx.run_id
    return binding if ctx.run_id == binding.run_id else None


def in_task(ctx: RunContext[Any], tool_def: ToolDefinition | None = None) -> bool:
    """Whether the run of `ctx` is a task's: only there are the task's tools offered."""
    return task_of(ctx) is not None


def bound_task() -> Binding:
    """The binding of the task whose tool is being called (offered only in a task's run)."""
    binding = _BINDING.get()
    assert binding is not None, "the task's tools are offered only in a task's run"
    return binding
