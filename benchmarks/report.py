"""Turn the results of one run of the suite into `RESULTS.md`: machine, tables, targets, ratios vs the best peer."""

from __future__ import annotations

import os
import platform
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from benchkit.temporal_report import Figures, temporal_section

LABELS = {'ours': 'subagents-cancel', 'subagents': 'subagents-pydantic-ai', 'harness': 'pydantic-ai-harness'}
PEERS = ('subagents', 'harness')

Result = dict[str, Any]


@dataclass(frozen=True, kw_only=True)
class Machine:
    """Where and when the suite ran."""

    started_at: str
    seconds: float
    size: str
    cpu: str
    cores: int
    python: str
    load: str

    @classmethod
    def read(cls, *, started_at: datetime, seconds: float, size: str, load: str) -> Machine:
        cpu = 'unknown'
        cpuinfo = Path('/proc/cpuinfo')
        if cpuinfo.exists():
            names = [line.split(':', 1)[1].strip() for line in cpuinfo.read_text().splitlines() if 'model name' in line]
            cpu = names[0] if names else cpu
        return cls(
            started_at=started_at.strftime('%Y-%m-%d %H:%M UTC'),
            seconds=seconds,
            size=size,
            cpu=cpu,
            cores=os.cpu_count() or 0,
            python=platform.python_version(),
            load=load,
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _num(value: float | None, digits: int = 1) -> str:
    if isinstance(value, int):
        return f'{value:,}'  # a count
    return '—' if value is None else f'{value:,.{digits}f}'


def _error_line(lines: Sequence[str]) -> str:
    """The exception line of a crashed run's stderr tail, safe inside a table cell."""
    cleaned = [line.strip(' |+-') for line in lines]
    found = [line for line in cleaned if 'Error' in line or 'Exception' in line] or [line for line in cleaned if line]
    return (found[-1] if found else 'no output').replace('|', '/')[:200]


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    lines += ['| ' + ' | '.join(row) + ' |' for row in rows]
    return [*lines, '']


class _Results:
    def __init__(self, results: Sequence[Result]) -> None:
        self._by_key = {(result['scenario'], result['library']): result for result in results}
        self.libraries = [key for key in LABELS if any(library == key for _, library in self._by_key)]
        self.versions = {
            result['library']: f'{result["label"]} {result["version"]}' for result in results if 'version' in result
        }
        self.pydantic_ai = sorted({result['pydantic_ai'] for result in results if 'pydantic_ai' in result})

    def get(self, scenario: str, library: str) -> Result | None:
        """The scenario's figures for `library`, or `None` if it was not run or failed."""
        result = self._by_key.get((scenario, library))
        return None if result is None or 'error' in result else result['result']

    def error(self, scenario: str, library: str) -> list[str]:
        """The stderr tail of a failed run."""
        return self._by_key[scenario, library].get('error', [])

    def repeats(self, scenario: str) -> int:
        """How many runs each library's row of `scenario` folds (1 if it was run once)."""
        counts = [result.get('repeats', 1) for (name, _), result in self._by_key.items() if name == scenario]
        return max(counts, default=1)

    def ran(self, scenario: str, library: str) -> bool:
        """Whether this run includes the scenario for `library` (even if it failed)."""
        return (scenario, library) in self._by_key

    def rows(self, scenario: str, row: Callable[[str, Result], list[str]], width: int) -> list[list[str]]:
        out: list[list[str]] = []
        for library in self.libraries:
            result = self._by_key.get((scenario, library))
            if result is None:
                continue
            if 'error' in result:
                out.append([LABELS[library], 'failed: ' + _error_line(result['error']), *[''] * (width - 2)])
            else:
                out.append(row(LABELS[library], result['result']))
        return out


def _hard(results: _Results) -> list[str]:
    def row(label: str, r: Result) -> list[str]:
        return [
            label,
            str(r['trials']),
            _num(r['done_ms']['p50'], 2),
            _num(r['done_ms']['p99'], 2),
            _num(r['reply_ms']['p50'], 2),
            f'{r["replied_after_done"]} / {r["trials"]}',
        ]

    header = ['library', 'cancels', 'done p50 ms', 'done p99 ms', 'reply p50 ms', 'replied after the task was done']
    return [
        '## Hard cancel',
        '',
        'A sub-agent blocked in a model request; from the hard-cancel tool starting to the asyncio task hosting the',
        'sub-agent being done. Target: p99 ≤ 1 ms, and the reply only after the task is done.',
        '',
        *_table(header, results.rows('hard_cancel', row, len(header))),
    ]


def _soft_cells(r: Result) -> list[str]:
    if 'not_supported' in r:
        return ['not supported: ' + r['not_supported'], '', '', '']
    acknowledged = r['acknowledged_ms']
    terminal = r['terminal_ms']
    return [
        f'{r["acknowledged"]} / {r["trials"]}' + (f', p50 {_num(acknowledged["p50"], 0)}' if acknowledged else ''),
        f'p50 {_num(terminal["p50"], 0)}, max {_num(terminal["max"], 0)}' if terminal else 'never',
        f'{r["partial"]} / {r["trials"]}',
        str(r['requests_after_max']),
    ]


def _soft(results: _Results) -> list[str]:
    header = ['library', 'acknowledged (ms)', 'terminal (ms)', 'partial result to parent', 'model requests after']
    lines = [
        '## Soft cancel, 200 ms model steps',
        '',
        'The request lands at a random point of a 200 ms model step; times from the soft-cancel tool starting.',
        '*Acknowledged*: a model request that tells the sub-agent about the cancellation went out. *Partial result*:',
        "the sub-agent's wrap-up answer reached the parent. Target: acknowledged, a partial result, ≤ 1 request after.",
        '',
        *_table(header, results.rows('soft_cancel:steps', lambda label, r: [label, *_soft_cells(r)], len(header))),
        '## Soft cancel during a 3 s step',
        '',
        'The request lands 0.5 s into a 3 s model request or a 3 s tool call, under each grace setting a library has.',
        '',
    ]
    rows: list[list[str]] = []
    for library in results.libraries:
        cells = results.get('soft_cancel:long', library)
        if cells is None:
            continue
        rows += [[LABELS[library], setting, *_soft_cells(r)] for setting, r in cells.items()]
    return [*lines, *_table(['library', 'step / setting', *header[1:]], rows)]


def _repeated(results: _Results, scenario: str, name: str) -> list[str]:
    """The line that says a scenario's rows fold several runs, if they do (`benchkit/repeats.py`)."""
    repeats = results.repeats(scenario)
    if repeats < 2:
        return []
    return [
        f'The {name} rows: each time and size is the median of {repeats} runs per library, the libraries taking',
        "turns; each count of tasks left running is the worst run's.",
    ]


def _fanout(results: _Results) -> list[str]:
    header = [
        'library',
        'tasks',
        'cancelled by',
        'all done (ms)',
        'running at reply',
        'owner ends: all done (ms)',
        'owner ends: not done after 5 s',
        'RSS per running task (KB)',
    ]

    def row(label: str, r: Result) -> list[str]:
        cancel, ends = r['cancel'], r['owner_ends']
        held = '' if ends['run_ended_first'] or ends['not_done'] == 0 else ' (the run waits for its tasks)'
        return [
            label,
            f'{r["tasks"]:,}',
            cancel['how'],
            _num(cancel['all_done_ms'], 0),
            str(cancel['running_at_reply']),
            _num(ends['all_done_ms'], 0),
            f'{ends["not_done"]:,}{held}',
            _num(r['rss_per_task_kb'], 1),
        ]

    rows = [*results.rows('fanout:1000', row, len(header)), *results.rows('fanout:10000', row, len(header))]
    return [
        '## Fan-out',
        '',
        'N background tasks blocked in model requests. Cancelled by one region cancel where the library has',
        'regions, otherwise by one hard-cancel call per task in a single model response; then, with N new tasks,',
        'by the parent run ending. Targets: all done ≤ 100 ms for 1,000 and ≤ 1 s for 10,000, 0 left running;',
        'RSS growth ≤ 50 KB per running task.',
        *_repeated(results, 'fanout:1000', '1,000'),
        '',
        *_table(header, rows),
    ]


def _overhead(results: _Results) -> list[str]:
    def row(label: str, r: Result) -> list[str]:
        return [
            label,
            str(r['count']),
            _num(r['direct_ms']['p50'], 2),
            _num(r['delegated_ms']['p50'], 2),
            f'{r["ratio_p50"]:.2f}×',
            f'{r["ratio_total"]:.2f}×',
        ]

    header = ['library', 'runs', 'direct run p50 ms', 'delegation p50 ms', 'ratio (p50)', 'ratio (total)']
    return [
        '## Overhead of a foreground delegation',
        '',
        'A trivial sub-agent (one model request, no tools), delegated in the foreground one call at a time and timed',
        "from the library's tool starting to its reply, against `agent.run()` of the same agent. Target: ≤ 1.1×.",
        '',
        *_table(header, results.rows('overhead', row, len(header))),
    ]


def _lookup(results: _Results) -> list[str]:
    rows: list[list[str]] = []
    for scenario, library in [('lookup', library) for library in results.libraries] + [('lookup:30000', 'ours')]:
        r = results.get(scenario, library)
        points: list[Result] = r['points'] if r else []
        for point in points:
            rows.append(
                [
                    LABELS[library] + (' (`--large`)' if scenario != 'lookup' else ''),
                    f'{point["finished"]:,}',
                    _num(point['status_us'], 0),
                    _num(point['list_active_us'], 0),
                    _num(point['rss_mb'], 1),
                ]
            )
    header = ['library', 'finished tasks', 'status call µs (p50)', 'list-active call µs (p50)', 'RSS MB']
    return [
        '## Lookups and memory with many finished tasks',
        '',
        'One long-lived owner; trivial tasks run to completion, then the status tool (on the first task) and the',
        'list-active tool are timed. The harness has no per-task status tool, so its status column is its task list.',
        'Target: lookups that do not grow with finished tasks, and an RSS that stops growing.',
        '',
        *_table(header, rows),
    ]


def _race(results: _Results) -> list[str]:
    rows: list[list[str]] = []
    for library in results.libraries:
        if not results.ran('race', library):
            continue
        r = results.get('race', library)
        if r is None:
            rows.append([LABELS[library], 'failed: ' + _error_line(results.error('race', library)), *[''] * 7])
            continue
        for mode, m in r.items():
            rows.append(
                [
                    LABELS[library],
                    mode,
                    f'{m["trials"]:,}',
                    f'{m["answer_arrived"]:,} ({m["answer_first"]:,} before the cancel)',
                    f'{m["told_completed"]:,}'
                    + (f' ({m["told_neither"]:,} said neither)' if m['told_neither'] else ''),
                    f'{m["told_cancelled"]:,}',
                    f'**{m["cancelled_with_full_answer"]:,}**',
                    f'**{m["answer_lost"]:,}**',
                    f'{m["requests_after_answer"]:,}',
                ]
            )
    header = [
        'library',
        'cancel',
        'trials',
        'answer arrived',
        'completed',
        'cancelled',
        'cancelled with the full answer',
        'answer lost',
        'model requests after the answer',
    ]
    return [
        '## Cancel racing completion',
        '',
        "A sub-agent's one model request gives its final answer; the parent soft- or hard-cancels it at a random",
        'point around that answer: just before it leaves the model, while the library processes it, or after the',
        'task ended. Counted from what the scripted model and the parent saw, the same way for every library:',
        '*answer arrived* before the cancel tool started; *completed* / *cancelled* as the status reply after the',
        'end says; *cancelled with the full answer*: told cancelled although the answer had arrived before the',
        'cancel; *answer lost*: the answer arrived but its text is in nothing the parent received afterwards (not',
        'the result, not a partial result, not a later message). Target: both 0, no model request after the answer.',
        '',
        *_table(header, rows),
    ]


Figure = Callable[[Result], float | None]
INF = float('inf')


def _get(scenario: str, *path: str) -> Figure:
    def figure(result: Result) -> float | None:
        value: Any = result
        for key in path:
            if not isinstance(value, dict):
                return None
            value = cast(dict[str, Any], value).get(key)  # a figure a partial run did not measure is `None`
        return value

    return figure


def _finished_growth(result: Result) -> float | None:
    """RSS growth per finished task (KB), between the first and the last probe."""
    return _growth_between(result['points'])


def _growth_past_kept(result: Result) -> float | None:
    """RSS growth per finished task (KB) from 10,000 finished tasks (the default `keep_finished`) on."""
    return _growth_between([point for point in result['points'] if point['finished'] >= 10_000])


def _growth_between(points: list[Result]) -> float | None:
    if len(points) < 2 or points[-1]['finished'] == points[0]['finished']:
        return None
    return (points[-1]['rss_mb'] - points[0]['rss_mb']) * 1024 / (points[-1]['finished'] - points[0]['finished'])


def _lookup_growth(call: str) -> Figure:
    """How many times slower `call` (`status_us` or `list_active_us`) is with the most finished tasks than with none."""

    def figure(result: Result) -> float | None:
        points = result['points']
        return points[-1][call] / points[0][call] if len(points) >= 2 else None

    return figure


TARGETS: tuple[tuple[str, str, str, Figure, float], ...] = (
    ('hard cancel: done p99 (ms)', 'hard_cancel', '≤ 1', _get('', 'done_ms', 'p99'), 1.0),
    (
        'soft cancel, 200 ms steps: acknowledged p50 (ms)',
        'soft_cancel:steps',
        'told',
        _get('', 'acknowledged_ms', 'p50'),
        INF,
    ),
    (
        'fan-out 1,000: region / per-task cancel, all done (ms)',
        'fanout:1000',
        '≤ 100',
        _get('', 'cancel', 'all_done_ms'),
        100,
    ),
    ('fan-out 1,000: owner ends, all done (ms)', 'fanout:1000', '≤ 100', _get('', 'owner_ends', 'all_done_ms'), 100),
    (
        'fan-out 10,000: region cancel, all done (ms)',
        'fanout:10000',
        '≤ 1,000',
        _get('', 'cancel', 'all_done_ms'),
        1000,
    ),
    (
        'fan-out 10,000: owner ends, all done (ms)',
        'fanout:10000',
        '≤ 1,000',
        _get('', 'owner_ends', 'all_done_ms'),
        1000,
    ),
    ('RSS per running task at 1,000 (KB)', 'fanout:1000', '≤ 50', _get('', 'rss_per_task_kb'), 50),
    ('RSS per running task at 10,000 (KB)', 'fanout:10000', '≤ 50', _get('', 'rss_per_task_kb'), 50),
    ('foreground delegation / direct run (p50)', 'overhead', '≤ 1.1×', _get('', 'ratio_p50'), 1.1),
    ('status call, most finished tasks / none', 'lookup', 'flat (≈ 1×)', _lookup_growth('status_us'), 1.5),
    ('list-active call, most finished tasks / none', 'lookup', 'flat (≈ 1×)', _lookup_growth('list_active_us'), 1.5),
    ('RSS growth per finished task (KB)', 'lookup', 'bounded (≈ 0)', _finished_growth, 1.0),
    ('RSS growth per finished task past 10,000 (KB)', 'lookup:30000', 'bounded (≈ 0)', _growth_past_kept, 1.0),
    (
        'cancel racing completion, soft: cancelled with the full answer',
        'race',
        '0',
        _get('', 'soft', 'cancelled_with_full_answer'),
        0,
    ),
    (
        'cancel racing completion, hard: cancelled with the full answer',
        'race',
        '0',
        _get('', 'hard', 'cancelled_with_full_answer'),
        0,
    ),
    ('cancel racing completion, soft: answers lost', 'race', '0', _get('', 'soft', 'answer_lost'), 0),
    ('cancel racing completion, hard: answers lost', 'race', '0', _get('', 'hard', 'answer_lost'), 0),
    (
        'cancel racing completion: model requests after the answer',
        'race',
        '0',
        lambda result: sum(mode['requests_after_answer'] for mode in result.values()),
        0,
    ),
)
"""(figure, scenario, target, how to read it, the bound it must stay under). Lower is better; `INF`: it must happen."""


def _summary(view: _Results) -> list[str]:
    rows: list[list[str]] = []
    for name, scenario, target, figure, bound in TARGETS:
        if not view.ran(scenario, 'ours'):
            rows.append([name, target, 'not run', '', '', 'not measured'])
            continue
        ours_result = view.get(scenario, 'ours')
        ours = figure(ours_result) if ours_result else None
        peers = {peer: figure(r) for peer in PEERS if (r := view.get(scenario, peer)) is not None}
        measured = {peer: value for peer, value in peers.items() if value is not None}
        best = min(measured, key=lambda peer: measured[peer]) if measured else None
        if best is not None:
            peer_cell = f'{_num(measured[best], 2)} ({LABELS[best]})'
        else:
            peer_cell = 'not measured' if not peers else 'never (see below)'
        ratio = f'{ours / measured[best]:.2f}×' if ours is not None and best is not None and measured[best] else '—'
        met = '**missed**' if ours is None or ours > bound else 'met'
        rows.append([name, target, _num(ours, 2), peer_cell, ratio, met])
    return [
        '## Against the targets',
        '',
        'Lower is better everywhere. *Best peer* is the better of the two peers in this run; "never" means',
        'no task ended within the scenario\'s limit, "not measured" that the peers were not run at that size.',
        '',
        *_table(['figure', 'target', 'subagents-cancel', 'best peer', 'ours / best peer', 'met?'], rows),
    ]


def render(results: Sequence[Result], machine: Machine, temporal: Figures | None = None) -> str:
    """The whole report, as markdown; with `temporal` (the last figures of `temporal_cancel.py`), its section too."""
    view = _Results(results)
    versions = ', '.join(view.versions[library] for library in view.libraries if library in view.versions)
    lines = [
        '# Benchmark results',
        '',
        'Generated by `python benchmarks/run_all.py`; do not edit by hand. See `docs/benchmarks.md` for what each',
        'scenario measures, what the peers can and cannot do, and the caveats.',
        '',
        f'* Run: {machine.started_at}, size `{machine.size}`, {machine.seconds:,.0f} s in all.',
        f'* Machine: {machine.cores} cores ({machine.cpu}), Python {machine.python}; load average {machine.load}.',
        f'* Libraries: {versions}; pydantic-ai-slim {", ".join(view.pydantic_ai)} for all of them.',
        '* Wall-clock figures on a shared machine are noisy: compare rows of one run with each other, not across runs.',
        '',
        *_summary(view),
        *_hard(view),
        *_soft(view),
        *_fanout(view),
        *_overhead(view),
        *_lookup(view),
        *_race(view),
        *(temporal_section(temporal) if temporal is not None else []),
    ]
    return '\n'.join(lines).rstrip() + '\n'
