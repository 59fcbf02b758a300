"""Poll mode: triggers on a folder Graph will not push to us (a delegated connection watching
another user's mailbox), read with delta every POLL_INTERVAL_SECONDS and turned into the
same queue jobs Graph's notifications become, so the same ledger and delivery worker send
the same events with the same guarantees (docs/triggers.md "Shared mailboxes").

The rule for `created`: the subscription keeps the folder's membership (message ids as last
read, seeded at creation without events). A message in a delta round that is not a member
appeared in the folder since, by whatever path (new mail, a rule, a move, a copy); one that
is a member only changed (read, flagged, categorised) and is never `created`. `@removed`
entries leave the membership. For `flagged`, the flag state the push path keeps
(`messageflags`) is seeded with the messages flagged at creation, so a not-flagged →
flagged transition after it is judged as the push path judges it.

The timer queues one `poll` job per due subscription through a due index (shared/store/
polls.py); the work happens in the queue worker, so it scales out like deliveries.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from shared.audit import AuditSink, Outcome
from shared.config import Settings
from shared.connections.mailbox import ConnectedMailbox, Mailboxes
from shared.connections.models import Connection
from shared.errors import GraphFailure
from shared.graph import GraphRequest
from shared.notifications.auditing import connection_event
from shared.notifications.delivery import FlagLedger
from shared.store.deliveries import FlagState
from shared.store.polls import PollState
from shared.store.subscriptions import Subscription

logger = logging.getLogger(__name__)

_DELTA_PAGES = 1000  # one round reads at most this many pages
_PAGE = ("odata.maxpagesize=1000",)
# Graph's answers for a delta token it no longer holds: start a new round from scratch.
_SYNC_LOST = frozenset({"syncstatenotfound", "syncstateinvalid", "resyncrequired", "http410"})
# A hint due within this much of a timer run counts as due: a timer firing every interval
# keeps the interval instead of slipping a whole timer period on clock jitter.
_DUE_SLACK = timedelta(seconds=2)


class PollLedger(Protocol):
    """A poll subscription's due index, delta link and folder membership (PollStore)."""

    async def start(
        self, subscription_id: str, delta_link: str | None, first: datetime
    ) -> None: ...

    async def state(self, subscription_id: str) -> PollState | None: ...

    async def save_delta_link(self, subscription_id: str, delta_link: str) -> None: ...

    async def due(self, now: datetime) -> list[tuple[str, str]]: ...

    async def all_ids(self) -> list[str]: ...

    async def claim(self, hint: str, subscription_id: str, then: datetime) -> bool: ...

    async def known(self, subscription_id: str, message_ids: list[str]) -> set[str]: ...

    async def add_members(self, subscription_id: str, message_ids: list[str]) -> None: ...

    async def remove_members(self, subscription_id: str, message_ids: list[str]) -> None: ...

    async def prune(self, subscription_id: str, present: list[str]) -> None: ...

    async def delete(self, subscription_id: str) -> None: ...


class PollJobs(Protocol):
    """The notification queue (JobQueue)."""

    async def change(
        self,
        subscription_id: str,
        message_id: str,
        cid: str,
        *,
        event_type: str = "created",
        lease: str | None = None,
        delay_seconds: int = 0,
    ) -> None: ...

    async def poll(self, subscription_id: str, cid: str) -> None: ...


@dataclass
class DeltaRound:
    """What one delta round of the folder said: the messages present or changed (id →
    flagged), the ids removed, and the link for the next round (None: not finished)."""

    present: dict[str, bool] = field(default_factory=dict)
    removed: set[str] = field(default_factory=set)
    delta_link: str | None = None


def sync_lost(error: GraphFailure) -> bool:
    return (error.graph_code or "").lower() in _SYNC_LOST


