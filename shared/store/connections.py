"""Connections in Table Storage: metadata columns plus the connection's sealed MSAL cache.

Two tables: `connections` (one partition per connection, point reads by id) and `owners`
(PartitionKey = owner tenant:oid, RowKey = mailbox → connection id), which answers "my
connections" without a scan and makes a reconnect of the same owner + mailbox find the
existing connection instead of creating a duplicate.

With a due index (shared/store/due.py), every write of a token cache also (re)schedules the
connection for the lifecycle timer: the new entry is written first (an extra entry is
harmless: the worker skips stale ones), the connection row records it in `DueBucket`, and
once the row write has won its ETag condition the entry it replaces is removed.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from shared.connections.models import Connection, ConnectionStatus
from shared.crypto.envelope import RowAddress
from shared.crypto.keyring import KeyRingCache
from shared.lifecycle.planning import Due, access_token_expiry, next_due
from shared.store.errors import storage_errors
from shared.store.table_set import TableSet

if TYPE_CHECKING:
    from shared.store.due import DueIndex

CONNECTIONS = "connections"
OWNERS = "owners"
PREFIX = "Grant"
ROW = "connection"
# secrets.token_urlsafe output: anything else cannot be one of ours (and never reaches storage).
_CONNECTION_ID = re.compile(r"^[A-Za-z0-9_-]{22,64}$")


def is_connection_id(value: str) -> bool:
    return bool(_CONNECTION_ID.match(value))


@dataclass(frozen=True)
class SealedCache:
    """A connection with its decrypted token cache, and the ETag to write it back under."""

    connection: Connection
    cache: bytes
    etag: str
    due_bucket: str | None = None  # the row's current due index entry, if any


def _owner_key(tenant_id: str, oid: str) -> str:
    return f"{tenant_id}:{oid}"


def _to_connection(entity: dict[str, Any]) -> Connection:
    return Connection(
        id=str(entity["PartitionKey"]),
        owner_oid=str(entity["OwnerOid"]),
        owner_tid=str(entity["OwnerTid"]),
        mailbox=str(entity["Mailbox"]),
        scopes=str(entity.get("Scopes", "")).split(),
        status=ConnectionStatus(str(entity["Status"])),
        created_at=entity["CreatedAt"],
        last_used_at=entity.get("LastUsedAt"),
        last_refreshed_at=entity.get("LastRefreshedAt"),
        home_account_id=str(entity.get("HomeAccountId", "")),
        etag=entity.metadata.get("etag") if hasattr(entity, "metadata") else None,
    )


def _columns(connection: Connection) -> dict[str, Any]:
    columns: dict[str, Any] = {
        "PartitionKey": connection.id,
        "RowKey": ROW,
        "OwnerOid": connection.owner_oid,
        "OwnerTid": connection.owner_tid,
        "Mailbox": connection.mailbox,
        "Scopes": " ".join(connection.scopes),
        "Status": str(connection.status),
        "CreatedAt": connection.created_at,
        "HomeAccountId": connection.home_account_id,
    }
    if connection.last_used_at is not None:
        columns["LastUsedAt"] = connection.last_used_at
    if connection.last_refreshed_at is not None:
        columns["LastRefreshedAt"] = connection.last_refreshed_at
    return columns


_METADATA = [
    "PartitionKey",
    "OwnerOid",
    "OwnerTid",
    "Mailbox",
    "Scopes",
    "Status",
    "CreatedAt",
    "LastUsedAt",
    "LastRefreshedAt",
    "HomeAccountId",
]


def grant_basis(connection: Connection) -> datetime:
    """When the connection's grant was last redeemed (or, never refreshed, created)."""
    return connection.last_refreshed_at or connection.created_at


