.DEFAULT_GOAL := all

.PHONY: install format lint typecheck test docs docs-serve bench demo all

install:
	pip install -e '.[dev]'

format:
	ruff format
	ruff check --fix

lint:
	ruff check
	ruff format --check

typecheck:
	pyright

test:
	python -m pytest

docs:
	mkdocs build --strict

docs-serve:
	mkdocs serve

bench:
	python benchmarks/cancel_latency.py

demo:
	python -m subagents_cancel demo

all: lint typecheck test docs
