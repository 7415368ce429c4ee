"""A world of real sub-agent runs whose every model step is chosen from outside, for property tests and fuzzing.

Each task's model parks at every request until the driver picks what it answers: a checkpoint, a
question, its final output, an error, or a tool call with malformed arguments. A driver (hypothesis,
or the seeded fuzzer in `benchmarks/fuzz.py`) interleaves those choices with the parent's tools and
the Python API, and the world checks the library's promises after every action and at the end (see
`tests/promises.py`).

The world records, in one sequence, the facts it can see without asking the library: when each
final answer left a task's model (and, for a structured output, when its validation accepted it),
when a task's model raised, and when a cancel request reached a task (it watches the transport for the receipt
the task gives the moment a request reaches it, as it is sent: a transport that delivers later, as the loopback
does, would otherwise date it after whatever the task did while the receipt was in transit).
Which of them came first is a fact of the schedule, so the promises can say who had to win.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import count
from typing import Literal

import anyio
from pydantic import BaseModel
from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from subagents_cancel import (
    CancelReason,
    SubAgentCapability,
    SubAgentConfig,
    SubAgentManager,
    SubAgentPolicy,
    SubAgentsError,
    TaskInfo,
    TaskStatus,
    current_task,
)
from subagents_cancel.messages import CancelHeld, CancelLost, CancelReceived
from subagents_cancel.testing import ManualClock
from subagents_cancel.wire import WireMessage

from .helpers import Script, WrappedTransport, call, cancel_requested, text, tool_returns
from .promises import Answer, PromiseBroken, TaskFacts, check_ending, count_ending

__all__ = ('MALFORMED_ARGS', 'STEPS', 'Answer', 'PromiseBroken', 'Report', 'Step', 'World')

Step = Literal['checkpoint', 'ask', 'finish', 'fail', 'malformed']
STEPS: tuple[Step, ...] = ('checkpoint', 'ask', 'finish', 'fail')
"""The classic steps; `'malformed'` (a tool call whose arguments are not a JSON object) is drawn separately."""
MALFORMED_ARGS = ('{"completed": [', 'not JSON at all', '[1, 2]', '42', '"x"', 'null')
"""Tool-call arguments a misbehaving model sends: broken JSON, no JSON, and JSON that is not an object."""
GRACE_SECONDS = 10.0
_STARTED = re.compile(r'Task started with ID: (\S+) ')
_SETTLE_ROUNDS = 100_000
_REACH_ROUNDS = 200
"""How many turns of the event loop a race waits for the model to get to its answer (it may be parked elsewhere)."""


class Report(BaseModel):
    """The structured output of the sub-agent in schedules that use one."""

    text: str


@dataclass
class _Puppet:
    """One task's model: parks at each request until the driver sends what it answers."""

    obeys: bool = True
    """Whether it wraps up at once when its request carries CANCEL_REQUEST."""
    parked: bool = False
    steps: list[Step] = field(default_factory=list[Step])
    arrived: anyio.Event = field(default_factory=anyio.Event)
    answers: list[Answer] = field(default_factory=list[Answer])
    """The final answers that left this model, in order."""
    raised_at: int | None = None
    """When its model raised (a `'fail'` step)."""
    malformed: int = 0
    """How many tool calls with malformed arguments it sent."""
    requests_after_answer: int = 0
    """Model requests it received after it had given a final answer."""
    hold: anyio.Event | None = None
    """When set, its next final answer waits for this event before it leaves the model."""
    holding: anyio.Event = field(default_factory=anyio.Event)
    """Set while a final answer waits at `hold`."""

    async def next_step(self) -> Step:
        self.parked = True
        try:
            while not self.steps:
                await self.arrived.wait()
                self.arrived = anyio.Event()
        finally:
            self.parked = False
        return self.steps.pop(0)


