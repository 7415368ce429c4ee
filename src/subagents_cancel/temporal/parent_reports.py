"""A task workflow started by a workflow: its reports go to that parent as signals, in order.

A workflow cannot read another's outbox with an update, as an owner in a plain process does; so a task whose
workflow is a child (its owner is itself a workflow, see [`child_transport`][subagents_cancel.temporal.child_transport])
pushes each entry of its outbox to its parent with the signal `REPORTS_SIGNAL`, one after the other, and counts
the entries sent as read. A parent that has closed takes no signal: what is left counts as read, and is dropped.
"""

from __future__ import annotations

from collections.abc import Callable

from temporalio import workflow
from temporalio.exceptions import ApplicationError

__all__ = ('REPORTS_SIGNAL', 'ParentReports')

REPORTS_SIGNAL = 'subagents_cancel_reports'
"""The signal by which a child task workflow hands its parent one report: `(address, JSON of the message)`."""


class ParentReports:
    """Sends a child task's outbox to its parent workflow, entry by entry; `read` is how far it has sent."""

    def __init__(self, parent: workflow.ParentInfo, outbox: list[tuple[str, str]]) -> None:
        self._parent = workflow.get_external_workflow_handle(parent.workflow_id, run_id=parent.run_id)
        self._outbox = outbox
        self.read = 0

    async def forward(self, closed: Callable[[], bool]) -> None:
        """Send every entry as it comes, until `closed()` and all were sent (or the parent is gone)."""
        while True:
            await workflow.wait_condition(lambda: self.read < len(self._outbox) or closed())
            if self.read >= len(self._outbox):
                return
            address, data = self._outbox[self.read]
            try:
                await self._parent.signal(REPORTS_SIGNAL, args=(address, data))
            except ApplicationError as error:  # the parent has closed: nobody reads the rest
                workflow.logger.info('the parent of task %s is gone (%s)', workflow.info().workflow_id, error)
                self.read = len(self._outbox)
                return
            self.read += 1
