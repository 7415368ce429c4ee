"""The transport: the one way messages travel between an owner and its tasks.

A [`Transport`][subagents_cancel.Transport] carries [`WireMessage`][subagents_cancel.wire.WireMessage]s to
mailboxes. An owner's mailbox is at its owner id, a task host's at the host's address (by default
`<owner_id>/tasks`); a task has no mailbox of its own: messages to it go to its host, carrying its `task_id`, and
the host routes them by it. Whoever opens a mailbox reads it, as an async iterator, and anyone may send to it. What
every transport guarantees:

* **Its lifetime bounds every mailbox.** A transport is an async context manager; mailboxes are opened inside it,
  and leaving it ends the iteration of every mailbox, so no reader waits past it, and it never hangs or spins.
* **One mailbox per address.** Opening an address that is taken gives `None`; checking and taking is one step.
* **`send` (or `send_nowait`) returning `True`** means a mailbox was open at the address, and the message will be
  delivered to that mailbox unless it is released first; `False` means there was none, and the message is dropped.
* **Order and count.** Messages sent to one address arrive in the order they were sent (from one sender at
  least: a transport across processes may interleave two senders), each at most once. A message sent but not
  yet read when its mailbox is released, or the transport closed, is dropped.
* **Observers** see every message sent while the transport is open, with its address, whether a mailbox takes it
  or not, as it is delivered (a message still in transit when the transport closes is dropped unseen). An
  observer is called from the transport's delivery, so it must return quickly and must not raise.

[`InProcessTransport`][subagents_cancel.InProcessTransport] hands over the very objects, in the sender's task.
[`LoopbackTransport`][subagents_cancel.LoopbackTransport] carries every message through JSON and delivers it
later, from the event loop rather than from the sender's call, as a transport across processes would.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from types import UnionType
from typing import Literal, Protocol, Self, final, runtime_checkable

import anyio
from pydantic import ValidationError

from .wire import WireMessage, decode_wire, encode_wire

_log = logging.getLogger('subagents_cancel')

__all__ = ('InProcessTransport', 'LoopbackTransport', 'Mailbox', 'Observer', 'RemoteTasks', 'Transport', 'read_mailbox')

Observer = Callable[[str, WireMessage], None]
"""Sees every message sent on a transport, with the address it was sent to."""


class Mailbox(Protocol):
    """The messages sent to one address, read in order by one task with `async for`.

    Iteration ends once the mailbox is released or its transport closed.
    """

    @property
    def address(self) -> str:
        """The address this mailbox was opened at."""
        ...

    def __aiter__(self) -> AsyncIterator[WireMessage]:
        """The mailbox itself."""
        ...

    async def __anext__(self) -> WireMessage:
        """The next message, once there is one.

        Raises:
            StopAsyncIteration: the mailbox was released, or its transport closed.
        """
        ...


class Transport(Protocol):
    """Carries messages between owners and tasks: open a mailbox, send to an address, release, observe."""

    async def __aenter__(self) -> Self:
        """Start the transport; mailboxes can be opened from now on."""
        ...

    async def __aexit__(self, *exc_info: object) -> None:
        """Close the transport: every mailbox's iteration ends, later sends are dropped, `open` raises."""
        ...

    async def open(self, address: str) -> Mailbox | None:
        """Open the mailbox at `address`, or return `None` (and change nothing) if that address is taken.

        Raises:
            anyio.ClosedResourceError: the transport is not entered yet, or closed.
        """
        ...

    async def send(self, address: str, message: WireMessage) -> bool:
        """Send `message` to `address`; return whether a mailbox was open there to take it."""
        ...

    def send_nowait(self, address: str, message: WireMessage) -> bool:
        """`send`, without ever blocking or yielding: for the engine's synchronous paths (a cancel request, a report).

        The message is on its way in order with every other message sent to `address`, by either method.
        """
        ...

    async def release(self, address: str) -> None:
        """Close the mailbox at `address`: its iteration ends, unread and later messages are dropped."""
        ...

    def subscribe(self, observer: Observer) -> Callable[[], None]:
        """Show every message to `observer` until the returned function is called."""
        ...


@runtime_checkable
class RemoteTasks(Protocol):
    """A transport whose own task host runs every task elsewhere (Temporal workers): an owner given it runs none."""

    @property
    def host_address(self) -> str:
        """Where owners send `StartTask`."""
        ...


async def read_mailbox(
    mailbox: Mailbox, handle: Callable[[WireMessage], None], *, ignore: type[WireMessage] | UnionType | None = None
) -> None:
    """Call `handle` with each message of `mailbox`, in order, until the mailbox is released or its transport closed.

    `handle` runs in the calling task, never in the sender's call; what it raises ends the read, and a message put
    while it runs is handled once it returns. Messages of the kinds `ignore` names are skipped. A mailbox of this
    module is read without its async-iterator layers (one step of the calling task per wake-up, however many
    messages came), and drops an ignored message as it arrives, without waking the reader; any other mailbox is
    read with `async for`.
    """
    if isinstance(mailbox, _Mailbox):
        await mailbox.hand_over(handle, () if ignore is None else ignore)
        return
    async for message in mailbox:
        if ignore is None or not isinstance(message, ignore):
            handle(message)