class ConnectionStore:
    def __init__(self, tables: TableSet, keys: KeyRingCache, due: DueIndex | None = None) -> None:
        self._tables = tables
        self._keys = keys
        self._due = due

    def _plan(self, connection: Connection, cache: bytes, now: datetime) -> Due | None:
        if self._due is None or connection.status is not ConnectionStatus.ACTIVE:
            return None
        return next_due(
            grant_basis(connection),
            self._due.idle,
            now=now,
            last_used=connection.last_used_at,
            access_expires=access_token_expiry(cache),
        )

    async def _schedule(self, connection: Connection, due: Due | None) -> dict[str, Any]:
        """Write the index entry for `due`; the column that points the row at it."""
        if self._due is None or due is None:
            return {}
        await self._due.schedule(connection.id, due, grant_basis(connection))
        return {"DueBucket": due.bucket}

    def _address(self, connection_id: str) -> RowAddress:
        return RowAddress(self._tables.name(CONNECTIONS), connection_id, ROW)

    async def claim_id(self, tenant_id: str, oid: str, mailbox: str, new_id: str) -> str:
        """The connection id for this owner + mailbox: the existing one, else `new_id`.

        The index row is created before the connection row, insert-only, so two concurrent
        sign-ins of the same owner and mailbox agree on one id.
        """
        owners = await self._tables.table(OWNERS)
        key = _owner_key(tenant_id, oid)
        with storage_errors("claim connection id"):
            try:
                await owners.create_entity(
                    {"PartitionKey": key, "RowKey": mailbox, "ConnectionId": new_id}
                )
                return new_id
            except ResourceExistsError:
                existing = await owners.get_entity(key, mailbox)
                return str(existing["ConnectionId"])

    async def save(self, connection: Connection, cache: bytes) -> None:
        """Write the whole row (REPLACE: no stale ciphertext parts survive)."""
        table = await self._tables.table(CONNECTIONS)
        envelope = await self._keys.envelope()
        sealed = envelope.seal(cache, self._address(connection.id), PREFIX)
        pointer = await self._schedule(
            connection, self._plan(connection, cache, grant_basis(connection))
        )
        with storage_errors("save connection"):
            await table.upsert_entity(
                {**_columns(connection), **pointer, **sealed}, mode=UpdateMode.REPLACE
            )

    async def get(self, connection_id: str) -> Connection | None:
        if not is_connection_id(connection_id):
            return None
        table = await self._tables.table(CONNECTIONS)
        with storage_errors("read connection"):
            try:
                entity = await table.get_entity(connection_id, ROW, select=_METADATA)
            except ResourceNotFoundError:
                return None
        return _to_connection(entity)

    async def open_cache(self, connection_id: str) -> SealedCache | None:
        """The connection and its decrypted token cache (for the token service)."""
        if not is_connection_id(connection_id):
            return None
        table = await self._tables.table(CONNECTIONS)
        with storage_errors("read connection"):
            try:
                entity = await table.get_entity(connection_id, ROW)
            except ResourceNotFoundError:
                return None
        cache = await self._keys.open(entity, self._address(connection_id), PREFIX)
        bucket = entity.get("DueBucket")
        return SealedCache(
            _to_connection(entity),
            cache,
            str(entity.metadata["etag"]),
            str(bucket) if bucket else None,
        )

    async def replace_cache(self, sealed: SealedCache, cache: bytes, refreshed: datetime) -> None:
        """Write a changed cache back only if nobody else wrote the row since it was read
        (raises ResourceModifiedError otherwise: the caller re-reads the stored copy)."""
        table = await self._tables.table(CONNECTIONS)
        connection = sealed.connection
        connection.last_refreshed_at = refreshed
        envelope = await self._keys.envelope()
        due = self._plan(connection, cache, refreshed)
        pointer = await self._schedule(connection, due)
        entity = {
            **_columns(connection),
            **pointer,
            **envelope.seal(cache, self._address(connection.id), PREFIX),
        }
        with storage_errors("update connection"):
            await table.update_entity(
                entity,
                mode=UpdateMode.REPLACE,
                etag=sealed.etag,
                match_condition=MatchConditions.IfNotModified,
            )
        if self._due is not None and sealed.due_bucket and due and sealed.due_bucket != due.bucket:
            await self._due.unschedule(sealed.due_bucket, connection.id)

    async def set_status(self, connection_id: str, status: ConnectionStatus) -> None:
        """Change only the status column (MERGE: the sealed cache is left as it is)."""
        table = await self._tables.table(CONNECTIONS)
        with storage_errors("update connection status"), contextlib.suppress(ResourceNotFoundError):
            await table.update_entity(
                {"PartitionKey": connection_id, "RowKey": ROW, "Status": str(status)},
                mode=UpdateMode.MERGE,
            )

    async def list_for_owner(self, tenant_id: str, oid: str) -> list[Connection]:
        owners = await self._tables.table(OWNERS)
        with storage_errors("list connections"):
            ids = [
                str(row["ConnectionId"])
                async for row in owners.query_entities(
                    "PartitionKey eq @key", parameters={"key": _owner_key(tenant_id, oid)}
                )
            ]
        found = [await self.get(connection_id) for connection_id in ids]
        return sorted((c for c in found if c is not None), key=lambda c: c.created_at)

    async def list_all(self) -> list[Connection]:
        table = await self._tables.table(CONNECTIONS)
        with storage_errors("list connections"):
            rows = [_to_connection(e) async for e in table.list_entities(select=_METADATA)]
        return sorted(rows, key=lambda c: c.created_at)

    async def delete(self, connection: Connection) -> None:
        """Remove the ciphertext and the owner index entry."""
        table = await self._tables.table(CONNECTIONS)
        owners = await self._tables.table(OWNERS)
        with storage_errors("delete connection"):
            # Already gone is fine: deleting is idempotent.
            with contextlib.suppress(ResourceNotFoundError):
                await table.delete_entity(connection.id, ROW)
            with contextlib.suppress(ResourceNotFoundError):
                await owners.delete_entity(
                    _owner_key(connection.owner_tid, connection.owner_oid), connection.mailbox
                )
