"""Configuration is validated when it is built, with errors that name the problem."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError
from pydantic_ai import Agent
from pydantic_ai.models.test import TestModel

from subagents_cancel import SubAgentCapability, SubAgentConfig, SubAgentManager, SubAgentPolicy
from subagents_cancel.errors import ConfigError


def config(**fields: object) -> SubAgentConfig:
    return SubAgentConfig.model_validate({'name': 'researcher', 'description': 'Researches', **fields})


@pytest.mark.parametrize(
    ('fields', 'message'),
    [
        ({'name': ''}, 'String should match pattern'),
        ({'name': 'two words'}, 'String should match pattern'),
        ({'name': 'x' * 49}, 'String should match pattern'),
        ({'description': ''}, 'String should have at least 1 character'),
        ({'colour': 'blue'}, 'Extra inputs are not permitted'),
        ({'model': 'gpt5'}, "Unknown model 'gpt5': name it as '<provider>:<model>', e.g. 'openai:gpt-5-mini'."),
        ({'model': 'nosuch:model-1'}, "Unknown model provider 'nosuch' in 'nosuch:model-1'."),
        ({'model': 42}, 'Input should be a valid string'),
        ({'grace_seconds': 0}, 'Input should be greater than 0'),
        ({'grace_seconds': float('inf')}, 'Input should be a finite number'),
        ({'model': 'test', 'agent': Agent(TestModel())}, 'Give either `agent` or `model`, not both'),
    ],
)
def test_bad_config_is_refused_at_construction(fields: dict[str, object], message: str) -> None:
    """Each bad field raises a ValueError (pydantic's ValidationError) naming the field and the fix."""
    with pytest.raises(ValidationError, match=re.escape(message)):
        config(**fields)


def test_a_model_whose_sdk_is_missing_is_accepted() -> None:
    """A known provider is a valid value even if its SDK is not installed; pydantic-ai reports that when it runs."""
    assert config(model='openai:gpt-5-mini').model == 'openai:gpt-5-mini'


@pytest.mark.parametrize(
    ('fields', 'message'),
    [
        ({'grace_seconds': -1}, 'Input should be greater than 0'),
        ({'max_running': 0}, 'Input should be greater than or equal to 1'),
        ({'owner_end': 'gentle'}, "Input should be 'hard' or 'soft'"),
        ({'teardown': 5}, 'Extra inputs are not permitted'),
        (
            {'hard_cancel_wait_seconds': 0.5},
            'final_answer_wait_seconds (1s) must be shorter than hard_cancel_wait_seconds (0.5s)',
        ),
        ({'teardown_seconds': 1}, 'final_answer_wait_seconds (1s) must be shorter than teardown_seconds (1s)'),
    ],
)
def test_bad_policy_is_refused(fields: dict[str, object], message: str) -> None:
    """Policy bounds are checked too."""
    with pytest.raises(ValidationError, match=re.escape(message)):
        SubAgentPolicy.model_validate(fields)


def test_duplicate_and_missing_subagents() -> None:
    """Names must be unique, and there must be at least one sub-agent."""
    with pytest.raises(ConfigError, match=r"^Two sub-agents are named 'researcher'; names must be unique\.$"):
        SubAgentCapability(subagents=[config(model='test'), config(model='test')])
    with pytest.raises(ConfigError, match=r'^Configure at least one sub-agent\.$'):
        SubAgentCapability(subagents=[])
    assert isinstance(ConfigError('x'), ValueError)


def test_a_manager_needs_a_model_for_each_subagent() -> None:
    """Outside a parent run there is no parent model to fall back on."""
    with pytest.raises(ConfigError, match=r"^Sub-agent 'researcher' has no model: set `SubAgentConfig.model`"):
        SubAgentManager([config()])
    with pytest.raises(ConfigError, match=r"^Unknown model 'gpt5'"):
        SubAgentManager([config()], default_model='gpt5')
    assert SubAgentManager([config()], default_model='test').subagents == (config(),)


def test_capability_takes_subagents_or_a_manager() -> None:
    """A shared manager brings its own sub-agents; giving both is refused."""
    manager = SubAgentManager([config(model='test')])
    with pytest.raises(ConfigError, match=r'^Give either `manager` or `subagents`'):
        SubAgentCapability(subagents=[config(model='test')], manager=manager)
    with pytest.raises(ConfigError, match=r"^Unknown model 'gpt5'"):
        SubAgentCapability(subagents=[config()], default_model='gpt5')
    assert 'researcher: Researches' in SubAgentCapability(manager=manager).get_instructions()
