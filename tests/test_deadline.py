"""edge.runtime.deadline: one timer for the fixed deadline of many requests, as asyncio.timeout behaves."""

from __future__ import annotations

import asyncio

import pytest

from edge.runtime.deadline import Deadline


def run(coroutine):
    return asyncio.run(coroutine)


def test_work_within_the_deadline_is_left_alone() -> None:
    async def main() -> list[int]:
        deadline = Deadline(0.5)

        async def request(n: int) -> int:
            async with deadline():
                await asyncio.sleep(0.01)
                return n

        return await asyncio.gather(*(request(n) for n in range(50)))

    assert run(main()) == list(range(50))


def test_work_past_the_deadline_raises_timeout_and_others_go_on() -> None:
    async def main() -> list[str]:
        deadline = Deadline(0.05, resolution=0.01)

        async def request(seconds: float) -> str:
            try:
                async with deadline():
                    await asyncio.sleep(seconds)
                return "done"
            except TimeoutError:
                return "timed out"

        return await asyncio.gather(request(0.0), request(1.0), request(0.01), request(5.0))

    assert run(main()) == ["done", "timed out", "done", "timed out"]


def test_a_later_request_does_not_shorten_an_earlier_one() -> None:
    async def main() -> tuple[str, str]:
        deadline = Deadline(0.2, resolution=0.01)
        order: list[str] = []

        async def request(name: str, seconds: float) -> str:
            try:
                async with deadline():
                    await asyncio.sleep(seconds)
                order.append(name)
                return "done"
            except TimeoutError:
                order.append(name)
                return "timed out"

        first = asyncio.create_task(request("first", 0.1))
        await asyncio.sleep(0.05)
        second = await request("second", 1.0)
        return await first, second

    assert run(main()) == ("done", "timed out")


def test_a_cancellation_from_outside_stays_a_cancellation() -> None:
    async def main() -> None:
        deadline = Deadline(5.0)

        async def request() -> None:
            async with deadline():
                await asyncio.sleep(10)

        task = asyncio.create_task(request())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(main())


def test_the_deadline_is_kept_to_within_its_resolution() -> None:
    async def main() -> float:
        deadline = Deadline(0.1, resolution=0.01)
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(TimeoutError):
            async with deadline():
                await asyncio.sleep(10)
        return loop.time() - started

    assert 0.1 <= run(main()) < 1.0


def test_one_deadline_serves_a_second_event_loop() -> None:
    deadline = Deadline(0.05, resolution=0.01)

    async def late() -> None:
        async with deadline():
            await asyncio.sleep(5)

    async def abandoned() -> None:
        # a request still waiting when its loop is torn down
        asyncio.get_running_loop().create_task(late())
        await asyncio.sleep(0)

    run(abandoned())
    with pytest.raises(TimeoutError):
        run(late())
