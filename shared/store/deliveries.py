"""The delivery ledger: one row per event (subscription, message, event type), which is one
`webhook-id`, holding the event's state and a lease.

Table `deliveries`: `PartitionKey = <subscription id>, RowKey = <delivery id>` with
`MessageId`, `Type`, `Status` (`pending`, `delivered`, `failed`, `filtered`, `gone`),
`Attempts`, `FirstAt` (`RetryFrom` after a redelivery), `LastAttemptAt`, `LastStatus` (the
webhook's last HTTP status, 0 when it answered none), and while pending a lease:
`LeaseUntil` and `LeaseToken`.

A claim is a lease, not a tombstone: a worker that claims a pending event holds it until
`LeaseUntil`; if it dies before settling, the event becomes claimable again when the lease
ends. A retry scheduled through the queue holds the lease with its token until it runs, so a
duplicate notification meanwhile cannot send the event early. Claims are conditional writes
(ETag), so two workers never hold the same lease.

Table `messageflags`: `PartitionKey = <subscription id>, RowKey = sha256(message id)` with
`Flagged` and `Transitions`: the last flag state seen, so that `flagged` fires once per
not-flagged → flagged transition (event type `flagged.<n>`, its own `webhook-id`).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from shared.store.errors import storage_errors
from shared.store.table_set import TableSet

DELIVERIES = "deliveries"
FLAGS = "messageflags"
PENDING = "pending"
STATUSES = ("pending", "delivered", "failed", "filtered", "gone")
DELIVERY_ID = re.compile(r"msg_[a-z2-7]{26}")


def delivery_id(subscription_id: str, message_id: str, event_type: str) -> str:
    """The event's `webhook-id`: the same for every attempt of the same event, and short
    enough for a RowKey and a header (`msg_` + 26 base32 characters)."""
    digest = hashlib.sha256(f"{subscription_id}\n{message_id}\n{event_type}".encode()).digest()
    return "msg_" + base64.b32encode(digest[:16]).decode().rstrip("=").lower()


def _message_key(message_id: str) -> str:
    return hashlib.sha256(message_id.encode()).hexdigest()


@dataclass
class DeliveryRecord:
    subscription_id: str
    id: str
    message_id: str
    type: str
    status: str
    attempts: int
    first_at: datetime  # when the event was first seen (the event's occurredAt)
    last_attempt_at: datetime | None
    last_status: int | None
    lease_until: datetime | None
    lease_token: str | None
    retry_from: datetime | None = None  # a redelivery's new retry window starts here

    @property
    def window_start(self) -> datetime:
        return self.retry_from or self.first_at


@dataclass(frozen=True)
class FlagState:
    """The last flag state seen of a message for a subscription, and how many
    not-flagged → flagged transitions fired (each one is its own event)."""

    flagged: bool | None
    transitions: int
    etag: str | None


@dataclass(frozen=True)
class Claim:
    """The outcome of a claim: `record` is ours to deliver when `token` is set; otherwise
    `busy_until` says when another holder's lease ends (None: already settled)."""

    record: DeliveryRecord | None
    token: str | None = None
    busy_until: datetime | None = None


def _record(entity: Any) -> DeliveryRecord:
    status = entity.get("LastStatus")
    return DeliveryRecord(
        subscription_id=str(entity["PartitionKey"]),
        id=str(entity["RowKey"]),
        message_id=str(entity["MessageId"]),
        type=str(entity["Type"]),
        status=str(entity["Status"]),
        attempts=int(entity.get("Attempts") or 0),
        first_at=entity["FirstAt"],
        last_attempt_at=entity.get("LastAttemptAt"),
        last_status=int(status) if status else None,
        lease_until=entity.get("LeaseUntil"),
        lease_token=str(entity["LeaseToken"]) if entity.get("LeaseToken") else None,
        retry_from=entity.get("RetryFrom"),
    )


