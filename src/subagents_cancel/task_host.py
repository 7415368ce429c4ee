"""The task side of the seam: a host that runs the tasks owners send it, talking to them only through a transport.

A [`TaskHost`][subagents_cancel.task_host.TaskHost] is built from nothing but the sub-agent configs (as a worker
has its registered code), a transport and a clock. It reads one mailbox, at its `address`, and routes each
message by its `task_id`:

* [`StartTask`][subagents_cancel.wire.StartTask] starts a [`TaskRunner`][subagents_cancel._engine.runner.TaskRunner] in
  an asyncio task of the host's own, with the host's sync-tool pool;
* [`CancelRequest`][subagents_cancel.messages.CancelRequest],
  [`CancelEscalated`][subagents_cancel.messages.CancelEscalated] and [`Answer`][subagents_cancel.messages.Answer] go to
  that task's runner (`receive`, synchronously, so the order of one owner's messages holds); a cancel request
  that comes after the runner has left gets its receipt from the host (`CancelLost` with the run's ending, or
  `CancelReceived` for a run that had stopped), so an owner waiting for it is not kept waiting;
* [`SettleTask`][subagents_cancel.wire.SettleTask] runs the task's hook once its run is over, and
  [`HooksFinished`][subagents_cancel.wire.HooksFinished] goes back to the owner (a task the host never started, one
  cancelled while PENDING, gets its cleanup hook with no scratch directory).

Everything a runner reports goes to its owner's address with `Transport.send_nowait`, in order. There is no
mailbox per task and no receive loop per task: one loop per host.

The settles and hooks are the host's part in `_engine/host_settles.py`, which it inherits.

Leaving the host stops reading, gives up on settles that never came, cancels the runners still going, and waits
for them at most `teardown_seconds` on the host's clock: it never hangs or spins. Runners that did not stop are
kept in `unfinished`.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Self

import anyio
from pydantic_ai.agent import AbstractAgent
from pydantic_ai.models import Model

from ._engine.arrivals import Arrivals
from ._engine.host_settles import HookRunner, HostedTask, HostSettles
from ._engine.launch import agent_for, run_instructions
from ._engine.runner import TaskRunner, TaskSpec
from ._engine.task_capability import run_capability
from ._engine.tool_threads import SyncToolPool, declares_executor
from .clock import Clock, MonotonicClock
from .config import SubAgentConfig, SubAgentPolicy, index_subagents
from .messages import (
    Answer,
    BusMessage,
    CancelAllReceived,
    CancelEscalated,
    CancelLost,
    CancelReceived,
    CancelRequest,
    RunStopped,
    SubtasksEnded,
    TaskId,
    TaskUnresponsive,
)
from .telemetry import TaskSpans
from .transport import Mailbox, Transport, read_mailbox
from .wire import SettleTask, StartTask, WireMessage

__all__ = ('HookRunner', 'TaskHost', 'own_host_addresses')

_log = logging.getLogger('subagents_cancel')

_OWN_HOST_ATTEMPTS = 64
"""Addresses an owner's own host tries: another mailbox under the owner's address is rare, 64 in a row a bug."""


def own_host_addresses(owner_address: str) -> Iterator[str]:
    """Where the task host that an owner runs for itself may serve: `<owner>/tasks`, then `<owner>/tasks-2`, ….

    The owner holds `owner_address`, so nobody else should hold these; a mailbox that does is passed over.
    """
    yield f'{owner_address}/tasks'
    for number in range(2, _OWN_HOST_ATTEMPTS + 1):
        yield f'{owner_address}/tasks-{number}'


@dataclass(slots=True)
class _TaskLine:
    """What a task's runner calls on its host: `report` to its owner, and `leave` the host's routes once it is over.

    One small object with two methods, where two closures and their cells cost a task twice as much. It holds no
    `StartTask`: the runner's own references form cycles, and what only it reaches waits for the cyclic collector
    instead of going with the task.
    """

    spans: TaskSpans
    transport: Transport
    routes: dict[TaskId, TaskRunner]
    task_id: TaskId
    owner_address: str

    def report(self, message: BusMessage) -> None:
        self.spans.observe(message)
        self.transport.send_nowait(self.owner_address, message)

    def leave(self) -> None:
        self.routes.pop(self.task_id, None)


class TaskHost(HostSettles):
    """Runs sub-agent tasks for the owners that send `StartTask` to its `address`; see the module docstring."""

    def __init__(
        self,
        subagents: Sequence[SubAgentConfig],
        *,
        transport: Transport,
        address: str = 'tasks',
        clock: Clock | None = None,
        default_model: str | Model | None = None,
        policy: SubAgentPolicy | None = None,
        agents: Mapping[str, AbstractAgent[None, object]] | None = None,
        durable: bool = False,
        hooks: HookRunner | None = None,
    ) -> None:
        """Configure the host; it serves once entered with `async with` (inside its transport's).

        Args:
            subagents: The sub-agents it can run, by name: an owner starts only these.
            transport: Where its mailbox is, and where its tasks' owners are.
            address: Its mailbox's address; owners send `StartTask` there.
            clock: Where time comes from ([`MonotonicClock`][subagents_cancel.clock.MonotonicClock] by default).
            default_model: The model of sub-agents whose config names neither `model` nor `agent`.
            policy: Its sync-tool threads, and `teardown_seconds` and `hook_seconds`.
            agents: The agent that runs each sub-agent, by name, built beforehand (a Temporal worker's durable
                agents); by default each is built from its config.
            durable: Its runs are durable (inside a Temporal workflow): their tools run as activities, not in the
                host's threads.
            hooks: What runs a task's hook once its owner has settled it, and returns why it failed; by default the
                hook runs here (a Temporal workflow runs it as an activity, so that a replay does not run it again).

        Raises:
            ConfigError: no sub-agents, duplicate names, or a sub-agent without a model.
        """
        self._configs = index_subagents(subagents)
        self._arrivals = Arrivals(self._configs)
        self._agents = (
            dict(agents)
            if agents is not None
            else {name: agent_for(config, default_model) for name, config in self._configs.items()}
        )
        self._instructions = {name: run_instructions(config) for name, config in self._configs.items()}
        """What each run of a sub-agent gets on top of its agent's instructions: one string for all its tasks."""
        self._run_setups = {
            name: (run_capability(agent, self._instructions[name]), declares_executor(agent))
            for name, agent in self._agents.items()
        }
        """What each run of a sub-agent adds to its agent: its task capability, if the agent carries none, and
        whether the agent may bring a thread executor of its own; both fixed with the agent, so decided once."""
        self._durable = durable
        self._hooks = hooks
        self._transport = transport
        self.address = address
        """The address of the host's mailbox."""
        self._clock = clock or MonotonicClock()
        self._policy = policy or SubAgentPolicy()
        self._hosted: dict[TaskId, HostedTask] = {}
        self._routes: dict[TaskId, TaskRunner] = {}
        self._runs: dict[asyncio.Task[None], HostedTask] = {}
        """The tasks' asyncio tasks, until each ends: the runs still going are cancelled as the host closes."""
        self._keepers: set[asyncio.Task[None]] = set()
        """The spans of traced tasks (each waits for its task's settle and runs its hook), and the hooks of the others;
        never cancelled: they end by themselves."""
        self._pool: SyncToolPool | None = None
        self._loop: asyncio.Task[None] | None = None
        self._closed: anyio.Event | None = None
        """Set once `aclose` has ended; `None` until it begins."""
        self._spans = TaskSpans(self._clock)
        self.unfinished: tuple[TaskId, ...] = ()
        """The tasks whose runners had not stopped when the host closed and gave up waiting."""

    async def __aenter__(self) -> Self:
        """Open the host's mailbox and start reading it.

        Raises:
            RuntimeError: another mailbox has the host's address.
        """
        if not await self.serve_at((self.address,)):
            raise RuntimeError(f'The address {self.address!r} is taken on this transport; give the host another.')
        return self

    async def serve_at(self, addresses: Iterable[str]) -> bool:
        """Open the host's mailbox at the first free one of `addresses`, which becomes its `address`, and read it.

        Use it instead of `async with` (and leave with `aclose`). Returns `False`, with nothing opened, if every one
        of `addresses` was taken.
        """
        for address in addresses:
            if (mailbox := await self._transport.open(address)) is not None:
                break
        else:
            return False
        self.address = address
        self._pool = SyncToolPool(
            self._policy.sync_tool_threads,
            max_lingering=self._policy.max_lingering_threads,
            name=f'{self.address}-tool',
        )
        self._loop = asyncio.get_running_loop().create_task(self._read(mailbox), name=f'task host {self.address}')
        return True

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        """Stop reading, stop the runners still going, and wait for them within `teardown_seconds`."""
        await self.aclose()

    async def aclose(self, *, deadline: float | None = None) -> None:
        """Stop reading, stop the runners still going, and wait for them until `deadline` (clock time).

        By default for `teardown_seconds`; an owner that has already waited its own teardown bound passes its end.
        Idempotent: a call while a close is under way returns once it has ended.
        """
        loop, self._loop = self._loop, None
        if loop is None:
            if self._closed is not None:
                await self._closed.wait()  # a close under way: return with it
            return  # left before, or never entered
        self._closed = anyio.Event()
        try:
            await self._close(loop, deadline)
        finally:
            self._closed.set()

    async def _close(self, loop: asyncio.Task[None], deadline: float | None) -> None:
        with anyio.CancelScope(shield=True):
            await self._transport.release(self.address)
            loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loop
            for hosted in tuple(self._hosted.values()):
                self._give_up(hosted)  # no settle is coming any more: its hook is not run
            runs = tuple(self._runs.items())
            for run, hosted in runs:
                if not hosted.runner.done:
                    run.cancel()
            running = [run for run, _ in runs] + list(self._keepers)
            end = deadline if deadline is not None else self._clock.now() + self._policy.teardown_seconds
            with self._clock.deadline_scope(end):
                for run in running:
                    await asyncio.wait((run,))
            self.unfinished = tuple(hosted.start.task_id for _, hosted in runs if not hosted.runner.done)
            if self._pool is not None:
                self._pool.shutdown()  # a sync tool's thread cannot be stopped; its task reports it, not the host

    async def _read(self, mailbox: Mailbox) -> None:
        await read_mailbox(mailbox, self._route)

    def _route(self, message: WireMessage) -> None:
        self._spans.observe(message)
        match message:
            case StartTask():
                self._start(message)
            case CancelRequest() | CancelEscalated() | Answer() | SubtasksEnded() | CancelAllReceived():
                if (runner := self._routes.get(message.task_id)) is not None:
                    runner.receive(message)
                elif isinstance(message, CancelRequest):
                    self._answer_late(message)
            case SettleTask():
                self._settle(message)
            case TaskUnresponsive():
                pass  # its owner gave up waiting for it: only its span notes that
            case _:  # reports from tasks travel to owners; one sent here went to the wrong address
                pass

    def _start(self, start: StartTask) -> None:
        config = self._configs.get(start.subagent)
        if config is None or start.task_id in self._hosted:
            _log.warning('task host %s refused to start %s (%s)', self.address, start.task_id, start.subagent)
            return
        task_capability, agent_declares_executor = self._run_setups[config.name]
        spec = TaskSpec(
            task_id=start.task_id,
            owner_address=start.owner_address,
            root_id=start.root_id,
            agent=self._agents[config.name],
            prompt=start.prompt,
            message_history=start.message_history,
            instructions=self._instructions[config.name],
            task_capability=task_capability,
            agent_declares_executor=agent_declares_executor,
            refuse_tools_after_cancel=start.refuse_tools_after_cancel,
            preempt_on_soft_cancel=start.preempt_on_soft_cancel,
            cascade_grace_factor=start.cascade_grace_factor,
            final_answer_wait_seconds=start.final_answer_wait_seconds,
            durable=self._durable,
        )
        assert self._pool is not None
        task_id = start.task_id
        line = _TaskLine(self._spans, self._transport, self._routes, task_id, start.owner_address)
        runner = TaskRunner(
            spec,
            send=line.report,
            transport=self._transport,
            host_address=self.address,
            leave=line.leave,
            clock=self._clock,
            pool=self._pool,
        )
        settled = asyncio.get_running_loop().create_future() if self._spans.recording() else None
        hosted = self._hosted[task_id] = HostedTask(start, runner, settled)
        self._routes[task_id] = runner
        if settled is not None:  # traced: a task of its span's waits for the settle
            self._keep(self._spans.traced(start, self._in_span(hosted, settled)), name=f'span of {task_id}')
        else:
            self._start_run(hosted, self._spans.untraced(start))

    def _start_run(self, hosted: HostedTask, context: contextvars.Context | None = None) -> asyncio.Task[None]:
        """Start the task's run in an asyncio task of its own, which ends with the run: a hard cancel waits for it."""
        name = f'subagent {hosted.start.task_id}'
        run = asyncio.get_running_loop().create_task(hosted.runner.run(), name=name, context=context)
        self._runs[run] = hosted
        run.add_done_callback(self._run_ended, context=context)  # the task's own context: no copy of the caller's
        return run

    def _run_ended(self, run: asyncio.Task[None]) -> None:
        """The task's run is over: an untraced one's settle runs its hook (`_settle`), a traced one's its span's task.

        An untraced task the host gave up on before its owner settled it tells the owner its hook was not run,
        unless `_give_up` already did (it does for a run it finds over).
        """
        hosted = self._runs.pop(run)
        if hosted.given_up and hosted.settle is None and hosted.settled is None:  # untraced, and never settled
            if self._hosted.get(hosted.start.task_id) is hosted:
                self._abandon(hosted)

    async def _in_span(self, hosted: HostedTask, settled: asyncio.Future[None]) -> None:
        """Under a traced task's span: run it, and once its owner settles it (`settled`), run its hook.

        Its run has a task of its own, which ends with the run; this one ends after the hook, with the span. A host
        that gave up on the task (it closed) has set `settled` too, before or after this began.
        """
        run = self._start_run(hosted)
        await settled
        if hosted.settle is not None:
            scratch = hosted.runner.context.settle_scratch_dir()
            await self._run_hook(hosted.settle, scratch, hosted.start.hook_seconds)
            return
        # The host closed before the owner settled the task: once its run is over, its owner must not wait for a hook.
        await asyncio.wait((run,))
        self._abandon(hosted)

    def _answer_late(self, request: CancelRequest) -> None:
        """Give the receipt of a cancel request that came after the task's runner left, in the runner's place.

        The run is over: a request that finds it committed (or raised) lost, like one the runner would have
        received then; one that finds it stopped changes nothing, and is received. A task this host no longer
        knows was settled by its owner, which then asks nothing of it any more.
        """
        hosted = self._hosted.get(request.task_id)
        if hosted is None or hosted.runner.ending is None:
            return
        now, ending = self._clock.now(), hosted.runner.ending
        receipt: BusMessage = (
            CancelReceived(task_id=request.task_id, sent_at=now, correlation_id=request.message_id)
            if isinstance(ending, RunStopped)
            else CancelLost(task_id=request.task_id, sent_at=now, correlation_id=request.message_id, ending=ending)
        )
        self._spans.observe(receipt)
        self._transport.send_nowait(hosted.start.owner_address, receipt)
