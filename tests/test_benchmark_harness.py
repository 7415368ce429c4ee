"""The benchmark suite's own machinery works: statistics, the report, and the scenarios on this library.

The scenarios run here at their `smoke` size, and only what does not depend on the machine's speed is
asserted (counts, which tasks ended, whether a reply waited for the task). Timing lives in `benchmarks/`.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from inline_snapshot import snapshot

from adapters import load
from benchkit import ab, seam_trials
from benchkit.repeats import folded
from benchkit.stats import percentile, summarize
from benchkit.temporal_report import Figures, temporal_section
from report import Machine, render
from scenarios import fanout, hard_cancel, overhead, race

pytestmark = pytest.mark.anyio


def test_percentile_is_nearest_rank() -> None:
    """p50 of 1..100 is 50, p99 is 99, and a one-value sample is that value."""
    values = [float(value) for value in range(100, 0, -1)]
    assert (percentile(values, 0.5), percentile(values, 0.99), percentile([7.0], 0.99)) == (50.0, 99.0, 7.0)
    assert summarize([1.0, 2.0, 3.0]) == {'n': 3, 'p50': 2.0, 'p99': 3.0, 'max': 3.0}


def test_report_states_failures_and_missing_capabilities() -> None:
    """A crashed run and a setting a peer lacks appear as text in the report, never as a number."""
    machine = Machine.read(started_at=datetime(2026, 1, 1, tzinfo=UTC), seconds=1.0, size='smoke', load='0.00')
    summary = {'n': 1, 'p50': 1.0, 'p99': 1.0, 'max': 1.0}
    results = [
        {'scenario': 'hard_cancel', 'library': 'ours', 'error': ['Traceback', 'RuntimeError: boom']},
        {
            'scenario': 'soft_cancel:long',
            'library': 'harness',
            'label': 'pydantic-ai-harness',
            'version': '0.62.0',
            'pydantic_ai': '2.62.0',
            'result': {
                'request / grace 1 s': {'not_supported': 'no grace setting for a soft cancel'},
                'request / default': {
                    'trials': 1,
                    'acknowledged': 0,
                    'acknowledged_ms': None,
                    'terminal': 1,
                    'terminal_ms': summary,
                    'requests_after_max': 0,
                    'partial': 0,
                },
            },
        },
    ]
    report = render(results, machine)
    assert '| subagents-cancel | failed: RuntimeError: boom |' in report
    assert '| pydantic-ai-harness | request / grace 1 s | not supported: no grace setting for a soft cancel |' in report
    assert '| pydantic-ai-harness | request / default | 0 / 1 | p50 1, max 1 | 0 / 1 | 0 |' in report


def _fanout_run(all_done_ms: float | None, owner_ends_ms: float | None, left: int, rss_kb: float) -> dict[str, object]:
    cancel = {'how': 'one region cancel', 'all_done_ms': all_done_ms, 'reply_ms': 1.0, 'running_at_reply': left}
    ends = {'all_done_ms': owner_ends_ms, 'not_done': left, 'run_ended_first': False}
    result = {'tasks': 1000, 'rss_per_task_kb': rss_kb, 'cancel': {**cancel, 'not_done': left}, 'owner_ends': ends}
    return {'scenario': 'fanout:1000', 'library': 'ours', 'label': 'subagents-cancel', 'version': '0.1.0',
            'pydantic_ai': '2.62.0', 'result': result}  # fmt: skip


def test_repeated_fanout_runs_report_median_times_and_the_worst_count() -> None:
    """Three runs of the fan-out fold into one row, and the report says so.

    Each time and size is its median (a run that never finished counts as the slowest), each count of tasks left
    running the worst run's. A failed run is the row.
    """
    runs = [_fanout_run(400.0, None, 0, 85.0), _fanout_run(500.0, 300.0, 2, 86.0), _fanout_run(450.0, 310.0, 0, 84.0)]
    row = folded(runs)
    assert (row['repeats'], row['result']) == snapshot(
        (
            3,
            {
                'tasks': 1000,
                'rss_per_task_kb': 85.0,
                'cancel': {
                    'how': 'one region cancel',
                    'all_done_ms': 450.0,
                    'reply_ms': 1.0,
                    'running_at_reply': 2,
                    'not_done': 2,
                },
                'owner_ends': {'all_done_ms': 310.0, 'not_done': 2, 'run_ended_first': False},
            },
        )
    )
    machine = Machine.read(started_at=datetime(2026, 1, 1, tzinfo=UTC), seconds=1.0, size='full', load='0.00')
    report = render([row], machine)
    assert 'The 1,000 rows: each time and size is the median of 3 runs per library, the libraries taking' in report
    assert (
        '| subagents-cancel | 1,000 | one region cancel | 450 | 2 | 310 | 2 (the run waits for its tasks) | 85.0 |'
        in report
    )
    failed = {'scenario': 'fanout:1000', 'library': 'ours', 'error': ['RuntimeError: boom']}
    assert folded([runs[0], failed]) == failed


def test_report_counts_the_race_against_a_target_of_zero() -> None:
    """The race table shows each count, and an answer cancelled or lost misses its target."""
    machine = Machine.read(started_at=datetime(2026, 1, 1, tzinfo=UTC), seconds=1.0, size='smoke', load='0.00')
    counts = {
        'trials': 8,
        'answer_arrived': 8,
        'answer_first': 5,
        'told_cancelled': 3,
        'told_completed': 5,
        'told_neither': 0,
        'cancelled_with_full_answer': 2,
        'answer_lost': 0,
        'requests_after_answer': 0,
    }
    result = {'label': 'subagents-cancel', 'version': '0.1.0', 'pydantic_ai': '2.62.0', 'result': {'soft': counts}}
    report = render([{'scenario': 'race', 'library': 'ours', **result}], machine)
    assert '| subagents-cancel | soft | 8 | 8 (5 before the cancel) | 5 | 3 | **2** | **0** | 0 |' in report
    assert '| cancel racing completion, soft: cancelled with the full answer | 0 | 2 |' in report
    assert '| cancel racing completion, soft: answers lost | 0 | 0 | not measured | — | met |' in report


async def test_hard_cancel_scenario_sees_our_reply_wait_for_the_task() -> None:
    """Every hard cancel of this library replies only once the task hosting the sub-agent is done."""
    result = await hard_cancel.run(load('ours'), 'smoke', '')
    assert (result['trials'], result['replied_after_done'], result['done_ms']['n']) == (5, 5, 5)


async def test_fanout_scenario_leaves_nothing_running() -> None:
    """A region cancel and the parent run ending each stop every task the scenario started."""
    result = await fanout.run(load('ours'), 'smoke', '1000')
    assert result['tasks'] == 50
    assert {key: result['cancel'][key] for key in ('how', 'running_at_reply', 'not_done')} == {
        'how': 'one region cancel',
        'running_at_reply': 0,
        'not_done': 0,
    }
    assert result['owner_ends']['not_done'] == 0


async def test_overhead_scenario_times_every_delegation() -> None:
    """The overhead scenario times as many delegations as direct runs."""
    result = await overhead.run(load('ours'), 'smoke', '')
    assert (result['count'], result['direct_ms']['n'], result['delegated_ms']['n']) == (10, 10, 10)


async def test_race_scenario_finds_no_answer_turned_into_a_cancel_or_lost() -> None:
    """Cancels racing a final answer: none cancels an answer that arrived first, none loses an answer."""
    result = await race.run(load('ours'), 'smoke', '')
    counts = {
        mode: (r['trials'], r['told_neither'], r['cancelled_with_full_answer'], r['answer_lost'])
        for mode, r in result.items()
    }
    assert counts == {'soft': (8, 0, 0, 0), 'hard': (6, 0, 0, 0)}


SEAM = Path(__file__).parent.parent / 'benchmarks' / 'seam.py'


async def test_seam_trials_count_every_cancel_and_leave_nothing_running() -> None:
    """The seam figures at their smallest size: every cancel is counted, each figure is there, no task is left."""
    result = await seam_trials.measure('inprocess', 'smoke')
    assert result['counts'] == snapshot(
        {'hard_cancels': 10, 'region_cancels': 1, 'region_tasks': 20, 'left_running': 0, 'soft_acknowledgements': 3}
    )
    assert list(result['figures']) == snapshot(
        [
            'hard cancel, CPU p50 (ms)',
            'hard cancel, CPU p99 (ms)',
            'hard cancel, wall p50 (ms)',
            'hard cancel, wall p99 (ms)',
            'hard cancel, GC off, CPU p50 (ms)',
            'hard cancel, GC off, CPU p99 (ms)',
            'hard cancel, GC off, wall p50 (ms)',
            'hard cancel, GC off, wall p99 (ms)',
            'region cancel of 20, CPU (ms)',
            'region cancel of 20, wall (ms)',
            'soft-cancel acknowledgement, CPU p50 (ms)',
            'soft-cancel acknowledgement, CPU p99 (ms)',
            'soft-cancel acknowledgement, wall p50 (ms)',
            'soft-cancel acknowledgement, wall p99 (ms)',
        ]
    )


def test_seam_runs_alternate_old_and_new_in_fresh_processes() -> None:
    """Old and new runs take turns, round after round, with the loopback run after each new one."""
    assert ab.interleave(2, ('old', 'new', 'loopback')) == snapshot(
        ['old', 'new', 'loopback', 'old', 'new', 'loopback']
    )


def test_seam_table_puts_old_beside_new_with_ratios_of_medians() -> None:
    """Each figure shows the median of the old runs, of the new runs, their ratio, and the loopback beside."""
    old = [{'hard cancel, CPU p50 (ms)': 2.0, 'region cancel of 1,000, wall (ms)': 800.0}] * 2
    new = [
        {'hard cancel, CPU p50 (ms)': 1.0, 'region cancel of 1,000, wall (ms)': 700.0},
        {'hard cancel, CPU p50 (ms)': 3.0, 'region cancel of 1,000, wall (ms)': 1000.0},
        {'hard cancel, CPU p50 (ms)': 2.2, 'region cancel of 1,000, wall (ms)': 900.0},
    ]
    loopback = [{'hard cancel, CPU p50 (ms)': 4.4, 'region cancel of 1,000, wall (ms)': 1800.0}]
    table = ab.table(
        new=ab.Side('new (HEAD, 2d37731)', new),
        old=ab.Side('old (HEAD~5, ee76ac9)', old),
        loopback=ab.Side('loopback', loopback),
    )
    assert table == snapshot(
        [
            '| figure | old (HEAD~5, ee76ac9) | new (HEAD, 2d37731) | new / old | loopback | loopback / new |',
            '|---|---|---|---|---|---|',
            '| hard cancel, CPU p50 (ms) | 2.000 | 2.200 | 1.10× | 4.400 | 2.00× |',
            '| region cancel of 1,000, wall (ms) | 800 | 900 | 1.12× | 1,800 | 2.00× |',
            '',
            'Largest CPU-time ratio new / old: 1.10× (hard cancel, CPU p50 (ms)); above 1 means the new build is slower.',
        ]
    )


def test_seam_table_without_an_old_commit_shows_head_alone() -> None:
    """With no commit to compare against, the table has one column of figures and no ratios."""
    table = ab.table(new=ab.Side('new (HEAD, 2d37731)', [{'hard cancel, CPU p50 (ms)': 0.5}]))
    assert table == snapshot(['| figure | new (HEAD, 2d37731) |', '|---|---|', '| hard cancel, CPU p50 (ms) | 0.500 |'])


@pytest.mark.timeout(180)
def test_seam_command_prints_head_figures_and_says_loopback_is_missing() -> None:
    """`seam.py --size smoke` measures in a fresh process and prints the table, naming a missing loopback."""
    done = subprocess.run(
        [sys.executable, str(SEAM), '--size', 'smoke', '--rounds', '1'],
        capture_output=True,
        text=True,
        check=True,
        timeout=170,
    )
    lines = done.stdout.splitlines()
    assert [line.split(' |')[0] for line in lines if line.startswith('| ') and 'figure' not in line] == snapshot(
        [
            '| hard cancel, CPU p50 (ms)',
            '| hard cancel, CPU p99 (ms)',
            '| hard cancel, wall p50 (ms)',
            '| hard cancel, wall p99 (ms)',
            '| hard cancel, GC off, CPU p50 (ms)',
            '| hard cancel, GC off, CPU p99 (ms)',
            '| hard cancel, GC off, wall p50 (ms)',
            '| hard cancel, GC off, wall p99 (ms)',
            '| region cancel of 20, CPU (ms)',
            '| region cancel of 20, wall (ms)',
            '| soft-cancel acknowledgement, CPU p50 (ms)',
            '| soft-cancel acknowledgement, CPU p99 (ms)',
            '| soft-cancel acknowledgement, wall p50 (ms)',
            '| soft-cancel acknowledgement, wall p99 (ms)',
        ]
    )
    header = next(line for line in lines if line.startswith('| figure |'))
    # Holds before and after the loopback transport lands (issue 12): the column appears once it exists.
    if 'loopback' in seam_trials.available_transports():
        assert header.endswith('| loopback | loopback / new |')
    else:
        assert [line for line in lines if line.startswith('loopback:')] == ['loopback: not available at this commit']


def _temporal_figures(hard_p99_ms: float) -> Figures:
    """The figures of a `temporal_cancel.py` run, made up: one value per kind of figure."""
    spread = {'n': 2, 'p50': 1.0, 'p99': 2.0, 'max': 2.0}
    hard = {
        'trials': 2,
        'wall_ms': spread,
        'owner_cpu_ms': 0.5,
        'other_cpu_ms': 3.0,
        'stopped_before_return': 2,
        'stopped_ms': spread,
        'first_request_ms': spread,
    }
    soft = {'trials': 2, 'acknowledged_ms': spread, 'terminal_ms': spread}
    region = {
        'tasks': 100,
        'wall_ms': 80.0,
        'owner_cpu_ms': 40.0,
        'other_cpu_ms': 0.0,
        'in_flight_other_cpu_ms_per_s': 0.0,
        'still_running': 0,
    }
    outage = {
        'trials': 1,
        'cancelled': 1,
        'in_history_ms': spread,
        'worker_ready_ms': spread,
        'applied_ms': spread,
        'end_to_end_ms': spread,
    }
    return Figures(
        run='2026-01-01 00:00 UTC',
        size='quick',
        seconds=40.0,
        machine='2 cores',
        load='0.00',
        in_process={'hard': hard, 'soft': soft, 'region': region},
        temporal={
            'hard': hard | {'wall_ms': spread | {'p99': hard_p99_ms}},
            'soft': soft,
            'region': region,
            'outage': outage,
        },
    )


def test_report_ends_with_the_temporal_section_and_its_target() -> None:
    """Given the last Temporal figures, the report ends with their table, each figure in process and on workers."""
    machine = Machine.read(started_at=datetime(2026, 1, 1, tzinfo=UTC), seconds=1.0, size='smoke', load='0.00')
    report = render([], machine, temporal=_temporal_figures(hard_p99_ms=2.0))
    assert report.index('## Tasks on Temporal workers') > report.index('## Cancel racing completion')
    section = report[report.index('## Tasks on Temporal workers') :].splitlines()
    assert [line for line in section if line.startswith('|')] == snapshot(
        [
            '| figure | in process | on Temporal workers |',
            '|---|---|---|',
            '| hard cancel: `hard_cancel()` → returned, task stopped (ms, n=2) | p50 1.0, p99 2.0 | p50 1.0, p99 2.0 |',
            '| hard cancel: `hard_cancel()` → its model request cancelled (ms) | p50 1.0, p99 2.0 | p50 1.0, p99 2.0 |',
            '| hard cancel: returned after its model request had stopped | 2 / 2 | 2 / 2 |',
            '| hard cancel: CPU per cancel, owner process (ms, mean) | 0.5 | 0.5 |',
            '| hard cancel: CPU per cancel, workers and server (ms, mean) | — | 3.0 |',
            '| task start → first model request (ms) | p50 1.0, p99 2.0 | p50 1.0, p99 2.0 |',
            '| soft cancel, 200 ms steps: request → acknowledged (ms, n=2) | p50 1.0, p99 2.0 | p50 1.0, p99 2.0 |',
            '| soft cancel, 200 ms steps: request → CANCELLED (ms) | p50 1.0, p99 2.0 | p50 1.0, p99 2.0 |',
            '| region of 100: `hard_cancel_region()` → returned, all stopped (ms) | 80.0 | 80.0 |',
            '| region of 100: CPU, owner process (ms) | 40.0 | 40.0 |',
            '| region of 100: CPU, workers and server (ms) | — | 0.0 |',
            '| region of 100, waiting in model requests: CPU per second, workers and server (ms) | — | 0.0 |',
            '| region of 100: left running | 0 | 0 |',
            '| all workers down: `hard_cancel()` → its signal in the history (ms, n=1) | — | p50 1.0, p99 2.0 |',
            '| all workers down: new worker process → ready (ms) | — | p50 1.0, p99 2.0 |',
            '| all workers down: worker ready → cancel applied (ms) | — | p50 1.0, p99 2.0 |',
            '| all workers down: `hard_cancel()` → returned, end to end (ms) | — | p50 1.0, p99 2.0 |',
            '| all workers down: tasks that ended CANCELLED | — | 1 / 1 |',
        ]
    )
    assert [line for line in section if line.startswith('Target')] == snapshot(
        ['Target: hard cancel p99 ≤ 500 ms on Temporal: met (2.0 ms).']
    )


def test_temporal_section_says_when_the_hard_cancel_target_is_missed() -> None:
    """A hard-cancel p99 on workers above 500 ms is reported as a missed target."""
    lines = temporal_section(_temporal_figures(hard_p99_ms=640.0))
    assert [line for line in lines if line.startswith('Target')] == snapshot(
        ['Target: hard cancel p99 ≤ 500 ms on Temporal: **missed** (640.0 ms).']
    )


TEMPORAL_BENCHMARK = Path(__file__).parent.parent / 'benchmarks' / 'temporal_cancel.py'


@pytest.mark.timeout(240)
def test_temporal_benchmark_runs_on_its_own_server_and_workers() -> None:
    """`temporal_cancel.py --quick` starts a dev server and two workers, and prints every row for both sides."""
    done = subprocess.run(
        [sys.executable, str(TEMPORAL_BENCHMARK), '--quick', '--no-write'],
        capture_output=True,
        text=True,
        check=True,
        timeout=230,
    )
    rows = [line.strip('| ').split(' | ') for line in done.stdout.splitlines() if line.startswith('| ')]
    assert [row[0] for row in rows] == snapshot(
        [
            'figure',
            'hard cancel: `hard_cancel()` → returned, task stopped (ms, n=20)',
            'hard cancel: `hard_cancel()` → its model request cancelled (ms)',
            'hard cancel: returned after its model request had stopped',
            'hard cancel: CPU per cancel, owner process (ms, mean)',
            'hard cancel: CPU per cancel, workers and server (ms, mean)',
            'task start → first model request (ms)',
            'soft cancel, 200 ms steps: request → acknowledged (ms, n=5)',
            'soft cancel, 200 ms steps: request → CANCELLED (ms)',
            'region of 100: `hard_cancel_region()` → returned, all stopped (ms)',
            'region of 100: CPU, owner process (ms)',
            'region of 100: CPU, workers and server (ms)',
            'region of 100, waiting in model requests: CPU per second, workers and server (ms)',
            'region of 100: left running',
            'all workers down: `hard_cancel()` → its signal in the history (ms, n=1)',
            'all workers down: new worker process → ready (ms)',
            'all workers down: worker ready → cancel applied (ms)',
            'all workers down: `hard_cancel()` → returned, end to end (ms)',
            'all workers down: tasks that ended CANCELLED',
        ]
    )
    # What does not depend on the machine's speed: every cancel returned after its task stopped, none left running.
    counts = {
        row[0]: row[1:] for row in rows if 'returned after' in row[0] or 'left running' in row[0] or 'ended' in row[0]
    }
    assert counts == snapshot(
        {
            'hard cancel: returned after its model request had stopped': ['20 / 20', '20 / 20'],
            'region of 100: left running': ['0', '0'],
            'all workers down: tasks that ended CANCELLED': ['—', '1 / 1'],
        }
    )


OVERHEAD = Path(__file__).parent.parent / 'benchmarks' / 'overhead.py'


@pytest.mark.timeout(180)
def test_overhead_command_prints_every_target_beside_pydantic_ai_alone() -> None:
    """`overhead.py --quick` prints one row per figure with pydantic-ai alone beside it, and leaves nothing running."""
    done = subprocess.run(
        [sys.executable, str(OVERHEAD), '--quick'], capture_output=True, text=True, check=True, timeout=170
    )
    rows = [line.split(' | ') for line in done.stdout.splitlines() if line.startswith('| ')]
    assert [row[:2] for row in rows] == snapshot(
        [
            ['| figure', 'target'],
            ['| hard cancel (30 trials), CPU p50 (ms)', '≤ 1.15×'],
            ['| hard cancel (30 trials), CPU p99 (ms)', 'reported'],
            ['| hard cancel (30 trials), wall p50 (ms)', 'reported'],
            ['| hard cancel (30 trials), wall p99 (ms)', '≤ 1 ms'],
            ['| hard cancel (30 trials), the bare seam, CPU p50 (ms)', 'floor'],
            ['| hard cancel (30 trials), the bare seam, wall p99 (ms)', 'floor'],
            ['| region of 100 cancelled, all stopped, GC on, CPU (ms)', '≤ 1.15×'],
            ['| region of 100 cancelled, all stopped, GC on, wall (ms)', '≤ 1.15×'],
            ['| region of 100 cancelled, all stopped, GC on, the bare seam, CPU (ms)', 'floor'],
            ['| region of 100 cancelled, all stopped, GC on: left running', '0'],
            ['| region of 100 cancelled, all stopped, GC off, CPU (ms)', '≤ 1.15×'],
            ['| region of 100 cancelled, all stopped, GC off, wall (ms)', '≤ 1.15×'],
            ['| region of 100 cancelled, all stopped, GC off, the bare seam, CPU (ms)', 'floor'],
            ['| region of 100 cancelled, all stopped, GC off: left running', '0'],
            ['| RSS per blocked task at 100 (KB)', '≤ alone + 8 KB'],
            ['| plain tool awaiting `agent.run()`, CPU p50 (ms)', 'floor'],
            ['| the same, one empty capability per run, CPU p50 (ms)', 'floor'],
            ['| the same, agent built with one empty capability, CPU p50 (ms)', 'floor'],
            ['| foreground `task` (sync), CPU p50 (ms)', '≤ 1.2×'],
            ['| the same, agent built with `TaskCapability`, CPU p50 (ms)', '≤ 1.2×'],
            ['| plain tool awaiting `agent.run()`, wall p50 (ms)', 'floor'],
            ['| the same, one empty capability per run, wall p50 (ms)', 'floor'],
            ['| the same, agent built with one empty capability, wall p50 (ms)', 'floor'],
            ['| foreground `task` (sync), wall p50 (ms)', '≤ 1.2×'],
            ['| the same, agent built with `TaskCapability`, wall p50 (ms)', '≤ 1.2×'],
            ['| `check_task`, CPU p50 (ms)', 'reported'],
            ['| `check_task`, wall p50 (ms)', '≤ 0.3 ms'],
            ['| `list_active_tasks`, CPU p50 (ms)', 'reported'],
            ['| `list_active_tasks`, wall p50 (ms)', '≤ 0.3 ms'],
            ['| `answer_subagent`, CPU p50 (ms)', 'reported'],
            ['| `answer_subagent`, wall p50 (ms)', '≤ 0.3 ms'],
            ['| `soft_cancel_task`, CPU p50 (ms)', 'reported'],
            ['| `soft_cancel_task`, wall p50 (ms)', '≤ 0.3 ms'],
            ['| a soft cancel, the bare seam, CPU p50 (ms)', 'floor'],
            ['| a soft cancel, the bare seam, wall p50 (ms)', 'floor'],
        ]
    )
    assert [row[3] for row in rows if row[0].endswith('left running')] == ['0.000', '0.000']
