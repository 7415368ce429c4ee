"""Seed 002: when the Report Generator is cancelled, a Quick Summary takes over and delivers in its place.

`report-generator` names `quick-summary` as its fallback. Three short scenes, each a parent run whose model
calls the tools as an LLM would:

1. **Cancelled by the parent.** The user needs something now; the parent soft-cancels the report. The generator
   hands back what it has, the Quick Summary starts with the original request and that partial result, and its
   output is delivered as the task's result, marked as coming from the fallback.
2. **Cancelled by a deadline.** The report gets a time budget, and the generator is stuck in a slow tool when it
   runs out. The deadline cancels softly (reason `deadline`); the tool does not return within the grace window, so
   the task is stopped, and the Quick Summary takes over from the generator's checkpoints.
3. **The generator wins the race.** The report is finished when the cancel arrives: the cancel comes too late
   (the reply says the report had finished first, and shows it), and the Quick Summary never starts.

Every model is a scripted pydantic-ai `FunctionModel`; it runs offline in about two seconds.

Run it with `python examples/report_fallback.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
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

from subagents_cancel import SubAgentCapability, SubAgentConfig, SubAgentManager, TaskStatus
from subagents_cancel.messages import CancelRequest, StatusChanged
from subagents_cancel.transport import InProcessTransport
from subagents_cancel.wire import WireMessage

REPORT = 'Write the Q3 sales report for the board'


@dataclass
class Cues:
    """Where the scripted models of one scene wait for each other, so the story prints the same on every run."""

    scene: int
    generator_busy: anyio.Event = field(default_factory=anyio.Event)
    """The generator has checkpointed and works on the next part."""
    cancel_sent: anyio.Event = field(default_factory=anyio.Event)
    report_done: anyio.Event = field(default_factory=anyio.Event)


cues = Cues(scene=0)


# --- small helpers to script models -------------------------------------------------------------


def call(tool: str, **args: object) -> ModelResponse:
    return ModelResponse(parts=[ToolCallPart(tool, args)])


def say(text: str) -> ModelResponse:
    return ModelResponse(parts=[TextPart(text)])


def prompts(messages: Sequence[ModelMessage]) -> list[str]:
    """The user prompts in `messages`: the task's description first, then any CANCEL_REQUEST."""
    return [
        str(part.content)
        for message in messages
        if isinstance(message, ModelRequest)
        for part in message.parts
        if isinstance(part, UserPromptPart)
    ]


def tool_replies(messages: Sequence[ModelMessage]) -> list[str]:
    return [
        str(part.content)
        for message in messages
        if isinstance(message, ModelRequest)
        for part in message.parts
        if isinstance(part, ToolReturnPart)
    ]


# --- the sub-agents ---------------------------------------------------------------------------------


