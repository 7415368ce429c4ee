"""Research requests: each one has its own owner (a `SubAgentManager`), and the app's lifespan owns them all.

A request is a parent agent run with a [`SubAgentCapability`][subagents_cancel.SubAgentCapability] on the
request's manager, so the page can reach the same tasks the parent started: stop (soft) or kill (hard) one of
them, or the whole request. When the app shuts down, the desk cancels every request; each manager then stops
the tasks it still has, so nothing keeps running.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal, Self

import anyio
from anyio.abc import TaskGroup, TaskStatus
from pydantic_ai import Agent
from pydantic_ai.exceptions import UserError
from pydantic_ai.models import Model

from subagents_cancel import CancelReason, SubAgentCapability, SubAgentManager, SubAgentPolicy, TaskInfo
from subagents_cancel.clock import Clock

from .scripts import Pace, human_pace, lead_model, searcher_configs
from .views import JsonDict, task_view

__all__ = ('Desk', 'Research', 'Setup')

RequestState = Literal['running', 'stopping', 'done', 'stopped', 'killed', 'failed']

_LEAD_INSTRUCTIONS = (
    'You lead a market study. Start one task per sub-agent in async mode, wait for them all with wait_tasks, '
    'then sum up what they found in three sentences, including the partial results of any that were stopped.'
)
_FROM_THE_PAGE = CancelReason(kind='user', detail='stopped from the page')


@dataclass(frozen=True, slots=True, kw_only=True)
class Setup:
    """What requests run on: scripted models that await `pace` (the default), or a real `model` for all agents."""

    model: str | None = None
    """A `'provider:name'` model for the parent and the sub-agents; `None` for the scripted ones."""
    pace: Pace = human_pace
    """What a scripted searcher awaits before each phase of its work."""
    grace_seconds: float = 10.0
    """How long a stopped task may wrap up before it is killed."""
    clock: Clock | None = None
    """Where the requests' grace windows and stop bounds read time; the monotonic clock by default."""
    keep_ended: int = 100
    """How many ended requests the desk keeps for their pages; the oldest are forgotten (their ids read as unknown),
    so a long-running app's memory stays bounded. A running request is never forgotten."""


@dataclass(eq=False)
class Research:
    """One research request: the parent's run, its manager, and how it ended."""

    request_id: str
    question: str
    manager: SubAgentManager
    state: RequestState = field(default='running', init=False)
    answer: str | None = field(default=None, init=False)
    """The parent's final answer, or why the request failed."""
    ended: anyio.Event = field(default_factory=anyio.Event, init=False)
    """Set once the parent's run is over and the manager has stopped every task it still had."""
    _scope: anyio.CancelScope = field(default_factory=anyio.CancelScope, init=False)

    def view(self) -> JsonDict:
        """The request and its task tree, for the page."""
        return {
            'request_id': self.request_id,
            'question': self.question,
            'state': self.state,
            'answer': self.answer,
            'tasks': [task_view(info) for info in self.manager.tasks()],
        }

    async def stop_task(self, task_id: str) -> TaskInfo:
        """Soft-cancel one task and wait until it has handed back (its grace window bounds the wait)."""
        await self.manager.soft_cancel(task_id, reason=_FROM_THE_PAGE)
        (info,) = (await self.manager.wait([task_id])).tasks
        return info

    async def kill_task(self, task_id: str) -> TaskInfo:
        """Hard-cancel one task; return once it has stopped."""
        return await self.manager.hard_cancel(task_id, reason=_FROM_THE_PAGE)

    def stop(self) -> None:
        """Soft-cancel every task; the parent then sums up what they handed back."""
        if self.state == 'running':
            self.state = 'stopping'
            self.manager.cancel_all('soft', reason=_FROM_THE_PAGE)

    async def kill(self) -> None:
        """Stop the parent's run now; its manager hard-cancels the tasks. Return once nothing runs."""
        self._scope.cancel()
        await self.ended.wait()

    async def run(self, agent: Agent[None, str], *, task_status: TaskStatus[None]) -> None:
        """Own the request's tasks and run the parent; record how it ended (the desk's task group runs this)."""
        try:
            async with self.manager:
                with self._scope:
                    task_status.started()
                    self.answer = (await agent.run(self.question)).output
                    self.state = 'stopped' if self.state == 'stopping' else 'done'
        # A failed request (a provider error, a bad answer) is shown on its page; the other requests go on.
        except Exception as error:  # noqa: BLE001
            self.state, self.answer = 'failed', _why_it_failed(error)
        finally:
            if self.state in ('running', 'stopping'):  # killed from the page, or the app is shutting down
                self.state = 'killed'
            self.ended.set()


class Desk:
    """Starts research requests in the app's task group and finds them by id."""

    def __init__(self, setup: Setup) -> None:
        self._setup = setup
        self._requests: dict[str, Research] = {}
        self._ids = (f'r{number}' for number in itertools.count(1))
        self._group: TaskGroup | None = None

    async def __aenter__(self) -> Self:
        self._group = anyio.create_task_group()
        await self._group.__aenter__()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> bool | None:
        assert self._group is not None
        self._group.cancel_scope.cancel()  # every request is killed: its manager stops the tasks it still has
        return await self._group.__aexit__(kind, error, traceback)

    async def open(self, question: str) -> Research:
        """Start a research request; it runs until it is answered, killed, or the app stops."""
        if self._group is None:
            raise RuntimeError('The desk is not open: enter it with `async with` (the app lifespan does).')
        setup = self._setup
        manager = SubAgentManager(
            searcher_configs(setup.pace if setup.model is None else None),
            default_model=setup.model,
            policy=SubAgentPolicy(preempt_on_soft_cancel=True, grace_seconds=setup.grace_seconds),
            clock=setup.clock,
        )
        model: Model | str = lead_model() if setup.model is None else setup.model
        # A real model is built when the run starts, so a missing API key fails this request, shown on its page.
        agent = Agent(
            model,
            instructions=_LEAD_INSTRUCTIONS,
            capabilities=[SubAgentCapability(manager=manager)],
            defer_model_check=True,
        )
        research = Research(request_id=next(self._ids), question=question, manager=manager)
        self._forget_past_keeping()
        self._requests[research.request_id] = research
        await self._group.start(research.run, agent)
        return research

    def _forget_past_keeping(self) -> None:
        """Forget the oldest ended requests beyond `keep_ended`."""
        ended = [request_id for request_id, research in self._requests.items() if research.ended.is_set()]
        for request_id in ended[: max(len(ended) - self._setup.keep_ended, 0)]:
            del self._requests[request_id]

    def get(self, request_id: str) -> Research | None:
        """The request with this id, if there is one."""
        return self._requests.get(request_id)

    def running(self) -> tuple[Research, ...]:
        """The requests whose parent run or tasks have not ended."""
        return tuple(research for research in self._requests.values() if not research.ended.is_set())


def _why_it_failed(error: Exception) -> str:
    """Why a request failed: a setup problem (a `UserError`, like a missing API key) in full, else only its type.

    A provider's error text may carry what should not be shown, such as a key.
    """
    if isinstance(error, UserError):
        return f'{type(error).__name__}: {error}'
    return f'{type(error).__name__}: the request failed.'
