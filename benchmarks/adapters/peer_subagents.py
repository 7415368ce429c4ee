"""subagents-pydantic-ai, through its `SubAgentCapability` and parent tools."""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib.metadata import version

from pydantic_ai import Agent
from pydantic_ai.messages import ToolCallPart
from pydantic_ai.models import Model
from subagents_pydantic_ai import SubAgentCapability, SubAgentConfig

from benchkit.parent import ToolTimer
from benchkit.subagent import SUBAGENT_DESCRIPTION, SUBAGENT_NAME

from .base import Adapter, Options, Parent, Told


@dataclass
class _Deps:
    """The library requires deps that can clone themselves for a sub-agent."""

    def clone_for_subagent(self, max_depth: int = 0) -> _Deps:
        return _Deps()


def _parent(model: Model, subagent: Agent[None, str], timer: ToolTimer) -> Parent:
    config = SubAgentConfig(name=SUBAGENT_NAME, description=SUBAGENT_DESCRIPTION, instructions='', agent=subagent)
    capability = SubAgentCapability(subagents=[config], include_general_purpose=False)
    agent = Agent(model, deps_type=_Deps, capabilities=[capability, timer])
    return Parent(agent=agent, run_kwargs={'deps': _Deps()})


class PeerSubagents(Adapter):
    """The peer: its `SubAgentCapability`, whose task manager outlives each run (so a session is a plain parent)."""

    key = 'subagents'
    label = 'subagents-pydantic-ai'
    task_name = 'subagent-{task_id}'
    task_id_pattern = re.compile(r'Task ID: (\S+)')

    @property
    def version(self) -> str:
        return version('subagents-pydantic-ai')

    @asynccontextmanager
    async def parent(
        self, model: Model, subagent: Agent[None, str], timer: ToolTimer, options: Options
    ) -> AsyncGenerator[Parent]:
        yield _parent(model, subagent, timer)

    @asynccontextmanager
    async def session(self, model: Model, subagent: Agent[None, str], timer: ToolTimer) -> AsyncGenerator[Parent]:
        yield _parent(model, subagent, timer)  # the capability's task manager outlives each run

    def start(self, description: str, *, background: bool, region: str | None = None) -> ToolCallPart:
        assert region is None
        mode = 'async' if background else 'sync'
        return ToolCallPart('task', {'description': description, 'subagent_type': SUBAGENT_NAME, 'mode': mode})

    def hard_cancel(self, task_id: str) -> ToolCallPart:
        return ToolCallPart('hard_cancel_task', {'task_id': task_id})

    def soft_cancel(self, task_id: str) -> ToolCallPart:
        return ToolCallPart('soft_cancel_task', {'task_id': task_id})

    def status(self, task_id: str) -> ToolCallPart:
        return ToolCallPart('check_task', {'task_id': task_id})

    def told(self, texts: list[str]) -> Told:
        if any('Status: cancelled' in text for text in texts):  # its `check_task`
            return 'cancelled'
        return 'completed' if any('Status: completed' in text for text in texts) else None

    def list_active(self) -> ToolCallPart:
        return ToolCallPart('list_active_tasks', {})
