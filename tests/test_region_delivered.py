"""A region whose join has delivered stays delivered: a later cancel stops nothing and changes no join.

Seed 001: a region's cancel and its normal completion are mutually exclusive. Once a join returned every result
(`RegionCompleted`), a cancel of the region (or of a region inside it) is a no-op that says so; it still closes the
region to new tasks. A cancel that lands before the join has fired wins, as before.
"""

from __future__ import annotations

import anyio
import pytest
from inline_snapshot import snapshot
from pydantic_ai import Agent

from subagents_cancel import (
    CancelReason,
    RegionCancelled,
    RegionCompleted,
    RegionOutcome,
    SubAgentCapability,
    SubAgentConfig,
    SubAgentManager,
    SubAgentPolicy,
    TaskStatus,
)
from subagents_cancel.regions import RegionClosed
from subagents_cancel.testing import ManualClock

from .helpers import Gate, Script, call, calls, replies_of, text

pytestmark = pytest.mark.anyio


def answering(name: str, *answers: str) -> SubAgentConfig:
    """A sub-agent that answers each task it gets with the next of `answers`."""
    return SubAgentConfig(
        name=name, description=f'{name} research', model=Script([text(answer) for answer in answers]).model
    )


async def test_a_region_cancel_after_wait_region_delivered_stops_nothing_and_says_so(clock: ManualClock) -> None:
    """Through the tools: both cancels reply that the region had delivered; wait_region still delivers every result."""
    parent = Script(
        [
            calls(
                (
                    'task',
                    {'subagent_type': 'market_scan', 'description': 'Scan', 'mode': 'async', 'region': 'research'},
                ),
                (
                    'task',
                    {'subagent_type': 'patent_search', 'description': 'Search', 'mode': 'async', 'region': 'research'},
                ),
            ),
            call('wait_region', region='research'),
            call('soft_cancel_region', region='research', reason='the user aborted'),
            call('hard_cancel_region', region='research'),
            call('wait_region', region='research'),
            call('task', subagent_type='market_scan', description='Scan again', mode='async', region='research'),
            text('Research phase delivered.'),
        ]
    )
    configs = [answering('market_scan', 'market: growing'), answering('patent_search', '3 relevant patents')]
    async with SubAgentManager(configs, clock=clock) as manager:
        result = await Agent(parent.model, capabilities=[SubAgentCapability(manager=manager)]).run('Research')
        tasks = manager.region_tasks('research')

    assert result.output == 'Research phase delivered.'
    assert [(task.status, task.cancel) for task in tasks] == [(TaskStatus.COMPLETED, None)] * 2
    assert replies_of(parent.requests[-1])[2:] == snapshot(
        [
            """\
Region 'research' completed: all 2 results.

market_scan-0001:
market: growing

patent_search-0002:
3 relevant patents\
""",
            "Region 'research' had already delivered every result (market_scan-0001, patent_search-0002), so the cancel stopped nothing and wait_region still returns them. No new task can start in the region now.",
            "Region 'research' had already delivered every result (market_scan-0001, patent_search-0002), so the cancel stopped nothing and wait_region still returns them. No new task can start in the region now.",
            """\
Region 'research' completed: all 2 results.

market_scan-0001:
market: growing

patent_search-0002:
3 relevant patents\
""",
            "Region 'research' was cancelled (its region was cancelled: research: the user aborted); no new task can start in it.",
        ]
    )


