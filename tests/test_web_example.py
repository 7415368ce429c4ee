"""The web example (`examples/web/`): a user starts research, watches its sub-agents live, and stops them.

The app is driven two ways: in-process over ASGI with an httpx client, as the page's JavaScript calls it, and
through the page itself in a real headless Chromium against the app served by uvicorn. The scripted searchers
checkpoint their first phase and then wait in the second one on a `Gate` the test never releases, so a task is
still running whenever the test clicks; only a cancel ends it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx2
import pytest
from inline_snapshot import snapshot
from playwright.async_api import async_playwright, expect

from examples.web import SEARCHERS, Desk, Setup, create_app

from .asgi_streaming import StreamingASGITransport
from .helpers import Gate
from .served import served

pytestmark = pytest.mark.anyio

QUESTION = 'Should we launch an e-bike subscription in Berlin?'
View = dict[str, Any]


class Searchers:
    """The pace of the scripted searchers: the first phase goes at once, the second waits on the searcher's gate."""

    def __init__(self) -> None:
        self.gates = {searcher.name: Gate() for searcher in SEARCHERS}

    async def __call__(self, searcher: str, phase: int) -> None:
        if phase > 0:
            await self.gates[searcher].wait()

    async def all_waiting(self) -> None:
        for gate in self.gates.values():
            await gate.reached.wait()


def stable(value: object) -> Any:
    """`value` with task ids as `<name>-<id>`, for snapshots."""
    return json.loads(re.sub(r'\b([a-z]+)-[0-9a-f]{8}\b', r'\1-<id>', json.dumps(value)))


async def views(response: httpx2.Response) -> AsyncIterator[View]:
    """The request views a server-sent event stream carries, in order."""
    async for line in response.aiter_lines():
        if line.startswith('data: '):
            yield json.loads(line.removeprefix('data: '))


async def first(frames: AsyncIterator[View], wanted: str) -> View:
    """The next view whose tasks' `subagent:status` list, sorted, is `wanted`."""
    async for view in frames:
        if statuses(view) == wanted:
            return view
    raise AssertionError(f'the stream ended before {wanted}')


def statuses(view: View) -> str:
    return ' '.join(sorted(f'{task["subagent"]}:{task["status"]}:{task["checkpoints"]}' for task in view['tasks']))


def task_of(view: View, subagent: str) -> View:
    return next(task for task in view['tasks'] if task['subagent'] == subagent)


@asynccontextmanager
async def app_client(desk: Desk) -> AsyncGenerator[httpx2.AsyncClient]:
    """An httpx client of the app around `desk`, in-process, with the app's lifespan open around it."""
    app = create_app(desk)
    async with app.router.lifespan_context(app):
        async with httpx2.AsyncClient(transport=StreamingASGITransport(app), base_url='http://web') as client:
            yield client


async def start_research(client: httpx2.AsyncClient) -> str:
    """Start a request as the page's Research button does; return its id."""
    return (await client.post('/requests', json={'question': QUESTION})).json()['request_id']


