"""One owner, assembled from its pieces, and its lifetime.

The pieces: the task book (the records, their only writer), the cancel commands, the supervisor (open, close,
slots, fallbacks, deadlines), the regions and resumes services, `Defaults`, the figures, the owner's mailbox on the
transport, and the task host it runs itself unless it was given the address of another. The figures follow what
the owner sends and reads, as it sends and reads it, so they never lag behind its records on a transport that
delivers later. [`SubAgentManager`][subagents_cancel.SubAgentManager] is the public front over one `Owner`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol, runtime_checkable

from pydantic_ai.models import Model

from subagents_cancel.clock import Clock
from subagents_cancel.config import SubAgentConfig, SubAgentPolicy
from subagents_cancel.errors import ManagerClosed
from subagents_cancel.messages import CancelReason, OwnerAnnouncement
from subagents_cancel.results import TaskInfo
from subagents_cancel.task_context import current_task
from subagents_cancel.task_host import TaskHost, own_host_addresses
from subagents_cancel.telemetry import TaskTelemetry
from subagents_cancel.transport import RemoteTasks, Transport
from subagents_cancel.wire import WireMessage

from .arrivals import Arrivals
from .cancels import Cancels
from .defaults import Defaults
from .owner_mailbox import OwnerMailbox
from .region_service import RegionService
from .resume import Resumes
from .shield import run_to_end, wait_to_end
from .supervisor import Supervisor, new_owner_id
from .task_book import TaskBook

__all__ = ('Owner',)


@runtime_checkable
class _Observed(Protocol):
    """A transport that can tell whether anyone observes it (the in-process and loopback transports can)."""

    @property
    def observed(self) -> bool: ...


def _observed(transport: Transport) -> Callable[[], bool]:
    """Whether `transport` has an observer now; always `True` for a transport that cannot tell."""
    if isinstance(transport, _Observed):
        observable = transport
        return lambda: observable.observed
    return lambda: True


class Owner:
    """The pieces of one owner, wired to each other and to its transport; see the module docstring."""

    def __init__(
        self,
        subagents: Sequence[SubAgentConfig],
        configs: Mapping[str, SubAgentConfig],
        *,
        default_model: str | Model | None,
        policy: SubAgentPolicy,
        clock: Clock,
        transport: Transport | None,
        new_transport: Callable[[], Transport],
        host: str | None,
        lookup: Callable[[str], TaskInfo],
    ) -> None:
        """Assemble the owner; `transport=None` makes one with `new_transport`, which the owner opens and closes.

        An owner opened inside a task whose transport hosts its tasks itself (a task's workflow on a Temporal worker)
        takes that transport instead: its tasks run beside the task, as durable as it is.
        """
        self._closing: asyncio.Task[None] | None = None
        parent = current_task()
        if transport is None and parent is not None and isinstance(parent.transport, RemoteTasks):
            transport = parent.transport
            self.own_transport = False
        else:
            self.own_transport = transport is None
        self.transport = transport = transport or new_transport()
        if host is None and isinstance(transport, RemoteTasks):
            host = transport.host_address
        owner_id = new_owner_id()
        self.host = (
            TaskHost(
                subagents,
                transport=transport,
                address=f'{owner_id}/tasks',
                clock=clock,
                default_model=default_model,
                policy=policy,
            )
            if host is None
            else None
        )
        self.defaults = Defaults(configs, policy)
        telemetry = TaskTelemetry(lookup)

        def send(address: str, message: WireMessage) -> bool:
            telemetry.observe(address, message)
            return transport.send_nowait(address, message)

        observed = _observed(transport)

        def receive(message: WireMessage) -> None:
            if not isinstance(message, OwnerAnnouncement):  # those it noted as it sent them
                telemetry.observe(book.address, message)
            book.receive(message)

        self.book = book = TaskBook(
            send=send,
            clock=clock,
            address=owner_id,
            host=self.host.address if self.host is not None else host or '',
            defaults=self.defaults,
            policy=policy,
            arrivals=Arrivals(configs),
            observed=observed,
        )
        self.cancels = Cancels(book, self.defaults, clock, policy)
        self.supervisor = supervisor = Supervisor(
            configs=configs,
            policy=policy,
            defaults=self.defaults,
            clock=clock,
            mailbox=OwnerMailbox(transport, receive, quiet=lambda: supervisor.quiet(), after=self._after_quiet),
            book=book,
            cancels=self.cancels,
            telemetry=telemetry,
        )
        self.regions = RegionService(book, self.cancels, supervisor, clock, policy)
        self.resumes = Resumes(book, supervisor)

    async def enter(self) -> None:
        """Open the owner: its own transport, its address, then its own host under that address."""
        if self.supervisor.phase != 'new':
            raise ManagerClosed()
        if self.own_transport:
            await self.transport.__aenter__()
        await self.supervisor.enter()  # the owner's address first: its own host serves under it
        if self.host is not None:
            if not await self.host.serve_at(own_host_addresses(self.book.address)):
                await self.close(CancelReason(kind='parent_ended'))
                raise RuntimeError(f'Every task host address under {self.book.address!r} is taken on this transport.')
            self.book.host = self.host.address

    async def close(self, reason: CancelReason) -> None:
        """Close the owner: its tasks are stopped and waited for within the policy's bounds, then its own host.

        The close runs to its end in a task of its own, whatever happens to the caller (a cancellation that arrives
        meanwhile is re-raised after it). Idempotent: a second call, or one made while the first is under way,
        waits for the same close.
        """
        if self._closing is None:
            closing = self.supervisor.close(reason)
            self._closing = asyncio.get_running_loop().create_task(closing, name='subagents_cancel close')
        _, interrupted = await wait_to_end(self._closing)
        if self.host is not None:
            _, interrupted_again = await run_to_end(self.host.aclose(deadline=self.supervisor.teardown_deadline))
            interrupted = interrupted or interrupted_again
        if interrupted is not None:
            raise interrupted

    async def _after_quiet(self) -> None:
        """The owner has closed and heard its last report: close its own transport."""
        if self.own_transport:
            await self.transport.__aexit__(None, None, None)
