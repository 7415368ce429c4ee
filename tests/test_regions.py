"""Cancel regions: one call cancels a named group of tasks, cancel wins over completion, and the join is all-or-nothing."""

from __future__ import annotations

import anyio
import pytest
from inline_snapshot import snapshot
from pydantic_ai import Agent

from subagents_cancel import (
    Cancelled,
    CancelReason,
    Completed,
    PartialResult,
    RegionCancelled,
    RegionCompleted,
    RegionIncomplete,
    SubAgentCapability,
    SubAgentConfig,
    SubAgentManager,
    SubAgentPolicy,
    TaskStatus,
)
from subagents_cancel.errors import ManagerClosed
from subagents_cancel.regions import RegionCancel, RegionClosed
from subagents_cancel.testing import ManualClock

from .helpers import Gate, LingersAfterTheEnd, Script, after, call, calls, replies_of, text

pytestmark = pytest.mark.anyio


def subagent(name: str, script: Script) -> SubAgentConfig:
    return SubAgentConfig(name=name, description=f'{name} research', model=script.model)


def working(name: str) -> tuple[SubAgentConfig, Gate]:
    """A sub-agent whose first step is held at a gate; it wraps up with `<name>: partial` once told to stop."""
    gate = Gate()
    script = Script([gate.hold(call('checkpoint', completed=['step 1']))], on_cancel=text(f'{name}: partial'))
    return subagent(name, script), gate


async def test_user_abort_cancels_the_research_phase_as_its_last_task_completes(clock: ManualClock) -> None:
    """Seed 001: the region's hard cancel fires after Patent Search's run has ended: its output wins, the set does not."""
    (market, market_gate), (competitors, competitors_gate) = working('market_scan'), working('competitor_analysis')
    patents_finishing = LingersAfterTheEnd()
    patents = SubAgentConfig(
        name='patent_search',
        description='patent_search research',
        agent=Agent(Script([text('3 relevant patents')]).model, capabilities=[patents_finishing]),
    )
    user_aborts = anyio.Event()
    parent = Script(
        [
            calls(
                *(
                    (
                        'task',
                        dict[str, object](
                            subagent_type=name, description=f'{name} for EV chargers', mode='async', region='research'
                        ),
                    )
                    for name in ('market_scan', 'competitor_analysis', 'patent_search')
                )
            ),
            after(user_aborts, call('hard_cancel_region', region='research', reason='the user aborted')),
            call('wait_region', region='research'),
            text('Research phase aborted.'),
        ]
    )
    async with SubAgentManager([market, competitors, patents], clock=clock) as manager:
        agent = Agent(parent.model, capabilities=[SubAgentCapability(manager=manager)])
        async with anyio.create_task_group() as group:
            group.start_soon(agent.run, 'Research EV chargers')
            await market_gate.reached.wait()
            await competitors_gate.reached.wait()
            await patents_finishing.reached.wait()
            user_aborts.set()
        still_running = manager.active_tasks()
        tasks = manager.region_tasks('research')

    assert still_running == ()
    assert [(task.subagent, task.status) for task in tasks] == [
        ('market_scan', TaskStatus.CANCELLED),
        ('competitor_analysis', TaskStatus.CANCELLED),
        ('patent_search', TaskStatus.COMPLETED),
    ]
    assert market_gate.stopped.is_set() and competitors_gate.stopped.is_set()
    assert tasks[2].outcome == Completed('3 relevant patents')
    assert tasks[2].cancel is not None and tasks[2].cancel.lost
    assert tasks[2].cancel.reason == CancelReason(kind='region', detail='research: the user aborted')
    assert replies_of(parent.requests[-1])[3:] == snapshot(
        [
            "Region 'research' is cancelled: stopped market_scan-0001, competitor_analysis-0002; patent_search-0003 had finished before the cancel arrived. wait_region shows what each had.",
            """\
Region 'research' was cancelled (hard, its region was cancelled: research: the user aborted); there is no complete set of results.

Task cancelled: market_scan-0001 (hard, its region was cancelled: research: the user aborted; it ended 0.0 ms after the request). It recorded no checkpoint and sent no final message.

Task cancelled: competitor_analysis-0002 (hard, its region was cancelled: research: the user aborted; it ended 0.0 ms after the request). It recorded no checkpoint and sent no final message.

patent_search-0003: COMPLETED in 0.0 ms (it had finished before the cancel arrived). Output:
3 relevant patents\
""",
        ]
    )


