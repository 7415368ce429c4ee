"""Seed 001: the user aborts a "Research Phase" of three sub-agents with one region cancel.

A parent agent starts Market Scan, Competitor Analysis and Patent Search in the background, all in the
cancel region `research`; Patent Search delegates part of its work to a sub-agent of its own (Claims Reader).
Market Scan finishes. Then the user aborts, and the parent cancels the whole region softly with one call:

* the two tasks still running are told to wrap up, and no task of the region can complete any more;
* the cancel reaches Claims Reader first (one level deeper, half the grace window), so Patent Search can
  include its partial results in its own;
* `wait_region` delivers no "complete" set: it says the region was cancelled, and shows what each task had;
* afterwards no task is left running, at any depth.

Every model here is a scripted pydantic-ai `FunctionModel`, so it runs offline in about a second. The parent's
model calls the tools exactly as an LLM would. So that the story prints the same way on every run, the scripted
sub-agents wait for each other at a few points (a real model would simply take its time).

Run it with `python examples/research_region.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import anyio
from pydantic_ai import Agent, RunContext
from pydantic_ai.capabilities import AbstractCapability, ValidatedToolArgs
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturn,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.tools import ToolDefinition

from subagents_cancel import (
    Cancelled,
    Completed,
    SubAgentCapability,
    SubAgentConfig,
    SubAgentManager,
    TaskInfo,
    current_task,
)
from subagents_cancel.messages import CancelRequest
from subagents_cancel.transport import InProcessTransport
from subagents_cancel.wire import WireMessage

START_PROMPT = 'Run the research phase for our smart-lock launch: market, competitors and patents.'
ABORT_PROMPT = 'Abort the research phase: the launch is off.'

aborted = anyio.Event()
"""Set when the first cancel request goes out: the sub-agents' requests in flight then return."""
competitor_waiting = anyio.Event()
claims_waiting = anyio.Event()
region_waited = anyio.Event()
"""Set when the parent calls `wait_region`: the Claims Reader wraps up after it, so the story prints in one order."""


# --- small helpers to script models -------------------------------------------------------------


def call(tool: str, **args: object) -> ModelResponse:
    return ModelResponse(parts=[ToolCallPart(tool, args)])


def say(text: str) -> ModelResponse:
    return ModelResponse(parts=[TextPart(text)])


def responses(messages: Sequence[ModelMessage]) -> int:
    """How many answers the model has given so far: the index of the current request."""
    return sum(isinstance(message, ModelResponse) for message in messages)


def cancel_request(messages: Sequence[ModelMessage]) -> str | None:
    """The CANCEL_REQUEST in the request being answered, if it carries one."""
    last = messages[-1]
    assert isinstance(last, ModelRequest)
    for part in last.parts:
        if isinstance(part, UserPromptPart) and str(part.content).startswith('CANCEL_REQUEST'):
            return str(part.content)
    return None


# --- narration ------------------------------------------------------------------------------------


@dataclass
class Narrator(AbstractCapability[object]):
    """Prints each tool call of the agent it is attached to, and the reply the model gets."""

    who: str
    quiet_until_cancel: bool = False
    """Print nothing until the task this agent runs in is asked to stop."""
    indent: str = ''

    def quiet(self) -> bool:
        """Whether to stay silent now."""
        task = current_task()
        return self.quiet_until_cancel and not (task is not None and task.cancel_requested)

    async def before_tool_execute(
        self, ctx: RunContext[object], *, call: ToolCallPart, tool_def: ToolDefinition, args: ValidatedToolArgs
    ) -> ValidatedToolArgs:
        """Print the call."""
        if not self.quiet():
            shown = ', '.join(f'{name}={value!r}' for name, value in args.items())
            print(f'{self.indent}{self.who} -> {call.tool_name}({shown})')
        if call.tool_name == 'wait_region':
            region_waited.set()
        return args

    async def after_tool_execute(
        self,
        ctx: RunContext[object],
        *,
        call: ToolCallPart,
        tool_def: ToolDefinition,
        args: ValidatedToolArgs,
        result: Any,
    ) -> Any:
        """Print the reply."""
        if not self.quiet():
            if self.quiet_until_cancel:  # the call itself was made before, while it was quiet
                print(f'{self.indent}{self.who} <- {call.tool_name}:')
            raw: object = result
            reply: object = raw.return_value if isinstance(raw, ToolReturn) else raw  # `task` carries its id
            for line in str(reply).splitlines():
                print(f'{self.indent}    | {line}'.rstrip())
        return result


