"""What a sub-agent's own tools and hooks see of the runner that drives its run: the runner's side of `TaskChannel`.

[`RunChannel`][subagents_cancel._engine.run_channel.RunChannel] holds the state a task's runner shares between its
parts, and answers the capability inside the run: a model response or a step failure reaches the
[`RunRace`][subagents_cancel._engine.run_race.RunRace], a model request going out may acknowledge the soft cancel
request it carries, and `ask_parent` and `checkpoint` go through a
[`ParentLine`][subagents_cancel._engine.parent_line.ParentLine]. The mailbox (`cancel_mailbox.py`) and the driving
of the run (`runner.py`) build on it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Sequence

import anyio
from pydantic_ai.messages import ModelMessage, ModelResponse
from pydantic_ai.run import AgentRun

from subagents_cancel._text.instructions import cancel_request_text
from subagents_cancel.clock import Clock
from subagents_cancel.messages import BusMessage, CancelAcknowledged, CancelRequest, RunEnding
from subagents_cancel.task_context import TaskContext, TaskThreads
from subagents_cancel.transport import Transport

from .cascade import Cascade
from .delivery import DeliveryEvent, SoftCancelDelivery
from .parent_line import ParentLine
from .preemption import StepPreemption
from .run_race import RunRace
from .run_usage import UsageAfterCancel
from .task_spec import TaskSpec
from .task_timers import TaskTimers
from .tool_threads import SyncToolPool

__all__ = ('RunChannel',)


class RunChannel:
    """A task runner's state, and what the sub-agent's tools and hooks see of it (`TaskChannel`)."""

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
        """The receipt of a soft cancel request, held until the owners inside the task have received the cascade."""
        self._copies: dict[str, BusMessage | None] | None = None
        """The cancel requests and escalations received, by `message_id`, with each request's receipt: the owner
        sends one again until answered, and a copy changes nothing."""
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

    # --- the parts made when first needed -------------------------------------------------------

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
