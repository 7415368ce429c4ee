"""An environment in which an older commit of this library can be imported, built once and kept.

The commit is checked out with `git worktree add --detach` under the temporary directory, and installed
(editable, so its sources stay where git put them) into `benchmarks/.venv-<shortsha>`. The third-party
packages are pinned to the versions of the environment that builds it (`pip freeze` as constraints), so an
old/new comparison measures this library's code, not a different pydantic-ai. Both places are outside what
git tracks (`.venv*/` is ignored). A finished build leaves a marker file; a build that was interrupted is
started again.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

MARKER = 'subagents-cancel-commit'
"""Written into the environment once the commit is installed; holds the full commit id."""


@dataclass(frozen=True, slots=True)
class RevisionEnv:
    """A commit of this library and the Python that imports it."""

    commit: str
    short: str
    worktree: Path
    python: Path


def _git(root: Path, *args: str) -> str:
    return subprocess.run(['git', '-C', str(root), *args], check=True, capture_output=True, text=True).stdout.strip()


def _constraints(path: Path) -> Path:
    """The running environment's third-party versions, as a pip constraints file (editable installs left out)."""
    frozen = subprocess.run(
        [sys.executable, '-m', 'pip', 'freeze', '--exclude-editable'], check=True, capture_output=True, text=True
    ).stdout
    pins = [line for line in frozen.splitlines() if '==' in line and not line.startswith('subagents-cancel')]
    path.write_text('\n'.join(pins) + '\n')
    return path


def ensure(rev: str, root: Path, venvs: Path) -> RevisionEnv:
    """Check out and install `rev` of the repository at `root` unless an earlier call did; return its environment.

    Raises:
        subprocess.CalledProcessError: `rev` names no commit, or git or pip failed.
    """
    commit = _git(root, 'rev-parse', '--verify', f'{rev}^{{commit}}')
    short = _git(root, 'rev-parse', '--short', commit)
    worktree = Path(tempfile.gettempdir()) / f'subagents-cancel-{short}'
    venv = venvs / f'.venv-{short}'
    python = venv / 'bin' / 'python'
    if not (worktree / '.git').exists():
        _git(root, 'worktree', 'prune')  # forget a checkout of this commit that the temporary directory lost
        _git(root, 'worktree', 'add', '--detach', str(worktree), commit)
    marker = venv / MARKER
    if not marker.exists() or marker.read_text() != commit:
        sys.stderr.write(f'building {venv} for {rev} ({short}) ...\n')
        subprocess.run([sys.executable, '-m', 'venv', '--clear', str(venv)], check=True)
        constraints = _constraints(venv / 'constraints.txt')
        install = [str(python), '-m', 'pip', 'install', '-q', '-c', str(constraints), '-e', str(worktree)]
        subprocess.run(install, check=True)
        marker.write_text(commit)
    return RevisionEnv(commit=commit, short=short, worktree=worktree, python=python)
