"""The demo's log: what an agent calls and is told, and what goes over the transport, one line each."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic_ai import RunContext
from pydantic_ai.capabilities import AbstractCapability, ValidatedToolArgs
from pydantic_ai.messages import ToolCallPart, ToolReturn
from pydantic_ai.tools import ToolDefinition
from rich.console import Console

# The demo reads the lead run's own manager to show how its searchers ended; no public API exposes it (yet).
from .capability import _current_manager  # pyright: ignore[reportPrivateUsage]
from .messages import CancelAcknowledged, CancelEscalated, CancelRequest, StatusChanged
from .results import TaskInfo
from .wire import WireMessage

__all__ = ('Narrator', 'reply_lines', 'transport_log')

_REPLY_LINES = 24
"""How much of each tool reply the log shows; a longer reply ends with a line that says how much is cut."""
_HEADLINE = re.compile(r'Task \w+: |\w+-[0-9a-f]+: ')
"""How a task's entry in a reply starts (`Task cancelled: id …`, `id: COMPLETED …`)."""


@dataclass
class Narrator(AbstractCapability[object]):
    """Prints an agent's tool calls and their replies (up to `lines` lines each, saying what is cut)."""

    console: Console
    who: str = 'parent'
    lines: int = _REPLY_LINES
    headlines: bool = False
    """Show only the first line of a reply and its tasks' headlines (`Task cancelled: …`), and count the rest."""
    last_seen: dict[str, TaskInfo] | None = None
    """Where to keep the latest snapshot of each task of the agent's own manager, after each tool call."""

    async def before_tool_execute(
        self, ctx: RunContext[object], *, call: ToolCallPart, tool_def: ToolDefinition, args: ValidatedToolArgs
    ) -> ValidatedToolArgs:
        """Print the call, with its arguments."""
        shown = ', '.join(f'{name}={value!r}' for name, value in args.items() if value is not None)
        self.console.print(f'[bold]{self.who:<9}[/] -> {call.tool_name}({shown})', highlight=False)
        return args

    async def after_tool_execute(
        self,
        ctx: RunContext[object],
        *,
        call: ToolCallPart,
        tool_def: ToolDefinition,
        args: ValidatedToolArgs,
        result: Any,
    ) -> Any:
        """Print the reply, and keep the latest snapshots of the run's own tasks if asked."""
        raw: object = result
        text = str(raw.return_value if isinstance(raw, ToolReturn) else raw)  # `task` carries its id
        reply = _headlines(text) if self.headlines else text
        who = '' if self.who == 'parent' else self.who
        for line in reply_lines(reply, self.lines):
            self.console.print(f'{who:<13}<- {line}', highlight=False, markup=False)
        manager = _current_manager.get()  # the run's own manager (the capability sets it around the run)
        if self.last_seen is not None and manager is not None:
            self.last_seen.update((info.task_id, info) for info in manager.tasks())
        return result


def reply_lines(reply: str, limit: int) -> list[str]:
    """The non-empty lines of `reply`, at most `limit` of them; the last says how many more were cut."""
    lines = [line for line in reply.splitlines() if line]
    if len(lines) <= limit:
        return lines
    cut = len(lines) - limit + 1
    return [*lines[: limit - 1], f'\u2026 {cut} more line{"s" if cut > 1 else ""}']


def _headlines(reply: str) -> str:
    """The first line of `reply` and the headline of each task in it, then how many lines were left out."""
    lines = [line for line in reply.splitlines() if line]
    kept = lines[:1] + [line for line in lines[1:] if _HEADLINE.match(line)]
    cut = len(lines) - len(kept)
    return '\n'.join(kept + ([f'\u2026 {cut} more line{"s" if cut > 1 else ""}'] if cut else []))


def transport_log(console: Console) -> Callable[[str, WireMessage], None]:
    """A transport observer that prints cancel requests, their acknowledgements and escalations, and status changes."""

    def show(address: str, message: WireMessage) -> None:
        match message:
            case CancelRequest(mode=mode, grace_seconds=grace):
                console.print(f'transport :: CANCEL_REQUEST ({mode}, {grace:g}s grace) -> {message.task_id}')
            case CancelAcknowledged():
                console.print(f'transport :: {message.task_id} read the CANCEL_REQUEST')
            case CancelEscalated():
                console.print(f'transport :: {message.task_id} did not stop in its grace window: hard cancel')
            case StatusChanged(old=old, new=new) if old.status is not new.status:
                console.print(f'transport :: {message.task_id}: {old.status.name} -> {new.status.name}')
            case _:
                pass

    return show
