"""Bad input to any tool gets a short reply naming the problem, and no number of bad calls ends the parent run."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from inline_snapshot import snapshot
from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ModelResponse, ToolCallPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from subagents_cancel import Completed, SubAgentCapability, SubAgentConfig, SubAgentManager, create_subagent_toolset
from subagents_cancel.testing import ManualClock

from .helpers import TASK_ID, Script, Step, call, calls, replies_of, researcher, text, tool_returns
from .temporal_support import Backend

pytestmark = pytest.mark.anyio


def capability_with_researcher(clock: ManualClock, *answers: str) -> SubAgentCapability:
    sub = Script([text(answer) for answer in answers])
    researcher = SubAgentConfig(name='researcher', description='Researches a topic', model=sub.model)
    writer = SubAgentConfig(name='writer', description='Writes reports', model=sub.model)
    return SubAgentCapability(subagents=[researcher, writer], clock=clock)


async def run_parent(clock: ManualClock, *steps: Step) -> list[str]:
    parent = Script([*steps, text('the parent is still alive')])
    result = await Agent(parent.model, capabilities=[capability_with_researcher(clock)]).run('go')
    assert result.output == 'the parent is still alive'
    return replies_of(result.all_messages())


async def test_unknown_empty_and_huge_ids(clock: ManualClock) -> None:
    """Ids the run never issued are named (shortened when huge) and the reply says what to do."""
    huge = 'x' * 10_000
    replies = await run_parent(
        clock,
        call('check_task', task_id='ghost-task'),
        call('soft_cancel_task', task_id=''),
        call('hard_cancel_task', task_id=huge),
        call('answer_subagent', task_id='ghost-task', answer='yes'),
        call('wait_tasks', task_ids=['ghost-task']),
    )
    assert replies == snapshot(
        [
            "No task 'ghost-task' in this run; call list_active_tasks() to see your tasks.",
            "task_id is empty; pass the id that `task` returned, e.g. 'researcher-3f9a07c2'.",
            "No task 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'… (10,000 characters) in this run; call list_active_tasks() to see your tasks.",
            "No task 'ghost-task' in this run; call list_active_tasks() to see your tasks.",
            "No task 'ghost-task' in this run; call list_active_tasks() to see your tasks.",
        ]
    )
    assert all(len(reply) < 200 for reply in replies)


async def test_finished_task(clock: ManualClock) -> None:
    """A finished task can be checked; a cancel says it had finished first and shows its result; no answer."""
    parent = Script(
        [
            call('task', description='Research X', subagent_type='researcher', mode='async'),
            call('wait_tasks', task_ids=[TASK_ID]),
            call('soft_cancel_task', task_id=TASK_ID),
            call('hard_cancel_task', task_id=TASK_ID),
            call('answer_subagent', task_id=TASK_ID, answer='yes'),
            call('check_task', task_id=TASK_ID),
            text('the parent is still alive'),
        ]
    )
    result = await Agent(parent.model, capabilities=[capability_with_researcher(clock, 'findings')]).run('go')
    assert replies_of(result.all_messages()) == snapshot(
        [
            'Task started with ID: researcher-0001 (researcher); it runs in the background. Follow it with check_task or wait_tasks; stop it with soft_cancel_task or hard_cancel_task.',
            """\
The task has ended.

researcher-0001: COMPLETED in 0.0 ms. Output:
findings\
""",
            """\
researcher-0001 had finished before the cancel arrived, so nothing was cancelled: COMPLETED in 0.0 ms. Output:
findings\
""",
            """\
researcher-0001 had finished before the cancel arrived, so nothing was cancelled: COMPLETED in 0.0 ms. Output:
findings\
""",
            'researcher-0001 is not waiting for an answer (it is COMPLETED); nothing was sent.',
            """\
researcher-0001: COMPLETED in 0.0 ms. Output:
findings\
""",
        ]
    )


async def test_another_runs_task_reads_as_not_found(clock: ManualClock) -> None:
    """Two parent runs of the same agent cannot see each other's tasks."""
    capability = capability_with_researcher(clock, 'first findings')
    first = Script([call('task', description='Research X', subagent_type='researcher', mode='sync'), text('ok')])
    first_result = await Agent(first.model, capabilities=[capability]).run('go')
    (report,) = tool_returns(first_result.all_messages())
    own_id = report.split(':')[0]
    second = Script([call('check_task', task_id=own_id), call('hard_cancel_task', task_id=own_id), text('ok')])
    second_result = await Agent(second.model, capabilities=[capability]).run('go')
    assert [reply.replace(own_id, '<the first run’s id>') for reply in tool_returns(second_result.all_messages())] == (
        snapshot(
            [
                "No task '<the first run’s id>' in this run; call list_active_tasks() to see your tasks.",
                "No task '<the first run’s id>' in this run; call list_active_tasks() to see your tasks.",
            ]
        )
    )


