"""Outputs that arrived in JSON, turned back into their sub-agent's own types on the side that reads them.

Over a transport that serialises, a sub-agent's output travels as an
[`EncodedOutput`][subagents_cancel.output_codec.EncodedOutput]. The owner turns back the endings its tasks report
([`RunFinished`][subagents_cancel.messages.RunFinished], [`CancelLost`][subagents_cancel.messages.CancelLost])
before it records them, and a task host turns back the outcome a [`SettleTask`][subagents_cancel.wire.SettleTask]
hands to the hooks; each with the output spec of the sub-agent's agent, which both sides have in their configs.
In-process nothing arrived encoded and everything passes untouched.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TypeVar

from subagents_cancel.config import SubAgentConfig
from subagents_cancel.messages import RunEnding, RunOutput, RunStopped
from subagents_cancel.output_codec import EncodedOutput, OutputRestorer
from subagents_cancel.results import Cancelled, Completed, Outcome, TaskInfo

__all__ = ('Arrivals',)

_Ending = TypeVar('_Ending', bound=RunEnding)


class Arrivals:
    """The output restorers of one side's sub-agents, by name (each built once, on first use)."""

    def __init__(self, configs: Mapping[str, SubAgentConfig]) -> None:
        self._configs = configs
        self._restorers: dict[str, OutputRestorer] = {}

    def ending(self, subagent: str, ending: _Ending) -> _Ending:
        """`ending` with its output as the sub-agent's own type, if it arrived encoded."""
        if isinstance(ending, RunOutput | RunStopped) and isinstance(ending.output, EncodedOutput):
            return dataclasses.replace(ending, output=self._restorer(subagent).restore(ending.output))
        return ending

    def info(self, info: TaskInfo) -> TaskInfo:
        """`info` with its outcome's output (or partial result's final message) as the sub-agent's own type."""
        outcome = self._outcome(info.subagent, info.outcome)
        return info if outcome is info.outcome else dataclasses.replace(info, outcome=outcome)

    def _outcome(self, subagent: str, outcome: Outcome | None) -> Outcome | None:
        match outcome:
            case Completed(output=EncodedOutput() as output):
                return Completed(self._restorer(subagent).restore(output))
            case Cancelled(partial=partial) if isinstance(partial.final_message, EncodedOutput):
                final_message = self._restorer(subagent).restore(partial.final_message)
                return dataclasses.replace(outcome, partial=dataclasses.replace(partial, final_message=final_message))
            case _:
                return outcome

    def _restorer(self, subagent: str) -> OutputRestorer:
        restorer = self._restorers.get(subagent)
        if restorer is None:
            config = self._configs.get(subagent)
            spec = config.agent.output_type if config is not None and config.agent is not None else str
            restorer = self._restorers[subagent] = OutputRestorer(spec)
        return restorer
