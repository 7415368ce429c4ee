"""A Stop button in a real browser: research requests whose sub-agents a user watches and stops from a page.

Run it with `python -m examples.web` (scripted models, offline) or `python -m examples.web --model
openai:gpt-5-mini` (a real model), then open http://127.0.0.1:8000. See `docs/guides/web.md`.
"""

from __future__ import annotations

from .app import create_app
from .research import Desk, Research, Setup
from .scripts import SEARCHERS, Pace

__all__ = ('SEARCHERS', 'Desk', 'Pace', 'Research', 'Setup', 'create_app')
