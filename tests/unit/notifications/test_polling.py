"""Poll mode's rules with in-memory stores: a message fires `created` when it is not a member
of the folder as last read (however it got there), never because it changed; a flag change
is judged against the recorded flag state; a lost sync state starts a fresh round without
events for members; the timer queues what is due."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from shared.audit import MemoryAuditSink
from shared.config import load_settings
from shared.errors import GraphError, GraphUnavailable
from shared.graph import GraphRequest
from shared.graph.paths import MailboxPath
from shared.notifications.polling import FolderPoller
from shared.store.deliveries import FlagState
from shared.store.polls import PollState, due_key
from shared.store.subscriptions import Subscription
from tests.support.app import sample_settings

NOW = datetime(2026, 12, 3, 1, 0, tzinfo=UTC)
SHARED = "support@contoso.test"
LINK = "https://graph.test/v1.0/users/support/mailFolders/inbox/messages/delta?$deltatoken="


def _message(message_id: str, *, flagged: bool = False) -> dict[str, Any]:
    return {"id": message_id, "flag": {"flagStatus": "flagged" if flagged else "notFlagged"}}


def _removed(message_id: str) -> dict[str, Any]:
    return {"id": message_id, "@removed": {"reason": "deleted"}}


class FakeMailbox:
    """Answers delta reads from a script: the first round (no token) with the folder's
    contents, a delta link with what changed since; a lost sync state raises."""

    def __init__(self, graph: FakeGraph, mailbox: str | None) -> None:
        self.path = MailboxPath.of(mailbox)
        self._graph = graph

    async def pages(self, first: GraphRequest, *, max_pages: int) -> AsyncIterator[dict[str, Any]]:
        self._graph.requests.append(first.path)
        if first.path.startswith(LINK):
            if self._graph.lost:
                raise GraphError("syncStateNotFound")
            if self._graph.unavailable:
                raise GraphUnavailable()
            items = self._graph.changes
        else:
            items = self._graph.folder
        self._graph.round += 1
        yield {"value": items[:1]}  # two pages, as Graph pages a round
        yield {"value": items[1:], "@odata.deltaLink": f"{LINK}{self._graph.round}"}


class FakeGraph:
    def __init__(self, folder: list[dict[str, Any]]) -> None:
        self.folder = folder
        self.changes: list[dict[str, Any]] = []
        self.lost = False
        self.unavailable = False
        self.round = 0
        self.requests: list[str] = []
        self.mailboxes: list[str | None] = []

    def system(
        self, connection: Any, *, correlation_id: str, mailbox: str | None = None
    ) -> FakeMailbox:
        self.mailboxes.append(mailbox)
        return FakeMailbox(self, mailbox)


class MemoryPolls:
    def __init__(self) -> None:
        self.states: dict[str, PollState] = {}
        self.hints: dict[str, str] = {}
        self.members: dict[str, set[str]] = {}
        self.claims = 0

    async def start(self, subscription_id: str, delta_link: str | None, first: datetime) -> None:
        key = due_key(subscription_id, first)
        self.states[subscription_id] = PollState(subscription_id, delta_link, key, "e0")
        self.hints[key] = subscription_id

    async def state(self, subscription_id: str) -> PollState | None:
        return self.states.get(subscription_id)

    async def save_delta_link(self, subscription_id: str, delta_link: str) -> None:
        s = self.states[subscription_id]
        self.states[subscription_id] = PollState(subscription_id, delta_link, s.next_poll, "e1")

    async def due(self, now: datetime) -> list[tuple[str, str]]:
        stamp = now.strftime("%Y%m%d%H%M%S")
        return sorted((k, i) for k, i in self.hints.items() if k < stamp)

    async def all_ids(self) -> list[str]:
        return sorted(set(self.hints.values()))

    async def claim(self, hint: str, subscription_id: str, then: datetime) -> bool:
        s = self.states.get(subscription_id)
        self.hints.pop(hint, None)
        if s is None or s.next_poll != hint:
            return False
        key = due_key(subscription_id, then)
        self.hints[key] = subscription_id
        self.states[subscription_id] = PollState(subscription_id, s.delta_link, key, "e2")
        self.claims += 1
        return True

    async def known(self, subscription_id: str, message_ids: list[str]) -> set[str]:
        return set(message_ids) & self.members.get(subscription_id, set())

    async def add_members(self, subscription_id: str, message_ids: list[str]) -> None:
        self.members.setdefault(subscription_id, set()).update(message_ids)

    async def remove_members(self, subscription_id: str, message_ids: list[str]) -> None:
        self.members.get(subscription_id, set()).difference_update(message_ids)

    async def prune(self, subscription_id: str, present: list[str]) -> None:
        self.members[subscription_id] = self.members.get(subscription_id, set()) & set(present)

    async def delete(self, subscription_id: str) -> None:
        self.states.pop(subscription_id, None)
        self.members.pop(subscription_id, None)
        self.hints = {k: i for k, i in self.hints.items() if i != subscription_id}


class MemoryFlags:
    def __init__(self) -> None:
        self.states: dict[tuple[str, str], tuple[bool, int]] = {}

    async def flag_state(self, subscription_id: str, message_id: str) -> FlagState:
        found = self.states.get((subscription_id, message_id))
        if found is None:
            return FlagState(None, 0, None)
        return FlagState(found[0], found[1], "etag")

    async def set_flag_state(
        self, subscription_id: str, message_id: str, flagged: bool, transitions: int, seen: Any
    ) -> bool:
        self.states[(subscription_id, message_id)] = (flagged, transitions)
        return True


class RecordedJobs:
    def __init__(self) -> None:
        self.changes: list[tuple[str, str]] = []  # (message id, event type)
        self.polls: list[str] = []

    async def change(
        self,
        subscription_id: str,
        message_id: str,
        cid: str,
        *,
        event_type: str = "created",
        lease: str | None = None,
        delay_seconds: int = 0,
    ) -> None:
        self.changes.append((message_id, event_type))

    async def poll(self, subscription_id: str, cid: str) -> None:
        self.polls.append(subscription_id)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


class World:
    def __init__(self, folder: list[dict[str, Any]], events: tuple[str, ...]) -> None:
        self.graph = FakeGraph(folder)
        self.polls = MemoryPolls()
        self.flags = MemoryFlags()
        self.jobs = RecordedJobs()
        self.audit = MemoryAuditSink()
        self.clock = Clock()
        settings = load_settings(
            {**sample_settings(), "CA_BUNDLE": "", "POLL_INTERVAL_SECONDS": "60"}
        )
        self.poller = FolderPoller(
            settings,
            mailboxes=self.graph,  # type: ignore[arg-type]
            store=self.polls,
            flags=self.flags,
            jobs=self.jobs,
            audit=self.audit,
            clock=self.clock,
        )
        self.subscription = Subscription(
            id="sub-1",
            connection_id="conn-1",
            graph_id="",
            notification_url="https://hook.example/flow",
            folder="inbox",
            filters={},
            include_message=False,
            expires=NOW,
            created_at=NOW,
            client_state="state",
            signing_secret="whsec_c2VjcmV0",
            events=events,
            mode="poll",
            mailbox=SHARED,
        )
        self.connection = SimpleNamespace(id="conn-1", owner_tid="t", mailbox="alice@x")

    async def subscribe(self) -> None:
        mb = self.graph.system(self.connection, correlation_id="c", mailbox=SHARED)
        link = await self.poller.baseline(mb, "sub-1", "inbox")  # type: ignore[arg-type]
        await self.poller.start("sub-1", link)

    async def poll(self, *changes: dict[str, Any]) -> int:
        self.graph.changes = list(changes)
        self.jobs.changes.clear()
        return await self.poller.poll(self.subscription, self.connection, "cid")  # type: ignore[arg-type]


@pytest.fixture
async def world() -> World:
    w = World([_message("old-1"), _message("old-2", flagged=True)], ("created", "flagged"))
    await w.subscribe()
    return w


async def test_the_baseline_fires_nothing_and_reads_the_shared_mailbox(world: World) -> None:
    assert world.jobs.changes == []
    assert world.polls.members["sub-1"] == {"old-1", "old-2"}
    assert world.graph.requests[0] == f"/users/{SHARED}/mailFolders/inbox/messages/delta"
    assert world.graph.mailboxes == [SHARED]


async def test_a_message_that_is_no_member_fires_created_whatever_its_age(world: World) -> None:
    # A new message and an old one moved in look alike to delta: neither is a member.
    await world.poll(_message("new"), _message("moved-in-old"))

    assert world.jobs.changes == [("new", "created"), ("moved-in-old", "created")]
    assert {"new", "moved-in-old"} <= world.polls.members["sub-1"]


async def test_a_changed_member_fires_no_created(world: World) -> None:
    queued = await world.poll(_message("old-1"))  # marked read, say

    assert (queued, world.jobs.changes) == (0, [])


async def test_a_message_fires_created_once_across_polls(world: World) -> None:
    await world.poll(_message("new"))
    await world.poll(_message("new"))  # changed since: a member now

    assert world.jobs.changes == []


async def test_a_message_that_left_and_came_back_appeared_again(world: World) -> None:
    await world.poll(_removed("old-1"))
    assert "old-1" not in world.polls.members["sub-1"]

    await world.poll(_message("old-1"))

    # Queued as created; the ledger's event id (subscription, message, type) keeps one.
    assert world.jobs.changes == [("old-1", "created")]


async def test_a_flag_on_an_unflagged_member_is_judged_and_a_flagged_member_is_not(
    world: World,
) -> None:
    await world.poll(_message("old-1", flagged=True), _message("old-2", flagged=True))

    assert world.jobs.changes == [("old-1", "updated")]  # old-2 was flagged at the baseline


async def test_unflagging_a_flagged_member_is_judged_so_the_next_flag_is_a_transition(
    world: World,
) -> None:
    await world.poll(_message("old-2"))

    assert world.jobs.changes == [("old-2", "updated")]


async def test_a_new_message_seen_flagged_is_judged_as_on_the_push_path(world: World) -> None:
    await world.poll(_message("new", flagged=True))

    assert world.jobs.changes == [("new", "created"), ("new", "updated")]


async def test_only_the_events_asked_for_are_queued() -> None:
    w = World([_message("old-1")], ("flagged",))
    await w.subscribe()

    await w.poll(_message("new"), _message("old-1", flagged=True))

    assert w.jobs.changes == [("old-1", "updated")]
    assert "new" in w.polls.members["sub-1"]  # a member all the same


async def test_a_lost_sync_state_starts_over_firing_only_for_non_members(world: World) -> None:
    world.graph.lost = True
    world.graph.folder = [_message("old-1"), _message("arrived-meanwhile")]  # old-2 left

    await world.poll()

    assert world.jobs.changes == [("arrived-meanwhile", "created")]
    assert world.polls.members["sub-1"] == {"old-1", "arrived-meanwhile"}
    [event] = world.audit.events
    assert (event.action, event.reason) == ("subscription.polled", "rebaselined")


async def test_any_other_graph_failure_propagates_and_keeps_the_delta_link(world: World) -> None:
    world.graph.unavailable = True
    before = world.polls.states["sub-1"].delta_link

    with pytest.raises(GraphUnavailable):
        await world.poll(_message("new"))

    assert world.polls.states["sub-1"].delta_link == before
    assert world.jobs.changes == []


async def test_the_next_read_continues_from_the_new_delta_link(world: World) -> None:
    await world.poll(_message("new"))

    assert world.polls.states["sub-1"].delta_link == f"{LINK}2"
    assert world.graph.requests[-1] == f"{LINK}1"


async def test_a_read_that_found_nothing_is_not_audited(world: World) -> None:
    await world.poll(_message("old-1"))

    assert world.audit.events == []


async def test_the_timer_queues_a_due_subscription_once_per_interval(world: World) -> None:
    assert await world.poller.queue_due() == 0  # not due before its interval

    world.clock.now = NOW + timedelta(seconds=60)
    first = await world.poller.queue_due()
    again = await world.poller.queue_due()  # a second run at once: nothing more is due
    world.clock.now = NOW + timedelta(seconds=125)
    later = await world.poller.queue_due()

    assert (first, again, later) == (1, 0, 1)
    assert world.jobs.polls == ["sub-1", "sub-1"]
    assert len(world.polls.hints) == 1  # the claimed hint gave way to the next


async def test_a_deleted_subscription_is_not_read(world: World) -> None:
    await world.poller.forget("sub-1")

    assert await world.poll(_message("new")) == 0
    assert world.polls.hints == {} and world.jobs.changes == []


def test_member_keys_name_no_message_id() -> None:
    # The membership rows' keys are hashes: a message id never lands in a RowKey.
    from shared.store.polls import _member_key

    assert _member_key("AAMk/id") == "m-" + hashlib.sha256(b"AAMk/id").hexdigest()
