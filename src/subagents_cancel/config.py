"""What you configure: the sub-agents a parent may start, and the policy that bounds their cancellation.

Both are validated once, when they are built: a bad name, an unknown field, a model string that
names no provider, a negative grace window or two sub-agents with the same name raise there, never
in the middle of a run.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_ai.agent import AbstractAgent
from pydantic_ai.models import Model, parse_model_id
from pydantic_ai.providers import infer_provider_class

from .errors import ConfigError
from .results import TaskInfo

__all__ = (
    'CleanupHook',
    'PromoteHook',
    'SubAgentConfig',
    'SubAgentPolicy',
    'check_duration',
    'check_text',
    'check_model',
    'index_subagents',
)

CleanupHook = Callable[[TaskInfo], Awaitable[None]]
"""Called after a task of the sub-agent was cancelled, with its final snapshot (reason, mode, partial result)."""

PromoteHook = Callable[[TaskInfo, Path], Awaitable[None]]
"""Called after a task of the sub-agent completed, with its snapshot and its scratch directory, to keep its files."""


def check_text(name: str, text: str, *, empty_allowed: bool = False) -> str:
    """Check text passed to one call of the Python API: a task's description, a resumed task's instructions, an answer.

    Applications call the API from untyped code (a form field left empty, a JSON body), where `None` slips through;
    the model's tools refuse the same values in their replies.

    Raises:
        TypeError: `text` is not a `str`.
        ValueError: `text` is empty, where that is not allowed (a prompt: the sub-agent would be told nothing).
    """
    if not isinstance(text, str):  # pyright: ignore[reportUnnecessaryIsInstance]
        raise TypeError(f'{name} must be a str, not {type(text).__name__}: {text!r:.80}.')
    if not text and not empty_allowed:
        raise ValueError(f'{name} must not be empty: it is all the sub-agent is told.')
    return text


def check_duration(name: str, seconds: float, *, zero_allowed: bool = False) -> float:
    """Check a duration passed to one call of the Python API, as the config classes check theirs.

    A duration is a finite number of seconds, greater than 0 (or 0 or more, if `zero_allowed`). There is no
    infinite duration: where a call offers no limit, that is its `None` (the default).

    Raises:
        ValueError: `seconds` is NaN, infinite, negative, or 0 where 0 is not allowed.
    """
    if math.isfinite(seconds) and (seconds > 0 or (zero_allowed and seconds == 0)):
        return seconds
    allowed = '0 or more' if zero_allowed else 'greater than 0'
    raise ValueError(f'{name} must be a finite number of seconds, {allowed}; got {seconds!r}.')


def check_model(model: str | Model) -> str | Model:
    """Check that a model value can name a model: a `Model` instance, `'test'`, or `'<provider>:<model>'`.

    A provider whose SDK is not installed is accepted here (pydantic-ai raises its own clear
    `ImportError` when the model is first used); an unknown provider or a name without one is not.

    Raises:
        ValueError: the value cannot name a model.
    """
    if isinstance(model, Model) or model == 'test':
        return model
    provider, name = parse_model_id(model)
    if provider is None or not name:
        raise ValueError(f"Unknown model {model!r}: name it as '<provider>:<model>', e.g. 'openai:gpt-5-mini'.")
    try:
        infer_provider_class(provider)
    except ImportError:
        pass  # a known provider whose SDK is missing; pydantic-ai reports that when the model is used
    except ValueError:
        raise ValueError(f'Unknown model provider {provider!r} in {model!r}.') from None
    return model


class SubAgentConfig(BaseModel):
    """A sub-agent the parent may start with the `task` tool.

    Example:
        ```python
        researcher = SubAgentConfig(
            name='researcher',
            description='Researches a topic and reports findings',
            instructions='You are a research assistant. Work in phases and checkpoint after each.',
        )
        ```
    """

    model_config = ConfigDict(frozen=True, extra='forbid', arbitrary_types_allowed=True)

    name: Annotated[str, Field(pattern=r'^[A-Za-z0-9][A-Za-z0-9_-]{0,47}$')]
    """How the parent names it (`subagent_type`) and the prefix of its task ids: letters, digits, `_`, `-`."""
    description: Annotated[str, Field(min_length=1)]
    """What it does, shown to the parent's model so it can choose."""
    instructions: str = ''
    """Its instructions (system prompt). Added to `agent`'s own instructions when `agent` is given."""
    model: str | Model | None = None
    """The model to run it on, a `'provider:model'` name or a `Model`; by default the capability's
    `default_model`, else the parent run's model."""
    agent: AbstractAgent[None, object] | None = None
    """A ready pydantic-ai agent to run instead of building one; it may carry its own
    [`SubAgentCapability`][subagents_cancel.SubAgentCapability] (nested sub-agents), and a
    [`TaskCapability`][subagents_cancel.TaskCapability], which its task runs would otherwise each be given."""
    cancel_instructions: str | None = None
    """Replaces the default instructions on checkpointing and on reacting to a `CANCEL_REQUEST`."""
    grace_seconds: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    """How long a soft cancel lets it wrap up before it is stopped; by default the policy's."""
    preempt_on_soft_cancel: bool | None = None
    """Whether a soft cancel interrupts its model request or tool call in flight; by default the policy's."""
    timeout_seconds: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    """The time budget of each of its tasks, from when the task is accepted; by default the policy's."""
    fallback: str | None = None
    """Another sub-agent to start in place of a task of this one that gets cancelled (by the parent, a deadline
    or a region); it receives the original request and the partial result, and its output is delivered instead."""
    cleanup: CleanupHook | None = None
    """Runs after each cancelled task of this sub-agent, shielded and bounded by the policy's `hook_seconds`."""
    promote: PromoteHook | None = None
    """Runs after each completed task of this sub-agent that used its scratch directory, before it is deleted."""

    @field_validator('model')
    @classmethod
    def _known_model(cls, model: str | Model | None) -> str | Model | None:
        return None if model is None else check_model(model)

    @model_validator(mode='after')
    def _one_way_to_run(self) -> SubAgentConfig:
        if self.agent is not None and self.model is not None:
            raise ValueError('Give either `agent` or `model`, not both: an agent already has its model.')
        return self


