"""A small application for the SIGTERM test: it runs sub-agent tasks until the process is told to stop.

Run as `python -m tests.sigterm_app`; it prints `ready` once every task is at work, and after SIGTERM
one JSON line: how each task ended.
"""

from __future__ import annotations

import json

import anyio
from pydantic_ai import Agent

from subagents_cancel import (
    Cancelled,
    Completed,
    SubAgentConfig,
    SubAgentManager,
    SubAgentPolicy,
    current_task,
    shutdown_on_signals,
)

from .helpers import Gate, Script, call, text

GRACE_SECONDS = 0.5
CHUNK_SECONDS = 0.02
CHUNKS = 5_000


def _careful() -> tuple[SubAgentConfig, anyio.Event]:
    """Works in chunks and stops between two when asked; then hands back what it has."""
    working = anyio.Event()
    script = Script(
        [call('checkpoint', completed=['sources'], in_progress=['analysis']), call('analyse')],
        on_cancel=text('Completed: sources. In progress: analysis (half done).'),
    )
    agent = Agent(script.model)

    @agent.tool_plain
    async def analyse() -> str:
        """Analyse the sources."""
        working.set()
        task = current_task()
        assert task is not None
        for _ in range(CHUNKS):
            if task.cancel_requested:
                return 'stopped between two chunks'
            await anyio.sleep(CHUNK_SECONDS)  # one chunk of real work
        return 'analysed'

    return SubAgentConfig(name='careful', description='Stops between chunks', agent=agent), working


def _stuck() -> tuple[SubAgentConfig, anyio.Event]:
    """Checkpoints, then waits on a model request that never returns: it never reads the request."""
    gate = Gate()
    script = Script([call('checkpoint', completed=['outline'], findings=['F1']), gate.block_forever()])
    return SubAgentConfig(name='stuck', description='Never reads', model=script.model), gate.reached


def _quick() -> SubAgentConfig:
    return SubAgentConfig(name='quick', description='Answers at once', model=Script([text('quick answer')]).model)


def _describe(manager: SubAgentManager) -> list[dict[str, object]]:
    described: list[dict[str, object]] = []
    for task in manager.tasks():
        entry: dict[str, object] = {'subagent': task.subagent, 'status': task.status.value}
        match task.outcome:
            case Cancelled(mode=mode, escalated=escalated, partial=partial):
                entry |= {
                    'mode': mode,
                    'escalated': escalated,
                    'completed': list(partial.completed),
                    'final_message': str(partial.final_message),
                }
            case Completed(output=output):
                entry['output'] = str(output)
            case _:
                pass
        described.append(entry)
    return described


async def main() -> None:
    careful, careful_working = _careful()
    stuck, stuck_waiting = _stuck()
    policy = SubAgentPolicy(hard_cancel_wait_seconds=2.0, teardown_seconds=2.0)
    async with SubAgentManager([careful, stuck, _quick()], policy=policy) as manager:
        async with shutdown_on_signals([manager], grace_seconds=GRACE_SECONDS) as stop:
            quick = await manager.start('quick', 'Answer')
            await manager.start('careful', 'Research carefully')
            await manager.start('stuck', 'Research')
            await manager.wait([quick.task_id])
            await careful_working.wait()
            await stuck_waiting.wait()
            print('ready', flush=True)  # noqa: T201 - the test reads it
            await anyio.sleep_forever()
        assert stop.report is not None
        report = {
            'signal': stop.signal.name if stop.signal else None,
            'tasks': _describe(manager),
            'stopped_in_grace': len(stop.report.stopped_in_grace),
            'hard_cancelled': len(stop.report.hard_cancelled),
            'unresponsive': len(stop.report.unresponsive),
        }
    report['orphans'] = len(manager.orphans())
    print(json.dumps(report), flush=True)  # noqa: T201 - the test reads it


if __name__ == '__main__':
    anyio.run(main)