async def test_unknown_subagent_and_invalid_mode(clock: ManualClock) -> None:
    """`task` names the available sub-agents, and an invalid mode is explained, not retried."""
    replies = await run_parent(
        clock,
        call('task', description='Research X', subagent_type='historian', mode='async'),
        call('task', description='Research X', subagent_type='researcher', mode='background'),
        call('task', description='', subagent_type='researcher'),
    )
    assert replies == snapshot(
        [
            "No sub-agent 'historian'; choose one of: researcher, writer.",
            "Invalid arguments for task: mode: Input should be 'sync' or 'async'. Call it again with arguments that fit its schema.",
            'Invalid arguments for task: description: String should have at least 1 character. Call it again with arguments that fit its schema.',
        ]
    )


async def test_wrong_types_missing_and_extra_arguments(clock: ManualClock) -> None:
    """Schema violations get a reply naming each field, never a retry."""
    replies = await run_parent(
        clock,
        call('check_task', task_id=123),
        call('check_task'),
        call('check_task', task_id='researcher-0000', verbose=True),
        call('wait_tasks', task_ids='researcher-0000', timeout_seconds=-1),
        call('answer_subagent', task_id='researcher-0000'),
        call('soft_cancel_task', task_id='researcher-0000', reason='x' * 600),
    )
    assert replies == snapshot(
        [
            'Invalid arguments for check_task: task_id: Input should be a valid string. Call it again with arguments that fit its schema.',
            'Invalid arguments for check_task: task_id: Field required. Call it again with arguments that fit its schema.',
            'Invalid arguments for check_task: verbose: Extra inputs are not permitted. Call it again with arguments that fit its schema.',
            'Invalid arguments for wait_tasks: task_ids: Input should be a valid list; timeout_seconds: Input should be greater than 0. Call it again with arguments that fit its schema.',
            'Invalid arguments for answer_subagent: answer: Field required. Call it again with arguments that fit its schema.',
            'Invalid arguments for soft_cancel_task: reason: String should have at most 500 characters. Call it again with arguments that fit its schema.',
        ]
    )


async def test_bad_calls_in_a_row_never_end_the_parent_run(clock: ManualClock) -> None:
    """Fifty bad calls, some in parallel, use up no retry budget: the parent run goes on."""
    bad = [
        calls(('check_task', {'task_id': 'ghost-task'}), ('hard_cancel_task', {'task_id': 42}), ('task', {}))
        for _ in range(17)
    ]
    replies = await run_parent(clock, *bad)
    assert len(replies) == 51
    assert set(replies) == snapshot(
        {
            'Invalid arguments for hard_cancel_task: task_id: Input should be a valid string. Call it again with arguments that fit its schema.',
            'Invalid arguments for task: description: Field required; subagent_type: Field required. Call it again with arguments that fit its schema.',
            "No task 'ghost-task' in this run; call list_active_tasks() to see your tasks.",
        }
    )