async def test_a_soft_region_cancel_names_the_tasks_that_had_finished_first(clock: ManualClock) -> None:
    """A task whose run had accepted its answer is not told to wrap up: the reply says it had finished first."""
    (market, market_gate) = working('market_scan')
    patents_finishing = LingersAfterTheEnd()
    patents = SubAgentConfig(
        name='patent_search',
        description='patent_search research',
        agent=Agent(Script([text('3 relevant patents')]).model, capabilities=[patents_finishing]),
    )
    parent = Script(
        [
            calls(
                ('task', {'subagent_type': 'market_scan', 'description': 'Scan', 'mode': 'async', 'region': 'r'}),
                ('task', {'subagent_type': 'patent_search', 'description': 'Search', 'mode': 'async', 'region': 'r'}),
            ),
            after(patents_finishing.reached, call('soft_cancel_region', region='r')),
            text('done'),
        ]
    )
    async with SubAgentManager([market, patents], clock=clock) as manager:
        await Agent(parent.model, capabilities=[SubAgentCapability(manager=manager)]).run('go')
        patents_finishing.release.set()
        market_gate.release.set()
        joined = await manager.join_region('r')
    assert isinstance(joined, RegionCancelled)
    assert [(task.subagent, task.status) for task in joined.tasks] == [
        ('market_scan', TaskStatus.CANCELLED),
        ('patent_search', TaskStatus.COMPLETED),
    ]
    assert replies_of(parent.requests[-1])[2:] == snapshot(
        [
            "Region 'r' is cancelled: market_scan-0001 has been told to wrap up; patent_search-0002 had finished before "
            'the cancel arrived. wait_region shows what each had; no other task in it can complete now.'
        ]
    )


async def test_a_soft_region_cancel_and_its_join_end_where_logfire_is_not_configured(
    clock: ManualClock, logfire_not_configured: None
) -> None:
    """Tasks with no span: the finished one stays COMPLETED, the two blocked ones wrap up, and the join returns."""
    analyst = subagent('analyst', Script([text('6.2 bn EUR')]))
    gates = {'brands': Gate(), 'suppliers': Gate()}
    researchers = [
        subagent(name, Script([call('checkpoint', completed=['size']), gate.block_forever()], on_cancel=text('stop')))
        for name, gate in gates.items()
    ]
    policy = SubAgentPolicy(preempt_on_soft_cancel=True)
    async with SubAgentManager([analyst, *researchers], clock=clock, policy=policy) as manager:
        analysed = await manager.start('analyst', 'Size the market', region='research')
        await manager.wait([analysed.task_id])
        for name, gate in gates.items():
            await manager.start(name, f'Research {name}', region='research')
            await gate.reached.wait()
        await manager.soft_cancel_region('research', reason=CancelReason(detail='the launch is off'))
        joined = await manager.join_region('research')
    assert isinstance(joined, RegionCancelled)
    assert [(task.subagent, task.status, task.outcome) for task in joined.tasks] == snapshot(
        [
            ('analyst', TaskStatus.COMPLETED, Completed(output='6.2 bn EUR')),
            (
                'brands',
                TaskStatus.CANCELLED,
                Cancelled(
                    mode='soft',
                    reason=CancelReason(detail='the launch is off'),
                    partial=PartialResult(completed=('size',), final_message='stop', checkpoints=1, read_request=True),
                ),
            ),
            (
                'suppliers',
                TaskStatus.CANCELLED,
                Cancelled(
                    mode='soft',
                    reason=CancelReason(detail='the launch is off'),
                    partial=PartialResult(completed=('size',), final_message='stop', checkpoints=1, read_request=True),
                ),
            ),
        ]
    )


