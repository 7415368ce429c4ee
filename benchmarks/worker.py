"""Run one scenario on one library in this process and print its result as JSON (used by `run_all.py`).

Run: python benchmarks/worker.py SCENARIO LIBRARY [--quick]
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

RESULT_PREFIX = 'RESULT '


async def main(scenario: str, library: str, quick: bool) -> dict[str, Any]:
    adapter = adapters.load(library)
    module = importlib.import_module(f'scenarios.{scenario}')
    started = time.perf_counter()
    result: dict[str, Any] = await module.run(adapter, quick)
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
    parser.add_argument('--quick', action='store_true', help='fewer trials and smaller sizes, for a smoke test')
    arguments = parser.parse_args()
    outcome = anyio.run(main, arguments.scenario, arguments.library, arguments.quick, backend='asyncio')
    sys.stdout.write(RESULT_PREFIX + json.dumps(outcome) + '\n')
