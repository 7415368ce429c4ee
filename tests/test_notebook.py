"""The playground notebook runs from top to bottom in a real kernel, and each section shows what it promises.

The notebook is executed once (a real kernel, top-level await on Jupyter's event loop); each test reads the outputs
of the cells tagged for one section: the parent's tool calls and replies, soft and hard cancel side by side, the
region's join, the cancel figures, the live tree's final state, and nothing left running.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, cast

import nbclient
import nbformat
import pytest
from inline_snapshot import snapshot

from .helpers import stable_ids

NOTEBOOK = Path(__file__).parent.parent / 'examples' / 'playground.ipynb'

pytestmark = [
    pytest.mark.timeout(120),  # starting a kernel takes a few seconds on a busy machine
    pytest.mark.filterwarnings('ignore::DeprecationWarning'),  # jupyter_client and jupyter_core, not our code
]


def executed_cells(path: Path) -> list[dict[str, Any]]:
    """Run the notebook in a fresh kernel; return its cells as plain JSON (nbformat and nbclient are untyped)."""
    notebook = cast(Any, nbformat).read(path, as_version=4)
    client = cast(Any, nbclient).NotebookClient(
        notebook, timeout=60, kernel_name='python3', resources={'metadata': {'path': path.parent}}
    )
    client.execute()
    return json.loads(cast(Any, nbformat).writes(notebook))['cells']


def shown(cell: dict[str, Any]) -> list[str]:
    """What a cell shows: its printed text, and the HTML of what it displayed (in its final state)."""
    texts: list[str] = []
    for output in cell['outputs']:
        if output['output_type'] == 'stream':
            texts.append(''.join(output['text']))
        elif output['output_type'] in ('display_data', 'execute_result'):
            texts.append(''.join(output['data']['text/html']))
    return texts


@pytest.fixture(scope='module')
def sections() -> dict[str, list[str]]:
    """The outputs of the notebook's tagged cells, by tag, after one run of the whole notebook."""
    return {
        tag: shown(cell)
        for cell in executed_cells(NOTEBOOK)
        if cell['cell_type'] == 'code'
        for tag in cell['metadata'].get('tags', [])
    }


def without_timings(text: str) -> str:
    return re.sub(r'\d+\.\d+ ?m?s\b', '<t>', text)


def test_the_parent_agent_cancels_one_task_softly_and_one_hard_through_its_tools(
    sections: dict[str, list[str]],
) -> None:
    """The scripted parent starts two researchers, soft-cancels one, hard-cancels the other, and reads both."""
    (printed,) = sections['parent-tools']
    assert [without_timings(text) for text in stable_ids([printed])] == snapshot(
        [
            """\
parent -> task({'description': 'Research the European e-bike market (team A)', 'subagent_type': 'researcher', 'mode': 'async'})
    | Task started with ID: researcher-0001 (researcher); it runs in the background. Follow it with check_task or wait_tasks; stop it with soft_cancel_task or hard_cancel_task.
parent -> task({'description': 'Research the European e-bike market (team B)', 'subagent_type': 'researcher', 'mode': 'async'})
    | Task started with ID: researcher-0002 (researcher); it runs in the background. Follow it with check_task or wait_tasks; stop it with soft_cancel_task or hard_cancel_task.
parent -> soft_cancel_task({'task_id': 'researcher-0001', 'reason': 'the user changed plans'})
    | Cancellation requested for researcher-0001: it has been told, and it hands back partial results within 30s or is stopped. check_task or wait_tasks will show them.
parent -> hard_cancel_task({'task_id': 'researcher-0002', 'reason': 'the user changed plans'})
    | Task cancelled: researcher-0002 stopped <t> after the hard cancel. Partial results:
    | Completed: market size; competitors
    | In progress: pricing
    | Not started: outlook
    | Findings: market size: noted; competitors: noted
    | (from 2 checkpoints)
parent -> wait_tasks({'task_ids': ['researcher-0001', 'researcher-0002']})
    | All 2 tasks have ended.
    |
    | Task cancelled: researcher-0001 (soft, on request: the user changed plans; it read the request after <t>; it ended <t> after the request). Partial results:
    | Completed: market size; competitors
    | In progress: pricing
    | Not started: outlook
    | Findings: market size: noted; competitors: noted
    | (from 2 checkpoints)
    | Its final message:
    | Stopping as asked. Completed: market size, competitors. Not started: pricing, outlook.
    |
    | Task cancelled: researcher-0002 (hard, on request: the user changed plans; it ended <t> after the request). Partial results:
    | Completed: market size; competitors
    | In progress: pricing
    | Not started: outlook
    | Findings: market size: noted; competitors: noted
    | (from 2 checkpoints)
parent -> check_task({'task_id': 'researcher-0001'})
    | Task cancelled: researcher-0001 (soft, on request: the user changed plans; it read the request after <t>; it ended <t> after the request). Partial results:
    | Completed: market size; competitors
    | In progress: pricing
    | Not started: outlook
    | Findings: market size: noted; competitors: noted
    | (from 2 checkpoints)
    | Its final message:
    | Stopping as asked. Completed: market size, competitors. Not started: pricing, outlook.
parent -> check_task({'task_id': 'researcher-0002'})
    | Task cancelled: researcher-0002 (hard, on request: the user changed plans; it ended <t> after the request). Partial results:
    | Completed: market size; competitors
    | In progress: pricing
    | Not started: outlook
    | Findings: market size: noted; competitors: noted
    | (from 2 checkpoints)
parent: researcher-0001 handed back its work so far; researcher-0002 was stopped at once.
"""
        ]
    )


