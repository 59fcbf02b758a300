"""Connections in Table Storage: metadata columns plus the connection's sealed MSAL cache.

Two tables: `connections` (one partition per connection, point reads by id; the RowKey is
the id too, see `_row_key`) and `owners` (PartitionKey = owner tenant:oid, RowKey = mailbox
→ connection id), which answers "my connections" without a scan and makes a reconnect of the
same owner + mailbox find the existing connection instead of creating a duplicate.

With a due index (shared/store/due.py), every write of a token cache keeps the connection
armed for the lifecycle timer: the row's `DueAt` names a hint that was written before the
row, at or before the time the connection really comes due. A write that would only move
the due time later keeps the hint it has (it fires early, and the worker then schedules the
real time), so refreshes on the request path cost no index write.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import UpdateMode

from shared.connections.models import Connection, ConnectionStatus
from shared.crypto.envelope import RowAddress, SealedTable
from shared.crypto.keyring import KeyRingCache
from shared.lifecycle.planning import Due, access_token_expiry, next_due
from shared.store.errors import storage_errors
from shared.store.table_set import TableSet

if TYPE_CHECKING:
    from shared.store.due import DueIndex

CONNECTIONS = "connections"
OWNERS = "owners"
SEALED = SealedTable(CONNECTIONS, "Grant")  # the MSAL token cache
PREFIX = SEALED.prefix
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


def _row_key(connection_id: str) -> str:
    """The row key of a connection's row: its id, like the partition key.

    Not a constant: a unique RowKey is what keeps point reads and updates cheap on the
    emulator as the table grows (Azurite looks entities up through its RowKey index first,
    so a RowKey shared by every row made each lookup a scan of the whole table)."""
    return connection_id


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
        due_at=entity.get("DueAt"),
        reauth_claims=entity.get("ReauthClaims") or None,
    )


def _columns(connection: Connection) -> dict[str, Any]:
    columns: dict[str, Any] = {
        "PartitionKey": connection.id,
        "RowKey": _row_key(connection.id),
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
    if connection.due_at is not None:
        columns["DueAt"] = connection.due_at
    if connection.reauth_claims is not None:
        columns["ReauthClaims"] = connection.reauth_claims
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
    "DueAt",
    "ReauthClaims",
]


def grant_basis(connection: Connection) -> datetime:
    """When the connection's grant was last redeemed (or, never refreshed, created)."""
    return connection.last_refreshed_at or connection.created_at