async def test_the_tool_schemas_are_the_contract(clock: ManualClock) -> None:
    """Tool names, descriptions and parameters as the parent's model sees them."""
    seen: list[dict[str, object]] = []

    def model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        seen.extend(
            {'name': tool.name, 'description': tool.description, 'parameters': tool.parameters_json_schema}
            for tool in info.function_tools
        )
        return ModelResponse(parts=[ToolCallPart('list_active_tasks', {})]) if len(messages) == 1 else text('ok')

    await Agent(FunctionModel(model), capabilities=[capability_with_researcher(clock)]).run('go')
    assert seen[: len(seen) // 2] == snapshot(
        [
            {
                'name': 'task',
                'description': 'Start a sub-agent on a piece of work. mode="sync" waits and returns its result; mode="async" returns a task id at once while the sub-agent works in the background.',
                'parameters': {
                    'additionalProperties': False,
                    'properties': {
                        'description': {
                            'description': 'What the sub-agent should do, with all the context it needs: it sees nothing else.',
                            'minLength': 1,
                            'type': 'string',
                        },
                        'subagent_type': {
                            'description': 'The name of one of the sub-agents listed in your instructions.',
                            'type': 'string',
                        },
                        'mode': {
                            'default': 'sync',
                            'description': "'sync' waits and returns the result; 'async' returns a task id at once.",
                            'enum': ['sync', 'async'],
                            'type': 'string',
                        },
                        'region': {
                            'anyOf': [
                                {'pattern': '^[A-Za-z0-9_-]{1,48}(/[A-Za-z0-9_-]{1,48}){0,7}$', 'type': 'string'},
                                {'type': 'null'},
                            ],
                            'default': None,
                            'description': "A group to put it in, e.g. 'research' or 'research/patents', to cancel or wait for together.",
                        },
                        'timeout_seconds': {
                            'anyOf': [{'exclusiveMinimum': 0, 'type': 'number'}, {'type': 'null'}],
                            'default': None,
                            'description': 'Its time budget; it is cancelled when it runs out.',
                        },
                        'fallback': {
                            'anyOf': [{'type': 'string'}, {'type': 'null'}],
                            'default': None,
                            'description': 'A sub-agent that takes over, with the partial result, if this task is cancelled.',
                        },
                    },
                    'required': ['description', 'subagent_type'],
                    'type': 'object',
                },
            },
            {
                'name': 'check_task',
                'description': 'Report a task: status, elapsed time and checkpoints; its result, partial result or error once it has ended; its question while it waits for an answer.',
                'parameters': {
                    'additionalProperties': False,
                    'properties': {
                        'task_id': {
                            'description': 'The id that `task` returned, e.g. researcher-3f9a07c2.',
                            'type': 'string',
                        }
                    },
                    'required': ['task_id'],
                    'type': 'object',
                },
            },
            {
                'name': 'wait_tasks',
                'description': 'Wait until tasks end (all of them, or any one), without polling. Returns early when one of them asks you a question, or at the timeout; the tasks keep running either way.',
                'parameters': {
                    'additionalProperties': False,
                    'properties': {
                        'task_ids': {
                            'anyOf': [{'items': {'type': 'string'}, 'type': 'array'}, {'type': 'null'}],
                            'default': None,
                            'description': 'The tasks to wait for; all active tasks if omitted.',
                        },
                        'wait_for': {
                            'default': 'all',
                            'description': "'all': until every task has ended; 'any': until one has.",
                            'enum': ['all', 'any'],
                            'type': 'string',
                        },
                        'timeout_seconds': {
                            'anyOf': [{'exclusiveMinimum': 0, 'type': 'number'}, {'type': 'null'}],
                            'default': None,
                            'description': 'The longest to wait, in seconds; a few minutes if omitted.',
                        },
                    },
                    'type': 'object',
                },
            },
            {
                'name': 'soft_cancel_task',
                'description': 'Ask a task to stop and hand back partial results. Returns at once; the task wraps up within its grace window and is stopped if it takes longer.',
                'parameters': {
                    'additionalProperties': False,
                    'properties': {
                        'task_id': {
                            'description': 'The id that `task` returned, e.g. researcher-3f9a07c2.',
                            'type': 'string',
                        },
                        'reason': {
                            'anyOf': [{'maxLength': 500, 'type': 'string'}, {'type': 'null'}],
                            'default': None,
                            'description': 'Why, in a few words; the sub-agent is told.',
                        },
                    },
                    'required': ['task_id'],
                    'type': 'object',
                },
            },
            {
                'name': 'hard_cancel_task',
                'description': 'Stop a task now, with no wrap-up. Returns once it has stopped, with the checkpoints it recorded.',
                'parameters': {
                    'additionalProperties': False,
                    'properties': {
                        'task_id': {
                            'description': 'The id that `task` returned, e.g. researcher-3f9a07c2.',
                            'type': 'string',
                        },
                        'reason': {
                            'anyOf': [{'maxLength': 500, 'type': 'string'}, {'type': 'null'}],
                            'default': None,
                            'description': 'Why, in a few words; the sub-agent is told.',
                        },
                    },
                    'required': ['task_id'],
                    'type': 'object',
                },
            },
            {
                'name': 'list_active_tasks',
                'description': 'List your tasks that have not ended, with their status.',
                'parameters': {'additionalProperties': False, 'properties': {}, 'type': 'object'},
            },
            {
                'name': 'answer_subagent',
                'description': 'Answer the question a task is waiting on; it goes on at once.',
                'parameters': {
                    'additionalProperties': False,
                    'properties': {
                        'task_id': {
                            'description': 'The id that `task` returned, e.g. researcher-3f9a07c2.',
                            'type': 'string',
                        },
                        'answer': {'description': 'Your answer to the question the task asked.', 'type': 'string'},
                    },
                    'required': ['task_id', 'answer'],
                    'type': 'object',
                },
            },
            {
                'name': 'soft_cancel_region',
                'description': 'Ask every task of a region to stop and hand back partial results; none of them can complete now, and no new task starts in the region. Returns at once.',
                'parameters': {
                    'additionalProperties': False,
                    'properties': {
                        'region': {
                            'description': 'The region given to `task`, e.g. research.',
                            'pattern': '^[A-Za-z0-9_-]{1,48}(/[A-Za-z0-9_-]{1,48}){0,7}$',
                            'type': 'string',
                        },
                        'reason': {
                            'anyOf': [{'maxLength': 500, 'type': 'string'}, {'type': 'null'}],
                            'default': None,
                            'description': 'Why, in a few words; the sub-agents are told.',
                        },
                    },
                    'required': ['region'],
                    'type': 'object',
                },
            },
            {
                'name': 'hard_cancel_region',
                'description': 'Stop every task of a region now; returns once they have stopped.',
                'parameters': {
                    'additionalProperties': False,
                    'properties': {
                        'region': {
                            'description': 'The region given to `task`, e.g. research.',
                            'pattern': '^[A-Za-z0-9_-]{1,48}(/[A-Za-z0-9_-]{1,48}){0,7}$',
                            'type': 'string',
                        },
                        'reason': {
                            'anyOf': [{'maxLength': 500, 'type': 'string'}, {'type': 'null'}],
                            'default': None,
                            'description': 'Why, in a few words; the sub-agents are told.',
                        },
                    },
                    'required': ['region'],
                    'type': 'object',
                },
            },
            {
                'name': 'wait_region',
                'description': 'Wait until every task of a region has ended, then get all their results — or, if the region was cancelled or a task did not complete, why not. Returns early when a task asks you a question.',
                'parameters': {
                    'additionalProperties': False,
                    'properties': {
                        'region': {
                            'description': 'The region given to `task`, e.g. research.',
                            'pattern': '^[A-Za-z0-9_-]{1,48}(/[A-Za-z0-9_-]{1,48}){0,7}$',
                            'type': 'string',
                        },
                        'timeout_seconds': {
                            'anyOf': [{'exclusiveMinimum': 0, 'type': 'number'}, {'type': 'null'}],
                            'default': None,
                            'description': 'The longest to wait, in seconds; a few minutes if omitted.',
                        },
                    },
                    'required': ['region'],
                    'type': 'object',
                },
            },
            {
                'name': 'resume_task',
                'description': 'Continue a cancelled or failed task with new instructions: a new task of the same sub-agent starts from where it stopped, with its conversation and checkpoints. Returns the new task id at once.',
                'parameters': {
                    'additionalProperties': False,
                    'properties': {
                        'task_id': {
                            'description': 'The id that `task` returned, e.g. researcher-3f9a07c2.',
                            'type': 'string',
                        },
                        'instructions': {
                            'description': 'What it should do now (e.g. narrower instructions); it reads them after its conversation so far.',
                            'minLength': 1,
                            'type': 'string',
                        },
                        'region': {
                            'anyOf': [
                                {'pattern': '^[A-Za-z0-9_-]{1,48}(/[A-Za-z0-9_-]{1,48}){0,7}$', 'type': 'string'},
                                {'type': 'null'},
                            ],
                            'default': None,
                            'description': "A group to put it in, e.g. 'research' or 'research/patents', to cancel or wait for together.",
                        },
                        'timeout_seconds': {
                            'anyOf': [{'exclusiveMinimum': 0, 'type': 'number'}, {'type': 'null'}],
                            'default': None,
                            'description': 'Its time budget; it is cancelled when it runs out.',
                        },
                        'fallback': {
                            'anyOf': [{'type': 'string'}, {'type': 'null'}],
                            'default': None,
                            'description': 'A sub-agent that takes over, with the partial result, if this task is cancelled.',
                        },
                    },
                    'required': ['task_id', 'instructions'],
                    'type': 'object',
                },
            },
        ]
    )


