"""Start pydantic-ai sub-agents and stop them: softly (told, wraps up, hands back partial results) or hard."""

from __future__ import annotations

from .bus import InProcessBus, MessageBus
from .capability import SubAgentCapability
from .clock import Clock, ManualClock, MonotonicClock
from .config import CleanupHook, PromoteHook, SubAgentConfig, SubAgentPolicy
from .errors import (
    CancelTimeout,
    ConfigError,
    IllegalTransition,
    ManagerClosed,
    NotWaitingForAnswer,
    RegionClosed,
    SubAgentsError,
    TaskAlreadyFinished,
    UnknownSubAgent,
    UnknownTask,
)
from .manager import SubAgentManager
from .messages import CancelMode, CancelReason, CancelReasonKind, Checkpoint, TaskId
from .metrics import CancelledRun, CancelMetrics, Durations, SubAgentMetrics
from .processes import ProcessResult, run_process
from .regions import RegionCancel, RegionCancelled, RegionCompleted, RegionIncomplete, RegionOutcome
from .results import CancelInfo, Cancelled, Completed, Failed, Outcome, PartialResult, TaskInfo
from .shutdown import ShutdownReport, ShutdownSignal, shutdown, shutdown_on_signals
from .states import TaskStatus
from .task_context import TaskCancelRequested, TaskContext, current_task
from .tools import create_subagent_toolset
from .transport import InProcessTransport, LoopbackTransport, Mailbox, Transport
from .waiting import WaitFor, WaitResult

__all__ = (
    'CancelInfo',
    'CancelMetrics',
    'CancelMode',
    'CancelReason',
    'CancelReasonKind',
    'CancelTimeout',
    'Cancelled',
    'CancelledRun',
    'Checkpoint',
    'CleanupHook',
    'Clock',
    'Completed',
    'ConfigError',
    'Durations',
    'Failed',
    'IllegalTransition',
    'InProcessBus',
    'InProcessTransport',
    'LoopbackTransport',
    'Mailbox',
    'ManagerClosed',
    'ManualClock',
    'MessageBus',
    'MonotonicClock',
    'NotWaitingForAnswer',
    'Outcome',
    'PartialResult',
    'ProcessResult',
    'PromoteHook',
    'RegionCancel',
    'RegionCancelled',
    'RegionClosed',
    'RegionCompleted',
    'RegionIncomplete',
    'RegionOutcome',
    'ShutdownReport',
    'ShutdownSignal',
    'SubAgentCapability',
    'SubAgentConfig',
    'SubAgentManager',
    'SubAgentMetrics',
    'SubAgentPolicy',
    'SubAgentsError',
    'TaskAlreadyFinished',
    'TaskCancelRequested',
    'TaskContext',
    'TaskId',
    'TaskInfo',
    'TaskStatus',
    'Transport',
    'UnknownSubAgent',
    'UnknownTask',
    'WaitFor',
    'WaitResult',
    'create_subagent_toolset',
    'current_task',
    'run_process',
    'shutdown',
    'shutdown_on_signals',
)
