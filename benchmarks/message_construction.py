"""CPU time of building 100,000 `CancelRequest`s: today's slotted dataclass against a frozen pydantic model.

    python benchmarks/message_construction.py [--count 100000] [--repeat 5]

Prints the best of `--repeat` runs for each way, in microseconds per message:

* `dataclass`: `CancelRequest(...)`, the frozen slotted dataclass the engine builds in-process;
* `dataclass + TypeAdapter`: the same, then checked by `MESSAGE_ADAPTER.validate_python`;
* `BaseModel(frozen=True)`: a pydantic model with the same fields, built the same way;
* `encode + decode`: `decode_message(encode_message(...))`, what the loopback transport adds to each message.
"""

from __future__ import annotations

import argparse
import time
import uuid
from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from subagents_cancel.messages import (
    MESSAGE_ADAPTER,
    CancelMode,
    CancelReason,
    CancelRequest,
    TaskId,
    decode_message,
    encode_message,
)


class _ReasonModel(BaseModel):
    model_config = ConfigDict(frozen=True)
    kind: Literal['user', 'parent_cancelled', 'parent_ended', 'deadline', 'region', 'sibling', 'budget'] = 'user'
    detail: str | None = None


class _CancelRequestModel(BaseModel):
    model_config = ConfigDict(frozen=True)
    kind: Literal['cancel_request'] = 'cancel_request'
    task_id: TaskId
    sent_at: float
    message_id: str = Field(default_factory=lambda: uuid.uuid4().hex[:12])
    mode: CancelMode
    reason: _ReasonModel
    grace_seconds: float = 0.0


def _dataclass(i: int) -> object:
    return CancelRequest(task_id=TaskId('t-1'), sent_at=float(i), mode='soft', reason=CancelReason(), grace_seconds=1.0)


def _checked_dataclass(i: int) -> object:
    return MESSAGE_ADAPTER.validate_python(_dataclass(i))


def _model(i: int) -> object:
    return _CancelRequestModel(
        task_id=TaskId('t-1'), sent_at=float(i), mode='soft', reason=_ReasonModel(), grace_seconds=1.0
    )


def _through_json(i: int) -> object:
    return decode_message(
        encode_message(CancelRequest(task_id=TaskId('t-1'), sent_at=float(i), mode='soft', reason=CancelReason()))
    )


def _best_microseconds(build: Callable[[int], object], count: int, repeat: int) -> float:
    best = float('inf')
    for _ in range(repeat):
        started = time.process_time()
        for i in range(count):
            build(i)
        best = min(best, time.process_time() - started)
    return best / count * 1e6


def main() -> None:
    """Print the CPU time per message of each way to build one."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--count', type=int, default=100_000)
    parser.add_argument('--repeat', type=int, default=5)
    args = parser.parse_args()
    ways: dict[str, Callable[[int], object]] = {
        'dataclass': _dataclass,
        'dataclass + TypeAdapter': _checked_dataclass,
        'BaseModel(frozen=True)': _model,
        'encode + decode': _through_json,
    }
    print(f'CPU time per CancelRequest, best of {args.repeat} x {args.count:,}')
    for name, build in ways.items():
        print(f'  {name:<24} {_best_microseconds(build, args.count, args.repeat):6.2f} us')


if __name__ == '__main__':
    main()
