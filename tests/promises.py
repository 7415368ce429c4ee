"""The promises the world of `tests/world.py` checks when a task ends, from facts the world saw itself.

First writer wins, decided by the order of facts, never by the library's own answer:

* an answer that was accepted (it left the model and, for a structured output, passed validation)
  before any cancel reached the task, and before its owner began to end: the task ends COMPLETED
  with that very output, typed as it was, and its model gets no further request;
* a cancel that reached the task before its answer left the model (or when no answer came) wins: the
  task ends CANCELLED. Between an answer's arrival and its acceptance (a structured output being
  validated) either may win;
* an answer that left the model is never lost: it is the output, or the partial result's final message;
* a task ends FAILED only when its model raised, never because of malformed tool arguments;
* the outcome matches the status (Completed on COMPLETED, and so on).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from subagents_cancel import Cancelled, Completed, Failed, TaskInfo, TaskStatus

__all__ = ('KINDS', 'Answer', 'Kind', 'PromiseBroken', 'TaskFacts', 'check_ending', 'count_ending')

Kind = Literal[
    'flips',
    'orphans',
    'lost_results',
    'cancelled_with_answer',
    'lost_answers',
    'stalls',
    'cancel_ignored',
    'extra_requests',
    'bad_input',
    'other',
]
KINDS: dict[Kind, str] = {
    'flips': 'status flips',
    'orphans': 'orphans',
    'lost_results': 'lost results (COMPLETED without its own output, or not typed as it was)',
    'cancelled_with_answer': 'cancelled with a full answer (CANCELLED although the output was accepted first)',
    'lost_answers': "lost answers (a final answer that is neither the output nor the partial result's final message)",
    'stalls': 'stalls (PENDING or RUNNING for good while a slot is free)',
    'cancel_ignored': 'cancel ignored (not CANCELLED although the cancel reached it before any answer)',
    'extra_requests': 'model requests after an accepted final answer',
    'bad_input': 'runs ended by malformed tool arguments',
    'other': 'other broken promises',
}
"""Every kind of broken promise, with the words a report uses for it."""


class PromiseBroken(AssertionError):
    """One of the library's promises did not hold."""

    def __init__(self, kind: Kind, message: str) -> None:
        super().__init__(message)
        self.kind: Kind = kind


@dataclass(slots=True)
class Answer:
    """A final answer that left a task's model."""

    value: object
    """The output it stands for: the text, or the structured output."""
    content: str
    """Its text, unique in the schedule."""
    arrived_at: int
    accepted_at: int | None
    """When validation accepted it (for text, when it arrived); `None` while nothing did."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskFacts:
    """What the world saw of one task, as positions in its one order of facts."""

    answers: tuple[Answer, ...]
    raised_at: int | None
    malformed: int
    requests_after_answer: int
    cancel_reached_at: int | None
    """When the first cancel request reached the task's mailbox."""
    owner_end_at: int | None
    """When the owner began to end (its cancels reach the tasks after that)."""
    race_cancel_sent_at: int | None = None
    """When a race aimed at the commit point sent its cancel (for the report only)."""

    @property
    def accepted(self) -> Answer | None:
        return next((answer for answer in self.answers if answer.accepted_at is not None), None)

    def __str__(self) -> str:
        answers = ', '.join(f'{a.content!r} arrived {a.arrived_at}, accepted {a.accepted_at}' for a in self.answers)
        return (
            f'facts: answers [{answers}], cancel reached {self.cancel_reached_at}, owner ended {self.owner_end_at}, '
            f'model raised {self.raised_at}'
        )

    def answer_won(self) -> bool:
        """An answer was accepted before any cancel could reach the task, and before its model raised."""
        accepted = self.accepted
        if accepted is None or accepted.accepted_at is None:
            return False
        rivals = [at for at in (self.cancel_reached_at, self.owner_end_at, self.raised_at) if at is not None]
        return all(accepted.accepted_at < at for at in rivals)

    def cancel_won(self) -> bool:
        """A cancel reached the task before any answer left its model, and before its model raised."""
        at = self.cancel_reached_at
        if at is None:
            return False
        rivals = [answer.arrived_at for answer in self.answers[:1]] + (
            [self.raised_at] if self.raised_at is not None else []
        )
        return all(at < rival for rival in rivals)


def check_ending(info: TaskInfo, facts: TaskFacts) -> None:
    """Check the promises about how a task ended; raise `PromiseBroken` naming the first one that did not hold."""
    expected = {TaskStatus.COMPLETED: Completed, TaskStatus.FAILED: Failed, TaskStatus.CANCELLED: Cancelled}
    if not isinstance(info.outcome, expected[info.status]):
        raise PromiseBroken('other', f'{info.task_id} ended {info.status} with {info.outcome}')
    if facts.answer_won():
        _check_answer_won(info, facts)
    elif facts.cancel_won() and info.status is not TaskStatus.CANCELLED:
        raise PromiseBroken(
            'cancel_ignored', f'{info.task_id} ended {info.outcome} although the cancel reached it first; {facts}'
        )
    for answer in facts.answers:
        if not _kept(info, answer):
            raise PromiseBroken('lost_answers', f'{info.task_id} lost {answer.content!r}: {info.outcome}; {facts}')
    if info.status is TaskStatus.FAILED and facts.raised_at is None:
        kind = 'bad_input' if facts.malformed else 'other'
        raise PromiseBroken(kind, f'{info.task_id} ended FAILED though its model never raised: {info.outcome}')


def _check_answer_won(info: TaskInfo, facts: TaskFacts) -> None:
    accepted = facts.accepted
    assert accepted is not None
    match info.outcome:
        case Completed(output=output) if output == accepted.value and type(output) is type(accepted.value):
            pass
        case Completed():
            raise PromiseBroken('lost_results', f'{info.task_id} produced {accepted.value!r} but ended {info.outcome}')
        case Cancelled():
            raise PromiseBroken(
                'cancelled_with_answer',
                f'{info.task_id} accepted {accepted.content!r} before the cancel, yet ended CANCELLED',
            )
        case _:
            raise PromiseBroken(
                'lost_answers', f'{info.task_id} accepted {accepted.content!r} but ended {info.outcome}'
            )
    if facts.requests_after_answer:
        raise PromiseBroken(
            'extra_requests',
            f'{info.task_id}: {facts.requests_after_answer} model request(s) after its accepted answer',
        )


def _kept(info: TaskInfo, answer: Answer) -> bool:
    """Whether the answer reached the outcome: as the output, or (in any form) as the partial result's final message."""
    match info.outcome:
        case Completed(output=output):
            return output == answer.value
        case Cancelled(partial=partial):
            return partial.final_message == answer.value or answer.content in repr(partial.final_message)
        case _:
            return False


def count_ending(info: TaskInfo, facts: TaskFacts) -> list[str]:
    """How the task ended, for the report; and, when a race sent a cancel around an answer, which came first."""
    mode = info.outcome.mode if isinstance(info.outcome, Cancelled) else ''
    labels = [f'{info.status.name.lower()} {mode}'.strip()]
    sent, accepted = facts.race_cancel_sent_at, facts.accepted
    if facts.answers and sent is not None:
        if accepted is not None and accepted.accepted_at is not None and accepted.accepted_at < sent:
            labels.append('race: answer accepted, then the cancel')
        elif facts.answers[0].arrived_at > sent:
            labels.append('race: cancel, then the answer')
        else:
            labels.append('race: cancel while the answer was validated')
    return labels
