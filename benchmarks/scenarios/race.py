"""Cancel racing completion: does an answer that arrived first win, and is an answer ever lost?

In each trial the sub-agent's one model request gives its final answer, and the parent's model
soft- or hard-cancels the task at a random point around that answer's arrival: the parent's model
calls the cancel tool `lead` turns of the event loop after the answer left the sub-agent's model, or,
with a negative `lead`, the answer is held in the model until the cancel tool has started and `-lead - 1`
turns have passed (the answer arrives just before, while or just after the library handles the cancel).
Then the task is followed to its end and the parent asks for its status.

Every count comes from facts seen outside the library, defined the same way for each one:

* *answer arrived first*: the answer left the sub-agent's model before the library's cancel tool started;
* *told cancelled* / *told completed*: what the reply to the status call after the task's end tells the
  parent (the adapter knows the words its library uses); *told neither* counts replies that say neither;
* *cancelled with the full answer*: the answer arrived first and the parent was told cancelled;
* *answer lost*: the answer arrived (at any time) and its text is in nothing the parent received
  afterwards: neither the cancel reply, nor the status reply, nor a later message;
* *requests after the answer*: sub-agent model requests that started after the answer arrived.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart

from adapters import Adapter, Options
from benchkit.parent import Conversation, ToolTimer, converse
from benchkit.stats import Size, by_size
from benchkit.subagent import PARTIAL_MARKER, build_agent, cancel_notice_in_request

LEADS = (range(-16, 0), range(0, 6), range(6, 41))
"""Each trial picks one of these ranges of `lead` (turns of the event loop), then a `lead` in it, uniformly.

The first holds the answer until the cancel tool has started (and 0-15 turns more): the library's cancel
and the answer's arrival interleave closely. The second sends the cancel right after the answer arrived, so it lands
while the library processes it; the third later, mostly after the task ended."""
GIVE_UP_SECONDS = 10.0
"""A task not done this long after the cancel is stopped from outside (and counted as not stopped)."""
SEED = 11

Mode = Literal['soft', 'hard']


@dataclass
class Answering:
    """A sub-agent whose first model request is its final answer, sent once `go` is set."""

    answer: str
    go: anyio.Event = field(default_factory=anyio.Event)
    request_starts: list[float] = field(default_factory=list[float])
    arrived_at: float | None = None
    arrived: anyio.Event = field(default_factory=anyio.Event)

    async def respond(self, messages: list[ModelMessage]) -> ModelResponse:
        self.request_starts.append(time.perf_counter())
        if cancel_notice_in_request(messages):
            return ModelResponse(parts=[TextPart(f'{PARTIAL_MARKER}: wrapping up')])
        await self.go.wait()
        if self.arrived_at is None:
            self.arrived_at = time.perf_counter()
            self.arrived.set()
        return ModelResponse(parts=[TextPart(self.answer)])

    def requests_after_answer(self) -> int:
        arrived = self.arrived_at
        return 0 if arrived is None else sum(start > arrived for start in self.request_starts)


async def _turns(count: int) -> None:
    for _ in range(count):
        await anyio.lowlevel.checkpoint()


async def _one(adapter: Adapter, mode: Mode, lead: int, number: int) -> dict[str, Any]:
    """One trial: start the task, cancel it `lead` turns around its answer, follow it, and read what the parent got."""
    sub = Answering(answer=f'FINAL-ANSWER-{number}: the full report')
    cancel_call = adapter.soft_cancel('') if mode == 'soft' else adapter.hard_cancel('')
    cancel_started = anyio.Event()

    def starting(tool_name: str) -> None:
        if tool_name == cancel_call.tool_name:
            cancel_started.set()
            if lead == -1:
                sub.go.set()  # the answer is on its way the moment the library's cancel code begins

    timer = ToolTimer(starting=starting)
    conversation = Conversation()

    async def release_after_the_cancel_started() -> None:
        await cancel_started.wait()
        await _turns(-lead - 1)
        sub.go.set()

    async def script() -> dict[str, Any]:
        await conversation.opened()
        (reply,) = await conversation.call(adapter.start('Write the report.', background=True))
        task_id = adapter.task_id(reply)
        (task,) = adapter.hosting_tasks([task_id])
        texts: list[str] = []
        async with anyio.create_task_group() as group:
            if lead < 0:
                group.start_soon(release_after_the_cancel_started)
            else:
                sub.go.set()
                await sub.arrived.wait()
                await _turns(lead)
            call = adapter.soft_cancel(task_id) if mode == 'soft' else adapter.hard_cancel(task_id)
            texts += await conversation.call(call)
            sub.go.set()
        done, _ = await asyncio.wait([task], timeout=GIVE_UP_SECONDS)
        if not done:
            task.cancel()
            await asyncio.wait([task])
        status = await conversation.call(adapter.status(task_id))
        texts += status
        conversation.finish()
        return {
            'texts': texts,
            'status': status,
            'stopped': bool(done),
            'cancel_started': timer.last(cancel_call.tool_name).started,
        }

    subagent = build_agent(sub.respond)
    async with adapter.parent(conversation.model, subagent, timer, Options()) as parent:
        seen = await converse(parent.run, script)
    texts = [*seen['texts'], *conversation.late]
    arrived = sub.arrived_at is not None
    told = adapter.told(seen['status'])
    return {
        'lead': lead,
        'arrived': arrived,
        'answer_first': arrived and sub.arrived_at < seen['cancel_started'],
        'told': told,
        'answer_lost': arrived and not any(sub.answer in text for text in texts),
        'requests_after_answer': sub.requests_after_answer(),
        'stopped': seen['stopped'],
    }


def _summary(trials: list[dict[str, Any]]) -> dict[str, Any]:
    first = [trial for trial in trials if trial['answer_first']]
    return {
        'trials': len(trials),
        'answer_arrived': sum(trial['arrived'] for trial in trials),
        'answer_first': len(first),
        'told_cancelled': sum(trial['told'] == 'cancelled' for trial in trials),
        'told_completed': sum(trial['told'] == 'completed' for trial in trials),
        'told_neither': sum(trial['told'] is None for trial in trials),
        'cancelled_with_full_answer': sum(trial['told'] == 'cancelled' for trial in first),
        'answer_lost': sum(trial['answer_lost'] for trial in trials),
        'requests_after_answer': sum(trial['requests_after_answer'] for trial in trials),
        'trials_with_requests_after_answer': sum(trial['requests_after_answer'] > 0 for trial in trials),
        'not_stopped': sum(not trial['stopped'] for trial in trials),
    }


async def run(adapter: Adapter, size: Size, param: str) -> dict[str, Any]:
    """Soft and hard trials (`param` `soft` or `hard` runs only one kind)."""
    rng = random.Random(SEED)
    counts: dict[Mode, int] = {'soft': by_size(size, 8, 60, 250), 'hard': by_size(size, 6, 40, 175)}
    result: dict[str, Any] = {}
    for mode in ('soft', 'hard'):
        if param and param != mode:
            continue
        leads = [rng.choice(rng.choice(LEADS)) for _ in range(counts[mode])]
        trials = [await _one(adapter, mode, lead, number) for number, lead in enumerate(leads)]
        result[mode] = _summary(trials)
    return result
