"""The transition table: every allowed move, every refused one, and its invariants under random interleavings."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from inline_snapshot import snapshot

from subagents_cancel import Cancelled, CancelReason, Completed, Failed, Outcome, TaskId, TaskStatus
from subagents_cancel._engine.registry import TaskRecord
from subagents_cancel.messages import RunEnding, RunError, RunOutput, RunStopped
from subagents_cancel.results import CancelInfo
from subagents_cancel.states import TRANSITIONS, IllegalTransition, TaskEvent, TaskState, next_state

_ALL_STATES = [TaskState(status, requested) for status in TaskStatus for requested in (False, True)]


def _table() -> dict[str, dict[str, str]]:
    return {
        str(state): {event.name: str(TRANSITIONS[state, event]) for event in TaskEvent if (state, event) in TRANSITIONS}
        for state in _ALL_STATES
        if any((state, event) in TRANSITIONS for event in TaskEvent)
    }


def test_the_table_is_the_design() -> None:
    """The whole table, pinned: a change to any move shows up here."""
    assert _table() == snapshot(
        {
            'PENDING': {
                'START': 'RUNNING',
                'FAIL': 'FAILED',
                'SOFT_CANCEL': 'CANCELLED (cancel requested)',
                'HARD_CANCEL': 'CANCELLED (cancel requested)',
            },
            'RUNNING': {
                'ASK': 'WAITING_FOR_ANSWER',
                'COMPLETE': 'COMPLETED',
                'FAIL': 'FAILED',
                'SOFT_CANCEL': 'RUNNING (cancel requested)',
                'HARD_CANCEL': 'RUNNING (cancel requested)',
            },
            'RUNNING (cancel requested)': {
                'COMPLETE': 'COMPLETED (cancel requested)',
                'FAIL': 'FAILED (cancel requested)',
                'HARD_CANCEL': 'RUNNING (cancel requested)',
                'STOP': 'CANCELLED (cancel requested)',
            },
            'WAITING_FOR_ANSWER': {
                'ANSWER': 'RUNNING',
                'FAIL': 'FAILED',
                'SOFT_CANCEL': 'RUNNING (cancel requested)',
                'HARD_CANCEL': 'RUNNING (cancel requested)',
            },
        }
    )


@pytest.mark.parametrize(('state', 'event'), sorted(TRANSITIONS, key=str))
def test_every_allowed_move(state: TaskState, event: TaskEvent) -> None:
    """Each pair in the table moves to its target."""
    assert next_state(state, event) == TRANSITIONS[state, event]


_REFUSED = [
    (state, event)
    for state, event in itertools.product(_ALL_STATES, TaskEvent)
    if not state.status.is_terminal and (state, event) not in TRANSITIONS
]


@pytest.mark.parametrize(('state', 'event'), _REFUSED, ids=[f'{s}-{e.name}' for s, e in _REFUSED])
def test_every_missing_move_is_a_bug(state: TaskState, event: TaskEvent) -> None:
    """A pair the table does not list raises IllegalTransition, naming both."""
    with pytest.raises(IllegalTransition, match=rf'^No transition from {state.status.name}.* on {event.name}\.$'):
        next_state(state, event)


@pytest.mark.parametrize('status', [status for status in TaskStatus if status.is_terminal])
@pytest.mark.parametrize('event', list(TaskEvent))
def test_terminal_states_absorb_every_event(status: TaskStatus, event: TaskEvent) -> None:
    """After the end, every event lost the race: it is reported (None), never applied."""
    assert next_state(TaskState(status, True), event) is None
    assert next_state(TaskState(status, False), event) is None


_ENDED_BY = {
    TaskEvent.STOP: TaskStatus.CANCELLED,
    TaskEvent.COMPLETE: TaskStatus.COMPLETED,
    TaskEvent.FAIL: TaskStatus.FAILED,
}


def test_a_requested_cancel_wins_unless_the_output_or_the_failure_came_first() -> None:
    """Once a cancel was requested, the run's end is CANCELLED if the request reached it first (STOP), else as it was."""
    for (state, event), target in TRANSITIONS.items():
        if state.cancel_requested and event in _ENDED_BY:
            assert target == TaskState(_ENDED_BY[event], cancel_requested=True)