async def test_a_task_stopped_softly_hands_back_its_partial_result_and_a_kill_ends_the_rest() -> None:
    """Over HTTP: the events show the tree; Stop returns the task's partial result; Kill ends the request."""
    searchers = Searchers()
    desk = Desk(Setup(pace=searchers))
    async with app_client(desk) as client:
        request_id = await start_research(client)
        async with client.stream('GET', f'/requests/{request_id}/events') as response:
            assert response.headers['content-type'].startswith('text/event-stream')
            frames = views(response)
            await searchers.all_waiting()
            working = await first(frames, 'competitors:RUNNING:1 market:RUNNING:1 regulation:RUNNING:1')
            market = task_of(working, 'market')
            assert stable(market) == snapshot(
                {
                    'task_id': 'market-<id>',
                    'subagent': 'market',
                    'description': 'Size the market for e-bike subscriptions in Berlin',
                    'status': 'RUNNING',
                    'checkpoints': 1,
                    'completed': ['census data'],
                    'in_progress': ['commuter survey'],
                    'findings': ['410,000 Berliners commute 5-15 km'],
                    'cancel': None,
                    'outcome': None,
                    'subtasks': [],
                }
            )

            stopped = await client.post(f'/requests/{request_id}/tasks/{market["task_id"]}/stop')
            assert searchers.gates['market'].stopped.is_set()  # the step in flight was cut short
            assert stable(stopped.json()) == snapshot(
                {
                    'task_id': 'market-<id>',
                    'subagent': 'market',
                    'description': 'Size the market for e-bike subscriptions in Berlin',
                    'status': 'CANCELLED',
                    'checkpoints': 1,
                    'completed': ['census data'],
                    'in_progress': ['commuter survey'],
                    'findings': ['410,000 Berliners commute 5-15 km'],
                    'cancel': {'mode': 'soft', 'reason': 'user', 'acknowledged': True, 'escalated': False},
                    'outcome': {
                        'kind': 'cancelled',
                        'mode': 'soft',
                        'partial': {
                            'completed': ['census data'],
                            'in_progress': ['commuter survey'],
                            'not_started': ['price points', 'market size'],
                            'findings': ['410,000 Berliners commute 5-15 km'],
                            'final_message': """\
Completed: census data
In progress: commuter survey
Not started: price points, market size
Findings: 410,000 Berliners commute 5-15 km\
""",
                            'read_request': True,
                        },
                    },
                    'subtasks': [],
                }
            )
            after_stop = await first(frames, 'competitors:RUNNING:1 market:CANCELLED:1 regulation:RUNNING:1')
            assert task_of(after_stop, 'market') == stopped.json()

            killed = (await client.post(f'/requests/{request_id}/kill')).json()
            remaining = [view async for view in frames]
    assert killed['state'] == 'killed'
    assert statuses(killed) == 'competitors:CANCELLED:1 market:CANCELLED:1 regulation:CANCELLED:1'
    assert remaining[-1] == killed  # the stream ends with the ended request
    assert stable(task_of(killed, 'regulation')['outcome']) == snapshot(
        {
            'kind': 'cancelled',
            'mode': 'hard',
            'partial': {
                'completed': ['city parking rules'],
                'in_progress': ['insurance'],
                'not_started': ['battery disposal', 'summary'],
                'findings': ['no permit needed without street stations'],
                'final_message': None,
                'read_request': False,
            },
        }
    )
    assert desk.running() == ()
    assert all(gate.stopped.is_set() for gate in searchers.gates.values())


async def test_stopping_the_whole_request_lets_the_lead_sum_up_what_its_searchers_handed_back() -> None:
    """Stop all: every searcher wraps up softly, and the parent's run ends with an answer built on them."""
    searchers = Searchers()
    async with app_client(Desk(Setup(pace=searchers))) as client:
        request_id = await start_research(client)
        await searchers.all_waiting()
        stopping = (await client.post(f'/requests/{request_id}/stop')).json()
        async with client.stream('GET', f'/requests/{request_id}/events') as response:
            ended = [view async for view in views(response)][-1]
    assert stopping['state'] == 'stopping'
    assert ended['state'] == 'stopped'
    assert ended['answer'] == snapshot(
        'All 3 searchers have handed back (3 stopped early, with their partial results): the numbers are in their reports.'
    )
    assert [task['outcome']['mode'] for task in ended['tasks']] == ['soft', 'soft', 'soft']
    assert all(task['outcome']['partial']['read_request'] for task in ended['tasks'])


async def test_a_killed_task_stops_at_once_and_the_app_shutting_down_stops_the_others() -> None:
    """Kill one task: it ends with its checkpoints; then the app stops and takes the running request with it."""
    searchers = Searchers()
    desk = Desk(Setup(pace=searchers))
    async with app_client(desk) as client:
        request_id = await start_research(client)
        await searchers.all_waiting()
        view = (await client.get(f'/requests/{request_id}')).json()
        market_id = task_of(view, 'market')['task_id']
        killed = (await client.post(f'/requests/{request_id}/tasks/{market_id}/kill')).json()
        assert len(desk.running()) == 1
    assert stable(killed) == snapshot(
        {
            'task_id': 'market-<id>',
            'subagent': 'market',
            'description': 'Size the market for e-bike subscriptions in Berlin',
            'status': 'CANCELLED',
            'checkpoints': 1,
            'completed': ['census data'],
            'in_progress': ['commuter survey'],
            'findings': ['410,000 Berliners commute 5-15 km'],
            'cancel': {'mode': 'hard', 'reason': 'user', 'acknowledged': False, 'escalated': False},
            'outcome': {
                'kind': 'cancelled',
                'mode': 'hard',
                'partial': {
                    'completed': ['census data'],
                    'in_progress': ['commuter survey'],
                    'not_started': ['price points', 'market size'],
                    'findings': ['410,000 Berliners commute 5-15 km'],
                    'final_message': None,
                    'read_request': False,
                },
            },
            'subtasks': [],
        }
    )
    research = desk.get(request_id)
    assert research is not None and research.state == 'killed'
    assert desk.running() == ()
    assert all(gate.stopped.is_set() for gate in searchers.gates.values())


