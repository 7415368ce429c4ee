"""Text for models and people: every reply, refusal, report and instruction, in one place."""

__all__: tuple[str, ...] = ()
