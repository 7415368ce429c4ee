"""A world of real sub-agent runs whose every model step is chosen from outside, for property tests and fuzzing.

Each task's model parks at every request until the driver picks what it answers: a checkpoint, a
question, its final output, or an error. A driver (hypothesis, or the seeded fuzzer in
`benchmarks/fuzz.py`) interleaves those choices with the parent's tools and the Python API, and the
world checks the library's promises after every action and at the end:

* no status flip: once a task is terminal it stays in that state with the same outcome;
* a cancel accepted before the end ends the task CANCELLED, unless its output was committed first (then the
  task is COMPLETED and its cancel is marked lost);
* a final output the model produced is never lost: it is the result, or the partial result;
* a partial result exists only on CANCELLED;
* nothing runs once the owner is gone.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

import anyio
from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ModelResponse
from pydantic_ai.models.function import AgentInfo, FunctionModel

from subagents_cancel import (
    Cancelled,
    CancelReason,
    Completed,
    Failed,
    ManualClock,
    SubAgentCapability,
    SubAgentConfig,
    SubAgentManager,
    SubAgentPolicy,
    SubAgentsError,
    TaskInfo,
    TaskStatus,
    current_task,
)

from .helpers import Script, call, cancel_requested, text, tool_returns

Step = Literal['checkpoint', 'ask', 'finish', 'fail']
STEPS: tuple[Step, ...] = ('checkpoint', 'ask', 'finish', 'fail')
GRACE_SECONDS = 10.0
_STARTED = re.compile(r'Task started with ID: (\S+) ')
_SETTLE_ROUNDS = 100_000


class PromiseBroken(AssertionError):
    """One of the library's promises did not hold."""


@dataclass
class _Puppet:
    """One task's model: parks at each request until the driver sends what it answers."""

    obeys: bool = True
    """Whether it wraps up at once when its request carries CANCEL_REQUEST."""
    parked: bool = False
    steps: list[Step] = field(default_factory=list[Step])
    arrived: anyio.Event = field(default_factory=anyio.Event)
    output: str | None = None
    """The final output its model returned, if it did."""

    async def next_step(self) -> Step:
        self.parked = True
        try:
            while not self.steps:
                await self.arrived.wait()
                self.arrived = anyio.Event()
        finally:
            self.parked = False
        return self.steps.pop(0)


