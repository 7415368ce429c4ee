"""The main job: the seed scenarios, played offline by scripted models (or by a real model you name).

1. **A research pipeline the user aborts**: a lead researcher with searchers of its own, and a market
   searcher, all in the cancel region `research`; the user presses Stop and the region is cancelled
   softly: the searchers hand back first (cascade), then the lead, then the region reports. A glossary
   searcher outside the region is not affected and completes.
2. **A report generator replaced by a quick summary**: the parent soft-cancels a long report; the
   writer hands back its partial report, and its fallback writes a quick summary from it.
3. **A stuck sub-agent, escalated**: a crawler hangs in a model request, cannot read the soft cancel,
   and is stopped when its grace window runs out.

A live tree shows every task as its state changes; a table of the cancel figures follows.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
from pydantic_ai import Agent
from pydantic_ai.messages import ModelResponse, TextPart, ToolCallPart
from pydantic_ai.models import Model
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from .capability import SubAgentCapability
from .config import SubAgentConfig
from .demo_log import Narrator, transport_log
from .demo_scripts import ParentStep, parent_model, phased_worker, research_lead
from .manager import SubAgentManager
from .messages import CancelReason
from .metrics import CancelMetrics, Durations
from .results import TaskInfo
from .states import TaskStatus
from .transport import InProcessTransport

__all__ = ('run_demo',)

_STYLES = {
    TaskStatus.PENDING: 'dim',
    TaskStatus.RUNNING: 'yellow',
    TaskStatus.WAITING_FOR_ANSWER: 'cyan',
    TaskStatus.COMPLETED: 'green',
    TaskStatus.FAILED: 'red',
    TaskStatus.CANCELLED: 'magenta',
}
_STEP_SECONDS = 0.5
"""How long one scripted model request of a sub-agent takes."""


def _step(tool: str, delay_seconds: float = 0.3, **args: object) -> ParentStep:
    """A parent request that calls `tool`; the string `'{task}'` in an argument becomes the latest task id."""

    def respond(ids: list[str]) -> ModelResponse:
        filled = {name: _fill(value, ids) for name, value in args.items()}
        return ModelResponse(parts=[ToolCallPart(tool, filled)])

    return ParentStep(respond, delay_seconds)


def _fill(value: object, ids: list[str]) -> object:
    if value == '{task}':
        return ids[-1]
    if value == ['{task}']:
        return ids[-1:]
    return value


def _answer(text: str) -> ParentStep:
    return ParentStep(lambda ids: ModelResponse(parts=[TextPart(text)]), 0.2)


def _tasks(*tasks: dict[str, object]) -> ParentStep:
    return ParentStep(lambda ids: ModelResponse(parts=[ToolCallPart('task', dict(task)) for task in tasks]))


@dataclass(frozen=True, slots=True)
class _Scenario:
    title: str
    prompt: str
    """What the user asks the parent (a real model follows it; the script plays it)."""
    script: Sequence[ParentStep]
    interrupt: Callable[[SubAgentManager, Console, bool], Coroutine[Any, Any, None]] | None = None
    """What the application does meanwhile (the user pressing Stop); the flag says a real model plays."""


async def _user_presses_stop(manager: SubAgentManager, console: Console, real: bool) -> None:
    await anyio.sleep(8.0 if real else 1.6)
    console.print('[bold]user[/]      pressed Stop: the application soft-cancels region [bold]research[/]')
    reason = CancelReason(kind='user', detail='the user pressed Stop')
    await manager.soft_cancel_region('research', reason=reason, grace_seconds=4.0)


_SCENARIOS = (
    _Scenario(
        'Research pipeline, aborted by the user',
        "Research solid-state batteries in the background, in region 'research': a lead researcher for the "
        "literature (region 'research/literature') and a searcher for market data (region 'research/market'); "
        'also have a searcher compile a glossary, outside the region. Wait for the region, then for the glossary, '
        'and report what they delivered.',
        [
            _tasks(
                {
                    'description': 'Survey the literature on solid-state batteries',
                    'subagent_type': 'lead',
                    'mode': 'async',
                    'region': 'research/literature',
                },
                {
                    'description': 'Collect market data on solid-state batteries',
                    'subagent_type': 'searcher',
                    'mode': 'async',
                    'region': 'research/market',
                },
                {'description': 'Compile a glossary of battery terms', 'subagent_type': 'searcher', 'mode': 'async'},
            ),
            _step('wait_region', region='research'),
            _step('wait_tasks', task_ids=['{task}']),
            _answer(
                'The user stopped the research; the region handed back its partial results, and the glossary is done.'
            ),
        ],
        _user_presses_stop,
    ),
    _Scenario(
        'Report generator replaced by a quick summary',
        'Write the quarterly report in the background. The board meeting then moves up: soft-cancel the report '
        'so that its fallback writes a quick summary, wait for the task, and give the summary.',
        [
            _step('task', description='Write the quarterly report', subagent_type='report_writer', mode='async'),
            _step('soft_cancel_task', 1.4, task_id='{task}', reason='the board meeting moved up'),
            _step('wait_tasks', task_ids=['{task}']),
            _answer('Sent the quick summary to the board.'),
        ],
    ),
    _Scenario(
        'A stuck sub-agent, escalated',
        'Crawl the supplier site in the background; it is not needed after all, so soft-cancel it at once, '
        'wait for it and say how it ended.',
        [
            _step('task', description='Crawl the supplier site', subagent_type='crawler', mode='async'),
            _step('soft_cancel_task', 1.0, task_id='{task}', reason='not needed any more'),
            _step('wait_tasks', task_ids=['{task}']),
            _answer('The crawler did not react to the request and was stopped when its grace window ran out.'),
        ],
    ),
)


_SEARCHER_FINDINGS = {
    'glossary': ('anode, cathode', 'solid electrolyte', 'dendrite', 'energy density', 'cycle life', '24 terms'),
    'market': ('9 market reports', 'pilot lines', 'cells cost 3x Li-ion', 'mass market 2030s', 'EV-led', '9 cited'),
    'sulfide': ('7 recent papers', 'highest conductivity', 'moisture-sensitive', 'interfaces', 'lead', '7 cited'),
    'oxide': ('5 recent papers', 'stable in air', 'brittle, hard to sinter', 'thin films', 'niche', '5 cited'),
}
"""What a scripted searcher finds, by the first keyword of its task."""


def _searcher_findings(prompt: str) -> tuple[str, ...]:
    keyword = next((word for word in _SEARCHER_FINDINGS if word in prompt.lower()), 'glossary')
    return _SEARCHER_FINDINGS[keyword]


def _subagents(model: str | Model | None, console: Console, last_seen: dict[str, TaskInfo]) -> list[SubAgentConfig]:
    """The sub-agents; with a real `model`, all but the crawler (a model cannot be stuck on purpose) use it.

    The lead's own tool calls are shown too, so the log shows its searchers hand back before it does, and the
    last state of its searchers is kept in `last_seen` for the tree.
    """
    searcher_model = model or phased_worker(
        ('sources', 'reading', 'key facts', 'open questions', 'summary', 'references'),
        _searcher_findings,
        step_seconds=_STEP_SECONDS,
    )
    searcher = SubAgentConfig(name='searcher', description='Searches one topic in phases', model=searcher_model)
    lead = Agent(
        model or research_lead(('sulfide electrolytes', 'oxide electrolytes'), step_seconds=0.3),
        name='lead',
        capabilities=[
            SubAgentCapability(subagents=[searcher]),
            Narrator(console, 'lead', headlines=True, last_seen=last_seen),
        ],
    )
    return [
        SubAgentConfig(name='lead', description='Leads a literature survey with searchers of its own', agent=lead),
        searcher,
        SubAgentConfig(
            name='report_writer',
            description='Writes a long report section by section',
            model=model
            or phased_worker(
                ('revenue', 'costs', 'regions', 'outlook', 'risks', 'appendix'),
                ('revenue +12%', 'costs flat', 'EU leads', 'steady', 'supply chain', 'tables'),
                step_seconds=_STEP_SECONDS,
            ),
            fallback='quick_summary',
        ),
        SubAgentConfig(
            name='quick_summary',
            description='Writes a short summary from whatever is at hand',
            model=model or phased_worker((), ('Quick summary: revenue +12%, costs flat.',), step_seconds=0.6),
        ),
        SubAgentConfig(
            name='crawler',
            description='Crawls a website',
            model=phased_worker(('sitemap', 'pages', 'links'), ('120 pages',) * 3, step_seconds=0.4, stuck_in_phase=1),
            grace_seconds=1.0,
        ),
    ]


@dataclass
class _TaskView:
    """The live tree: the tasks of each scenario, their own sub-agents' tasks, and fallbacks."""

    manager: SubAgentManager
    groups: list[tuple[str, list[str]]] = field(default_factory=list[tuple[str, list[str]]])
    nested: dict[str, dict[str, TaskInfo]] = field(default_factory=dict[str, dict[str, TaskInfo]])
    """The tasks of a task's own sub-agents, as last seen while it ran (the API lists only active ones)."""
    gone: set[str] = field(default_factory=set[str])
    last_seen: dict[str, TaskInfo] = field(default_factory=dict[str, TaskInfo])
    """The nested tasks as their parent last saw them, after its tool calls: how the ended ones ended."""

    def begin(self, title: str) -> None:
        self.groups.append((title, []))

    def poll(self) -> None:
        seen = {task_id for _, ids in self.groups for task_id in ids}
        for info in self.manager.tasks():
            if info.task_id not in seen and info.fallback_for is None:
                self.groups[-1][1].append(info.task_id)
            self._remember(info)

    def _remember(self, info: TaskInfo) -> None:
        known = self.nested.setdefault(info.task_id, {})
        current: dict[str, TaskInfo] = {child.task_id: child for child in info.subtasks}
        self.gone |= set(known) - set(current)
        known.update(current)
        for child in info.subtasks:
            self._remember(child)

    def render(self) -> Tree:
        root = Tree('[bold]tasks[/]')
        for title, ids in self.groups:
            branch = root.add(f'[bold]{title}[/]')
            for task_id in ids:
                self._add(branch, self.manager.get(task_id))
        return root

    def _add(self, branch: Tree, info: TaskInfo) -> None:
        node = branch.add(_label(info, ended=False))
        for child in self.nested.get(info.task_id, {}).values():
            if child.task_id in self.gone:
                last = self.last_seen.get(child.task_id, child)
                node.add(_label(last, ended=not last.is_terminal))
            else:
                self._add(node, child)
        if info.fallback is not None:
            node.add(Text('replaced by ').append_text(_label(info.fallback, ended=False)))


