"""The library's own overhead against pydantic-ai alone: every target of issue 15 as a ratio, in one run.

Run: python benchmarks/overhead.py [--quick]

Prints one table. Each figure is measured on this library and on pydantic-ai alone doing the same thing, taking
turns, in the same process (each region cancel and the memory figures in fresh processes of their own), CPU
time and wall time. `benchkit/overhead_trials.py` says exactly what each figure times. The targets:

* hard cancel of a run blocked in a model request: CPU p50 within 1.15x of `AgentRun.cancel()`, wall p99 within
  1 ms (the CPU p99 is shown too: a shared machine deschedules even pydantic-ai alone);
* a region of 1,000 and 10,000 blocked tasks cancelled: within 1.15x of pydantic-ai alone cancelling the same
  runs, CPU and wall, with 0 left running;
* resident memory per blocked task: within 8 KB of pydantic-ai alone;
* a foreground delegation (`task` in sync mode): within 1.2x of a direct run (a plain tool awaiting
  `agent.run()` is the floor), to an agent of the user's as it is and built with `TaskCapability`;
* every tool call that only reads or requests: p50 within 0.3 ms (beside a plain tool that does nothing).

Rows marked *the bare seam* time `benchkit/seam_floor.py` instead of the library (its figure in the
subagents-cancel column): the cancel request and the run's ending (or the soft cancel's receipt) crossing the
in-process transport between an owner and a host that keep no books at all, which is the least any library with
that transport pays; the library's own book-keeping is what lies between that row and the library's.

`--quick` runs every figure at a small size (smaller regions and fewer trials), to show the script works; its
numbers are rough. Wall-clock figures depend on the machine and its load; re-run before quoting them.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Generator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
import pydantic_ai

from benchkit import overhead_trials, seam_floor, seam_trials
from benchkit.stats import percentile

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True, slots=True)
class Sizes:
    """How many trials, tasks and runs each figure uses."""

    hard_trials: int
    regions: tuple[tuple[int, int], ...]
    """(tasks, repeats) of each region cancel."""
    rss_tasks: int
    delegations: int
    tool_trials: int


QUICK = Sizes(hard_trials=30, regions=((100, 1),), rss_tasks=100, delegations=30, tool_trials=10)
FULL = Sizes(hard_trials=1000, regions=((1000, 3), (10000, 1)), rss_tasks=1000, delegations=500, tool_trials=200)


@dataclass(frozen=True, slots=True)
class Row:
    """One figure of the table: pydantic-ai alone beside this library, and its target."""

    figure: str
    target: str
    alone: float
    ours: float
    met: Callable[[float, float], bool] | None
    """Whether (alone, ours) meets the target; `None` for a figure shown for reference."""

    def line(self) -> str:
        ratio = f'{self.ours / self.alone:.2f}×' if self.alone else '—'
        verdict = '—' if self.met is None else ('met' if self.met(self.alone, self.ours) else '**missed**')
        return f'| {self.figure} | {self.target} | {self.alone:,.3f} | {self.ours:,.3f} | {ratio} | {verdict} |'


def _within(factor: float) -> Callable[[float, float], bool]:
    return lambda alone, ours: ours <= factor * alone


def _at_most(limit: float) -> Callable[[float, float], bool]:
    return lambda alone, ours: ours <= limit


def _p50(values: list[float]) -> float:
    return statistics.median(values)


def _p99(values: list[float]) -> float:
    return percentile(values, 0.99)


DELEGATIONS: tuple[overhead_trials.Delegation, ...] = (
    'plain',
    'plain with a capability',
    'plain, agent built with a capability',
    'task',
    'task, agent built with TaskCapability',
)
ROUNDS = 5
"""Each way of delegating, and the direct runs, take turns this many times: a shared machine's speed drifts by tens
of percent within a minute, and a way measured in one stretch would carry its stretch's speed into its ratio."""


BARE_SEAM = 'the bare seam'
"""Rows so named time `benchkit/seam_floor.py`, not the library: a cancel's messages across the in-process transport
and nothing else, the least any library that keeps the transport between owners and tasks (issue 2) pays."""
REGION_SIDES = ('alone', 'floor', 'ours')


def _add(timings: overhead_trials.Timings, more: overhead_trials.Timings) -> None:
    timings[0].extend(more[0])
    timings[1].extend(more[1])


