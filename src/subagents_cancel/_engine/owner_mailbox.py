"""The owner's side of the transport: its address, what it sends, and the one loop that reads what its tasks report.

An owner claims an address on the transport as it opens (another one if an owner on the same transport has it),
sends without ever blocking (`Transport.send_nowait`, so the engine's synchronous paths keep the order of their
messages), and reads its mailbox in one asyncio task, handing every message to the task book. After the owner
closes, the loop stops and the address is released; until the owner is quiet (no sync tool's thread of its tasks
is left to report that it returned), it hears what is still sent to it as an observer of the transport, which
needs no task of its own: nothing of the owner outlives its block but a callback. (A transport the owner opened
itself stays open until then, idle: neither transport runs a task while nothing is in transit.)
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import anyio

from subagents_cancel.messages import OwnerAnnouncement
from subagents_cancel.transport import Mailbox, Transport, read_mailbox
from subagents_cancel.wire import WireMessage

__all__ = ('OwnerMailbox',)

_ADDRESS_ATTEMPTS = 64
"""Random addresses tried before the transport is judged broken: with 32 random bits, a second try is rare."""


async def _nothing() -> None:
    pass


class OwnerMailbox:
    """One owner's mailbox on a transport, and the loop that reads it; see the module docstring."""

    def __init__(
        self,
        transport: Transport,
        receive: Callable[[WireMessage], None],
        *,
        quiet: Callable[[], bool],
        after: Callable[[], Coroutine[Any, Any, None]] = _nothing,
    ) -> None:
        """Prepare the mailbox; `receive` gets each message, `quiet` says the closed owner may stop reading.

        `after` runs once the loop has ended and the address is released (the owner's own transport closes there).
        """
        self.transport = transport
        self._receive = receive
        self._quiet = quiet
        self._after = after
        self._loop: asyncio.Task[None] | None = None
        self.address = ''
        self._unsubscribe: Callable[[], None] = lambda: None

    async def claim(self, candidates: Iterator[str]) -> str:
        """Open a mailbox at the first free address of `candidates`, start reading it, and return the address."""
        for address in itertools.islice(candidates, _ADDRESS_ATTEMPTS):
            if (mailbox := await self.transport.open(address)) is not None:
                self._loop = asyncio.get_running_loop().create_task(self._read(mailbox), name=f'owner {address}')
                self.address = address
                return address
        raise RuntimeError(f'The transport refused {_ADDRESS_ATTEMPTS} fresh random addresses in a row.')

    def send(self, address: str, message: WireMessage) -> None:
        """Send `message` to `address` without blocking; it is dropped if no mailbox is there."""
        self.transport.send_nowait(address, message)

    async def close(self) -> None:
        """Stop reading and release the address; hear late reports as an observer until the owner is quiet."""
        if self._loop is not None:
            self._loop.cancel()
            with anyio.CancelScope(shield=True), contextlib.suppress(asyncio.CancelledError):
                await self._loop
        if self._quiet():
            await self._after()
        else:
            self._unsubscribe = self.transport.subscribe(self._late)

    def _late(self, address: str, message: WireMessage) -> None:
        if address == self.address:
            self._receive(message)
            if self._quiet():
                self._unsubscribe()

    async def _read(self, mailbox: Mailbox) -> None:
        try:
            await read_mailbox(mailbox, self._receive, ignore=OwnerAnnouncement)  # its own, sent for observers
        finally:
            with anyio.CancelScope(shield=True):
                await self.transport.release(mailbox.address)