@dataclass
class World:
    """One owner (a manager), its tasks, and the record of what the driver did."""

    clock: ManualClock
    max_running: int | None = None
    preempt: bool = False
    """Soft cancels interrupt the step in flight (`preempt_on_soft_cancel`)."""
    manager: SubAgentManager = field(init=False)
    puppets: dict[str, _Puppet] = field(default_factory=dict[str, _Puppet])
    first_end: dict[str, TaskInfo] = field(default_factory=dict[str, TaskInfo])
    replies: list[str] = field(default_factory=list[str])
    outcomes: Counter[str] = field(default_factory=Counter[str])
    closed: bool = False

    def __post_init__(self) -> None:
        worker = SubAgentConfig(name='worker', description='Works', model=FunctionModel(self._respond))
        policy = SubAgentPolicy(
            max_running=self.max_running, grace_seconds=GRACE_SECONDS, preempt_on_soft_cancel=self.preempt
        )
        self.manager = SubAgentManager([worker], clock=self.clock, policy=policy)

    # --- the sub-agents' model ------------------------------------------------------------------

    async def _respond(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        task = current_task()
        assert task is not None
        puppet = self.puppets.setdefault(task.task_id, _Puppet())  # its run may start before `start` returns
        if puppet.obeys and cancel_requested(messages):
            puppet.output = f'partial of {task.task_id}'
            return text(puppet.output)
        match await puppet.next_step():
            case 'checkpoint':
                return call('checkpoint', completed=[f'step {len(messages)}'])(messages)
            case 'ask':
                return call('ask_parent', question='Which one?')(messages)
            case 'finish':
                puppet.output = f'output of {task.task_id}'
                return text(puppet.output)
            case 'fail':
                raise RuntimeError('the model provider failed')

    # --- actions --------------------------------------------------------------------------------

    async def open(self) -> None:
        await self.manager.__aenter__()

    async def start(self, *, obeys: bool, region: str | None = None, through_tool: bool = True) -> str | None:
        """Start a task (through the parent's `task` tool, or the Python API); its id, or `None` if refused."""
        if through_tool:
            args: dict[str, object] = {'description': 'Work', 'subagent_type': 'worker', 'mode': 'async'}
            if region is not None:
                args['region'] = region
            found = _STARTED.search(await self.tool('task', **args))
            if found is None:
                return None  # refused, e.g. its region was cancelled
            task_id = found.group(1)
        else:
            try:
                task_id = (await self.manager.start('worker', 'Work', region=region)).task_id
            except SubAgentsError:
                return None
        self.puppets.setdefault(task_id, _Puppet()).obeys = obeys
        return task_id

    def step(self, task_id: str, step: Step) -> None:
        """Let the task's model answer its current (or next) request with `step`."""
        puppet = self.puppets[task_id]
        puppet.steps.append(step)
        puppet.arrived.set()

    async def tool(self, name: str, /, **args: object) -> str:
        """Call one of the parent's tools through a real parent run; return its reply (the run must survive)."""
        parent = Script([call(name, **args), text('parent done')])
        agent = Agent(parent.model, capabilities=[SubAgentCapability(manager=self.manager)])
        result = await agent.run('go')
        if result.output != 'parent done':
            raise PromiseBroken(f'the parent run did not survive {name}({args}): {result.output!r}')
        (reply,) = tool_returns(result.all_messages())
        if not reply or 'Traceback' in reply:
            raise PromiseBroken(f'{name}({args}) replied {reply!r}')
        self.replies.append(reply)
        return reply

    async def api(self, name: str, task_id: str) -> None:
        """Call a cancel method of the Python API; its refusals are typed errors, which are fine."""
        try:
            match name:
                case 'soft_cancel':
                    await self.manager.soft_cancel(task_id)
                case 'hard_cancel':
                    await self.manager.hard_cancel(task_id)
                case 'answer':
                    await self.manager.answer(task_id, 'This one.')
                case _:  # pragma: no cover - the drivers use only these
                    raise AssertionError(name)
        except SubAgentsError:
            pass

    def expire_grace(self) -> None:
        """Move time past every grace window: tasks that did not wrap up are stopped."""
        self.clock.advance(GRACE_SECONDS)

    async def settle(self) -> None:
        """Let everything run until each task is parked, waiting for an answer, pending, or ended.

        Yields to the event loop until that holds. (`anyio.wait_all_tasks_blocked()` sleeps 0.1 s whenever a
        task is ready to run, which made a schedule take a quarter of a second.)
        """
        for _ in range(_SETTLE_ROUNDS):
            if all(self._settled(task_id) for task_id in self.puppets):
                return
            await anyio.lowlevel.checkpoint()
        raise PromiseBroken(f'tasks never settled: {[self.manager.get(t) for t in self.puppets]}')  # pragma: no cover

    def _settled(self, task_id: str) -> bool:
        info = self.manager.get(task_id)
        if info.status.is_terminal:
            return True
        if info.status in (TaskStatus.PENDING, TaskStatus.WAITING_FOR_ANSWER):
            return True
        puppet = self.puppets[task_id]
        return puppet.parked and not puppet.steps  # a step sent but not yet taken: it is about to move

    async def close(self, *, cancelled: bool = False) -> None:
        """End the owner: normally, or as if its parent run were cancelled."""
        if self.closed:
            return
        self.closed = True
        reason = CancelReason(kind='parent_cancelled' if cancelled else 'parent_ended')
        await self.manager.aclose(reason)

    # --- the promises ---------------------------------------------------------------------------

    def check(self) -> None:
        """Check every promise that must hold at any time."""
        for task_id in self.puppets:
            info = self.manager.get(task_id)
            first = self.first_end.get(task_id)
            if first is not None:
                if (info.status, info.outcome) != (first.status, first.outcome):
                    raise PromiseBroken(f'{task_id} flipped from {first.status} to {info.status}')
            elif info.status.is_terminal:
                self.first_end[task_id] = info
                self._check_ending(info)
            elif info.outcome is not None:
                raise PromiseBroken(f'{task_id} has an outcome before its end: {info.outcome}')

    def _check_ending(self, info: TaskInfo) -> None:
        expected = {TaskStatus.COMPLETED: Completed, TaskStatus.FAILED: Failed, TaskStatus.CANCELLED: Cancelled}
        if not isinstance(info.outcome, expected[info.status]):
            raise PromiseBroken(f'{info.task_id} ended {info.status} with {info.outcome}')
        if info.cancel is not None and info.status is not TaskStatus.CANCELLED and not info.cancel.lost:
            raise PromiseBroken(f'{info.task_id} had a cancel accepted but ended {info.status}')
        output = self.puppets[info.task_id].output
        if output is None:
            return
        match info.outcome:
            case Completed(output=kept):
                lost = kept != output
            case Cancelled(mode='hard', partial=partial):
                # The model's answer may still have been on its way through the run when it was stopped; once the
                # run has it, it must be kept.
                lost = partial.final_message not in (None, output)
            case Cancelled(partial=partial):
                lost = partial.final_message != output
            case _:
                lost = True
        if lost:
            raise PromiseBroken(f'{info.task_id} produced {output!r} but ended with {info.outcome}')

    def check_final(self) -> None:
        """After the owner is gone: every task ended, nothing is left running."""
        self.check()
        for task_id in self.puppets:
            info = self.manager.get(task_id)
            if not info.status.is_terminal:
                raise PromiseBroken(f'{task_id} is {info.status} after its owner ended (orphan)')
        if self.manager.orphans():
            raise PromiseBroken(f'orphans: {self.manager.orphans()}')
        for info in self.first_end.values():
            mode = info.outcome.mode if isinstance(info.outcome, Cancelled) else ''
            self.outcomes[f'{info.status.name.lower()} {mode}'.strip()] += 1
