"""One thin adapter per library under test; `load(key)` imports only the one asked for."""

from __future__ import annotations

from importlib import import_module

from .base import Adapter, Options, Parent, Told

__all__ = ('ADAPTERS', 'Adapter', 'Options', 'Parent', 'Told', 'load')

ADAPTERS = {
    'ours': ('adapters.ours', 'Ours'),
    'subagents': ('adapters.peer_subagents', 'PeerSubagents'),
    'harness': ('adapters.peer_harness', 'PeerHarness'),
}
"""Adapter key -> (module, class). Peers are imported only in the environment that has them."""


def load(key: str) -> Adapter:
    module, name = ADAPTERS[key]
    adapter: Adapter = getattr(import_module(module), name)()
    return adapter
