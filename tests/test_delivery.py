"""The soft-cancel delivery table: every allowed move, every refused one, and what the delivery object hands out."""

from __future__ import annotations

import itertools

import pytest
from inline_snapshot import snapshot

from subagents_cancel._engine.delivery import (
    DELIVERY_TRANSITIONS,
    DeliveryEvent,
    DeliveryState,
    SoftCancelDelivery,
    next_delivery,
)


def _table() -> dict[str, dict[str, str]]:
    return {
        state.name: {
            event.name: DELIVERY_TRANSITIONS[state, event].name
            for event in DeliveryEvent
            if (state, event) in DELIVERY_TRANSITIONS
        }
        for state in DeliveryState
        if any((state, event) in DELIVERY_TRANSITIONS for event in DeliveryEvent)
    }


def test_the_table_is_the_design() -> None:
    """The whole delivery table, pinned: a change to any move shows up here."""
    assert _table() == snapshot(
        {
            'NOT_REQUESTED': {'REQUEST': 'REQUESTED'},
            'REQUESTED': {
                'TELL': 'HELD',
                'ANSWER_QUESTION': 'ANSWERED',
                'REPLY': 'ANSWERED',
                'ESCALATE': 'ESCALATED',
                'STOP': 'WITHDRAWN',
            },
            'HELD': {
                'REPLY': 'HELD',
                'QUEUE': 'QUEUED',
                'ACKNOWLEDGE': 'ACKNOWLEDGED',
                'ESCALATE': 'ESCALATED',
                'STOP': 'WITHDRAWN',
            },
            'QUEUED': {
                'REPLY': 'QUEUED',
                'ACKNOWLEDGE': 'ACKNOWLEDGED',
                'ESCALATE': 'ESCALATED',
                'STOP': 'WITHDRAWN',
            },
            'ANSWERED': {
                'TELL': 'HELD',
                'REPLY': 'ANSWERED',
                'ACKNOWLEDGE': 'ACKNOWLEDGED',
                'ESCALATE': 'ESCALATED',
                'STOP': 'WITHDRAWN',
            },
        }
    )


_ALLOWED = sorted(DELIVERY_TRANSITIONS, key=lambda pair: (pair[0].name, pair[1].name))


@pytest.mark.parametrize(('state', 'event'), _ALLOWED, ids=[f'{s.name}-{e.name}' for s, e in _ALLOWED])
def test_every_allowed_move(state: DeliveryState, event: DeliveryEvent) -> None:
    """Each pair in the table moves to its target."""
    assert next_delivery(state, event) == DELIVERY_TRANSITIONS[state, event]


_REFUSED = [
    (state, event)
    for state, event in itertools.product(DeliveryState, DeliveryEvent)
    if not state.is_terminal and (state, event) not in DELIVERY_TRANSITIONS
]


@pytest.mark.parametrize(('state', 'event'), _REFUSED, ids=[f'{s.name}-{e.name}' for s, e in _REFUSED])
def test_every_missing_move_is_a_bug(state: DeliveryState, event: DeliveryEvent) -> None:
    """A pair the table does not list raises, naming both."""
    with pytest.raises(AssertionError, match=rf'^No delivery move from {state.name} on {event.name}\.$'):
        next_delivery(state, event)


@pytest.mark.parametrize('state', [state for state in DeliveryState if state.is_terminal])
@pytest.mark.parametrize('event', list(DeliveryEvent))
def test_terminal_states_absorb_every_event(state: DeliveryState, event: DeliveryEvent) -> None:
    """Once the request was read, escalated or withdrawn, every later event changes nothing."""
    assert next_delivery(state, event) is None


def test_every_request_on_its_way_can_still_end() -> None:
    """From every state between the request and the model, the grace window and a hard stop both end the delivery."""
    on_its_way = [
        state for state in DeliveryState if not state.is_terminal and state is not DeliveryState.NOT_REQUESTED
    ]
    assert {(state, event): DELIVERY_TRANSITIONS[state, event] for state in on_its_way for event in _ENDS} == {
        (state, event): target for state in on_its_way for event, target in _ENDS.items()
    }


_ENDS = {DeliveryEvent.ESCALATE: DeliveryState.ESCALATED, DeliveryEvent.STOP: DeliveryState.WITHDRAWN}


def test_the_held_request_is_handed_out_once_and_acknowledged_by_its_enqueue_id() -> None:
    """The held text is queued once; the request counts as read when its enqueue id has left the run's queue."""
    delivery = SoftCancelDelivery()
    delivery.handle(DeliveryEvent.REQUEST)
    delivery.tell('CANCEL_REQUEST: stop')
    assert delivery.take_held() == 'CANCEL_REQUEST: stop'
    delivery.queued('enqueue-1')
    assert delivery.take_held() is None
    assert not delivery.delivered(still_queued={'enqueue-1'}, returned_calls=set())
    assert delivery.delivered(still_queued={'other'}, returned_calls={'call-1'})
    delivery.handle(DeliveryEvent.ACKNOWLEDGE)
    assert (delivery.state, delivery.delivered(still_queued=set(), returned_calls=set())) == (
        DeliveryState.ACKNOWLEDGED,
        False,
    )


def test_an_answered_question_is_acknowledged_by_its_tool_call() -> None:
    """A request given as an ask_parent reply counts as read when the result of that call goes out, not another."""
    delivery = SoftCancelDelivery()
    delivery.handle(DeliveryEvent.REQUEST)
    delivery.answer_question()
    delivery.link_reply('call-ask')
    delivery.link_reply('call-other')  # a later ask_parent call that was not answered with the request
    assert delivery.reply_calls == {'call-ask'}
    assert not delivery.delivered(still_queued=set(), returned_calls={'call-other'})
    assert delivery.delivered(still_queued=set(), returned_calls={'call-other', 'call-ask'})
