"""Seed 001's figures per region and per owner: the cancel rate, how fast cancels took effect, orphaned side effects.

A cancelled task whose cleanup hook raised, ran out of time or never ran leaves side effects behind: it counts as
*orphaned*. The figures come from `SubAgentManager.metrics()` and, as OpenTelemetry metrics, from logfire (read back
with its `capfire` fixture).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import anyio
import pytest
from inline_snapshot import snapshot
from logfire.testing import CaptureLogfire
from pydantic_ai import Agent

from subagents_cancel import (
    SubAgentCapability,
    SubAgentConfig,
    SubAgentManager,
    SubAgentPolicy,
    TaskInfo,
    current_task,
)
from subagents_cancel.config import CleanupHook
from subagents_cancel.metrics import REGIONS_KEPT, Durations
from subagents_cancel.testing import ManualClock

from .helpers import Gate, Script, after, call, calls, replies_of, text

pytestmark = pytest.mark.anyio


class Hooks:
    """Cleanup hooks that succeed, raise, or hang until the policy's `hook_seconds` stop them."""

    def __init__(self) -> None:
        self.hanging = anyio.Event()

    async def succeeds(self, info: TaskInfo) -> None:
        pass

    async def raises(self, info: TaskInfo) -> None:
        raise OSError('the staging bucket is unreachable')

    async def hangs(self, info: TaskInfo) -> None:
        self.hanging.set()
        await anyio.sleep_forever()


def held(name: str, cleanup: CleanupHook) -> tuple[SubAgentConfig, Gate]:
    """A sub-agent whose first step is held at a gate; it wraps up at once when told to stop."""
    gate = Gate()
    script = Script([gate.hold(call('checkpoint', completed=['step 1']))], on_cancel=text(f'{name}: partial'))
    return SubAgentConfig(name=name, description=f'{name} research', model=script.model, cleanup=cleanup), gate


def task_args(name: str, *, region: str | None) -> dict[str, object]:
    """The arguments of an async `task` call of the sub-agent `name`, in `region` if one is given."""
    args: dict[str, object] = {'subagent_type': name, 'description': f'{name} for EV chargers', 'mode': 'async'}
    return args if region is None else args | {'region': region}


def sums(metrics: list[dict[str, Any]], metric: str, *keys: str) -> dict[tuple[object, ...], float]:
    """The sum (or value) of each data point of `metric`, by the attributes `keys`."""
    for found in metrics:
        if found['name'] == metric:
            points = cast(list[dict[str, Any]], found['data']['data_points'])
            return {
                tuple(point['attributes'].get(key) for key in keys): point['sum'] if 'sum' in point else point['value']
                for point in points
            }
    raise AssertionError(f'no metric {metric!r}')


async def test_a_region_cancelled_through_the_tools_counts_its_orphaned_side_effects(
    capfire: CaptureLogfire, clock: ManualClock
) -> None:
    """Two of three cleanups in a hard-cancelled region fail (one raises, one times out): an orphaned share of 2/3."""
    hooks = Hooks()
    (market, market_gate), (patents, patents_gate), (glossary, glossary_gate) = (
        held('market_scan', hooks.raises),
        held('patent_search', hooks.hangs),
        held('glossary', hooks.succeeds),
    )
    summary = SubAgentConfig(name='summary', description='Summarises', model=Script([text('summary done')]).model)
    user_aborts = anyio.Event()
    parent = Script(
        [
            calls(
                *(
                    ('task', task_args(name, region='research'))
                    for name in ('market_scan', 'patent_search', 'glossary')
                ),
                ('task', task_args('summary', region=None)),
            ),
            after(user_aborts, call('hard_cancel_region', region='research', reason='the user aborted')),
            text('Research phase aborted.'),
        ]
    )
    policy = SubAgentPolicy(hook_seconds=2)
    async with SubAgentManager([market, patents, glossary, summary], clock=clock, policy=policy) as manager:
        agent = Agent(parent.model, capabilities=[SubAgentCapability(manager=manager)])
        async with anyio.create_task_group() as group:
            group.start_soon(agent.run, 'Research EV chargers')
            for gate in (market_gate, patents_gate, glossary_gate):
                await gate.reached.wait()
            clock.advance(1.5)
            user_aborts.set()
            await hooks.hanging.wait()
        await anyio.wait_all_tasks_blocked()
        clock.advance(2)  # the hanging cleanup runs out of time
        await manager.wait([task.task_id for task in manager.tasks()])
        figures = manager.metrics()

    assert replies_of(parent.requests[-1])[4:] == snapshot(
        [
            "Region 'research' is cancelled: stopped market_scan-0001, patent_search-0002, glossary-0003. wait_region shows what each had."
        ]
    )
    research = figures.region('research')
    assert (research.finished, research.cancelled, research.orphaned) == (3, 3, 2)
    assert (research.cancel_rate, research.orphaned_share) == (1.0, pytest.approx(2 / 3))
    assert research.stop_times('hard') == Durations(count=3, p50_seconds=0.0, p99_seconds=0.0, max_seconds=0.0)
    assert [(run.subagent, run.region) for run in research.cancelled_runs] == snapshot(
        [('market_scan', 'research'), ('patent_search', 'research'), ('glossary', 'research')]
    )
    assert figures.regions == (research,)  # the summary task had no region
    owner = figures.owner
    assert (owner.finished, owner.completed, owner.cancelled, owner.orphaned) == (4, 1, 3, 2)
    assert (owner.cancel_rate, owner.orphaned_share) == (0.75, pytest.approx(2 / 3))
    assert (figures.of('market_scan').orphaned, figures.of('glossary').orphaned) == (1, 0)

    metrics = capfire.get_collected_metrics()  # read once: counters and histograms report deltas
    assert sums(metrics, 'subagents.region.tasks.finished', 'region', 'status') == {('research', 'CANCELLED'): 3}
    assert sums(metrics, 'subagents.region.cancel.stop_time', 'region', 'mode') == {('research', 'hard'): 0.0}
    assert sums(metrics, 'subagents.cancelled.orphaned', 'subagent', 'region') == {
        ('market_scan', 'research'): 1,
        ('patent_search', 'research'): 1,
    }


