"""Without Temporal's SDK installed, the library works in process; only `subagents_cancel.temporal` asks for it."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from inline_snapshot import snapshot

_NO_TEMPORAL = textwrap.dedent(
    """
    import importlib.abc, sys

    class NoTemporal(importlib.abc.MetaPathFinder):  # as if temporalio were not installed
        def find_spec(self, name, path=None, target=None):
            if name == 'temporalio' or name.startswith('temporalio.'):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, NoTemporal())
    """
)


def _run(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, '-c', _NO_TEMPORAL + textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_task_runs_in_process_without_temporal() -> None:
    """The in-process default imports nothing of Temporal: a task starts, is cancelled and ends."""
    done = _run(
        """
        import anyio
        from pydantic_ai.models.test import TestModel
        from subagents_cancel import SubAgentConfig, SubAgentManager

        async def main():
            config = SubAgentConfig(name='researcher', description='Researches', model=TestModel(call_tools=[]))
            async with SubAgentManager([config]) as manager:
                info = await manager.run('researcher', 'Research X')
            print(info.status.value, 'temporalio' in sys.modules)

        anyio.run(main)
        """
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, 'COMPLETED False\n', '')


def test_the_temporal_module_names_the_extra_to_install() -> None:
    """Importing `subagents_cancel.temporal` without the SDK says what to install."""
    done = _run(
        """
        try:
            import subagents_cancel.temporal
        except ImportError as error:
            print(error)
        """
    )
    assert done.stdout == snapshot("""\
subagents_cancel.temporal needs Temporal's SDK: pip install 'subagents-cancel[temporal]'
""")


def test_the_command_line_offers_the_demo_without_temporal() -> None:
    """`python -m subagents_cancel` still runs; it has no `worker` command without the SDK."""
    done = _run(
        """
        from subagents_cancel.__main__ import main
        sys.exit(main(sys.argv[1:]))
        """,
        'worker',
        '--task-queue',
        'q',
        '--subagents',
        'm:X',
    )
    assert done.returncode == 2
    assert "invalid choice: 'worker' (choose from 'demo')" in done.stderr
