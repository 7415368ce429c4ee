"""Start pydantic-ai sub-agents and stop them: softly (told, wraps up, hands back partial results) or hard.

The package exports what an application or a notebook imports every day, grouped in `__all__` by concept.
Everything else is importable from its own module and documented on its API page: the cancel vocabulary and
the messages between owners and tasks (`subagents_cancel.messages`), region details (`subagents_cancel.regions`),
every error (`subagents_cancel.errors`; those that carry a task's status are in `subagents_cancel.states`),
what commands return (`subagents_cancel.outcomes`), code inside a task (`subagents_cancel.task_context`,
`subagents_cancel.processes`), shutdown (`subagents_cancel.shutdown`), cancel figures
(`subagents_cancel.metrics`), clocks (`subagents_cancel.clock`), the transport (`subagents_cancel.transport`) and typed
outputs across it (`subagents_cancel.output_codec`). Helpers that exist only for tests are in
`subagents_cancel.testing`.
"""

from __future__ import annotations

from ._engine.task_capability import TaskCapability
from .capability import SubAgentCapability
from .config import SubAgentConfig, SubAgentPolicy
from .errors import CancelTimeout, SubAgentsError, UnknownTask
from .manager import SubAgentManager
from .messages import CancelReason, TaskId
from .metrics import CancelMetrics
from .regions import RegionCancelled, RegionCompleted, RegionIncomplete, RegionOutcome
from .results import Cancelled, Completed, Failed, Outcome, PartialResult, TaskInfo
from .shutdown import shutdown_on_signals
from .states import TaskStatus
from .task_context import TaskContext, current_task
from .tools import create_subagent_toolset
from .transport import InProcessTransport, LoopbackTransport, Mailbox, Transport

__all__ = (
    # owning tasks: start, cancel, answer and wait for them; nothing outlives its owner
    'SubAgentManager',
    'shutdown_on_signals',
    # configuring sub-agents and their policy, and an agent of yours ready to run as one
    'SubAgentConfig',
    'SubAgentPolicy',
    'TaskCapability',
    # the parent agent's tools and instructions
    'SubAgentCapability',
    'create_subagent_toolset',
    # outcomes and snapshots of tasks
    'Cancelled',
    'Completed',
    'Failed',
    'Outcome',
    'PartialResult',
    'TaskId',
    'TaskInfo',
    'TaskStatus',
    # the cancel vocabulary
    'CancelReason',
    # regions: groups of tasks cancelled and joined together
    'RegionCancelled',
    'RegionCompleted',
    'RegionIncomplete',
    'RegionOutcome',
    # inside a task: what its tools and hooks can know about it
    'TaskContext',
    'current_task',
    # errors the Python API raises (the whole tree is in `subagents_cancel.errors`)
    'CancelTimeout',
    'SubAgentsError',
    'UnknownTask',
    # telemetry: the cancel figures (span and metric names are in `subagents_cancel.telemetry`)
    'CancelMetrics',
    # across processes: the transport between owners and their tasks
    'InProcessTransport',
    'LoopbackTransport',
    'Mailbox',
    'Transport',
)
