"""Start pydantic-ai sub-agents and stop them: softly (told, wraps up, hands back partial results) or hard."""

from __future__ import annotations

from .bus import InProcessBus, MessageBus
from .capability import SubAgentCapability
from .clock import Clock, ManualClock, MonotonicClock
from .config import SubAgentConfig, SubAgentPolicy
from .errors import (
    CancelTimeout,
    ConfigError,
    IllegalTransition,
    ManagerClosed,
    NotWaitingForAnswer,
    SubAgentsError,
    TaskAlreadyFinished,
    UnknownSubAgent,
    UnknownTask,
)
from .manager import SubAgentManager, WaitFor, WaitResult
from .messages import CancelMode, CancelReason, CancelReasonKind, Checkpoint, TaskId
from .results import CancelInfo, Cancelled, Completed, Failed, Outcome, PartialResult, TaskInfo
from .states import TaskStatus
from .tools import create_subagent_toolset

__all__ = (
    'CancelInfo',
    'CancelMode',
    'CancelReason',
    'CancelReasonKind',
    'CancelTimeout',
    'Cancelled',
    'Checkpoint',
    'Clock',
    'Completed',
    'ConfigError',
    'Failed',
    'IllegalTransition',
    'InProcessBus',
    'ManagerClosed',
    'ManualClock',
    'MessageBus',
    'MonotonicClock',
    'NotWaitingForAnswer',
    'Outcome',
    'PartialResult',
    'SubAgentCapability',
    'SubAgentConfig',
    'SubAgentManager',
    'SubAgentPolicy',
    'SubAgentsError',
    'TaskAlreadyFinished',
    'TaskId',
    'TaskInfo',
    'TaskStatus',
    'UnknownSubAgent',
    'UnknownTask',
    'WaitFor',
    'WaitResult',
    'create_subagent_toolset',
)
