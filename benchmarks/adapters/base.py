"""What a scenario needs from a library: its parent tools as tool calls, and a parent agent that has them.

An adapter is thin on purpose. It names the library's tools and arguments, builds the parent agent the
way the library's docs say, reads a task id out of the library's own reply, and finds the asyncio task
that hosts a sub-agent (by the name the library gives it) so a scenario can see when it is really done.
Everything else -- timing, scripts, checks -- lives in the scenarios and is the same for every library.
"""

from __future__ import annotations

import asyncio
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic_ai import Agent, UsageLimits
from pydantic_ai.messages import ToolCallPart
from pydantic_ai.models import Model

from benchkit.parent import ToolTimer

Told = Literal['completed', 'cancelled'] | None
"""How a status reply says a task ended; `None` when it says neither (or in words the adapter does not know)."""


@dataclass(frozen=True, kw_only=True)
class Options:
    """Settings a scenario asks for; a library that has no such setting ignores it (and says so)."""

    grace_seconds: float | None = None
    """How long a soft-cancelled task may wrap up before it is stopped."""
    preempt: bool = False
    """Cut the sub-agent's model request or tool call in flight on a soft cancel."""


@dataclass(kw_only=True)
class Parent:
    """A parent agent with the library's tools, and how to run it so its tasks live as the library intends."""

    agent: Agent[Any, str]
    run_kwargs: Mapping[str, Any] = field(default_factory=dict[str, Any])

    async def run(self, prompt: str = 'Go.') -> str:
        result = await self.agent.run(prompt, usage_limits=UsageLimits(request_limit=None), **self.run_kwargs)
        return result.output


class Adapter(ABC):
    """One library under test, seen through its parent tools."""

    key: str
    """Short name used on the command line and in result files."""
    label: str
    """The library's distribution name, as the report shows it."""
    task_name: str
    """The asyncio task name the library gives the task hosting a sub-agent, with `{task_id}`."""
    task_id_pattern: re.Pattern[str]
    """Finds the task id in the reply of a background start."""

    @property
    @abstractmethod
    def version(self) -> str: ...

    @abstractmethod
    def parent(
        self, model: Model, subagent: Agent[None, str], timer: ToolTimer, options: Options
    ) -> AbstractAsyncContextManager[Parent]:
        """A parent agent on `model` that can delegate to `subagent`; its runs own their tasks."""

    @abstractmethod
    def session(
        self, model: Model, subagent: Agent[None, str], timer: ToolTimer
    ) -> AbstractAsyncContextManager[Parent]:
        """Like `parent`, but one owner keeps the tasks of every run made inside the block (a long-lived app)."""

    @abstractmethod
    def start(self, description: str, *, background: bool, region: str | None = None) -> ToolCallPart: ...

    @abstractmethod
    def hard_cancel(self, task_id: str) -> ToolCallPart: ...

    @abstractmethod
    def soft_cancel(self, task_id: str) -> ToolCallPart: ...

    @abstractmethod
    def status(self, task_id: str) -> ToolCallPart:
        """The call that reports one task (or, lacking one, the library's task list)."""

    @abstractmethod
    def list_active(self) -> ToolCallPart: ...

    def region_cancel(self, region: str) -> ToolCallPart | None:
        """The call that hard-cancels a region of tasks at once; `None` when the library has no regions."""
        return None

    def soft_cancel_gap(self, options: Options) -> str | None:
        """Why `options` cannot apply to this library's soft cancel, or `None` if they do."""
        if options.preempt:
            return 'no setting to cut a step short on a soft cancel'
        return 'no grace setting for a soft cancel' if options.grace_seconds is not None else None

    @abstractmethod
    def told(self, texts: list[str]) -> Told:
        """What the replies to a status call, made after the task ended, tell the parent about how it ended."""

    def task_id(self, reply: str) -> str:
        found = self.task_id_pattern.search(reply)
        assert found is not None, f'{self.key}: no task id in {reply!r}'
        return found.group(1)

    def hosting_tasks(self, task_ids: list[str], *, strict: bool = True) -> list[asyncio.Task[Any]]:
        """The asyncio tasks that host these sub-agent tasks (called outside any timed region).

        With `strict=False`, a task that is no longer pending (it has already ended) is left out.
        """
        by_name = {task.get_name(): task for task in asyncio.all_tasks()}
        names = [self.task_name.format(task_id=task_id) for task_id in task_ids]
        return [by_name[name] for name in names if strict or name in by_name]
