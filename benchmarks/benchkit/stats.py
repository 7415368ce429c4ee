"""Order statistics and process measurements, kept free of any library under test."""

from __future__ import annotations

import gc
import resource
import statistics
from collections.abc import Sequence
from typing import Literal, TypedDict

_PAGE_BYTES = resource.getpagesize()

Size = Literal['smoke', 'quick', 'full']
"""How big a run is: `smoke` proves the harness works (seconds), `quick` is a rough look, `full` is the report."""


def by_size(size: Size, smoke: int, quick: int, full: int) -> int:
    """The count a scenario uses at `size`."""
    return {'smoke': smoke, 'quick': quick, 'full': full}[size]


class Summary(TypedDict):
    """p50 / p99 / max of a sample, in the unit it was given in."""

    n: int
    p50: float
    p99: float
    max: float


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank `q` quantile (`0 < q <= 1`) of `values`."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def summarize(values: Sequence[float]) -> Summary:
    """p50 / p99 / max of a non-empty sample."""
    return Summary(n=len(values), p50=statistics.median(values), p99=percentile(values, 0.99), max=max(values))


def rss_bytes() -> int:
    """This process's resident set size now (not the peak), after a full garbage collection."""
    gc.collect()
    with open('/proc/self/statm') as statm:
        return int(statm.read().split()[1]) * _PAGE_BYTES
