"""The transport between owners and tasks: mailboxes opened once, order kept, released and closed without hanging.

Every test runs on both transports: the in-process one, which hands over the very objects, and the loopback one,
which carries every message through JSON and delivers it from its own task.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools

import anyio
import pytest
from inline_snapshot import snapshot
from pydantic import BaseModel
from pydantic_ai import RunUsage

from subagents_cancel import CancelReason, InProcessTransport, LoopbackTransport, Mailbox, TaskId, Transport
from subagents_cancel.messages import Answer, CancelRequest, DeadlineExpired, Question, RunFinished, RunOutput
from subagents_cancel.output_codec import EncodedOutput, decode_output
from subagents_cancel.transport import read_mailbox
from subagents_cancel.wire import WireMessage

pytestmark = pytest.mark.anyio

T = TaskId('researcher-3f9a07c2')


class Report(BaseModel):
    title: str
    pages: int


class Opaque:
    """A plain class: pydantic cannot serialise its instances."""

    def __repr__(self) -> str:
        return 'Opaque(42)'


@pytest.fixture(params=['in-process', 'loopback'])
def transport(request: pytest.FixtureRequest) -> Transport:
    """A transport not yet entered, of each kind."""
    return InProcessTransport() if request.param == 'in-process' else LoopbackTransport()


def question(number: int) -> Question:
    return Question(task_id=T, sent_at=float(number), text=f'question {number}')


async def read_all(mailbox: Mailbox, into: list[WireMessage]) -> None:
    async for message in mailbox:
        into.append(message)


async def read(mailbox: Mailbox, count: int) -> list[WireMessage]:
    return [await anext(mailbox) for _ in range(count)]


async def test_messages_to_a_mailbox_arrive_in_the_order_they_were_sent(transport: Transport) -> None:
    """Messages from two senders to one address arrive in the order of their sends, each exactly once."""
    sent = [question(number) for number in range(6)]
    async with transport:
        mailbox = await transport.open('owner')
        assert mailbox is not None and mailbox.address == 'owner'

        async def sender(messages: list[Question]) -> None:
            for message in messages:
                assert await transport.send('owner', message)
                await anyio.lowlevel.checkpoint()

        async with anyio.create_task_group() as group:
            group.start_soon(sender, sent[0::2])
            group.start_soon(sender, sent[1::2])
        received = await read(mailbox, 6)
    assert [message.sent_at for message in received] == snapshot([0.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    assert received == sent


async def test_an_address_is_taken_by_one_mailbox_at_a_time(transport: Transport) -> None:
    """A second open of a taken address gets `None`; once released, the address can be opened again."""
    async with transport:
        first = await transport.open('researcher-1')
        assert first is not None
        assert await transport.open('researcher-1') is None
        await transport.release('researcher-1')
        again = await transport.open('researcher-1')
        assert again is not None and again is not first


async def test_release_ends_iteration_and_later_sends_are_dropped(transport: Transport) -> None:
    """A reader waiting on a released mailbox stops; messages not yet read are dropped, and later sends say so."""
    received: list[WireMessage] = []
    first = question(1)
    async with transport:
        assert not await transport.send('task', Question(task_id=T, sent_at=0.0, text='still there?'))
        mailbox = await transport.open('task')
        assert mailbox is not None
        async with anyio.create_task_group() as group:
            group.start_soon(read_all, mailbox, received)
            assert await transport.send('task', first)
            await anyio.wait_all_tasks_blocked()
            assert await transport.send('task', question(2))
            await transport.release('task')
            assert not await transport.send('task', question(3))
        assert received == [first]
        assert [message async for message in mailbox] == []


async def test_observers_see_every_message_sent_with_its_address(transport: Transport) -> None:
    """Observers see messages whether or not a mailbox took them, until they unsubscribe."""
    seen: list[tuple[str, str]] = []
    async with transport:
        mailbox = await transport.open('owner')
        assert mailbox is not None
        unsubscribe = transport.subscribe(lambda address, message: seen.append((address, message.kind)))
        assert not await transport.send('nobody', question(1))
        assert await transport.send('owner', question(2))
        await read(mailbox, 1)
        unsubscribe()
        assert await transport.send('owner', question(3))
        await read(mailbox, 1)
    assert seen == snapshot([('nobody', 'question'), ('owner', 'question')])


async def test_closing_the_transport_ends_every_iteration(transport: Transport) -> None:
    """Readers of every open mailbox stop when the transport closes; it then drops sends and refuses to open."""
    got_a: list[WireMessage] = []
    got_b: list[WireMessage] = []
    first = question(1)
    async with anyio.create_task_group() as group:
        async with transport:
            for address, into in (('a', got_a), ('b', got_b)):
                mailbox = await transport.open(address)
                assert mailbox is not None
                group.start_soon(read_all, mailbox, into)
            assert await transport.send('a', first)
            await anyio.wait_all_tasks_blocked()
    assert [got_a, got_b] == [[first], []]
    assert not await transport.send('a', question(2))
    with pytest.raises(anyio.ClosedResourceError):
        await transport.open('c')


async def test_in_process_hands_over_the_very_object() -> None:
    """In-process, nothing is serialised: the reader gets the object that was sent, output included."""
    output = Opaque()
    sent = RunFinished(task_id=T, sent_at=1.0, ending=RunOutput(output), usage=RunUsage())
    async with InProcessTransport() as transport:
        mailbox = await transport.open('owner')
        assert mailbox is not None
        assert await transport.send('owner', sent)
        [received] = await read(mailbox, 1)
    assert received is sent


async def test_loopback_delivers_later_only_what_survived_json() -> None:
    """Loopback delivery happens after `send` returns, outside the sender's task, and carries outputs as JSON."""
    sender = asyncio.current_task()
    delivered_in: list[asyncio.Task[object] | None] = []
    sent = [
        RunFinished(task_id=T, sent_at=1.0, ending=RunOutput(Report(title='Batteries', pages=12)), usage=RunUsage()),
        RunFinished(task_id=T, sent_at=2.0, ending=RunOutput(Opaque()), usage=RunUsage()),
        CancelRequest(task_id=T, sent_at=3.0, mode='hard', reason=CancelReason(kind='region')),
    ]
    async with LoopbackTransport() as transport:
        transport.subscribe(lambda address, message: delivered_in.append(asyncio.current_task()))
        mailbox = await transport.open('owner')
        assert mailbox is not None
        for message in sent:
            assert await transport.send('owner', message)
        assert delivered_in == []
        received = await read(mailbox, 3)
    assert delivered_in and sender not in delivered_in
    assert all(got is not original for got, original in zip(received, sent, strict=True))
    report, opaque, cancel = received
    assert isinstance(report, RunFinished) and isinstance(report.ending, RunOutput)
    assert decode_output(report.ending.output, Report) == Report(title='Batteries', pages=12)
    assert isinstance(opaque, RunFinished) and isinstance(opaque.ending, RunOutput)
    assert opaque.ending.output == snapshot(
        EncodedOutput(
            type_name='tests.test_transport.Opaque (unserialisable; data is its shortened repr)', data='Opaque(42)'
        )
    )
    assert cancel == sent[2]