@pytest.mark.parametrize(
    ('event', 'ending', 'outcome'),
    [
        (TaskEvent.COMPLETE, RunOutput('the full answer'), Completed('the full answer')),
        (TaskEvent.FAIL, RunError('RuntimeError', 'it broke'), Failed('RuntimeError', 'it broke')),
    ],
    ids=['completed', 'failed'],
)
def test_a_cancel_that_lost_is_marked_on_the_record(event: TaskEvent, ending: RunEnding, outcome: Outcome) -> None:
    """A task whose output (or failure) came first ends with it; its cancel record says the cancel lost, and to what."""
    record = TaskRecord(task_id=TaskId('t-0001'), subagent='t', description='d', created_at=0.0)
    record.apply(TaskEvent.START, at=1.0)
    record.cancel = CancelInfo(mode='soft', reason=CancelReason(), requested_at=2.0, grace_seconds=1.0, request_id='r')
    record.apply(TaskEvent.SOFT_CANCEL, at=2.0)
    record.apply(event, at=3.0, ending=ending)
    assert (record.status, record.outcome) == (_ENDED_BY[event], outcome)
    assert record.cancel is not None and record.cancel.lost and record.cancel.lost_to == outcome


def test_the_flag_never_clears() -> None:
    """No move takes a task from 'cancel requested' back to not requested."""
    assert all(target.cancel_requested for (state, _), target in TRANSITIONS.items() if state.cancel_requested)


_ENDINGS: dict[TaskEvent, RunEnding] = {
    TaskEvent.COMPLETE: RunOutput('the full answer'),
    TaskEvent.FAIL: RunError('RuntimeError', 'it broke'),
    TaskEvent.STOP: RunStopped(),
}


class RecordUnderRandomEvents(RuleBasedStateMachine):
    """Several writers fire events at one record in any order; the record's invariants always hold."""

    def __init__(self) -> None:
        super().__init__()
        self.record = TaskRecord(task_id=TaskId('t-0001'), subagent='t', description='d', created_at=0.0)
        self.time = 0.0
        self.first_terminal: TaskStatus | None = None
        self.first_outcome: Outcome | None = None
        self.cancel_seen_before_end = False
        self.ending_event: TaskEvent | None = None

    @rule(event=st.sampled_from(list(TaskEvent)))
    def fire(self, event: TaskEvent) -> None:
        self.time += 1
        before = self.record.state
        ending = _ENDINGS.get(event)
        if not before.status.is_terminal and (before, event) not in TRANSITIONS:
            with pytest.raises(IllegalTransition):
                self.record.apply(event, at=self.time, ending=ending)
            assert self.record.state == before
            return
        if event in (TaskEvent.SOFT_CANCEL, TaskEvent.HARD_CANCEL) and self.record.cancel is None:
            self.record.cancel = CancelInfo(
                mode='soft', reason=CancelReason(), requested_at=self.time, grace_seconds=1.0, request_id='r'
            )
        applied = self.record.apply(event, at=self.time, ending=ending)
        assert applied is not before.status.is_terminal
        if event in (TaskEvent.SOFT_CANCEL, TaskEvent.HARD_CANCEL) and applied:
            self.cancel_seen_before_end = True
        if self.record.status.is_terminal and self.first_terminal is None:
            self.ending_event = event
            self.first_terminal = self.record.status
            self.first_outcome = self.record.outcome

    @invariant()
    def terminal_is_absorbing_and_first_writer_wins(self) -> None:
        if self.first_terminal is not None:
            assert self.record.status is self.first_terminal
            assert self.record.ended.is_set()
            assert self.record.ended_at is not None

    @invariant()
    def the_outcome_matches_the_status_and_never_changes(self) -> None:
        expected = {TaskStatus.COMPLETED: Completed, TaskStatus.FAILED: Failed, TaskStatus.CANCELLED: Cancelled}
        if self.first_terminal is None:
            assert self.record.outcome is None  # no result, and no partial result, before the end
        else:
            assert isinstance(self.record.outcome, expected[self.first_terminal])
            assert self.record.outcome is self.first_outcome

    @invariant()
    def a_requested_cancel_ends_cancelled_unless_the_output_or_the_failure_came_first(self) -> None:
        if self.cancel_seen_before_end and self.record.status.is_terminal:
            assert self.record.cancel is not None
            if self.ending_event in (TaskEvent.COMPLETE, TaskEvent.FAIL):
                assert self.record.status is _ENDED_BY[self.ending_event] and self.record.cancel.lost
                assert self.record.cancel.lost_to is self.record.outcome
            else:
                assert self.record.status is TaskStatus.CANCELLED and not self.record.cancel.lost

    @invariant()
    def events_after_the_end_are_kept_not_lost(self) -> None:
        if not self.record.status.is_terminal:
            assert self.record.dropped == []


TestRecordUnderRandomEvents = RecordUnderRandomEvents.TestCase
TestRecordUnderRandomEvents.settings = settings(max_examples=300, stateful_step_count=20, deadline=None)
