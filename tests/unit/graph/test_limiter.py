"""MailboxLimiter: at most N in flight per mailbox, mailboxes independent, no idle entries."""

from __future__ import annotations

import asyncio

import httpx

from shared.graph.client import GraphRequest
from shared.graph.limiter import MailboxLimiter
from tests.unit.graph.support import TOKEN, make_client


class Gate:
    """Holds requests until released, counting how many are inside at once per mailbox."""

    def __init__(self) -> None:
        self.inside: dict[str, int] = {}
        self.peak: dict[str, int] = {}
        self.release = asyncio.Event()

    async def hold(self, key: str) -> None:
        self.inside[key] = self.inside.get(key, 0) + 1
        self.peak[key] = max(self.peak.get(key, 0), self.inside[key])
        await self.release.wait()
        self.inside[key] -= 1


async def wait_for(predicate: object, steps: int = 200) -> None:
    for _ in range(steps):
        if callable(predicate) and predicate():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition not reached")


async def test_twenty_concurrent_on_one_mailbox_never_exceed_four() -> None:
    limiter, gate = MailboxLimiter(4), Gate()

    async def work() -> None:
        async with limiter.slot("alice"):
            await gate.hold("alice")

    tasks = [asyncio.create_task(work()) for _ in range(20)]
    await wait_for(lambda: gate.inside.get("alice") == 4)
    assert limiter.in_flight("alice") == 4
    gate.release.set()
    await asyncio.gather(*tasks)

    assert gate.peak["alice"] == 4


async def test_mailboxes_do_not_wait_for_each_other() -> None:
    limiter, gate = MailboxLimiter(4), Gate()

    async def work(key: str) -> None:
        async with limiter.slot(key):
            await gate.hold(key)

    tasks = [asyncio.create_task(work("alice")) for _ in range(8)]
    tasks += [asyncio.create_task(work("bob")) for _ in range(3)]
    await wait_for(lambda: gate.inside.get("alice") == 4 and gate.inside.get("bob") == 3)
    gate.release.set()
    await asyncio.gather(*tasks)

    assert gate.peak == {"alice": 4, "bob": 3}


async def test_idle_mailboxes_are_forgotten() -> None:
    limiter = MailboxLimiter(2)

    for n in range(1000):
        async with limiter.slot(f"mailbox-{n}"):
            pass

    assert limiter.tracked_mailboxes == 0


async def test_an_entry_is_kept_while_requests_wait_and_dropped_after_errors() -> None:
    limiter, gate = MailboxLimiter(1), Gate()

    async def failing() -> None:
        async with limiter.slot("alice"):
            await gate.hold("alice")
            raise RuntimeError("graph down")

    tasks = [asyncio.create_task(failing()) for _ in range(3)]
    await wait_for(lambda: gate.inside.get("alice") == 1)
    assert limiter.tracked_mailboxes == 1
    gate.release.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)

    assert all(isinstance(r, RuntimeError) for r in results)
    assert limiter.tracked_mailboxes == 0


async def test_the_client_holds_a_slot_per_request_and_not_while_sleeping() -> None:
    gate = Gate()

    async def handler(request: httpx.Request) -> httpx.Response:
        await gate.hold("alice")
        return httpx.Response(200, json={"value": []})

    client, _, _ = make_client([handler], limiter=MailboxLimiter(4))  # type: ignore[list-item]

    async def one() -> None:
        await client.send(
            GraphRequest("GET", "/me/messages"),
            token=TOKEN,
            mailbox_key="alice",
            correlation_id="c",
        )

    tasks = [asyncio.create_task(one()) for _ in range(20)]
    await wait_for(lambda: gate.inside.get("alice") == 4)
    gate.release.set()
    await asyncio.gather(*tasks)

    assert gate.peak["alice"] == 4
    assert client.limiter.tracked_mailboxes == 0
