"""Shared pieces of the benchmark suite: scripted models, the scripted parent, timing and statistics."""
