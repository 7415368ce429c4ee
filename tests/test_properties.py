"""Hypothesis drives real sub-agent runs through the parent's tools and the Python API, in any order.

Each example is a fresh owner whose tasks' models park at every request; hypothesis picks what they
answer (checkpoint, question, final output, error) and interleaves that with `task`, `check_task`,
`soft_cancel_task`, `hard_cancel_task`, `answer_subagent`, `list_active_tasks`, region cancels, grace
expiry and the end of the owner. After every step, the promises in `tests/world.py` must hold.
The state table on its own is covered by the machine in `tests/test_states.py`.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

import anyio.from_thread
import pytest
from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    MultipleResults,
    RuleBasedStateMachine,
    invariant,
    multiple,
    precondition,
    rule,
)

from .helpers import WatchedClock
from .world import STEPS, Step, World

pytestmark = pytest.mark.timeout(180)  # the whole machine is one test: 30 examples of up to 25 real runs

_REGIONS = ('research', 'research/patents', 'review')


class ToolsAndRunsInAnyOrder(RuleBasedStateMachine):
    """One owner; hypothesis interleaves model steps, parent tools, API calls, grace expiry and the owner's end."""

    tasks = Bundle('tasks')

    def __init__(self) -> None:
        super().__init__()
        self._portal_cm: AbstractContextManager[anyio.from_thread.BlockingPortal] = (
            anyio.from_thread.start_blocking_portal('asyncio')
        )
        self.portal = self._portal_cm.__enter__()
        self.world = World(WatchedClock(), max_running=3)
        self.portal.call(self.world.open)

    def _do(self, action: Any, *args: Any) -> None:
        async def then_settle() -> None:
            await action(*args)
            await self.world.settle()

        self.portal.call(then_settle)

    @precondition(lambda self: not self.world.closed and len(self.world.puppets) < 6)
    @rule(target=tasks, obeys=st.booleans(), region=st.sampled_from((None, *_REGIONS)), through_tool=st.booleans())
    def start(self, obeys: bool, region: str | None, through_tool: bool) -> MultipleResults[str]:
        found: list[str] = []

        async def start() -> None:
            task_id = await self.world.start(obeys=obeys, region=region, through_tool=through_tool)
            found.extend([task_id] if task_id is not None else [])

        self._do(start)
        return multiple(*found)  # none when the start was refused

    @rule(task_id=tasks, step=st.sampled_from(STEPS))
    def model_answers(self, task_id: str, step: Step) -> None:
        async def answer() -> None:
            self.world.step(task_id, step)

        self._do(answer)

    @precondition(lambda self: not self.world.closed)
    @rule(
        task_id=tasks,
        tool=st.sampled_from(('check_task', 'soft_cancel_task', 'hard_cancel_task', 'answer_subagent')),
    )
    def parent_tool(self, task_id: str, tool: str) -> None:
        args: dict[str, object] = {'task_id': task_id}
        if tool == 'answer_subagent':
            args['answer'] = 'This one.'
        self._do(_call_tool, self.world, tool, args)

    @precondition(lambda self: not self.world.closed)
    @rule(task_id=tasks, method=st.sampled_from(('soft_cancel', 'hard_cancel', 'answer')))
    def application(self, task_id: str, method: str) -> None:
        self._do(self.world.api, method, task_id)

    @precondition(lambda self: not self.world.closed)
    @rule(tool=st.sampled_from(('soft_cancel_region', 'hard_cancel_region')), region=st.sampled_from(_REGIONS))
    def region_cancel(self, tool: str, region: str) -> None:
        self._do(_call_tool, self.world, tool, {'region': region})

    @precondition(lambda self: not self.world.closed)
    @rule()
    def list_active(self) -> None:
        self._do(_call_tool, self.world, 'list_active_tasks', {})

    @rule()
    def grace_expires(self) -> None:
        async def expire() -> None:
            self.world.expire_grace()

        self._do(expire)

    @precondition(lambda self: not self.world.closed)
    @rule(cancelled=st.booleans())
    def owner_ends(self, cancelled: bool) -> None:
        self.portal.call(lambda: self.world.close(cancelled=cancelled))
        self.world.check_final()

    @invariant()
    def promises_hold(self) -> None:
        self.world.check()

    def teardown(self) -> None:
        try:
            self.portal.call(self.world.close)
            self.world.check_final()
            for outcome in self.world.outcomes:
                event(f'a task ended {outcome}')
        finally:
            self._portal_cm.__exit__(None, None, None)


async def _call_tool(world: World, tool: str, args: dict[str, object]) -> None:
    await world.tool(tool, **args)


TestToolsAndRunsInAnyOrder = ToolsAndRunsInAnyOrder.TestCase
TestToolsAndRunsInAnyOrder.settings = settings(max_examples=30, stateful_step_count=25, deadline=None)
