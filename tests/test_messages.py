"""Every message survives JSON: one union told apart by `kind`, outputs carried as their type's name and data."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from dirty_equals import HasAttributes, IsInstance, IsPartialDict
from inline_snapshot import snapshot
from pydantic import BaseModel, ValidationError
from pydantic_ai import RunUsage
from pydantic_ai.messages import (
    BinaryContent,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)

from subagents_cancel import CancelReason, Completed, TaskId, TaskInfo, TaskStatus
from subagents_cancel.messages import (
    MESSAGE_ADAPTER,
    Answer,
    BusMessage,
    CancelAcknowledged,
    CancelAll,
    CancelAllReceived,
    CancelEscalated,
    CancelHeld,
    CancelLost,
    CancelReceived,
    CancelRequest,
    Checkpoint,
    CheckpointRecorded,
    DeadlineExpired,
    Question,
    QuestionWithdrawn,
    RunError,
    RunFinished,
    RunOutput,
    RunStopped,
    StatusChanged,
    SubtasksChanged,
    SubtasksEnded,
    TaskUnresponsive,
    ThreadsFinished,
    decode_message,
    encode_message,
    message_json_schema,
)
from subagents_cancel.output_codec import UNSERIALISABLE, EncodedOutput, decode_output
from subagents_cancel.results import CancelInfo
from subagents_cancel.states import TaskState

T = TaskId('researcher-3f9a07c2')


class Report(BaseModel):
    title: str
    pages: int


@dataclass(frozen=True)
class Finding:
    topic: str
    score: float


class Opaque:
    """A plain class: pydantic cannot serialise its instances."""

    def __repr__(self) -> str:
        return 'Opaque(42)'


def one_of_each_kind() -> list[BusMessage]:
    """One message of every kind, with no output object in it."""
    usage = RunUsage(requests=2, input_tokens=1000, output_tokens=20, details={'reasoning': 3})
    return [
        CancelRequest(
            task_id=T, sent_at=1.0, mode='soft', reason=CancelReason(kind='deadline', detail='late'), grace_seconds=5.0
        ),
        Answer(task_id=T, sent_at=2.0, text='EU', correlation_id='q-1'),
        CancelAcknowledged(task_id=T, sent_at=3.0, correlation_id='c-1'),
        CancelEscalated(task_id=T, sent_at=4.0, correlation_id='c-1'),
        CancelHeld(task_id=T, sent_at=4.5, correlation_id='c-1'),
        CancelReceived(task_id=T, sent_at=4.6, correlation_id='c-1'),
        CancelLost(task_id=T, sent_at=5.0, correlation_id='c-1', ending=RunOutput(None)),
        Question(task_id=T, sent_at=1.5, text='EU or US?'),
        QuestionWithdrawn(task_id=T, sent_at=1.7, correlation_id='q-1'),
        CheckpointRecorded(
            task_id=T,
            sent_at=2.5,
            checkpoint=Checkpoint(
                completed=('EU',), in_progress=('US',), not_started=('Asia',), findings=('x',), at=2.5
            ),
        ),
        DeadlineExpired(task_id=T, sent_at=9.0),
        RunFinished(
            task_id=T,
            sent_at=6.0,
            ending=RunStopped(error=RunError('TimeoutError', 'the run timed out')),
            usage=usage,
            lingering_threads=1,
            usage_after_cancel=RunUsage(requests=1),
        ),
        ThreadsFinished(task_id=T, sent_at=7.0),
        StatusChanged(
            task_id=T,
            sent_at=3.0,
            old=TaskState(TaskStatus.RUNNING),
            new=TaskState(TaskStatus.RUNNING, cancel_requested=True),
        ),
        TaskUnresponsive(task_id=T, sent_at=8.0),
        CancelAll(task_id=T, sent_at=3.0, mode='soft', reason=CancelReason(kind='parent_cancelled'), grace_seconds=2.5),
        SubtasksEnded(task_id=T, sent_at=3.5, correlation_id='c-2'),
        CancelAllReceived(task_id=T, sent_at=3.4, correlation_id='c-2'),
        SubtasksChanged(task_id=T, sent_at=3.0, owner_address='owner-1a2b3c4d', subtasks=()),
    ]


def schema_kinds() -> list[str]:
    """The kinds the JSON schema's discriminator maps to a member, sorted."""
    discriminator = message_json_schema()['discriminator']
    assert isinstance(discriminator, dict)
    mapping = discriminator['mapping']
    assert isinstance(mapping, dict)
    return sorted(mapping)


def test_every_message_kind_round_trips_through_json_unchanged() -> None:
    """Each kind of message decodes from its JSON equal to what was encoded, nested values included."""
    messages = one_of_each_kind()
    assert sorted({message.kind for message in messages}) == schema_kinds()
    assert [decode_message(encode_message(message)) for message in messages] == messages