CHROMIUM_FLAGS = [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
]
SCREENSHOT_ENV = 'WEB_EXAMPLE_SCREENSHOT'
"""Set to a path to save a screenshot of the page mid-cancel there (`docs/images/web-stop.png` in the docs)."""


def chromium() -> str:
    """The system's Chromium; without it the browser test is skipped, and fails under CI (`CI` set)."""
    found = shutil.which('chromium')
    if found is not None:
        return found
    message = 'Chromium is not installed; install it with `sudo apt-get install -y chromium` (.ci/run does).'
    if os.environ.get('CI'):
        pytest.fail(message)
    pytest.skip(message)


async def test_in_a_real_browser_stop_shows_the_partial_result_and_kill_leaves_nothing_running() -> None:
    """Headless Chromium on the page served by uvicorn: click Stop on a task, read its partial result, click Kill."""
    executable = chromium()
    searchers = Searchers()
    desk = Desk(Setup(pace=searchers))
    async with served(create_app(desk), lifespan='on') as port, async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        try:
            page = await browser.new_page(viewport={'width': 1100, 'height': 560})
            await page.goto(f'http://127.0.0.1:{port}/')
            await page.click('#start')
            await searchers.all_waiting()
            market = page.locator('[data-task="market"]')
            await expect(market.locator('.status')).to_have_text('RUNNING')
            await expect(page.locator('.task .actions')).to_have_count(3)

            await market.locator('button[data-action="stop"]').click()
            await expect(market.locator('.partial')).to_have_text(
                re.compile(r'^Partial result \(soft cancel\):\nCompleted: census data\n')
            )
            await expect(market.locator('.cancel')).to_have_text(
                'Stop requested (user): the sub-agent read the request'
            )
            await expect(page.locator('[data-task="regulation"] .status')).to_have_text('RUNNING')
            if path := os.environ.get(SCREENSHOT_ENV):
                await page.screenshot(path=path)
            partial = await market.locator('.partial').text_content()

            await page.click('#kill-all')
            await expect(page.locator('#request-state')).to_have_text('killed')
            await expect(page.locator('.task .status')).to_have_text(['CANCELLED', 'CANCELLED', 'CANCELLED'])
        finally:
            await browser.close()
        assert desk.running() == ()  # on the server: the request and all of its tasks have ended
    assert partial == snapshot("""\
Partial result (soft cancel):
Completed: census data
In progress: commuter survey
Not started: price points, market size
Findings: 410,000 Berliners commute 5-15 km\
""")
    assert all(gate.stopped.is_set() for gate in searchers.gates.values())


async def test_a_request_on_a_real_model_that_cannot_run_ends_failed_with_the_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`--model` without the provider's API key: the request is shown as failed, with what to set."""
    monkeypatch.delenv('OPENAI_API_KEY', raising=False)
    desk = Desk(Setup(model='openai:gpt-5-mini'))
    async with app_client(desk) as client:
        request_id = await start_research(client)
        async with client.stream('GET', f'/requests/{request_id}/events') as response:
            ended = [view async for view in views(response)][-1]
    assert (ended['state'], ended['tasks']) == ('failed', [])
    # The rest of the sentence is pydantic-ai's and differs between its versions.
    assert ended['answer'].startswith('UserError: Set the `OPENAI_API_KEY` environment variable')
    assert desk.running() == ()
