"""Every Python example in the docs and the README runs, offline, and prints what its `#>` comments say it prints."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
DOCS = ROOT / 'docs'
_BLOCK = re.compile(r'^```python\n(.*?)^```', re.S | re.M)


def examples() -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for page in [ROOT / 'README.md', *sorted(DOCS.rglob('*.md'))]:
        for index, match in enumerate(_BLOCK.finditer(page.read_text())):
            found.append((f'{page.relative_to(ROOT)}#{index + 1}', match.group(1)))
    return found


@pytest.mark.parametrize(('where', 'code'), examples(), ids=[where for where, _ in examples()])
def test_example_runs_and_prints_what_it_says(where: str, code: str) -> None:
    """The block runs as a script; its output matches its `#>` lines."""
    expected = [line.strip()[3:] for line in code.splitlines() if line.strip().startswith('#> ')]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, where, 'exec'), {'__name__': '__docs__'})
    assert printed.getvalue().splitlines() == expected