class _SendsWatched(WrappedTransport):
    """The test's transport, showing `watch` each message as it is sent (an observer sees it as it is delivered)."""

    def __init__(self, watch: Callable[[str, WireMessage], None]) -> None:
        super().__init__()
        self._watch = watch

    def send_nowait(self, address: str, message: WireMessage) -> bool:
        self._watch(address, message)
        return super().send_nowait(address, message)


@dataclass
class World:
    """One owner (a manager), its tasks, and the record of what the driver did and what the models sent."""

    clock: ManualClock
    max_running: int | None = None
    preempt: bool = False
    """Soft cancels interrupt the step in flight (`preempt_on_soft_cancel`)."""
    structured: bool = False
    """The sub-agent has a pydantic `output_type` ([`Report`][]) instead of text."""
    manager: SubAgentManager = field(init=False)
    puppets: dict[str, _Puppet] = field(default_factory=dict[str, _Puppet])
    first_end: dict[str, TaskInfo] = field(default_factory=dict[str, TaskInfo])
    cancel_reached: dict[str, int] = field(default_factory=dict[str, int])
    """When the first cancel request reached each task's mailbox."""
    owner_end_at: int | None = None
    """When the driver began ending the owner."""
    race_cancel_sent: dict[str, int] = field(default_factory=dict[str, int])
    """When a race (`race()`) sent its cancel to each task, whatever the library made of it."""
    replies: list[str] = field(default_factory=list[str])
    outcomes: Counter[str] = field(default_factory=Counter[str])
    closed: bool = False
    _facts: count[int] = field(default_factory=count)

    def __post_init__(self) -> None:
        agent: Agent[None, Report | str] = Agent(
            FunctionModel(self._respond), output_type=Report if self.structured else str
        )
        agent.output_validator(self._accepted)
        worker = SubAgentConfig(name='worker', description='Works', agent=agent)
        policy = SubAgentPolicy(
            max_running=self.max_running, grace_seconds=GRACE_SECONDS, preempt_on_soft_cancel=self.preempt
        )
        self.transport = _SendsWatched(self._watch)
        self.manager = SubAgentManager([worker], clock=self.clock, policy=policy, transport=self.transport)

    def fact(self) -> int:
        """The position of a fact in the one order of everything the world saw."""
        return next(self._facts)

    def _watch(self, address: str, message: WireMessage) -> None:
        receipt = isinstance(message, CancelReceived | CancelHeld | CancelLost)
        if receipt and message.task_id not in self.cancel_reached:
            self.cancel_reached[message.task_id] = self.fact()

    # --- the sub-agents' model ------------------------------------------------------------------

    async def _respond(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        task = current_task()
        assert task is not None
        puppet = self.puppets.setdefault(task.task_id, _Puppet())  # its run may start before `start` returns
        if puppet.answers:
            puppet.requests_after_answer += 1
        if puppet.obeys and cancel_requested(messages):
            return await self._answer(puppet, f'partial {len(puppet.answers) + 1} of {task.task_id}', info)
        match await puppet.next_step():
            case 'checkpoint':
                return call('checkpoint', completed=[f'step {len(messages)}'])(messages)
            case 'ask':
                return call('ask_parent', question='Which one?')(messages)
            case 'finish':
                return await self._answer(puppet, f'output {len(puppet.answers) + 1} of {task.task_id}', info)
            case 'fail':
                puppet.raised_at = self.fact()
                raise RuntimeError('the model provider failed')
            case 'malformed':
                tool = ('checkpoint', 'ask_parent')[puppet.malformed % 2]
                args = MALFORMED_ARGS[puppet.malformed % len(MALFORMED_ARGS)]
                puppet.malformed += 1
                return ModelResponse(parts=[ToolCallPart(tool, args)])

    async def _answer(self, puppet: _Puppet, content: str, info: AgentInfo) -> ModelResponse:
        """A final answer: recorded the moment it leaves the model (and, as text, accepted there too)."""
        if puppet.hold is not None:
            puppet.holding.set()
            await puppet.hold.wait()
        value: object = Report(text=content) if self.structured else content
        at = self.fact()
        puppet.answers.append(Answer(value, content, arrived_at=at, accepted_at=None if self.structured else at))
        if self.structured:
            return ModelResponse(parts=[ToolCallPart(info.output_tools[0].name, {'text': content})])
        return ModelResponse(parts=[TextPart(content)])

    async def _accepted(self, output: Report | str) -> Report | str:
        """The output validator: the answer has passed validation, nothing can reject it any more.

        It is async so that it runs in the event loop: a sync validator runs in a worker thread, whose real time
        the schedule does not control (the manual clock could pass a whole grace window while it runs).
        """
        task = current_task()
        assert task is not None
        for answer in self.puppets[task.task_id].answers:
            if answer.accepted_at is None and answer.value == output:
                answer.accepted_at = self.fact()
        return output

    # --- actions --------------------------------------------------------------------------------

    async def open(self) -> None:
        await self.transport.__aenter__()
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
            raise PromiseBroken('other', f'the parent run did not survive {name}({args}): {result.output!r}')
        (reply,) = tool_returns(result.all_messages())
        if not reply or 'Traceback' in reply:
            raise PromiseBroken('other', f'{name}({args}) replied {reply!r}')
        self.replies.append(reply)
        return reply

    async def malformed_tool(self, name: str, arguments: list[str]) -> None:
        """The parent's model calls `name` with each of `arguments` (raw, malformed) in turn: its run must go on."""
        steps = [ModelResponse(parts=[ToolCallPart(name, raw)]) for raw in arguments]
        agent = Agent(
            Script([*steps, text('parent done')]).model, capabilities=[SubAgentCapability(manager=self.manager)]
        )
        try:
            result = await agent.run('go')
        except Exception as error:  # noqa: BLE001 - whatever it raised, the promise is broken; say which
            raise PromiseBroken(
                'bad_input', f'{name} with arguments {arguments} ended the parent run: {type(error).__name__}: {error}'
            ) from None
        replies = tool_returns(result.all_messages())
        if result.output != 'parent done' or any('Traceback' in reply for reply in replies):
            raise PromiseBroken('bad_input', f'{name} with arguments {arguments}: {result.output!r}, {replies}')

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

    async def race(self, task_id: str, mode: Literal['soft', 'hard'], *, lead: int, through_tool: bool) -> None:
        """Let the task's model give its final answer and land a `mode` cancel at the commit point.

        `lead` >= 0: the cancel is sent that many turns of the event loop after the answer left the model
        (0: at once, while the run is still processing it). `lead` < 0: the answer is held in the model until
        the cancel has been sent and `-lead` turns have passed, so the cancel arrives just before it.
        """
        puppet = self.puppets[task_id]

        async def cancel() -> None:
            self.race_cancel_sent.setdefault(task_id, self.fact())
            if through_tool:
                await self.tool(f'{mode}_cancel_task', task_id=task_id)
            else:
                await self.api(f'{mode}_cancel', task_id)

        if lead >= 0:
            answers = len(puppet.answers)
            self.step(task_id, 'finish')
            await _until(lambda: len(puppet.answers) > answers)
            for _ in range(lead):
                await anyio.lowlevel.checkpoint()
            await cancel()
            return
        puppet.hold = release = anyio.Event()
        self.step(task_id, 'finish')
        await _until(puppet.holding.is_set)
        broken: list[PromiseBroken] = []

        async def cancel_noting_broken_promises() -> None:
            try:
                await cancel()
            except PromiseBroken as error:
                broken.append(error)

        try:
            async with anyio.create_task_group() as group:
                group.start_soon(cancel_noting_broken_promises)
                for _ in range(-lead):
                    await anyio.lowlevel.checkpoint()
                release.set()
        finally:
            release.set()
            puppet.hold, puppet.holding = None, anyio.Event()
        if broken:
            raise broken[0]

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
        raise PromiseBroken('other', f'tasks never settled: {self._statuses()}')  # pragma: no cover

    def _settled(self, task_id: str) -> bool:
        info = self.manager.get(task_id)
        if info.status.is_terminal:
            return True
        if info.status in (TaskStatus.PENDING, TaskStatus.WAITING_FOR_ANSWER):
            return True
        puppet = self.puppets[task_id]
        return puppet.parked and not puppet.steps  # a step sent but not yet taken: it is about to move

    async def check_no_stall(self) -> None:
        """A task PENDING while a slot is free must start: give it time, then call it a stall.

        Kept apart from `settle()`, which returns as soon as a task is PENDING, so that the driver's next action
        can race the hand-over of a slot.
        """
        for _ in range(_SETTLE_ROUNDS):
            if self._slots_full() or not self._pending():
                return
            await anyio.lowlevel.checkpoint()
        raise PromiseBroken('stalls', f'{self._pending()} stay PENDING while a slot is free: {self._statuses()}')

    def _pending(self) -> list[str]:
        return [task_id for task_id in self.puppets if self.manager.get(task_id).status is TaskStatus.PENDING]

    def _statuses(self) -> dict[str, str]:
        return {task_id: self.manager.get(task_id).status.name for task_id in self.puppets}

    def _slots_full(self) -> bool:
        """Whether every concurrency slot is taken by a task that is running or waiting for an answer."""
        if self.max_running is None:
            return False
        busy = (TaskStatus.RUNNING, TaskStatus.WAITING_FOR_ANSWER)
        return sum(self.manager.get(task_id).status in busy for task_id in self.puppets) >= self.max_running

    async def close(self, *, cancelled: bool = False) -> None:
        """End the owner: normally, or as if its parent run were cancelled."""
        if self.closed:
            return
        self.closed = True
        self.owner_end_at = self.fact()
        reason = CancelReason(kind='parent_cancelled' if cancelled else 'parent_ended')
        await self.manager.aclose(reason)
        await self.transport.__aexit__(None, None, None)

    # --- the promises ---------------------------------------------------------------------------

    def check(self) -> None:
        """Check every promise that must hold at any time."""
        for task_id in self.puppets:
            info = self.manager.get(task_id)
            first = self.first_end.get(task_id)
            if first is not None:
                if (info.status, info.outcome) != (first.status, first.outcome):
                    raise PromiseBroken('flips', f'{task_id} flipped from {first.status} to {info.status}')
            elif info.status.is_terminal:
                self.first_end[task_id] = info
                check_ending(info, self._facts_of(task_id))
            elif info.outcome is not None:
                raise PromiseBroken('other', f'{task_id} has an outcome before its end: {info.outcome}')

    def _facts_of(self, task_id: str) -> TaskFacts:
        puppet = self.puppets[task_id]
        return TaskFacts(
            answers=tuple(puppet.answers),
            raised_at=puppet.raised_at,
            malformed=puppet.malformed,
            requests_after_answer=puppet.requests_after_answer,
            cancel_reached_at=self.cancel_reached.get(task_id),
            owner_end_at=self.owner_end_at,
            race_cancel_sent_at=self.race_cancel_sent.get(task_id),
        )

    def check_final(self) -> None:
        """After the owner is gone: every task ended, nothing is left running."""
        self.check()
        for task_id in self.puppets:
            info = self.manager.get(task_id)
            if not info.status.is_terminal:
                raise PromiseBroken('orphans', f'{task_id} is {info.status} after its owner ended (orphan)')
        if self.manager.orphans():
            raise PromiseBroken('orphans', f'orphans: {self.manager.orphans()}')
        for task_id, info in self.first_end.items():
            self.outcomes.update(count_ending(info, self._facts_of(task_id)))


async def _until(reached: Callable[[], bool]) -> None:
    """Yield to the event loop until `reached()` holds, or give up after a while (the model may be elsewhere)."""
    for _ in range(_REACH_ROUNDS):
        if reached():
            return
        await anyio.lowlevel.checkpoint()
