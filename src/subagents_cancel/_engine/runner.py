"""Runs one sub-agent task: drives the pydantic-ai run, and bridges the transport and the run.

The runner receives [`CancelRequest`][subagents_cancel.messages.CancelRequest],
[`CancelEscalated`][subagents_cancel.messages.CancelEscalated] and [`Answer`][subagents_cancel.messages.Answer] in its
mailbox, and reports what happens to the owner: receipts, questions, checkpoints, acknowledgement, and finally
[`RunFinished`][subagents_cancel.messages.RunFinished] once nothing of the run is left running.

* A soft cancel reaches the task's own sub-agents first (with a shorter grace window); once they have
  ended, the task is told: an open `ask_parent` question is answered with the request; otherwise the runner
  holds the request and queues it into the live run (`AgentRun.enqueue(..., priority='asap')`) at the run's
  next step that cannot end it: a model request, or the tool calls of a response that is not a final answer.
  The model reads it at its next request. The grace window is the owner's: when it expires first, the owner sends
  `CancelEscalated`, and the runner stops the run as for a hard cancel.
* A hard cancel (or an escalated soft one) stops the task's own sub-agents first, then uses pydantic-ai's
  first-party `AgentRun.cancel()`, which closes the model stream and cancels running tool calls; before
  the run exists, it cancels the runner's own scope.

A soft request's way to the model is a [`SoftCancelDelivery`][subagents_cancel._engine.delivery.SoftCancelDelivery]
(`delivery.py`, with its transition table); whether the run's output, its failure or a cancel came first is a
[`RunRace`][subagents_cancel._engine.run_race.RunRace] (`run_race.py`, which says how first writer wins); the
sub-agent's questions and checkpoints go through a
[`ParentLine`][subagents_cancel._engine.parent_line.ParentLine]. The runner changes them only through their methods.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Sequence
from contextlib import nullcontext

import anyio
from pydantic_ai import Agent, RunCancelled, RunUsage
from pydantic_ai.capabilities import AbstractCapability, UseThreadExecutor
from pydantic_ai.messages import ModelMessage, ModelResponse
from pydantic_ai.run import AgentRun

from subagents_cancel._text import subagent_replies
from subagents_cancel._text.instructions import cancel_request_text
from subagents_cancel.clock import Clock, sleep_until
from subagents_cancel.messages import (
    Answer,
    BusMessage,
    CancelAcknowledged,
    CancelAllReceived,
    CancelEscalated,
    CancelHeld,
    CancelLost,
    CancelReason,
    CancelReceived,
    CancelRequest,
    RunEnding,
    RunFinished,
    RunOutput,
    RunStopped,
    SubtasksEnded,
    ThreadsFinished,
)
from subagents_cancel.task_context import TaskContext, TaskThreads, task_scope
from subagents_cancel.transport import Transport

from .cascade import Cascade
from .delivery import DeliveryEvent, SoftCancelDelivery
from .parent_line import ParentLine
from .preemption import StepPreemption
from .run_failures import stray_cancellation
from .run_race import RunRace
from .run_usage import UsageAfterCancel, model_responses, plus_unreported
from .task_capability import run_capability, use_channel
from .task_spec import TaskSpec
from .task_timers import TaskTimers
from .tool_threads import SyncToolPool, declares_executor

__all__ = ('TaskRunner', 'TaskSpec')

_log = logging.getLogger('subagents_cancel')


class TaskRunner:
    """Drives one sub-agent task from its slot to the end of its run; see the module docstring."""

    def __init__(
        self,
        spec: TaskSpec,
        *,
        send: Callable[[BusMessage], object],
        transport: Transport,
        host_address: str,
        leave: Callable[[], object],
        clock: Clock,
        pool: SyncToolPool,
    ) -> None:
        """Prepare the runner; whoever routes the task's messages hands them to `receive`.

        `send` takes every report to the owner without blocking; `leave` is called once the run is over, after
        which no message reaches `receive` any more. `transport` and `host_address` are where the owners opened
        inside the task reach it (their answers to its cascade go to `host_address`, which routes them here).

        `pool` runs the sync tools of the sub-agent (the host's; concurrency slots are the owner's).
        """
        self.spec = spec
        self._send_to_owner = send
        self._leave = leave
        self._clock = clock
        self._threads = TaskThreads(pool)
        self._stop_requested = False
        self._run: AgentRun[None, object] | None = None
        self._preemption: StepPreemption | None = None
        self._scope: anyio.CancelScope | None = None
        self._timers = TaskTimers()
        """Started only when a cancel waits for something (the task's own sub-agents, a verdict)."""
        self._cancel: CancelRequest | None = None
        self._delivery: SoftCancelDelivery | None = None
        """Where the soft cancel request is on its way to the model; made when one arrives (`_soft`)."""
        self._race = RunRace()
        """Whether the run's output, its failure or a cancel request came first."""
        self._line: ParentLine | None = None
        """The sub-agent's questions and checkpoints to its parent; made when it first asks or checkpoints."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._usage_after_cancel: UsageAfterCancel | None = None
        self._cascade: Cascade | None = None
        """The task's cancel on its way to the owners opened inside it; made when it has some to reach."""
        self._held_receipt: BusMessage | None = None
        self._copies: dict[str, BusMessage | None] | None = None
        """The cancel requests and escalations received, by `message_id`, with each request's receipt: the owner
        sends one again until answered, and a copy changes nothing."""
        """The receipt of a soft cancel request, held until the owners inside the task have received the cascade."""
        """The task's cancel on its way to the owners opened inside it."""
        self.context = TaskContext(
            spec.task_id,
            root_id=spec.root_id,
            clock=clock,
            transport=transport,
            owner_address=spec.owner_address,
            host_address=host_address,
            cancel_requested=self._cancel_requested,
            stop_requested=self._is_stop_requested,
        )
        """What code inside the task sees as [`current_task()`][subagents_cancel.current_task]."""
        self.done = False
        """Whether the runner is done: the run has ended, nothing of it is left running, and its end was reported."""
        self.ending: RunEnding | None = None
        """How the run ended, set as the runner leaves (before `leave` is called); `None` while it runs."""

    def _cancel_requested(self) -> bool:
        return self._cancel is not None or self._stop_requested

    def _is_stop_requested(self) -> bool:
        return self._stop_requested

    # --- the task's life ----------------------------------------------------------------------

    async def run(self) -> None:
        """Run the task to its end and report it; never raises except for cancellation from outside."""
        task_scope(self.context)
        self._loop = asyncio.get_running_loop()
        ending: RunEnding = RunStopped()
        usage = RunUsage()
        try:
            if self._cancel is not None:
                self._start_wrap_up(self._cancel)  # requested before the runner ran
            try:
                ending, usage = await self._drive()
            except BaseException:
                await self._timers.close(raise_failure=False)
                raise
            await self._timers.close()
        finally:
            self.ending = ending
            self._leave()
            messages = self._messages()
            self._send(
                RunFinished(
                    task_id=self.spec.task_id,
                    sent_at=self._clock.now(),
                    ending=ending,
                    usage=usage,
                    lingering_threads=self._threads.linger(self._report_threads_finished),
                    usage_after_cancel=None
                    if self._usage_after_cancel is None
                    else self._usage_after_cancel.usage(messages),
                    messages=tuple(messages),
                )
            )
            self.done = True

    async def _drive(self) -> tuple[RunEnding, RunUsage]:
        with anyio.CancelScope() as self._scope:
            if self._stop_requested:
                self._scope.cancel()  # stopped before the runner ran: never begin
            try:
                return await self._run_agent()
            except asyncio.CancelledError as error:
                if self._stop_requested or _being_cancelled():
                    raise
                # Nothing cancelled this task: its own code raised CancelledError (a tool awaited a future that
                # something else cancelled). That is the tool's failure, not a cancel, and nothing is swallowed.
                _log.warning('sub-agent task %s raised CancelledError by itself', self.spec.task_id, exc_info=error)
                return stray_cancellation(), self._run.usage if self._run is not None else RunUsage()
        # Only reached when `_stop()` cancelled the scope before the run existed.
        return RunStopped(), RunUsage()

    async def _run_agent(self) -> tuple[RunEnding, RunUsage]:
        # The run's task tools and hooks act for this runner; an agent that `agent_for` built carries its own hooks.
        use_channel(self, refuse_tools_after_cancel=self.spec.refuse_tools_after_cancel)
        capabilities: list[AbstractCapability[object]] = []
        if (task_capability := run_capability(self.spec.agent, self.spec.instructions)) is not None:
            capabilities.append(task_capability)
        if self.spec.preempt_on_soft_cancel:
            self._preemption = StepPreemption(held=self._request_held)
            capabilities.append(self._preemption)
        if declares_executor(self.spec.agent) and not self.spec.durable:  # only a run capability overrides the agent's
            capabilities.append(UseThreadExecutor(self._threads))
        run: AgentRun[None, object] | None = None
        try:
            history = list(self.spec.message_history) or None
            # A hook layer less than `UseThreadExecutor` on each step; a durable run's sync tools run in activities.
            with nullcontext() if self.spec.durable else Agent.using_thread_executor(self._threads):
                async with self.spec.agent.iter(
                    self.spec.prompt, message_history=history, capabilities=capabilities
                ) as run:
                    self._run = run
                    async for node in run:
                        self._at_step(run, Agent.is_model_request_node(node), Agent.is_call_tools_node(node))
            assert run.result is not None
            return self._race.ended_with(run.result.output), run.usage
        except RunCancelled as stopped:
            if run is not None and run.result is not None:
                # A stop that lands after the run reached its end still raises; the finished output is kept.
                return self._race.ended_with(run.result.output), stopped.usage
            ending = self._race.stopped()
            if isinstance(ending, RunStopped):  # a stream it cut off unreported was still generated
                return ending, plus_unreported(stopped.usage, model_responses(stopped.all_messages()))
            return ending, stopped.usage
        except Exception as error:  # noqa: BLE001 - the sub-agent's run is user code; its failure is data
            _log.warning('sub-agent task %s failed', self.spec.task_id, exc_info=error)
            return self._race.failed(error), run.usage if run is not None else RunUsage()

    def _request_held(self) -> bool:
        """Whether a soft cancel request waits for the run's next step (a model request not yet sent is not sent)."""
        return self._delivery is not None and self._delivery.take_held() is not None

    def _at_step(self, run: AgentRun[None, object], model_request: bool, tool_calls: bool) -> None:
        """The run is about to take a step: queue a held cancel request there unless the step could end the run.

        `model_request` and `tool_calls` say whether the step is a model request, or the handling of a response.
        """
        if self._race.step_begins(model_request=model_request, cancel_requested=self.context.cancel_requested):
            self._stop_now()  # the final answer the stop waited for was rejected: stop before the next request
            return
        if not model_request and (not tool_calls or self._race.ending):
            return  # queued now, the request would redirect a final answer into one more model request
        if self._delivery is not None and (held := self._delivery.take_held()) is not None:
            self._delivery.queued(run.enqueue(held, priority='asap'))
            self._race.request_queued()  # it reached the run before any commit point

    def _report_threads_finished(self) -> None:
        """Called in a worker thread when the last sync tool call that outlived the run returns."""
        message = ThreadsFinished(task_id=self.spec.task_id, sent_at=self._clock.now())
        try:
            assert self._loop is not None
            self._loop.call_soon_threadsafe(self._send, message)
        except RuntimeError:  # pragma: no cover - the event loop has already closed; nobody is left to tell
            pass

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

    def _start_wrap_up(self, request: CancelRequest) -> None:
        """Stop the task's own sub-agents first, then tell the task (its owner stops it when the grace runs out).

        Called as the request arrives (nested owners open only inside the run, so one that came before the run
        began has none to wait for): their window ends on this host's clock, read now, not at the request's
        `sent_at`, which is its owner's clock.
        """
        owners = self.context.nested_owners
        if not owners:
            self._tell(request, subtasks_stopped=False)
            return
        grace = request.grace_seconds * self.spec.cascade_grace_factor
        self._cascade_to().send(owners, 'soft', request.reason, grace)
        self._timers.start_soon(
            self._tell_after_children(request, self._clock.now() + grace), name=f'cascade of {self.spec.task_id}'
        )

    async def _tell_after_children(self, request: CancelRequest, deadline: float) -> None:
        await self._cascade_to().wait_ended(deadline)
        self._tell(request, subtasks_stopped=True)

    def _tell(self, request: CancelRequest, *, subtasks_stopped: bool) -> None:
        self._send_held_receipt()  # a nested owner that never sent its receipt holds the task's no longer
        text = cancel_request_text(request, subtasks_stopped=subtasks_stopped)
        if self._line is not None and self._line.answer_open_question(text):
            self._soft().answer_question()
        else:  # held until the run's next step that cannot end it; an answer delivered but not read yet goes first
            self._soft().tell(text)
        if self._preemption is not None:
            self._preemption.interrupt_steps()  # the steps in flight end now, and the next step queues the request

    def _escalated(self) -> None:
        """The owner's grace window ran out before the task ended: the request will not reach the model now; stop."""
        if self._cancel is None:  # the soft request never arrived (its reason only gives the cascade a detail)
            self._stop(CancelReason(kind='parent_cancelled'))
            return
        self._soft().handle(DeliveryEvent.ESCALATE)
        self._stop(self._cancel.reason)

    def _stop(self, why: CancelReason) -> None:
        self._stop_requested = True
        if self._cancel is not None:
            self._soft().handle(DeliveryEvent.STOP)  # a soft request that has not reached the model yet never will
        if owners := self.context.nested_owners:  # deepest first: they stop before it does
            self._cascade_to().send(owners, 'hard', why, 0.0)
        if self._run is not None and self._race.must_await_verdict(run_ended=self._run_ended()):
            self._await_verdict()  # the final answer has arrived first: it wins if the run accepts it
        else:
            self._stop_now()

    def _await_verdict(self) -> None:
        """Let the run accept or reject the final answer that has arrived, for a bounded time, before stopping it.

        Accepted, the run ends with it (the answer wins); rejected, the run is stopped before its next model
        request; no verdict within `final_answer_wait_seconds` (a validator or output function that hangs), it
        is stopped then. Either way the answer is kept: the output, or the partial result's final message.
        """
        if not self._race.begin_verdict_wait():
            return
        deadline = self._clock.now() + self.spec.final_answer_wait_seconds
        self._timers.start_soon(self._expire_verdict_wait(deadline), name=f'verdict wait of {self.spec.task_id}')

    async def _expire_verdict_wait(self, deadline: float) -> None:
        await sleep_until(self._clock, deadline)
        self._stop_now()

    def _stop_now(self) -> None:
        self._race.stop_now(run_ended=self._run_ended())
        if self._run is not None:
            self._run.cancel()
        elif self._scope is not None:
            self._scope.cancel()

    def _cascade_to(self) -> Cascade:
        """The cascade to the owners opened inside the task, made when the task first has one to reach."""
        if self._cascade is None:
            self._cascade = Cascade(self.spec.task_id, self._clock)
        return self._cascade

    def _soft(self) -> SoftCancelDelivery:
        """The soft request's delivery, made as the first one arrives (most tasks never get one)."""
        if self._delivery is None:
            self._delivery = SoftCancelDelivery()
        return self._delivery

    def _messages(self) -> list[ModelMessage]:
        """The messages of the run so far."""
        return self._run.all_messages() if self._run is not None else []

    def _send(self, message: BusMessage) -> None:
        self._send_to_owner(message)

    # --- what the sub-agent's tools and hooks see (TaskChannel) ---------------------------------

    @property
    def cancel_request(self) -> CancelRequest | None:
        """The soft cancel request this task received, if any."""
        return self._cancel

    def response_arrived(self, response: ModelResponse, output_tools: Collection[str]) -> None:
        """A model response has arrived: a final answer (text, or an output tool call) opens the ending window."""
        self._race.response_arrived(response, output_tools)

    def output_accepted(self, output: object) -> None:
        """The run has accepted its final output: validated and processed, it wins over any later cancel."""
        self._race.output_accepted(output)

    def step_failed(self, error: Exception) -> None:
        """A step of the run raised `error`: unless the run handles it, it fails with it, before any later cancel."""
        self._race.step_failed(error)

    def question_returned(self, tool_call_id: str) -> None:
        """The `ask_parent` call `tool_call_id` has returned its reply to the run."""
        if self._delivery is not None:  # else no reply can have been the request
            self._delivery.link_reply(tool_call_id)

    def request_going_out(self, still_queued: set[str], returned_calls: set[str]) -> None:
        """A model request is about to go out; acknowledge the cancel request if it carries it.

        `still_queued` holds the enqueue ids the run has not delivered yet; `returned_calls` the ids of the tool
        calls whose results the request carries.
        """
        delivery = self._soft()
        if not delivery.delivered(still_queued, returned_calls):
            return
        delivery.handle(DeliveryEvent.ACKNOWLEDGE)
        assert self._cancel is not None
        self._send(
            CancelAcknowledged(
                task_id=self.spec.task_id, sent_at=self._clock.now(), correlation_id=self._cancel.message_id
            )
        )

    async def ask(self, question: str) -> str:
        """Send `question` to the parent and wait for the answer (or for a cancel request)."""
        if self._cancel is not None:
            self._soft().replied()
            return cancel_request_text(self._cancel)
        return await self._parent_line().ask(question)

    def checkpoint(
        self, completed: Sequence[str], in_progress: Sequence[str], not_started: Sequence[str], findings: Sequence[str]
    ) -> int:
        """Send a checkpoint to the owner; return how many this task has recorded."""
        return self._parent_line().checkpoint(completed, in_progress, not_started, findings)

    def _parent_line(self) -> ParentLine:
        if self._line is None:
            self._line = ParentLine(self.spec.task_id, clock=self._clock, send=self._send)
        return self._line


def _being_cancelled() -> bool:
    """Whether someone cancelled the current asyncio task (its cancel scope, its owner, or the event loop)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
