"""The capability of every sub-agent run.

It brings the `ask_parent` and `checkpoint` tools and the cancel instructions, tells the runner what each
model request carries (so it can acknowledge a cancel request when it reaches the model), refuses new tool
calls after one, and tells the runner when a model response arrives and which of its tool calls are output
tools (so the runner can tell a final answer).

A user's agent may carry it from its construction ([`TaskCapability`][subagents_cancel.TaskCapability]); the
runner adds one to each run of an agent that does not (`TaskRunCapability`).
"""

from __future__ import annotations

from collections.abc import Sequence
from copy import copy
from dataclasses import InitVar, dataclass, field
from typing import Any, ClassVar

from pydantic import Field
from pydantic_ai import Agent, RunContext, SkipToolExecution
from pydantic_ai.agent import AbstractAgent, WrapperAgent
from pydantic_ai.capabilities import (
    AbstractCapability,
    AgentNode,
    DynamicCapability,
    NodeResult,
    OutputContext,
    ValidatedToolArgs,
    WrapToolExecuteHandler,
)
from pydantic_ai.exceptions import UserError
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, ToolCallPart, ToolReturnPart
from pydantic_ai.models import ModelRequestContext
from pydantic_ai.tools import ToolDefinition
from pydantic_ai.toolsets import AbstractToolset

from subagents_cancel._text import subagent_replies

from .added_tools import AddedTools
from .task_binding import Binding, TaskChannel, bound_task, current_task_binding, in_task, task_of, use_channel
from .tooling import ToolArgs, ValidatedToolset, validated_tool

__all__ = (
    'TOOLS_ALLOWED_AFTER_CANCEL',
    'TaskCapability',
    'TaskChannel',
    'TaskRunCapability',
    'returned_calls',
    'run_capability',
    'use_channel',
)

_IN_WORKFLOW = {'temporal': False}
"""The task's own tools talk to its runner: in a durable run (Temporal) they run in the workflow, not as activities."""

TOOLS_ALLOWED_AFTER_CANCEL = frozenset(
    {
        'checkpoint',
        'ask_parent',
        # A sub-agent with sub-agents of its own may still look at, wait for, answer and stop them while it wraps up.
        'check_task',
        'list_active_tasks',
        'wait_tasks',
        'answer_subagent',
        'soft_cancel_task',
        'hard_cancel_task',
    }
)
"""Tools a sub-agent may still call after a soft cancel: none of them starts new work."""


class _AskParentArgs(ToolArgs):
    question: str = Field(min_length=1, max_length=4000, description='One clear question, with why you need it.')


class _CheckpointArgs(ToolArgs):
    completed: list[str] = Field(default_factory=list[str], description='Steps that are finished.')
    in_progress: list[str] = Field(default_factory=list[str], description='Steps under way.')
    not_started: list[str] = Field(default_factory=list[str], description='Steps not begun yet.')
    findings: list[str] = Field(default_factory=list[str], description='What you found since the last checkpoint.')


def returned_calls(messages: Sequence[ModelMessage]) -> set[str]:
    """The ids of the tool calls whose results the request being sent (the messages after the last response) carries."""
    found: set[str] = set()
    for message in reversed(messages):
        if not isinstance(message, ModelRequest):
            break
        found.update(part.tool_call_id for part in message.parts if isinstance(part, ToolReturnPart))
    return found


async def _task_instructions(ctx: RunContext[object]) -> str | None:
    """The instructions of the task whose run `ctx` belongs to; none outside a task.

    A coroutine function, not a method: pydantic-ai reads its signature on each model request (a function's costs
    half a bound method's), and runs a plain function in a worker thread.
    """
    binding = task_of(ctx)
    return None if binding is None else binding.channel.spec.instructions or None


def _refuse_a_second(capabilities: Sequence[AbstractCapability[Any]]) -> None:
    """Refuse a second `TaskCapability`: the task's tools and instructions would come twice.

    Where it is listed is the application's to choose (the docs say: last). Whether a capability listed after it
    holds model responses cannot be told from outside: pydantic-ai's `Hooks` and every wrapper capability define
    every response hook whatever they do, and a capability function is built per run.

    Raises:
        UserError: the agent carries `TaskCapability` twice.
    """
    count = sum(isinstance(each, TaskCapability) for each in capabilities)
    if count > 1:
        raise UserError(f'An agent carries TaskCapability once; this one has it {count} times.')


def _prepares_tools(capabilities: Sequence[AbstractCapability[Any]]) -> bool:
    """Whether one of `capabilities` prepares the run's tools, or may.

    One that does (`prepare_tools`, as pydantic-ai's `PrepareTools`) or may (a capability function, which the agent
    builds per run) must see the task's tools, and may hide them: they then come as a toolset of their own.
    """
    return any(
        isinstance(each, DynamicCapability)  # built per run: it may prepare the tools
        or type(each).prepare_tools is not AbstractCapability.prepare_tools
        for each in capabilities
    )


