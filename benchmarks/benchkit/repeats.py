"""Repeated runs of one scenario on one library, folded into one result for the report.

A shared machine's speed drifts by tens of percent within a minute, more than the gap between two libraries on the
fan-out: `run_all.py` runs such a scenario several times, the libraries taking turns, and reports each time and
size figure as its median over the runs, each count of what went wrong as the worst run's; `RESULTS.json` keeps
every run's figures too (`each_run`).
"""

from __future__ import annotations

import statistics
from typing import Any, cast

__all__ = ('folded',)

_MEDIAN_SUFFIXES = ('_ms', '_kb')
"""Figures whose median is reported: times and sizes. Every other number counts something that went wrong (tasks not
done, running at the reply), and the worst run's count is reported."""


def folded(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One outcome of `runs` (the same scenario on the same library): the first failure if one failed, else medians."""
    for run in runs:
        if 'error' in run:
            return run
    each = [run['result'] for run in runs]
    return {**runs[0], 'repeats': len(runs), 'result': _fold('', each), 'each_run': each}


def _fold(key: str, values: list[Any]) -> Any:
    first = values[0]
    if isinstance(first, dict):
        figures: dict[str, Any] = cast('dict[str, Any]', first)
        if not all(isinstance(value, dict) and value.keys() == figures.keys() for value in values):
            return figures  # runs that measured different things: nothing to fold
        return {name: _fold(name, [value[name] for value in values]) for name in figures}
    if isinstance(first, bool):
        return any(values)
    if all(value is None or isinstance(value, int | float) for value in values) and any(
        value is not None for value in values
    ):
        if key.endswith(_MEDIAN_SUFFIXES):  # a run that never finished (None) counts as the slowest
            middle = statistics.median_low([float('inf') if value is None else value for value in values])
            return None if middle == float('inf') else middle
        return None if None in values else max(values)
    return first
