"""The arguments of the parent's tools: what the model sees of each tool's schema, and what a call is parsed into.

Every field has the description the model reads; `tools.py` registers each tool with its model. The schema is
shown as it is, and a call that does not fit it gets a reply rather than a retry (see `tooling.py`).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from subagents_cancel.regions import REGION_PATTERN

from .tooling import ToolArgs

__all__ = (
    'AnswerArgs',
    'CancelArgs',
    'CancelRegionArgs',
    'NoArgs',
    'RegionArgs',
    'ResumeArgs',
    'TaskArgs',
    'TaskIdArgs',
    'WaitArgs',
    'WaitRegionArgs',
)

_Region = Annotated[
    str | None,
    Field(
        pattern=REGION_PATTERN,
        description="A group to put it in, e.g. 'research' or 'research/patents', to cancel or wait for together.",
    ),
]
_TimeoutSeconds = Annotated[
    float | None, Field(gt=0, allow_inf_nan=False, description='Its time budget; it is cancelled when it runs out.')
]
_Fallback = Annotated[
    str | None, Field(description='A sub-agent that takes over, with the partial result, if this task is cancelled.')
]


class TaskArgs(ToolArgs):
    description: str = Field(
        min_length=1, description='What the sub-agent should do, with all the context it needs: it sees nothing else.'
    )
    subagent_type: str = Field(description='The name of one of the sub-agents listed in your instructions.')
    mode: Literal['sync', 'async'] = Field(
        'sync', description="'sync' waits and returns the result; 'async' returns a task id at once."
    )
    region: _Region = None
    timeout_seconds: _TimeoutSeconds = None
    fallback: _Fallback = None


class TaskIdArgs(ToolArgs):
    task_id: str = Field(description='The id that `task` returned, e.g. researcher-3f9a07c2.')


class CancelArgs(TaskIdArgs):
    reason: str | None = Field(None, max_length=500, description='Why, in a few words; the sub-agent is told.')


class ResumeArgs(TaskIdArgs):
    instructions: str = Field(
        min_length=1,
        description='What it should do now (e.g. narrower instructions); it reads them after its conversation so far.',
    )
    region: _Region = None
    timeout_seconds: _TimeoutSeconds = None
    fallback: _Fallback = None


class AnswerArgs(TaskIdArgs):
    answer: str = Field(description='Your answer to the question the task asked.')


class WaitArgs(ToolArgs):
    task_ids: list[str] | None = Field(None, description='The tasks to wait for; all active tasks if omitted.')
    wait_for: Literal['all', 'any'] = Field(
        'all', description="'all': until every task has ended; 'any': until one has."
    )
    timeout_seconds: float | None = Field(
        None, gt=0, description='The longest to wait, in seconds; a few minutes if omitted.'
    )


class NoArgs(ToolArgs):
    pass


class RegionArgs(ToolArgs):
    region: str = Field(pattern=REGION_PATTERN, description='The region given to `task`, e.g. research.')


class CancelRegionArgs(RegionArgs):
    reason: str | None = Field(None, max_length=500, description='Why, in a few words; the sub-agents are told.')


class WaitRegionArgs(RegionArgs):
    timeout_seconds: float | None = Field(
        None, gt=0, description='The longest to wait, in seconds; a few minutes if omitted.'
    )
