"""The benchmark suite's own machinery works: statistics, the report, and the scenarios on this library.

The scenarios run here at their `smoke` size, and only what does not depend on the machine's speed is
asserted (counts, which tasks ended, whether a reply waited for the task). Timing lives in `benchmarks/`.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from adapters import load
from benchkit.stats import percentile, summarize
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
