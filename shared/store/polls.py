"""Poll-mode subscriptions' own state in Table Storage: when each is next read, its folder's
delta link, and which messages it has already seen in the folder.

Table `subscriptionpolls`:
- `PartitionKey = "due", RowKey = <due yyyyMMddHHmmss>-<subscription id>`, `Id`: the due
  index (a hint per scheduled read; the state row's `NextPoll` is the truth). The poll timer
  reads the range before now, never a scan, as the expiry index serves renewals.
- `PartitionKey = <subscription id>, RowKey = "state"`: `DeltaLink`, `NextPoll` (the due
  hint's key) under an ETag, so that of two timer runs one claims a due read.
- `PartitionKey = <subscription id>, RowKey = "m-" + sha256(message id)`: the folder's
  membership as last read. A message whose row is absent appeared in the folder since
  (docs/triggers.md "Shared mailboxes").
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from shared.store.errors import storage_errors
from shared.store.table_set import TableSet

POLLS = "subscriptionpolls"
DUE_PARTITION = "due"
STATE = "state"
MEMBER = "m-"
_MEMBER_END = "m."  # the first RowKey after every "m-…" one
_BATCH = 100  # Table Storage's largest transaction (one partition)
# Up to this many ids are looked up one by one; more read the membership's range once.
_POINT_READS = 50


def _stamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y%m%d%H%M%S")


def due_key(subscription_id: str, when: datetime) -> str:
    return f"{_stamp(when)}-{subscription_id}"


def _member_key(message_id: str) -> str:
    return MEMBER + hashlib.sha256(message_id.encode()).hexdigest()


@dataclass(frozen=True)
class PollState:
    subscription_id: str
    delta_link: str | None
    next_poll: str  # the due hint's RowKey
    etag: str | None


class PollStore:
    def __init__(self, tables: TableSet) -> None:
        self._tables = tables

    async def start(self, subscription_id: str, delta_link: str | None, first: datetime) -> None:
        """A new poll subscription's state and its first due hint (the hint after the row, so
        that a hint always finds its row)."""
        table = await self._tables.table(POLLS)
        key = due_key(subscription_id, first)
        with storage_errors("save poll state"):
            await table.upsert_entity(
                _state_row(subscription_id, delta_link, key), mode=UpdateMode.REPLACE
            )
            await table.upsert_entity(
                {"PartitionKey": DUE_PARTITION, "RowKey": key, "Id": subscription_id},
                mode=UpdateMode.REPLACE,
            )

    async def state(self, subscription_id: str) -> PollState | None:
        table = await self._tables.table(POLLS)
        with storage_errors("read poll state"):
            try:
                entity = await table.get_entity(subscription_id, STATE)
            except ResourceNotFoundError:
                return None
        link = entity.get("DeltaLink")
        return PollState(
            subscription_id,
            str(link) if link else None,
            str(entity.get("NextPoll") or ""),
            str(entity.metadata["etag"]),
        )

    async def save_delta_link(self, subscription_id: str, delta_link: str) -> None:
        table = await self._tables.table(POLLS)
        with storage_errors("save poll state"):
            await table.update_entity(
                {"PartitionKey": subscription_id, "RowKey": STATE, "DeltaLink": delta_link},
                mode=UpdateMode.MERGE,
            )

    async def due(self, now: datetime) -> list[tuple[str, str]]:
        """The due hints (key, subscription id) before `now`: one range read."""
        table = await self._tables.table(POLLS)
        with storage_errors("list due polls"):
            return [
                (str(row["RowKey"]), str(row["Id"]))
                async for row in table.query_entities(
                    "PartitionKey eq @pk and RowKey lt @before",
                    parameters={"pk": DUE_PARTITION, "before": _stamp(now)},
                    select=["RowKey", "Id"],
                )
            ]

    async def all_ids(self) -> list[str]:
        """Every poll subscription's id, from the due index's partition."""
        table = await self._tables.table(POLLS)
        with storage_errors("list poll subscriptions"):
            ids = {
                str(row["Id"])
                async for row in table.query_entities(
                    "PartitionKey eq @pk", parameters={"pk": DUE_PARTITION}, select=["Id"]
                )
            }
        return sorted(ids)

    async def claim(self, hint: str, subscription_id: str, then: datetime) -> bool:
        """Take the due read named by `hint` and schedule the next one at `then`; False when
        the hint is stale (the subscription went, or another run took it: the hint is
        dropped). The next hint is written before the state moves to it, and the old one
        dropped last, so a crash at any point leaves the subscription in the index."""
        table = await self._tables.table(POLLS)
        state = await self.state(subscription_id)
        if state is None or state.next_poll != hint:
            await self._drop_hint(hint)
            return False
        key = due_key(subscription_id, then)
        with storage_errors("claim poll"):
            await table.upsert_entity(
                {"PartitionKey": DUE_PARTITION, "RowKey": key, "Id": subscription_id},
                mode=UpdateMode.REPLACE,
            )
            try:
                await table.update_entity(
                    {"PartitionKey": subscription_id, "RowKey": STATE, "NextPoll": key},
                    mode=UpdateMode.MERGE,
                    etag=state.etag,
                    match_condition=MatchConditions.IfNotModified,
                )
            except (ResourceModifiedError, ResourceNotFoundError):
                return False  # another run claimed it: its hint stays, ours goes when due
        if key != hint:
            await self._drop_hint(hint)
        return True

    async def _drop_hint(self, hint: str) -> None:
        table = await self._tables.table(POLLS)
        with storage_errors("drop poll hint"), contextlib.suppress(ResourceNotFoundError):
            await table.delete_entity(DUE_PARTITION, hint)

    async def known(self, subscription_id: str, message_ids: Iterable[str]) -> set[str]:
        """Which of `message_ids` are members of the folder as last read: point reads for a
        few, one range read of the membership for many (a whole folder after a lost sync)."""
        wanted = list(message_ids)
        if len(wanted) > _POINT_READS:
            keys = await self._member_keys(subscription_id)
            return {m for m in wanted if _member_key(m) in keys}
        table = await self._tables.table(POLLS)
        found: set[str] = set()
        with storage_errors("read poll membership"):
            for message_id in wanted:
                try:
                    await table.get_entity(
                        subscription_id, _member_key(message_id), select=["RowKey"]
                    )
                except ResourceNotFoundError:
                    continue
                found.add(message_id)
        return found

    async def add_members(self, subscription_id: str, message_ids: Iterable[str]) -> None:
        await self._write_members(subscription_id, message_ids, "upsert")

    async def remove_members(self, subscription_id: str, message_ids: Iterable[str]) -> None:
        await self._write_members(subscription_id, message_ids, "delete")

    async def _write_members(
        self, subscription_id: str, message_ids: Iterable[str], action: str
    ) -> None:
        table = await self._tables.table(POLLS)
        keys = sorted({_member_key(m) for m in message_ids})
        with storage_errors("write poll membership"):
            for i in range(0, len(keys), _BATCH):
                chunk = keys[i : i + _BATCH]
                if action == "upsert":
                    operations: list[Any] = [
                        ("upsert", {"PartitionKey": subscription_id, "RowKey": k}) for k in chunk
                    ]
                    await table.submit_transaction(operations)
                else:
                    # A transaction fails whole when one row is missing: delete one by one.
                    for k in chunk:
                        with contextlib.suppress(ResourceNotFoundError):
                            await table.delete_entity(subscription_id, k)

    async def _member_keys(self, subscription_id: str) -> set[str]:
        table = await self._tables.table(POLLS)
        with storage_errors("read poll membership"):
            return {
                str(row["RowKey"])
                async for row in table.query_entities(
                    "PartitionKey eq @pk and RowKey ge @lo and RowKey lt @hi",
                    parameters={"pk": subscription_id, "lo": MEMBER, "hi": _MEMBER_END},
                    select=["RowKey"],
                )
            }

    async def prune(self, subscription_id: str, present: Iterable[str]) -> None:
        """Drop the members that are not in `present` (a whole folder read after the sync
        state was lost: what left the folder meanwhile is no member any more)."""
        table = await self._tables.table(POLLS)
        keep = {_member_key(m) for m in present}
        gone = sorted((await self._member_keys(subscription_id)) - keep)
        with storage_errors("write poll membership"):
            for key in gone:
                with contextlib.suppress(ResourceNotFoundError):
                    await table.delete_entity(subscription_id, key)

    async def delete(self, subscription_id: str) -> None:
        """Everything of one poll subscription: its state, membership and due hints."""
        table = await self._tables.table(POLLS)
        with storage_errors("delete poll state"):
            state = await self.state(subscription_id)
            async for row in table.query_entities(
                "PartitionKey eq @pk", parameters={"pk": subscription_id}, select=["RowKey"]
            ):
                with contextlib.suppress(ResourceNotFoundError):
                    await table.delete_entity(subscription_id, str(row["RowKey"]))
            if state is not None and state.next_poll:
                with contextlib.suppress(ResourceNotFoundError):
                    await table.delete_entity(DUE_PARTITION, state.next_poll)


def _state_row(subscription_id: str, delta_link: str | None, next_poll: str) -> dict[str, Any]:
    row: dict[str, Any] = {"PartitionKey": subscription_id, "RowKey": STATE, "NextPoll": next_poll}
    if delta_link:
        row["DeltaLink"] = delta_link
    return row
