"""Interleaving fuzz: randomized schedules of real pydantic-ai sub-agent runs, seeded and replayable.

Run: python benchmarks/fuzz.py [--schedules 100000] [--first-seed 0] [--workers 2] [--classic] [--transport loopback]
     python benchmarks/fuzz.py --replay SEED [--classic] [--transport loopback]   # run one schedule again

Each schedule (see `tests/fuzzing.py` for the distribution) starts up to six tasks on one owner and
races model steps (checkpoint, question, output, error, malformed tool arguments) against soft and
hard cancels from the tools and the Python API, answers, region cancels, grace expiry and the owner's
end, with random jitter; some schedules use a structured output, send the parent's tools malformed
arguments, or land cancels just before, at and just after a final answer's arrival. `--classic`
leaves those out, so seeds replay the schedules of the fuzz before them. It counts each kind of
broken promise (`tests/promises.py`; every count must be 0) and how the tasks ended.
`--transport` picks the transport between the owner and its tasks: `in-process` (the default) or `loopback`
(every message through JSON, delivered from a receive loop). `tests/test_fuzz.py` runs a short version in CI, on
both.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import sys
import time
from collections import Counter
from collections.abc import Callable
from functools import partial
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).parent.parent))

from subagents_cancel import manager as manager_module
from subagents_cancel.transport import InProcessTransport, LoopbackTransport, Transport
from tests.fuzzing import FuzzReport, fuzz, run_schedule
from tests.promises import KINDS, PromiseBroken

TRANSPORTS: dict[str, Callable[[], Transport]] = {'in-process': InProcessTransport, 'loopback': LoopbackTransport}


def _prepare(transport: str) -> None:
    """Make this process's worlds use `transport`, and keep the logs quiet."""
    # The test suite's seam (conftest's `transport_kind`): what a manager given no transport creates, and what
    # `tests.helpers.new_transport()`, which the fuzzing world uses, builds.
    manager_module._default_transport = TRANSPORTS[transport]  # pyright: ignore[reportPrivateUsage]
    # The schedules make sub-agent runs fail on purpose; each failure's logged traceback would bury the report.
    logging.getLogger('subagents_cancel').setLevel(logging.CRITICAL)


def _batch(seeds: range, classic: bool, transport: str) -> FuzzReport:
    _prepare(transport)
    return anyio.run(partial(fuzz, seeds, classic=classic))


def run(
    schedules: int, first_seed: int, workers: int, *, classic: bool = False, transport: str = 'in-process'
) -> FuzzReport:
    size = max(1, min(2_000, schedules // max(1, workers * 4)))
    batches = [
        range(start, min(start + size, first_seed + schedules))
        for start in range(first_seed, first_seed + schedules, size)
    ]
    total = FuzzReport()
    with multiprocessing.get_context('spawn').Pool(workers) as pool:
        for report in pool.imap_unordered(partial(_batch, classic=classic, transport=transport), batches):
            total.add(report)
            for seed, what in report.failing_seeds:
                print(f'  FAILED seed {seed}: {what}', file=sys.stderr, flush=True)
            print(f'  {total.schedules}/{schedules} schedules, {total.violations} broken', file=sys.stderr, flush=True)
    return total


def print_report(report: FuzzReport, seconds: float, transport: str = 'in-process') -> None:
    print(f'schedules: {report.schedules} in {seconds:.0f} s on the {transport} transport, tasks: {report.tasks}')
    features = ', '.join(f'{name}: {count}' for name, count in sorted(report.features.items()))
    print(f'schedules with {features or "no feature (--classic)"}')
    for kind, label in KINDS.items():
        print(f'{label}: {report.broken[kind]}')
    outcomes: Counter[str] = report.outcomes
    for outcome, count in outcomes.most_common():
        print(f'  {outcome}: {count} ({count / max(1, report.tasks):.1%})')
    for seed, what in sorted(report.failing_seeds)[:20]:
        print(f'FAILED seed {seed}: {what}  (replay: python benchmarks/fuzz.py --replay {seed})')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--schedules', type=int, default=100_000)
    parser.add_argument('--first-seed', type=int, default=0)
    parser.add_argument('--workers', type=int, default=2)
    parser.add_argument('--replay', type=int, default=None, help='run this one seed in this process and raise')
    parser.add_argument('--classic', action='store_true', help='leave out the features added in issue 11')
    parser.add_argument(
        '--transport', choices=tuple(TRANSPORTS), default='in-process', help='between the owner and its tasks'
    )
    args = parser.parse_args()
    if args.replay is not None:
        _prepare(args.transport)
        try:
            world = anyio.run(partial(run_schedule, args.replay, classic=args.classic))
        except PromiseBroken as broken:
            print(f'seed {args.replay} broke a promise, {KINDS[broken.kind]}: {broken}', file=sys.stderr)
            raise
        print(f'seed {args.replay}: every promise held; outcomes {dict(world.outcomes)}')
        return
    started = time.perf_counter()
    report = run(args.schedules, args.first_seed, args.workers, classic=args.classic, transport=args.transport)
    print_report(report, time.perf_counter() - started, args.transport)
    sys.exit(1 if report.violations else 0)


if __name__ == '__main__':
    main()
