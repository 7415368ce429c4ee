"""Defects found in a hostile review of issue 15's lean rounds (3 and 4), each pinned by a test that fails today.

Each test is marked `xfail(strict=True)` with the defect as its reason, so the suite stays green until the fix lands
and then fails, telling whoever fixes it to drop the mark.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from inline_snapshot import snapshot
from pydantic_ai import Agent
from pydantic_ai.capabilities import AbstractCapability
from pydantic_ai.toolsets import AbstractToolset

from subagents_cancel import Completed, SubAgentConfig, SubAgentManager

from .helpers import Script, call, text, tool_returns

pytestmark = pytest.mark.anyio


@dataclass
class _PrefixesTools(AbstractCapability[object]):
    """Prefixes every tool of the run, wrapping its toolset in pydantic-ai's `PrefixedToolset`."""

    def get_wrapper_toolset(self, toolset: AbstractToolset[object]) -> AbstractToolset[object] | None:
        return toolset.prefixed('my')


@pytest.mark.xfail(
    strict=True,
    reason='AddedTools.call_tool routes a call by `tool.toolset is self.added`; a wrapper outside it '
    '(PrefixedToolset) restamps `toolset`, so `checkpoint` goes to the wrapped toolset and the run fails',
)
async def test_a_subagent_whose_capability_prefixes_its_tools_can_checkpoint() -> None:
    """A capability that wraps the run's toolset in a `PrefixedToolset` still lets the sub-agent call `checkpoint`."""
    script = Script([call('my_checkpoint', completed=['read the brief']), text('done')])
    agent = Agent(script.model, capabilities=[_PrefixesTools()])
    async with SubAgentManager([SubAgentConfig(name='worker', description='Works', agent=agent)]) as manager:
        info = await manager.run('worker', 'Do the job.')
    assert (info.outcome, [each.completed for each in info.checkpoints], tool_returns(script.requests[-1])) == snapshot(
        (Completed(output='done'), [('read the brief',)], ['Checkpoint 1 recorded.'])
    )
