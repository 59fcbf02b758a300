"""Connections in Table Storage: metadata columns plus the connection's sealed MSAL cache.

Two tables: `connections` (one partition per connection, point reads by id; the RowKey is
the id too, see `_row_key`) and `owners` (PartitionKey = owner tenant:oid, RowKey = mailbox
→ connection id), which answers "my connections" without a scan and makes a reconnect of the
same owner + mailbox find the existing connection instead of creating a duplicate.

The row's `DueAt` names the due-index hint (shared/store/due.py) that arms the connection
for the lifecycle timer. This store writes whatever pointer it is given: when and which
hint is decided by the scheduler (shared/connections/scheduler.py), which writes the hint
before the row names it.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import UpdateMode

from shared.connections.models import Connection, ConnectionKind, ConnectionStatus
from shared.crypto.envelope import RowAddress, SealedTable
from shared.crypto.keyring import KeyRingCache
from shared.errors import ConnectionNotFound
from shared.store.errors import storage_errors
from shared.store.table_set import TableSet

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


def owner_row(connection: Connection) -> str:
    """The owners-index RowKey: the mailbox; `app:` before it for an application connection,
    so that a person's own connection and one they created for the app never share an id."""
    return f"app:{connection.mailbox}" if connection.is_application else connection.mailbox


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
        kind=ConnectionKind(str(entity.get("Kind") or ConnectionKind.DELEGATED)),
        allowed=tuple(str(entity.get("Allowed", "")).split()),
        display_name=entity.get("DisplayName") or None,
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
    if connection.is_application:
        columns["Kind"] = str(connection.kind)
        columns["Allowed"] = " ".join(connection.allowed)
        if connection.display_name is not None:
            columns["DisplayName"] = connection.display_name
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
    "Kind",
    "Allowed",
    "DisplayName",
]


class ConnectionStore:
    def __init__(self, tables: TableSet, keys: KeyRingCache) -> None:
        self._tables = tables
        self._keys = keys

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
        with storage_errors("save connection"):
            await table.upsert_entity({**_columns(connection), **sealed}, mode=UpdateMode.REPLACE)

    async def save_application(self, connection: Connection) -> None:
        """Write an application connection's row: metadata only, there is no grant to seal
        (its tokens come from the app's own credential)."""
        table = await self._tables.table(CONNECTIONS)
        with storage_errors("save connection"):
            await table.upsert_entity(_columns(connection), mode=UpdateMode.REPLACE)

    async def set_allowed(self, connection_id: str, allowed: tuple[str, ...]) -> None:
        """Replace who may use an application connection besides its creator."""
        table = await self._tables.table(CONNECTIONS)
        columns = {
            "PartitionKey": connection_id,
            "RowKey": _row_key(connection_id),
            "Allowed": " ".join(allowed),
        }
        with storage_errors("update connection"):
            try:
                await table.update_entity(columns, mode=UpdateMode.MERGE)
            except ResourceNotFoundError:
                raise ConnectionNotFound("The connection no longer exists.") from None

    async def list_application(self) -> list[Connection]:
        """Every application connection (few per tenant: an admin creates each one)."""
        table = await self._tables.table(CONNECTIONS)
        with storage_errors("list connections"):
            rows = [
                _to_connection(e)
                async for e in table.query_entities(
                    "Kind eq @kind",
                    parameters={"kind": str(ConnectionKind.APPLICATION)},
                    select=_METADATA,
                )
            ]
        return sorted(rows, key=lambda c: c.created_at)

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
        self, sealed: SealedCache, connection: Connection, cache: bytes
    ) -> None:
        """Write a changed cache (and `connection`'s columns) back only if nobody else wrote
        the row since it was read (raises ResourceModifiedError otherwise: the caller
        re-reads the stored copy)."""
        table = await self._tables.table(CONNECTIONS)
        envelope = await self._keys.envelope()
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

    async def point_at(self, sealed: SealedCache, due_at: datetime) -> None:
        """Point the row at the hint at `due_at`, unless it was written since it was read
        (then nothing is done: that write pointed it at a hint of its own)."""
        table = await self._tables.table(CONNECTIONS)
        connection_id = sealed.connection.id
        with storage_errors("reschedule connection"), contextlib.suppress(ResourceModifiedError):
            await table.update_entity(
                {"PartitionKey": connection_id, "RowKey": _row_key(connection_id), "DueAt": due_at},
                mode=UpdateMode.MERGE,
                etag=sealed.etag,
                match_condition=MatchConditions.IfNotModified,
            )

    async def touch(self, connection: Connection, used: datetime, due_at: datetime | None) -> None:
        """Record that a caller used the connection (it is warm: the timer keeps its access
        token fresh), pointing it at the hint at `due_at` when given (no ETag condition: see
        DueScheduler.sooner)."""
        table = await self._tables.table(CONNECTIONS)
        columns: dict[str, Any] = {
            "PartitionKey": connection.id,
            "RowKey": _row_key(connection.id),
            "LastUsedAt": used,
        }
        if due_at is not None:
            columns["DueAt"] = due_at
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
                    _owner_key(connection.owner_tid, connection.owner_oid), owner_row(connection)
                )
