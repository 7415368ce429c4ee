"""The playground notebook's live tree looks again after every message on the transport, however messages bunch up.

The live tree is a cell of the notebook (it shows readers how to follow a manager's tasks). These tests run that
cell alone, with a stand-in for the manager whose tasks change when a test says so, and order the messages against
the tree's wake-ups by hand: a message the transport shows as the tree wakes for another reaches the manager only
after the tree has looked, as in a notebook where two tasks report in one turn of the event loop.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from subagents_cancel import SubAgentManager, TaskInfo
from subagents_cancel.transport import InProcessTransport

pytestmark = pytest.mark.anyio

NOTEBOOK = Path(__file__).parent.parent / 'examples' / 'playground.ipynb'


class Output:
    """Stands in for the notebook output the tree draws into: keeps what it was last updated with."""

    def __init__(self) -> None:
        self.shown = ''

    def update(self, html: str) -> None:
        self.shown = html


class Tasks:
    """Stands in for the manager: its tasks are whatever the test has made them, as if read from the transport."""

    def __init__(self) -> None:
        self.now: tuple[str, ...] = ()

    def tasks(self) -> tuple[str, ...]:
        return self.now

    def active_tasks(self) -> tuple[str, ...]:
        return ()


def live_tree_cell(output: Output) -> dict[str, Any]:
    """Run the notebook's cell that defines the live tree, with the names the notebook imports before it."""
    cells = json.loads(NOTEBOOK.read_text())['cells']
    (source,) = (''.join(cell['source']) for cell in cells if ''.join(cell['source']).startswith('class LiveTree'))
    names: dict[str, Any] = {
        'anyio': anyio,
        'asynccontextmanager': asynccontextmanager,
        'Callable': Callable,
        'HTML': str,
        'InProcessTransport': InProcessTransport,
        'SubAgentManager': SubAgentManager,
        'TaskInfo': TaskInfo,
        'display': lambda *objects, **options: output,  # pyright: ignore[reportUnknownLambdaType]
        'tasks_html': lambda tasks: ' '.join(tasks),  # pyright: ignore[reportUnknownLambdaType, reportUnknownArgumentType]
    }
    exec(source, names)
    return names


async def test_a_message_shown_as_the_tree_wakes_for_another_is_looked_at_once_the_manager_has_it() -> None:
    """Two messages in one turn of the loop, the second read by the manager after the tree looked: it looks again."""
    output, manager = Output(), Tasks()
    view = live_tree_cell(output)['LiveTree'](manager)
    reached = anyio.Event()

    async def until_done() -> None:
        await view.until(lambda tasks: tasks == ('done',))  # pyright: ignore[reportUnknownLambdaType]
        reached.set()

    async with anyio.create_task_group() as group:
        group.start_soon(view.redraw_on_changes)
        group.start_soon(until_done)
        await anyio.wait_all_tasks_blocked()
        view.saw('owner', 'first')  # wakes the tree's two tasks
        await anyio.lowlevel.checkpoint()  # they wake ...
        view.saw('owner', 'second')  # ... and the transport shows another message as they do
        await anyio.lowlevel.checkpoint()  # the tree looks at the tasks ...
        manager.now = ('done',)  # ... before the manager has read the second message
        await anyio.wait_all_tasks_blocked()
        assert reached.is_set()
        assert output.shown.startswith('done<p>')
        group.cancel_scope.cancel()