class ConnectionStore:
    def __init__(self, tables: TableSet, keys: KeyRingCache, due: DueIndex | None = None) -> None:
        self._tables = tables
        self._keys = keys
        self._due = due

    @property
    def idle(self) -> timedelta | None:
        return self._due.idle if self._due is not None else None

    def plan(self, connection: Connection, cache: bytes, now: datetime) -> Due | None:
        """When the connection next needs the timer (None: never, it is not active)."""
        if self._due is None or connection.status is not ConnectionStatus.ACTIVE:
            return None
        return next_due(
            grant_basis(connection),
            self._due.idle,
            now=now,
            last_used=connection.last_used_at,
            access_expires=lambda: access_token_expiry(cache),
        )

    async def _arm(
        self, connection: Connection, due: Due | None, now: datetime, armed: Due | None = None
    ) -> None:
        """Point `connection.due_at` at a hint that reaches it by `due`: `armed` (a hint the
        caller already wrote), else the one it has when that is still ahead and not too late,
        else a new one."""
        if self._due is None or due is None:
            return
        if armed is not None and armed.at <= due.at:
            connection.due_at = armed.at
        elif connection.due_at is not None and now < connection.due_at <= due.at:
            pass  # the current hint fires early; the worker then schedules the real time
        else:
            await self._due.add([connection.id], due)
            connection.due_at = due.at

    def _address(self, connection_id: str) -> RowAddress:
        return RowAddress(self._tables.name(CONNECTIONS), connection_id, _row_key(connection_id))

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
        # A new grant: whatever hint the row had before is for the old one.
        connection.due_at = None
        basis = grant_basis(connection)
        await self._arm(connection, self.plan(connection, cache, basis), basis)
        with storage_errors("save connection"):
            await table.upsert_entity({**_columns(connection), **sealed}, mode=UpdateMode.REPLACE)

    async def get(self, connection_id: str) -> Connection | None:
        if not is_connection_id(connection_id):
            return None
        table = await self._tables.table(CONNECTIONS)
        with storage_errors("read connection"):
            try:
                entity = await table.get_entity(
                    connection_id, _row_key(connection_id), select=_METADATA
                )
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
                entity = await table.get_entity(connection_id, _row_key(connection_id))
            except ResourceNotFoundError:
                return None
        cache = await self._keys.open(entity, self._address(connection_id), PREFIX)
        return SealedCache(_to_connection(entity), cache, str(entity.metadata["etag"]))

    async def replace_cache(
        self, sealed: SealedCache, cache: bytes, refreshed: datetime, armed: Due | None = None
    ) -> None:
        """Write a changed cache back only if nobody else wrote the row since it was read
        (raises ResourceModifiedError otherwise: the caller re-reads the stored copy).
        `armed`: a hint the caller already wrote for this connection (the lifecycle worker
        writes one for its whole batch), used when it is not later than the new due time."""
        table = await self._tables.table(CONNECTIONS)
        connection = replace(sealed.connection, last_refreshed_at=refreshed)
        envelope = await self._keys.envelope()
        await self._arm(connection, self.plan(connection, cache, refreshed), refreshed, armed)
        entity = {
            **_columns(connection),
            **envelope.seal(cache, self._address(connection.id), PREFIX),
        }
        with storage_errors("update connection"):
            await table.update_entity(
                entity,
                mode=UpdateMode.REPLACE,
                etag=sealed.etag,
                match_condition=MatchConditions.IfNotModified,
            )

    async def reschedule(self, sealed: SealedCache, due: Due) -> None:
        """Arm the connection with a hint at `due` (its hint fired before it was due). Lost
        to a concurrent write of the row, nothing is done: that write armed it itself."""
        if self._due is None:
            return
        await self._due.add([sealed.connection.id], due)
        table = await self._tables.table(CONNECTIONS)
        connection_id = sealed.connection.id
        with storage_errors("reschedule connection"), contextlib.suppress(ResourceModifiedError):
            await table.update_entity(
                {"PartitionKey": connection_id, "RowKey": _row_key(connection_id), "DueAt": due.at},
                mode=UpdateMode.MERGE,
                etag=sealed.etag,
                match_condition=MatchConditions.IfNotModified,
            )

    async def touch(self, connection: Connection, used: datetime, access: Due | None) -> None:
        """Record that a caller used the connection (it is warm: the timer keeps its access
        token fresh), arming it with `access` (that token's refresh time) when that is
        sooner than its current hint."""
        table = await self._tables.table(CONNECTIONS)
        columns: dict[str, Any] = {
            "PartitionKey": connection.id,
            "RowKey": _row_key(connection.id),
            "LastUsedAt": used,
        }
        sooner = access is not None and (connection.due_at is None or access.at < connection.due_at)
        if self._due is not None and access is not None and sooner:
            # Written before the row points at it. Moving the pointer earlier without an
            # ETag condition is safe: a hint at the new time exists, and hints at later
            # times stay valid (the worker drops only hints earlier than the pointer).
            await self._due.add([connection.id], access)
            columns["DueAt"] = access.at
        with storage_errors("record connection use"), contextlib.suppress(ResourceNotFoundError):
            await table.update_entity(columns, mode=UpdateMode.MERGE)

    async def set_status(
        self, connection_id: str, status: ConnectionStatus, reauth_claims: str | None = None
    ) -> None:
        """Change only the status column, and with `reauth_claims` the claims a reconnect
        must satisfy (MERGE: the sealed cache is left as it is)."""
        table = await self._tables.table(CONNECTIONS)
        columns: dict[str, Any] = {
            "PartitionKey": connection_id,
            "RowKey": _row_key(connection_id),
            "Status": str(status),
        }
        if reauth_claims is not None:
            columns["ReauthClaims"] = reauth_claims
        with storage_errors("update connection status"), contextlib.suppress(ResourceNotFoundError):
            await table.update_entity(columns, mode=UpdateMode.MERGE)

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
                await table.delete_entity(connection.id, _row_key(connection.id))
            with contextlib.suppress(ResourceNotFoundError):
                await owners.delete_entity(
                    _owner_key(connection.owner_tid, connection.owner_oid), connection.mailbox
                )
