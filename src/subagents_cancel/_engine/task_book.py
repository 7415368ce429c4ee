"""The task book of one owner: the only writer of its task records, and the owner's side of the transport.

Every report from a task (and from the host that runs it) arrives at `TaskBook.receive`; every change to a record
(a transition through `TaskRecord.apply`, a cancel request and what became of it, an unresponsive mark, hooks done,
lingering threads, a fallback) is made by a method of the book, which then wakes the waiters and announces the
change. A soft cancel's grace window ends on the owner's clock (`grace_windows`); if the task has not ended by then,
the book escalates the cancel. Every message the owner sends goes through `TaskBook._send`: to the task host, or to
its own address for observers. The rest of the owner reads records (through `records`) and asks the book to change
them; `tests/test_record_writers.py` checks that nothing else writes them. How each report is applied is the book's
part in `book_reports.py`; this module holds the book's state, its reading and its writing commands.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Sequence

import anyio

from subagents_cancel.clock import Clock
from subagents_cancel.config import SubAgentPolicy
from subagents_cancel.messages import (
    Answer,
    CancelAll,
    CancelEscalated,
    CancelMode,
    CancelReason,
    CancelRequest,
    DeadlineExpired,
    RunEnding,
    StatusChanged,
    TaskId,
    TaskUnresponsive,
)
from subagents_cancel.outcomes import WaitFor, WaitResult
from subagents_cancel.regions import RegionCancel
from subagents_cancel.results import CancelInfo, TaskInfo
from subagents_cancel.states import NotWaitingForAnswer, TaskEvent
from subagents_cancel.wire import SettleTask, StartTask, WireMessage

from .arrivals import Arrivals
from .book_reports import BookReports
from .cancel_resends import CancelResends
from .defaults import Defaults
from .grace_windows import GraceWindows
from .receipts import Receipts
from .registry import Registry, TaskRecord
from .waiting import Waiters

__all__ = ('TaskBook',)

_Listener = Callable[[TaskRecord], None]
_Send = Callable[[str, WireMessage], object]


def _ignore(record: TaskRecord) -> None:
    pass


def _ignore_cancel_all(request: CancelAll) -> None:
    pass  # an owner that was not opened inside a task has no tasks of a parent to cancel


class TaskBook(BookReports):
    """One owner's task records: what its tasks report, what it asks of them, and who waits on them."""

    def __init__(
        self,
        *,
        send: _Send,
        clock: Clock,
        address: str,
        host: str,
        defaults: Defaults,
        policy: SubAgentPolicy,
        arrivals: Arrivals,
        observed: Callable[[], bool] = lambda: True,
    ) -> None:
        """`observed` says whether the transport has an observer now, for whom the book announces each change."""
        self.records = Registry(keep_finished=policy.keep_finished, finished_ttl_seconds=policy.finished_ttl_seconds)
        """The records, for reading; only the book changes them."""
        self.address = address
        """The owner's mailbox address on the transport, where the book announces changes."""
        self.host = host
        """The address of the task host that runs the owner's tasks."""
        self._transport_send = send
        self._observed = observed
        self._clock = clock
        self._defaults = defaults
        self._arrivals = arrivals
        self._deadline_cancel: CancelMode = policy.deadline_cancel
        self._waiters = Waiters(clock)
        self._receipts = Receipts()
        self._hooks: dict[TaskId, anyio.Event] = {}
        """Set once the task's hook has run, for whoever waits for that."""
        self._graces = GraceWindows(clock)
        self._resends = CancelResends(
            clock,
            policy,
            send=lambda message: self._send(self.host, message),
            pending=self._receipts.pending,
            stuck=lambda task_id: self.mark_stuck(tuple(filter(None, (self.records.find(task_id),)))),
        )
        self._subtasks: dict[TaskId, dict[str, tuple[float, tuple[TaskInfo, ...]]]] = {}
        """Per task still running, the latest tasks of each owner opened inside it (from `SubtasksChanged`), with
        this owner's clock reading when it read them."""
        self._ended: _Listener = _ignore
        self._threads_finished: _Listener = _ignore
        self._changed: _Listener = _ignore
        self._cancel_all: Callable[[CancelAll], None] = _ignore_cancel_all

    def listen(self, *, ended: _Listener, threads_finished: _Listener) -> None:
        """Set what the owner does once a task has ended, and once its lingering threads have returned."""
        self._ended, self._threads_finished = ended, threads_finished

    def report_to(self, *, cancel_all: Callable[[CancelAll], None], changed: _Listener) -> None:
        """Set what a nested owner does with a `CancelAll` from its task, and once one of its records has changed."""
        self._cancel_all, self._changed = cancel_all, changed

    def _notify(self, record: TaskRecord) -> None:
        """`record` changed: wake its waiters, and let a nested owner report it."""
        self._waiters.notify(record)
        self._changed(record)

    def _send(self, address: str, message: WireMessage) -> None:
        """The owner's one way out: every message it sends, to its tasks' host or to its own observers, goes here."""
        self._transport_send(address, message)

    # --- reading ------------------------------------------------------------------------------

    def info(self, record: TaskRecord) -> TaskInfo:
        """A snapshot of `record`, with the active tasks of its own sub-agents while it runs, and its fallback."""
        now = self._clock.now()
        nested = self._subtasks.get(record.task_id, {}) if not record.status.is_terminal else {}
        subtasks = tuple(_aged(info, now - read_at) for read_at, infos in nested.values() for info in infos)
        fallback_record = self.records.find(record.fallback_id) if record.fallback_id else None
        fallback = fallback_record.info(now) if fallback_record is not None else None
        return record.info(now, fallback=fallback, subtasks=subtasks)

    async def wait(self, task_ids: Sequence[str] | None, wait_for: WaitFor, timeout_seconds: float) -> WaitResult:
        """Wait until the tasks (all active ones by default) end, or one asks; see `SubAgentManager.wait`."""
        # An id given twice is one task (a model repeating an id must not get its report twice, or 2,000 times).
        records = (
            tuple(dict.fromkeys(map(self.records.get, task_ids))) if task_ids is not None else self.records.active()
        )
        finished = await self._waiters.wait_until(
            records, wait_for, deadline=self._clock.now() + timeout_seconds, stop_on_question=True
        )
        return WaitResult(tasks=tuple(map(self.info, records)), timed_out=not finished)

    async def wait_until(
        self, records: Sequence[TaskRecord], wait_for: WaitFor, *, deadline: float | None, stop_on_question: bool
    ) -> bool:
        """Wait until `records` have settled (see `Waiters.wait_until`); `False` on timeout."""
        return await self._waiters.wait_until(records, wait_for, deadline=deadline, stop_on_question=stop_on_question)

    # --- what the owner writes ----------------------------------------------------------------

    def add(self, record: TaskRecord) -> None:
        """Keep a new task's record."""
        self.records.add(record)

    def forget_past_keeping(self) -> None:
        """Forget the finished tasks and the empty cancelled regions that are past keeping."""
        self.records.forget_past_keeping(self._clock.now())

    def close_region(self, region: str, cancel: RegionCancel) -> None:
        """Record the cancel of `region`; the first is kept."""
        self.records.cancel_region(region, cancel)

    def deliver_region(self, region: str) -> None:
        """Record that a join of `region` delivered every result: no later cancel turns it into a cancelled one."""
        self.records.deliver_region(region)

    def transition(self, record: TaskRecord, event: TaskEvent, at: float, *, ending: RunEnding | None = None) -> None:
        """Move the task by `event`; on a change, settle an end, announce it, and wake its waiters."""
        old = record.state
        if not record.apply(event, at=at, ending=ending):
            return
        if record.status.is_terminal:
            self._subtasks.pop(record.task_id, None)
            self._graces.end(record.task_id)
            self._resends.end(record.task_id)
            self.records.settle(record)
            self._after_end(record)
        if self._observed():  # nobody else reads an announcement: the owner's own loop ignores it
            self._send(self.address, StatusChanged(task_id=record.task_id, sent_at=at, old=old, new=record.state))
        self._notify(record)

    def _after_end(self, record: TaskRecord) -> None:
        """Tell a fallback's original that it has ended; then let the owner start a cancelled task's fallback."""
        if record.fallback_for is not None:
            original = self.records.get(record.fallback_for)
            original.awaiting_fallback = False
            self.records.done(original, self._clock.now())
            self._notify(original)
        self._ended(record)

    def resumed(self, record: TaskRecord, resumption: TaskRecord) -> None:
        """Note that `resumption` continues `record`: it inherits its checkpoints, and `record` drops its history."""
        record.resumed_by, resumption.resumed_from = resumption.task_id, record.task_id
        record.history = ()
        resumption.checkpoints[:0] = record.checkpoints
        resumption.inherited_checkpoints = len(record.checkpoints)

    def fallback_started(self, record: TaskRecord, fallback: TaskRecord) -> None:
        """Note that `fallback` took over the cancelled `record`: waiting for `record` waits for it too."""
        record.fallback_id = fallback.task_id
        record.awaiting_fallback = True

    @property
    def resends(self) -> CancelResends:
        """The re-sends of the cancel messages sent (a command waiting for its hard requests sends their copies)."""
        return self._resends

    def request_cancel(
        self,
        record: TaskRecord,
        mode: CancelMode,
        reason: CancelReason,
        grace: float,
        *,
        at: float | None = None,
        awaited: bool = False,
    ) -> None:
        """Record a cancel request (a hard one upgrades a soft one), move the task by it, and send it to the task.

        `awaited`: its sender waits (for the task to stop, or for its receipt) and sends its copies meanwhile.
        """
        now = self._clock.now() if at is None else at
        request = CancelRequest(task_id=record.task_id, sent_at=now, mode=mode, reason=reason, grace_seconds=grace)
        if record.cancel is None:
            record.cancel = CancelInfo(
                mode=mode, reason=reason, requested_at=now, grace_seconds=grace, request_id=request.message_id
            )
        elif mode == 'hard':
            record.cancel = dataclasses.replace(record.cancel, mode='hard')
        old, started = record.state, record.started_at is not None
        self.transition(record, TaskEvent.SOFT_CANCEL if mode == 'soft' else TaskEvent.HARD_CANCEL, now)
        if record.state == old:
            self._changed(record)  # no transition reported it, but the cancel it shows has changed
        if started and not record.status.is_terminal:  # a PENDING task ends here, on the owner's side
            self._receipts.expect(record.task_id, request.message_id)
            self._send(self.host, request)
            self._resends.follow(request, now, awaited=awaited)
            if mode == 'soft':  # its grace window ends on the owner's clock, whether the task heard the request or not
                self._graces.open(record.task_id, now + grace, lambda: self._escalate(record))

    def _escalate(self, record: TaskRecord) -> None:
        """The grace window of the task's soft cancel ran out before it ended: record it, and tell the task to stop.

        `CancelEscalated` goes to the task's host, which stops the run as for a hard request (the task's span notes
        the escalation there, and every observer sees it).
        """
        cancel = record.cancel
        assert cancel is not None  # the window opened with the soft request, and is ended when the task ends
        now = self._clock.now()
        record.cancel = dataclasses.replace(cancel, mode='hard', escalated_at=now)
        escalated = CancelEscalated(task_id=record.task_id, sent_at=now, correlation_id=cancel.request_id)
        self._send(self.host, escalated)
        self._resends.follow(escalated, now)
        self._notify(record)

    async def aclose(self) -> None:
        """Stop the grace and re-send timers, once the closing owner has hard-cancelled its tasks: it sends no more."""
        await self._graces.aclose()
        await self._resends.aclose()

    def receipt_pending(self, record: TaskRecord) -> bool:
        """Whether the task has not yet confirmed its latest cancel request (nor ended)."""
        return record.cancel is not None and self._receipts.pending(record.task_id, record.cancel.request_id)

    def all_received(self, records: Sequence[TaskRecord]) -> asyncio.Future[None] | None:
        """A future done once the tasks have confirmed the cancel requests sent so far, or ended; `None` if done."""
        return self._receipts.all_received(record.task_id for record in records)

    async def hooks_finished(self, records: Sequence[TaskRecord]) -> None:
        """Wait until each of the ended `records` has had its hook run (by the host, which reports it)."""
        for record in records:
            if record.status.is_terminal and not record.hooks_done:
                await self._hooks.setdefault(record.task_id, anyio.Event()).wait()

    def start(self, record: TaskRecord, start: StartTask) -> None:
        """Start the task: move it to RUNNING and send `start` to the host."""
        self.transition(record, TaskEvent.START, self._clock.now())
        self._send(self.host, start)

    def settle(self, record: TaskRecord) -> None:
        """Ask the host to run the hook of the ended task (its run is over, or it never started)."""
        self._send(
            self.host,
            SettleTask(
                task_id=record.task_id, sent_at=self._clock.now(), info=self.info(record), owner_address=self.address
            ),
        )

    def answer(self, record: TaskRecord, text: str) -> None:
        """Answer the question the task waits on, and send the answer to it.

        Raises:
            NotWaitingForAnswer: the task has no open question (or is being cancelled).
        """
        question = record.question
        if question is None or record.state.cancel_requested:
            raise NotWaitingForAnswer(record.task_id, record.status)
        now = self._clock.now()
        self.transition(record, TaskEvent.ANSWER, now)
        self._send(
            self.host, Answer(task_id=record.task_id, sent_at=now, text=text, correlation_id=question.message_id)
        )

    def mark_unresponsive(self, record: TaskRecord, at: float | None = None) -> None:
        """Record that something of the task still runs although it was stopped, and tell observers once."""
        if record.unresponsive_since is None:
            record.unresponsive_since = now = self._clock.now() if at is None else at
            self.records.note_unresponsive(record)
            unresponsive = TaskUnresponsive(task_id=record.task_id, sent_at=now)
            self._send(self.address, unresponsive)
            self._send(self.host, unresponsive)  # for the task's span
            self._changed(record)

    def mark_stuck(self, records: Sequence[TaskRecord]) -> None:
        """Mark the tasks that a hard cancel waited for in vain unresponsive, and wake their waiters."""
        for record in records:
            self.mark_unresponsive(record)
            self._notify(record)

    def hooks_done(self, record: TaskRecord, cleanup_error: str | None) -> None:
        """Record that the task's hook has run (and how it failed, if it did): waiting for the task may return."""
        if cleanup_error is not None:
            record.cleanup_error = cleanup_error
        record.hooks_done = True
        if (hooks := self._hooks.pop(record.task_id, None)) is not None:
            hooks.set()
        self.records.done(record, self._clock.now())
        self._notify(record)

    def expire_deadline(self, record: TaskRecord) -> None:
        """The task's time budget ran out: announce it, and request the policy's cancel (unless one was)."""
        if record.cancel is None and not record.status.is_terminal:
            self._send(self.address, DeadlineExpired(task_id=record.task_id, sent_at=self._clock.now()))
            grace = self._defaults.grace_seconds(record.subagent)
            self.request_cancel(record, self._deadline_cancel, CancelReason(kind='deadline'), grace)


def _aged(info: TaskInfo, seconds: float) -> TaskInfo:
    """A nested owner's snapshot of a running task, `seconds` of this owner's clock after this owner read it.

    It ages by the time this owner measured since; its times stay on the nested owner's clock, which need not be this
    owner's (the nested owner runs inside the task, on the task's host).
    """
    subtasks = tuple(_aged(each, seconds) for each in info.subtasks)
    return dataclasses.replace(info, elapsed_seconds=info.elapsed_seconds + seconds, subtasks=subtasks)