# --- the three research sub-agents, and the one Patent Search delegates to ----------------------


async def market_scan_llm(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    if responses(messages) == 0:
        return call(
            'checkpoint', completed=['market sizing'], findings=['EU smart-lock market: EUR 1.9bn, +11% a year']
        )
    await competitor_waiting.wait()
    await claims_waiting.wait()
    return say('Market scan: EUR 1.9bn in the EU, growing 11% a year; renters are the fastest-growing segment.')


async def competitor_llm(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    if cancel_request(messages):
        return say(
            'Completed: pricing of 4 rivals; feature matrix\nIn progress: positioning summary\n'
            'Not started: nothing\nFindings: Rival A undercuts us by 15%; only Rival B offers an API'
        )
    if responses(messages) == 0:
        return call(
            'checkpoint',
            completed=['pricing of 4 rivals'],
            in_progress=['feature matrix'],
            not_started=['positioning summary'],
            findings=['Rival A undercuts us by 15%'],
        )
    competitor_waiting.set()
    await aborted.wait()  # a long model request; it returns after the abort
    return call(
        'checkpoint',
        completed=['pricing of 4 rivals', 'feature matrix'],
        in_progress=['positioning summary'],
        findings=['only Rival B offers an API'],
    )


async def claims_reader_llm(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    if request := cancel_request(messages):
        print(f'    claims-reader reads: {request}')
        await region_waited.wait()
        return say(
            'Completed: EP 3 141 592\nIn progress: US 10 000 001\nNot started: CN 1 234 567\n'
            'Findings: EP 3 141 592 claims NFC unlocking from a phone'
        )
    if responses(messages) == 0:
        return call(
            'checkpoint',
            completed=['EP 3 141 592'],
            in_progress=['US 10 000 001'],
            not_started=['CN 1 234 567'],
            findings=['EP 3 141 592 claims NFC unlocking from a phone'],
        )
    claims_waiting.set()
    await aborted.wait()
    return call('checkpoint', completed=['EP 3 141 592'], in_progress=['US 10 000 001'], not_started=['CN 1 234 567'])


async def patent_search_llm(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    if request := cancel_request(messages):
        print(f'    patent-search reads: {request}')
        return say(
            'Completed: prior-art query\nIn progress: claims review (Claims Reader stopped after 1 of 3 patents)\n'
            'Not started: freedom-to-operate memo\nFindings: EP 3 141 592 claims NFC unlocking from a phone'
        )
    if responses(messages) == 0:  # mode 'sync': the call returns when Claims Reader ends
        return call('task', description='Read the claims of the 3 closest patents', subagent_type='claims-reader')
    return call('wait_tasks')


claims_reader = SubAgentConfig(
    name='claims-reader', description='Reads patent claims', model=FunctionModel(claims_reader_llm)
)
patent_search_agent = Agent(
    FunctionModel(patent_search_llm),
    name='patent-search',
    # nested: it has a sub-agent of its own; its narrator speaks up once it is asked to stop
    capabilities=[
        SubAgentCapability(subagents=[claims_reader]),
        Narrator('patent-search', quiet_until_cancel=True, indent='    '),
    ],
)
RESEARCH = [
    SubAgentConfig(name='market-scan', description='Sizes the market', model=FunctionModel(market_scan_llm)),
    SubAgentConfig(name='competitor-analysis', description='Studies rivals', model=FunctionModel(competitor_llm)),
    SubAgentConfig(name='patent-search', description='Searches prior art', agent=patent_search_agent),
]


# --- the parent, scripted as an LLM would call the tools -----------------------------------------


def since_last_prompt(messages: Sequence[ModelMessage]) -> tuple[str, int]:
    """The user's latest prompt, and how many tool results the parent has seen since."""
    prompt, seen = '', 0
    for message in messages:
        if isinstance(message, ModelRequest):
            for part in message.parts:
                if isinstance(part, UserPromptPart):
                    prompt, seen = str(part.content), 0
                elif isinstance(part, ToolReturnPart):
                    seen += 1
    return prompt, seen


def start_research(subagent: str, description: str) -> ModelResponse:
    return call('task', description=description, subagent_type=subagent, mode='async', region='research')


PLANS: dict[str, list[ModelResponse]] = {
    START_PROMPT: [
        start_research('market-scan', 'Size the EU smart-lock market'),
        start_research('competitor-analysis', 'Compare the 4 main rivals'),
        start_research('patent-search', 'Search prior art on phone unlocking'),
        call('wait_tasks', wait_for='any'),
        say('The research phase is under way: the market scan is done, the other two are still working.'),
    ],
    ABORT_PROMPT: [
        call('soft_cancel_region', region='research', reason='the user aborted the research phase'),
        call('wait_region', region='research'),
        call('list_active_tasks'),
        say('Research aborted. Nothing is running any more; the partial findings are kept above.'),
    ],
}


async def parent_llm(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    prompt, seen = since_last_prompt(messages)
    return PLANS[prompt][seen]


def show_cancel_requests(address: str, message: WireMessage) -> None:
    if isinstance(message, CancelRequest):
        print(f'    transport: CANCEL_REQUEST ({message.mode}, {message.grace_seconds:g}s grace) -> {message.task_id}')
        aborted.set()


def still_running(tasks: Sequence[TaskInfo]) -> int:
    """Tasks that have not ended, counting the tasks of nested sub-agents too."""
    return sum((not task.is_terminal) + still_running(task.subtasks) for task in tasks)


def summary(task: TaskInfo) -> str:
    match task.outcome:
        case Completed():
            return f'{task.subagent}: COMPLETED before the abort; its result is kept'
        case Cancelled(mode=mode, reason=reason, partial=partial):
            wrap_up = 'and a wrap-up message' if partial.read_request and partial.final_message else 'only'
            return (
                f'{task.subagent}: CANCELLED ({mode}, reason {reason.kind!r}); partial result: '
                f'{partial.checkpoints} checkpoint(s) {wrap_up}'
            )
        case _:
            return f'{task.subagent}: {task.status.name}'


async def main() -> int:
    transport = InProcessTransport()
    transport.subscribe(show_cancel_requests)
    async with (
        transport,
        SubAgentManager(RESEARCH, transport=transport) as manager,
    ):  # the application owns the tasks across both turns
        parent = Agent(
            FunctionModel(parent_llm), capabilities=[SubAgentCapability(manager=manager), Narrator('parent')]
        )
        print(f'user >> {START_PROMPT}')
        first = await parent.run(START_PROMPT)
        print(f'parent << {first.output}\n')

        print(f'user >> {ABORT_PROMPT}')
        second = await parent.run(ABORT_PROMPT, message_history=first.all_messages())
        print(f'parent << {second.output}\n')

        for task in manager.region_tasks('research'):
            print(summary(task))
        running = still_running(manager.active_tasks())
    print(f'tasks still running: {running}; orphans after teardown: {len(manager.orphans())}')
    return 0 if running == 0 and not manager.orphans() else 1


if __name__ == '__main__':
    raise SystemExit(anyio.run(main))
