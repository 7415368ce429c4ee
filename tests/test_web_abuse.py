"""The web example under careless and hostile use: bad bodies, unknown ids, Stop and Kill pressed at odd moments.

Each answer is short JSON with a status code that says what went wrong; nothing is left running on the server.
"""

from __future__ import annotations

import anyio
import pytest
from inline_snapshot import snapshot

from examples.web import Desk, Setup
from subagents_cancel.testing import ManualClock

from .helpers import Gate
from .test_web_example import Searchers, app_client, stable, start_research, task_of

pytestmark = pytest.mark.anyio


async def test_a_body_that_is_not_json_gets_a_400_with_what_to_send() -> None:
    """A start request whose body is not JSON is refused with the same answer as a missing question."""
    async with app_client(Desk(Setup(pace=Searchers()))) as client:
        response = await client.post(
            '/requests', content=b'{"question": ', headers={'content-type': 'application/json'}
        )
    assert (response.status_code, response.json()) == snapshot(
        (400, {'error': 'Send {"question": "..."} with a question.'})
    )


async def test_unknown_request_and_task_ids_get_a_404() -> None:
    """An id in the URL that the app never issued is a 404 naming what is missing, on every route."""
    searchers = Searchers()
    desk = Desk(Setup(pace=searchers))
    async with app_client(desk) as client:
        request_id = await start_research(client)
        await searchers.all_waiting()
        answers = [
            await client.get('/requests/r999'),
            await client.get('/requests/r999/events'),
            await client.post('/requests/r999/stop'),
            await client.post('/requests/r999/kill'),
            await client.post('/requests/r999/tasks/market-00000000/stop'),
            await client.post(f'/requests/{request_id}/tasks/market-00000000/stop'),
            await client.post(f'/requests/{request_id}/tasks/market-00000000/kill'),
            await client.post(f'/requests/{request_id}/tasks/<script>/kill'),
        ]
        await client.post(f'/requests/{request_id}/kill')
    assert [(answer.status_code, answer.json()) for answer in answers] == snapshot(
        [
            (404, {'error': 'No such request.'}),
            (404, {'error': 'No such request.'}),
            (404, {'error': 'No such request.'}),
            (404, {'error': 'No such request.'}),
            (404, {'error': 'No such request.'}),
            (404, {'error': "No task 'market-00000000' in this request."}),
            (404, {'error': "No task 'market-00000000' in this request."}),
            (404, {'error': "No task '<script>' in this request."}),
        ]
    )
    assert desk.running() == ()


async def test_stop_twice_stop_after_the_end_and_kill_during_stop_answer_with_the_task_as_it_is() -> None:
    """Stop pressed twice, Stop and Kill after the task ended, Stop all twice, Kill twice and Stop after the Kill."""
    searchers = Searchers()
    desk = Desk(Setup(pace=searchers))
    async with app_client(desk) as client:
        request_id = await start_research(client)
        await searchers.all_waiting()
        view = (await client.get(f'/requests/{request_id}')).json()
        market = task_of(view, 'market')['task_id']
        first = await client.post(f'/requests/{request_id}/tasks/{market}/stop')
        again = await client.post(f'/requests/{request_id}/tasks/{market}/stop')
        late_kill = await client.post(f'/requests/{request_id}/tasks/{market}/kill')
        stop_all = await client.post(f'/requests/{request_id}/stop')
        stop_all_again = await client.post(f'/requests/{request_id}/stop')
        killed = await client.post(f'/requests/{request_id}/kill')
        killed_again = await client.post(f'/requests/{request_id}/kill')
        stop_after = await client.post(f'/requests/{request_id}/stop')
    assert [
        r.status_code for r in (first, again, late_kill, stop_all, stop_all_again, killed, killed_again, stop_after)
    ] == snapshot([200, 200, 200, 200, 200, 200, 200, 200])
    assert again.json() == first.json() == late_kill.json()
    assert [
        stop_all.json()['state'],
        stop_all_again.json()['state'],
        killed.json()['state'],
        killed_again.json()['state'],
        stop_after.json()['state'],
    ] == snapshot(['stopping', 'stopping', 'killed', 'killed', 'killed'])
    assert desk.running() == ()


async def test_a_long_running_app_forgets_its_oldest_ended_requests() -> None:
    """The desk keeps `keep_ended` ended requests; an older one reads as unknown, a running one is never forgotten."""
    searchers = Searchers()
    desk = Desk(Setup(pace=searchers, keep_ended=1))
    async with app_client(desk) as client:
        first, second = await start_research(client), await start_research(client)
        await client.post(f'/requests/{first}/kill')
        await client.post(f'/requests/{second}/kill')
        third = await start_research(client)
        answers = [(await client.get(f'/requests/{request_id}')).status_code for request_id in (first, second, third)]
        await client.post(f'/requests/{third}/kill')
    assert answers == [404, 200, 200]


async def test_kill_of_a_task_that_does_not_stop_in_time_answers_504_with_the_task_as_it_is() -> None:
    """A task that ignores its hard cancel: Kill answers 504 once the wait ran out, and the task reads unresponsive."""
    clock = ManualClock()
    deaf = Gate()
    searchers = Searchers()

    async def pace(searcher: str, phase: int) -> None:
        if searcher == 'market' and phase > 0:
            with anyio.CancelScope(shield=True):  # a step that does not stop when its task is stopped
                await deaf.wait()
        else:
            await searchers(searcher, phase)

    desk = Desk(Setup(pace=pace, clock=clock))
    answers: list[tuple[int, object]] = []
    async with app_client(desk) as client, anyio.create_task_group() as group:
        request_id = await start_research(client)
        await deaf.reached.wait()
        market = task_of((await client.get(f'/requests/{request_id}')).json(), 'market')['task_id']

        async def kill() -> None:
            response = await client.post(f'/requests/{request_id}/tasks/{market}/kill')
            answers.append((response.status_code, stable(response.json())))

        group.start_soon(kill)
        await anyio.wait_all_tasks_blocked()
        clock.advance(5)  # the policy's hard_cancel_wait_seconds
        await anyio.wait_all_tasks_blocked()
        deaf.release.set()  # it stops at last, so that the app can shut down
        await client.post(f'/requests/{request_id}/kill')
    assert answers == snapshot(
        [
            (
                504,
                {
                    'error': "Task 'market-<id>' did not stop within 5s of a hard cancel; it is marked unresponsive.",
                    'task': {
                        'task_id': 'market-<id>',
                        'subagent': 'market',
                        'description': 'Size the market for e-bike subscriptions in Berlin',
                        'status': 'RUNNING',
                        'checkpoints': 1,
                        'completed': ['census data'],
                        'in_progress': ['commuter survey'],
                        'findings': ['410,000 Berliners commute 5-15 km'],
                        'cancel': {'mode': 'hard', 'reason': 'user', 'acknowledged': False, 'escalated': False},
                        'outcome': None,
                        'subtasks': [],
                    },
                },
            )
        ]
    )
    assert desk.running() == ()
