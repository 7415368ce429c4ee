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
The mailbox and the receipts of cancel requests are in `cancel_mailbox.py`; the runner's state and what the
sub-agent's tools and hooks see of it (`TaskChannel`) in `run_channel.py`.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import nullcontext

import anyio
from pydantic_ai import Agent, RunCancelled, RunUsage
from pydantic_ai.capabilities import AbstractCapability, UseThreadExecutor
from pydantic_ai.run import AgentRun

from subagents_cancel._text.instructions import cancel_request_text
from subagents_cancel.clock import sleep_until
from subagents_cancel.messages import (
    CancelReason,
    CancelRequest,
    RunEnding,
    RunFinished,
    RunStopped,
    ThreadsFinished,
)
from subagents_cancel.task_context import task_scope

from .cancel_mailbox import CancelMailbox
from .delivery import DeliveryEvent
from .preemption import StepPreemption
from .run_failures import stray_cancellation
from .run_usage import model_responses, plus_unreported
from .task_capability import use_channel
from .task_spec import TaskSpec

__all__ = ('TaskRunner', 'TaskSpec')

_log = logging.getLogger('subagents_cancel')


class TaskRunner(CancelMailbox):
    """Drives one sub-agent task from its slot to the end of its run; see the module docstring.

    Its state and what the sub-agent's tools and hooks see are a
    [`RunChannel`][subagents_cancel._engine.run_channel.RunChannel]; the messages routed to the task and their
    receipts a [`CancelMailbox`][subagents_cancel._engine.cancel_mailbox.CancelMailbox].
    """

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
        if self.spec.task_capability is not None:
            capabilities.append(self.spec.task_capability)
        if self.spec.preempt_on_soft_cancel:
            self._preemption = StepPreemption(held=self._request_held)
            capabilities.append(self._preemption)
        if self.spec.agent_declares_executor and not self.spec.durable:  # only a run capability overrides the agent's
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


def _being_cancelled() -> bool:
    """Whether someone cancelled the current asyncio task (its cancel scope, its owner, or the event loop)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
