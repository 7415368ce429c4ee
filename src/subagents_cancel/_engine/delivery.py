"""How a soft cancel request reaches a running sub-agent: its delivery states, events, and the one transition table.

A soft request for a running task is not read by the model the moment it reaches the task's runner. The runner
first stops the task's own sub-agents (`REQUESTED`), then tells the run: an open `ask_parent` question is answered
with the request (`ANSWERED`); otherwise the request is held (`HELD`) until the run's next step that cannot end it,
and queued into the run there (`QUEUED`, with pydantic-ai's enqueue id). It is *acknowledged* when it goes out inside
a model request: the queue drained that enqueue id into the request, or the request carries the result of an
`ask_parent` call that was answered with it. The delivery ends there, or without reaching the model: the grace window
expired first (`ESCALATED`), or a hard stop superseded it (`WITHDRAWN`).

Holding the request (`HELD`) until a step that cannot end the run is what keeps a final answer from costing one more
model request, on every supported pydantic-ai version: a request queued while a final answer is processed
would redirect the run into another request, and `AgentRun.dequeue` (2.68+) is not needed to withdraw it.
Adding the request from a `before_model_request` hook instead would not redirect a preempted step's stand-in
response, which would then end the run as its output (see `preemption.py`).

[`next_delivery`][subagents_cancel._engine.delivery.next_delivery] is the only code that reads the table; a pair
the table does not list is a bug and raises; the terminal states absorb every later event.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from types import MappingProxyType

__all__ = ('DELIVERY_TRANSITIONS', 'DeliveryEvent', 'DeliveryState', 'SoftCancelDelivery', 'next_delivery')


class DeliveryState(Enum):
    """Where a soft cancel request is on its way to the model."""

    NOT_REQUESTED = 'NOT_REQUESTED'
    """No soft cancel request has reached the runner."""
    REQUESTED = 'REQUESTED'
    """The request reached the runner; the task's own sub-agents are asked to stop first."""
    HELD = 'HELD'
    """The run was told: the runner holds the request until the run's next step that cannot end it."""
    QUEUED = 'QUEUED'
    """Queued into the run (`AgentRun.enqueue`); the model reads it at its next request."""
    ANSWERED = 'ANSWERED'
    """Given as the reply of an `ask_parent` call; the model reads it with that call's result."""
    ACKNOWLEDGED = 'ACKNOWLEDGED'
    """It went out inside a model request: the sub-agent has read it."""
    ESCALATED = 'ESCALATED'
    """The grace window expired before it reached the model; the run is stopped."""
    WITHDRAWN = 'WITHDRAWN'
    """A hard stop superseded it before it reached the model."""

    @property
    def is_terminal(self) -> bool:
        """Whether the delivery is over; a terminal state never changes again."""
        return self in _TERMINAL


_TERMINAL = frozenset({DeliveryState.ACKNOWLEDGED, DeliveryState.ESCALATED, DeliveryState.WITHDRAWN})


class DeliveryEvent(Enum):
    """Something that happens to a soft cancel request on its way to the model."""

    REQUEST = 'REQUEST'
    """A soft cancel request reached the runner of a running task."""
    TELL = 'TELL'
    """The task's own sub-agents have ended (or had their time): the run is told, at its next safe step."""
    ANSWER_QUESTION = 'ANSWER_QUESTION'
    """The run is told by answering its open `ask_parent` question with the request."""
    REPLY = 'REPLY'
    """The sub-agent called `ask_parent` after the request: the call's reply is the request."""
    QUEUE = 'QUEUE'
    """The held request was queued into the run at a step that cannot end it."""
    ACKNOWLEDGE = 'ACKNOWLEDGE'
    """A model request went out carrying the request (drained from the queue, or in an `ask_parent` result)."""
    ESCALATE = 'ESCALATE'
    """The grace window expired."""
    STOP = 'STOP'
    """A hard stop (a hard cancel) reached the runner."""


_D = DeliveryState
_E = DeliveryEvent

_ENDINGS = {_E.ESCALATE: _D.ESCALATED, _E.STOP: _D.WITHDRAWN}

