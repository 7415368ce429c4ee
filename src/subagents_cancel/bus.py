"""The message bus: one mailbox per address, typed messages, and observers that see all traffic.

Every request to a task (cancel, answer) and every fact from a task (started, question, checkpoint,
acknowledgement, end of run) travels as a [`BusMessage`][subagents_cancel.messages.BusMessage]. A task's
mailbox is addressed by its task id, an owner's by its owner id. Nothing bypasses the bus, so another
transport can replace [`InProcessBus`][subagents_cancel.bus.InProcessBus] by implementing
[`MessageBus`][subagents_cancel.bus.MessageBus].
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from .messages import BusMessage

__all__ = ('Listener', 'MailboxHandler', 'MessageBus', 'InProcessBus')

MailboxHandler = Callable[[BusMessage], None]
"""Receives the messages delivered to one mailbox, in the order they were sent."""

Listener = Callable[[str, BusMessage], None]
"""Observes every message sent on the bus, with the address it was sent to."""


class MessageBus(Protocol):
    """Routes messages to mailboxes."""

    def open_mailbox(self, address: str, handler: MailboxHandler) -> bool:
        """Deliver messages sent to `address` to `handler` from now on; return `False` if it is taken.

        Checking and taking the address is one step: of two owners on one bus that open the same address,
        exactly one gets it, and the other (given `False`, with nothing changed) picks another address.
        """
        ...

    def close_mailbox(self, address: str) -> None:
        """Stop delivering to `address`; later messages to it are dropped."""
        ...

    def send(self, address: str, message: BusMessage) -> bool:
        """Send `message` to the mailbox at `address`; return whether a mailbox was there to take it."""
        ...

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Show every message to `listener` until the returned function is called."""
        ...


class InProcessBus:
    """A bus inside one event loop that delivers synchronously.

    `send()` shows the message to the observers, then runs the recipient's handler, and returns once
    the handler has run. A cancel request has therefore reached its task by the time `send()` returns,
    and the order of messages is the order of `send()` calls. A transport across processes would
    deliver from a receive loop instead, to the same handlers.
    """

    def __init__(self) -> None:
        self._mailboxes: dict[str, MailboxHandler] = {}
        self._listeners: list[Listener] = []

    def open_mailbox(self, address: str, handler: MailboxHandler) -> bool:
        """Deliver messages sent to `address` to `handler`; `False` (and nothing changes) if a mailbox has it."""
        if address in self._mailboxes:
            return False
        self._mailboxes[address] = handler
        return True

    def close_mailbox(self, address: str) -> None:
        """Stop delivering to `address`."""
        self._mailboxes.pop(address, None)

    def send(self, address: str, message: BusMessage) -> bool:
        """Show `message` to the observers, then deliver it to the mailbox at `address`, if one is open."""
        for listener in tuple(self._listeners):
            listener(address, message)
        handler = self._mailboxes.get(address)
        if handler is None:
            return False
        handler(message)
        return True

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Show every message to `listener` until the returned function is called."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)
