"""The sub-agents of `temporal_cancel.py`, as the benchmark's worker processes and its owner both load them.

`python -m subagents_cancel worker --subagents benchkit.temporal_agents:SUBAGENTS` (from `benchmarks/`) runs them
on a worker; the benchmark runs the same configs in process for the figures beside. Their models are
`FunctionModel`s that note what they see, with the time (`time.monotonic()`, one clock for every process of the
machine), through the sink: in a worker a line on its standard output that the benchmark reads, in process a call.

* `blocker`: its model request never answers; it notes `called` when it starts and `stopped` when it is cancelled.
* `stepper`: each model request takes `STEP_SECONDS` and asks for a checkpoint; the request that carries the
  cancellation notice is noted `acknowledged` and answered at once with a wrap-up.

A task's description carries its token (`[trial=...]`), which names it in every note.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable

import anyio
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, TextPart, ToolCallPart

from subagents_cancel import SubAgentConfig

from .subagent import cancel_notice_in_request, function_model

__all__ = ('LINE_PREFIX', 'STEP_SECONDS', 'SUBAGENTS', 'Note', 'describe', 'parse_line', 'report_to')

STEP_SECONDS = 0.2
LINE_PREFIX = 'BENCH-NOTE'
"""Opens every note a worker prints: `BENCH-NOTE <kind> <token> <monotonic seconds>`."""

Note = Callable[[str, str, float], None]
"""Where a note goes: `(kind, token, at)`."""

_TOKEN = re.compile(r'\[trial=([\w-]+)\]')


def _print_note(kind: str, token: str, at: float) -> None:
    sys.stdout.write(f'{LINE_PREFIX} {kind} {token} {at!r}\n')
    sys.stdout.flush()


_sink: list[Note] = [_print_note]


def report_to(sink: Note) -> None:
    """Send the notes of the models in this process to `sink` (by default, they are printed)."""
    _sink[0] = sink


def parse_line(line: str) -> tuple[str, str, float] | None:
    """The note a worker printed on `line`, or `None` for any other line."""
    parts = line.split()
    if len(parts) != 4 or parts[0] != LINE_PREFIX:
        return None
    return parts[1], parts[2], float(parts[3])


def describe(token: str) -> str:
    """A task description that names `token` to the model."""
    return f'Work until stopped. [trial={token}]'


def _note(kind: str, messages: list[ModelMessage]) -> None:
    first = messages[0]
    found = _TOKEN.search(str(first.parts)) if isinstance(first, ModelRequest) else None
    _sink[0](kind, found.group(1) if found else '?', time.monotonic())


async def _block(messages: list[ModelMessage]) -> ModelResponse:
    _note('called', messages)
    try:
        await anyio.sleep_forever()
    finally:
        _note('stopped', messages)
    raise AssertionError('unreachable')


async def _step(messages: list[ModelMessage]) -> ModelResponse:
    if cancel_notice_in_request(messages):
        _note('acknowledged', messages)
        return ModelResponse(parts=[TextPart('Completed: some steps. Not started: the rest.')])
    _note('called', messages)
    await anyio.sleep(STEP_SECONDS)
    return ModelResponse(parts=[ToolCallPart('checkpoint', {'completed': ['a step']})])


SUBAGENTS = [
    SubAgentConfig(name='blocker', description='Its model request never answers', model=function_model(_block)),
    SubAgentConfig(name='stepper', description='Works in 200 ms model steps', model=function_model(_step)),
]