async def test_cancelling_a_delivered_region_is_a_no_op_whose_outcome_says_so(clock: ManualClock) -> None:
    """Through the Python API: the outcome is `already_delivered`, nothing is stopped, the join still completes."""
    configs = [answering('market_scan', 'market: growing'), answering('patent_search', '3 relevant patents')]
    async with SubAgentManager(configs, clock=clock) as manager:
        market = await manager.run('market_scan', 'Scan', region='research')
        patents = await manager.run('patent_search', 'Search', region='research/patents')
        delivered = await manager.join_region('research')
        soft = await manager.soft_cancel_region_outcome('research', reason=CancelReason(kind='user'))
        hard = await manager.hard_cancel_region('research')
        inner = await manager.soft_cancel_region_outcome('research/patents')
        joined_again = await manager.join_region('research')
        joined_inner = await manager.join_region('research/patents')
        with pytest.raises(RegionClosed):
            await manager.start('market_scan', 'Scan again', region='research')

    assert delivered == RegionCompleted(
        region='research', outputs={market.task_id: 'market: growing', patents.task_id: '3 relevant patents'}
    )
    assert (soft.region, soft.result, soft.tasks) == ('research', 'already_delivered', ())
    assert [(task.task_id, task.status, task.cancel) for task in soft.delivered] == [
        (market.task_id, TaskStatus.COMPLETED, None),
        (patents.task_id, TaskStatus.COMPLETED, None),
    ]
    assert hard == ()
    assert (inner.result, [task.task_id for task in inner.delivered]) == ('already_delivered', [patents.task_id])
    assert joined_again == delivered
    assert joined_inner == RegionCompleted(region='research/patents', outputs={patents.task_id: '3 relevant patents'})


async def test_a_cancel_before_the_join_fired_wins_even_when_every_task_had_completed(clock: ManualClock) -> None:
    """Completed tasks deliver nothing until a join fires: a cancel that comes first makes the join a cancel notice."""
    async with SubAgentManager([answering('market_scan', 'market: growing')], clock=clock) as manager:
        await manager.run('market_scan', 'Scan', region='research')
        cancelled = await manager.soft_cancel_region_outcome('research')
        joined = await manager.join_region('research')

    assert (cancelled.result, cancelled.tasks, cancelled.delivered) == ('cancelled', (), ())
    assert isinstance(joined, RegionCancelled)
    assert [task.status for task in joined.tasks] == [TaskStatus.COMPLETED]


async def test_an_inner_region_that_delivered_stays_delivered_when_the_region_around_it_is_cancelled(
    clock: ManualClock,
) -> None:
    """Cancelling `research` stops its running task; the join of `research/patents`, delivered before, still completes."""
    gate = Gate()
    configs = [
        SubAgentConfig(
            name='market_scan',
            description='market_scan research',
            model=Script([gate.hold(text('never'))]).model,
        ),
        answering('patent_search', '3 relevant patents'),
    ]
    async with SubAgentManager(configs, clock=clock) as manager:
        market = await manager.start('market_scan', 'Scan', region='research')
        patents = await manager.run('patent_search', 'Search', region='research/patents')
        inner = await manager.join_region('research/patents')
        await gate.reached.wait()
        outer = await manager.hard_cancel_region_outcome('research')
        joined_outer = await manager.join_region('research')
        joined_inner = await manager.join_region('research/patents')

    assert inner == RegionCompleted(region='research/patents', outputs={patents.task_id: '3 relevant patents'})
    assert (outer.result, [(task.task_id, task.status) for task in outer.tasks]) == (
        'cancelled',
        [(market.task_id, TaskStatus.CANCELLED)],
    )
    assert isinstance(joined_outer, RegionCancelled)
    assert joined_inner == inner


async def test_a_task_started_in_a_delivered_region_makes_its_next_cancel_stop_it(clock: ManualClock) -> None:
    """A task started in the region after its join is cancelled as usual; the regions inside it it left stay delivered."""
    gate = Gate()
    configs = [
        answering('market_scan', 'market: growing'),
        SubAgentConfig(
            name='patent_search',
            description='patent_search research',
            model=Script([gate.hold(text('never'))], on_cancel=text('patents: partial')).model,
        ),
    ]
    async with SubAgentManager(configs, clock=clock) as manager:
        market = await manager.run('market_scan', 'Scan', region='research/market')
        first = await manager.join_region('research')
        patents = await manager.start('patent_search', 'Search', region='research/patents')
        await gate.reached.wait()
        beside = await manager.soft_cancel_region_outcome('research/market')
        cancelled = await manager.soft_cancel_region_outcome('research')
        gate.release.set()
        joined = await manager.join_region('research')
        joined_beside = await manager.join_region('research/market')

    assert isinstance(first, RegionCompleted)
    assert (beside.result, [task.task_id for task in beside.delivered]) == ('already_delivered', [market.task_id])
    assert (cancelled.result, [task.task_id for task in cancelled.tasks]) == ('cancelled', [patents.task_id])
    assert isinstance(joined, RegionCancelled)
    assert [task.status for task in joined.tasks] == [TaskStatus.COMPLETED, TaskStatus.CANCELLED]
    assert joined_beside == RegionCompleted(region='research/market', outputs={market.task_id: 'market: growing'})


