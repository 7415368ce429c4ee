"""A Temporal worker that runs sub-agent tasks: their workflows, and their model requests and tools as activities.

[`task_worker`][subagents_cancel.temporal.task_worker] builds the worker from sub-agent configs (as the in-process
task host is built): each sub-agent gets a durable agent (pydantic-ai's `TemporalDurability`) whose activities wait
for a cancel to complete ("stopped" means stopped) and heartbeat every `heartbeat_seconds`, so a cancel reaches a
request in flight that fast. Once the application has configured logfire, the worker also traces each task in its
owner's trace (`subagents_cancel.temporal.tracing`). `python -m subagents_cancel worker` runs one from the
command line.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import anyio
from pydantic_ai import Agent
from pydantic_ai.agent import AbstractAgent
from pydantic_ai.durable_exec.temporal import AgentPlugin, PydanticAIPlugin, TemporalDurability
from pydantic_ai.models import Model
from temporalio import activity
from temporalio.client import Client
from temporalio.common import RetryPolicy
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
    UnsandboxedWorkflowRunner,
    Worker,
)
from temporalio.workflow import ActivityCancellationType, ActivityConfig

from subagents_cancel._engine.launch import agent_for
from subagents_cancel.config import SubAgentConfig, SubAgentPolicy, index_subagents
from subagents_cancel.errors import ConfigError

from .hooks import run_task_hook
from .registry import HostedSubagents, host_subagents, stop_hosting
from .settings import WorkerSettings
from .subagent_tree import subagent_tree
from .task_workflow import TaskWorkflow
from .tracing import worker_tracing

__all__ = ('activity_config', 'connect', 'durable_agent', 'task_worker')


def activity_config(settings: WorkerSettings | None = None) -> ActivityConfig:
    """The activity config of a sub-agent's model requests and tools: cancels wait until the activity has stopped."""
    settings = settings or WorkerSettings()
    return ActivityConfig(
        start_to_close_timeout=timedelta(seconds=settings.activity_seconds),
        heartbeat_timeout=timedelta(seconds=settings.heartbeat_timeout_seconds),
        cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
        retry_policy=RetryPolicy(maximum_attempts=3),
    )


def durable_agent(
    config: SubAgentConfig, default_model: str | Model | None = None, settings: WorkerSettings | None = None
) -> AbstractAgent[None, object]:
    """The agent that runs `config`'s tasks on a worker: built with `TemporalDurability`, or the config's own.

    Raises:
        ConfigError: the config's own agent has no `TemporalDurability` capability, or it has no model at all.
    """
    if config.agent is not None:
        if TemporalDurability.from_agent(config.agent) is None:
            raise ConfigError(
                f'Sub-agent {config.name!r}: its agent runs on a Temporal worker, so it needs a `TemporalDurability` '
                'capability: `Agent(..., capabilities=[TemporalDurability(activity_config=activity_config())])`.'
            )
        return config.agent
    plain = agent_for(config, default_model)
    assert isinstance(plain, Agent)
    return Agent(
        plain.model,
        instructions=config.instructions or None,
        name=config.name,
        defer_model_check=True,
        capabilities=[TemporalDurability(activity_config=activity_config(settings))],
    )


async def connect(address: str, *, namespace: str = 'default') -> Client:
    """A Temporal client for owners and workers: pydantic-ai's data converter, which activities need."""
    return await Client.connect(address, namespace=namespace, plugins=[PydanticAIPlugin()])


class _Heartbeats(Interceptor):
    """Every activity of the worker heartbeats every `seconds`: the reply to a heartbeat is how a cancel reaches it."""

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _Heartbeating(next, self._seconds)


class _Heartbeating(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, seconds: float) -> None:
        super().__init__(next)
        self._seconds = seconds

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        beating = asyncio.get_running_loop().create_task(self._beat())
        try:
            return await self.next.execute_activity(input)
        finally:
            beating.cancel()

    async def _beat(self) -> None:
        while True:
            activity.heartbeat()
            await anyio.sleep(self._seconds)  # a pace, not a wait for something: each beat asks for a cancel


@asynccontextmanager
async def task_worker(
    client: Client,
    *,
    task_queue: str,
    subagents: Sequence[SubAgentConfig],
    default_model: str | Model | None = None,
    policy: SubAgentPolicy | None = None,
    settings: WorkerSettings | None = None,
) -> AsyncGenerator[Worker]:
    """Run a worker for `task_queue` that hosts `subagents`, until the `async with` block ends.

    It hosts the sub-agents of their agents' [`SubAgentCapability`][subagents_cancel.SubAgentCapability] too, at any
    depth: their tasks run in the workflow of the task that started them.

    Owners reach it with a [`TemporalTransport`][subagents_cancel.temporal.TemporalTransport] on the same task queue.
    One worker per task queue per process; run more processes (or machines) for more workers. Configure logfire (and
    pydantic-ai's instrumentation) before the worker starts: it then adds pydantic-ai's `LogfirePlugin`, so that a
    task's spans join its owner's trace, once each (see the telemetry guide).

    Raises:
        ConfigError: as the in-process task host, an agent without `TemporalDurability`, or two different
            configs of one name among the sub-agents and theirs.
        RuntimeError: another worker of this process serves `task_queue`.
    """
    settings = settings or WorkerSettings()
    configs = index_subagents(subagent_tree(subagents))  # and every level of their own sub-agents
    agents = {name: durable_agent(config, default_model, settings) for name, config in configs.items()}
    hosted = HostedSubagents(tuple(configs.values()), agents, policy or SubAgentPolicy(), settings)
    host_subagents(task_queue, hosted)
    heartbeat = timedelta(seconds=settings.heartbeat_seconds)
    try:
        worker = Worker(
            client,
            task_queue=task_queue,
            workflows=[TaskWorkflow],
            activities=[run_task_hook],
            workflow_runner=UnsandboxedWorkflowRunner(),
            interceptors=[_Heartbeats(settings.heartbeat_seconds)],
            plugins=[*(AgentPlugin(agent) for agent in agents.values()), *worker_tracing()],
            max_heartbeat_throttle_interval=heartbeat,
            default_heartbeat_throttle_interval=heartbeat,
            sticky_queue_schedule_to_start_timeout=timedelta(seconds=settings.sticky_queue_seconds),
        )
        async with worker:
            yield worker
    finally:
        stop_hosting(task_queue, hosted)