class FolderPoller:
    def __init__(
        self,
        settings: Settings,
        *,
        mailboxes: Mailboxes,
        store: PollLedger,
        flags: FlagLedger,
        jobs: PollJobs,
        audit: AuditSink,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._settings = settings
        self._mailboxes = mailboxes
        self._store = store
        self._flags = flags
        self._jobs = jobs
        self._audit = audit
        self._clock = clock

    @property
    def _interval(self) -> timedelta:
        return timedelta(seconds=self._settings.POLL_INTERVAL_SECONDS)

    # -- a subscription's life ------------------------------------------------------------

    async def baseline(self, mb: ConnectedMailbox, subscription_id: str, folder: str) -> str | None:
        """Read the whole folder once (the caller's authorization shows here: a mailbox the
        connection may not read answers as a mail read would) and seed the membership and
        the flagged messages' state. Fires nothing. Returns the delta link."""
        first = self._first_round(mb, folder)
        found = await self._read(mb, first)
        await self._seed(subscription_id, found)
        return found.delta_link

    async def start(self, subscription_id: str, delta_link: str | None) -> None:
        await self._store.start(subscription_id, delta_link, self._clock() + self._interval)

    async def forget(self, subscription_id: str) -> None:
        await self._store.delete(subscription_id)

    async def ids(self) -> list[str]:
        return await self._store.all_ids()

    # -- the timer ---------------------------------------------------------------------

    async def queue_due(self) -> int:
        """The poll timer: claim each due subscription's read (and schedule its next), and
        queue it as a `poll` job. Returns how many were queued."""
        now = self._clock()
        cid = uuid.uuid4().hex
        queued = 0
        for hint, subscription_id in await self._store.due(now + _DUE_SLACK):
            if await self._store.claim(hint, subscription_id, now + self._interval):
                await self._jobs.poll(subscription_id, cid)
                queued += 1
        return queued

    # -- the queue job -----------------------------------------------------------------

    async def poll(self, s: Subscription, connection: Connection, cid: str) -> int:
        """One read of the folder's changes since the last: queue a `created` job for each
        message that is not a member yet, an `updated` job for each flag change worth
        judging; then record the membership and the new delta link (after the jobs, so a
        crash re-reads and re-queues, and the ledger keeps each event once). Returns how
        many jobs were queued."""
        state = await self._store.state(s.id)
        if state is None:
            return 0  # deleted meanwhile
        mb = self._mailboxes.system(connection, correlation_id=cid, mailbox=s.mailbox)
        found: DeltaRound | None = None
        if state.delta_link:
            try:
                found = await self._read(mb, GraphRequest("GET", state.delta_link, prefer=_PAGE))
            except GraphFailure as error:
                if not sync_lost(error):
                    raise
        rebaselined = found is None
        if found is None:
            # The sync state is gone (Graph's 410), or no round ever finished: a fresh round.
            # Members are not events; what is not a member did appear since and still fires.
            found = await self._read(mb, self._first_round(mb, s.folder))
        queued = await self._queue(s, found, cid)
        if rebaselined:
            await self._store.prune(s.id, list(found.present))
        if found.delta_link:
            await self._store.save_delta_link(s.id, found.delta_link)
        if queued or rebaselined:  # a read that found nothing is not worth an audit event
            self._audit.emit(
                connection_event(
                    "subscription.polled",
                    Outcome.SUCCESS,
                    cid,
                    connection,
                    reason="rebaselined" if rebaselined else None,
                    counts={"items": len(found.present), "queued": queued},
                )
            )
        return queued

    async def _queue(self, s: Subscription, found: DeltaRound, cid: str) -> int:
        ids = list(found.present)
        known = await self._store.known(s.id, ids) if ids else set()
        new = [m for m in ids if m not in known]
        queued = 0
        for message_id in new:
            if "created" in s.events:
                await self._jobs.change(s.id, message_id, cid)
                queued += 1
        if "flagged" in s.events:
            for message_id, flagged in found.present.items():
                if await self._flag_changed(s, message_id, flagged, message_id in known):
                    # Judged again by the worker on a fresh read, as Graph's `updated` is.
                    await self._jobs.change(s.id, message_id, cid, event_type="updated")
                    queued += 1
        if new:
            await self._store.add_members(s.id, new)
        if found.removed:
            await self._store.remove_members(s.id, sorted(found.removed))
        return queued

    async def _flag_changed(
        self, s: Subscription, message_id: str, flagged: bool, known: bool
    ) -> bool:
        """Whether the flag state in the round differs from the one last recorded. A new
        message (not a member) seen flagged counts, as on the push path: it may have been
        flagged after it arrived, and an unknown state is judged flagged-worthy once."""
        if not known:
            return flagged
        seen = await self._flags.flag_state(s.id, message_id)
        return bool(seen.flagged) != flagged

    async def _seed(self, subscription_id: str, found: DeltaRound) -> None:
        await self._store.add_members(subscription_id, list(found.present))
        for message_id, flagged in found.present.items():
            if flagged:  # absent means not flagged: only flagged messages need a row
                seen = FlagState(None, 0, None)
                await self._flags.set_flag_state(subscription_id, message_id, True, 0, seen)

    # -- Graph -------------------------------------------------------------------------

    @staticmethod
    def _first_round(mb: ConnectedMailbox, folder: str) -> GraphRequest:
        return GraphRequest(
            "GET",
            f"{mb.path.folder_messages(folder)}/delta",
            params={"$select": "id,flag"},
            prefer=_PAGE,
        )

    @staticmethod
    async def _read(mb: ConnectedMailbox, first: GraphRequest) -> DeltaRound:
        found = DeltaRound()
        async for body in mb.pages(first, max_pages=_DELTA_PAGES):
            for item in body.get("value") or []:
                if not isinstance(item, dict) or not isinstance(item.get("id"), str):
                    continue
                if "@removed" in item:
                    found.removed.add(item["id"])
                    found.present.pop(item["id"], None)
                else:  # the last word wins: removed and back within a round is present
                    found.removed.discard(item["id"])
                    found.present[item["id"]] = _flagged(item)
            if body.get("@odata.deltaLink"):
                found.delta_link = str(body["@odata.deltaLink"])
        return found


def _flagged(item: dict[str, Any]) -> bool:
    return (item.get("flag") or {}).get("flagStatus") == "flagged"
