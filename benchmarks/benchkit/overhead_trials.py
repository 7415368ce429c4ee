"""The library's own overhead, each figure beside pydantic-ai alone doing the same thing in the same process.

Every sub-agent is a pydantic-ai `Agent` on a scripted `FunctionModel`; *pydantic-ai alone* drives the same
agent with `agent.iter()` / `agent.run()` and stops it with `AgentRun.cancel()`, so a ratio is what the library
adds on top of the framework's own floor. Each function returns (wall, CPU) milliseconds, CPU being the
process's (`time.process_time`), which moves less than wall time on a shared machine.

* hard cancel: a run blocked in its model request; from the cancel to the run having unwound (the library's
  `hard_cancel()` returns then). The library's side is `seam_trials.hard_cancels`.
* region cancel: N runs blocked in their model requests, all stopped; the library cancels one region
  (`seam_trials.region_cancel`), pydantic-ai alone calls `AgentRun.cancel()` on each run.
* foreground delegation: a trivial sub-agent (one model request) run by the parent's `task` tool in sync
  mode (an agent as a user builds it, and the same built with `TaskCapability`), timed from the tool starting
  to its reply, against `agent.run()` of the same agent; the floor of
  any delegation is a plain tool that awaits `agent.run()`, timed the same way, and the floor of one whose
  sub-agent run has a capability (as the library's has) is that plain tool adding an empty capability to the run
  (or, for an agent built with `TaskCapability`, awaiting an agent built with an empty capability).
* tool calls that only read or request: `check_task`, `list_active_tasks`, `answer_subagent` and
  `soft_cancel_task` on one task, beside a plain tool that returns at once, and a plain tool that makes a soft
  cancel's round trip across the bare seam (`seam_floor`), timed the same way.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

import anyio
from pydantic_ai import Agent, RunCancelled, UsageLimits
from pydantic_ai.capabilities import AbstractCapability
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.run import AgentRun

from subagents_cancel import SubAgentCapability, SubAgentConfig, TaskCapability

from . import seam_floor
from .parent import Conversation, ToolTimer, converse
from .seam_trials import Clocks
from .subagent import Blocking, answer_at_once, build_agent, cancel_notice_in_request, function_model

Timings = tuple[list[float], list[float]]
"""(wall, CPU) milliseconds of each trial."""
WARMUP = 10
_TASK_ID = re.compile(r'Task started with ID: (\S+) ')
_READ_TOOLS = ('check_task', 'list_active_tasks', 'answer_subagent', 'soft_cancel_task')
BARE_SEAM_SOFT_CANCEL = 'soft_cancel_across_the_bare_seam'
"""A plain tool that makes a soft cancel's round trip across `seam_floor.SeamFloor`, the least a receipt costs."""


async def _drive(agent: Agent[None, str], runs: list[AgentRun[None, str]]) -> None:
    """Run `agent` to its end, keeping its run in `runs`; a cancelled run ends quietly."""
    try:
        async with agent.iter('Wait.') as run:
            runs.append(run)
            async for _ in run:
                pass
    except RunCancelled:
        pass


async def alone_hard_cancels(trials: int) -> Timings:
    """(wall, CPU) ms of `trials` `AgentRun.cancel()` calls on a run blocked in its model request, until it unwound."""
    blocking = Blocking()
    agent = Agent(function_model(blocking.respond))
    wall: list[float] = []
    cpu: list[float] = []
    for _ in range(WARMUP + trials):
        blocking.reset()
        runs: list[AgentRun[None, str]] = []
        started = Clocks.now()
        async with anyio.create_task_group() as group:
            group.start_soon(_drive, agent, runs)
            await blocking.reached.wait()
            started = Clocks.now()
            runs[0].cancel()
        elapsed = started.ms_until(Clocks.now())
        wall.append(elapsed[0])
        cpu.append(elapsed[1])
    assert blocking.still_running == 0
    return wall[WARMUP:], cpu[WARMUP:]