class SubAgentPolicy(BaseModel):
    """Bounds on waiting and stopping, shared by every task of one owner."""

    model_config = ConfigDict(frozen=True, extra='forbid')

    grace_seconds: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 30.0
    """How long a soft-cancelled task may wrap up before it is hard-cancelled (per sub-agent:
    [`SubAgentConfig.grace_seconds`][subagents_cancel.SubAgentConfig.grace_seconds])."""
    refuse_tools_after_cancel: bool = True
    """After a soft cancel, refuse the sub-agent's tool calls other than `checkpoint` (and the read-only
    sub-agent tools), so no new side effect starts while it wraps up."""
    preempt_on_soft_cancel: bool = False
    """Whether a soft cancel interrupts the model request or tool call in flight, so that the wrap-up request
    starts at once, instead of waiting for that step to finish (its result is then lost). Per sub-agent:
    [`SubAgentConfig.preempt_on_soft_cancel`][subagents_cancel.SubAgentConfig.preempt_on_soft_cancel]."""
    hard_cancel_wait_seconds: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 5.0
    """How long a hard cancel waits for the run to stop before it reports the task unresponsive."""
    final_answer_wait_seconds: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 1.0
    """How long a hard cancel that arrives after the sub-agent's final answer waits for the run to accept or
    reject that answer (its output validators and output function) before it stops the run anyway. An answer
    accepted in that time wins: the task ends COMPLETED (see *first writer wins* in the states concept page).
    Must be shorter than `hard_cancel_wait_seconds` and `teardown_seconds`, which bound the whole stop."""
    receipt_wait_seconds: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 0.5
    """How long a cancel command waits for the task's receipt of its request (received, held, or lost) before it
    returns what it knows; a receipt that comes later still updates the task. Measured in real time (the event
    loop's clock), not on the policy's `clock`: it bounds how late the transport delivers, which no test clock
    drives, so a transport that holds a request never keeps the caller waiting."""
    cancel_resend_seconds: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 1.0
    """How often the owner sends a cancel message again, with the same id, while the transport may have lost it; on
    the policy's `clock`. A soft request is sent again until its receipt comes, the task ends, or its grace window
    ends (the escalation takes over); a hard request until its receipt comes or the task ends, and an escalation
    until the task ends, each for at most `hard_cancel_wait_seconds`: a task still running then, that never gave
    the hard request's receipt or was escalated, is marked unresponsive. A task treats a copy as the message it
    already has: it gives the same receipt again and changes nothing."""
    owner_end: Literal['hard', 'soft'] = 'hard'
    """What happens to tasks still running when their owner (the parent run or manager scope) ends."""
    owner_end_grace_seconds: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 5.0
    """With `owner_end='soft'`: how long the tasks may wrap up before they are hard-cancelled."""
    teardown_seconds: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 5.0
    """How long the owner's teardown waits for hard-cancelled tasks before it reports them as orphans."""
    max_running: Annotated[int, Field(ge=1)] | None = None
    """How many tasks of one owner may run at once; more wait as PENDING, first in, first out."""
    wait_timeout_seconds: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 300.0
    """The longest a parent's `wait_tasks` or `wait_region` call may wait before it returns with the tasks still
    running; a longer (or infinite) `timeout_seconds` from the model is capped to it, and the reply says so."""
    task_timeout_seconds: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    """The default time budget of a task, from when it is accepted; none by default."""
    deadline_cancel: Literal['soft', 'hard'] = 'soft'
    """How a task or region whose time budget ran out is cancelled."""
    cascade_grace_factor: Annotated[float, Field(gt=0, le=1)] = 0.5
    """A soft cancel of a task reaches its own sub-agents' tasks first, with this fraction of its grace window, so
    they hand back their partial results before it wraps up itself; each level deeper gets a shorter window."""
    hook_seconds: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 10.0
    """How long a sub-agent's `cleanup` or `promote` hook may run."""
    sync_tool_threads: Annotated[int, Field(ge=1)] = 16
    """Worker threads for the sync tools of one owner's tasks that have not been stopped."""
    max_lingering_threads: Annotated[int, Field(ge=0)] = 64
    """A sync tool still working when its task was stopped cannot be stopped: its thread *lingers*. Each lingering
    thread is replaced by a new one, so later tasks are not starved, up to this many lingering threads at once; past
    that, new sync tool calls wait for a thread (and a warning is logged). They are listed by
    [`unresponsive_tasks()`][subagents_cancel.SubAgentManager.unresponsive_tasks]."""
    keep_finished: Annotated[int, Field(ge=1)] | None = 10_000
    """How many finished tasks one owner keeps the records of; beyond that the oldest are forgotten (their ids read
    as unknown), so a long-lived owner's memory stays bounded. `None` keeps them all. The record of a cancelled or
    failed task also holds its run's conversation until it is resumed (for
    [`resume`][subagents_cancel.SubAgentManager.resume]), so such a record costs about as much as its messages."""
    finished_ttl_seconds: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    """Also forget a finished task this long after it ended, and a region cancelled while empty this long after its
    cancel (checked whenever a task ends or starts, or a region is cancelled)."""

    @model_validator(mode='after')
    def _verdict_within_the_stop_bounds(self) -> SubAgentPolicy:
        for name in ('hard_cancel_wait_seconds', 'teardown_seconds'):
            bound: float = getattr(self, name)
            if self.final_answer_wait_seconds >= bound:
                raise ValueError(
                    f'final_answer_wait_seconds ({self.final_answer_wait_seconds:g}s) must be shorter than {name} '
                    f'({bound:g}s): a hard cancel waits for the verdict on an answer that has arrived within its '
                    'own bound.'
                )
        return self


