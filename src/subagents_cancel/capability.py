"""`SubAgentCapability`: the parent's sub-agent tools and instructions, and the lifetime of their tasks."""

from __future__ import annotations

from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, cast

from pydantic_ai import FunctionToolset, RunContext
from pydantic_ai.capabilities import AbstractCapability, WrapRunHandler
from pydantic_ai.messages import ModelMessage
from pydantic_ai.models import AbstractModel, Model
from pydantic_ai.run import AgentRunResult

from ._engine.started import started_task_ids
from ._text.instructions import parent_instructions
from .clock import Clock
from .config import SubAgentConfig, SubAgentPolicy, check_model, index_subagents
from .errors import ConfigError
from .manager import SubAgentManager
from .messages import TaskId
from .tools import parent_toolset

__all__ = ('SubAgentCapability',)

_current_manager: ContextVar[SubAgentManager | None] = ContextVar('subagents_cancel_manager', default=None)
_TOOLSET = parent_toolset(_current_manager.get)
"""The parent tools of every run; they find the run's manager when called. One instance: a durable agent (Temporal)
registers the toolset it was built with and accepts no other under the same id in a run."""


@dataclass(kw_only=True)
class SubAgentCapability(AbstractCapability[object]):
    """Lets a parent agent start sub-agent tasks and stop them, softly or hard.

    It adds the tools `task`, `check_task`, `wait_tasks`, `soft_cancel_task`, `hard_cancel_task`,
    `list_active_tasks`, `answer_subagent`, `soft_cancel_region`, `hard_cancel_region` and `wait_region`, and
    instructions that list the sub-agents. Each parent
    run owns its tasks: when the run ends (normally, by an error, or cancelled), the tasks still running
    are cancelled and waited for, within the policy's bounds.

    Example:
        ```python
        from pydantic_ai import Agent
        from subagents_cancel import SubAgentCapability, SubAgentConfig

        researcher = SubAgentConfig(name='researcher', description='Researches a topic and reports findings')
        parent = Agent('openai:gpt-5', capabilities=[SubAgentCapability(subagents=[researcher])])
        ```

    To let tasks outlive one parent run, or to cancel them from application code, pass a
    [`SubAgentManager`][subagents_cancel.SubAgentManager] you open yourself: `SubAgentCapability(manager=manager)`.
    """

    subagents: Sequence[SubAgentConfig] = ()
    """The sub-agents the parent may start."""
    default_model: str | Model | None = None
    """The model of sub-agents that name none; by default the parent run's own model."""
    policy: SubAgentPolicy = field(default_factory=SubAgentPolicy)
    """Grace windows, waiting bounds and concurrency for the tasks of each run."""
    clock: Clock | None = None
    """Where time comes from; the real monotonic clock by default."""
    manager: SubAgentManager | None = None
    """A manager the application opened: its tasks span runs, and it, not the run, owns them."""

    def __post_init__(self) -> None:
        if self.manager is not None:
            if self.subagents or self.default_model is not None or self.clock is not None:
                raise ConfigError('Give either `manager` or `subagents` (with `default_model`/`clock`), not both.')
            return
        index_subagents(self.subagents)
        if self.default_model is not None:
            try:
                check_model(self.default_model)
            except ValueError as error:
                raise ConfigError(str(error)) from None

    @staticmethod
    def started_tasks(messages: Sequence[ModelMessage]) -> tuple[TaskId, ...]:
        """The ids of the tasks a parent run started with `task` and `resume_task`, in the order of their results.

        Pass the run's messages (`result.all_messages()`, or messages stored as JSON and loaded again). Tasks that
        the library started by itself (a sub-agent's `fallback`) are not among them, and neither are
        calls that were refused. Works the same for the toolset of
        [`create_subagent_toolset`][subagents_cancel.create_subagent_toolset].

        Example:
            ```python
            task_ids = SubAgentCapability.started_tasks(result.all_messages())
            await manager.soft_cancel(task_ids[0])
            ```
        """
        return started_task_ids(messages)

    def get_instructions(self) -> str:
        """Tell the parent which sub-agents exist and how to use the tools."""
        configs = self.manager.subagents if self.manager is not None else self.subagents
        return parent_instructions(configs)

    def get_toolset(self) -> FunctionToolset[object]:
        """The parent tools; they act on the manager of the run that calls them."""
        return _TOOLSET

    async def wrap_run(self, ctx: RunContext[object], *, handler: WrapRunHandler) -> AgentRunResult[Any]:
        """Open the run's manager around the run, so its tasks end with it."""
        if self.manager is not None:
            token = _current_manager.set(self.manager)
            try:
                return await handler()
            finally:
                _current_manager.reset(token)
        model: AbstractModel = ctx.model
        # `Model` is generic over its client type; any client will do (and a realtime model will not).
        parent_model = cast('Model[Any]', model) if isinstance(model, Model) else None
        manager = SubAgentManager(
            self.subagents, default_model=self.default_model or parent_model, policy=self.policy, clock=self.clock
        )
        async with manager:
            token = _current_manager.set(manager)
            try:
                return await handler()
            finally:
                _current_manager.reset(token)
