"""An old build beside a new one: the order their runs take, and one table of the medians across runs.

On a shared 2-core machine the load drifts over minutes, so the runs of the two builds take turns (A/B/A/B,
each in a fresh process) and each figure is the median over a build's runs; the ratio new / old compares
those medians. CPU-time figures move less with the load than wall-clock ones, so the verdict line reads them.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar('T')


def interleave(rounds: int, sides: Sequence[T]) -> list[T]:
    """The order of the runs: every side once per round, in the same order, for `rounds` rounds."""
    return [side for _ in range(rounds) for side in sides]


@dataclass(frozen=True, slots=True)
class Side:
    """One build (or transport) and the figures of each of its runs, by name."""

    label: str
    runs: Sequence[Mapping[str, float]]

    def median(self, figure: str) -> float | None:
        values = [run[figure] for run in self.runs if figure in run]
        return statistics.median(values) if values else None


def _number(value: float | None) -> str:
    if value is None:
        return '—'
    if value >= 100:
        return f'{value:,.0f}'
    return f'{value:.1f}' if value >= 10 else f'{value:.3f}'


def _ratio(top: float | None, bottom: float | None) -> str:
    return '—' if top is None or not bottom else f'{top / bottom:.2f}×'


def table(*, new: Side, old: Side | None = None, loopback: Side | None = None) -> list[str]:
    """The figures of `new` (row order) with `old` and `loopback` beside them, and a verdict line on CPU time."""
    figures = list(dict.fromkeys(name for run in new.runs for name in run))
    header = ['figure', *([old.label] if old else []), new.label]
    header += ['new / old'] if old else []
    header += [loopback.label, f'{loopback.label} / new'] if loopback else []
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    for figure in figures:
        cells = [figure]
        if old:
            cells += [_number(old.median(figure)), _number(new.median(figure))]
            cells.append(_ratio(new.median(figure), old.median(figure)))
        else:
            cells.append(_number(new.median(figure)))
        if loopback:
            cells += [_number(loopback.median(figure)), _ratio(loopback.median(figure), new.median(figure))]
        lines.append('| ' + ' | '.join(cells) + ' |')
    if old:
        lines += ['', _verdict(figures, new, old)]
    return lines


def _verdict(figures: Sequence[str], new: Side, old: Side) -> str:
    """The largest CPU-time ratio new / old, and the figure it belongs to."""
    ratios = [
        (new_median / old_median, figure)
        for figure in figures
        if 'CPU' in figure and (new_median := new.median(figure)) is not None and (old_median := old.median(figure))
    ]
    if not ratios:
        return 'No CPU-time figure in both builds.'
    ratio, figure = max(ratios)
    return f'Largest CPU-time ratio new / old: {ratio:.2f}× ({figure}); above 1 means the new build is slower.'