def test_soft_and_hard_cancel_show_side_by_side_what_each_hands_back(sections: dict[str, list[str]]) -> None:
    """Soft: read the request, checkpoints and a wrap-up message; hard: checkpoints only; both show their usage."""
    (side_by_side,) = sections['side-by-side']
    soft, hard = side_by_side.split('</td><td style="vertical-align:top">')
    assert 'soft cancel (user: the user changed plans), read after' in soft
    assert '2 (read the cancel request)' in soft
    assert 'Stopping as asked. Completed: market size, competitors. Not started: pricing, outlook.' in soft
    assert 'hard cancel (user: the user changed plans)' in hard
    assert '2 (did not read the cancel request)' in hard
    assert 'final message' not in hard
    assert re.search(r'usage</th><td>4 request\(s\), [\d,]+ tokens', soft)
    assert re.search(r'usage</th><td>2 request\(s\), [\d,]+ tokens', hard)


def test_a_region_cancelled_with_one_call_joins_as_cancelled(sections: dict[str, list[str]]) -> None:
    """The join shows the region's cancel, the analyst's result from before it, and each researcher's wrap-up."""
    tree, joined = sections['region']
    assert joined.startswith(
        '<div><b>Region research: cancelled (soft, user: the launch is off)</b>; no complete set of results.'
    )
    assert joined.count('>COMPLETED</span>') == 1 and joined.count('>CANCELLED</span>') == 2
    assert 'EU e-bike market: 6.2 bn EUR in 2025, growing 9% a year.' in joined
    assert joined.count('Stopping as asked. Completed: market size, competitors. Not started: pricing, outlook.') == 2
    assert '<p>0 running · redrawn ' in tree


def test_the_cancel_figures_are_a_table(sections: dict[str, list[str]]) -> None:
    """`manager.metrics()` shows a row per sub-agent and one per cancelled run."""
    (metrics,) = sections['metrics']
    assert '<tr><td>researcher</td><td>0</td><td>0</td><td>4</td><td>100%</td>' in metrics
    assert '<tr><td>analyst</td><td>1</td><td>0</td><td>0</td><td>0%</td>' in metrics
    assert len(re.findall(r'<tr><td>researcher-[0-9a-f]+</td><td>(soft|hard)</td>', metrics)) == 4
    assert metrics.endswith('<p>unresponsive (orphans): 0</p></div>')


def test_the_live_tree_was_redrawn_while_tasks_ran_and_ends_with_every_task_ended(
    sections: dict[str, list[str]],
) -> None:
    """The live output's final state: both researchers CANCELLED, none running, redrawn as messages came."""
    (tree,) = sections['live-tree']
    assert tree.count('>CANCELLED</span>') == 2 and '>RUNNING</span>' not in tree
    redraws = re.fullmatch(r'.*<p>0 running · redrawn (\d+) times</p>', tree, re.S)
    assert redraws is not None and int(redraws.group(1)) > 2


def test_nothing_is_left_running(sections: dict[str, list[str]]) -> None:
    """Closing the manager at the end finds no task running and no orphan."""
    assert sections['close'] == ['tasks still running: 0 | orphans: 0\n']


def test_a_stopped_task_is_resumed_from_where_it_stopped(sections: dict[str, list[str]]) -> None:
    """The soft-cancelled researcher goes on as a new task with its checkpoints, and finishes the phases left."""
    (printed,) = sections['resume']
    assert stable_ids([printed]) == snapshot(
        [
            """\
researcher-0001 resumes researcher-0002: COMPLETED, 2 checkpoints inherited
output: All phases done: market size, competitors, pricing, outlook.
researcher-0002 stays CANCELLED, resumed by researcher-0001
"""
        ]
    )
