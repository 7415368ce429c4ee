"""An owner whose sub-agent tasks run on a Temporal worker: start two, soft-cancel one, hard-cancel the other.

The app is the tasks' owner (a `SubAgentManager`); the tasks run on whichever worker serves the task queue, in
another process or on another machine. The only difference from an owner that runs its tasks itself is the
transport it is given, a `TemporalTransport`. The app:

* starts `researcher` and `crawler` (each task is a workflow, its id the task id);
* waits until the researcher's first checkpoint has reached it, then soft-cancels it: the step in flight on the
  worker is cut short, the researcher reads the CANCEL_REQUEST and hands back its partial results;
* waits for the crawler's checkpoint, then hard-cancels it while its request or its slow tool is in flight: the
  call returns once the worker's activity has really stopped;
* prints what it got, and exits with status 1 if a task is still running after its owner has closed.

Run a dev server (`temporal server start-dev`) and a worker first, then this, from the repository's root:

    python -m subagents_cancel worker --task-queue research --subagents examples.temporal.subagents:SUBAGENTS
    python -m examples.temporal.app
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

import anyio

from subagents_cancel import Cancelled, CancelReason, SubAgentManager, TaskInfo
from subagents_cancel.messages import CheckpointRecorded
from subagents_cancel.temporal import TemporalTransport, connect
from subagents_cancel.wire import WireMessage

from .subagents import SUBAGENTS


class Checkpoints:
    """An event per task, set when the task's first checkpoint reaches this process."""

    def __init__(self) -> None:
        self._events: dict[str, anyio.Event] = {}

    def of(self, task_id: str) -> anyio.Event:
        """The event of `task_id`."""
        return self._events.setdefault(task_id, anyio.Event())

    def observe(self, address: str, message: WireMessage) -> None:
        """Watch the transport: a checkpoint's report sets its task's event."""
        if isinstance(message, CheckpointRecorded):
            self.of(message.task_id).set()


def show(info: TaskInfo) -> None:
    """Print how a task ended and what it handed back."""
    outcome = info.outcome
    assert isinstance(outcome, Cancelled), f'{info.task_id} ended {info.status.name}'
    print(f'{info.task_id}: {info.status.name} ({outcome.mode}, reason {outcome.reason.kind!r})')
    partial = outcome.partial
    print(f'    checkpoints: {partial.checkpoints}; it read the cancel request: {partial.read_request}')
    print(f'    completed: {", ".join(partial.completed) or "-"}')
    print(f'    in progress: {", ".join(partial.in_progress) or "-"}')
    print(f'    not started: {", ".join(partial.not_started) or "-"}')
    print(f'    findings: {"; ".join(partial.findings) or "-"}')
    for line in str(partial.final_message or '-').splitlines():
        print(f'    final message | {line}')


async def run(address: str, task_queue: str) -> int:
    """Start the tasks on `task_queue`, cancel them, print what came back; 0 if nothing is left running."""
    client = await connect(address)
    checkpoints = Checkpoints()
    async with (
        TemporalTransport(client, task_queue=task_queue) as transport,
        SubAgentManager(SUBAGENTS, transport=transport) as manager,
    ):
        transport.subscribe(checkpoints.observe)
        research = await manager.start('researcher', 'Research the European e-bike market')
        crawl = await manager.start('crawler', 'Crawl the product pages of example.com')
        print(f'started {research.task_id} and {crawl.task_id} on the task queue {task_queue!r}')

        await checkpoints.of(research.task_id).wait()
        print(f'{research.task_id} checkpointed; soft cancel')
        await manager.soft_cancel(research.task_id, reason=CancelReason(kind='user', detail='the user changed topic'))
        (researched,) = (await manager.wait([research.task_id])).tasks
        show(researched)

        await checkpoints.of(crawl.task_id).wait()
        print(f'{crawl.task_id} checkpointed; hard cancel')
        show(await manager.hard_cancel(crawl.task_id))
    running = [info.task_id for info in manager.tasks() if not info.status.is_terminal]
    print(f'tasks still running: {len(running)}; orphans after teardown: {len(manager.orphans())}')
    return 1 if running or manager.orphans() else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run the app."""
    parser = argparse.ArgumentParser(
        prog='python -m examples.temporal.app', description='Start two tasks on Temporal workers and cancel them.'
    )
    parser.add_argument('--address', default='127.0.0.1:7233', help='the Temporal server (default: %(default)s)')
    parser.add_argument('--task-queue', default='research', help='where the worker serves (default: %(default)s)')
    args = parser.parse_args(argv)
    return anyio.run(run, args.address, args.task_queue, backend='asyncio')


if __name__ == '__main__':
    status = main()
    # Everything is closed and printed. A process that only holds a Temporal client can abort in the interpreter's
    # finalization (the client's native threads, temporalio/sdk-python#300): leave without it, as the worker does.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