def test_every_run_ending_round_trips_through_json() -> None:
    """A run's end, whichever it was, comes back as the same kind of ending."""
    endings = [
        RunError('RuntimeError', 'it broke'),
        RunStopped(),
        RunStopped(error=RunError('E', 'm')),
        RunOutput(None),
    ]
    finished = [RunFinished(task_id=T, sent_at=1.0, ending=ending, usage=RunUsage()) for ending in endings]
    assert [decode_message(encode_message(message)) for message in finished] == finished


def test_the_json_schema_lists_every_kind() -> None:
    """The schema is one union discriminated on `kind`, with a member for every message."""
    assert message_json_schema()['discriminator'] == IsPartialDict(propertyName='kind')
    assert schema_kinds() == snapshot(
        [
            'answer',
            'cancel_acknowledged',
            'cancel_all',
            'cancel_all_received',
            'cancel_escalated',
            'cancel_held',
            'cancel_lost',
            'cancel_received',
            'cancel_request',
            'checkpoint_recorded',
            'deadline_expired',
            'question',
            'question_withdrawn',
            'run_finished',
            'status_changed',
            'subtasks_changed',
            'subtasks_ended',
            'task_unresponsive',
            'threads_finished',
        ]
    )


@pytest.mark.parametrize(
    'output',
    [
        'the full answer',
        {'city': 'Lyon', 'tags': ['a', 'b']},
        Report(title='Batteries', pages=12),
        Finding('sulfide', 0.8),
    ],
    ids=['str', 'dict', 'pydantic-model', 'dataclass'],
)
def test_an_output_travels_as_its_type_name_and_data(output: object) -> None:
    """An output arrives as an `EncodedOutput`, turns back into its type, and is sent on in the form it arrived in."""
    message = RunFinished(task_id=T, sent_at=1.0, ending=RunOutput(output), usage=RunUsage())
    decoded = decode_message(encode_message(message))
    assert isinstance(decoded, RunFinished) and isinstance(decoded.ending, RunOutput)
    arrived = decoded.ending.output
    assert isinstance(arrived, EncodedOutput)
    assert arrived.type_name == f'{type(output).__module__}.{type(output).__qualname__}'
    assert decode_output(arrived, type(output)) == output
    assert encode_message(decoded) == encode_message(message)


def test_outputs_of_a_stopped_run_and_of_a_lost_cancel_travel_too() -> None:
    """A partial output and the output a cancel lost to come back as their sub-agent's output type."""
    stopped = RunFinished(task_id=T, sent_at=1.0, ending=RunStopped(Report(title='Half', pages=3)), usage=RunUsage())
    lost = CancelLost(task_id=T, sent_at=1.0, correlation_id='c-1', ending=RunOutput(Finding('oxide', 0.5)))
    decoded_stopped = decode_message(encode_message(stopped))
    decoded_lost = decode_message(encode_message(lost))
    assert isinstance(decoded_stopped, RunFinished) and isinstance(decoded_stopped.ending, RunStopped)
    assert isinstance(decoded_lost, CancelLost) and isinstance(decoded_lost.ending, RunOutput)
    assert decode_output(decoded_stopped.ending.output, Report) == Report(title='Half', pages=3)
    assert decode_output(decoded_lost.ending.output, Finding) == Finding('oxide', 0.5)


def test_an_output_that_cannot_be_serialised_travels_as_its_repr() -> None:
    """Its shortened repr travels under its type's name marked unserialisable, and decoding leaves it as it came."""
    message = RunFinished(task_id=T, sent_at=1.0, ending=RunOutput(Opaque()), usage=RunUsage())
    decoded = decode_message(encode_message(message))
    assert isinstance(decoded, RunFinished) and isinstance(decoded.ending, RunOutput)
    arrived = decoded.ending.output
    assert arrived == snapshot(
        EncodedOutput(
            type_name='tests.test_messages.Opaque (unserialisable; data is its shortened repr)', data='Opaque(42)'
        )
    )
    assert isinstance(arrived, EncodedOutput) and arrived.type_name.endswith(UNSERIALISABLE)
    assert decode_output(arrived, Opaque) is arrived


def test_in_process_outputs_are_never_serialised() -> None:
    """Checking a message built in-process keeps the very output object, and `decode_output` passes it through."""
    output = Opaque()
    message = RunFinished(task_id=T, sent_at=1.0, ending=RunOutput(output), usage=RunUsage())
    checked = MESSAGE_ADAPTER.validate_python(message)
    assert isinstance(checked, RunFinished) and isinstance(checked.ending, RunOutput)
    assert checked.ending.output is output
    assert decode_output(output, Opaque) is output


def test_an_output_that_does_not_fit_its_type_is_refused() -> None:
    """Data that is not an instance of the sub-agent's output type raises a validation error."""
    with pytest.raises(ValidationError, match=r'^1 validation error for int\n'):
        decode_output(EncodedOutput('builtins.str', 'not a number'), int)