def index_subagents(subagents: Sequence[SubAgentConfig]) -> Mapping[str, SubAgentConfig]:
    """Index sub-agents by name.

    Raises:
        ConfigError: the sequence is empty, an item is not a `SubAgentConfig`, two sub-agents share a name, or a
            fallback names no other sub-agent.
    """
    if not subagents:
        raise ConfigError('Configure at least one sub-agent.')
    by_name: dict[str, SubAgentConfig] = {}
    for number, config in enumerate(subagents, start=1):
        # The annotation does not stop an untyped caller from passing a dict or a name.
        if not isinstance(config, SubAgentConfig):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise ConfigError(
                f'Sub-agent {number} is a {type(config).__name__}, not a SubAgentConfig: build it with '
                '`SubAgentConfig(name=..., description=...)` (or `SubAgentConfig.model_validate({...})` for a dict).'
            )
        if config.name in by_name:
            raise ConfigError(f'Two sub-agents are named {config.name!r}; names must be unique.')
        by_name[config.name] = config
    for config in subagents:
        if config.fallback is not None and (config.fallback == config.name or config.fallback not in by_name):
            raise ConfigError(_bad_fallback(config, tuple(name for name in by_name if name != config.name)))
    return by_name


def _bad_fallback(config: SubAgentConfig, others: Sequence[str]) -> str:
    start = f'Sub-agent {config.name!r} falls back to {config.fallback!r}'
    if not others:
        return (
            f'{start}, which is not configured; configure {config.fallback!r} as another sub-agent '
            '(it is the only one).'
        )
    return f'{start}, which is not another configured sub-agent; choose one of: {", ".join(others)}.'
