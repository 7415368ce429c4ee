"""Tasks, outcomes, region outcomes and cancel figures show as readable HTML in a notebook, never a dataclass dump.

Jupyter asks an object for its `text/html` form through IPython's formatter; these tests ask the same way.
"""

from __future__ import annotations

from typing import Any, cast

import pytest
from inline_snapshot import snapshot
from IPython.core.formatters import HTMLFormatter
from pydantic_ai import Agent

from subagents_cancel import (
    CancelReason,
    Completed,
    Failed,
    SubAgentCapability,
    SubAgentConfig,
    SubAgentManager,
    TaskInfo,
)
from subagents_cancel.notebook_view import tasks_html
from subagents_cancel.testing import ManualClock

from .helpers import TASK_ID, Gate, Script, after, call, researcher, text

pytestmark = pytest.mark.anyio

SCRIPT_TAG = '<script>alert(1)</script>'


def html(value: object) -> str:
    """What a notebook shows for `value`: its `text/html` form."""
    rendered = cast(Any, HTMLFormatter)()(value)
    assert isinstance(rendered, str), f'{type(value).__name__} has no HTML form'
    return rendered


def stable(rendered: str, *tasks: TaskInfo) -> str:
    """`rendered` with the tasks' random ids replaced by `<name>-0001`, … in the order given."""
    for number, task in enumerate(tasks, start=1):
        rendered = rendered.replace(task.task_id, f'{task.subagent}-{number:04x}')
    return rendered


def phase(done: str, *, next_up: str, findings: str) -> Any:
    return call('checkpoint', completed=[done], in_progress=[next_up], not_started=['outlook'], findings=[findings])


async def test_a_soft_cancelled_task_shows_its_cancel_its_checkpoints_and_its_wrap_up(clock: ManualClock) -> None:
    """A task the parent's model soft-cancels shows its status, the read request, its progress and final message."""
    working = Gate()
    sub = Script(
        [phase('market size', next_up='competitors', findings='EU: 6 bn EUR'), working.block_forever()],
        on_cancel=text('Completed: market size.'),
    )
    async with SubAgentManager([researcher(sub, preempt_on_soft_cancel=True)], clock=clock) as manager:
        parent = Script(
            [
                call('task', description='Research e-bikes', subagent_type='researcher', mode='async'),
                after(working.reached, call('soft_cancel_task', task_id=TASK_ID, reason='plans changed')),
                call('wait_tasks'),
                text('done'),
            ]
        )
        await Agent(parent.model, capabilities=[SubAgentCapability(manager=manager)]).run('go')
        (info,) = manager.tasks()

    assert stable(html(info), info) == snapshot(
        '<div class="subagents-cancel-task"><table><tr><th style="text-align:left">task</th><td><b>researcher-0001</b> <span style="background:#7c3aed;color:#fff;padding:0 4px;border-radius:3px">CANCELLED</span> researcher · 1 checkpoint(s) · 0.00 s · soft cancel (user: plans changed), read after 0.00 s</td></tr><tr><th style="text-align:left">description</th><td>Research e-bikes</td></tr><tr><th style="text-align:left">outcome</th><td><div><b>Cancelled</b>: soft cancel (user: plans changed)<table><tr><th style="text-align:left">checkpoints</th><td>1 (read the cancel request)</td></tr><tr><th style="text-align:left">completed</th><td>market size</td></tr><tr><th style="text-align:left">in progress</th><td>competitors</td></tr><tr><th style="text-align:left">not started</th><td>outlook</td></tr><tr><th style="text-align:left">findings</th><td>EU: 6 bn EUR</td></tr><tr><th style="text-align:left">final message</th><td><pre>Completed: market size.</pre></td></tr></table></div></td></tr><tr><th style="text-align:left">usage</th><td>3 request(s), 211 tokens</td></tr></table></div>'
    )


