"""subagents-cancel (this library), through its parent tools."""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from importlib.metadata import version
from typing import Any

from pydantic_ai import Agent
from pydantic_ai.messages import ToolCallPart
from pydantic_ai.models import Model

from benchkit.parent import ToolTimer
from benchkit.subagent import SUBAGENT_DESCRIPTION, SUBAGENT_NAME
from subagents_cancel import SubAgentCapability, SubAgentConfig, SubAgentManager, SubAgentPolicy

from .base import Adapter, Options, Parent, Told


def _policy(options: Options) -> SubAgentPolicy:
    if options.grace_seconds is None:
        return SubAgentPolicy(preempt_on_soft_cancel=options.preempt)
    return SubAgentPolicy(grace_seconds=options.grace_seconds, preempt_on_soft_cancel=options.preempt)


def _config(subagent: Agent[None, str]) -> SubAgentConfig:
    return SubAgentConfig(name=SUBAGENT_NAME, description=SUBAGENT_DESCRIPTION, agent=subagent)


class Ours(Adapter):
    """This library: `SubAgentCapability` per parent run, or one `SubAgentManager` scope for a session."""

    key = 'ours'
    label = 'subagents-cancel'
    task_name = 'subagent {task_id}'
    task_id_pattern = re.compile(r'Task started with ID: (\S+) ')

    @property
    def version(self) -> str:
        return version('subagents-cancel')

    @asynccontextmanager
    async def parent(
        self, model: Model, subagent: Agent[None, str], timer: ToolTimer, options: Options
    ) -> AsyncGenerator[Parent]:
        capability = SubAgentCapability(subagents=[_config(subagent)], policy=_policy(options))
        yield Parent(agent=Agent(model, capabilities=[capability, timer]))

    @asynccontextmanager
    async def session(self, model: Model, subagent: Agent[None, str], timer: ToolTimer) -> AsyncGenerator[Parent]:
        async with SubAgentManager([_config(subagent)]) as manager:
            yield Parent(agent=Agent(model, capabilities=[SubAgentCapability(manager=manager), timer]))

    def start(self, description: str, *, background: bool, region: str | None = None) -> ToolCallPart:
        args: dict[str, Any] = {
            'description': description,
            'subagent_type': SUBAGENT_NAME,
            'mode': 'async' if background else 'sync',
        }
        if region is not None:
            args['region'] = region
        return ToolCallPart('task', args)

    def hard_cancel(self, task_id: str) -> ToolCallPart:
        return ToolCallPart('hard_cancel_task', {'task_id': task_id})

    def soft_cancel(self, task_id: str) -> ToolCallPart:
        return ToolCallPart('soft_cancel_task', {'task_id': task_id})

    def status(self, task_id: str) -> ToolCallPart:
        return ToolCallPart('check_task', {'task_id': task_id})

    def list_active(self) -> ToolCallPart:
        return ToolCallPart('list_active_tasks', {})

    def told(self, texts: list[str]) -> Told:
        if any(text.startswith('Task cancelled:') for text in texts):  # `check_task` of a cancelled task
            return 'cancelled'
        return 'completed' if any(': COMPLETED in ' in text for text in texts) else None

    def region_cancel(self, region: str) -> ToolCallPart | None:
        return ToolCallPart('hard_cancel_region', {'region': region})

    def soft_cancel_gap(self, options: Options) -> str | None:
        return None
