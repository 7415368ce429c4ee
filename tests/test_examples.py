"""The scenarios in `examples/` run offline, end with nothing left running, and print the story they tell.

Task ids, cancel-request ids and elapsed times differ from run to run; they are replaced by `<id>` and
`<t>` before the output is compared.
"""

from __future__ import annotations

import re
import runpy
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import anyio
import pytest
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream
from inline_snapshot import snapshot

from .temporal_support import DevServer

ROOT = Path(__file__).parent.parent
EXAMPLES = ROOT / 'examples'
_PROCESS_SECONDS = 60.0
"""A bound for a process that hangs, not a timing claim: a worker starts in about 2 s."""


def run_example(name: str, capsys: pytest.CaptureFixture[str]) -> str:
    """Run `examples/<name>.py`'s `main()`; return what it printed, with the varying parts replaced."""
    namespace = runpy.run_path(str(EXAMPLES / f'{name}.py'), run_name=f'example_{name}')
    assert anyio.run(namespace['main']) == 0
    return normalised(capsys.readouterr().out)


def normalised(printed: str) -> str:
    """`printed`, with the ids and times that differ from run to run replaced."""
    printed = re.sub(r'\b([a-z][a-z-]*?)-[0-9a-f]{4,8}\b', r'\1-<id>', printed)
    printed = re.sub(r'CANCEL_REQUEST \[[0-9a-f]{12}\]', 'CANCEL_REQUEST [<id>]', printed)
    return re.sub(r'\b\d+\.\d(?: ms|s)', '<t>', printed)


def test_research_region(capsys: pytest.CaptureFixture[str]) -> None:
    """Seed 001: one region cancel stops the research phase at every depth, and the join delivers no partial set."""
    assert run_example('research_region', capsys) == snapshot("""\
user >> Run the research phase for our smart-lock launch: market, competitors and patents.
parent -> task(description='Size the EU smart-lock market', subagent_type='market-scan', mode='async', region='research')
    | Task started with ID: market-scan-<id> (market-scan); it runs in the background. Follow it with check_task or wait_tasks; stop it with soft_cancel_task or hard_cancel_task.
parent -> task(description='Compare the 4 main rivals', subagent_type='competitor-analysis', mode='async', region='research')
    | Task started with ID: competitor-analysis-<id> (competitor-analysis); it runs in the background. Follow it with check_task or wait_tasks; stop it with soft_cancel_task or hard_cancel_task.
parent -> task(description='Search prior art on phone unlocking', subagent_type='patent-search', mode='async', region='research')
    | Task started with ID: patent-search-<id> (patent-search); it runs in the background. Follow it with check_task or wait_tasks; stop it with soft_cancel_task or hard_cancel_task.
parent -> wait_tasks(wait_for='any')
    | A task has ended; still running: competitor-analysis-<id>, patent-search-<id>.
    |
    | market-scan-<id>: COMPLETED in <t>. Output:
    | Market scan: EUR 1.9bn in the EU, growing 11% a year; renters are the fastest-growing segment.
    |
    | competitor-analysis-<id>: RUNNING for <t> (region research).
    | Checkpoints: 1. Completed: pricing of 4 rivals. In progress: feature matrix. Not started: positioning summary.
    | Findings so far: Rival A undercuts us by 15%.
    |
    | patent-search-<id>: RUNNING for <t> (region research).
    | No checkpoints yet.
    | Its own sub-agent tasks:
    |   - claims-reader-<id> RUNNING <t> (claims-reader): 'Read the claims of the 3 closest patents'
parent << The research phase is under way: the market scan is done, the other two are still working.

user >> Abort the research phase: the launch is off.
parent -> soft_cancel_region(region='research', reason='the user aborted the research phase')
    transport: CANCEL_REQUEST (soft, 30s grace) -> competitor-analysis-<id>
    transport: CANCEL_REQUEST (soft, 30s grace) -> patent-search-<id>
    | Region 'research' is cancelled: competitor-analysis-<id>, patent-search-<id> have been told to wrap up. wait_region shows their partial results; no task in it can complete now.
    claims-reader reads: CANCEL_REQUEST [<id>]: your parent asked you to stop (the task that owns yours was cancelled: research: the user aborted the research phase). Do not start new work or call tools. Reply now with your partial results (Completed, In progress, Not started, Findings). You have 15 seconds.
parent -> wait_region(region='research')
    patent-search <- task:
        | Task cancelled: claims-reader-<id> (soft, its owner was cancelled: research: the user aborted the research phase; it read the request after <t>; it ended <t> after the request). Partial results:
        | Completed: EP 3 141 592
        | In progress: US 10 000 001
        | Not started: CN 1 234 567
        | Findings: EP 3 141 592 claims NFC unlocking from a phone
        | (from 2 checkpoints)
        | Its final message:
        | Completed: EP 3 141 592
        | In progress: US 10 000 001
        | Not started: CN 1 234 567
        | Findings: EP 3 141 592 claims NFC unlocking from a phone
    patent-search reads: CANCEL_REQUEST [<id>]: your parent asked you to stop (the group of tasks you belong to was cancelled: research: the user aborted the research phase). Do not start new work or call tools. Reply now with your partial results (Completed, In progress, Not started, Findings). You have 30 seconds. Your own sub-agent tasks were asked to stop first; wait_tasks or check_task shows their partial results, to include in yours.
    | Region 'research' was cancelled (soft, its region was cancelled: research: the user aborted the research phase); there is no complete set of results.
    |
    | market-scan-<id>: COMPLETED in <t>. Output:
    | Market scan: EUR 1.9bn in the EU, growing 11% a year; renters are the fastest-growing segment.
    |
    | Task cancelled: competitor-analysis-<id> (soft, its region was cancelled: research: the user aborted the research phase; it read the request after <t>; it ended <t> after the request). Partial results:
    | Completed: pricing of 4 rivals; feature matrix
    | In progress: positioning summary
    | Not started: nothing
    | Findings: Rival A undercuts us by 15%; only Rival B offers an API
    | (from 2 checkpoints)
    | Its final message:
    | Completed: pricing of 4 rivals; feature matrix
    | In progress: positioning summary
    | Not started: nothing
    | Findings: Rival A undercuts us by 15%; only Rival B offers an API
    |
    | Task cancelled: patent-search-<id> (soft, its region was cancelled: research: the user aborted the research phase; it read the request after <t>; it ended <t> after the request). Partial results:
    | Its final message:
    | Completed: prior-art query
    | In progress: claims review (Claims Reader stopped after 1 of 3 patents)
    | Not started: freedom-to-operate memo
    | Findings: EP 3 141 592 claims NFC unlocking from a phone
parent -> list_active_tasks()
    | No active tasks.
parent << Research aborted. Nothing is running any more; the partial findings are kept above.

market-scan: COMPLETED before the abort; its result is kept
competitor-analysis: CANCELLED (soft, reason 'region'); partial result: 2 checkpoint(s) and a wrap-up message
patent-search: CANCELLED (soft, reason 'region'); partial result: 0 checkpoint(s) and a wrap-up message
tasks still running: 0; orphans after teardown: 0
""")