async def test_a_hard_cancelled_task_hands_back_its_checkpoints_only(clock: ManualClock) -> None:
    """A hard cancel's outcome shows the mode, the reason and the checkpoints; no final message."""
    working = Gate()
    sub = Script([phase('market size', next_up='competitors', findings='EU: 6 bn EUR'), working.block_forever()])
    async with SubAgentManager([researcher(sub)], clock=clock) as manager:
        task = await manager.start('researcher', 'Research e-bikes')
        await working.reached.wait()
        info = await manager.hard_cancel(task.task_id)

    assert html(info.outcome) == snapshot(
        '<div><b>Cancelled</b>: hard cancel (user)<table><tr><th style="text-align:left">checkpoints</th><td>1 (did not read the cancel request)</td></tr><tr><th style="text-align:left">completed</th><td>market size</td></tr><tr><th style="text-align:left">in progress</th><td>competitors</td></tr><tr><th style="text-align:left">not started</th><td>outlook</td></tr><tr><th style="text-align:left">findings</th><td>EU: 6 bn EUR</td></tr></table></div>'
    )


def test_completed_and_failed_outcomes_show_their_output_and_error() -> None:
    """An output is shown as text (a structure in Python notation); a failure by its type and our message."""
    assert html(Completed('Market: 6 bn EUR')) == snapshot('<div><b>Completed</b><pre>Market: 6 bn EUR</pre></div>')
    assert html(Completed({'market': 6, 'unit': 'bn EUR'})) == snapshot(
        "<div><b>Completed</b><pre>{'market': 6, 'unit': 'bn EUR'}</pre></div>"
    )
    assert html(Failed('UsageLimitExceeded', 'The sub-agent used up its request limit.')) == snapshot(
        '<div><b>Failed</b>: UsageLimitExceeded: The sub-agent used up its request limit.</div>'
    )


def test_the_plain_repr_stays_the_dataclass_repr() -> None:
    """Only the notebook form is new: `repr` (which tests and docs pin) is unchanged."""
    assert repr(Completed('ok')) == snapshot("Completed(output='ok')")
    assert repr(Failed('ValueError', 'bad')) == snapshot("Failed(error_type='ValueError', message='bad')")


async def test_text_from_users_and_models_is_escaped(clock: ManualClock) -> None:
    """A `<script>` in a description, a finding, a reason or an output is shown as text, never run."""
    working = Gate()
    sub = Script(
        [call('checkpoint', completed=[SCRIPT_TAG], findings=[SCRIPT_TAG]), working.block_forever()],
        on_cancel=text(SCRIPT_TAG),
    )
    config = SubAgentConfig(name='researcher', description='Researches', model=sub.model, preempt_on_soft_cancel=True)
    async with SubAgentManager([config], clock=clock) as manager:
        task = await manager.start('researcher', f'Summarise {SCRIPT_TAG}')
        await working.reached.wait()
        await manager.soft_cancel(task.task_id, reason=CancelReason(detail=SCRIPT_TAG))
        (info,) = (await manager.wait([task.task_id])).tasks

    shown = html(info) + html(Completed(SCRIPT_TAG)) + tasks_html([info])
    assert '<script' not in shown
    assert shown.count('&lt;script&gt;alert(1)&lt;/script&gt;') == snapshot(8)


