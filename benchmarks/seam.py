"""The owner <-> task seam's in-process cost, an older commit beside this one, in one run (issue 12).

Run: python benchmarks/seam.py [--size smoke|quick|full] [--transport inprocess|loopback|all]
                               [--against GIT-REV] [--rounds N]

Measures, through the public Python API on `FunctionModel` sub-agents blocked in a model request: single
hard cancels (wall and CPU p50/p99, garbage collector on and off), the hard cancel of a region of 1,000
tasks (wall and CPU until all stopped; 0 left running is checked), and the soft-cancel acknowledgement
(from `soft_cancel()` returning to the sub-agent's model receiving the request). `benchkit/seam_trials.py`
says exactly what each figure times.

Every run is a fresh process executing this same script. With `--against REV` the commit REV is checked out
once under the temporary directory and installed into `benchmarks/.venv-<shortsha>` (both kept for the next
call, neither tracked by git), on the same third-party versions as this environment; its runs and this
tree's take turns (A/B/A/B). The table shows, per figure, the median over each build's runs and their ratio;
CPU time moves less with the machine's load than wall time, so the verdict line reads the CPU figures. The
loopback column appears once this commit has a loopback transport; until then the run says it has none.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast

import anyio
import pydantic_ai

from benchkit import ab, revision_env
from benchkit.seam_trials import Measurement, Transport, available_transports, measure
from benchkit.stats import Size, by_size

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULT_PREFIX = 'RESULT '
RUN_TIMEOUT_SECONDS = 900
Run = Literal['old', 'new', 'loopback']


@dataclass(frozen=True, slots=True)
class Build:
    """One column of the table: its label, the Python that imports its code, where that code must be, the transport."""

    label: str
    python: Path | str
    source: Path
    transport: Transport


def run_once(build: Build, size: Size) -> Measurement:
    """Measure `build` in a fresh process of its Python, running this very script."""
    command = [str(build.python), str(Path(__file__).resolve()), '--measure', build.transport, '--size', size]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=RUN_TIMEOUT_SECONDS)
    for line in done.stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            return cast(Measurement, json.loads(line.removeprefix(RESULT_PREFIX)))
    tail = '\n'.join(done.stderr.splitlines()[-15:])
    raise SystemExit(f'{build.label}: no result; its stderr ends with:\n{tail}')


def _git(*args: str) -> str:
    return subprocess.run(['git', '-C', str(ROOT), *args], check=True, capture_output=True, text=True).stdout.strip()


def _builds(transports: tuple[Transport, ...], against: str | None) -> dict[Run, Build]:
    """The columns to measure, building the environment of `against` if an earlier run did not."""
    builds: dict[Run, Build] = {}
    if against is not None:
        old = revision_env.ensure(against, ROOT, HERE)
        builds['old'] = Build(f'old ({against}, {old.short})', old.python, old.worktree.resolve(), 'inprocess')
    head = _git('rev-parse', '--short', 'HEAD') + (' + changes' if _git('status', '--porcelain', '--', 'src') else '')
    if 'inprocess' in transports:
        builds['new'] = Build(f'new (HEAD, {head})', sys.executable, ROOT / 'src', 'inprocess')
    if 'loopback' in transports and 'loopback' in available_transports():
        builds['loopback'] = Build('loopback', sys.executable, ROOT / 'src', 'loopback')
    return builds


def _check(builds: dict[Run, Build], runs: dict[Run, list[Measurement]]) -> list[str]:
    """What went wrong: a run that imported the library from the wrong place, or left a task running."""
    problems: list[str] = []
    for side, measured in runs.items():
        for measurement in measured:
            if not Path(measurement['source']).resolve().is_relative_to(builds[side].source):
                problems.append(f'{side}: measured {measurement["source"]}, not the code under {builds[side].source}')
            if measurement['counts']['left_running']:
                problems.append(f'{side}: {measurement["counts"]["left_running"]} tasks left running after a cancel')
    return problems


def _preamble(size: Size, rounds: int, first: Measurement) -> list[str]:
    counts = first['counts']
    return [
        f'subagents-cancel seam, in-process cost — {time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}',
        f'python {platform.python_version()}, pydantic-ai {pydantic_ai.__version__}, {os.cpu_count()} cores, '
        f'load average {" ".join(f"{load:.2f}" for load in os.getloadavg())} at the end',
        f'size {size}: {rounds} fresh process(es) per column; per process {counts["hard_cancels"]} hard cancels '
        f'(half with the garbage collector off), {counts["region_cancels"]} region cancel(s) of '
        f'{counts["region_tasks"]:,} tasks, {counts["soft_acknowledgements"]} soft cancels. Medians across '
        'processes; lower is better.',
        '',
    ]


def compare(size: Size, transports: tuple[Transport, ...], against: str | None, rounds: int) -> int:
    """Run the interleaved measurements, print the table, and return the exit status (1 if a check failed)."""
    builds = _builds(transports, against)
    runs: dict[Run, list[Measurement]] = {side: [] for side in builds}
    for side in ab.interleave(rounds, list(builds)):
        sys.stderr.write(f'{builds[side].label} ...\n')
        runs[side].append(run_once(builds[side], size))
    lines: list[str] = []
    if builds:
        sides = {side: ab.Side(builds[side].label, [run['figures'] for run in runs[side]]) for side in builds}
        lines += _preamble(size, rounds, next(iter(runs.values()))[0])
        # Asked for the loopback alone, its figures are the only column.
        new = sides['new'] if 'new' in sides else sides['loopback']
        loopback = sides.get('loopback') if 'new' in sides else None
        lines += ab.table(new=new, old=sides.get('old'), loopback=loopback)
    if 'loopback' in transports and 'loopback' not in available_transports():
        lines.append('loopback: not available at this commit')
    problems = _check(builds, runs)
    sys.stdout.write('\n'.join(lines + problems) + '\n')
    return 1 if problems else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--size', choices=('smoke', 'quick', 'full'), default='full')
    parser.add_argument('--transport', choices=('inprocess', 'loopback', 'all'), default='all')
    parser.add_argument('--against', metavar='GIT-REV', help='a commit to measure beside this tree, e.g. HEAD~5')
    parser.add_argument('--rounds', type=int, help='fresh processes per column (default: 1, 2, 5 by size)')
    parser.add_argument('--measure', choices=('inprocess', 'loopback'), help='run once in this process, print JSON')
    arguments = parser.parse_args()
    size = cast(Size, arguments.size)
    if arguments.measure is not None:
        measurement = anyio.run(measure, arguments.measure, size, backend='asyncio')
        sys.stdout.write(RESULT_PREFIX + json.dumps(measurement) + '\n')
        return 0
    transports: tuple[Transport, ...] = (
        ('inprocess', 'loopback') if arguments.transport == 'all' else (arguments.transport,)
    )
    if arguments.against is not None and 'inprocess' not in transports:
        parser.error('--against compares the in-process path: use --transport inprocess or all')
    return compare(size, transports, arguments.against, arguments.rounds or by_size(size, 1, 2, 5))


if __name__ == '__main__':
    sys.exit(main())