async def test_a_mailbox_is_read_by_async_iteration(transport: Transport) -> None:
    """`async for` over a mailbox yields each message as it arrives, across waits."""
    received: list[WireMessage] = []
    async with transport, anyio.create_task_group() as group:
        mailbox = await transport.open('task')
        assert mailbox is not None
        group.start_soon(read_all, mailbox, received)
        for number in range(3):
            assert await transport.send('task', Answer(task_id=T, sent_at=float(number), text='EU', correlation_id='q'))
            await anyio.wait_all_tasks_blocked()
            assert len(received) == number + 1
        await transport.release('task')
    assert [message.sent_at for message in received] == [0.0, 1.0, 2.0]


async def test_read_mailbox_hands_each_message_to_a_function_in_order_until_released(transport: Transport) -> None:
    """`read_mailbox` calls the function once per message, in the order sent, and returns once the mailbox is released."""
    handled: list[float] = []

    def handle(message: WireMessage) -> None:
        handled.append(message.sent_at)

    async with transport:
        mailbox = await transport.open('owner')
        assert mailbox is not None
        for number in range(3):
            assert await transport.send('owner', question(number))
        async with anyio.create_task_group() as group:
            group.start_soon(read_mailbox, mailbox, handle)
            await anyio.wait_all_tasks_blocked()
            assert handled == [0.0, 1.0, 2.0]
            assert await transport.send('owner', question(3))
            await anyio.wait_all_tasks_blocked()
            await transport.release('owner')
            assert not await transport.send('owner', question(4))
    assert handled == [0.0, 1.0, 2.0, 3.0]