async def test_a_cancelled_region_shows_its_cancel_and_what_each_task_had(clock: ManualClock) -> None:
    """The join of a soft-cancelled region shows the region's cancel and each task, the completed one included."""
    working = Gate()
    quick = Script([text('Market: 6 bn EUR')])
    slow = Script(
        [phase('pricing', next_up='features', findings='Rival A is 15% cheaper'), working.block_forever()],
        on_cancel=text('Completed: pricing.'),
    )
    configs = [
        SubAgentConfig(name='market', description='Sizes markets', model=quick.model),
        SubAgentConfig(name='rivals', description='Studies rivals', model=slow.model, preempt_on_soft_cancel=True),
    ]
    async with SubAgentManager(configs, clock=clock) as manager:
        market = await manager.start('market', 'Size the market', region='research')
        rivals = await manager.start('rivals', 'Compare rivals', region='research')
        await manager.wait([market.task_id])
        await working.reached.wait()
        await manager.soft_cancel_region('research')
        joined = await manager.join_region('research')

    assert stable(html(joined), market, rivals) == snapshot(
        '<div><b>Region research: cancelled (soft, region: research)</b>; no complete set of results.<div class="subagents-cancel-task"><table><tr><th style="text-align:left">task</th><td><b>market-0001</b> <span style="background:#15803d;color:#fff;padding:0 4px;border-radius:3px">COMPLETED</span> market · 0 checkpoint(s) · 0.00 s</td></tr><tr><th style="text-align:left">description</th><td>Size the market</td></tr><tr><th style="text-align:left">region</th><td>research</td></tr><tr><th style="text-align:left">outcome</th><td><div><b>Completed</b><pre>Market: 6 bn EUR</pre></div></td></tr><tr><th style="text-align:left">usage</th><td>1 request(s), 57 tokens</td></tr></table></div><div class="subagents-cancel-task"><table><tr><th style="text-align:left">task</th><td><b>rivals-0002</b> <span style="background:#7c3aed;color:#fff;padding:0 4px;border-radius:3px">CANCELLED</span> rivals · 1 checkpoint(s) · 0.00 s · soft cancel (region: research), read after 0.00 s</td></tr><tr><th style="text-align:left">description</th><td>Compare rivals</td></tr><tr><th style="text-align:left">region</th><td>research</td></tr><tr><th style="text-align:left">outcome</th><td><div><b>Cancelled</b>: soft cancel (region: research)<table><tr><th style="text-align:left">checkpoints</th><td>1 (read the cancel request)</td></tr><tr><th style="text-align:left">completed</th><td>pricing</td></tr><tr><th style="text-align:left">in progress</th><td>features</td></tr><tr><th style="text-align:left">not started</th><td>outlook</td></tr><tr><th style="text-align:left">findings</th><td>Rival A is 15% cheaper</td></tr><tr><th style="text-align:left">final message</th><td><pre>Completed: pricing.</pre></td></tr></table></div></td></tr><tr><th style="text-align:left">usage</th><td>3 request(s), 212 tokens</td></tr></table></div></div>'
    )


async def test_the_cancel_figures_are_tables(clock: ManualClock) -> None:
    """`manager.metrics()` shows one row per sub-agent and one per cancelled run."""
    working = Gate()
    done = Script([text('Market: 6 bn EUR')])
    stuck = Script([working.block_forever()])
    configs = [
        SubAgentConfig(name='market', description='Sizes markets', model=done.model),
        SubAgentConfig(name='rivals', description='Studies rivals', model=stuck.model),
    ]
    async with SubAgentManager(configs, clock=clock) as manager:
        await manager.run('market', 'Size the market')
        rivals = await manager.start('rivals', 'Compare rivals')
        await working.reached.wait()
        await manager.hard_cancel(rivals.task_id)
        metrics = manager.metrics()

    assert stable(html(metrics), rivals) == snapshot(
        '<div class="subagents-cancel-metrics"><table><tr><th>sub-agent</th><th>completed</th><th>failed</th><th>cancelled</th><th>cancel rate</th><th>p50 read (soft)</th><th>p50 stop (soft)</th><th>p50 stop (hard)</th><th>tokens after request</th><th>tokens saved</th></tr><tr><td>market</td><td>1</td><td>0</td><td>0</td><td>0%</td><td>-</td><td>-</td><td>-</td><td>0</td><td>-</td></tr><tr><td>rivals</td><td>0</td><td>0</td><td>1</td><td>100%</td><td>-</td><td>-</td><td>0.00 s</td><td>0</td><td>-</td></tr></table><table><tr><th>task</th><th>mode</th><th>reason</th><th>checkpoints</th><th>read after</th><th>stopped after</th><th>tokens</th><th>tokens after request</th></tr><tr><td>rivals-0001</td><td>hard</td><td>user</td><td>0</td><td>-</td><td>0.00 s</td><td>0</td><td>0</td></tr></table><p>unresponsive (orphans): 0</p></div>'
    )