def test_report_fallback(capsys: pytest.CaptureFixture[str]) -> None:
    """Seed 002: the quick summary delivers in place of a cancelled report, and never starts when the report won."""
    assert run_example('report_fallback', capsys) == snapshot("""\

=== Scene 1: the parent cancels the report
parent -> task(description='Write the Q3 sales report for the board', subagent_type='report-generator', mode='async')
    | Task started with ID: report-generator-<id> (report-generator); it runs in the background. Follow it with check_task or wait_tasks; stop it with soft_cancel_task or hard_cancel_task.
parent -> soft_cancel_task(task_id='report-generator-<id>', reason='the board meets now; a summary will do')
    transport: CANCEL_REQUEST (soft, reason 'user', 1s grace) -> report-generator-<id>
    | Cancellation requested for report-generator-<id>: it has been told, and it hands back partial results within 1s or is stopped. check_task or wait_tasks will show them.
parent -> wait_tasks(task_ids=['report-generator-<id>'])
    quick-summary starts; its prompt:
    : Write the Q3 sales report for the board
    :
    : (You are taking over from a task that was cancelled (the work is no longer needed: the board meets now; a summary will do). What it had done:
    : Completed: data pull
    : In progress: charts
    : Not started: commentary
    : Findings: Q3 revenue EUR 4.2M, +8% on Q2; EMEA grew fastest
    : (from 2 checkpoints)
    : Its final message:
    : Completed: data pull
    : In progress: charts
    : Not started: commentary
    : Findings: Q3 revenue EUR 4.2M
    : Build on what it did; do not repeat finished work.)
    | The task has ended.
    |
    | Task cancelled: report-generator-<id> (soft, on request: the board meets now; a summary will do; it read the request after <t>; it ended <t> after the request). Partial results:
    | Completed: data pull
    | In progress: charts
    | Not started: commentary
    | Findings: Q3 revenue EUR 4.2M, +8% on Q2; EMEA grew fastest
    | (from 2 checkpoints)
    | Its final message:
    | Completed: data pull
    | In progress: charts
    | Not started: commentary
    | Findings: Q3 revenue EUR 4.2M
    | Its fallback quick-summary-<id> (quick-summary) delivered this result in its place:
    | Quick summary: Q3 revenue EUR 4.2M, +8% on Q2, with EMEA growing fastest. Charts to follow.
parent << Done; the result is above.
python: report-generator-<id> is CANCELLED; its fallback quick-summary-<id> is COMPLETED, fallback_for=report-generator-<id>
tasks still running: 0

=== Scene 2: the report runs out of time
parent -> task(description='Write the Q3 sales report for the board', subagent_type='report-generator', timeout_seconds=0.3)
    transport: CANCEL_REQUEST (soft, reason 'deadline', 1s grace) -> report-generator-<id>
    quick-summary starts; its prompt:
    : Write the Q3 sales report for the board
    :
    : (You are taking over from a task that was cancelled (your time budget ran out). What it had done:
    : Completed: data pull
    : In progress: charts
    : Not started: commentary
    : Findings: Q3 revenue EUR 4.2M, +8% on Q2; EMEA grew fastest
    : (from 1 checkpoint)
    : Build on what it did; do not repeat finished work.)
    | Task cancelled: report-generator-<id> (hard, deadline; stopped when its 1s grace window ran out; it ended <t> after the request). Partial results:
    | Completed: data pull
    | In progress: charts
    | Not started: commentary
    | Findings: Q3 revenue EUR 4.2M, +8% on Q2; EMEA grew fastest
    | (from 1 checkpoint)
    | Its fallback quick-summary-<id> (quick-summary) delivered this result in its place:
    | Quick summary: Q3 revenue EUR 4.2M, +8% on Q2, with EMEA growing fastest. Charts to follow.
parent << The full report ran out of time; the quick summary above stands in for it.
python: report-generator-<id> is CANCELLED; its fallback quick-summary-<id> is COMPLETED, fallback_for=report-generator-<id>
tasks still running: 0

=== Scene 3: the report is done before the cancel
parent -> task(description='Write the Q3 sales report for the board', subagent_type='report-generator', mode='async')
    | Task started with ID: report-generator-<id> (report-generator); it runs in the background. Follow it with check_task or wait_tasks; stop it with soft_cancel_task or hard_cancel_task.
parent -> soft_cancel_task(task_id='report-generator-<id>', reason='the board meets now; a summary will do')
    | report-generator-<id> had finished before the cancel arrived, so nothing was cancelled: COMPLETED in <t>. Output:
    | Q3 report: revenue EUR 4.2M (+8%); EMEA +14%, Americas +5%, APAC flat. Charts and commentary attached.
parent -> wait_tasks(task_ids=['report-generator-<id>'])
    | The task has ended.
    |
    | report-generator-<id>: COMPLETED in <t>. Output:
    | Q3 report: revenue EUR 4.2M (+8%); EMEA +14%, Americas +5%, APAC flat. Charts and commentary attached.
parent << Done; the result is above.
python: report-generator-<id> is COMPLETED; quick-summary tasks started: 0
tasks still running: 0
""")


