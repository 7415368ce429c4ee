"""Where each setting of a task comes from: the call, else the sub-agent's config, else the owner's policy.

One rule for every setting: the first of the three that is not `None` wins. `SubAgentConfig` and the
Python API validate durations (`timeout_seconds` greater than 0, `grace_seconds` 0 or more), and a fallback
names a configured sub-agent, so no setting can be set to a value that means "not set".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from subagents_cancel.config import SubAgentConfig, SubAgentPolicy

__all__ = ('Defaults',)

_T = TypeVar('_T')


def _first_set(per_call: _T | None, per_subagent: _T | None, *, otherwise: _T) -> _T:
    """The one rule: the call's value if it is set, else the sub-agent's, else `otherwise` (the policy's)."""
    return next((value for value in (per_call, per_subagent) if value is not None), otherwise)


class Defaults:
    """The settings of one owner's tasks, resolved per call → per sub-agent → policy."""

    def __init__(self, configs: Mapping[str, SubAgentConfig], policy: SubAgentPolicy) -> None:
        self._configs = configs
        self._policy = policy

    def grace_seconds(self, subagent: str, per_call: float | None = None) -> float:
        """How long a soft cancel of a task of `subagent` lets it wrap up."""
        return _first_set(per_call, self._configs[subagent].grace_seconds, otherwise=self._policy.grace_seconds)

    def timeout_seconds(self, subagent: str, per_call: float | None = None) -> float | None:
        """The time budget of a task of `subagent`; `None` for none."""
        return _first_set(
            per_call, self._configs[subagent].timeout_seconds, otherwise=self._policy.task_timeout_seconds
        )

    def preempt_on_soft_cancel(self, subagent: str) -> bool:
        """Whether a soft cancel interrupts the model request or tool call in flight of a task of `subagent`."""
        config = self._configs[subagent]
        return _first_set(None, config.preempt_on_soft_cancel, otherwise=self._policy.preempt_on_soft_cancel)

    def fallback(self, subagent: str, per_call: str | None = None) -> str | None:
        """The sub-agent that takes over a cancelled task of `subagent`; `None` for none."""
        return _first_set(per_call, self._configs[subagent].fallback, otherwise=None)

    def wait_timeout_seconds(self, per_call: float | None = None) -> float:
        """The longest a wait for tasks lasts."""
        return _first_set(per_call, None, otherwise=self._policy.wait_timeout_seconds)
