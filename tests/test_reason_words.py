"""Why a task was cancelled, in words: one table per audience, each covering every kind of reason."""

from __future__ import annotations

from typing import get_args

import pytest
from inline_snapshot import snapshot

from subagents_cancel import CancelReason, SubAgentConfig, SubAgentManager
from subagents_cancel._text.reasons import FOR_PARENT_MODEL, FOR_PEOPLE, FOR_SUBAGENT_MODEL, in_words
from subagents_cancel.messages import CancelReasonKind
from subagents_cancel.regions import RegionClosed

from .helpers import Script, text

pytestmark = pytest.mark.anyio


def test_every_kind_has_words_for_every_audience() -> None:
    """The parent's model, the sub-agent's model and people each have words for every kind of reason."""
    kinds = set(get_args(CancelReasonKind))
    tables = {'parent model': FOR_PARENT_MODEL, 'sub-agent model': FOR_SUBAGENT_MODEL, 'people': FOR_PEOPLE}
    assert {audience: set(words) ^ kinds for audience, words in tables.items()} == {
        'parent model': set(),
        'sub-agent model': set(),
        'people': set(),
    }


def test_a_reason_in_words_carries_its_detail() -> None:
    """The words for a kind are followed by the reason's detail, when it has one."""
    assert [
        in_words(CancelReason(kind='deadline'), FOR_PARENT_MODEL),
        in_words(CancelReason(kind='sibling', detail='patents found'), FOR_SUBAGENT_MODEL),
    ] == snapshot(['deadline', 'another task already did the work: patents found'])


async def test_a_closed_region_is_named_with_the_words_for_people() -> None:
    """Starting a task in a cancelled region raises `RegionClosed`, whose message says why in people's words."""
    config = SubAgentConfig(name='researcher', description='Researches', model=Script([text('done')]).model)
    async with SubAgentManager([config]) as manager:
        await manager.hard_cancel_region('research', reason=CancelReason(kind='parent_cancelled'))
        with pytest.raises(RegionClosed) as raised:
            await manager.start('researcher', 'Research', region='research')
    assert str(raised.value) == snapshot(
        "Region 'research' was cancelled (parent cancelled); no new task can start in it."
    )
