"""A cancel's reason, given by the application, is checked where it is given, as task ids and durations are."""

from __future__ import annotations

import inspect
from collections.abc import Callable

import pytest

from subagents_cancel import CancelReason, SubAgentConfig, SubAgentManager, TaskStatus
from subagents_cancel.shutdown import shutdown

from .helpers import Gate, Script, WatchedClock

pytestmark = pytest.mark.anyio

_NOT_A_REASON: list[object] = ['user', {'kind': 'user'}, 3]


def _manager(clock: WatchedClock) -> SubAgentManager:
    config = SubAgentConfig(name='researcher', description='Researches', model=Script([Gate().block_forever()]).model)
    return SubAgentManager([config], clock=clock)


def _cancels(manager: SubAgentManager, task_id: str, reason: object) -> dict[str, Callable[[], object]]:
    bad = reason  # the application passes what it likes; pyright would catch it, a notebook would not
    return {
        'soft_cancel': lambda: manager.soft_cancel(task_id, reason=bad),  # pyright: ignore[reportArgumentType]
        'hard_cancel': lambda: manager.hard_cancel(task_id, reason=bad),  # pyright: ignore[reportArgumentType]
        'soft_cancel_region': lambda: manager.soft_cancel_region('r', reason=bad),  # pyright: ignore[reportArgumentType]
        'hard_cancel_region': lambda: manager.hard_cancel_region('r', reason=bad),  # pyright: ignore[reportArgumentType]
        'cancel_all': lambda: manager.cancel_all('hard', reason=bad),  # pyright: ignore[reportArgumentType]
        'aclose': lambda: manager.aclose(reason=bad),  # pyright: ignore[reportArgumentType]
        'shutdown': lambda: shutdown([manager], grace_seconds=1, reason=bad),  # pyright: ignore[reportArgumentType]
    }


async def _called(call: Callable[[], object]) -> None:
    result = call()
    if inspect.isawaitable(result):
        await result


@pytest.mark.parametrize('reason', _NOT_A_REASON)
@pytest.mark.parametrize(
    'method',
    ['soft_cancel', 'hard_cancel', 'soft_cancel_region', 'hard_cancel_region', 'cancel_all', 'aclose', 'shutdown'],
)
async def test_a_reason_that_is_not_a_cancel_reason_is_a_type_error(
    clock: WatchedClock, method: str, reason: object
) -> None:
    """`soft_cancel(id, reason='user')` and the like name the mistake; the task runs on, not cancelled, not failed."""
    async with _manager(clock) as manager:
        task = await manager.start('researcher', 'Research X', region='r')
        call = _cancels(manager, task.task_id, reason)[method]
        expected = (
            rf"^reason must be a CancelReason, such as CancelReason\(kind='user'\), not {type(reason).__name__}: "
        )
        with pytest.raises(TypeError, match=expected):
            await _called(call)
        info = manager.get(task.task_id)
        assert (info.status, info.cancel) == (TaskStatus.RUNNING, None)
        assert (await manager.hard_cancel(task.task_id)).status is TaskStatus.CANCELLED


def test_a_reason_of_an_unknown_kind_is_refused_when_made() -> None:
    """`CancelReason(kind='whim')` raises ValueError naming the kinds there are; a detail must be text."""
    kinds = "'user', 'parent_cancelled', 'parent_ended', 'deadline', 'region', 'sibling', 'budget'"
    with pytest.raises(ValueError, match=rf"^CancelReason.kind must be one of {kinds}; got 'whim'\.$"):
        CancelReason(kind='whim')  # pyright: ignore[reportArgumentType]
    with pytest.raises(TypeError, match=r'^CancelReason.detail must be a str or None, not int: 3\.$'):
        CancelReason(detail=3)  # pyright: ignore[reportArgumentType]
    assert CancelReason(kind='deadline', detail='an hour').kind == 'deadline'
