"""Application shutdown: tasks are told, given a grace window, then stopped; a real process on SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from subagents_cancel import Cancelled, CancelReason, Completed, SubAgentConfig, SubAgentManager, TaskStatus
from subagents_cancel.shutdown import ShutdownReport, shutdown

from .helpers import Gate, Script, WatchedClock, call, text

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).parent.parent


def config(name: str, script: Script) -> SubAgentConfig:
    return SubAgentConfig(name=name, description=name, model=script.model)


async def test_shutdown_lets_tasks_wrap_up_then_stops_the_rest(clock: WatchedClock) -> None:
    """One task wraps up in the grace window, one never reads the request and is stopped; both keep partials."""
    reading, stuck = Gate(), Gate()
    careful = Script([reading.hold(call('checkpoint', completed=['a']))], on_cancel=text('Completed: a'))
    blocked = Script([call('checkpoint', completed=['outline']), stuck.block_forever()])
    done = Script([text('finished before the shutdown')])
    configs = [config('careful', careful), config('blocked', blocked), config('done', done)]
    async with SubAgentManager(configs, clock=clock) as manager:
        finished = await manager.start('done', 'x')
        await manager.wait([finished.task_id])
        careful_task = await manager.start('careful', 'x')
        await manager.start('blocked', 'x')
        await reading.reached.wait()
        await stuck.reached.wait()

        async def run_the_clock() -> None:
            await clock.wait_for_deadline(10)  # the cancel requests are out, with their grace windows
            reading.release.set()  # its next request carries the request, and it wraps up
            await manager.wait([careful_task.task_id])
            clock.advance(10)

        reports: list[ShutdownReport] = []
        async with anyio.create_task_group() as group:
            group.start_soon(run_the_clock)
            reports.append(await shutdown([manager], grace_seconds=10))
        (report,) = reports

    assert [task.subagent for task in report.tasks] == ['careful', 'blocked']
    assert [task.subagent for task in report.stopped_in_grace] == ['careful']
    assert [task.subagent for task in report.hard_cancelled] == ['blocked']
    assert report.unresponsive == () and report.lingering_threads == 0
    careful_info, blocked_info = report.tasks
    assert isinstance(careful_info.outcome, Cancelled) and not careful_info.outcome.escalated
    assert careful_info.outcome.reason == CancelReason(kind='parent_ended', detail='the application is shutting down')
    assert (careful_info.outcome.mode, careful_info.outcome.partial.final_message) == ('soft', 'Completed: a')
    assert isinstance(blocked_info.outcome, Cancelled) and blocked_info.outcome.escalated
    assert blocked_info.outcome.partial.completed == ('outline',)
    assert manager.get(finished.task_id).outcome == Completed('finished before the shutdown')


async def test_shutdown_with_nothing_running_returns_at_once(clock: WatchedClock) -> None:
    """No task: an empty report, and no wait on the clock."""
    async with SubAgentManager([config('done', Script([text('ok')]))], clock=clock) as manager:
        report = await shutdown([manager], grace_seconds=30)
    assert report.tasks == () and report.grace_seconds == 30


def test_sigterm_ends_every_task_keeps_partials_and_exits() -> None:
    """A real process gets SIGTERM: every task ends, the partial results are kept, and it exits by itself."""
    with subprocess.Popen(
        [sys.executable, '-m', 'tests.sigterm_app'], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as app:
        assert app.stdout is not None
        assert app.stdout.readline() == 'ready\n'
        app.send_signal(signal.SIGTERM)
        out, err = app.communicate(timeout=15)  # a bound for a hang, not a timing claim
    assert app.returncode == 0, err
    report = json.loads(out)
    assert report == {
        'signal': 'SIGTERM',
        'tasks': [
            {'subagent': 'quick', 'status': 'COMPLETED', 'output': 'quick answer'},
            {
                'subagent': 'careful',
                'status': 'CANCELLED',
                'mode': 'soft',
                'escalated': False,
                'completed': ['sources'],
                'final_message': 'Completed: sources. In progress: analysis (half done).',
            },
            {
                'subagent': 'stuck',
                'status': 'CANCELLED',
                'mode': 'hard',
                'escalated': True,
                'completed': ['outline'],
                'final_message': 'None',
            },
        ],
        'stopped_in_grace': 1,
        'hard_cancelled': 1,
        'unresponsive': 0,
        'orphans': 0,
    }
    assert all(task['status'] != TaskStatus.RUNNING.value for task in report['tasks'])
