"""Every sub-agent a worker hosts: the configs it is given and, at any depth, the sub-agents of their agents.

A sub-agent whose agent carries a [`SubAgentCapability`][subagents_cancel.SubAgentCapability] opens an owner of its
own inside its task's workflow, and that owner's tasks run on the same workflow's task host, as durable as the
task itself: their agents' activities must be registered with the worker, and the host must know their configs.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic_ai.capabilities import AbstractCapability

from subagents_cancel.capability import SubAgentCapability
from subagents_cancel.config import SubAgentConfig
from subagents_cancel.errors import ConfigError

__all__ = ('subagent_tree',)


def subagent_tree(subagents: Sequence[SubAgentConfig]) -> tuple[SubAgentConfig, ...]:
    """`subagents` and the sub-agents of their agents' `SubAgentCapability`s, depth first, each config once.

    Raises:
        ConfigError: two different configs share a name (a worker hosts sub-agents by name), or a sub-agent's
            capability was given an application's manager, which a workflow cannot reach.
    """
    found: dict[str, SubAgentConfig] = {}
    pending = list(reversed(subagents))
    while pending:
        config = pending.pop()
        if (known := found.get(config.name)) is not None:
            if known != config:
                raise ConfigError(
                    f'Two different sub-agents are named {config.name!r}: a worker hosts every level of nested '
                    'sub-agents by name, so give each a name of its own.'
                )
            continue
        found[config.name] = config
        pending.extend(reversed(_children(config)))
    return tuple(found.values())


def _children(config: SubAgentConfig) -> list[SubAgentConfig]:
    if config.agent is None:
        return []
    children: list[SubAgentConfig] = []

    def visit(capability: AbstractCapability[None]) -> None:
        if not isinstance(capability, SubAgentCapability):
            return
        if capability.manager is not None:
            raise ConfigError(
                f'Sub-agent {config.name!r}: its SubAgentCapability was given a manager; on a Temporal worker give '
                'it `subagents=[...]`, so that its tasks run in the workflow of its own task.'
            )
        children.extend(capability.subagents)

    config.agent.root_capability.apply(visit)
    return children