PARENT_TOOLS = (
    'task',
    'check_task',
    'wait_tasks',
    'soft_cancel_task',
    'hard_cancel_task',
    'list_active_tasks',
    'answer_subagent',
    'soft_cancel_region',
    'hard_cancel_region',
    'wait_region',
)
NOT_OBJECTS = {'array': '[1,2]', 'number': '42', 'string': '"x"', 'null': 'null'}


def raw_call(tool: str, args: str) -> ModelResponse:
    """A response that calls `tool` with `args` exactly as the model wrote them, JSON or not."""
    return ModelResponse(parts=[ToolCallPart(tool, args)])


@pytest.mark.parametrize('shape', NOT_OBJECTS)
@pytest.mark.parametrize('tool', PARENT_TOOLS)
async def test_json_that_is_not_an_object_gets_a_reply(clock: ManualClock, tool: str, shape: str) -> None:
    """Arguments that are JSON but not an object get a reply naming the fields the tool takes; the run goes on."""
    (reply,) = await run_parent(clock, raw_call(tool, NOT_OBJECTS[shape]))
    assert (
        reply
        == snapshot(
            {
                'task array': 'Invalid arguments for task: the arguments must be a JSON object with description and subagent_type (and optionally mode, region, timeout_seconds, fallback), not an array. Call it again with arguments that fit its schema.',
                'task number': 'Invalid arguments for task: the arguments must be a JSON object with description and subagent_type (and optionally mode, region, timeout_seconds, fallback), not a number. Call it again with arguments that fit its schema.',
                'task string': 'Invalid arguments for task: the arguments must be a JSON object with description and subagent_type (and optionally mode, region, timeout_seconds, fallback), not a string. Call it again with arguments that fit its schema.',
                'task null': 'Invalid arguments for task: the arguments must be a JSON object with description and subagent_type (and optionally mode, region, timeout_seconds, fallback), not null. Call it again with arguments that fit its schema.',
                'check_task array': 'Invalid arguments for check_task: the arguments must be a JSON object with task_id, not an array. Call it again with arguments that fit its schema.',
                'check_task number': 'Invalid arguments for check_task: the arguments must be a JSON object with task_id, not a number. Call it again with arguments that fit its schema.',
                'check_task string': 'Invalid arguments for check_task: the arguments must be a JSON object with task_id, not a string. Call it again with arguments that fit its schema.',
                'check_task null': 'Invalid arguments for check_task: the arguments must be a JSON object with task_id, not null. Call it again with arguments that fit its schema.',
                'wait_tasks array': 'Invalid arguments for wait_tasks: the arguments must be a JSON object (its fields task_ids, wait_for, timeout_seconds are all optional), not an array. Call it again with arguments that fit its schema.',
                'wait_tasks number': 'Invalid arguments for wait_tasks: the arguments must be a JSON object (its fields task_ids, wait_for, timeout_seconds are all optional), not a number. Call it again with arguments that fit its schema.',
                'wait_tasks string': 'Invalid arguments for wait_tasks: the arguments must be a JSON object (its fields task_ids, wait_for, timeout_seconds are all optional), not a string. Call it again with arguments that fit its schema.',
                'wait_tasks null': 'Invalid arguments for wait_tasks: the arguments must be a JSON object (its fields task_ids, wait_for, timeout_seconds are all optional), not null. Call it again with arguments that fit its schema.',
                'soft_cancel_task array': 'Invalid arguments for soft_cancel_task: the arguments must be a JSON object with task_id (and optionally reason), not an array. Call it again with arguments that fit its schema.',
                'soft_cancel_task number': 'Invalid arguments for soft_cancel_task: the arguments must be a JSON object with task_id (and optionally reason), not a number. Call it again with arguments that fit its schema.',
                'soft_cancel_task string': 'Invalid arguments for soft_cancel_task: the arguments must be a JSON object with task_id (and optionally reason), not a string. Call it again with arguments that fit its schema.',
                'soft_cancel_task null': 'Invalid arguments for soft_cancel_task: the arguments must be a JSON object with task_id (and optionally reason), not null. Call it again with arguments that fit its schema.',
                'hard_cancel_task array': 'Invalid arguments for hard_cancel_task: the arguments must be a JSON object with task_id (and optionally reason), not an array. Call it again with arguments that fit its schema.',
                'hard_cancel_task number': 'Invalid arguments for hard_cancel_task: the arguments must be a JSON object with task_id (and optionally reason), not a number. Call it again with arguments that fit its schema.',
                'hard_cancel_task string': 'Invalid arguments for hard_cancel_task: the arguments must be a JSON object with task_id (and optionally reason), not a string. Call it again with arguments that fit its schema.',
                'hard_cancel_task null': 'Invalid arguments for hard_cancel_task: the arguments must be a JSON object with task_id (and optionally reason), not null. Call it again with arguments that fit its schema.',
                'list_active_tasks array': 'Invalid arguments for list_active_tasks: the arguments must be an empty JSON object, {}, not an array. Call it again with arguments that fit its schema.',
                'list_active_tasks number': 'Invalid arguments for list_active_tasks: the arguments must be an empty JSON object, {}, not a number. Call it again with arguments that fit its schema.',
                'list_active_tasks string': 'Invalid arguments for list_active_tasks: the arguments must be an empty JSON object, {}, not a string. Call it again with arguments that fit its schema.',
                'list_active_tasks null': 'Invalid arguments for list_active_tasks: the arguments must be an empty JSON object, {}, not null. Call it again with arguments that fit its schema.',
                'answer_subagent array': 'Invalid arguments for answer_subagent: the arguments must be a JSON object with task_id and answer, not an array. Call it again with arguments that fit its schema.',
                'answer_subagent number': 'Invalid arguments for answer_subagent: the arguments must be a JSON object with task_id and answer, not a number. Call it again with arguments that fit its schema.',
                'answer_subagent string': 'Invalid arguments for answer_subagent: the arguments must be a JSON object with task_id and answer, not a string. Call it again with arguments that fit its schema.',
                'answer_subagent null': 'Invalid arguments for answer_subagent: the arguments must be a JSON object with task_id and answer, not null. Call it again with arguments that fit its schema.',
                'soft_cancel_region array': 'Invalid arguments for soft_cancel_region: the arguments must be a JSON object with region (and optionally reason), not an array. Call it again with arguments that fit its schema.',
                'soft_cancel_region number': 'Invalid arguments for soft_cancel_region: the arguments must be a JSON object with region (and optionally reason), not a number. Call it again with arguments that fit its schema.',
                'soft_cancel_region string': 'Invalid arguments for soft_cancel_region: the arguments must be a JSON object with region (and optionally reason), not a string. Call it again with arguments that fit its schema.',
                'soft_cancel_region null': 'Invalid arguments for soft_cancel_region: the arguments must be a JSON object with region (and optionally reason), not null. Call it again with arguments that fit its schema.',
                'hard_cancel_region array': 'Invalid arguments for hard_cancel_region: the arguments must be a JSON object with region (and optionally reason), not an array. Call it again with arguments that fit its schema.',
                'hard_cancel_region number': 'Invalid arguments for hard_cancel_region: the arguments must be a JSON object with region (and optionally reason), not a number. Call it again with arguments that fit its schema.',
                'hard_cancel_region string': 'Invalid arguments for hard_cancel_region: the arguments must be a JSON object with region (and optionally reason), not a string. Call it again with arguments that fit its schema.',
                'hard_cancel_region null': 'Invalid arguments for hard_cancel_region: the arguments must be a JSON object with region (and optionally reason), not null. Call it again with arguments that fit its schema.',
                'wait_region array': 'Invalid arguments for wait_region: the arguments must be a JSON object with region (and optionally timeout_seconds), not an array. Call it again with arguments that fit its schema.',
                'wait_region number': 'Invalid arguments for wait_region: the arguments must be a JSON object with region (and optionally timeout_seconds), not a number. Call it again with arguments that fit its schema.',
                'wait_region string': 'Invalid arguments for wait_region: the arguments must be a JSON object with region (and optionally timeout_seconds), not a string. Call it again with arguments that fit its schema.',
                'wait_region null': 'Invalid arguments for wait_region: the arguments must be a JSON object with region (and optionally timeout_seconds), not null. Call it again with arguments that fit its schema.',
            }
        )[f'{tool} {shape}']
    )