class _Mailbox:
    """A FIFO queue that wakes its one reader; reading a message that is there already does not yield.

    The reader waits on a bare future rather than an `anyio.Event`: a mailbox wakes once per message, and the
    event's wrappers were most of what a message cost in process (`benchmarks/seam.py`).
    """

    __slots__ = ('address', '_queue', '_released', '_wakeup', '_ignored')

    def __init__(self, address: str) -> None:
        self.address = address
        self._queue: deque[WireMessage] = deque()
        self._released = False
        self._wakeup: asyncio.Future[None] | None = None
        self._ignored: type[WireMessage] | UnionType | tuple[()] = ()
        """The kinds its reader skips (`read_mailbox`'s `ignore`): dropped as they arrive."""

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> WireMessage:
        while not self._released:
            if self._queue:
                return self._queue.popleft()
            self._wakeup = asyncio.get_running_loop().create_future()
            await self._wakeup
        raise StopAsyncIteration

    async def hand_over(
        self, handle: Callable[[WireMessage], None], ignore: type[WireMessage] | UnionType | tuple[()]
    ) -> None:
        """`read_mailbox` for this mailbox: the reads of `__anext__`, with `handle` called in place of each return."""
        self._ignored = ignore
        queue = self._queue = deque(message for message in self._queue if not isinstance(message, ignore))
        while not self._released:
            while queue:  # `end()` empties it: nothing is handled after a release
                handle(queue.popleft())
            self._wakeup = asyncio.get_running_loop().create_future()
            await self._wakeup

    def put(self, message: WireMessage) -> None:
        if not self._released and not isinstance(message, self._ignored):
            self._queue.append(message)
            if self._wakeup is not None:
                self._wake()

    def end(self) -> None:
        self._released = True
        self._queue.clear()
        self._wake()

    def _wake(self) -> None:
        if self._wakeup is not None:
            if not self._wakeup.done():  # a reader cancelled while waiting has cancelled its future
                self._wakeup.set_result(None)
            self._wakeup = None


class _Mailboxes:
    """The open mailboxes of one transport, its observers, and whether it is open."""

    def __init__(self) -> None:
        self.state: Literal['new', 'open', 'closed'] = 'new'
        self._open: dict[str, _Mailbox] = {}
        self._observers: list[Observer] = []

    def start(self) -> None:
        if self.state != 'new':
            raise RuntimeError('A transport is entered once; create a new one.')
        self.state = 'open'

    def open(self, address: str) -> _Mailbox | None:
        if self.state != 'open':
            raise anyio.ClosedResourceError
        if address in self._open:
            return None
        mailbox = self._open[address] = _Mailbox(address)
        return mailbox

    def target(self, address: str) -> _Mailbox | None:
        return self._open.get(address)

    def send(self, address: str, message: WireMessage) -> bool:
        """Deliver `message` to the mailbox open at `address` now, if any; return whether there was one."""
        mailbox = self._open.get(address)
        self.deliver(address, message, mailbox)
        return mailbox is not None

    def deliver(self, address: str, message: WireMessage, mailbox: _Mailbox | None) -> None:
        for observer in self._observers:  # never changed in place: an observer may unsubscribe while it is called
            observer(address, message)
        if mailbox is not None:
            mailbox.put(message)

    @property
    def observed(self) -> bool:
        return bool(self._observers)

    def release(self, address: str) -> None:
        mailbox = self._open.pop(address, None)
        if mailbox is not None:
            mailbox.end()

    def subscribe(self, observer: Observer) -> Callable[[], None]:
        self._observers = [*self._observers, observer]

        def unsubscribe() -> None:
            if observer in self._observers:
                observers = list(self._observers)
                observers.remove(observer)
                self._observers = observers

        return unsubscribe

    def close(self) -> None:
        self.state = 'closed'
        for mailbox in self._open.values():
            mailbox.end()
        self._open.clear()


class _MailboxTransport:
    """What both transports share: mailboxes opened, released and observed in this process."""

    def __init__(self) -> None:
        self._mailboxes = _Mailboxes()

    async def open(self, address: str) -> Mailbox | None:
        """Open the mailbox at `address`, or return `None` (and change nothing) if that address is taken.

        Raises:
            anyio.ClosedResourceError: the transport is not entered yet, or closed.
        """
        return self._mailboxes.open(address)

    async def release(self, address: str) -> None:
        """Close the mailbox at `address`: its iteration ends, unread and later messages are dropped."""
        self._mailboxes.release(address)

    def subscribe(self, observer: Observer) -> Callable[[], None]:
        """Show every message to `observer` until the returned function is called."""
        return self._mailboxes.subscribe(observer)

    @property
    def observed(self) -> bool:
        """Whether an observer is subscribed now: an owner announces its tasks' changes (`StatusChanged`) only then."""
        return self._mailboxes.observed