def _label(info: TaskInfo, *, ended: bool) -> Text:
    label = Text(f'{info.task_id} ', style='bold')
    if ended:
        return label.append('ended', style='dim')  # not seen since it ended: the API lists only active ones
    label.append(info.status.name, style=_STYLES[info.status]).append(f'  {info.elapsed_seconds:.1f}s')
    label.append(f'  {len(info.checkpoints)} checkpoint(s)')
    if info.region:
        label.append(f'  region {info.region}', style='blue')
    if info.cancel is not None:
        how = 'soft cancel, escalated' if info.cancel.escalated_at is not None else f'{info.cancel.mode} cancel'
        read = ', read' if info.cancel.acknowledged_at is not None else ''
        label.append(f'  ({how}{read})', style='magenta')
    return label


def _seconds(durations: Durations) -> str:
    return '-' if durations.p50_seconds is None else f'{durations.p50_seconds:.2f}'


def _metrics_tables(metrics: CancelMetrics) -> Group:
    """The cancel figures per sub-agent, in two tables that fit 80 columns: outcomes, then the cancels' costs."""
    outcomes = Table(title="Outcomes of the parents' tasks", caption='Nested tasks count on their own managers.')
    for column in ('sub-agent', 'completed', 'cancelled', 'cancel rate', 'escalated'):
        outcomes.add_column(column, justify='left' if column == 'sub-agent' else 'right', no_wrap=True)
    costs = Table(title='Cancels: p50 seconds from the request, and tokens')
    for column in ('sub-agent', 'soft: read', 'soft: stopped', 'hard: stopped', 'tokens used', 'tokens after request'):
        costs.add_column(column, justify='left' if column == 'sub-agent' else 'right', no_wrap=column == 'sub-agent')
    for entry in metrics.subagents:
        rate = '-' if entry.cancel_rate is None else f'{entry.cancel_rate:.0%}'
        escalated = sum(run.escalated for run in entry.cancelled_runs)
        outcomes.add_row(entry.subagent, str(entry.completed), str(entry.cancelled), rate, str(escalated))
        costs.add_row(
            entry.subagent,
            _seconds(entry.acknowledge_times('soft')),
            _seconds(entry.stop_times('soft')),
            _seconds(entry.stop_times('hard')),
            str(entry.tokens_consumed),
            str(entry.tokens_after_request),
        )
    return Group(outcomes, costs)


