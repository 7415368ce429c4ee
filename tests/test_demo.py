"""The main job runs the three seed scenarios to the end offline, shows what cancelling did, and leaves nothing running."""

from __future__ import annotations

import io
import re

import anyio
import pytest
from inline_snapshot import snapshot
from rich.console import Console

from subagents_cancel.__main__ import main
from subagents_cancel.demo import run_demo
from subagents_cancel.demo_log import reply_lines


@pytest.mark.timeout(60)  # real time: the scripted models take about 10 s in all
def test_demo_plays_the_seed_scenarios(capsys: pytest.CaptureFixture[str]) -> None:
    """`python -m subagents_cancel demo` exits 0 after the region, fallback and escalation scenarios."""
    assert main(['demo']) == 0
    printed = capsys.readouterr().out
    # 1. the user aborts the research region: its searchers and its lead hand back, and the region says so
    assert 'pressed Stop: the application soft-cancels region research' in printed
    assert re.search(r"<- Region 'research' was cancelled \(soft, on request: the user pressed Stop\)", printed)
    assert re.search(r'lead-\w+ CANCELLED .* region research/literature\s+\(soft cancel, read\)', printed)
    # the lead's lines about its two searchers, and the market searcher's partial results
    assert 'Findings: what my searchers handed back before they stopped (2 of 2 searchers).' in printed
    assert 'Findings: 9 market reports; pilot lines; cells cost 3x Li-ion' in printed
    # the order: the lead's own searchers hand back first, then the lead ends, then the region reports
    handed_back = [
        found.start()
        for found in re.finditer(r'lead\s+<- Task cancelled: searcher-\w+ \(soft, its owner was cancelled', printed)
    ]
    lead_ended = re.search(r'transport\s+:: lead-\w+: RUNNING -> CANCELLED', printed)
    assert len(handed_back) == 2
    assert lead_ended is not None
    assert max(handed_back) < lead_ended.start() < printed.index("<- Region 'research' was cancelled")
    # the tree shows how the lead's own searchers ended, under the lead
    assert len(re.findall(r'│   │   [├└]── searcher-\w+ CANCELLED .*\(soft cancel, read\)', printed)) == 2
    assert not re.search(r'searcher-\w+ ended', printed)
    assert re.search(r'searcher-\w+ COMPLETED .* 6 checkpoint', printed)  # the glossary, outside the region
    assert re.search(r'<- anode, cathode; solid electrolyte; dendrite; .* 24 terms', printed)
    # 2. the report is soft-cancelled and its fallback delivers a quick summary
    assert re.search(r'report_writer-\w+ CANCELLED .*\(soft cancel, read\)', printed)
    assert re.search(r'replaced by quick_summary-\w+ COMPLETED', printed)
    assert re.search(
        r'<- Its fallback quick_summary-\w+ \(quick_summary\) delivered this result in its place:', printed
    )
    assert '<- Quick summary: revenue +12%, costs flat.' in printed
    # 3. the stuck crawler cannot read the request and is stopped when its grace window runs out
    assert re.search(r'crawler-\w+ did not stop in its grace window: hard cancel', printed)
    assert re.search(r'crawler-\w+ CANCELLED .*\(soft cancel, escalated\)', printed)
    # the figures, and nothing left
    assert re.search(r'│ crawler\s+│\s+0 │\s+1 │\s+100% │\s+1 │', printed)
    assert 'orphaned tasks: 0' in printed
    assert printed.rstrip().endswith('tasks still running: 0')


@pytest.mark.timeout(60)  # real time, like the test above
def test_demo_fits_80_columns() -> None:
    """At 80 columns the demo still shows the fallback's summary, and its figures fit with no header cut."""
    out = io.StringIO()
    assert anyio.run(run_demo, None, Console(width=80, file=out)) == 0
    printed = out.getvalue()
    assert '<- Quick summary: revenue +12%, costs flat.' in printed
    figures = printed[printed.index("Outcomes of the parents' tasks") :]
    assert 'Cancels: p50 seconds from the request, and tokens' in figures
    assert '\u2026' not in figures
    assert max(len(line) for line in figures.splitlines()) <= 80


def test_demo_says_how_much_of_a_reply_it_cuts() -> None:
    """A tool reply longer than the log shows ends with a line saying how many lines were cut."""
    reply = '\n'.join(f'line {n}' for n in range(1, 11))
    assert reply_lines(reply, 4) == snapshot(['line 1', 'line 2', 'line 3', '\u2026 7 more lines'])
    assert reply_lines(reply, 10) == [f'line {n}' for n in range(1, 11)]


def test_demo_needs_a_command(capsys: pytest.CaptureFixture[str]) -> None:
    """Without a command the CLI explains its usage."""
    with pytest.raises(SystemExit) as exited:
        main([])
    assert exited.value.code == 2
    assert 'usage: subagents-cancel' in capsys.readouterr().err


def test_demo_names_a_model_it_cannot_use(capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown model (or a provider whose SDK is not installed) gets one line and exit status 2, no traceback."""
    assert main(['demo', '--model', 'nope:nothing']) == 2
    assert capsys.readouterr().err == snapshot(
        "subagents-cancel: cannot use the model 'nope:nothing': Unknown model: nope:nothing\n"
    )
