"""The scenarios. Each module has `async def run(adapter, size) -> dict`, the same code for every library."""
