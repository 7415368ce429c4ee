"""The playground notebook runs from top to bottom in a real kernel (top-level await on Jupyter's event loop)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import nbclient
import nbformat
import pytest

NOTEBOOK = Path(__file__).parent.parent / 'examples' / 'playground.ipynb'


def executed_cells(path: Path) -> list[dict[str, Any]]:
    """Run the notebook in a fresh kernel; return its cells as plain JSON (nbformat and nbclient are untyped)."""
    notebook = cast(Any, nbformat).read(path, as_version=4)
    client = cast(Any, nbclient).NotebookClient(
        notebook, timeout=60, kernel_name='python3', resources={'metadata': {'path': path.parent}}
    )
    client.execute()
    return json.loads(cast(Any, nbformat).writes(notebook))['cells']


@pytest.mark.timeout(120)  # starting a kernel takes a few seconds on a busy machine
@pytest.mark.filterwarnings('ignore::DeprecationWarning')  # jupyter_client and jupyter_core, not our code
def test_playground_notebook_runs() -> None:
    """Every cell runs without error; the task is cancelled softly, hands back its work, and nothing is left."""
    printed = [
        ''.join(output['text'])
        for cell in executed_cells(NOTEBOOK)
        if cell['cell_type'] == 'code'
        for output in cell['outputs']
        if output['output_type'] == 'stream'
    ]
    # The researcher keeps working while the cells run, so it may have finished a third phase.
    assert printed[0].startswith('CANCELLED - Completed: market size, competitors')
    assert printed[1].startswith('soft cancel, ') and ' checkpoints, read after ' in printed[1]
    assert printed[-1] == 'tasks still running: 0 | orphans: 0\n'
