"""A task runner's mailbox: the messages routed to the task, and the receipt each cancel request gets.

[`CancelMailbox`][subagents_cancel._engine.cancel_mailbox.CancelMailbox] takes what the host routes to the task
(a cancel request, its escalation, an answer, the replies of the owners opened inside the task) and answers every
cancel request at once: received, held while the answer being checked may still win, or lost with the run's
ending. A copy of a request (the owner sends one again until answered) gets the same receipt and changes nothing;
a soft request's receipt waits while the owners inside the task have not received their cascade yet. What a
request does to the run (stop it, or tell it) is the runner's (`runner.py`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from subagents_cancel._text import subagent_replies
from subagents_cancel.messages import (
    Answer,
    BusMessage,
    CancelAllReceived,
    CancelEscalated,
    CancelHeld,
    CancelLost,
    CancelReason,
    CancelReceived,
    CancelRequest,
    RunOutput,
    SubtasksEnded,
)

from .delivery import DeliveryEvent
from .run_channel import RunChannel
from .run_usage import UsageAfterCancel

__all__ = ('CancelMailbox',)


class CancelMailbox(RunChannel, ABC):
    """The messages to a task and the receipts of its cancel requests; the runner says what a request does."""

    @abstractmethod
    def _stop(self, why: CancelReason) -> None:
        """Stop the run for a hard cancel (or an escalated soft one) given `why`."""

    @abstractmethod
    def _escalated(self) -> None:
        """The owner's grace window ran out before the task ended: stop it."""

    @abstractmethod
    def _start_wrap_up(self, request: CancelRequest) -> None:
        """Begin the soft cancel `request`: reach the task's own sub-agents, then the task."""

    # --- the mailbox ----------------------------------------------------------------------------

    def receive(self, message: BusMessage) -> None:
        """Handle a message to the task: a cancel request, its escalation, an answer, a cascade's reply."""
        copies = self._copies
        if isinstance(message, CancelRequest | CancelEscalated) and copies is not None and message.message_id in copies:
            self._answer_copy(copies[message.message_id])
        elif isinstance(message, CancelRequest):
            self._receive_cancel(message)
        elif isinstance(message, CancelEscalated):
            self._copied(message.message_id, None)
            self._escalated()
        elif isinstance(message, Answer) and self._line is not None:
            self._line.resolve(message.correlation_id, subagent_replies.answered_by_parent(message.text))
        elif isinstance(message, SubtasksEnded):
            if self._cascade is not None:
                self._cascade.ended(message.correlation_id)
        elif (
            isinstance(message, CancelAllReceived)
            and self._cascade is not None
            and self._cascade.received(message.correlation_id)
        ):
            self._send_held_receipt()

    def _receive_cancel(self, message: CancelRequest) -> None:
        """Act on a cancel request, and give its receipt at once: lost (with the ending), held, or received."""
        if self._usage_after_cancel is None:
            self._usage_after_cancel = UsageAfterCancel()
        self._usage_after_cancel.cancel_arrived(self._messages())
        receipt: BusMessage = CancelReceived(
            task_id=self.spec.task_id, sent_at=self._clock.now(), correlation_id=message.message_id
        )
        if (committed := self._committed()) is not None:  # the cancel lost: say so now, not when the run is over
            receipt = CancelLost(
                task_id=self.spec.task_id,
                sent_at=self._clock.now(),
                correlation_id=message.message_id,
                ending=committed,
            )
        match message:
            case CancelRequest(mode='hard', reason=reason):
                self._stop(reason)
            case CancelRequest() if self._cancel is not None:
                pass  # an owner sends one soft request (its task table refuses another); the first one's window runs
            case CancelRequest():
                self._race.cancel_arrived(held=self._race.ending, run_ended=self._run_ended())
                self._soft().handle(DeliveryEvent.REQUEST)
                if self._race.ending and self._committed() is None:  # the answer being checked may still win: say so
                    receipt = CancelHeld(
                        task_id=self.spec.task_id, sent_at=self._clock.now(), correlation_id=message.message_id
                    )
                self._cancel = message
                if self._loop is not None:  # else `run()` starts the wrap-up when it begins
                    self._start_wrap_up(message)
        self._copied(message.message_id, receipt)
        if message.mode == 'soft' and self._cascade is not None and self._cascade.awaiting_receipts:
            self._held_receipt = receipt  # until the owners inside the task have asked their own tasks to stop
        else:  # a hard request is answered at once: the task is stopping, and a soft receipt held for it goes first
            self._send_held_receipt()
            self._send(receipt)

    def _copied(self, message_id: str, receipt: BusMessage | None) -> None:
        """Keep the receipt of the request (or escalation) `message_id`, to answer a copy of it with."""
        if self._copies is None:
            self._copies = {}
        self._copies[message_id] = receipt

    def _answer_copy(self, receipt: BusMessage | None) -> None:
        """A copy of a request (or escalation) already received: give its receipt again, unless it is held still."""
        if receipt is not None and receipt is not self._held_receipt:
            self._send(receipt)

    def _send_held_receipt(self) -> None:
        """Give the receipt held for the cascade: the owners inside the task received it, or the wait is over."""
        if self._cascade is not None:
            self._cascade.stop_awaiting_receipts()
        receipt, self._held_receipt = self._held_receipt, None
        if receipt is not None:
            self._send(receipt)

    def _committed(self) -> RunOutput | None:
        """The run's output, if it was committed before any cancel request reached the runner: a request now loses."""
        result = self._run.result if self._run is not None else None
        return self._race.committed((result.output,) if result is not None else None)

    def _run_ended(self) -> bool:
        return self._run is not None and self._run.result is not None
