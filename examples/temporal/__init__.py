"""Sub-agents on a Temporal worker, their owner in another process: see `docs/guides/across-machines.md`.

With a dev server running (`temporal server start-dev`), from the repository's root:

    python -m subagents_cancel worker --task-queue research --subagents examples.temporal.subagents:SUBAGENTS
    python -m examples.temporal.app
"""