async def read_until(output: BufferedByteReceiveStream, wanted: str) -> list[str]:
    """The lines `output` gives up to the first that starts with `wanted` (included)."""
    lines: list[str] = []
    while not (lines and lines[-1].startswith(wanted)):
        lines.append((await output.receive_until(b'\n', 65536)).decode())
    return lines


@pytest.mark.anyio
async def test_temporal_worker_and_app(temporal_server: DevServer) -> None:
    """The two commands of examples/temporal: the worker runs the tasks, the app cancels them softly and hard."""
    queue = f'examples-{uuid.uuid4().hex[:8]}'
    subagents = 'examples.temporal.subagents:SUBAGENTS'
    where = ['--address', temporal_server.address, '--task-queue', queue]
    worker_command = [sys.executable, '-m', 'subagents_cancel', 'worker', *where, '--subagents', subagents]
    worker: Process
    async with await anyio.open_process(worker_command, cwd=ROOT, stderr=subprocess.STDOUT) as worker:
        assert worker.stdout is not None
        output = BufferedByteReceiveStream(worker.stdout)
        with anyio.fail_after(_PROCESS_SECONDS):
            started = await read_until(output, 'worker: serving')
            app = await anyio.run_process(
                [sys.executable, '-m', 'examples.temporal.app', *where], cwd=ROOT, stderr=subprocess.STDOUT, check=False
            )
            worker.send_signal(signal.SIGTERM)
            stopped = await read_until(output, 'worker: stopped')
            assert await worker.wait() == 0

    assert started == [f'worker: serving {queue!r} on {temporal_server.address}']
    # The worker's own lines only: a hard cancel can leave pydantic-ai's cancelled activity handle with its error
    # unretrieved, which asyncio logs (several lines) when the handle is collected, at a moment of its choosing.
    assert [line for line in stopped if line.startswith('worker: ')] == ['worker: stopped']
    assert app.returncode == 0, app.stdout.decode()
    assert normalised(app.stdout.decode()) == snapshot("""\
started researcher-<id> and crawler-<id> on the task queue 'examples-<id>'
researcher-<id> checkpointed; soft cancel
researcher-<id>: CANCELLED (soft, reason 'user')
    checkpoints: 1; it read the cancel request: True
    completed: market size
    in progress: competitors
    not started: pricing
    findings: the EU e-bike market is worth EUR 18bn
    final message | Completed: market size
    final message | In progress: competitors (3 found)
    final message | Not started: pricing
crawler-<id> checkpointed; hard cancel
crawler-<id>: CANCELLED (hard, reason 'user')
    checkpoints: 1; it read the cancel request: False
    completed: sitemap
    in progress: product pages
    not started: -
    findings: 412 product pages
    final message | -
tasks still running: 0; orphans after teardown: 0
""")