@pytest.mark.parametrize(
    ('data', 'errors'),
    [
        (b'not json', ['json_invalid']),
        (b'{"kind": "unknown", "task_id": "t", "sent_at": 1}', ['union_tag_invalid']),
        (b'{"kind": "answer", "task_id": "t"}', ['missing', 'missing', 'missing']),
    ],
    ids=['not-json', 'unknown-kind', 'missing-fields'],
)
def test_bytes_that_are_not_a_message_are_refused(data: bytes, errors: list[str]) -> None:
    """Decoding anything but a message's JSON raises a validation error that says what is wrong."""
    with pytest.raises(
        ValidationError, match=r'(?s)^\d validation errors? for tagged-union\[CancelRequest,.*$'
    ) as raised:
        decode_message(data)
    assert [error['type'] for error in raised.value.errors()] == errors


def snapshot_of(task_id: str, *, subtasks: tuple[TaskInfo, ...] = (), cancel: CancelInfo | None = None) -> TaskInfo:
    """A running task's snapshot, as a nested owner reports it."""
    return TaskInfo(
        task_id=TaskId(task_id),
        subagent=task_id.split('-')[0],
        description='Dig',
        status=TaskStatus.RUNNING,
        created_at=1.0,
        started_at=1.0,
        ended_at=None,
        elapsed_seconds=2.0,
        checkpoints=(Checkpoint(completed=('EU',), at=1.5),),
        question=None,
        cancel=cancel,
        outcome=None,
        usage=None,
        parent_task_id=T,
        subtasks=subtasks,
    )


def test_nested_subtasks_travel_through_json_with_their_outputs() -> None:
    """A SubtasksChanged with subtasks of subtasks round-trips; an output in it comes back as its type and data."""
    lost = CancelInfo(
        mode='soft',
        reason=CancelReason(),
        requested_at=2.0,
        grace_seconds=5.0,
        request_id='c-1',
        lost=True,
        lost_to=Completed(Report(title='Batteries', pages=12)),
    )
    leaf = snapshot_of('leaf-00000002', cancel=lost)
    message = SubtasksChanged(
        task_id=T,
        sent_at=3.0,
        owner_address='owner-1a2b3c4d',
        subtasks=(snapshot_of('middle-00000001', subtasks=(leaf,)),),
    )

    decoded = decode_message(encode_message(message))

    assert isinstance(decoded, SubtasksChanged)
    (middle,) = decoded.subtasks
    (leaf_back,) = middle.subtasks
    assert leaf_back.cancel is not None
    assert leaf_back.cancel.lost_to == Completed(
        EncodedOutput(f'{__name__}.Report', {'title': 'Batteries', 'pages': 12})
    )
    assert isinstance(leaf_back.cancel.lost_to, Completed)
    assert decode_output(leaf_back.cancel.lost_to.output, Report) == Report(title='Batteries', pages=12)
    assert decoded == message.__class__(
        task_id=T,
        sent_at=3.0,
        owner_address='owner-1a2b3c4d',
        subtasks=(snapshot_of('middle-00000001', subtasks=(snapshot_of('leaf-00000002', cancel=leaf_back.cancel),)),),
        message_id=message.message_id,
    )


def test_a_finished_runs_conversation_round_trips_through_json() -> None:
    """`RunFinished.messages` (what a resumed task starts from) decodes equal, tool calls and a cut response included."""
    conversation = (
        ModelRequest(parts=[UserPromptPart('Research X')]),
        ModelResponse(parts=[ToolCallPart('checkpoint', {'completed': ['sources']}, tool_call_id='call-1')]),
        ModelRequest(parts=[ToolReturnPart('checkpoint', 'Checkpoint 1 recorded.', tool_call_id='call-1')]),
        ModelResponse(parts=[TextPart('Half an ans')], state='interrupted'),
    )
    finished = RunFinished(task_id=T, sent_at=6.0, ending=RunStopped(), usage=RunUsage(), messages=conversation)
    assert decode_message(encode_message(finished)) == finished


def test_binary_content_in_a_conversation_travels_as_base64() -> None:
    """Bytes a sub-agent saw (an image) survive JSON, as pydantic-ai's own message adapter carries them."""
    image = BinaryContent(b'\x00\xff\x10', media_type='image/png')
    finished = RunFinished(
        task_id=T,
        sent_at=6.0,
        ending=RunStopped(),
        usage=RunUsage(),
        messages=(ModelRequest(parts=[UserPromptPart(['Describe it', image])]),),
    )
    data = encode_message(finished)
    decoded = decode_message(data)
    assert b'"AP8Q"' in data
    assert isinstance(decoded, RunFinished)
    (request,) = decoded.messages
    assert isinstance(request, ModelRequest) and isinstance(request.parts[0], UserPromptPart)
    assert request.parts[0].content == ['Describe it', IsInstance(BinaryContent) & HasAttributes(data=b'\x00\xff\x10')]
