"""What a sub-agent tells its parent through its runner: questions (one open at a time) and checkpoints.

`ask_parent` sends a [`Question`][subagents_cancel.messages.Question] and waits for the owner's
[`Answer`][subagents_cancel.messages.Answer] (or for a cancel request, which the runner gives as the answer); a
question cut off before it was answered is withdrawn. `checkpoint` sends a
[`CheckpointRecorded`][subagents_cancel.messages.CheckpointRecorded].
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import anyio

from subagents_cancel._text import subagent_replies
from subagents_cancel.clock import Clock
from subagents_cancel.messages import BusMessage, Checkpoint, CheckpointRecorded, Question, QuestionWithdrawn, TaskId

__all__ = ('ParentLine',)


@dataclass(slots=True)
class _OpenQuestion:
    message_id: str
    answered: anyio.Event
    reply: str = ''


class ParentLine:
    """One task's questions and checkpoints to its owner."""

    def __init__(self, task_id: TaskId, *, clock: Clock, send: Callable[[BusMessage], None]) -> None:
        self._task_id = task_id
        self._clock = clock
        self._send = send
        self._question: _OpenQuestion | None = None
        self._checkpoints = 0

    async def ask(self, question: str) -> str:
        """Send `question` to the parent and wait for the reply: its answer, or the cancel request."""
        if self._question is not None:
            return subagent_replies.one_question_at_a_time()
        message = Question(task_id=self._task_id, sent_at=self._clock.now(), text=question)
        self._question = open_question = _OpenQuestion(message.message_id, anyio.Event())
        try:
            self._send(message)
            await open_question.answered.wait()
            return open_question.reply
        finally:
            self._question = None
            if not open_question.answered.is_set():  # cut off (a tool timeout, or the run is stopping)
                self._send(
                    QuestionWithdrawn(
                        task_id=self._task_id, sent_at=self._clock.now(), correlation_id=message.message_id
                    )
                )

    def answer_open_question(self, reply: str) -> bool:
        """Answer the open question with `reply`; `False` if no question waits for a reply."""
        question = self._question
        if question is None or question.answered.is_set():
            return False
        self.resolve(question.message_id, reply)
        return True

    def resolve(self, question_id: str, reply: str) -> None:
        """Answer the question `question_id` with `reply`, if it is the open one."""
        question = self._question
        if question is not None and question.message_id == question_id:
            question.reply = reply
            question.answered.set()

    def checkpoint(
        self, completed: Sequence[str], in_progress: Sequence[str], not_started: Sequence[str], findings: Sequence[str]
    ) -> int:
        """Send a checkpoint to the owner; return how many this task has recorded."""
        self._checkpoints += 1
        now = self._clock.now()
        checkpoint = Checkpoint(
            completed=tuple(completed),
            in_progress=tuple(in_progress),
            not_started=tuple(not_started),
            findings=tuple(findings),
            at=now,
        )
        self._send(CheckpointRecorded(task_id=self._task_id, sent_at=now, checkpoint=checkpoint))
        return self._checkpoints
