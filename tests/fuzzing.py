"""Seeded random schedules of real sub-agent runs, for `benchmarks/fuzz.py` (long) and `tests/test_fuzz.py` (short).

A schedule starts a few tasks and then does random things in a random order, often without letting
the tasks settle in between, so cancels, answers, outputs, errors, region cancels, grace expiry and the
owner's end race each other: the model steps land before, with or after the cancels. The same seed
always makes the same choices, so a failing seed can be replayed (`python benchmarks/fuzz.py --replay SEED`).
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

import anyio

from .helpers import WatchedClock
from .world import STEPS, PromiseBroken, World

_NAMED_REGIONS = ('a', 'a/b', 'c')
_REGIONS = (None, *_NAMED_REGIONS)
_DRAIN_ROUNDS = 20


@dataclass
class FuzzReport:
    """What a batch of schedules found."""

    schedules: int = 0
    tasks: int = 0
    flips: int = 0
    orphans: int = 0
    lost_results: int = 0
    other_violations: int = 0
    failing_seeds: list[tuple[int, str]] = field(default_factory=list[tuple[int, str]])
    outcomes: Counter[str] = field(default_factory=Counter[str])

    @property
    def violations(self) -> int:
        return self.flips + self.orphans + self.lost_results + self.other_violations


async def run_schedule(seed: int) -> World:
    """Run the schedule of `seed`; raise `PromiseBroken` if a promise did not hold."""
    rng = random.Random(seed)
    # Every third seed preempts; deciding it outside `rng` keeps the schedules of the other seeds as they were.
    world = World(WatchedClock(), max_running=rng.choice((None, None, 1, 2)), preempt=seed % 3 == 2)
    await world.open()
    task_ids: list[str] = []
    try:
        for _ in range(rng.randint(1, 4)):
            task_id = await world.start(
                obeys=rng.random() < 0.6, region=rng.choice(_REGIONS), through_tool=rng.random() < 0.3
            )
            task_ids.extend([task_id] if task_id else [])
        for _ in range(rng.randint(1, 12)):
            await _random_action(world, rng, task_ids)
            for _ in range(rng.randrange(4)):  # jitter: let the runs move a little, or not at all
                await anyio.lowlevel.checkpoint()
            if rng.random() < 0.4:
                await world.settle()
            world.check()
        ending = rng.choice(('drain', 'drain', 'owner_ends', 'owner_cancelled'))
        if ending == 'drain':
            await _drain(world, rng)
        await world.close(cancelled=ending == 'owner_cancelled')
        world.check_final()
    finally:
        await world.close()
    return world


async def _random_action(world: World, rng: random.Random, task_ids: list[str]) -> None:
    action = rng.choice(('step', 'step', 'step', 'soft', 'hard', 'answer', 'tool', 'region', 'grace', 'start', 'check'))
    task_id = rng.choice(task_ids) if task_ids else None
    match action:
        case 'step' if task_id:
            world.step(task_id, rng.choice(STEPS))
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
    raise PromiseBroken('tasks did not finish while draining')  # pragma: no cover


def classify(error: PromiseBroken) -> str:
    text = str(error)
    if 'flipped' in text:
        return 'flips'
    if 'orphan' in text:
        return 'orphans'
    if 'produced' in text:
        return 'lost_results'
    return 'other_violations'


async def fuzz(seeds: range) -> FuzzReport:
    """Run the schedules of `seeds` and count what broke."""
    report = FuzzReport()
    for seed in seeds:
        report.schedules += 1
        try:
            world = await run_schedule(seed)
        except PromiseBroken as broken:
            kind = classify(broken)
            setattr(report, kind, getattr(report, kind) + 1)
            report.failing_seeds.append((seed, str(broken)))
            continue
        report.tasks += len(world.puppets)
        report.outcomes.update(world.outcomes)
    return report