async def alone_region_cancel(size: int) -> tuple[float, float, int]:
    """(wall, CPU) ms of cancelling `size` blocked runs with `AgentRun.cancel()` until all unwound; left running."""
    blocking = Blocking(expected=size)
    agent = Agent(function_model(blocking.respond))
    runs: list[AgentRun[None, str]] = []
    started = Clocks.now()
    async with anyio.create_task_group() as group:
        for _ in range(size):
            group.start_soon(_drive, agent, runs)
        await blocking.reached.wait()
        started = Clocks.now()
        for run in runs:
            run.cancel()
    wall, cpu = started.ms_until(Clocks.now())
    return wall, cpu, blocking.still_running


def _tool_timings(timer: ToolTimer, tool_name: str) -> Timings:
    timings = [timing for timing in timer.timings if timing.tool_name == tool_name][WARMUP:]
    return [(timing.replied - timing.started) * 1e3 for timing in timings], [
        timing.cpu_seconds * 1e3 for timing in timings
    ]


CALLS_PER_RUN = 20
"""Parent tool calls per parent run: pydantic-ai's work per model request grows with the run's history, so the
runs are kept short (the tool timings do not include it, but the benchmark's own time would grow as its square)."""


async def _in_parent_runs(
    parent_for: Callable[[Conversation], Agent[None, str]], calls: int, call: Callable[[Conversation], Awaitable[None]]
) -> None:
    """Make `calls` calls of `call`, at most `CALLS_PER_RUN` in each run of a fresh parent agent."""
    for first in range(0, calls, CALLS_PER_RUN):
        await _parent_run(parent_for, min(CALLS_PER_RUN, calls - first), call)


async def _parent_run(
    parent_for: Callable[[Conversation], Agent[None, str]], calls: int, call: Callable[[Conversation], Awaitable[None]]
) -> None:
    conversation = Conversation()
    parent = parent_for(conversation)

    async def script() -> None:
        await conversation.opened()
        for _ in range(calls):
            await call(conversation)
        conversation.finish()

    async def run_parent() -> None:
        await parent.run('Go.', usage_limits=UsageLimits(request_limit=None))

    await converse(run_parent, script)


async def direct_runs(count: int) -> Timings:
    """(wall, CPU) ms of `agent.run()` of the trivial sub-agent, one at a time."""
    agent = build_agent(answer_at_once)
    wall: list[float] = []
    cpu: list[float] = []
    for _ in range(WARMUP + count):
        started = Clocks.now()
        await agent.run('Do the job.')
        elapsed = started.ms_until(Clocks.now())
        wall.append(elapsed[0])
        cpu.append(elapsed[1])
    return wall[WARMUP:], cpu[WARMUP:]


@dataclass
class _NoHooks(AbstractCapability[None]):
    """A capability that does nothing: what pydantic-ai charges a run for having one."""


Delegation = Literal[
    'plain',
    'plain with a capability',
    'plain, agent built with a capability',
    'task',
    'task, agent built with TaskCapability',
]
"""How the parent delegates: a plain tool awaiting `agent.run()` (with an empty capability added to the run, or to
the agent as it is built, or neither), or the library's `task` tool in sync mode (to an agent of the user's, built
with `TaskCapability` or not)."""


async def delegations(count: int, way: Delegation) -> Timings:
    """(wall, CPU) ms of `count` foreground delegations made `way`."""
    built_with: list[AbstractCapability[None]] = []
    if way.endswith('TaskCapability'):
        built_with.append(TaskCapability())
    elif way.endswith('built with a capability'):
        built_with.append(_NoHooks())
    subagent = build_agent(answer_at_once, capabilities=built_with)
    timer = ToolTimer()
    plain = way.startswith('plain')
    capabilities = [_NoHooks()] if way == 'plain with a capability' else []

    async def delegate(description: str) -> str:
        """Run the worker on `description` and return its answer."""
        return (await subagent.run(description, capabilities=capabilities)).output

    config = SubAgentConfig(name='worker', description='Does the job', agent=subagent)
    if plain:
        call = ToolCallPart('delegate', {'description': 'Do the job.'})
    else:
        call = ToolCallPart('task', {'description': 'Do the job.', 'subagent_type': 'worker', 'mode': 'sync'})

    def parent_for(conversation: Conversation) -> Agent[None, str]:
        if plain:
            return Agent(conversation.model, tools=[delegate], capabilities=[timer])
        return Agent(conversation.model, capabilities=[SubAgentCapability(subagents=[config]), timer])

    async def one(conversation: Conversation) -> None:
        (reply,) = await conversation.call(call)
        assert 'done' in reply, reply

    await _in_parent_runs(parent_for, WARMUP + count, one)
    return _tool_timings(timer, call.tool_name)


