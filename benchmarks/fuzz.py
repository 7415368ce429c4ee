"""Interleaving fuzz: randomized schedules of real pydantic-ai sub-agent runs, seeded and replayable.

Run: python benchmarks/fuzz.py [--schedules 100000] [--first-seed 0] [--workers 2]
     python benchmarks/fuzz.py --replay SEED      # run one schedule again, and show what broke

Each schedule (see `tests/fuzzing.py`) starts up to six tasks on one owner and races model steps
(checkpoint, question, output, error) against soft and hard cancels from the tools and the Python API,
answers, region cancels, grace expiry and the owner's end, with random jitter. It reports status flips,
orphans and lost results (each must be 0), the other broken promises, and how the tasks ended.
`tests/test_fuzz.py` runs a short version in CI.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import sys
import time
from collections import Counter
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).parent.parent))

from tests.fuzzing import FuzzReport, fuzz, run_schedule


def _batch(seeds: range) -> FuzzReport:
    # The schedules make sub-agent runs fail on purpose; each failure's logged traceback would bury the report.
    logging.getLogger('subagents_cancel').setLevel(logging.CRITICAL)
    return anyio.run(fuzz, seeds)


def run(schedules: int, first_seed: int, workers: int) -> FuzzReport:
    size = max(1, min(2_000, schedules // max(1, workers * 4)))
    batches = [
        range(start, min(start + size, first_seed + schedules))
        for start in range(first_seed, first_seed + schedules, size)
    ]
    total = FuzzReport()
    with multiprocessing.get_context('spawn').Pool(workers) as pool:
        for report in pool.imap_unordered(_batch, batches):
            total.schedules += report.schedules
            total.tasks += report.tasks
            total.flips += report.flips
            total.orphans += report.orphans
            total.lost_results += report.lost_results
            total.other_violations += report.other_violations
            total.failing_seeds += report.failing_seeds
            for seed, what in report.failing_seeds:
                print(f'  FAILED seed {seed}: {what}', file=sys.stderr, flush=True)
            total.outcomes.update(report.outcomes)
            print(f'  {total.schedules}/{schedules} schedules, {total.violations} broken', file=sys.stderr, flush=True)
    return total


def print_report(report: FuzzReport, seconds: float) -> None:
    print(f'schedules: {report.schedules} in {seconds:.0f} s, tasks: {report.tasks}')
    print(f'status flips: {report.flips}')
    print(f'orphans: {report.orphans}')
    print(f'lost results: {report.lost_results}')
    print(f'other broken promises: {report.other_violations}')
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
    args = parser.parse_args()
    if args.replay is not None:
        world = anyio.run(run_schedule, args.replay)
        print(f'seed {args.replay}: every promise held; outcomes {dict(world.outcomes)}')
        return
    started = time.perf_counter()
    report = run(args.schedules, args.first_seed, args.workers)
    print_report(report, time.perf_counter() - started)
    sys.exit(1 if report.violations else 0)


if __name__ == '__main__':
    main()
