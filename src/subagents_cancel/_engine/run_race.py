"""Who wrote first: a sub-agent run's output, its failure, or a cancel request.

The runner tells a [`RunRace`][subagents_cancel._engine.run_race.RunRace] what happens to its run (a response
arrived, the output was accepted, a step failed, a step begins, a cancel request arrived, a hard stop waits for a
verdict) and asks it how the run ended.

**First writer wins.** The runner decides whether its run's output (or failure) or a cancel came first, and
reports it by the ending it sends: [`RunOutput`][subagents_cancel.messages.RunOutput] when the output was
committed before any cancel request reached the runner, [`RunError`][subagents_cancel.messages.RunError] when
the run's exception reached the runner before any request did,
[`RunStopped`][subagents_cancel.messages.RunStopped] otherwise (with the error, if the run raised after it). The
commit point is the run accepting its final output: pydantic-ai has the final answer and its output processing
(validators, output functions) accepted it, which the task's capability reports from `after_output_process`
(and `AgentRun.result` shows once the run has reached its end). A soft request that arrives while a final
answer is being processed (the *ending window*, from the arrival of a response that would end the run) is
held: if the run reaches its end, the answer wins; if the answer is rejected and the run goes on, the request
is queued then, and wins. A hard stop in that window waits for the verdict (bounded by
`final_answer_wait_seconds`): accepted, the answer wins; rejected or too slow, the run is stopped. A response
that has arrived is never discarded: a final answer stopped before it was accepted is the partial result's
final message.
"""

from __future__ import annotations

from collections.abc import Collection

from pydantic_ai.messages import ModelResponse

from subagents_cancel.messages import RunEnding, RunOutput, RunStopped

from .run_failures import describe_failure

__all__ = ('RunRace',)


class RunRace:
    """The run's side of the first-writer-wins race, changed only through its methods."""

    __slots__ = ('_accepted', '_failure', '_final_answer', 'awaiting_verdict', 'cancel_first', 'ending')

    def __init__(self) -> None:
        self.ending = False
        """The model's final answer has arrived and the run is processing it: the ending window."""
        self._final_answer: object | None = None
        """The content of that final answer: its text, or the arguments of its output tool call."""
        self.cancel_first = False
        """A cancel request reached the runner before its run's commit point, so the cancel wins."""
        self._accepted: tuple[object] | None = None
        """The final output the run accepted (validated and processed), while it finishes its step: the commit point."""
        self._failure: Exception | None = None
        """The error a step of the run raised, on its way out of the run: a cancel that arrives now loses to it."""
        self.awaiting_verdict = False
        """A hard stop arrived after the final answer: it waits for the run to accept (the answer wins) or reject it."""

    # --- what happens to the run ------------------------------------------------------------------

    def response_arrived(self, response: ModelResponse, output_tools: Collection[str]) -> None:
        """A model response has arrived: a final answer (text, or an output tool call) opens the ending window."""
        output_calls = [call for call in response.tool_calls if call.tool_name in output_tools]
        self.ending = response.state != 'interrupted' and (bool(output_calls) or not response.tool_calls)
        if self.ending:
            self._final_answer = output_calls[0].args_as_dict() if output_calls else response.text

    def output_accepted(self, output: object) -> None:
        """The run has accepted its final output: validated and processed, it wins over any later cancel."""
        if self.ending:
            self._accepted = (output,)

    def step_failed(self, error: Exception) -> None:
        """A step of the run raised `error`: unless the run handles it, it fails with it, before any later cancel."""
        self._failure = error

    def step_begins(self, *, model_request: bool, cancel_requested: bool) -> bool:
        """The run is about to take a step; `True` when it is the model request that an awaited verdict must stop.

        A step's error that was pending was handled after all, and the run goes on (a cancel requested meanwhile
        now wins). A model request means a final answer was rejected, or there was none: the ending window closes,
        and a hard stop that waited for the verdict stops the run before the request.
        """
        if self._failure is not None:
            self._failure = None
            self.cancel_first = self.cancel_first or cancel_requested
        if model_request and self.awaiting_verdict:
            return True
        if model_request:
            self.ending = False
            self._accepted = None
        return False

    def request_queued(self) -> None:
        """A soft request was queued into the run, before any commit point: the cancel wins."""
        self.cancel_first = True

    def cancel_arrived(self, *, held: bool, run_ended: bool) -> None:
        """A cancel request has reached the runner: it wins unless the run's output was committed, or it failed, first.

        A `held` soft request, which arrived while a final answer was processed, wins only once it is queued.
        `run_ended` says the run has reached its end (its output is final).
        """
        committed = self._accepted is not None or run_ended
        if not held and self._failure is None and not committed:
            self.cancel_first = True

    def must_await_verdict(self, *, run_ended: bool) -> bool:
        """Whether a hard stop must wait for the verdict on a final answer that has arrived first."""
        return self.ending and self._accepted is None and not run_ended

    def begin_verdict_wait(self) -> bool:
        """Start waiting for the verdict; `False` if a stop already waits for it."""
        if self.awaiting_verdict:
            return False
        self.awaiting_verdict = True
        return True

    def stop_now(self, *, run_ended: bool) -> None:
        """The run is being stopped now: any verdict wait is over, and the stop is a cancel that arrived now."""
        self.awaiting_verdict = False
        self.cancel_arrived(held=False, run_ended=run_ended)

    # --- how the run ended --------------------------------------------------------------------------

    def committed(self, result: tuple[object] | None) -> RunOutput | None:
        """The run's output, if it was committed before any cancel request reached the runner: a request now loses.

        `result` holds the run's output once the run has reached its end.
        """
        if self.cancel_first:
            return None
        if result is not None:
            return RunOutput(result[0])
        return RunOutput(self._accepted[0]) if self._accepted is not None else None

    def ended_with(self, output: object) -> RunEnding:
        """The run reached its end with `output`."""
        return RunStopped(output) if self.cancel_first else RunOutput(output)

    def stopped(self) -> RunEnding:
        """The run was stopped before it reached its end."""
        if self._accepted is not None and not self.cancel_first:
            # Stopped after its output was accepted (e.g. other tools of the last response still ran): it won.
            return RunOutput(self._accepted[0])
        if self._failure is not None and not self.cancel_first:
            return describe_failure(self._failure)  # it failed first; the stop only cut its way out
        return RunStopped(self._final_answer if self.ending else None)  # an arrived response is never discarded

    def failed(self, error: Exception) -> RunEnding:
        """The run raised `error`: the failure wins unless a cancel request reached the runner first."""
        if self.cancel_first:
            return RunStopped(error=describe_failure(error))
        return describe_failure(error)