@dataclass
class _Asking:
    """A sub-agent that asks its parent a question, then works (blocked) until told to stop, then wraps up."""

    asking: anyio.Event = field(default_factory=anyio.Event)
    working: anyio.Event = field(default_factory=anyio.Event)
    release: anyio.Event = field(default_factory=anyio.Event)
    wrapped_up: anyio.Event = field(default_factory=anyio.Event)

    def reset(self) -> None:
        self.asking, self.working, self.release, self.wrapped_up = (anyio.Event() for _ in range(4))

    async def respond(self, messages: list[ModelMessage]) -> ModelResponse:
        if cancel_notice_in_request(messages):
            self.wrapped_up.set()
            return ModelResponse(parts=[TextPart('Completed: nothing. Findings: none.')])
        if not any(isinstance(part, ToolReturnPart) for message in messages for part in message.parts):
            self.asking.set()
            return ModelResponse(parts=[ToolCallPart('ask_parent', {'question': 'Which source first?'})])
        self.working.set()
        await self.release.wait()
        return ModelResponse(parts=[ToolCallPart('checkpoint', {'completed': ['step 1']})])


async def read_tool_calls(trials: int) -> dict[str, Timings]:
    """(wall, CPU) ms of each tool that only reads or requests, and of a plain tool (`noop`), on one live task."""
    asking = _Asking()
    config = SubAgentConfig(name='worker', description='Does the job', model=function_model(asking.respond))
    timer = ToolTimer()
    blocking = Blocking()

    async def noop() -> str:
        """Do nothing."""
        return 'ok'

    async def soft_cancel_across_the_bare_seam() -> str:
        """Tell a run through the floor of the seam, and wait for the receipt."""
        await floor.soft_cancel(floor_task)
        return 'requested'

    def parent_for(conversation: Conversation) -> Agent[None, str]:
        return Agent(
            conversation.model,
            tools=[noop, soft_cancel_across_the_bare_seam],
            capabilities=[SubAgentCapability(subagents=[config]), timer],
        )

    async def one(conversation: Conversation) -> None:
        asking.reset()
        (reply,) = await conversation.call(
            ToolCallPart('task', {'description': 'Do the job.', 'subagent_type': 'worker', 'mode': 'async'})
        )
        match = _TASK_ID.search(reply)
        assert match is not None, reply
        task_id = {'task_id': match.group(1)}
        await asking.asking.wait()
        await anyio.wait_all_tasks_blocked()
        await conversation.call(ToolCallPart('noop', {}))
        await conversation.call(ToolCallPart(BARE_SEAM_SOFT_CANCEL, {}))
        await conversation.call(ToolCallPart('check_task', task_id))
        await conversation.call(ToolCallPart('list_active_tasks', {}))
        await conversation.call(ToolCallPart('answer_subagent', {**task_id, 'answer': 'The first one.'}))
        await asking.working.wait()
        await conversation.call(ToolCallPart('soft_cancel_task', task_id))
        asking.release.set()
        await asking.wrapped_up.wait()
        await anyio.wait_all_tasks_blocked()

    async with seam_floor.seam_floor() as floor:
        floor_task = floor.start(Agent(function_model(blocking.respond)))
        await blocking.reached.wait()
        await _in_parent_runs(parent_for, WARMUP + trials, one)
    return {name: _tool_timings(timer, name) for name in ('noop', BARE_SEAM_SOFT_CANCEL, *_READ_TOOLS)}