class DeliveryStore:
    def __init__(self, tables: TableSet) -> None:
        self._tables = tables

    async def claim(
        self,
        subscription_id: str,
        message_id: str,
        event_type: str,
        *,
        now: datetime,
        lease: timedelta,
        token: str | None = None,
    ) -> Claim:
        """Take the event's lease: a new event, a pending one whose lease has ended, or one
        whose lease `token` we were handed (a scheduled retry)."""
        table = await self._tables.table(DELIVERIES)
        key = delivery_id(subscription_id, message_id, event_type)
        new_token = secrets.token_urlsafe(12)
        with storage_errors("claim delivery"):
            for _ in range(3):
                try:
                    entity = await table.get_entity(subscription_id, key)
                except ResourceNotFoundError:
                    row = {
                        "PartitionKey": subscription_id,
                        "RowKey": key,
                        "MessageId": message_id,
                        "Type": event_type,
                        "Status": PENDING,
                        "Attempts": 0,
                        "FirstAt": now,
                        "LeaseUntil": now + lease,
                        "LeaseToken": new_token,
                    }
                    try:
                        await table.create_entity(row)
                    except ResourceExistsError:
                        continue  # another worker created it first: read theirs
                    return Claim(_record(row), new_token)
                record = _record(entity)
                if record.status != PENDING:
                    return Claim(record)
                mine = token is not None and token == record.lease_token
                if not mine and record.lease_until is not None and record.lease_until > now:
                    return Claim(record, busy_until=record.lease_until)
                try:
                    await table.update_entity(
                        {
                            "PartitionKey": subscription_id,
                            "RowKey": key,
                            "LeaseUntil": now + lease,
                            "LeaseToken": new_token,
                        },
                        mode=UpdateMode.MERGE,
                        etag=entity.metadata["etag"],
                        match_condition=MatchConditions.IfNotModified,
                    )
                except (ResourceModifiedError, ResourceNotFoundError):
                    continue  # someone else moved first: look again
                record.lease_until, record.lease_token = now + lease, new_token
                return Claim(record, new_token)
        return Claim(None, busy_until=now + lease)  # contended three times: look later

    async def _merge(self, record: DeliveryRecord, columns: dict[str, Any]) -> None:
        table = await self._tables.table(DELIVERIES)
        with storage_errors("update delivery"):
            await table.update_entity(
                {"PartitionKey": record.subscription_id, "RowKey": record.id, **columns},
                mode=UpdateMode.MERGE,
            )

    async def settle(
        self,
        record: DeliveryRecord,
        status: str,
        *,
        attempted_at: datetime | None = None,
        http_status: int | None = None,
    ) -> None:
        """The event's end: delivered, failed, filtered or gone; the lease is dropped."""
        columns: dict[str, Any] = {"Status": status, "LeaseToken": ""}
        if attempted_at is not None:
            record.attempts += 1
            columns |= {
                "Attempts": record.attempts,
                "LastAttemptAt": attempted_at,
                "LastStatus": http_status or 0,
            }
        record.status = status
        await self._merge(record, columns)

    async def reschedule(
        self,
        record: DeliveryRecord,
        *,
        attempted_at: datetime,
        http_status: int | None,
        retry_at: datetime,
        lease: timedelta,
    ) -> str:
        """A failed attempt worth retrying: the retry scheduled for `retry_at` holds the
        lease (its token is returned) until `retry_at + lease`."""
        token = secrets.token_urlsafe(12)
        record.attempts += 1
        await self._merge(
            record,
            {
                "Status": PENDING,
                "Attempts": record.attempts,
                "LastAttemptAt": attempted_at,
                "LastStatus": http_status or 0,
                "LeaseUntil": retry_at + lease,
                "LeaseToken": token,
            },
        )
        return token

    async def release(self, record: DeliveryRecord, now: datetime) -> None:
        """Give the lease up at once (the attempt could not start): the next try may claim."""
        await self._merge(record, {"LeaseUntil": now, "LeaseToken": ""})

    async def reopen(self, record: DeliveryRecord, now: datetime) -> None:
        """The event made pending again (redeliver), claimable at once, with a new retry
        window from now."""
        await self._merge(
            record, {"Status": PENDING, "RetryFrom": now, "LeaseUntil": now, "LeaseToken": ""}
        )
        record.status, record.retry_from = PENDING, now

    async def page(
        self, subscription_id: str, status: str | None, after: str | None, limit: int
    ) -> tuple[list[DeliveryRecord], str | None]:
        """One page of a subscription's events in id order (optionally of one status), and
        the id to continue after when there are more. One partition, never a table scan."""
        table = await self._tables.table(DELIVERIES)
        query = "PartitionKey eq @pk"
        parameters: dict[str, Any] = {"pk": subscription_id}
        if status is not None:
            query += " and Status eq @status"
            parameters["status"] = status
        if after is not None:
            query += " and RowKey gt @after"
            parameters["after"] = after
        found: list[DeliveryRecord] = []
        with storage_errors("list deliveries"):
            async for entity in table.query_entities(
                query, parameters=parameters, results_per_page=limit + 1
            ):
                found.append(_record(entity))
                if len(found) > limit:
                    break
        if len(found) > limit:
            return found[:limit], found[limit - 1].id
        return found, None

    async def get(self, subscription_id: str, delivery: str) -> DeliveryRecord | None:
        table = await self._tables.table(DELIVERIES)
        with storage_errors("read delivery"):
            try:
                return _record(await table.get_entity(subscription_id, delivery))
            except ResourceNotFoundError:
                return None

    async def abandoned(self, subscription_id: str, now: datetime) -> list[DeliveryRecord]:
        """Pending events whose lease ended with nobody holding it (a worker died and no job
        is left to retry): the reconciliation queues them again. One partition."""
        table = await self._tables.table(DELIVERIES)
        with storage_errors("list abandoned deliveries"):
            return [
                _record(entity)
                async for entity in table.query_entities(
                    "PartitionKey eq @pk and Status eq @pending and LeaseUntil lt @now",
                    parameters={"pk": subscription_id, "pending": PENDING, "now": now},
                )
            ]

    async def flag_state(self, subscription_id: str, message_id: str) -> FlagState:
        table = await self._tables.table(FLAGS)
        with storage_errors("read flag state"):
            try:
                entity = await table.get_entity(subscription_id, _message_key(message_id))
            except ResourceNotFoundError:
                return FlagState(None, 0, None)
        return FlagState(
            bool(entity.get("Flagged")),
            int(entity.get("Transitions") or 0),
            str(entity.metadata["etag"]),
        )

    async def set_flag_state(
        self,
        subscription_id: str,
        message_id: str,
        flagged: bool,
        transitions: int,
        seen: FlagState,
    ) -> bool:
        """Record the flag state if nobody changed it since `seen` (False otherwise): of two
        notifications of the same transition, one wins it."""
        table = await self._tables.table(FLAGS)
        row = {
            "PartitionKey": subscription_id,
            "RowKey": _message_key(message_id),
            "Flagged": flagged,
            "Transitions": transitions,
        }
        with storage_errors("write flag state"):
            try:
                if seen.etag is None:
                    await table.create_entity(row)
                else:
                    await table.update_entity(
                        row,
                        mode=UpdateMode.REPLACE,
                        etag=seen.etag,
                        match_condition=MatchConditions.IfNotModified,
                    )
            except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError):
                return False
        return True

    async def delete_for(self, subscription_id: str) -> None:
        with storage_errors("delete deliveries"):
            for name in (DELIVERIES, FLAGS):
                table = await self._tables.table(name)
                async for row in table.query_entities(
                    "PartitionKey eq @pk",
                    parameters={"pk": subscription_id},
                    select=["PartitionKey", "RowKey"],
                ):
                    with contextlib.suppress(ResourceNotFoundError):
                        await table.delete_entity(row["PartitionKey"], row["RowKey"])
