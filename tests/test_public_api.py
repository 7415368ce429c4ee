"""The public surface: what the package exports, and that every module says what it exports."""

from __future__ import annotations

import importlib
import pkgutil
from typing import cast

import subagents_cancel

MODULES = [
    importlib.import_module(f'subagents_cancel.{info.name}')
    for info in pkgutil.iter_modules(subagents_cancel.__path__)
    if info.name != '__main__'
]


def test_package_exports_a_sorted_tuple_of_existing_names() -> None:
    """`__all__` is a sorted tuple, every name in it exists, and none is private."""
    exported: tuple[str, ...] = subagents_cancel.__all__
    assert isinstance(exported, tuple)
    assert list(exported) == sorted(exported)
    assert all(hasattr(subagents_cancel, name) and not name.startswith('_') for name in exported)


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
