"""The engine: private modules, one concept each (see docs/concepts/architecture.md)."""

__all__: tuple[str, ...] = ()
