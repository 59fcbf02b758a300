"""Webhook subscriptions in Table Storage, and the per-subscription ledger that makes each
new message reach the caller once.

Table `subscriptions`:
- `PartitionKey = <subscription id>, RowKey = "sub"`: the subscription (connection, Graph
  subscription id, caller's URL and who created it, folder, filters, expiry, delta link)
  with `clientState` and `signingSecret` sealed together under the `Secrets` prefix
  (shared/crypto, bound to the row);
- `PartitionKey = "graph-<graph id>", RowKey = "index"`: Graph's id → ours (the notification
  endpoint looks subscriptions up by the id Graph sends; ours survives a re-creation);
- `PartitionKey = "conn-<connection id>", RowKey = <subscription id>`: a connection's list.

A poll-mode subscription (`Mode = "poll"`: another user's mailbox, read with delta on a
timer, docs/triggers.md "Shared mailboxes") has no Graph side: no Graph id, no `graph-` index
row, no expiry hint; its own state lives in shared/store/polls.py. `Mailbox` names the shared
mailbox it watches (absent: the connection's own). Rows written before modes existed have
neither column and are push subscriptions on the connection's mailbox.

Table `subscriptionexpiry`: `PartitionKey = "expiry", RowKey = <expiry yyyyMMddHHmmss>-<id>`,
`Id`: the renewal index (a hint per saved expiry; the subscription row is the truth). The
lifecycle timer reads the range before its cutoff, never the whole `subscriptions` table.
`PartitionKey = "meta", RowKey = "backfilled"` records the one-time backfill of older rows.

Table `notificationsseen` held the claims of an earlier version (a tombstone per message);
deleting a subscription still removes its rows. Events are now leased in the delivery ledger
(shared/store/deliveries.py).
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import UpdateMode

from shared.crypto.envelope import RowAddress, SealedTable
from shared.crypto.keyring import KeyRingCache
from shared.store.errors import storage_errors
from shared.store.table_set import TableSet

SUBSCRIPTIONS = "subscriptions"
SEEN = "notificationsseen"
ROW = "sub"
SEALED = SealedTable(SUBSCRIPTIONS, "Secrets")  # clientState and the signing secret
PREFIX = SEALED.prefix
EXPIRY = "subscriptionexpiry"
EXPIRY_PARTITION = "expiry"
META_PARTITION = "meta"
BACKFILLED = "backfilled"


@dataclass
class Subscription:
    id: str
    connection_id: str
    graph_id: str
    notification_url: str
    folder: str
    filters: dict[str, Any]
    include_message: bool
    expires: datetime
    created_at: datetime
    client_state: str = field(repr=False)
    signing_secret: str = field(repr=False)
    delta_link: str | None = field(default=None, repr=False)
    # Who created it: only they see the full notificationUrl (its query string may hold the
    # flow's own secret, e.g. Power Automate's `sig`). None on rows written before this.
    creator_tid: str | None = None
    creator_oid: str | None = None
    # Set when the receiver answered 410 Gone: no more events, Graph's side removed.
    disabled: bool = False
    # Which events the caller wants: "created" and/or "flagged".
    events: tuple[str, ...] = ("created",)
    # "push" (a Graph subscription notifies us) or "poll" (we read the folder with delta).
    mode: str = "push"
    # The watched mailbox when it is not the connection's own (UPN or id, as the caller named it).
    mailbox: str | None = None

    @property
    def polled(self) -> bool:
        return self.mode == "poll"

    def created_by(self, tenant_id: str, oid: str) -> bool:
        return self.creator_oid is not None and (self.creator_tid, self.creator_oid) == (
            tenant_id,
            oid,
        )


def _columns(s: Subscription) -> dict[str, Any]:
    columns: dict[str, Any] = {
        "PartitionKey": s.id,
        "RowKey": ROW,
        "ConnectionId": s.connection_id,
        "GraphId": s.graph_id,
        "NotificationUrl": s.notification_url,
        "Folder": s.folder,
        "Filters": json.dumps(s.filters, sort_keys=True),
        "IncludeMessage": s.include_message,
        "Expires": s.expires,
        "CreatedAt": s.created_at,
    }
    if s.delta_link:
        columns["DeltaLink"] = s.delta_link
    if s.disabled:
        columns["Disabled"] = True
    if s.events != ("created",):
        columns["Events"] = " ".join(s.events)
    if s.polled:
        columns["Mode"] = s.mode
    if s.mailbox:
        columns["Mailbox"] = s.mailbox
    if s.creator_oid:
        columns["CreatorTid"] = s.creator_tid
        columns["CreatorOid"] = s.creator_oid
    return columns


def _expiry_stamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y%m%d%H%M%S")


def _expiry_key(s: Subscription) -> str:
    return f"{_expiry_stamp(s.expires)}-{s.id}"


def _hint(subscription_id: str, expires: datetime) -> dict[str, Any]:
    return {
        "PartitionKey": EXPIRY_PARTITION,
        "RowKey": f"{_expiry_stamp(expires)}-{subscription_id}",
        "Id": subscription_id,
    }


class SubscriptionStore:
    def __init__(self, tables: TableSet, keys: KeyRingCache) -> None:
        self._tables = tables
        self._keys = keys
        self._backfilled = False

    def _address(self, subscription_id: str) -> RowAddress:
        return RowAddress(self._tables.name(SUBSCRIPTIONS), subscription_id, ROW)

    async def save(self, s: Subscription, *, previous_graph_id: str | None = None) -> None:
        table = await self._tables.table(SUBSCRIPTIONS)
        secrets = json.dumps({"c": s.client_state, "s": s.signing_secret}).encode()
        sealed = (await self._keys.envelope()).seal(secrets, self._address(s.id), PREFIX)
        with storage_errors("save subscription"):
            if s.graph_id:
                await table.upsert_entity(
                    {"PartitionKey": f"graph-{s.graph_id}", "RowKey": "index", "Id": s.id},
                    mode=UpdateMode.REPLACE,
                )
            await table.upsert_entity(
                {"PartitionKey": f"conn-{s.connection_id}", "RowKey": s.id},
                mode=UpdateMode.REPLACE,
            )
            await table.upsert_entity({**_columns(s), **sealed}, mode=UpdateMode.REPLACE)
            if s.polled:
                return  # nothing to renew: no expiry hint
            # The expiry hint after the row, so that a hint always finds its row; the hint of
            # an earlier expiry is dropped when it comes due (expiring_before).
            index = await self._tables.table(EXPIRY)
            await index.upsert_entity(_hint(s.id, s.expires), mode=UpdateMode.REPLACE)
            if previous_graph_id and previous_graph_id != s.graph_id:
                with contextlib.suppress(ResourceNotFoundError):
                    await table.delete_entity(f"graph-{previous_graph_id}", "index")

    async def get(self, subscription_id: str) -> Subscription | None:
        if not subscription_id or "/" in subscription_id or len(subscription_id) > 64:
            return None
        table = await self._tables.table(SUBSCRIPTIONS)
        with storage_errors("read subscription"):
            try:
                entity = await table.get_entity(subscription_id, ROW)
            except ResourceNotFoundError:
                return None
        return await self._open(entity)

    async def _open(self, entity: Any) -> Subscription:
        secrets = json.loads(
            await self._keys.open(entity, self._address(str(entity["PartitionKey"])), PREFIX)
        )
        return Subscription(
            id=str(entity["PartitionKey"]),
            connection_id=str(entity["ConnectionId"]),
            graph_id=str(entity["GraphId"]),
            notification_url=str(entity["NotificationUrl"]),
            folder=str(entity["Folder"]),
            filters=json.loads(str(entity.get("Filters") or "{}")),
            include_message=bool(entity.get("IncludeMessage")),
            expires=entity["Expires"],
            created_at=entity["CreatedAt"],
            client_state=str(secrets["c"]),
            signing_secret=str(secrets["s"]),
            delta_link=str(entity["DeltaLink"]) if entity.get("DeltaLink") else None,
            creator_tid=str(entity["CreatorTid"]) if entity.get("CreatorTid") else None,
            creator_oid=str(entity["CreatorOid"]) if entity.get("CreatorOid") else None,
            disabled=bool(entity.get("Disabled")),
            events=tuple(str(entity.get("Events") or "created").split()),
            mode=str(entity.get("Mode") or "push"),
            mailbox=str(entity["Mailbox"]) if entity.get("Mailbox") else None,
        )

    async def by_graph_id(self, graph_id: str) -> Subscription | None:
        if not graph_id or len(graph_id) > 128 or any(c in graph_id for c in "/\\#?'"):
            return None
        table = await self._tables.table(SUBSCRIPTIONS)
        with storage_errors("read subscription index"):
            try:
                index = await table.get_entity(f"graph-{graph_id}", "index")
            except ResourceNotFoundError:
                return None
        return await self.get(str(index["Id"]))

    async def for_connection(self, connection_id: str) -> list[Subscription]:
        table = await self._tables.table(SUBSCRIPTIONS)
        with storage_errors("list subscriptions"):
            ids = [
                str(row["RowKey"])
                async for row in table.query_entities(
                    "PartitionKey eq @pk", parameters={"pk": f"conn-{connection_id}"}
                )
            ]
        found = [await self.get(i) for i in ids]
        return sorted((s for s in found if s is not None), key=lambda s: s.created_at)

    async def expiring_before(self, when: datetime) -> list[Subscription]:
        """Subscriptions whose Graph side expires before `when` (the lifecycle timer), found
        through the expiry index: one range read of its partition, never a scan of the
        `subscriptions` table (after the one-time backfill of rows written before it)."""
        await self._backfill_once()
        index = await self._tables.table(EXPIRY)
        with storage_errors("list expiring subscriptions"):
            hints = [
                (str(row["RowKey"]), str(row["Id"]))
                async for row in index.query_entities(
                    "PartitionKey eq @pk and RowKey lt @before",
                    parameters={"pk": EXPIRY_PARTITION, "before": _expiry_stamp(when)},
                    select=["RowKey", "Id"],
                )
            ]
        found: list[Subscription] = []
        for key, subscription_id in hints:
            s = await self.get(subscription_id)
            if s is None or s.polled or _expiry_key(s) != key:
                # A hint is never the truth: the subscription went, or was renewed since
                # (its row names a later hint), or polls (the one-time backfill may have
                # indexed it). Stale hints are dropped when they come due.
                with storage_errors("drop expiry hint"), contextlib.suppress(ResourceNotFoundError):
                    await index.delete_entity(EXPIRY_PARTITION, key)
                continue
            found.append(s)
        return found

    async def all_ids(self) -> list[str]:
        """Every subscription's id, read from the expiry index's partition (one hint or
        more each; stale ones name rows that are gone or renewed), not from a table scan."""
        await self._backfill_once()
        index = await self._tables.table(EXPIRY)
        with storage_errors("list subscriptions"):
            ids = {
                str(row["Id"])
                async for row in index.query_entities(
                    "PartitionKey eq @pk", parameters={"pk": EXPIRY_PARTITION}, select=["Id"]
                )
            }
        return sorted(ids)

    async def _backfill_once(self) -> None:
        """Hints for subscriptions saved before the index existed: one scan, ever (a marker
        row records that it ran)."""
        if self._backfilled:
            return
        index = await self._tables.table(EXPIRY)
        with storage_errors("backfill expiry index"):
            try:
                await index.get_entity(META_PARTITION, BACKFILLED)
            except ResourceNotFoundError:
                table = await self._tables.table(SUBSCRIPTIONS)
                async for row in table.query_entities(
                    "RowKey eq @row", parameters={"row": ROW}, select=["PartitionKey", "Expires"]
                ):
                    await index.upsert_entity(
                        _hint(str(row["PartitionKey"]), row["Expires"]), mode=UpdateMode.REPLACE
                    )
                await index.upsert_entity(
                    {"PartitionKey": META_PARTITION, "RowKey": BACKFILLED},
                    mode=UpdateMode.REPLACE,
                )
        self._backfilled = True

    async def delete(self, s: Subscription) -> None:
        table = await self._tables.table(SUBSCRIPTIONS)
        seen = await self._tables.table(SEEN)
        index = await self._tables.table(EXPIRY)
        with storage_errors("delete subscription"):
            with contextlib.suppress(ResourceNotFoundError):
                await index.delete_entity(EXPIRY_PARTITION, _expiry_key(s))
            rows = [(s.id, ROW), (f"conn-{s.connection_id}", s.id)]
            if s.graph_id:
                rows.append((f"graph-{s.graph_id}", "index"))
            for pk, rk in rows:
                with contextlib.suppress(ResourceNotFoundError):
                    await table.delete_entity(pk, rk)
            async for row in seen.query_entities(
                "PartitionKey eq @pk", parameters={"pk": s.id}, select=["PartitionKey", "RowKey"]
            ):
                with contextlib.suppress(ResourceNotFoundError):
                    await seen.delete_entity(row["PartitionKey"], row["RowKey"])