async def test_soft_region_cancel_wins_over_an_answer_in_flight(clock: ManualClock) -> None:
    """A task whose final answer was on its way when the region's soft cancel fired ends CANCELLED, answer kept."""
    (market, market_gate) = working('market_scan')
    answering = Gate()
    patents = subagent(
        'patent_search', Script([answering.hold(text('3 relevant patents'))], on_cancel=text('patent_search: partial'))
    )
    async with SubAgentManager([market, patents], clock=clock) as manager:
        await manager.start('market_scan', 'Scan', region='research')
        await manager.start('patent_search', 'Search', region='research')
        await market_gate.reached.wait()
        await answering.reached.wait()
        clock.advance(2.0)
        asked = await manager.soft_cancel_region('research')
        answering.release.set()
        market_gate.release.set()
        joined = await manager.join_region('research')

    assert [task.status for task in asked] == [TaskStatus.RUNNING, TaskStatus.RUNNING]
    assert isinstance(joined, RegionCancelled)
    assert joined.cancel == RegionCancel(mode='soft', reason=CancelReason(kind='region', detail='research'), at=2.0)
    assert [(task.subagent, task.status) for task in joined.tasks] == [
        ('market_scan', TaskStatus.CANCELLED),
        ('patent_search', TaskStatus.CANCELLED),
    ]
    outcomes = [task.outcome for task in joined.tasks]
    assert [outcome.partial.final_message for outcome in outcomes if isinstance(outcome, Cancelled)] == [
        'market_scan: partial',
        '3 relevant patents',  # the answer the model was writing stands, on every pydantic-ai version
    ]


async def test_join_is_all_or_nothing(clock: ManualClock) -> None:
    """A region whose cancel fired delivers a notice even when some tasks completed before it; never a partial set."""
    (market, _) = working('market_scan')
    patents = subagent('patent_search', Script([text('3 relevant patents')]))
    async with SubAgentManager([market, patents], clock=clock) as manager:
        done = await manager.run('patent_search', 'Search', region='research')
        await manager.start('market_scan', 'Scan', region='research')
        await manager.hard_cancel_region('research')
        joined = await manager.join_region('research')

    assert manager.get(done.task_id).outcome == Completed('3 relevant patents')  # completed and left: untouched
    assert isinstance(joined, RegionCancelled)
    assert [task.status for task in joined.tasks] == [TaskStatus.COMPLETED, TaskStatus.CANCELLED]


async def test_join_delivers_every_result_or_says_which_task_did_not_complete(clock: ManualClock) -> None:
    failing = Script([])  # no step: the run raises, so the task fails
    configs = [
        subagent('market_scan', Script([text('market: growing')])),
        subagent('patent_search', Script([text('3 relevant patents')])),
        subagent('competitor_analysis', failing),
    ]
    async with SubAgentManager(configs, clock=clock) as manager:
        market = await manager.run('market_scan', 'Scan', region='research')
        patents = await manager.run('patent_search', 'Search', region='research')
        whole = await manager.join_region('research')
        failed = await manager.run('competitor_analysis', 'Compare', region='research/competitors')
        incomplete = await manager.join_region('research')

    assert whole == RegionCompleted(
        region='research', outputs={market.task_id: 'market: growing', patents.task_id: '3 relevant patents'}
    )
    assert isinstance(incomplete, RegionIncomplete)
    assert [(task.task_id, task.status) for task in incomplete.tasks] == [
        (market.task_id, TaskStatus.COMPLETED),
        (patents.task_id, TaskStatus.COMPLETED),
        (failed.task_id, TaskStatus.FAILED),
    ]