async def test_a_message_sent_by_the_handler_is_handled_after_it_returns(transport: Transport) -> None:
    """A handler that sends is never re-entered: the message it sent comes after it returns, in order."""
    events: list[str] = []
    async with transport:
        mailbox = await transport.open('owner')
        assert mailbox is not None

        def handle(message: WireMessage) -> None:
            events.append(f'enter {message.sent_at}')
            if message.sent_at < 2:
                transport.send_nowait('owner', question(int(message.sent_at) + 1))
            events.append(f'leave {message.sent_at}')

        async with anyio.create_task_group() as group:
            group.start_soon(read_mailbox, mailbox, handle)
            assert transport.send_nowait('owner', question(0))
            assert events == []  # nothing is handled in the sender's call
            await anyio.wait_all_tasks_blocked()
            group.cancel_scope.cancel()
    assert events == snapshot(['enter 0.0', 'leave 0.0', 'enter 1.0', 'leave 1.0', 'enter 2.0', 'leave 2.0'])


async def test_a_cancelled_reader_handles_nothing_more(transport: Transport) -> None:
    """Once the task in `read_mailbox` is cancelled, no message is handed to its function, not even a queued one."""
    handled: list[float] = []
    async with transport:
        mailbox = await transport.open('owner')
        assert mailbox is not None
        reader = asyncio.get_running_loop().create_task(read_mailbox(mailbox, lambda m: handled.append(m.sent_at)))
        await anyio.wait_all_tasks_blocked()
        assert await transport.send('owner', question(1))
        reader.cancel()
        assert await transport.send('owner', question(2))
        await asyncio.wait((reader,))
        await anyio.wait_all_tasks_blocked()
    assert reader.cancelled() and handled == []


_READER = contextvars.ContextVar[str]('reader', default='nobody')


async def test_the_handler_runs_in_the_context_of_the_reading_task(transport: Transport) -> None:
    """Context variables the reading task had set are what the handler sees, not the sender's."""
    seen: list[str] = []

    async def reader(mailbox: Mailbox) -> None:
        _READER.set('owner reader')
        await read_mailbox(mailbox, lambda message: seen.append(_READER.get()))

    async with transport:
        mailbox = await transport.open('owner')
        assert mailbox is not None
        async with anyio.create_task_group() as group:
            group.start_soon(reader, mailbox)
            await anyio.wait_all_tasks_blocked()
            _READER.set('sender')
            assert await transport.send('owner', question(1))
            await anyio.wait_all_tasks_blocked()
            await transport.release('owner')
    assert seen == ['owner reader']


async def test_read_mailbox_raises_what_the_handler_raised_and_stops(transport: Transport) -> None:
    """A handler that raises ends the read with its exception: the messages after it are not handed over."""
    handled: list[float] = []

    def handle(message: WireMessage) -> None:
        handled.append(message.sent_at)
        if message.sent_at == 1:
            raise LookupError('no such task')

    async with transport:
        mailbox = await transport.open('owner')
        assert mailbox is not None
        for number in range(3):
            assert await transport.send('owner', question(number))
        with pytest.raises(LookupError, match=r'^no such task$'):
            await read_mailbox(mailbox, handle)
        await anyio.wait_all_tasks_blocked()
    assert handled == [0.0, 1.0]


async def test_read_mailbox_skips_the_kinds_its_reader_ignores(transport: Transport) -> None:
    """Messages of an ignored kind never reach the handler (observers still see them); the others keep their order."""
    handled: list[str] = []
    observed: list[str] = []

    def handle(message: WireMessage) -> None:
        handled.append(f'{message.kind} {message.sent_at}')

    expired = DeadlineExpired(task_id=T, sent_at=1.5)
    async with transport:
        transport.subscribe(lambda address, message: observed.append(message.kind))
        mailbox = await transport.open('owner')
        assert mailbox is not None
        async with anyio.create_task_group() as group:
            group.start_soon(functools.partial(read_mailbox, mailbox, handle, ignore=DeadlineExpired))
            assert await transport.send('owner', question(1))
            assert await transport.send('owner', expired)
            await anyio.wait_all_tasks_blocked()
            assert await transport.send('owner', expired)
            assert await transport.send('owner', question(2))
            await anyio.wait_all_tasks_blocked()
            await transport.release('owner')
    assert handled == snapshot(['question 1.0', 'question 2.0'])
    assert observed == snapshot(['question', 'deadline_expired', 'deadline_expired', 'question'])
