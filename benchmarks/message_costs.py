"""CPU time per message: building one (dataclass or pydantic model), and carrying one (through a transport).

    python benchmarks/message_costs.py [--count 100000] [--repeat 3]

Prints the best of `--repeat` runs of `--count` messages for each way, in microseconds per message.

Building a `CancelRequest`:

* `dataclass`: the frozen slotted dataclass the engine builds in-process;
* `dataclass + TypeAdapter`: the same, then checked by `MESSAGE_ADAPTER.validate_python`;
* `BaseModel(frozen=True)`: a pydantic model with the same fields, built the same way;
* `encode + decode`: built, then `decode_message(encode_message(...))`, what the loopback adds to each message.

Carrying one prebuilt `CancelRequest` to one mailbox (send and receive):

* `in-process, burst`: `InProcessTransport.send` of every message, while one reader task drains the mailbox;
* `in-process, one by one`: the sender yields after each send, so the reader task wakes for every message;
* `loopback, burst`: as the burst, through `LoopbackTransport` (JSON both ways, delivered by its receive loop).
"""

from __future__ import annotations

import argparse
import time
import uuid
from collections.abc import Callable
from typing import Literal

import anyio
import anyio.lowlevel
from pydantic import BaseModel, ConfigDict, Field

from subagents_cancel import CancelReason, InProcessTransport, LoopbackTransport, TaskId, Transport
from subagents_cancel.messages import (
    MESSAGE_ADAPTER,
    CancelMode,
    CancelRequest,
    decode_message,
    encode_message,
)
from subagents_cancel.wire import WireMessage

_TASK = TaskId('t-1')
_MESSAGE = CancelRequest(task_id=_TASK, sent_at=1.0, mode='soft', reason=CancelReason(), grace_seconds=1.0)


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


def _dataclasses(count: int) -> None:
    for i in range(count):
        CancelRequest(task_id=_TASK, sent_at=float(i), mode='soft', reason=CancelReason(), grace_seconds=1.0)


def _checked_dataclasses(count: int) -> None:
    for i in range(count):
        MESSAGE_ADAPTER.validate_python(
            CancelRequest(task_id=_TASK, sent_at=float(i), mode='soft', reason=CancelReason(), grace_seconds=1.0)
        )


def _models(count: int) -> None:
    for i in range(count):
        _CancelRequestModel(task_id=_TASK, sent_at=float(i), mode='soft', reason=_ReasonModel(), grace_seconds=1.0)


def _through_json(count: int) -> None:
    for i in range(count):
        message = CancelRequest(task_id=_TASK, sent_at=float(i), mode='soft', reason=CancelReason(), grace_seconds=1.0)
        decode_message(encode_message(message))


async def _carry(transport: Transport, count: int, one_by_one: bool) -> None:
    received: list[WireMessage] = []
    async with transport:
        mailbox = await transport.open('owner')
        assert mailbox is not None

        async def read() -> None:
            async for message in mailbox:
                received.append(message)
                if len(received) == count:
                    return

        async with anyio.create_task_group() as group:
            group.start_soon(read)
            for _ in range(count):
                await transport.send('owner', _MESSAGE)
                if one_by_one:
                    await anyio.lowlevel.checkpoint()
    assert len(received) == count


def _carried(make: Callable[[], Transport], *, one_by_one: bool) -> Callable[[int], None]:
    return lambda count: anyio.run(_carry, make(), count, one_by_one)


WAYS: dict[str, dict[str, Callable[[int], None]]] = {
    'Building a CancelRequest': {
        'dataclass': _dataclasses,
        'dataclass + TypeAdapter': _checked_dataclasses,
        'BaseModel(frozen=True)': _models,
        'encode + decode': _through_json,
    },
    'Carrying a message (send + receive)': {
        'in-process, burst': _carried(InProcessTransport, one_by_one=False),
        'in-process, one by one': _carried(InProcessTransport, one_by_one=True),
        'loopback, burst': _carried(LoopbackTransport, one_by_one=False),
    },
}


def _best_microseconds(run: Callable[[int], None], count: int, repeat: int) -> float:
    best = float('inf')
    for _ in range(repeat):
        started = time.process_time()
        run(count)
        best = min(best, time.process_time() - started)
    return best / count * 1e6


def main() -> None:
    """Print the CPU time per message of each way to build and to carry one."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--count', type=int, default=100_000)
    parser.add_argument('--repeat', type=int, default=3)
    args = parser.parse_args()
    for title, ways in WAYS.items():
        print(f'{title}: CPU time per message, best of {args.repeat} x {args.count:,}')
        for name, run in ways.items():
            print(f'  {name:<24} {_best_microseconds(run, args.count, args.repeat):6.2f} us')


if __name__ == '__main__':
    main()