async def generator_llm(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """Checkpoints the data pull, then works on the charts; wraps up when asked to stop."""
    if any(prompt.startswith('CANCEL_REQUEST') for prompt in prompts(messages)):
        return say('Completed: data pull\nIn progress: charts\nNot started: commentary\nFindings: Q3 revenue EUR 4.2M')
    step = sum(isinstance(message, ModelResponse) for message in messages)
    if step == 0:
        return call(
            'checkpoint',
            completed=['data pull'],
            in_progress=['charts'],
            not_started=['commentary'],
            findings=['Q3 revenue EUR 4.2M, +8% on Q2; EMEA grew fastest'],
        )
    if cues.scene == 2:
        return call('render_charts')  # a slow tool
    if cues.scene == 1 and step == 1:
        cues.generator_busy.set()
        await cues.cancel_sent.wait()  # a long model request that returns after the cancel
        return call('checkpoint', completed=['data pull'], in_progress=['charts'], not_started=['commentary'])
    return say('Q3 report: revenue EUR 4.2M (+8%); EMEA +14%, Americas +5%, APAC flat. Charts and commentary attached.')


async def render_charts() -> str:
    """Render the report's twelve charts (slow)."""
    await anyio.sleep_forever()  # only a cancel ends it
    raise AssertionError('unreachable')


async def quick_summary_llm(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """Summarises from whatever the cancelled task handed over."""
    prompt = prompts(messages)[0]
    print(f'    quick-summary starts; its prompt:\n{indent(prompt, "    : ")}')
    if 'EUR 4.2M' in prompt:
        return say('Quick summary: Q3 revenue EUR 4.2M, +8% on Q2, with EMEA growing fastest. Charts to follow.')
    return say('Quick summary: the report could not be prepared in time; no figures were available yet.')


generator_agent = Agent(FunctionModel(generator_llm), name='report-generator', tools=[render_charts])
REPORTING = [
    SubAgentConfig(
        name='report-generator',
        description='Writes the full quarterly report',
        agent=generator_agent,
        fallback='quick-summary',
        grace_seconds=1,
    ),
    SubAgentConfig(
        name='quick-summary', description='Summarises in one paragraph', model=FunctionModel(quick_summary_llm)
    ),
]


# --- the parent, scripted as an LLM would call the tools -----------------------------------------


async def parent_llm(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    step = len(tool_replies(messages))
    if cues.scene == 2:  # mode 'sync' with a time budget: the call returns with the result
        if step == 0:
            return call('task', description=REPORT, subagent_type='report-generator', timeout_seconds=0.3)
        return say('The full report ran out of time; the quick summary above stands in for it.')
    if step == 0:
        return call('task', description=REPORT, subagent_type='report-generator', mode='async')
    (task_id,) = SubAgentCapability.started_tasks(messages)
    if step == 1:
        # The user clicks "just give me a summary": in scene 1 while the generator works, in scene 3 just after
        # the report was finished.
        await (cues.generator_busy if cues.scene == 1 else cues.report_done).wait()
        return call('soft_cancel_task', task_id=task_id, reason='the board meets now; a summary will do')
    if step == 2:
        return call('wait_tasks', task_ids=[task_id])
    return say('Done; the result is above.')


# --- narration ------------------------------------------------------------------------------------


def indent(text: str, prefix: str) -> str:
    return '\n'.join(f'{prefix}{line}'.rstrip() for line in text.splitlines())


@dataclass
class Narrator(AbstractCapability[object]):
    """Prints each tool call of the parent, and the reply its model gets."""

    async def before_tool_execute(
        self, ctx: RunContext[object], *, call: ToolCallPart, tool_def: ToolDefinition, args: ValidatedToolArgs
    ) -> ValidatedToolArgs:
        """Print the call."""
        print(f'parent -> {call.tool_name}({", ".join(f"{name}={value!r}" for name, value in args.items())})')
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
        raw: object = result
        reply: object = raw.return_value if isinstance(raw, ToolReturn) else raw  # `task` carries its id
        print(indent(str(reply), '    | '))
        return result


def watch(address: str, message: WireMessage) -> None:
    match message:
        case CancelRequest(mode=mode, reason=reason, grace_seconds=grace):
            print(
                f'    transport: CANCEL_REQUEST ({mode}, reason {reason.kind!r}, {grace:g}s grace) -> {message.task_id}'
            )
            cues.cancel_sent.set()
        case StatusChanged(new=new) if new.status is TaskStatus.COMPLETED and message.task_id.startswith('report'):
            cues.report_done.set()
        case _:
            pass


async def play(scene: int, title: str) -> bool:
    """Play one scene; return whether nothing was left running after it."""
    global cues
    cues = Cues(scene=scene)
    print(f'\n=== Scene {scene}: {title}')
    transport = InProcessTransport()
    transport.subscribe(watch)
    async with transport, SubAgentManager(REPORTING, transport=transport) as manager:
        parent = Agent(FunctionModel(parent_llm), capabilities=[SubAgentCapability(manager=manager), Narrator()])
        result = await parent.run(title)
        print(f'parent << {result.output}')
        (report,) = (task for task in manager.tasks() if task.subagent == 'report-generator')
        fallback = report.fallback
        print(f'python: {report.task_id} is {report.status.name}', end='')
        if fallback is None:
            summaries = sum(task.subagent == 'quick-summary' for task in manager.tasks())
            print(f'; quick-summary tasks started: {summaries}')
        else:
            assert fallback.fallback_for == report.task_id
            print(f'; its fallback {fallback.task_id} is {fallback.status.name}, fallback_for={report.task_id}')
        running = [task for task in manager.tasks() if not task.is_terminal]
    print(f'tasks still running: {len(running)}')
    return not running


async def main() -> int:
    clean = [
        await play(1, 'the parent cancels the report'),
        await play(2, 'the report runs out of time'),
        await play(3, 'the report is done before the cancel'),
    ]
    return 0 if all(clean) else 1


if __name__ == '__main__':
    raise SystemExit(anyio.run(main))