DELIVERY_TRANSITIONS: Mapping[tuple[DeliveryState, DeliveryEvent], DeliveryState] = MappingProxyType(
    {
        (_D.NOT_REQUESTED, _E.REQUEST): _D.REQUESTED,
        (_D.REQUESTED, _E.TELL): _D.HELD,
        (_D.REQUESTED, _E.ANSWER_QUESTION): _D.ANSWERED,
        (_D.REQUESTED, _E.REPLY): _D.ANSWERED,  # asked while its own sub-agents stop: it is told by the reply
        **{(_D.REQUESTED, event): to for event, to in _ENDINGS.items()},
        (_D.HELD, _E.QUEUE): _D.QUEUED,
        (_D.HELD, _E.REPLY): _D.HELD,  # the held copy is still queued at the next safe step
        (_D.HELD, _E.ACKNOWLEDGE): _D.ACKNOWLEDGED,  # the reply's copy went out first
        **{(_D.HELD, event): to for event, to in _ENDINGS.items()},
        (_D.QUEUED, _E.REPLY): _D.QUEUED,
        (_D.QUEUED, _E.ACKNOWLEDGE): _D.ACKNOWLEDGED,
        **{(_D.QUEUED, event): to for event, to in _ENDINGS.items()},
        # Told by a reply while its own sub-agents still stopped; once they have, the run is told again.
        (_D.ANSWERED, _E.TELL): _D.HELD,
        (_D.ANSWERED, _E.REPLY): _D.ANSWERED,
        (_D.ANSWERED, _E.ACKNOWLEDGE): _D.ACKNOWLEDGED,
        **{(_D.ANSWERED, event): to for event, to in _ENDINGS.items()},
    }
)
"""Every allowed `(state, event) -> state` move. A pair that is missing is a bug, except from a terminal state."""


def next_delivery(state: DeliveryState, event: DeliveryEvent) -> DeliveryState | None:
    """Return the state that `event` moves a delivery in `state` to.

    Returns:
        The new state, or `None` when `state` is terminal: the delivery is over and the event changes nothing.

    Raises:
        AssertionError: the table has no entry for a non-terminal `(state, event)`; the caller has a bug.
    """
    if state.is_terminal:
        return None
    try:
        return DELIVERY_TRANSITIONS[state, event]
    except KeyError:
        raise AssertionError(f'No delivery move from {state.name} on {event.name}.') from None


class SoftCancelDelivery:
    """One task's soft cancel request on its way to the model; changed only through its events."""

    __slots__ = ('_replies_unlinked', 'enqueue_id', 'held', 'reply_calls', 'state')

    def __init__(self) -> None:
        self.state = DeliveryState.NOT_REQUESTED
        """Where the request is; only `handle` changes it."""
        self.held: str | None = None
        """The text the run was told, until it is queued."""
        self.enqueue_id: str | None = None
        """The id pydantic-ai gave the queued request; its queue drops it when it delivers it into a request."""
        self.reply_calls: set[str] = set()
        """The ids of the `ask_parent` calls whose result is the request."""
        self._replies_unlinked = 0

    def handle(self, event: DeliveryEvent) -> bool:
        """Move by `event`; `False` (nothing changes) when the delivery is already over."""
        state = next_delivery(self.state, event)
        if state is None:
            return False
        self.state = state
        return True

    def tell(self, text: str) -> None:
        """The run is told `text`, to be queued at its next step that cannot end it."""
        if self.handle(DeliveryEvent.TELL):
            self.held = text

    def take_held(self) -> str | None:
        """The held text, if there is one: the caller queues it now, then calls `queued` with its enqueue id."""
        return self.held if self.state is DeliveryState.HELD else None

    def queued(self, enqueue_id: str | None) -> None:
        """The held text was queued into the run under `enqueue_id`."""
        self.handle(DeliveryEvent.QUEUE)
        self.held = None
        self.enqueue_id = enqueue_id

    def answer_question(self) -> None:
        """The run is told by answering its open `ask_parent` question; `link_reply` names the call once it returns."""
        if self.handle(DeliveryEvent.ANSWER_QUESTION):
            self._replies_unlinked += 1

    def replied(self) -> None:
        """An `ask_parent` call got the request as its reply; `link_reply` names the call once it returns."""
        if self.handle(DeliveryEvent.REPLY):
            self._replies_unlinked += 1

    def link_reply(self, tool_call_id: str) -> None:
        """The `ask_parent` call `tool_call_id` has returned; if it got the request, its result carries it."""
        if self._replies_unlinked:
            self._replies_unlinked -= 1
            self.reply_calls.add(tool_call_id)

    def delivered(self, still_queued: set[str], returned_calls: set[str]) -> bool:
        """Whether the request going out carries the request: its enqueue id left the queue, or a reply is in it.

        `still_queued` holds the enqueue ids the run has not delivered yet; `returned_calls` the ids of the tool
        calls whose results the request carries.
        """
        if self.state not in (DeliveryState.HELD, DeliveryState.QUEUED, DeliveryState.ANSWERED):
            return False
        drained = self.enqueue_id is not None and self.enqueue_id not in still_queued
        return drained or not self.reply_calls.isdisjoint(returned_calls)