async def test_twenty_malformed_calls_in_a_row_then_good_ones(clock: ManualClock) -> None:
    """Twenty calls whose arguments are not JSON or not an object, mostly to one tool, use up no retry budget."""
    malformed = ['{"task_id": ', 'not json', '[1,2]', 'null', '{"task_id": "a"', '42', '"x"', 'true']
    bad = [raw_call('check_task' if index % 4 else 'task', malformed[index % 8]) for index in range(20)]
    good = [call('task', description='Research X', subagent_type='researcher', mode='async'), call('wait_tasks')]
    parent = Script([*bad, *good, text('the parent is still alive')])
    result = await Agent(parent.model, capabilities=[capability_with_researcher(clock, 'findings')]).run('go')
    assert result.output == 'the parent is still alive'
    replies = replies_of(result.all_messages())
    assert len(replies) == 22
    assert replies == snapshot(
        [
            'Invalid arguments for task: the arguments are not valid JSON (EOF while parsing a value at line 1 column 12); they must be a JSON object with description and subagent_type (and optionally mode, region, timeout_seconds, fallback). Call it again with arguments that fit its schema.',
            'Invalid arguments for check_task: the arguments are not valid JSON (expected ident at line 1 column 2); they must be a JSON object with task_id. Call it again with arguments that fit its schema.',
            'Invalid arguments for check_task: the arguments must be a JSON object with task_id, not an array. Call it again with arguments that fit its schema.',
            'Invalid arguments for check_task: the arguments must be a JSON object with task_id, not null. Call it again with arguments that fit its schema.',
            'Invalid arguments for task: the arguments are not valid JSON (EOF while parsing an object at line 1 column 15); they must be a JSON object with description and subagent_type (and optionally mode, region, timeout_seconds, fallback). Call it again with arguments that fit its schema.',
            'Invalid arguments for check_task: the arguments must be a JSON object with task_id, not a number. Call it again with arguments that fit its schema.',
            'Invalid arguments for check_task: the arguments must be a JSON object with task_id, not a string. Call it again with arguments that fit its schema.',
            'Invalid arguments for check_task: the arguments must be a JSON object with task_id, not true or false. Call it again with arguments that fit its schema.',
            'Invalid arguments for task: the arguments are not valid JSON (EOF while parsing a value at line 1 column 12); they must be a JSON object with description and subagent_type (and optionally mode, region, timeout_seconds, fallback). Call it again with arguments that fit its schema.',
            'Invalid arguments for check_task: the arguments are not valid JSON (expected ident at line 1 column 2); they must be a JSON object with task_id. Call it again with arguments that fit its schema.',
            'Invalid arguments for check_task: the arguments must be a JSON object with task_id, not an array. Call it again with arguments that fit its schema.',
            'Invalid arguments for check_task: the arguments must be a JSON object with task_id, not null. Call it again with arguments that fit its schema.',
            'Invalid arguments for task: the arguments are not valid JSON (EOF while parsing an object at line 1 column 15); they must be a JSON object with description and subagent_type (and optionally mode, region, timeout_seconds, fallback). Call it again with arguments that fit its schema.',
            'Invalid arguments for check_task: the arguments must be a JSON object with task_id, not a number. Call it again with arguments that fit its schema.',
            'Invalid arguments for check_task: the arguments must be a JSON object with task_id, not a string. Call it again with arguments that fit its schema.',
            'Invalid arguments for check_task: the arguments must be a JSON object with task_id, not true or false. Call it again with arguments that fit its schema.',
            'Invalid arguments for task: the arguments are not valid JSON (EOF while parsing a value at line 1 column 12); they must be a JSON object with description and subagent_type (and optionally mode, region, timeout_seconds, fallback). Call it again with arguments that fit its schema.',
            'Invalid arguments for check_task: the arguments are not valid JSON (expected ident at line 1 column 2); they must be a JSON object with task_id. Call it again with arguments that fit its schema.',
            'Invalid arguments for check_task: the arguments must be a JSON object with task_id, not an array. Call it again with arguments that fit its schema.',
            'Invalid arguments for check_task: the arguments must be a JSON object with task_id, not null. Call it again with arguments that fit its schema.',
            'Task started with ID: researcher-0001 (researcher); it runs in the background. Follow it with check_task or wait_tasks; stop it with soft_cancel_task or hard_cancel_task.',
            """\
The task has ended.

researcher-0001: COMPLETED in 0.0 ms. Output:
findings\
""",
        ]
    )


