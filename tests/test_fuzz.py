"""A short run of the interleaving fuzz (`benchmarks/fuzz.py` runs the long one): no promise may break."""

from __future__ import annotations

import pytest

from .fuzzing import fuzz

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(300)]

SCHEDULES = 150


async def test_random_schedules_keep_every_promise() -> None:
    """Seeded random schedules of real runs: no status flip, no orphan, no lost result, nothing else broken."""
    report = await fuzz(range(SCHEDULES))
    assert report.failing_seeds == []
    assert (report.flips, report.orphans, report.lost_results, report.other_violations) == (0, 0, 0, 0)
    assert report.schedules == SCHEDULES
    ended = set(report.outcomes)
    assert {'completed', 'failed', 'cancelled soft', 'cancelled hard'} <= ended  # every way to end was reached