async def test_a_join_that_a_task_joined_while_it_waited_does_not_mark_the_region_delivered(
    clock: ManualClock,
) -> None:
    """The join returns the tasks it waited for; the task that came in meanwhile is still stopped by a cancel."""
    market_gate, patents_gate = Gate(), Gate()
    configs = [
        SubAgentConfig(
            name='market_scan',
            description='market_scan research',
            model=Script([market_gate.hold(text('market'))]).model,
        ),
        SubAgentConfig(
            name='patent_search',
            description='patent_search research',
            model=Script([patents_gate.hold(text('never'))], on_cancel=text('patents: partial')).model,
        ),
    ]
    joined: list[RegionOutcome] = []
    async with SubAgentManager(configs, clock=clock) as manager:
        market = await manager.start('market_scan', 'Scan', region='research')
        await market_gate.reached.wait()
        async with anyio.create_task_group() as group:
            group.start_soon(_join_into, manager, 'research', joined)
            await anyio.wait_all_tasks_blocked()
            await manager.start('patent_search', 'Search', region='research')
            await patents_gate.reached.wait()
            market_gate.release.set()
        _, patents = manager.region_tasks('research')
        cancelled = await manager.soft_cancel_region_outcome('research')
        patents_gate.release.set()
        await manager.wait([patents.task_id])

    assert joined == [RegionCompleted(region='research', outputs={market.task_id: 'market'})]
    assert (cancelled.result, [task.task_id for task in cancelled.tasks]) == ('cancelled', [patents.task_id])
    assert manager.get(patents.task_id).status is TaskStatus.CANCELLED


async def test_a_region_deadline_after_delivery_closes_it_but_keeps_its_results(clock: ManualClock) -> None:
    """A region's time budget running out after its join delivered changes no join; new tasks are refused."""
    async with SubAgentManager([answering('market_scan', 'market: growing')], clock=clock) as manager:
        manager.open_region('research', timeout_seconds=60)
        market = await manager.run('market_scan', 'Scan', region='research')
        delivered = await manager.join_region('research')
        await anyio.wait_all_tasks_blocked()
        clock.advance(60)
        await anyio.wait_all_tasks_blocked()
        with pytest.raises(RegionClosed):
            await manager.start('market_scan', 'Scan again', region='research')
        joined_again = await manager.join_region('research')

    assert delivered == RegionCompleted(region='research', outputs={market.task_id: 'market: growing'})
    assert joined_again == delivered


async def test_a_delivered_region_is_forgotten_with_its_last_task(clock: ManualClock) -> None:
    """A long-lived owner forgets a delivered region with its tasks: a later cancel of the name closes it anew."""
    worker = answering('worker', 'one', 'two')
    async with SubAgentManager([worker], policy=SubAgentPolicy(keep_finished=1), clock=clock) as manager:
        await manager.run('worker', 'Job 1', region='early')
        delivered = await manager.join_region('early')
        await manager.run('worker', 'Job 2')  # one finished task is kept: Job 1 is forgotten, and its region
        regions = manager.regions()
        cancelled = await manager.soft_cancel_region_outcome('early')

    assert isinstance(delivered, RegionCompleted)
    assert (regions, cancelled.result, cancelled.delivered) == ((), 'cancelled', ())


async def _join_into(manager: SubAgentManager, region: str, joined: list[RegionOutcome]) -> None:
    joined.append(await manager.join_region(region))
