"""`python -m subagents_cancel worker`: a Temporal worker for the sub-agents a module defines, until a signal."""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
from collections.abc import Sequence

import anyio

from subagents_cancel.config import SubAgentConfig, check_duration
from subagents_cancel.errors import ConfigError

from .settings import WorkerSettings
from .worker import connect, task_worker

__all__ = ('add_worker_command', 'run_worker_command')


def add_worker_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:  # pyright: ignore[reportPrivateUsage]
    """Add the `worker` command to the command line."""
    worker = commands.add_parser(
        'worker',
        help="run sub-agent tasks on a Temporal worker (pip install 'subagents-cancel[temporal]')",
        description='Run the sub-agent tasks that owners send to a Temporal task queue, until SIGINT or SIGTERM.',
    )
    worker.add_argument('--address', default='127.0.0.1:7233', help='the Temporal server (default: %(default)s)')
    worker.add_argument('--namespace', default='default', help='the Temporal namespace (default: %(default)s)')
    worker.add_argument('--task-queue', required=True, help='the task queue the owners send tasks to')
    worker.add_argument(
        '--subagents',
        required=True,
        metavar='MODULE:NAME',
        help='where the sub-agent configs are: a list of SubAgentConfig named NAME in the module MODULE',
    )
    worker.add_argument(
        '--sticky-queue-seconds',
        type=_seconds,
        metavar='SECONDS',
        default=WorkerSettings().sticky_queue_seconds,
        help="how long a task's next step waits for this worker before another may take it; a worker that died "
        'holds its tasks this long (default: %(default)s)',
    )


def _seconds(text: str) -> float:
    try:
        return check_duration('seconds', float(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected a number of seconds greater than 0, got {text!r}') from None


def load_subagents(spec: str) -> list[SubAgentConfig]:
    """The sub-agent configs at `module:name`.

    Raises:
        ConfigError: `spec` is not `module:name`, the module or the name does not exist, or it is not a list of
            `SubAgentConfig`s.
    """
    module_name, _, attribute = spec.partition(':')
    if not module_name or not attribute:
        raise ConfigError(f'--subagents must be MODULE:NAME, e.g. myapp.agents:SUBAGENTS; got {spec!r}.')
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ConfigError(f'--subagents: cannot import {module_name!r}: {error}') from None
    configs: object = getattr(module, attribute, None)
    if not isinstance(configs, list | tuple) or not all(isinstance(item, SubAgentConfig) for item in configs):  # pyright: ignore[reportUnknownVariableType]
        raise ConfigError(f'--subagents: {spec} is not a list of SubAgentConfig.')
    return list(configs)  # pyright: ignore[reportUnknownArgumentType]


async def _serve(args: argparse.Namespace, subagents: Sequence[SubAgentConfig], settings: WorkerSettings) -> None:
    client = await connect(args.address, namespace=args.namespace)
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with task_worker(client, task_queue=args.task_queue, subagents=subagents, settings=settings):
            print(f'worker: serving {args.task_queue!r} on {args.address}', flush=True)
            async for _ in signals:
                break
    print('worker: stopped', flush=True)


def run_worker_command(args: argparse.Namespace) -> int:
    """Run the worker the command line describes; the exit status is 2 for a bad configuration, else 0."""
    sys.path.insert(0, '')  # MODULE is looked up from the current directory, as `python -m` does
    try:
        subagents = load_subagents(args.subagents)
        settings = WorkerSettings(sticky_queue_seconds=args.sticky_queue_seconds)
        anyio.run(_serve, args, subagents, settings, backend='asyncio')
    except ConfigError as error:
        print(f'subagents-cancel worker: {error}', file=sys.stderr)
        return 2
    # The worker has stopped and closed everything it opened. Leave without the interpreter's finalization, where the
    # Temporal SDK's native threads were seen to abort the process (SIGABRT) and a last collection took ~2 s.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
