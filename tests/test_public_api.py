"""The public surface: what the package exports, and that every module says what it exports."""

from __future__ import annotations

import importlib
import pkgutil
from typing import cast

from inline_snapshot import snapshot

import subagents_cancel
import subagents_cancel.testing

MODULES = [
    importlib.import_module(f'subagents_cancel.{info.name}')
    for info in pkgutil.iter_modules(subagents_cancel.__path__)
    if info.name != '__main__'
]


def test_package_exports_a_tuple_of_existing_names() -> None:
    """`__all__` is a tuple without repeats, every name in it exists, and none is private."""
    exported: tuple[str, ...] = subagents_cancel.__all__
    assert isinstance(exported, tuple)
    assert len(set(exported)) == len(exported)
    assert all(hasattr(subagents_cancel, name) and not name.startswith('_') for name in exported)


def test_the_top_level_is_what_an_application_imports_every_day() -> None:
    """The package exports a short list grouped by concept; everything else comes from its own module."""
    assert subagents_cancel.__all__ == snapshot(
        (
            'SubAgentManager',
            'shutdown_on_signals',
            'SubAgentConfig',
            'SubAgentPolicy',
            'TaskCapability',
            'SubAgentCapability',
            'create_subagent_toolset',
            'Cancelled',
            'Completed',
            'Failed',
            'Outcome',
            'PartialResult',
            'TaskId',
            'TaskInfo',
            'TaskStatus',
            'CancelReason',
            'RegionCancelled',
            'RegionCompleted',
            'RegionIncomplete',
            'RegionOutcome',
            'TaskContext',
            'current_task',
            'CancelTimeout',
            'SubAgentsError',
            'UnknownTask',
            'CancelMetrics',
            'InProcessTransport',
            'LoopbackTransport',
            'Mailbox',
            'Transport',
        )
    )


def test_test_helpers_live_in_the_testing_module_only() -> None:
    """Helpers that exist only for tests are in `subagents_cancel.testing`, not at the top level."""
    assert subagents_cancel.testing.__all__ == snapshot(('ManualClock',))
    assert not set(subagents_cancel.testing.__all__) & set(subagents_cancel.__all__)


def test_the_contract_names_are_exported() -> None:
    """The entry points the design fixes are importable from the package."""
    assert {'SubAgentCapability', 'SubAgentConfig', 'create_subagent_toolset', 'SubAgentManager'} <= set(
        subagents_cancel.__all__
    )


def test_every_module_declares_all_and_defines_it() -> None:
    """Each module lists its public names in a tuple `__all__`, and defines each one."""
    for module in MODULES:
        exported: object = getattr(module, '__all__', None)
        assert isinstance(exported, tuple), module.__name__
        assert all(isinstance(name, str) and hasattr(module, name) for name in cast(tuple[object, ...], exported))


def test_public_names_in_modules_are_in_all() -> None:
    """A module-level name defined in a module and not starting with `_` is exported by it."""
    for module in MODULES:
        own = {
            name
            for name, value in vars(module).items()
            if not name.startswith('_') and getattr(value, '__module__', None) == module.__name__
        }
        assert own <= set(module.__all__), (module.__name__, own - set(module.__all__))
