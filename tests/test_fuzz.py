"""A short run of the interleaving fuzz (`benchmarks/fuzz.py` runs the long one): no promise may break."""

from __future__ import annotations

import pytest

from .fuzzing import fuzz

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
