"""Seeded random schedules of real sub-agent runs, for `benchmarks/fuzz.py` (long) and `tests/test_fuzz.py` (short).

A schedule starts a few tasks and then does random things in a random order, often without letting
the tasks settle in between, so cancels, answers, outputs, errors, region cancels, grace expiry and the
owner's end race each other: the model steps land before, with or after the cancels. The same seed
always makes the same choices, so a failing seed can be replayed (`python benchmarks/fuzz.py --replay SEED`).

The distribution of a schedule (all choices uniform unless a weight is given):

* the owner: `max_running` None (1/2), 1 (1/4) or 2 (1/4); every third seed (`seed % 3 == 2`) preempts
  the step in flight on a soft cancel;
* 1-4 tasks at the start, each obeying a cancel request at once with probability 0.6, in region
  None, `a`, `a/b` or `c`, started through the `task` tool with probability 0.3 (else the Python API);
* 1-12 actions, each one of: a model step (weight 3: checkpoint, question, final output or error),
  soft or hard cancel from the Python API, answer, a parent tool (`check_task`, `soft_cancel_task`,
  `hard_cancel_task`, `answer_subagent`), a soft or hard region cancel, grace expiry, one more task
  (at most 6), or `list_active_tasks`; after each, 0-3 turns of the event loop, and with probability
  0.4 everything settles;
* the end: drain (1/2: questions answered, models answer, time moves on, up to 20 rounds), the
  owner ends (1/4), or the owner's parent run is cancelled (1/4).

On top of that classic schedule, a second generator seeded from the seed (so the classic choices stay
those of the fuzz before these features: `--classic` runs them alone) turns on, independently:

* structured output (1/3 of schedules): the sub-agent has a pydantic `output_type`;
* malformed arguments (1/3): each model step of a task that is a checkpoint or a question becomes a
  tool call with malformed arguments (one of `MALFORMED_ARGS`) with probability 1/3, and before each
  action, with probability 0.15, the parent's model calls a random parent tool with 1-3 malformed
  arguments in a row;
* cancels at the commit point (1/2): before each action, with probability 0.3, a task's model gives
  its final answer and a soft or hard cancel (1/2 each; from the tool with probability 0.3) lands
  `lead` turns of the event loop after the answer left the model, `lead` drawn from `RACE_LEADS`
  (negative: the answer is held until the cancel was sent, so it arrives just after it).
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

import anyio

from .helpers import WatchedClock
from .promises import KINDS, Kind, PromiseBroken
from .world import MALFORMED_ARGS, STEPS, World

_NAMED_REGIONS = ('a', 'a/b', 'c')
_REGIONS = (None, *_NAMED_REGIONS)
_DRAIN_ROUNDS = 20
_PARENT_TOOLS = (
    'task',
    'check_task',
    'soft_cancel_task',
    'hard_cancel_task',
    'answer_subagent',
    'list_active_tasks',
    'wait_tasks',
)
RACE_LEADS = (-3, -1, 0, 0, 1, 1, 2, 3, 4, 6, 9, 14, 20)
"""Turns of the event loop between a final answer leaving the model and the cancel (negative: before it)."""


@dataclass(frozen=True, slots=True)
class Features:
    """What a schedule does beyond the classic fuzz."""

    structured: bool = False
    malformed: bool = False
    races: bool = False

    @classmethod
    def draw(cls, extra: random.Random) -> Features:
        return cls(structured=extra.random() < 1 / 3, malformed=extra.random() < 1 / 3, races=extra.random() < 0.5)

    @property
    def names(self) -> list[str]:
        return [name for name in ('structured', 'malformed', 'races') if getattr(self, name)]


def _features_rng(seed: int) -> random.Random:
    return random.Random(f'features of {seed}')


@dataclass
class FuzzReport:
    """What a batch of schedules found."""

    schedules: int = 0
    tasks: int = 0
    broken: Counter[Kind] = field(default_factory=Counter[Kind])
    failing_seeds: list[tuple[int, str]] = field(default_factory=list[tuple[int, str]])
    outcomes: Counter[str] = field(default_factory=Counter[str])
    features: Counter[str] = field(default_factory=Counter[str])
    """How many schedules used each feature."""

    @property
    def violations(self) -> int:
        return sum(self.broken.values())

    def add(self, other: FuzzReport) -> None:
        self.schedules += other.schedules
        self.tasks += other.tasks
        self.broken.update(other.broken)
        self.failing_seeds += other.failing_seeds
        self.outcomes.update(other.outcomes)
        self.features.update(other.features)


async def run_schedule(seed: int, *, classic: bool = False) -> World:
    """Run the schedule of `seed`; raise `PromiseBroken` if a promise did not hold."""
    rng = random.Random(seed)
    extra = _features_rng(seed)
    features = Features() if classic else Features.draw(extra)
    # Every third seed preempts; deciding it outside `rng` keeps the schedules of the other seeds as they were.
    world = World(
        WatchedClock(),
        max_running=rng.choice((None, None, 1, 2)),
        preempt=seed % 3 == 2,
        structured=features.structured,
    )
    await world.open()
    task_ids: list[str] = []
    try:
        for _ in range(rng.randint(1, 4)):
            task_id = await world.start(
                obeys=rng.random() < 0.6, region=rng.choice(_REGIONS), through_tool=rng.random() < 0.3
            )
            task_ids.extend([task_id] if task_id else [])
        for _ in range(rng.randint(1, 12)):
            await _extra_action(world, extra, features, task_ids)
            await _random_action(world, rng, task_ids, malformed_steps=extra if features.malformed else None)
            for _ in range(rng.randrange(4)):  # jitter: let the runs move a little, or not at all
                await anyio.lowlevel.checkpoint()
            if rng.random() < 0.4:
                await world.settle()
            world.check()
        ending = rng.choice(('drain', 'drain', 'owner_ends', 'owner_cancelled'))
        if ending == 'drain':
            await _drain(world, rng)  # finds a stall itself
        else:
            await world.check_no_stall()
        await world.close(cancelled=ending == 'owner_cancelled')
        world.check_final()
    finally:
        await world.close()
    return world


async def _random_action(
    world: World, rng: random.Random, task_ids: list[str], *, malformed_steps: random.Random | None
) -> None:
    action = rng.choice(('step', 'step', 'step', 'soft', 'hard', 'answer', 'tool', 'region', 'grace', 'start', 'check'))
    task_id = rng.choice(task_ids) if task_ids else None
    match action:
        case 'step' if task_id:
            step = rng.choice(STEPS)
            if malformed_steps is not None and step in ('checkpoint', 'ask') and malformed_steps.random() < 1 / 3:
                step = 'malformed'
            world.step(task_id, step)
        case 'soft' | 'hard' | 'answer' if task_id:
            method = {'soft': 'soft_cancel', 'hard': 'hard_cancel', 'answer': 'answer'}[action]
            await world.api(method, task_id)
        case 'tool' if task_id:
            tool = rng.choice(('check_task', 'soft_cancel_task', 'hard_cancel_task', 'answer_subagent'))
            args: dict[str, object] = {'task_id': task_id}
            if tool == 'answer_subagent':
                args['answer'] = 'X'
            await world.tool(tool, **args)
        case 'region':
            region = rng.choice(_NAMED_REGIONS)
            if rng.random() < 0.5:
                await world.manager.soft_cancel_region(region)
            else:
                await world.manager.hard_cancel_region(region)
        case 'grace':
            world.expire_grace()
        case 'start' if len(task_ids) < 6:
            started = await world.start(obeys=rng.random() < 0.6, region=rng.choice(_REGIONS), through_tool=False)
            task_ids.extend([started] if started else [])
        case _:
            await world.tool('list_active_tasks')


async def _extra_action(world: World, extra: random.Random, features: Features, task_ids: list[str]) -> None:
    """The actions of the features: malformed parent tool calls, and cancels aimed at the commit point."""
    if features.malformed and extra.random() < 0.15:
        tool = extra.choice(_PARENT_TOOLS)
        await world.malformed_tool(tool, [extra.choice(MALFORMED_ARGS) for _ in range(extra.randint(1, 3))])
    if features.races and task_ids and extra.random() < 0.3:
        task_id = extra.choice(task_ids)
        mode = extra.choice(('soft', 'hard'))
        await world.race(task_id, mode, lead=extra.choice(RACE_LEADS), through_tool=extra.random() < 0.3)


async def _drain(world: World, rng: random.Random) -> None:
    """Let every task finish: answer questions, let models answer, and move time past every grace window."""
    for _ in range(_DRAIN_ROUNDS):
        await world.settle()
        live = [task for task in world.puppets if not world.manager.get(task).status.is_terminal]
        if not live:
            return
        for task_id in live:
            await world.api('answer', task_id)
            world.step(task_id, rng.choice(('finish', 'finish', 'checkpoint', 'fail')))
        if rng.random() < 0.3:
            world.expire_grace()
    statuses = {task_id: world.manager.get(task_id).status.name for task_id in world.puppets}
    raise PromiseBroken('stalls', f'tasks did not finish while draining: {statuses}')  # pragma: no cover


async def fuzz(seeds: range, *, classic: bool = False) -> FuzzReport:
    """Run the schedules of `seeds` and count what broke."""
    report = FuzzReport()
    for seed in seeds:
        report.schedules += 1
        report.features.update([] if classic else Features.draw(_features_rng(seed)).names)
        try:
            world = await run_schedule(seed, classic=classic)
        except PromiseBroken as broken:
            report.broken[broken.kind] += 1
            report.failing_seeds.append((seed, f'{KINDS[broken.kind]}: {broken}'))
            continue
        report.tasks += len(world.puppets)
        report.outcomes.update(world.outcomes)
    return report
