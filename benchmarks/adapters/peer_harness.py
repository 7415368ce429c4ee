"""pydantic-ai-harness `SubAgents` with `TaskControl`, through its parent tools."""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib.metadata import version
from uuid import uuid4

from pydantic_ai import Agent
from pydantic_ai.messages import ToolCallPart
from pydantic_ai.models import Model
from pydantic_ai_harness.subagents import DelegationTasks, SubAgent, SubAgents, TaskControl

from benchkit.parent import ToolTimer
from benchkit.subagent import SUBAGENT_NAME

from .base import Adapter, Options, Parent, Told


def _agent(model: Model, subagent: Agent[None, str], timer: ToolTimer) -> Agent[None, str]:
    return Agent(model, capabilities=[SubAgents(agents=[SubAgent(subagent)], task_control=TaskControl()), timer])


@dataclass(kw_only=True)
class _BoundParent(Parent):
    """Runs bound to an application-owned `DelegationTasks`, all in one conversation, as the harness docs show."""

    owner: DelegationTasks

    async def run(self, prompt: str = 'Go.') -> str:
        with self.owner.bind():
            return await super().run(prompt)


class PeerHarness(Adapter):
    """The harness: `SubAgents` with `TaskControl` (its cancel and list tools); `force=True` is its hard cancel."""

    key = 'harness'
    label = 'pydantic-ai-harness'
    task_name = 'delegate-{task_id}'
    task_id_pattern = re.compile(r'Task (\S+) is running in the background')

    @property
    def version(self) -> str:
        return version('pydantic-ai-harness')

    @asynccontextmanager
    async def parent(
        self, model: Model, subagent: Agent[None, str], timer: ToolTimer, options: Options
    ) -> AsyncGenerator[Parent]:
        yield Parent(agent=_agent(model, subagent, timer))

    @asynccontextmanager
    async def session(self, model: Model, subagent: Agent[None, str], timer: ToolTimer) -> AsyncGenerator[Parent]:
        owner = DelegationTasks()
        async with owner.opened():
            agent = _agent(model, subagent, timer)
            yield _BoundParent(agent=agent, run_kwargs={'conversation_id': uuid4().hex}, owner=owner)

    def start(self, description: str, *, background: bool, region: str | None = None) -> ToolCallPart:
        assert region is None
        return ToolCallPart(
            'delegate_task', {'agent_name': SUBAGENT_NAME, 'task': description, 'background': background}
        )

    def hard_cancel(self, task_id: str) -> ToolCallPart:
        return ToolCallPart('cancel_task', {'task_id': task_id, 'force': True})

    def soft_cancel(self, task_id: str) -> ToolCallPart:
        return ToolCallPart('cancel_task', {'task_id': task_id})

    def status(self, task_id: str) -> ToolCallPart:
        return ToolCallPart('list_tasks', {})  # the harness reports tasks only as a list

    def told(self, texts: list[str]) -> Told:
        if any('finished: cancelled' in text for text in texts):  # its `list_tasks` line for the task
            return 'cancelled'
        return 'completed' if any('finished: ok' in text for text in texts) else None

    def list_active(self) -> ToolCallPart:
        return ToolCallPart('list_tasks', {})
