"""`python -m subagents_cancel demo [--model provider:name]`: play the seed scenarios and show what cancelling does."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import anyio
from pydantic_ai.exceptions import UserError
from pydantic_ai.models import Model, infer_model

from .demo import run_demo


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run the demo; the exit status is non-zero if a task was left running."""
    parser = argparse.ArgumentParser(prog='subagents-cancel', description=__doc__)
    commands = parser.add_subparsers(dest='command', required=True)
    demo = commands.add_parser(
        'demo',
        help='play the seed scenarios: a research region the user aborts, a report replaced by a quick summary, '
        'a stuck sub-agent escalated',
    )
    demo.add_argument(
        '--model',
        help="a real model for the parents and sub-agents, e.g. 'openai:gpt-5-mini' (API key from the "
        'environment; install the provider, e.g. pip install "pydantic-ai-slim[openai]"). Offline scripted '
        'models by default.',
    )
    try:
        from .temporal.cli import add_worker_command, run_worker_command
    except ImportError:  # no Temporal SDK: the demo alone
        run_worker_command = None
    else:
        add_worker_command(commands)
    args = parser.parse_args(argv)
    if args.command == 'worker' and run_worker_command is not None:
        return run_worker_command(args)
    model: Model | None = None
    if args.model is not None:
        try:
            model = infer_model(args.model)
        except (ImportError, UserError) as error:  # a provider SDK that is not installed, an unknown model name
            print(f'subagents-cancel: cannot use the model {args.model!r}: {error}', file=sys.stderr)
            return 2
    return anyio.run(run_demo, model, backend='asyncio')


if __name__ == '__main__':
    sys.exit(main())