async def _play(scenario: _Scenario, manager: SubAgentManager, console: Console, model: str | Model | None) -> None:
    parent = Agent(
        model or parent_model(scenario.script),
        name='parent',
        capabilities=[SubAgentCapability(manager=manager), Narrator(console)],
    )
    console.print(f'[bold]user[/]      >> {scenario.prompt}', highlight=False)
    async with anyio.create_task_group() as group:
        if scenario.interrupt is not None:
            group.start_soon(scenario.interrupt, manager, console, model is not None)
        result = await parent.run(scenario.prompt)
        console.print(f'[bold]parent[/]    << {result.output}', highlight=False)
        group.cancel_scope.cancel()  # a real model may be done before the user would have pressed Stop


async def run_demo(model: str | Model | None = None, console: Console | None = None) -> int:
    """Play the seed scenarios; return 0 when no task is left running afterwards, else 1.

    Args:
        model: A real model for the parents and sub-agents (`'openai:gpt-5-mini'`, …); scripted offline
            models when `None`. The stuck crawler stays scripted.
        console: Where to show the log, the live tree and the figures; the terminal by default.
    """
    if console is None:
        console = Console()
        if not console.is_terminal:
            console.width = max(console.width, 130)  # a log file or a pipe: no need to wrap at 80 columns
    transport = InProcessTransport()
    transport.subscribe(transport_log(console))
    last_seen: dict[str, TaskInfo] = {}
    subagents = _subagents(model, console, last_seen)
    async with transport, SubAgentManager(subagents, transport=transport, default_model=model) as manager:
        view = _TaskView(manager, last_seen=last_seen)
        with Live(view.render(), console=console, auto_refresh=False) as live:

            async def refresh() -> None:
                while True:
                    view.poll()
                    live.update(view.render(), refresh=True)
                    await anyio.sleep(0.1)

            async with anyio.create_task_group() as group:
                group.start_soon(refresh)
                for number, scenario in enumerate(_SCENARIOS, 1):
                    console.rule(f'{number}. {scenario.title}')
                    view.begin(scenario.title)
                    await _play(scenario, manager, console, model)
                group.cancel_scope.cancel()
            view.poll()
            live.update(view.render(), refresh=True)
        console.print()
    left = [info for info in manager.tasks() if not info.is_terminal] + list(manager.orphans())
    console.print(_metrics_tables(manager.metrics()), Text(f'orphaned tasks: {manager.metrics().unresponsive}'))
    console.print(f'tasks still running: {len(left)}')
    return 1 if left else 0
