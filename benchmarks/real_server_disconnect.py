"""Hard cancel against a real HTTP stream: from `hard_cancel()` to the server seeing the client go away.

Run: python benchmarks/real_server_disconnect.py [--trials 200]

A sub-agent on pydantic-ai's OpenAI model streams from the local OpenAI-compatible server in
`tests/openai_server.py` (127.0.0.1, one token every 10 ms). Once its reply is streaming, the benchmark
calls `hard_cancel()` and records when the server's ASGI app receives `http.disconnect`, and how many
tokens it sent after the cancel. The issue's bound is 50 ms. Usage: whether the task's usage counts the
tokens of the cut stream (OpenAI sends usage only in the last chunk, which a cut stream never gets).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import anyio
from openai import AsyncOpenAI
from pydantic_ai.models import override_allow_model_requests

sys.path.insert(0, str(Path(__file__).parent.parent))

from subagents_cancel import SubAgentManager
from tests.openai_server import FakeOpenAI, serving
from tests.test_real_server import research_then_answer_at_length, researcher

BOUND_MS = 50.0


async def trial(server: FakeOpenAI, client: AsyncOpenAI) -> tuple[float, int, int, int]:
    """One cancel: (ms to the disconnect, tokens sent after the cancel, tokens streamed, output tokens counted)."""
    first = len(server.completions)
    async with SubAgentManager([researcher(server, client)]) as manager:
        task = await manager.start('researcher', 'Research X')
        stream = await server.request(first + 2)
        await stream.first_token.wait()
        cancelled_at = time.perf_counter()
        info = await manager.hard_cancel(task.task_id)
        await stream.disconnected.wait()
    assert stream.disconnected_at is not None and info.usage is not None
    after = sum(1 for sent in stream.tokens_sent if sent > cancelled_at)
    return (stream.disconnected_at - cancelled_at) * 1000, after, len(stream.tokens_sent), info.usage.output_tokens


async def main(trials: int) -> None:
    client = AsyncOpenAI(base_url='http://127.0.0.1:1/v1', api_key='test-key')
    with override_allow_model_requests(True):
        async with serving(FakeOpenAI(research_then_answer_at_length)) as server:
            results = [await trial(server, client) for _ in range(trials)]
    await client.close()
    latencies = sorted(result[0] for result in results)
    p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
    print(f'trials: {trials}')
    p50, top = statistics.median(latencies), latencies[-1]
    print(f'cancel -> server sees disconnect: p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {top:.2f} ms')
    print(f'within {BOUND_MS:.0f} ms: {sum(latency <= BOUND_MS for latency in latencies)}/{trials}')
    print(f'tokens sent after the cancel: {sum(result[1] for result in results)} in total')
    streamed = sum(result[2] for result in results)
    print(
        f"tokens of the cut streams: {streamed}; counted in the tasks' usage (output tokens, all requests): "
        f'{sum(result[3] for result in results)}'
    )
    if latencies[-1] > BOUND_MS:
        sys.exit(1)


if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--trials', type=int, default=200)
    anyio.run(main, parser.parse_args().trials)
