"""Fixtures shared by every test: the anyio backend, a manual clock, and the check that nothing is left running."""

from __future__ import annotations

import asyncio
import functools
import inspect
import os
from collections.abc import Awaitable, Callable, Generator, Iterator

import anyio
import logfire
import pytest
from opentelemetry.trace import NoOpTracerProvider
from pydantic_ai import models

from subagents_cancel import manager as manager_module
from subagents_cancel.transport import InProcessTransport, LoopbackTransport, Transport

from .helpers import WatchedClock
from .temporal_support import Backend, DevServer, start_dev_server

models.ALLOW_MODEL_REQUESTS = False  # a test that reaches a real provider fails instead of spending tokens
logfire.configure(send_to_logfire=False, console=False)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, pytest.TestReport]:
    """Under CI (`CI` set) a skipped test fails: a test that did not run proves nothing."""
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if os.environ.get('CI') and report.skipped and not hasattr(report, 'wasxfail'):
        report.outcome = 'failed'
        report.longrepr = f'skipped under CI, where every test must run: {report.longrepr}'


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if isinstance(item, pytest.Function) and inspect.iscoroutinefunction(item.obj):
            item.obj = _fails_on_stray_tasks(item.obj)


def _fails_on_stray_tasks(test: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    """Fail an async test that leaves an asyncio task running when it returns: nothing may outlive its owner."""

    @functools.wraps(test)
    async def checked(*args: object, **kwargs: object) -> None:
        before = asyncio.all_tasks()
        await test(*args, **kwargs)
        await anyio.wait_all_tasks_blocked()  # what is still ending (a transport closing) ends; the rest is stray
        stray = [task for task in asyncio.all_tasks() - before if not task.done()]
        assert not stray, f'tasks left running: {[task.get_name() for task in stray]}'

    return checked


TRANSPORTS: dict[str, Callable[[], Transport]] = {'in-process': InProcessTransport, 'loopback': LoopbackTransport}
# Modules whose tests never reach a transport (or reach one only in another process): run once, not per transport.
_TRANSPORT_INDEPENDENT = frozenset(
    {
        'test_benchmark_harness',
        'test_config',
        'test_demo',
        'test_docs_examples',
        'test_examples',
        'test_history_surgery',
        'test_layering',
        'test_messages',
        'test_no_bypass',
        'test_notebook',
        'test_notebook_live_tree',
        'test_notebook_view',
        'test_public_api',
        'test_reason_words',
        'test_record_writers',
        'test_states',
        'test_transport',
        'test_web_example',
        'test_durations',
        'test_delivery',
        'test_temporal_lease',  # its owner is another process
        'test_without_temporal',  # in a process of its own
        'test_temporal_deployments',  # an owner and a worker of its own
        'test_temporal_crashes',  # its tasks run in worker processes of their own
        'test_temporal_telemetry',  # its owner and workers are its own: a worker takes a task over
        'test_temporal_child_workflows',  # its owner is a workflow, on its own transport
    }
)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test that can reach a transport runs on each one: the in-process transport and the loopback's JSON.

    A test that opens its managers with the `backend` fixture runs a third time, its tasks on a Temporal worker.
    """
    if metafunc.definition.path.stem not in _TRANSPORT_INDEPENDENT:
        kinds = [*TRANSPORTS, 'temporal'] if 'backend' in metafunc.fixturenames else list(TRANSPORTS)
        metafunc.parametrize('transport_kind', kinds, indirect=True)


@pytest.fixture(autouse=True)
def transport_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The transport a manager given none creates in this test (and `helpers.new_transport()` builds)."""
    kind: str = getattr(request, 'param', 'in-process')
    monkeypatch.setattr(manager_module, '_default_transport', TRANSPORTS.get(kind, InProcessTransport))
    return kind


@pytest.fixture
def anyio_backend() -> str:
    return 'asyncio'  # pydantic-ai's first-party cancellation cancels asyncio tasks


@pytest.fixture
def logfire_not_configured() -> Iterator[None]:
    """The test runs as in an application that never configured logfire: its tasks get no span.

    The suite configures logfire once for every test (above); this takes its tracer away for one test.
    """
    proxy = logfire.DEFAULT_LOGFIRE_INSTANCE.config.get_tracer_provider()
    configured, proxy.provider = proxy.provider, NoOpTracerProvider()
    try:
        yield
    finally:
        proxy.provider = configured


@pytest.fixture
def clock() -> WatchedClock:
    return WatchedClock()


@pytest.fixture(scope='session')
def temporal_server() -> Generator[DevServer]:
    """A Temporal dev server for the session, on 127.0.0.1 (started by the first test that needs it)."""
    server = start_dev_server()
    yield server
    server.stop()


@pytest.fixture
def backend(request: pytest.FixtureRequest, transport_kind: str) -> Backend:
    """Where the test's tasks run: in this process (on its transport), or on a Temporal worker (same replies)."""
    if transport_kind == 'temporal':
        return Backend('temporal', request.getfixturevalue('temporal_server'))
    return Backend('in-process')