MALFORMED = {**NOT_OBJECTS, 'not json': '{"completed": ['}


@pytest.mark.parametrize('shape', MALFORMED)
@pytest.mark.parametrize('tool', ['checkpoint', 'ask_parent'])
async def test_a_subagent_tool_answers_malformed_arguments(
    backend: Backend, clock: ManualClock, tool: str, shape: str
) -> None:
    """`checkpoint` and `ask_parent` reply to arguments that are not a JSON object; the task goes on and completes."""
    sub = Script([raw_call(tool, MALFORMED[shape]), text('done')])
    async with backend.manager([researcher(sub)], clock=clock) as manager:
        info = await manager.run('researcher', 'Research X')
    assert info.outcome == Completed('done')
    assert tool_returns(sub.requests[-1]) == [
        snapshot(
            {
                'checkpoint array': 'Invalid arguments for checkpoint: the arguments must be a JSON object (its fields completed, in_progress, not_started, findings are all optional), not an array. Call it again with arguments that fit its schema.',
                'checkpoint number': 'Invalid arguments for checkpoint: the arguments must be a JSON object (its fields completed, in_progress, not_started, findings are all optional), not a number. Call it again with arguments that fit its schema.',
                'checkpoint string': 'Invalid arguments for checkpoint: the arguments must be a JSON object (its fields completed, in_progress, not_started, findings are all optional), not a string. Call it again with arguments that fit its schema.',
                'checkpoint null': 'Invalid arguments for checkpoint: the arguments must be a JSON object (its fields completed, in_progress, not_started, findings are all optional), not null. Call it again with arguments that fit its schema.',
                'checkpoint not json': 'Invalid arguments for checkpoint: the arguments are not valid JSON (EOF while parsing a list at line 1 column 15); they must be a JSON object (its fields completed, in_progress, not_started, findings are all optional). Call it again with arguments that fit its schema.',
                'ask_parent array': 'Invalid arguments for ask_parent: the arguments must be a JSON object with question, not an array. Call it again with arguments that fit its schema.',
                'ask_parent number': 'Invalid arguments for ask_parent: the arguments must be a JSON object with question, not a number. Call it again with arguments that fit its schema.',
                'ask_parent string': 'Invalid arguments for ask_parent: the arguments must be a JSON object with question, not a string. Call it again with arguments that fit its schema.',
                'ask_parent null': 'Invalid arguments for ask_parent: the arguments must be a JSON object with question, not null. Call it again with arguments that fit its schema.',
                'ask_parent not json': 'Invalid arguments for ask_parent: the arguments are not valid JSON (EOF while parsing a list at line 1 column 15); they must be a JSON object with question. Call it again with arguments that fit its schema.',
            }
        )[f'{tool} {shape}']
    ]