@final
class InProcessTransport(_MailboxTransport):
    """A transport inside one event loop that hands over the very objects: nothing is serialised.

    `send` shows the message to the observers and appends it to the mailbox, waking its reader, before it
    returns; it never yields to the event loop.
    """

    async def __aenter__(self) -> Self:
        """Start the transport; mailboxes can be opened from now on."""
        self._mailboxes.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Close the transport: every mailbox's iteration ends, later sends are dropped, `open` raises."""
        self._mailboxes.close()

    async def send(self, address: str, message: WireMessage) -> bool:
        """Show `message` to the observers and append it to the mailbox at `address`, if one is open."""
        return self.send_nowait(address, message)

    def send_nowait(self, address: str, message: WireMessage) -> bool:
        """Show `message` to the observers and append it to the mailbox at `address`, if one is open."""
        return self._mailboxes.state == 'open' and self._mailboxes.send(address, message)


@final
class LoopbackTransport(_MailboxTransport):
    """A transport that carries every message through JSON and delivers it later, from the event loop.

    `send` encodes the message ([`encode_wire`][subagents_cancel.wire.encode_wire]) and queues the
    bytes; a callback of the event loop, scheduled while messages are in transit, decodes each one, shows it to the
    observers and puts it in its mailbox. Delivery is therefore always asynchronous and always through
    bytes: readers and observers get what survived JSON (outputs as
    [`EncodedOutput`][subagents_cancel.output_codec.EncodedOutput]s), never the object that was sent.
    """

    def __init__(self) -> None:
        super().__init__()
        self._transit: _Transit | None = None

    async def __aenter__(self) -> Self:
        """Start the transport; mailboxes can be opened from now on."""
        self._mailboxes.start()
        self._transit = _Transit(self._mailboxes)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Close the transport: every mailbox's iteration ends, delivery stops, messages in transit are dropped."""
        self._mailboxes.close()
        if self._transit is not None:
            self._transit.stop()

    async def send(self, address: str, message: WireMessage) -> bool:
        """Encode `message` and queue it for the mailbox open at `address` now, if there is one."""
        return self.send_nowait(address, message)

    def send_nowait(self, address: str, message: WireMessage) -> bool:
        """Encode `message` and queue it for the mailbox open at `address` now, if there is one."""
        if self._transit is None or self._mailboxes.state != 'open':
            return False
        mailbox = self._mailboxes.target(address)
        self._transit.put(address, encode_wire(message), mailbox)
        return mailbox is not None


class _Transit:
    """The encoded messages on their way, each with the mailbox it was sent to, and their delivery.

    Delivery is a callback of the event loop, scheduled by the first message sent while none is in transit: it
    decodes and delivers the batch queued by then (as one read from a socket would), and schedules itself again if
    more came meanwhile. It belongs to no task, so nothing that cancels the sender's task or scope stops it (an owner
    entered inside a run still hears its tasks after the run's scopes end), and an idle transport runs nothing.
    """

    def __init__(self, mailboxes: _Mailboxes) -> None:
        self._mailboxes = mailboxes
        self._queue: deque[tuple[str, bytes, _Mailbox | None]] = deque()
        self._scheduled: asyncio.Handle | None = None
        self._nobody = contextvars.Context()
        """Delivery runs in no sender's context (what a reader or observer does is never taken for a task's own
        doing), and in one of this transport's own: a context is entered by one thread at a time, and another
        transport may be delivering on another thread's loop."""

    def put(self, address: str, data: bytes, mailbox: _Mailbox | None) -> None:
        self._queue.append((address, data, mailbox))
        if self._scheduled is None:
            self._scheduled = asyncio.get_running_loop().call_soon(self._deliver, context=self._nobody)

    def _deliver(self) -> None:
        self._scheduled = None
        try:
            for _ in range(len(self._queue)):
                address, data, mailbox = self._queue.popleft()
                try:
                    message = decode_wire(data)
                except ValidationError:  # cannot happen for what `encode_wire` wrote; never stop delivering
                    _log.exception('loopback transport dropped a message to %s it could not decode', address)
                    continue
                self._mailboxes.deliver(address, message, mailbox)
        finally:
            if self._queue and self._scheduled is None:  # sent while this batch was delivered: the next batch
                self._scheduled = asyncio.get_running_loop().call_soon(self._deliver, context=self._nobody)

    def stop(self) -> None:
        self._queue.clear()
        if self._scheduled is not None:
            self._scheduled.cancel()
            self._scheduled = None