async def test_regions_nest_outer_reaches_inner_not_the_reverse_nor_siblings(clock: ManualClock) -> None:
    names = ('market_scan', 'patent_search', 'competitor_analysis', 'writer')
    configs, gates = zip(*(working(name) for name in names), strict=True)
    async with SubAgentManager(configs, clock=clock) as manager:
        market = await manager.start('market_scan', 'Scan', region='research')
        patents = await manager.start('patent_search', 'Search', region='research/patents')
        competitors = await manager.start('competitor_analysis', 'Compare', region='research/competitors')
        writer = await manager.start('writer', 'Draft', region='writing')
        for gate in gates:
            await gate.reached.wait()

        inner = await manager.hard_cancel_region('research/patents')
        after_inner = {info.task_id: info.status for info in manager.tasks()}
        outer = await manager.hard_cancel_region('research')
        after_outer = {
            info.subagent: (info.status, info.cancel and info.cancel.reason.detail) for info in manager.tasks()
        }
        with pytest.raises(RegionClosed):
            await manager.start('market_scan', 'Scan again', region='research/market')

    assert [info.task_id for info in inner] == [patents.task_id]
    assert after_inner == {
        market.task_id: TaskStatus.RUNNING,
        patents.task_id: TaskStatus.CANCELLED,
        competitors.task_id: TaskStatus.RUNNING,
        writer.task_id: TaskStatus.RUNNING,
    }
    assert [info.task_id for info in outer] == [market.task_id, competitors.task_id]
    assert after_outer == {
        'market_scan': (TaskStatus.CANCELLED, 'research'),
        'patent_search': (TaskStatus.CANCELLED, 'research/patents'),
        'competitor_analysis': (TaskStatus.CANCELLED, 'research'),
        'writer': (TaskStatus.RUNNING, None),
    }


async def test_a_cancelled_region_takes_no_new_task_and_the_parent_is_told_why(clock: ManualClock) -> None:
    (market, _) = working('market_scan')
    parent = Script(
        [
            call('task', subagent_type='market_scan', description='Scan', mode='async', region='research'),
            call('soft_cancel_region', region='research', reason='budget spent'),
            call('task', subagent_type='market_scan', description='Scan again', mode='async', region='research/eu'),
            call('soft_cancel_region', region='nowhere'),
            call('wait_region', region='nowhere'),
            text('ok'),
        ]
    )
    async with SubAgentManager([market], clock=clock) as manager:
        agent = Agent(parent.model, capabilities=[SubAgentCapability(manager=manager)])
        await agent.run('Go')
    assert replies_of(parent.requests[-1]) == snapshot(
        [
            'Task started with ID: market_scan-0001 (market_scan); it runs in the background. Follow it with check_task or wait_tasks; stop it with soft_cancel_task or hard_cancel_task.',
            "Region 'research' is cancelled: market_scan-0001 has been told to wrap up. wait_region shows their partial results; no task in it can complete now.",
            "Region 'research/eu' was cancelled (its region was cancelled: research: budget spent); no new task can start in it.",
            "Region 'nowhere' is cancelled; it had no running task, and no new task can start in it.",
            "No task was started in region 'nowhere'; pass the region you gave to `task`.",
        ]
    )


async def test_region_deadline_cancels_its_tasks_with_reason_deadline(clock: ManualClock) -> None:
    (market, market_gate), (writer, writer_gate) = working('market_scan'), working('writer')
    async with SubAgentManager([market, writer], clock=clock) as manager:
        manager.open_region('research', timeout_seconds=60)
        scan = await manager.start('market_scan', 'Scan', region='research/market')
        draft = await manager.start('writer', 'Draft')
        await market_gate.reached.wait()
        await writer_gate.reached.wait()
        await anyio.wait_all_tasks_blocked()
        clock.advance(59.0)
        await anyio.wait_all_tasks_blocked()
        assert manager.get(scan.task_id).cancel is None
        clock.advance(1.0)
        market_gate.release.set()
        (ended,) = (await manager.wait([scan.task_id])).tasks
        untouched = manager.get(draft.task_id)

    assert ended.status is TaskStatus.CANCELLED
    assert ended.cancel is not None
    assert (ended.cancel.mode, ended.cancel.reason, ended.cancel.requested_at) == (
        'soft',
        CancelReason(kind='deadline', detail='research'),
        60.0,
    )
    assert isinstance(ended.outcome, Cancelled) and ended.outcome.partial.final_message == 'market_scan: partial'
    assert untouched.cancel is None


async def test_a_region_budget_ends_with_its_manager(clock: ManualClock) -> None:
    """The timer of a region's time budget does not outlive the manager (the stray-task check would fail)."""
    (market, _) = working('market_scan')
    async with SubAgentManager([market], clock=clock) as manager:
        manager.open_region('research', timeout_seconds=60)
    with pytest.raises(ManagerClosed):
        manager.open_region('research', timeout_seconds=60)
