"""The engine's intake shared between batches and single openings (api.limits.IntakeGate): a
batch's lines take the whole share only while nobody else opens a case, yield all but one of it
while someone does, and never starve."""

from __future__ import annotations

import asyncio

import pytest

from api.limits import BATCH_LINE, IntakeGate

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def lines_in_flight(gate: IntakeGate, lines: int, seconds: float) -> list[int]:
    """Run ``lines`` batch lines of ``seconds`` each through the gate; the most in flight at once,
    sampled every 10 ms, as a list of samples."""
    samples: list[int] = []

    async def line() -> None:
        BATCH_LINE.set(True)
        async with gate.line():
            async with gate.opening():  # a line's own opening is not a single one
                await asyncio.sleep(seconds)

    async def sample() -> None:
        while True:
            samples.append(gate.lines)
            await asyncio.sleep(0.01)

    sampler = asyncio.create_task(sample())
    await asyncio.gather(*(line() for _ in range(lines)))
    sampler.cancel()
    return samples


async def test_a_batch_takes_the_whole_share_while_nobody_else_opens():
    gate = IntakeGate(size=8, quiet=0.2)
    samples = await lines_in_flight(gate, 16, 0.1)
    assert max(samples) == 8
    assert gate.singles == 0


async def test_a_batch_yields_while_a_single_opening_is_under_way_and_takes_its_share_back():
    gate = IntakeGate(size=8, quiet=0.2)
    during: list[int] = []

    async def single() -> None:
        async with gate.opening():
            for _ in range(10):
                during.append(gate.lines)
                await asyncio.sleep(0.02)

    batch = asyncio.create_task(lines_in_flight(gate, 40, 0.05))
    await asyncio.sleep(0.06)  # the batch runs 8 at a time
    assert gate.lines == 8
    await single()
    # lines already in flight finish; no new one starts beyond the shared one while the single runs
    assert during[-1] <= 1, during
    samples = await batch
    assert max(samples) == 8 and min(s for s in samples[3:] if s) == 1  # back to 8 once quiet again


async def test_a_batch_never_starves_behind_single_openings():
    gate = IntakeGate(size=8, quiet=0.2)
    stop = asyncio.Event()

    async def singles() -> None:
        while not stop.is_set():
            async with gate.opening():
                await asyncio.sleep(0.01)

    others = asyncio.create_task(singles())
    await asyncio.wait_for(lines_in_flight(gate, 5, 0.01), 2)  # one at a time, but all of them
    stop.set()
    await others