async def test_the_cancel_figures_show_each_region_and_the_orphaned_side_effects(clock: ManualClock) -> None:
    """With regions, a table per region (and all tasks), and a line for cancelled tasks whose cleanup failed."""

    async def cleanup(info: TaskInfo) -> None:
        raise OSError('the staging bucket is unreachable')

    working = Gate()
    configs = [
        SubAgentConfig(name='market', description='Sizes markets', model=Script([text('Market: 6 bn EUR')]).model),
        SubAgentConfig(
            name='rivals', description='Studies rivals', model=Script([working.block_forever()]).model, cleanup=cleanup
        ),
    ]
    async with SubAgentManager(configs, clock=clock) as manager:
        await manager.run('market', 'Size the market', region='research')
        rivals = await manager.start('rivals', 'Compare rivals', region='research')
        await working.reached.wait()
        await manager.hard_cancel_region('research')
        await manager.wait([rivals.task_id])
        metrics = manager.metrics()

    rendered = stable(html(metrics), rivals)
    regions = rendered[rendered.index('<table><tr><th>region</th>') : rendered.index('<table><tr><th>task</th>')]
    assert regions == snapshot(
        '<table><tr><th>region</th><th>completed</th><th>failed</th><th>cancelled</th><th>cancel rate</th><th>p50 stop (soft)</th><th>p50 stop (hard)</th><th>orphaned side effects</th></tr><tr><td>research</td><td>1</td><td>0</td><td>1</td><td>50%</td><td>-</td><td>0.00 s</td><td>1 (100%)</td></tr><tr><td><i>all tasks</i></td><td>1</td><td>0</td><td>1</td><td>50%</td><td>-</td><td>0.00 s</td><td>1 (100%)</td></tr></table>'
    )
    assert rendered[rendered.index('<p>orphaned') :] == snapshot(
        '<p>orphaned side effects (cleanup failed): 1 (100%) of the cancelled tasks</p><p>unresponsive (orphans): 0</p></div>'
    )


async def test_the_task_tree_shows_each_task_on_one_line(clock: ManualClock) -> None:
    """`tasks_html` draws every task with its status, checkpoints and cancel, ready for a live view."""
    working = Gate()
    sub = Script([phase('market size', next_up='competitors', findings='EU'), working.block_forever()])
    async with SubAgentManager([researcher(sub)], clock=clock) as manager:
        task = await manager.start('researcher', 'Research e-bikes')
        await working.reached.wait()
        running = tasks_html(manager.tasks())
        await manager.hard_cancel(task.task_id)
        ended = tasks_html(manager.tasks())

    assert [stable(running, task), stable(ended, task)] == snapshot(
        [
            '<ul class="subagents-cancel-tree"><li><b>researcher-0001</b> <span style="background:#2563eb;color:#fff;padding:0 4px;border-radius:3px">RUNNING</span> researcher · 1 checkpoint(s) · 0.00 s</li></ul>',
            '<ul class="subagents-cancel-tree"><li><b>researcher-0001</b> <span style="background:#7c3aed;color:#fff;padding:0 4px;border-radius:3px">CANCELLED</span> researcher · 1 checkpoint(s) · 0.00 s · hard cancel (user)</li></ul>',
        ]
    )
    assert tasks_html([]) == snapshot('<p><i>no tasks</i></p>')


async def test_a_task_waiting_for_an_answer_shows_its_question_and_its_progress(clock: ManualClock) -> None:
    """While a task runs, its card shows its latest progress and the question it waits on, escaped."""
    sub = Script(
        [
            phase('market size', next_up='competitors', findings='EU: 6 bn EUR'),
            call('ask_parent', question='<b>EU</b> or US?'),
            text('EU market: 6 bn EUR'),
        ]
    )
    async with SubAgentManager([researcher(sub)], clock=clock) as manager:
        task = await manager.start('researcher', 'Research e-bikes')
        (waiting,) = (await manager.wait([task.task_id])).tasks  # it returns when the task asks
        await manager.answer(task.task_id, 'EU')
        await manager.wait([task.task_id])

    assert stable(html(waiting), waiting) == snapshot(
        '<div class="subagents-cancel-task"><table><tr><th style="text-align:left">task</th><td><b>researcher-0001</b> <span style="background:#d97706;color:#fff;padding:0 4px;border-radius:3px">WAITING_FOR_ANSWER</span> researcher · 1 checkpoint(s) · 0.00 s</td></tr><tr><th style="text-align:left">description</th><td>Research e-bikes</td></tr><tr><th style="text-align:left">asks</th><td>&lt;b&gt;EU&lt;/b&gt; or US?</td></tr><tr><th style="text-align:left">completed</th><td>market size</td></tr><tr><th style="text-align:left">in progress</th><td>competitors</td></tr></table></div>'
    )