async def hard_cancel_rows(trials: int) -> list[Row]:
    rounds = min(ROUNDS, trials)
    alone: overhead_trials.Timings = ([], [])
    floor: overhead_trials.Timings = ([], [])
    ours: overhead_trials.Timings = ([], [])
    for _ in range(rounds):  # taking turns (see `ROUNDS`)
        gc.collect()
        _add(alone, await overhead_trials.alone_hard_cancels(trials // rounds))
        gc.collect()
        _add(floor, await seam_floor.hard_cancels(trials // rounds))
        gc.collect()
        _add(ours, await seam_trials.hard_cancels('inprocess', trials // rounds))
    (alone_wall, alone_cpu), (floor_wall, floor_cpu), (ours_wall, ours_cpu) = alone, floor, ours
    name = f'hard cancel ({trials:,} trials)'
    return [
        Row(f'{name}, CPU p50 (ms)', '≤ 1.15×', _p50(alone_cpu), _p50(ours_cpu), _within(1.15)),
        Row(f'{name}, CPU p99 (ms)', 'reported', _p99(alone_cpu), _p99(ours_cpu), None),
        Row(f'{name}, wall p50 (ms)', 'reported', _p50(alone_wall), _p50(ours_wall), None),
        Row(f'{name}, wall p99 (ms)', '≤ 1 ms', _p99(alone_wall), _p99(ours_wall), _at_most(1.0)),
        Row(f'{name}, {BARE_SEAM}, CPU p50 (ms)', 'floor', _p50(alone_cpu), _p50(floor_cpu), None),
        Row(f'{name}, {BARE_SEAM}, wall p99 (ms)', 'floor', _p99(alone_wall), _p99(floor_wall), None),
    ]


def region_rows(size: int, repeats: int) -> list[Row]:
    rows: list[Row] = []
    for collector in ('GC on', 'GC off'):
        trials: dict[str, list[tuple[float, float, int]]] = {side: [] for side in REGION_SIDES}
        for _ in range(repeats):  # taking turns, so a change in the machine's load touches every side
            for side, results in trials.items():
                results.append(_region_trial_in_a_process(side, size, collector))
        name = f'region of {size:,} cancelled, all stopped, {collector}'
        left = max(left for results in trials.values() for *_, left in results)
        alone_cpu, floor_cpu, ours_cpu = (_p50([cpu for _, cpu, _ in trials[side]]) for side in REGION_SIDES)
        alone_wall, _, ours_wall = (_p50([wall for wall, _, _ in trials[side]]) for side in REGION_SIDES)
        rows += [
            Row(f'{name}, CPU (ms)', '≤ 1.15×', alone_cpu, ours_cpu, _within(1.15)),
            Row(f'{name}, wall (ms)', '≤ 1.15×', alone_wall, ours_wall, _within(1.15)),
            Row(f'{name}, {BARE_SEAM}, CPU (ms)', 'floor', alone_cpu, floor_cpu, None),
            Row(f'{name}: left running', '0', 0, left, _at_most(0)),
        ]
    return rows


def _region_trial_in_a_process(side: str, size: int, collector: str) -> tuple[float, float, int]:
    """One region cancel, in a fresh process (wall ms, CPU ms, left running).

    A process that has already run thousands of runs keeps a heap that slows the next thousands: a region of 10,000
    measured after the other figures, in their process, took up to twice as long as alone.
    """
    command = [sys.executable, __file__, '--region-trial', side, str(size), collector]
    done = subprocess.run(command, check=True, capture_output=True, text=True, cwd=HERE)
    wall, cpu, left = done.stdout.split()
    return float(wall), float(cpu), int(left)


async def region_trial(side: str, size: int, collector: str) -> None:
    """Run one region cancel and print its wall and CPU ms and how many runs were left running."""
    with _collector(collector):
        if side == 'alone':
            wall, cpu, left = await overhead_trials.alone_region_cancel(size)
        elif side == 'floor':
            wall, cpu, left = await seam_floor.region_cancel(size)
        else:
            wall, cpu, left = await seam_trials.region_cancel('inprocess', size)
    print(wall, cpu, left)


@contextmanager
def _collector(state: str) -> Generator[None]:
    """Start from a full collection; with `'GC off'`, keep the collector off inside.

    The library pauses the collector itself while a bulk stop is awaited; pydantic-ai alone does not.
    """
    gc.collect()
    if state == 'GC off':
        gc.disable()
    try:
        yield
    finally:
        gc.enable()


def rss_row(size: int) -> Row:
    def kb_per_run(way: str) -> float:
        command = [sys.executable, str(HERE / 'memory_per_task.py'), '--one', way, str(size)]
        return float(subprocess.run(command, check=True, capture_output=True, text=True, cwd=HERE).stdout)

    alone, ours = kb_per_run('alone'), kb_per_run('tasks')
    return Row(f'RSS per blocked task at {size:,} (KB)', '≤ alone + 8 KB', alone, ours, lambda a, o: o <= a + 8)


async def delegation_rows(count: int) -> list[Row]:
    rounds = min(ROUNDS, count)
    direct: overhead_trials.Timings = ([], [])
    ways: dict[overhead_trials.Delegation, overhead_trials.Timings] = {way: ([], []) for way in DELEGATIONS}
    for _ in range(rounds):
        _add(direct, await overhead_trials.direct_runs(count // rounds))
        for way in DELEGATIONS:
            _add(ways[way], await overhead_trials.delegations(count // rounds, way))
    plain, with_capability, built_with_capability, task, carried = (ways[way] for way in DELEGATIONS)
    rows: list[Row] = []
    for clock, index in (('CPU', 1), ('wall', 0)):
        base = _p50(direct[index])
        rows.append(
            Row(f'plain tool awaiting `agent.run()`, {clock} p50 (ms)', 'floor', base, _p50(plain[index]), None)
        )
        floor = _p50(with_capability[index])
        rows.append(Row(f'the same, one empty capability per run, {clock} p50 (ms)', 'floor', base, floor, None))
        built_floor = _p50(built_with_capability[index])
        rows.append(
            Row(f'the same, agent built with one empty capability, {clock} p50 (ms)', 'floor', base, built_floor, None)
        )
        rows.append(Row(f'foreground `task` (sync), {clock} p50 (ms)', '≤ 1.2×', base, _p50(task[index]), _within(1.2)))
        rows.append(
            Row(
                f'the same, agent built with `TaskCapability`, {clock} p50 (ms)',
                '≤ 1.2×',
                base,
                _p50(carried[index]),
                _within(1.2),
            )
        )
    return rows


async def tool_rows(trials: int) -> list[Row]:
    timings = await overhead_trials.read_tool_calls(trials)
    noop_wall, noop_cpu = timings.pop('noop')
    floor_wall, floor_cpu = timings.pop(overhead_trials.BARE_SEAM_SOFT_CANCEL)
    rows: list[Row] = []
    for name, (wall, cpu) in timings.items():
        rows.append(Row(f'`{name}`, CPU p50 (ms)', 'reported', _p50(noop_cpu), _p50(cpu), None))
        rows.append(Row(f'`{name}`, wall p50 (ms)', '≤ 0.3 ms', _p50(noop_wall), _p50(wall), _at_most(0.3)))
    rows.append(Row(f'a soft cancel, {BARE_SEAM}, CPU p50 (ms)', 'floor', _p50(noop_cpu), _p50(floor_cpu), None))
    rows.append(Row(f'a soft cancel, {BARE_SEAM}, wall p50 (ms)', 'floor', _p50(noop_wall), _p50(floor_wall), None))
    return rows


async def measure(sizes: Sizes) -> list[Row]:
    """Every figure at `sizes`; each row is printed as soon as it is measured."""
    rows: list[Row] = []

    def show(new: list[Row]) -> None:
        for row in new:
            print(row.line(), flush=True)
        rows.extend(new)

    show(await hard_cancel_rows(sizes.hard_trials))
    for size, repeats in sizes.regions:
        show(region_rows(size, repeats))
    show([rss_row(sizes.rss_tasks)])
    show(await delegation_rows(sizes.delegations))
    show(await tool_rows(sizes.tool_trials))
    return rows


def _processor() -> str:
    try:
        with open('/proc/cpuinfo') as cpuinfo:
            names = [line.split(':', 1)[1].strip() for line in cpuinfo if line.startswith('model name')]
    except OSError:
        names = []
    return names[0] if names else platform.processor() or platform.machine()


def main(quick: bool) -> int:
    began = time.perf_counter()
    commit = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], capture_output=True, text=True, cwd=HERE).stdout
    print(
        f'subagents-cancel overhead, {"--quick" if quick else "full"} run, commit {commit.strip() or "unknown"}; '
        f'Python {platform.python_version()}, pydantic-ai {pydantic_ai.__version__}, '
        f'{os.cpu_count()} cores ({_processor()}), '
        f'load average {" ".join(f"{load:.2f}" for load in os.getloadavg())}'
    )
    print()
    print('| figure | target | pydantic-ai alone | subagents-cancel | ratio | met? |')
    print('|---|---|---|---|---|---|', flush=True)
    rows = anyio.run(measure, QUICK if quick else FULL, backend='asyncio')
    print()
    print(
        f'{time.perf_counter() - began:.0f} s; load average at the end {" ".join(f"{x:.2f}" for x in os.getloadavg())}'
    )
    return 0 if all(row.ours == 0 for row in rows if row.figure.endswith('left running')) else 1


if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument('--quick', action='store_true', help='every figure at a small size (seconds, rough numbers)')
    parser.add_argument('--region-trial', nargs=3, metavar=('SIDE', 'SIZE', 'COLLECTOR'), help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.region_trial is not None:
        side, size, collector = arguments.region_trial
        anyio.run(region_trial, side, int(size), collector, backend='asyncio')
        sys.exit(0)
    sys.exit(main(arguments.quick))
