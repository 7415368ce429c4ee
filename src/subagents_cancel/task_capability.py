"""The capability added to every sub-agent run.

It brings the `ask_parent` and `checkpoint` tools and the cancel instructions, acknowledges a cancel
request when it reaches the model, refuses new tool calls after one, and tells the runner when a model
response arrives and which of its tool calls are output tools (so the runner can tell a final answer).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import Field
from pydantic_ai import FunctionToolset, RunContext, SkipToolExecution
from pydantic_ai.capabilities import (
    AbstractCapability,
    AgentNode,
    NodeResult,
    OutputContext,
    ValidatedToolArgs,
    WrapToolExecuteHandler,
)
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models import ModelRequestContext
from pydantic_ai.tools import ToolDefinition

from . import subagent_replies
from .instructions import cancel_request_tag
from .messages import CancelRequest
from .tooling import ToolArgs, ValidatedToolset, validated_tool

__all__ = ('TOOLS_ALLOWED_AFTER_CANCEL', 'TaskChannel', 'TaskRunCapability', 'delivered')

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


class TaskChannel(Protocol):
    """What the capability inside a sub-agent's run needs from the runner that drives it."""

    @property
    def cancel_request(self) -> CancelRequest | None:
        """The soft cancel request this task received, if any."""
        ...

    @property
    def acknowledged(self) -> bool:
        """Whether the cancel request has reached the model."""
        ...

    def acknowledge(self) -> None:
        """Note that the cancel request was delivered inside a model request."""
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


class _AskParentArgs(ToolArgs):
    question: str = Field(min_length=1, max_length=4000, description='One clear question, with why you need it.')


class _CheckpointArgs(ToolArgs):
    completed: list[str] = Field(default_factory=list[str], description='Steps that are finished.')
    in_progress: list[str] = Field(default_factory=list[str], description='Steps under way.')
    not_started: list[str] = Field(default_factory=list[str], description='Steps not begun yet.')
    findings: list[str] = Field(default_factory=list[str], description='What you found since the last checkpoint.')


def delivered(messages: Sequence[ModelMessage], tag: str) -> bool:
    """Whether the request being sent (the messages after the last response) carries `tag`."""
    for message in reversed(messages):
        if not isinstance(message, ModelRequest):
            return False
        for part in message.parts:
            if isinstance(part, UserPromptPart | ToolReturnPart) and tag in str(part.content):
                return True
    return False


@dataclass
class TaskRunCapability(AbstractCapability[object]):
    """Per-run capability of one sub-agent task; built by the runner for that run only."""

    channel: TaskChannel
    instructions: str
    refuse_tools_after_cancel: bool

    def get_instructions(self) -> str:
        """The sub-agent's extra instructions: how to checkpoint and how to react to a cancel request."""
        return self.instructions

    def get_toolset(self) -> FunctionToolset[object]:
        """The sub-agent's tools: `ask_parent` and `checkpoint`."""
        channel = self.channel

        async def ask_parent(args: _AskParentArgs) -> str:
            return await channel.ask(args.question)

        async def checkpoint(args: _CheckpointArgs) -> str:
            count = channel.checkpoint(args.completed, args.in_progress, args.not_started, args.findings)
            return subagent_replies.checkpoint_recorded(count, cancel_requested=channel.cancel_request is not None)

        return ValidatedToolset(
            [
                validated_tool(
                    'ask_parent',
                    'Ask your parent a question and wait for its answer. Use it only when you cannot go on without it.',
                    _AskParentArgs,
                    ask_parent,
                ),
                validated_tool(
                    'checkpoint',
                    'Record your progress after each step: what is completed, in progress and not started (as of '
                    'now), and what you found in this step. If you are stopped, your checkpoints are what your '
                    'parent receives.',
                    _CheckpointArgs,
                    checkpoint,
                ),
            ]
        )

    async def before_model_request(
        self, ctx: RunContext[object], request_context: ModelRequestContext
    ) -> ModelRequestContext:
        """Acknowledge the cancel request once it is part of the request the model receives."""
        request = self.channel.cancel_request
        if (
            request is not None
            and not self.channel.acknowledged
            and delivered(request_context.messages, cancel_request_tag(request.message_id))
        ):
            self.channel.acknowledge()
        return request_context

    async def after_model_request(
        self, ctx: RunContext[object], *, request_context: ModelRequestContext, response: ModelResponse
    ) -> ModelResponse:
        """Tell the runner that a response has arrived, before the run processes it."""
        output_tools = {tool.name for tool in request_context.model_request_parameters.output_tools}
        self.channel.response_arrived(response, output_tools)
        return response

    async def after_output_process(self, ctx: RunContext[object], *, output_context: OutputContext, output: Any) -> Any:
        """Tell the runner the moment the final output is accepted: from then on it wins over any cancel."""
        self.channel.output_accepted(output)
        return output

    async def on_model_request_error(
        self, ctx: RunContext[object], *, request_context: ModelRequestContext, error: Exception
    ) -> ModelResponse:
        """Tell the runner the moment a model request fails (before the step's own error handling)."""
        self.channel.step_failed(error)
        raise error

    async def on_node_run_error(
        self, ctx: RunContext[object], *, node: AgentNode[object], error: Exception
    ) -> NodeResult[object]:
        """Tell the runner the moment a step fails, so that a cancel arriving while the error leaves the run loses."""
        self.channel.step_failed(error)
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
        if (
            self.refuse_tools_after_cancel
            and self.channel.cancel_request is not None
            and call.tool_name not in TOOLS_ALLOWED_AFTER_CANCEL
        ):
            raise SkipToolExecution(subagent_replies.refused_after_cancel(call.tool_name))
        return await handler(args)