async def test_a_soft_cancel_that_ran_out_of_grace_shows_it_escalated(clock: ManualClock) -> None:
    """A sub-agent that never read the request shows the escalation, in its cancel line and in its outcome."""
    stuck = Gate()
    sub = Script([phase('market size', next_up='competitors', findings='EU'), stuck.block_forever()])
    async with SubAgentManager([researcher(sub, grace_seconds=5.0)], clock=clock) as manager:
        task = await manager.start('researcher', 'Research e-bikes')
        await stuck.reached.wait()
        await manager.soft_cancel(task.task_id)
        clock.advance(5.0)
        (info,) = (await manager.wait([task.task_id])).tasks

    assert stable(tasks_html([info]), info) == snapshot(
        '<ul class="subagents-cancel-tree"><li><b>researcher-0001</b> <span style="background:#7c3aed;color:#fff;padding:0 4px;border-radius:3px">CANCELLED</span> researcher · 1 checkpoint(s) · 5.00 s · hard cancel (user), escalated after 5.00 s</li></ul>'
    )
    assert html(info.outcome).startswith(
        '<div><b>Cancelled</b>: hard cancel (user), escalated: the grace window expired<table>'
    )


async def test_regions_that_were_not_cancelled_show_every_output_or_why_not(clock: ManualClock) -> None:
    """A region whose tasks all completed shows each output; one where a task was cancelled alone is incomplete."""
    stuck = Gate()
    quick = Script([text('Market: 6 bn EUR'), text('Rivals: 4')])
    slow = Script([stuck.block_forever()])
    configs = [
        SubAgentConfig(name='quick', description='Answers at once', model=quick.model),
        SubAgentConfig(name='slow', description='Never answers', model=slow.model),
    ]
    async with SubAgentManager(configs, clock=clock) as manager:
        market = await manager.start('quick', 'Size the market', region='done')
        await manager.wait([market.task_id])
        completed = await manager.join_region('done')
        rivals = await manager.start('quick', 'Count rivals', region='mixed')
        patents = await manager.start('slow', 'Search patents', region='mixed')
        await stuck.reached.wait()
        await manager.hard_cancel(patents.task_id)
        incomplete = await manager.join_region('mixed')

    assert stable(html(completed), market) == snapshot(
        '<div><b>Region done: completed</b><table><tr><th style="text-align:left">quick-0001</th><td><pre>Market: 6 bn EUR</pre></td></tr></table></div>'
    )
    shown = stable(html(incomplete), rivals, patents)
    assert shown.startswith('<div><b>Region mixed: incomplete</b>')
    assert 'Rivals: 4' in shown and shown.count('>CANCELLED</span>') == 1


def test_a_huge_output_is_shown_cut_with_the_count_of_what_was_left_out() -> None:
    """An output longer than 2,000 characters shows its start and how many characters it leaves out."""
    shown = html(Completed('x' * 1_000_000))
    assert len(shown) < 2_100
    assert shown.endswith('xxx… (998,000 more characters)</pre></div>')


async def test_a_task_that_handed_back_nothing_shows_so_and_the_fallback_in_its_place(clock: ManualClock) -> None:
    """A task stopped before any checkpoint says it handed back nothing, and shows the fallback that took over."""
    stuck = Gate()
    configs = [
        SubAgentConfig(
            name='report', description='Writes reports', model=Script([stuck.block_forever()]).model, fallback='summary'
        ),
        SubAgentConfig(name='summary', description='Sums up', model=Script([text('Quick summary.')]).model),
    ]
    async with SubAgentManager(configs, clock=clock) as manager:
        task = await manager.start('report', 'Q3 report')
        await stuck.reached.wait()
        await manager.hard_cancel(task.task_id)
        (info,) = (await manager.wait([task.task_id])).tasks

    assert info.fallback is not None
    shown = stable(html(info), info, info.fallback)
    assert 'It handed back nothing: no checkpoint and no final message.' in shown
    (_, below) = shown.split('<th style="text-align:left">tasks below</th>')
    assert below == snapshot(
        '<td><div>fallback: <b>summary-0002</b> <span style="background:#15803d;color:#fff;padding:0 4px;border-radius:3px">COMPLETED</span> summary · 0 checkpoint(s) · 0.00 s</div></td></tr></table></div>'
    )
