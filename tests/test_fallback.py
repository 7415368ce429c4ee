"""Fallback on cancel: a cancelled task's fallback takes over with its request and partial result; first writer wins."""

from __future__ import annotations

import anyio
import pytest
from inline_snapshot import snapshot
from pydantic_ai import Agent

from subagents_cancel import Cancelled, Completed, SubAgentCapability, SubAgentConfig, SubAgentManager, TaskStatus
from subagents_cancel.errors import ConfigError, UnknownSubAgent
from subagents_cancel.testing import ManualClock

from .helpers import TASK_ID, Gate, Script, after, call, replies_of, text, user_prompts

pytestmark = pytest.mark.anyio


def report_generator(script: Script, **settings: object) -> SubAgentConfig:
    return SubAgentConfig.model_validate(
        {'name': 'report_generator', 'description': 'Writes the full report', 'model': script.model, **settings}
    )


def quick_summary(script: Script) -> SubAgentConfig:
    return SubAgentConfig(name='quick_summary', description='Summarises in a paragraph', model=script.model)


def drafting(gate: Gate) -> Script:
    """A report generator that checkpoints its first section, then works on the second until told to stop."""
    return Script(
        [
            call('checkpoint', completed=['market section'], in_progress=['competitors'], findings=['market +12%']),
            gate.hold(call('checkpoint', completed=['market section'], in_progress=['competitors'])),
        ],
        on_cancel=text('Draft: market section done.'),
    )


async def test_parent_cancels_the_report_and_gets_the_quick_summary(clock: ManualClock) -> None:
    """Seed 002: the report generator is soft-cancelled; the quick summary's output is delivered in its place."""
    second_section = Gate()
    summary = Script([text('Summary: the market grew 12%.')])
    user_waits_no_longer = anyio.Event()
    parent = Script(
        [
            call('task', subagent_type='report_generator', description='Q3 market report', mode='async'),
            after(user_waits_no_longer, call('soft_cancel_task', task_id=TASK_ID, reason='the user needs it now')),
            call('wait_tasks'),
            text('Here is the summary.'),
        ]
    )
    configs = [report_generator(drafting(second_section), fallback='quick_summary'), quick_summary(summary)]
    agent = Agent(parent.model, capabilities=[SubAgentCapability(subagents=configs, clock=clock)])
    async with anyio.create_task_group() as group:
        group.start_soon(agent.run, 'Write the Q3 report')
        await second_section.reached.wait()
        user_waits_no_longer.set()
        while len(parent.requests) < 3:
            await anyio.wait_all_tasks_blocked()
        second_section.release.set()

    assert user_prompts(summary.requests[0]) == snapshot(
        [
            """\
Q3 market report

(You are taking over from a task that was cancelled (the work is no longer needed: the user needs it now). What it had done:
Completed: market section
In progress: competitors
Not started: nothing
Findings: market +12%
(from 2 checkpoints)
Its final message:
Draft: market section done.
Build on what it did; do not repeat finished work.)\
"""
        ]
    )
    assert replies_of(parent.requests[-1])[1:] == snapshot(
        [
            'Cancellation requested for report_generator-0001: it has been told, and it hands back partial results within 30s or is stopped. check_task or wait_tasks will show them.',
            """\
The task has ended.

Task cancelled: report_generator-0001 (soft, on request: the user needs it now; it read the request after 0.0 ms; it ended 0.0 ms after the request). Partial results:
Completed: market section
In progress: competitors
Not started: nothing
Findings: market +12%
(from 2 checkpoints)
Its final message:
Draft: market section done.
Its fallback quick_summary-0002 (quick_summary) delivered this result in its place:
Summary: the market grew 12%.\
""",
        ]
    )


async def test_generator_that_completes_first_never_starts_the_fallback(clock: ManualClock) -> None:
    summary = Script([])  # would fail if it ever ran
    configs = [report_generator(Script([text('The full report.')]), fallback='quick_summary'), quick_summary(summary)]
    async with SubAgentManager(configs, clock=clock) as manager:
        info = await manager.run('report_generator', 'Q3 market report')
        assert await manager.soft_cancel(info.task_id) == info  # too late: it changes nothing
        every_task = manager.tasks()

    assert info.outcome == Completed('The full report.')
    assert [task.task_id for task in every_task] == [info.task_id]
    assert summary.requests == []


async def test_deadline_hands_over_to_the_fallback_named_by_the_call(clock: ManualClock) -> None:
    """A fallback given to `start` takes over from a task stopped by its deadline; waiting covers both."""
    second_section = Gate()
    summary = Script([text('Summary: the market grew 12%.')])
    configs = [report_generator(drafting(second_section)), quick_summary(summary)]
    async with SubAgentManager(configs, clock=clock) as manager:
        task = await manager.start('report_generator', 'Q3 market report', timeout_seconds=60, fallback='quick_summary')
        await second_section.reached.wait()
        await anyio.wait_all_tasks_blocked()
        clock.advance(60)
        second_section.release.set()
        (info,) = (await manager.wait([task.task_id])).tasks

    assert info.status is TaskStatus.CANCELLED
    assert isinstance(info.outcome, Cancelled) and info.outcome.reason.kind == 'deadline'
    assert info.fallback is not None
    assert (info.fallback.fallback_for, info.fallback.outcome) == (
        task.task_id,
        Completed('Summary: the market grew 12%.'),
    )


async def test_hard_cancel_during_the_wrap_up_still_hands_over(clock: ManualClock) -> None:
    """However the original ends once cancelled, the fallback gets what it had; the original is not retried."""
    second_section = Gate()
    summary = Script([text('Summary.')])
    configs = [report_generator(drafting(second_section), fallback='quick_summary'), quick_summary(summary)]
    async with SubAgentManager(configs, clock=clock) as manager:
        task = await manager.start('report_generator', 'Q3 market report')
        await second_section.reached.wait()
        info = await manager.hard_cancel(task.task_id)
        (waited,) = (await manager.wait([task.task_id])).tasks

    assert second_section.stopped.is_set()
    assert info.fallback is not None and info.fallback.status in {TaskStatus.PENDING, TaskStatus.RUNNING}
    assert waited.fallback is not None and waited.fallback.outcome == Completed('Summary.')
    assert 'market +12%' in user_prompts(summary.requests[0])[0]


def test_a_fallback_must_name_another_configured_subagent() -> None:
    summary = quick_summary(Script([]))
    with pytest.raises(ConfigError, match='falls back'):
        SubAgentManager([report_generator(Script([]), fallback='nobody'), summary])
    with pytest.raises(ConfigError, match='falls back'):
        SubAgentManager([report_generator(Script([]), fallback='report_generator'), summary])


async def test_an_unknown_fallback_in_a_call_is_refused(clock: ManualClock) -> None:
    configs = [report_generator(Script([])), quick_summary(Script([]))]
    async with SubAgentManager(configs, clock=clock) as manager:
        with pytest.raises(UnknownSubAgent):
            await manager.start('report_generator', 'Q3 market report', fallback='nobody')
        assert manager.tasks() == ()
