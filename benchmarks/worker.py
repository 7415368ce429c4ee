"""Run one scenario on one library in this process and print its result as JSON (used by `run_all.py`).

Run: python benchmarks/worker.py SCENARIO[:PARAM] LIBRARY [--size smoke|quick|full]

Each scenario runs in a fresh process, so one library's leftovers (memory, lingering tasks) never
weigh on the next measurement.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
import time
from typing import Any

import anyio
import pydantic_ai

import adapters
from benchkit.stats import Size

RESULT_PREFIX = 'RESULT '


async def main(scenario: str, library: str, size: Size) -> dict[str, Any]:
    name, _, param = scenario.partition(':')
    adapter = adapters.load(library)
    module = importlib.import_module(f'scenarios.{name}')
    started = time.perf_counter()
    result: dict[str, Any] = await module.run(adapter, size, param)
    return {
        'scenario': scenario,
        'library': library,
        'label': adapter.label,
        'version': adapter.version,
        'pydantic_ai': pydantic_ai.__version__,
        'python': platform.python_version(),
        'seconds': time.perf_counter() - started,
        'result': result,
    }


if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('scenario')
    parser.add_argument('library', choices=sorted(adapters.ADAPTERS))
    parser.add_argument('--size', choices=('smoke', 'quick', 'full'), default='full')
    arguments = parser.parse_args()
    outcome = anyio.run(main, arguments.scenario, arguments.library, arguments.size, backend='asyncio')
    sys.stdout.write(RESULT_PREFIX + json.dumps(outcome) + '\n')
