"""What the Temporal transports share: the mailboxes opened on their side, served in process.

Each of them ([`TemporalTransport`][subagents_cancel.temporal.TemporalTransport], the transport inside a task's
workflow, and [`ChildWorkflowTransport`][subagents_cancel.temporal.ChildWorkflowTransport]) opens, releases and
observes its own side's mailboxes through an [`InProcessTransport`][subagents_cancel.InProcessTransport], and decides
itself, in `send_nowait`, what leaves through Temporal.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

from subagents_cancel.transport import InProcessTransport, Mailbox, Observer
from subagents_cancel.wire import WireMessage

__all__ = ('LocalMailboxes',)


class LocalMailboxes(ABC):
    """The mailboxes on this side of a Temporal transport, and `send` as its `send_nowait`."""

    def __init__(self) -> None:
        self._local = InProcessTransport()

    async def open(self, address: str) -> Mailbox | None:
        """Open a mailbox on this side at `address`, or return `None` if it is taken."""
        return await self._local.open(address)

    async def release(self, address: str) -> None:
        """Close the mailbox at `address`."""
        await self._local.release(address)

    def subscribe(self, observer: Observer) -> Callable[[], None]:
        """Show every message sent to or received by this side's mailboxes to `observer`."""
        return self._local.subscribe(observer)

    async def send(self, address: str, message: WireMessage) -> bool:
        """`send_nowait`: no Temporal transport makes a sender wait."""
        return self.send_nowait(address, message)

    @abstractmethod
    def send_nowait(self, address: str, message: WireMessage) -> bool:
        """Send `message`: to a mailbox on this side, or through Temporal."""