async def test_twenty_malformed_checkpoints_then_a_good_one(backend: Backend, clock: ManualClock) -> None:
    """A sub-agent that sends twenty malformed checkpoints is told each time and still completes with its output."""
    sub = Script(
        [
            *(raw_call('checkpoint', ['[]', 'not json', 'null', '{'][index % 4]) for index in range(20)),
            call('checkpoint', completed=['step 1']),
            text('done'),
        ]
    )
    async with backend.manager([researcher(sub)], clock=clock) as manager:
        info = await manager.run('researcher', 'Research X')
    assert info.outcome == Completed('done')
    assert len(info.checkpoints) == 1
    replies = tool_returns(sub.requests[-1])
    assert len(replies) == 21
    assert sorted(set(replies)) == snapshot(
        [
            'Checkpoint 1 recorded.',
            'Invalid arguments for checkpoint: the arguments are not valid JSON (EOF while parsing an object at line 1 column 1); they must be a JSON object (its fields completed, in_progress, not_started, findings are all optional). Call it again with arguments that fit its schema.',
            'Invalid arguments for checkpoint: the arguments are not valid JSON (expected ident at line 1 column 2); they must be a JSON object (its fields completed, in_progress, not_started, findings are all optional). Call it again with arguments that fit its schema.',
            'Invalid arguments for checkpoint: the arguments must be a JSON object (its fields completed, in_progress, not_started, findings are all optional), not an array. Call it again with arguments that fit its schema.',
            'Invalid arguments for checkpoint: the arguments must be a JSON object (its fields completed, in_progress, not_started, findings are all optional), not null. Call it again with arguments that fit its schema.',
        ]
    )


VALID_ARGS: dict[str, dict[str, object]] = {
    'task': {'description': 'Research X', 'subagent_type': 'researcher', 'mode': 'async'},
    'check_task': {'task_id': 'researcher-0000'},
    'wait_tasks': {'task_ids': ['researcher-0000']},
    'soft_cancel_task': {'task_id': 'researcher-0000'},
    'hard_cancel_task': {'task_id': 'researcher-0000'},
    'answer_subagent': {'task_id': 'researcher-0000', 'answer': 'yes'},
    'soft_cancel_region': {'region': 'research'},
    'hard_cancel_region': {'region': 'research'},
    'wait_region': {'region': 'research'},
    'checkpoint': {},
    'ask_parent': {'question': 'EU or US?'},
}
ARGUMENTS = {
    'task': ('description', 'subagent_type', 'mode', 'region', 'timeout_seconds', 'fallback'),
    'check_task': ('task_id',),
    'wait_tasks': ('task_ids', 'wait_for', 'timeout_seconds'),
    'soft_cancel_task': ('task_id', 'reason'),
    'hard_cancel_task': ('task_id', 'reason'),
    'answer_subagent': ('task_id', 'answer'),
    'soft_cancel_region': ('region', 'reason'),
    'hard_cancel_region': ('region', 'reason'),
    'wait_region': ('region', 'timeout_seconds'),
    'checkpoint': ('completed', 'in_progress', 'not_started', 'findings'),
    'ask_parent': ('question',),
}


def every_argument_of(tools: Sequence[str], wrong: object) -> list[Step]:
    """One call per argument of each tool, that argument `wrong` and the others valid."""
    return [call(tool, **{**VALID_ARGS[tool], argument: wrong}) for tool in tools for argument in ARGUMENTS[tool]]


