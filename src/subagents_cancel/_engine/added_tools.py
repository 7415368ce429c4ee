"""A run's toolset with a few tools added beside its own, without a toolset of their own in the run.

pydantic-ai asks every toolset of a run for its tools concurrently on each step: with two toolsets or more, each
in an asyncio task of its own. An agent with one toolset pays none of that, and a toolset added per run (ours:
`ask_parent` and `checkpoint`) made it pay all of it, a quarter of a millisecond per run. Added by wrapping the
run's assembled toolset instead (a capability's `get_wrapper_toolset`), the tools cost the run no task at all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from pydantic_ai import RunContext, UserError
from pydantic_ai.toolsets import AbstractToolset, FunctionToolset, ToolsetTool, WrapperToolset

__all__ = ('AddedTools',)


@dataclass
class AddedTools(WrapperToolset[object]):
    """The tools of `wrapped`, and beside them those of `added`; a name both offer is refused, as pydantic-ai would."""

    added: FunctionToolset[object]
    """The tools added; they take no resources (it is never entered) and do not change per run or per step."""
    shown: Callable[[RunContext[object]], bool] | None = None
    """Whether a run gets the added tools; `None`: every run does."""

    async def get_tools(self, ctx: RunContext[object]) -> dict[str, ToolsetTool[object]]:
        """The wrapped toolset's tools, then the added ones (if `shown`)."""
        tools = await self.wrapped.get_tools(ctx)
        if self.shown is not None and not self.shown(ctx):
            return tools
        added = await self.added.get_tools(ctx)
        if taken := tools.keys() & added.keys():
            raise UserError(f'{self.added.label} defines a tool whose name the agent already has: {min(taken)!r}.')
        tools.update(added)
        return tools

    async def call_tool(
        self, name: str, tool_args: dict[str, Any], ctx: RunContext[object], tool: ToolsetTool[object]
    ) -> Any:
        """Call an added tool itself, any other through the wrapped toolset.

        A call is routed by its name (unique: `get_tools` refuses a clash), not by the toolset its tool names: a
        wrapper outside this one (pydantic-ai's `PrefixedToolset`, say) restamps that with itself.
        """
        if name in self.added.tools and (self.shown is None or self.shown(ctx)):
            return await self.added.call_tool(name, tool_args, ctx, tool)
        return await self.wrapped.call_tool(name, tool_args, ctx, tool)

    def apply(self, visitor: Callable[[AbstractToolset[object]], None]) -> None:
        """Visit the wrapped toolsets, then the added one."""
        self.wrapped.apply(visitor)
        self.added.apply(visitor)

    def visit_and_replace(
        self, visitor: Callable[[AbstractToolset[object]], AbstractToolset[object]]
    ) -> AbstractToolset[object]:
        """Replace the wrapped toolsets and the added one."""
        return replace(
            self, wrapped=self.wrapped.visit_and_replace(visitor), added=self.added.visit_and_replace(visitor)
        )
