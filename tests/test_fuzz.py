"""A short run of the interleaving fuzz (`benchmarks/fuzz.py` runs the long one): no promise may break."""

from __future__ import annotations

import pytest
from inline_snapshot import snapshot

from .fuzzing import fuzz, run_schedule

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(300)]

SCHEDULES = 150


async def test_random_schedules_keep_every_promise() -> None:
    """Seeded random schedules of real runs: no flip, orphan, lost answer or stall, and the first writer wins."""
    report = await fuzz(range(SCHEDULES))
    assert report.failing_seeds == []
    assert dict(report.broken) == {}
    assert report.schedules == SCHEDULES
    ended = set(report.outcomes)
    assert {'completed', 'failed', 'cancelled soft', 'cancelled hard'} <= ended  # every way to end was reached
    assert {'race: answer accepted, then the cancel', 'race: cancel, then the answer'} <= ended  # both sides won
    assert {'structured', 'malformed', 'races'} <= set(report.features)


async def test_seed_3897_a_cancel_received_while_its_receipt_is_in_transit_wins() -> None:
    """Seed 3897: a cancel the task received before its answer left wins, though its receipt was still in transit."""
    # On the loopback transport the world once dated the cancel's arrival by the receipt's delivery, after the answer.
    world = await run_schedule(3897)
    assert dict(world.outcomes) == snapshot(
        {
            'completed': 1,
            'race: answer accepted, then the cancel': 1,
            'cancelled hard': 1,
            'race: cancel, then the answer': 1,
            'failed': 1,
        }
    )
