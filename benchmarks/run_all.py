"""Run every benchmark on this library and on its peers, side by side, and write `benchmarks/RESULTS.md`.

Run: python benchmarks/run_all.py [--size smoke|quick|full] [--libraries ours,subagents,harness]
     python benchmarks/run_all.py --only race      # rerun some scenarios, merge them into the last results

The peers and this library run in one environment, `benchmarks/.venv-peers`, on the pydantic-ai the
harness pins (2.62), so every library sees the same pydantic-ai. The first run creates it with
`pip install -e '.[bench]'`. Each (scenario, library) pair runs in a fresh process, one at a time; at size
`full` the fan-out of 1,000 runs three times, the libraries taking turns, and the report gives the median of each
time and size (`REPEATS`). The full run takes about 10 to 12 minutes on a 2-core machine. Raw figures go to
`RESULTS.json` beside the report; `--render-only` rewrites the report from them. `--only SCENARIO,...` runs just those
scenarios (a name without `:param` means all its variants) and merges their rows into the saved results,
keeping every other row and the machine line of the run they came from.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchkit.repeats import folded
from benchkit.temporal_report import TEMPORAL_JSON, Figures
from report import Machine, render

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VENV = HERE / '.venv-peers'
PYTHON = VENV / 'bin' / 'python'
LIBRARIES = ('ours', 'subagents', 'harness')
PLAN: tuple[tuple[str, tuple[str, ...]], ...] = (
    ('hard_cancel', LIBRARIES),
    ('soft_cancel:steps', LIBRARIES),
    ('soft_cancel:long', LIBRARIES),
    ('fanout:1000', LIBRARIES),
    ('overhead', LIBRARIES),
    ('lookup', LIBRARIES),
    ('race', LIBRARIES),
)
"""(scenario, libraries) of the default run."""
LARGE: tuple[tuple[str, tuple[str, ...]], ...] = (('fanout:10000', ('ours',)), ('lookup:30000', ('ours',)))
"""Added by `--large`: 10,000 running tasks, and 30,000 finished ones (past the default `keep_finished` of 10,000),
take minutes each (every task is a pydantic-ai run), beyond the 10-minute budget."""
REPEATS: dict[str, int] = {'fanout:1000': 3}
"""Scenarios run this many times at size `full`, the libraries taking turns (see `benchkit/repeats.py`): on the
fan-out the gap between two libraries is smaller than the drift of a shared machine's speed between two runs."""
RESULT_PREFIX = 'RESULT '


def ensure_venv() -> None:
    """Create the shared environment with this library and the peers, unless it exists."""
    if PYTHON.exists():
        return
    subprocess.run([sys.executable, '-m', 'venv', str(VENV)], check=True)
    subprocess.run([str(PYTHON), '-m', 'pip', 'install', '-q', '-e', f'{ROOT}[bench]'], check=True)


def run_one(scenario: str, library: str, size: str) -> dict[str, Any]:
    """Run one scenario on one library in a fresh process; a crash becomes a recorded error, not a lost run."""
    command = [str(PYTHON), str(HERE / 'worker.py'), scenario, library, '--size', size]
    done = subprocess.run(command, cwd=HERE, capture_output=True, text=True, timeout=900)
    for line in done.stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            outcome: dict[str, Any] = json.loads(line.removeprefix(RESULT_PREFIX))
            return outcome
    return {'scenario': scenario, 'library': library, 'error': done.stderr.strip().splitlines()[-5:]}


def chosen_plan(only: str | None, large: bool) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The scenarios to run: all of them (with `--large`'s), or those `only` names."""
    plan = PLAN + (LARGE if large else ())
    if only is None:
        return plan
    names = set(only.split(','))
    picked = tuple((scenario, libraries) for scenario, libraries in plan if {scenario, scenario.split(':')[0]} & names)
    if not picked:
        raise SystemExit(f'--only {only!r} names no scenario of {[scenario for scenario, _ in plan]}')
    return picked


def merge(saved: list[dict[str, Any]], fresh: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The saved results with each (scenario, library) row that `fresh` has replaced, in the saved order."""
    by_key = {(result['scenario'], result['library']): result for result in fresh}
    merged = [by_key.pop((result['scenario'], result['library']), result) for result in saved]
    return merged + list(by_key.values())


def saved_temporal(report: Path) -> Figures | None:
    """The figures of the last `temporal_cancel.py` run beside `report`, which keeps its section; `None` if none."""
    path = report.with_name(TEMPORAL_JSON)
    return json.loads(path.read_text()) if path.exists() else None


def load_average() -> str:
    return ' '.join(f'{value:.2f}' for value in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--size', choices=('smoke', 'quick', 'full'), default='full')
    parser.add_argument('--libraries', default=','.join(LIBRARIES), help='comma-separated subset of ' + str(LIBRARIES))
    parser.add_argument('--output', type=Path, default=HERE / 'RESULTS.md')
    parser.add_argument(
        '--large', action='store_true', help='also 10,000 running and 30,000 finished tasks (this library only)'
    )
    parser.add_argument(
        '--render-only', action='store_true', help='rewrite the report from the JSON of the last run, running nothing'
    )
    parser.add_argument(
        '--only', default=None, help='comma-separated scenarios to run and merge into the saved results, e.g. race'
    )
    arguments = parser.parse_args()
    saved_path = arguments.output.with_suffix('.json')
    if arguments.render_only:
        saved = json.loads(saved_path.read_text())
        arguments.output.write_text(
            render(saved['results'], Machine(**saved['machine']), saved_temporal(arguments.output))
        )
        return
    plan = chosen_plan(arguments.only, arguments.large)
    chosen = arguments.libraries.split(',')
    ensure_venv()
    started_at = datetime.now(UTC)
    load_before = load_average()
    started = time.perf_counter()
    results: list[dict[str, Any]] = []
    for scenario, libraries in plan:
        running = tuple(library for library in libraries if library in chosen)
        repeats = REPEATS.get(scenario, 1) if arguments.size == 'full' else 1
        runs: dict[str, list[dict[str, Any]]] = {library: [] for library in running}
        for turn in range(repeats):  # taking turns, so a change in the machine's speed touches every library
            for library in running:
                sys.stderr.write(f'{scenario} on {library} ({turn + 1} of {repeats}) ...\n')
                runs[library].append(run_one(scenario, library, arguments.size))
        results += [folded(runs[library]) for library in running]
    machine = Machine.read(
        started_at=started_at,
        seconds=time.perf_counter() - started,
        size=arguments.size,
        load=f'{load_before} at the start, {load_average()} at the end',
    )
    if arguments.only is not None and saved_path.exists():
        saved = json.loads(saved_path.read_text())
        results = merge(saved['results'], results)
        rerun = f'`--only {arguments.only}` rerun {machine.started_at} (size `{machine.size}`, load {machine.load})'
        previous = Machine(**saved['machine'])
        # A rerun of the same scenarios replaces the note of the one before it: its rows are the ones shown now.
        kept = [note for note in previous.load.split('; ') if not note.startswith(f'`--only {arguments.only}` rerun')]
        machine = dataclasses.replace(previous, load='; '.join([*kept, rerun]))
    arguments.output.parent.mkdir(parents=True, exist_ok=True)
    arguments.output.write_text(render(results, machine, saved_temporal(arguments.output)))
    saved_path.write_text(json.dumps({'machine': machine.as_dict(), 'results': results}))
    sys.stderr.write(f'wrote {arguments.output}\n')


if __name__ == '__main__':
    main()