async def test_a_wrong_type_for_every_argument_of_every_tool(clock: ManualClock) -> None:
    """An object where each argument of each parent tool belongs gets a reply naming that argument."""
    replies = await run_parent(
        clock, *every_argument_of([tool for tool in PARENT_TOOLS if tool in ARGUMENTS], {'a': [1]})
    )
    assert len(replies) == 22
    assert replies == snapshot(
        [
            'Invalid arguments for task: description: Input should be a valid string. Call it again with arguments that fit its schema.',
            'Invalid arguments for task: subagent_type: Input should be a valid string. Call it again with arguments that fit its schema.',
            "Invalid arguments for task: mode: Input should be 'sync' or 'async'. Call it again with arguments that fit its schema.",
            'Invalid arguments for task: region: Input should be a valid string. Call it again with arguments that fit its schema.',
            'Invalid arguments for task: timeout_seconds: Input should be a valid number. Call it again with arguments that fit its schema.',
            'Invalid arguments for task: fallback: Input should be a valid string. Call it again with arguments that fit its schema.',
            'Invalid arguments for check_task: task_id: Input should be a valid string. Call it again with arguments that fit its schema.',
            'Invalid arguments for wait_tasks: task_ids: Input should be a valid list. Call it again with arguments that fit its schema.',
            "Invalid arguments for wait_tasks: wait_for: Input should be 'all' or 'any'. Call it again with arguments that fit its schema.",
            'Invalid arguments for wait_tasks: timeout_seconds: Input should be a valid number. Call it again with arguments that fit its schema.',
            'Invalid arguments for soft_cancel_task: task_id: Input should be a valid string. Call it again with arguments that fit its schema.',
            'Invalid arguments for soft_cancel_task: reason: Input should be a valid string. Call it again with arguments that fit its schema.',
            'Invalid arguments for hard_cancel_task: task_id: Input should be a valid string. Call it again with arguments that fit its schema.',
            'Invalid arguments for hard_cancel_task: reason: Input should be a valid string. Call it again with arguments that fit its schema.',
            'Invalid arguments for answer_subagent: task_id: Input should be a valid string. Call it again with arguments that fit its schema.',
            'Invalid arguments for answer_subagent: answer: Input should be a valid string. Call it again with arguments that fit its schema.',
            'Invalid arguments for soft_cancel_region: region: Input should be a valid string. Call it again with arguments that fit its schema.',
            'Invalid arguments for soft_cancel_region: reason: Input should be a valid string. Call it again with arguments that fit its schema.',
            'Invalid arguments for hard_cancel_region: region: Input should be a valid string. Call it again with arguments that fit its schema.',
            'Invalid arguments for hard_cancel_region: reason: Input should be a valid string. Call it again with arguments that fit its schema.',
            'Invalid arguments for wait_region: region: Input should be a valid string. Call it again with arguments that fit its schema.',
            'Invalid arguments for wait_region: timeout_seconds: Input should be a valid number. Call it again with arguments that fit its schema.',
        ]
    )


async def test_a_wrong_type_for_every_argument_of_the_subagent_tools(backend: Backend, clock: ManualClock) -> None:
    """An object where each argument of `checkpoint` and `ask_parent` belongs gets a reply; the task completes."""
    sub = Script([*every_argument_of(['checkpoint', 'ask_parent'], {'a': [1]}), text('done')])
    async with backend.manager([researcher(sub)], clock=clock) as manager:
        info = await manager.run('researcher', 'Research X')
    assert info.outcome == Completed('done')
    assert tool_returns(sub.requests[-1]) == snapshot(
        [
            'Invalid arguments for checkpoint: completed: Input should be a valid list. Call it again with arguments that fit its schema.',
            'Invalid arguments for checkpoint: in_progress: Input should be a valid list. Call it again with arguments that fit its schema.',
            'Invalid arguments for checkpoint: not_started: Input should be a valid list. Call it again with arguments that fit its schema.',
            'Invalid arguments for checkpoint: findings: Input should be a valid list. Call it again with arguments that fit its schema.',
            'Invalid arguments for ask_parent: question: Input should be a valid string. Call it again with arguments that fit its schema.',
        ]
    )


async def test_the_plain_toolset_answers_malformed_arguments_too(clock: ManualClock) -> None:
    """`create_subagent_toolset` without the capability: malformed arguments get the same replies, the run goes on."""
    parent = Script([raw_call('check_task', '[1,2]'), raw_call('check_task', 'not json'), text('ok')])
    async with SubAgentManager([researcher(Script([]))], clock=clock) as manager:
        result = await Agent(parent.model, toolsets=[create_subagent_toolset(manager)]).run('go')
    assert result.output == 'ok'
    assert tool_returns(result.all_messages()) == snapshot(
        [
            'Invalid arguments for check_task: the arguments must be a JSON object with task_id, not an array. Call it again with arguments that fit its schema.',
            'Invalid arguments for check_task: the arguments are not valid JSON (expected ident at line 1 column 2); they must be a JSON object with task_id. Call it again with arguments that fit its schema.',
        ]
    )
