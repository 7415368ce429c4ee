"""What a task is made of before it runs, and what is done with it after it ends.

Before: its agent, its instructions and its slot. After: the sub-agent's cleanup and promote hooks, and
the deletion of its scratch directory.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import anyio
from pydantic_ai import Agent
from pydantic_ai.agent import AbstractAgent
from pydantic_ai.models import Model

from subagents_cancel._text.instructions import DEFAULT_CANCEL_INSTRUCTIONS
from subagents_cancel.clock import Clock
from subagents_cancel.config import SubAgentConfig, check_model
from subagents_cancel.errors import ConfigError
from subagents_cancel.results import TaskInfo
from subagents_cancel.states import TaskStatus

from .task_capability import TaskRunCapability

__all__ = ('agent_for', 'check_runnable', 'run_instructions', 'settle_task', 'take_free_slot')

_log = logging.getLogger('subagents_cancel')


def agent_for(config: SubAgentConfig, default_model: str | Model | None) -> AbstractAgent[None, object]:
    """The agent that runs `config`'s tasks: its own, or one built on its model.

    Raises:
        ConfigError: it names neither an agent nor a model, and there is no `default_model`.
    """
    if config.agent is not None:
        return config.agent
    # Its runs' hooks come with it: a capability the agent is built with costs a run half of one added to each run.
    hooks = TaskRunCapability(instructions=run_instructions(config))
    return Agent(
        check_runnable(config, default_model),
        instructions=config.instructions or None,
        name=config.name,
        defer_model_check=True,
        capabilities=[hooks],
    )


def check_runnable(config: SubAgentConfig, default_model: str | Model | None) -> str | Model | None:
    """Check that `config`'s tasks can run, without building their agent; return the model it would be built on.

    `None` when the config brings its own agent.

    Raises:
        ConfigError: it names neither an agent nor a model, and there is no `default_model`.
    """
    if config.agent is not None:
        return None
    model = config.model or default_model
    if model is None:
        raise ConfigError(
            f'Sub-agent {config.name!r} has no model: set `SubAgentConfig.model`, or `default_model` on the manager.'
        )
    try:
        return check_model(model)
    except ValueError as error:
        raise ConfigError(str(error)) from None


def run_instructions(config: SubAgentConfig) -> str:
    """What each run of this sub-agent gets on top of its agent's own instructions."""
    cancel = DEFAULT_CANCEL_INSTRUCTIONS if config.cancel_instructions is None else config.cancel_instructions
    own = config.instructions if config.agent is not None else ''  # a built agent already has them
    return '\n\n'.join(text for text in (own, cancel) if text)


def take_free_slot(slot: anyio.Semaphore) -> bool:
    """Take a slot if one is free and nobody is queued for it (a released slot goes to the first in the queue)."""
    if slot.value == 0:
        return False
    slot.acquire_nowait()
    return True


async def settle_task(
    info: TaskInfo,
    scratch: Path | None,
    config: SubAgentConfig,
    *,
    clock: Clock,
    hook_seconds: float,
) -> str | None:
    """Run the sub-agent's hook for how the task ended (as `info` says), then delete its scratch directory.

    `cleanup` runs after a cancel, `promote` after a completion that used the scratch directory. A hook
    runs shielded from outside cancellation and for at most `hook_seconds`; if it raises or runs out of
    time, the directory is deleted anyway.

    Returns:
        Why the hook failed (for the record's `cleanup_error`), or `None`.
    """
    cleanup_error: str | None = None
    cleanup = config.cleanup if info.status is TaskStatus.CANCELLED else None
    promote = config.promote if info.status is TaskStatus.COMPLETED and scratch is not None else None
    if cleanup is not None or promote is not None:  # no hook to run: no shielded, bounded scope either
        with anyio.CancelScope(shield=True), clock.deadline_scope(clock.now() + hook_seconds) as bounded:
            try:
                if cleanup is not None:
                    await cleanup(info)
                elif promote is not None and scratch is not None:
                    await promote(info, scratch)
            except Exception as error:  # noqa: BLE001 - the hook is user code; its failure is recorded, not raised
                _log.warning('hook of sub-agent task %s failed', info.task_id, exc_info=error)
                cleanup_error = f'its hook raised {type(error).__name__}'
        if bounded.cancelled_caught:
            cleanup_error = f'its hook ran longer than {hook_seconds:g}s and was stopped'
    if scratch is not None:
        shutil.rmtree(scratch, ignore_errors=True)
    return cleanup_error
