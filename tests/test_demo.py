"""The main job runs to the end offline, shows the soft cancel, and leaves nothing running."""

from __future__ import annotations

import pytest

from subagents_cancel.__main__ import main


def test_demo_plays_the_seed_workflow(capsys: pytest.CaptureFixture[str]) -> None:
    """`python -m subagents_cancel demo` exits 0 after the researcher handed back partial results."""
    assert main(['demo']) == 0
    printed = capsys.readouterr().out
    assert '-> soft_cancel_task(' in printed
    assert 'read the CANCEL_REQUEST' in printed
    assert 'Task cancelled: researcher-' in printed and 'Partial results:' in printed
    assert printed.rstrip().endswith('tasks still running: 0')


def test_demo_needs_a_command(capsys: pytest.CaptureFixture[str]) -> None:
    """Without a command the CLI explains its usage."""
    with pytest.raises(SystemExit) as exited:
        main([])
    assert exited.value.code == 2
    assert 'usage: subagents-cancel' in capsys.readouterr().err