def run_capability(agent: AbstractAgent[None, object], instructions: str) -> TaskRunCapability | None:
    """The task capability to add to a run of `agent`: none if it has one of its own (`agent_for` built it).

    If a capability of the agent prepares its tools (`prepare_tools`, as pydantic-ai's `PrepareTools`), or may (a
    capability function, which the agent builds per run), the task's tools come as a toolset of their own, which
    that capability sees and may hide, as it may the agent's own tools; otherwise they join the run's toolset (see
    `AddedTools`), which costs each step less. The capabilities looked at are an `Agent`'s, or those of the agent
    that a `WrapperAgent` (a durable agent) wraps; the tools of an agent of another kind come as their own toolset.
    """
    while isinstance(agent, WrapperAgent):  # a durable agent, say: the capabilities are the wrapped agent's
        agent = agent.wrapped
    if not isinstance(agent, Agent):  # an agent of another kind: its capabilities cannot be looked at
        return TaskRunCapability(instructions=instructions, tools_apart=True)
    capabilities: list[AbstractCapability[None]] = []
    agent.root_capability.apply(capabilities.append)
    if any(isinstance(capability, TaskCapability) for capability in capabilities):
        return None
    return TaskRunCapability(instructions=instructions, tools_apart=_prepares_tools(capabilities))


async def _ask_parent(args: _AskParentArgs) -> str:
    return await bound_task().channel.ask(args.question)


async def _checkpoint(args: _CheckpointArgs) -> str:
    channel = bound_task().channel
    count = channel.checkpoint(args.completed, args.in_progress, args.not_started, args.findings)
    return subagent_replies.checkpoint_recorded(count, cancel_requested=channel.cancel_request is not None)


_TASK_TOOLS = ValidatedToolset(
    [
        validated_tool(
            'ask_parent',
            'Ask your parent a question and wait for its answer. Use it only when you cannot go on without it.',
            _AskParentArgs,
            _ask_parent,
            metadata=_IN_WORKFLOW,
        ),
        validated_tool(
            'checkpoint',
            'Record your progress after each step: what is completed, in progress and not started (as of '
            'now), and what you found in this step. If you are stopped, your checkpoints are what your '
            'parent receives.',
            _CheckpointArgs,
            _checkpoint,
            metadata=_IN_WORKFLOW,
        ),
    ]
)
"""The sub-agent's tools, `ask_parent` and `checkpoint`, shared by every run (see `use_channel`)."""