async def test_a_soft_region_cancel_has_its_response_times_and_a_cancel_rate_beside_other_regions(
    clock: ManualClock,
) -> None:
    """Through the Python API: a soft region cancel read after 0.5 s; another region's completed task rates 0."""
    hooks = Hooks()
    (crawler, crawler_gate), (reader, reader_gate) = held('crawler', hooks.succeeds), held('reader', hooks.succeeds)
    writer = SubAgentConfig(name='writer', description='Writes', model=Script([text('draft')]).model)
    async with SubAgentManager([crawler, reader, writer], clock=clock) as manager:
        crawl = await manager.start('crawler', 'Crawl the site', region='crawl')
        read = await manager.start('reader', 'Read the pages', region='crawl')
        await manager.run('writer', 'Write it up', region='writing')
        await crawler_gate.reached.wait()
        await reader_gate.reached.wait()
        await manager.soft_cancel_region('crawl')
        clock.advance(0.5)
        crawler_gate.release.set()
        reader_gate.release.set()
        await manager.wait([crawl.task_id, read.task_id])
        figures = manager.metrics()

    crawl_figures, writing = figures.region('crawl'), figures.region('writing')
    assert (crawl_figures.cancelled, crawl_figures.cancel_rate, crawl_figures.orphaned_share) == (2, 1.0, 0.0)
    assert crawl_figures.stop_times('soft') == snapshot(
        Durations(count=2, p50_seconds=0.5, p99_seconds=0.5, max_seconds=0.5)
    )
    assert crawl_figures.acknowledge_times() == snapshot(
        Durations(count=2, p50_seconds=0.5, p99_seconds=0.5, max_seconds=0.5)
    )
    assert (writing.completed, writing.cancel_rate, writing.orphaned_share) == (1, 0.0, None)
    assert [entry.region for entry in figures.regions] == ['writing', 'crawl']  # least recently ended first
    assert (figures.owner.finished, figures.owner.cancel_rate) == (3, pytest.approx(2 / 3))


async def test_only_the_most_recent_regions_keep_figures(clock: ManualClock) -> None:
    """A long-lived owner keeps the figures of its `REGIONS_KEPT` most recent regions; the owner's counts keep all."""
    writer = SubAgentConfig(
        name='writer', description='Writes', model=Script([text('draft')] * (REGIONS_KEPT + 1)).model
    )
    async with SubAgentManager([writer], clock=clock) as manager:
        for number in range(REGIONS_KEPT + 1):
            await manager.run('writer', 'Write it up', region=f'request-{number}')
        figures = manager.metrics()

    assert (len(figures.regions), figures.regions_dropped) == (REGIONS_KEPT, 1)
    assert figures.regions[0].region == 'request-1'
    assert figures.region('request-0').finished == 0  # dropped: all zero, like a region never seen
    assert figures.owner.completed == REGIONS_KEPT + 1


async def test_an_owner_records_its_cancel_rate_when_it_closes(capfire: CaptureLogfire, clock: ManualClock) -> None:
    """Per research request: each owner records its own cancel rate and orphaned share once, as it closes."""
    hooks = Hooks()
    crawler, crawler_gate = held('crawler', hooks.raises)
    writer = SubAgentConfig(name='writer', description='Writes', model=Script([text('draft')]).model)
    async with SubAgentManager([crawler, writer], clock=clock) as manager:
        await manager.run('writer', 'Write it up')
        task = await manager.start('crawler', 'Crawl')
        await crawler_gate.reached.wait()
        await manager.hard_cancel(task.task_id)

    metrics = capfire.get_collected_metrics()
    assert sums(metrics, 'subagents.owner.cancel_rate') == {(): 0.5}
    assert sums(metrics, 'subagents.owner.orphaned_share') == {(): 1.0}


async def test_a_completed_task_whose_promote_hook_fails_is_not_orphaned(clock: ManualClock) -> None:
    """Only a cancelled task leaves orphaned side effects: a completed one's failed promote is its `cleanup_error`."""

    def write(name: str) -> str:
        """Stage a file of the report."""
        task = current_task()
        assert task is not None
        (task.scratch_dir / name).write_text('# Q3')
        return f'wrote {name}'

    async def promote(info: TaskInfo, scratch: Path) -> None:
        raise OSError('the publishing share is read-only')

    script = Script([call('write', name='report.md'), text('Report written.')])
    writer = SubAgentConfig(
        name='writer', description='Writes', agent=Agent(script.model, tools=[write]), promote=promote
    )
    async with SubAgentManager([writer], clock=clock) as manager:
        info = await manager.run('writer', 'Write the report', region='writing')
        figures = manager.metrics()

    assert manager.get(info.task_id).cleanup_error == 'its hook raised OSError'
    writing = figures.region('writing')
    assert (writing.completed, writing.orphaned, writing.orphaned_share) == (1, 0, None)
    assert (figures.owner.orphaned, figures.of('writer').orphaned) == (0, 0)
