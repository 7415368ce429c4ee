"""What a worker hosts, by task queue: the task workflows of that queue read it (they run in the worker's process)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pydantic_ai.agent import AbstractAgent

from subagents_cancel.config import SubAgentConfig, SubAgentPolicy

from .settings import WorkerSettings

__all__ = ('HostedSubagents', 'host_subagents', 'hosted_subagents', 'stop_hosting')


@dataclass(frozen=True, slots=True)
class HostedSubagents:
    """The sub-agents one worker runs for one task queue, with their durable agents, policy and settings."""

    subagents: Sequence[SubAgentConfig]
    agents: Mapping[str, AbstractAgent[None, object]]
    policy: SubAgentPolicy
    settings: WorkerSettings

    @property
    def names(self) -> frozenset[str]:
        """The names of the sub-agents it runs."""
        return frozenset(config.name for config in self.subagents)


_HOSTED: dict[str, HostedSubagents] = {}


def host_subagents(task_queue: str, hosted: HostedSubagents) -> None:
    """Serve `hosted` to the task workflows of `task_queue` in this process.

    Raises:
        RuntimeError: another worker in this process serves `task_queue` with other sub-agents.
    """
    if (current := _HOSTED.get(task_queue)) is not None and current is not hosted:
        raise RuntimeError(f'Another worker in this process serves the task queue {task_queue!r}.')
    _HOSTED[task_queue] = hosted


def stop_hosting(task_queue: str, hosted: HostedSubagents) -> None:
    """Forget `hosted` (once its worker has stopped)."""
    if _HOSTED.get(task_queue) is hosted:
        del _HOSTED[task_queue]


def hosted_subagents(task_queue: str) -> HostedSubagents:
    """The sub-agents served to `task_queue` in this process.

    Raises:
        LookupError: no worker in this process serves `task_queue` (the workflow task fails and is retried, on
            this worker or another).
    """
    try:
        return _HOSTED[task_queue]
    except KeyError:
        raise LookupError(f'No worker in this process serves the task queue {task_queue!r}.') from None
