"""The sub-agents that the worker processes of the crash tests host (`--subagents tests.crash_subagents:SUBAGENTS`).

The researcher's model is OpenAI's chat model pointed at the test's fake server (`tests/openai_server.py`), whose
address the test gives the worker process in the environment variable `FAKE_OPENAI_URL`; the test sees every model
request a worker makes. Its activities are declared lost after `HEARTBEAT_TIMEOUT_SECONDS` of silence (a worker
killed mid-request), so that another worker retries them soon.
"""

from __future__ import annotations

import os

from openai import AsyncOpenAI
from pydantic_ai import Agent
from pydantic_ai.durable_exec.temporal import TemporalDurability
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider

from subagents_cancel import SubAgentConfig
from subagents_cancel.temporal import WorkerSettings, activity_config

FAKE_OPENAI_URL = 'FAKE_OPENAI_URL'
"""The environment variable with the fake server's base URL (`http://127.0.0.1:<port>/v1`)."""
HEARTBEAT_TIMEOUT_SECONDS = 1.0
"""How long a model request of a killed worker goes unnoticed before Temporal retries it on another worker."""


def researcher() -> SubAgentConfig:
    """The researcher, its model requests going to the fake server (to no server if the variable is not set)."""
    client = AsyncOpenAI(base_url=os.environ.get(FAKE_OPENAI_URL, 'http://127.0.0.1:1/v1'), api_key='test-key')
    model = OpenAIChatModel('fake-model', provider=OpenAIProvider(openai_client=client))
    settings = WorkerSettings(heartbeat_timeout_seconds=HEARTBEAT_TIMEOUT_SECONDS)
    agent = Agent(
        model, name='researcher', capabilities=[TemporalDurability(activity_config=activity_config(settings))]
    )
    return SubAgentConfig(name='researcher', description='Researches a topic and reports findings', agent=agent)


SUBAGENTS = [researcher()]