@dataclass
class TaskCapability(AbstractCapability[object]):
    """Makes an agent of yours ready to run sub-agent tasks: put it in `Agent(..., capabilities=[TaskCapability()])`.

    A task's run needs the sub-agent's tools (`checkpoint`, `ask_parent`), its cancel instructions and hooks that
    tell the task what the run does. For a [`SubAgentConfig`][subagents_cancel.SubAgentConfig] with its own
    `agent`, the library adds them to each run as a capability, unless the agent already carries this one from its
    construction, which pydantic-ai charges a run about half as much for.

    It holds nothing of a task: each run of the agent as a task gets that task's tools, and the instructions of its
    config (`instructions` and `cancel_instructions`), so one agent can serve several configs. Run in any other way
    (directly, or by a tool inside a task's run), the agent is offered neither the tools nor the instructions, and
    the hooks do nothing. A capability of the agent that prepares its tools (pydantic-ai's `PrepareTools`, or a
    capability function) sees the task's tools and may hide them, as it may the agent's own.

    List it last. pydantic-ai runs the response hooks of the capabilities listed later first: one listed after it
    that holds a model response (an `after_model_request` that takes its time) holds it before the task hears of
    it, and a hard cancel meanwhile stops the task without that response, as it would during the model request. An
    agent refuses it (`UserError`) twice.
    """

    _safe_at_runtime: ClassVar[bool] = True
    """pydantic-ai's durable runs accept it per run: its tools run in the workflow (`_IN_WORKFLOW`)."""

    _own_toolset: bool = field(default=False, init=False, repr=False)
    """The task's tools come as a toolset of their own instead of joining the run's (see `for_agent`)."""

    def for_agent(self, agent: AbstractAgent[object, Any]) -> TaskCapability:
        """This capability for `agent`: its tools as a toolset of their own if another capability prepares tools."""
        if not isinstance(agent, Agent):
            own = True  # its capabilities cannot be looked at
        else:
            capabilities: list[AbstractCapability[Any]] = []
            agent.root_capability.apply(capabilities.append)
            _refuse_a_second(capabilities)
            own = _prepares_tools(capabilities)
        if own == self._own_toolset:
            return self
        bound = copy(self)
        bound._own_toolset = own
        return bound

    def _task_of(self, ctx: RunContext[object]) -> Binding | None:
        """The task this run is, if any (see `task_of`)."""
        return task_of(ctx)

    def get_instructions(self) -> Any:
        """The task's instructions, in a task's run: its config's, then how to checkpoint and react to a cancel."""
        return _task_instructions

    def get_toolset(self) -> AbstractToolset[object] | None:
        """The sub-agent's tools, `ask_parent` and `checkpoint`, when they come as a toolset of their own."""
        return _TASK_TOOLS.filtered(in_task) if self._own_toolset else None

    def get_wrapper_toolset(self, toolset: AbstractToolset[object]) -> AbstractToolset[object] | None:
        """The run's tools, and beside them the sub-agent's: `ask_parent` and `checkpoint` (see `AddedTools`)."""
        if self._own_toolset:
            return None
        return AddedTools(toolset, _TASK_TOOLS, shown=in_task)

    async def before_model_request(
        self, ctx: RunContext[object], request_context: ModelRequestContext
    ) -> ModelRequestContext:
        """Tell the runner what the request carries, so it acknowledges the cancel request once the model gets it.

        pydantic-ai's queue has already drained into this request (its drain capability runs outermost), so an
        enqueue id no longer in `ctx.pending_messages` is in this request: the same fact, by the same id, as the
        `EnqueuedMessagesEvent` that the drain emits. That event reaches a capability only through `on_event`,
        which makes pydantic-ai stream every model request of the run: a model without streaming would fail,
        and usage would be counted differently. The request also carries the results of the tool calls made since
        the last response, among them an `ask_parent` call answered with the cancel request.
        """
        binding = self._task_of(ctx)
        if binding is not None and (channel := binding.channel).cancel_request is not None:
            still_queued = {pending.enqueue_id for pending in ctx.pending_messages or ()}
            channel.request_going_out(still_queued, returned_calls(request_context.messages))
        return request_context

    async def after_model_request(
        self, ctx: RunContext[object], *, request_context: ModelRequestContext, response: ModelResponse
    ) -> ModelResponse:
        """Tell the runner that a response has arrived, before the run processes it."""
        if (binding := self._task_of(ctx)) is not None:
            output_tools = {tool.name for tool in request_context.model_request_parameters.output_tools}
            binding.channel.response_arrived(response, output_tools)
        return response

    async def after_output_process(self, ctx: RunContext[object], *, output_context: OutputContext, output: Any) -> Any:
        """Tell the runner the moment the final output is accepted: from then on it wins over any cancel."""
        if (binding := self._task_of(ctx)) is not None:
            binding.channel.output_accepted(output)
        return output

    async def on_model_request_error(
        self, ctx: RunContext[object], *, request_context: ModelRequestContext, error: Exception
    ) -> ModelResponse:
        """Tell the runner the moment a model request fails (before the step's own error handling)."""
        if (binding := self._task_of(ctx)) is not None:
            binding.channel.step_failed(error)
        raise error

    async def on_node_run_error(
        self, ctx: RunContext[object], *, node: AgentNode[object], error: Exception
    ) -> NodeResult[object]:
        """Tell the runner the moment a step fails, so that a cancel arriving while the error leaves the run loses."""
        if (binding := self._task_of(ctx)) is not None:
            binding.channel.step_failed(error)
        raise error

    async def wrap_tool_execute(
        self,
        ctx: RunContext[object],
        *,
        call: ToolCallPart,
        tool_def: ToolDefinition,
        args: ValidatedToolArgs,
        handler: WrapToolExecuteHandler,
    ) -> Any:
        """After a soft cancel, refuse calls that could start new work; the model gets a note instead."""
        binding = self._task_of(ctx)
        if binding is None:
            return await handler(args)
        if (
            binding.refuse_tools_after_cancel
            and binding.channel.cancel_request is not None
            and call.tool_name not in TOOLS_ALLOWED_AFTER_CANCEL
        ):
            raise SkipToolExecution(subagent_replies.refused_after_cancel(call.tool_name))
        result = await handler(args)
        if call.tool_name == 'ask_parent':
            binding.channel.question_returned(call.tool_call_id)
        return result


@dataclass
class TaskRunCapability(TaskCapability):
    """The task capability as the library adds it to one run, or builds an agent with (`agent_for`).

    It serves only runs of its task, so it acts for the runner that `use_channel` names without asking whether the
    run is the task's, and its instructions are fixed.
    """

    instructions: str
    """The run's added instructions: its config's (for an agent of the user's), then the cancel instructions."""
    tools_apart: InitVar[bool] = False
    """The task's tools come as a toolset of their own (see `run_capability`)."""

    def __post_init__(self, tools_apart: bool) -> None:
        self._own_toolset = tools_apart

    def for_agent(self, agent: AbstractAgent[object, Any]) -> TaskCapability:
        """Itself: whether its tools come as a toolset of their own was decided when it was made (`run_capability`)."""
        return self

    def _task_of(self, ctx: RunContext[object]) -> Binding | None:
        return current_task_binding()

    def get_instructions(self) -> str:
        """The sub-agent's extra instructions: how to checkpoint and how to react to a cancel request."""
        return self.instructions

    def get_toolset(self) -> AbstractToolset[object] | None:
        """The sub-agent's tools, `ask_parent` and `checkpoint`, when they come as a toolset of their own."""
        return _TASK_TOOLS if self._own_toolset else None

    def get_wrapper_toolset(self, toolset: AbstractToolset[object]) -> AbstractToolset[object] | None:
        """The run's tools, and beside them the sub-agent's: `ask_parent` and `checkpoint` (see `AddedTools`)."""
        return None if self._own_toolset else AddedTools(toolset, _TASK_TOOLS)
