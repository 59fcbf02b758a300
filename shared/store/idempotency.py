"""Idempotency-Key records: one row per (caller, connection, key), claimed insert-only, then
completed with the first response (sealed, since a response may quote a message), 24 h TTL.

Row: PartitionKey = the connection id, RowKey = SHA-256 of caller identity + key (the key
itself is caller-chosen text and never stored). `Fingerprint` = SHA-256 of method, route,
query and body; `State` = `pending` | `done`; the response sits in sealed properties
(shared.crypto.envelope, bound to the row) once done.

Concurrency: `claim()` is `create_entity`, which Table Storage lets exactly one writer win;
a second request with the same key while the first is still running sees `pending`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)

from shared.crypto.envelope import (
    MAX_PLAINTEXT_BYTES,
    CiphertextRejected,
    RowAddress,
    SealedTable,
)
from shared.crypto.keyring import KeyRingCache
from shared.store.errors import storage_errors
from shared.store.expiry import purge_expired
from shared.store.table_set import TableSet

TABLE = "idempotency"
SEALED = SealedTable(TABLE, "Resp")  # the first response, replayed to a retry
PREFIX = SEALED.prefix


ABANDONED_AFTER = timedelta(minutes=10)


class ClaimState(StrEnum):
    CLAIMED = "claimed"  # this request owns the key: do the work, then complete() or release()
    REPLAY = "replay"  # done before with the same fingerprint: `response` is the first answer
    MISMATCH = "mismatch"  # used before with another request body
    IN_PROGRESS = "in_progress"  # another request with this key has not finished
    ABANDONED = "abandoned"  # the first request never finished (its worker stopped mid-way)


@dataclass(frozen=True)
class StoredResponse:
    """What a replay answers: status, the headers that matter (Location), the body bytes."""

    status: int
    headers: dict[str, str]
    body: bytes
    media_type: str = "application/json"


@dataclass(frozen=True)
class Claim:
    state: ClaimState
    partition_key: str
    row_key: str
    etag: str | None = None
    response: StoredResponse | None = None


def record_keys(caller_identity: str, connection_id: str, idempotency_key: str) -> tuple[str, str]:
    digest = hashlib.sha256(f"{caller_identity}\n{idempotency_key}".encode()).hexdigest()
    return connection_id, digest


class IdempotencyStore:
    def __init__(self, tables: TableSet, keys: KeyRingCache, ttl: timedelta) -> None:
        self._tables = tables
        self._keys = keys
        self.ttl = ttl

    async def claim(
        self,
        caller_identity: str,
        connection_id: str,
        idempotency_key: str,
        fingerprint: str,
        now: datetime,
    ) -> Claim:
        """Take the key for this request, or say why not (replay, mismatch, in progress)."""
        table = await self._tables.table(TABLE)
        pk, rk = record_keys(caller_identity, connection_id, idempotency_key)
        entity = {
            "PartitionKey": pk,
            "RowKey": rk,
            "Fingerprint": fingerprint,
            "State": "pending",
            "ClaimedAt": now,
            "ExpiresAt": now + self.ttl,
        }
        for _ in range(2):
            with storage_errors("claim idempotency key"):
                try:
                    created = await table.create_entity(entity)
                    return Claim(ClaimState.CLAIMED, pk, rk, etag=_etag(created))
                except ResourceExistsError:
                    pass
                try:
                    existing = await table.get_entity(pk, rk)
                except ResourceNotFoundError:
                    continue  # released or purged between the two calls: claim again
            expires = existing.get("ExpiresAt")
            if isinstance(expires, datetime) and expires <= now:
                # A stale record (the purge has not run yet) is not a replay: drop it, but
                # only the version we read, so two racing requests cannot both reclaim it.
                with (
                    storage_errors("drop expired idempotency key"),
                    contextlib.suppress(ResourceNotFoundError, ResourceModifiedError),
                ):
                    await table.delete_entity(
                        pk,
                        rk,
                        etag=existing.metadata["etag"],
                        match_condition=MatchConditions.IfNotModified,
                    )
                continue
            if existing.get("Fingerprint") != fingerprint:
                return Claim(ClaimState.MISMATCH, pk, rk)
            if existing.get("State") != "done":
                claimed = existing.get("ClaimedAt")
                # No request outlives the Functions timeout (5 min): a claim older than twice
                # that belongs to a worker that died mid-way, so "retry shortly" would be false.
                if isinstance(claimed, datetime) and now - claimed > ABANDONED_AFTER:
                    return Claim(ClaimState.ABANDONED, pk, rk)
                return Claim(ClaimState.IN_PROGRESS, pk, rk)
            return Claim(ClaimState.REPLAY, pk, rk, response=await self._open(existing, pk, rk))
        return Claim(ClaimState.IN_PROGRESS, pk, rk)

    async def complete(self, claim: Claim, response: StoredResponse) -> None:
        """Store the first response under the claim (sealed; ETag-conditional)."""
        table = await self._tables.table(TABLE)
        pk, rk = claim.partition_key, claim.row_key
        record = _compressed_record(response)
        envelope = await self._keys.envelope()
        sealed = envelope.seal(record, RowAddress(self._tables.name(TABLE), pk, rk), PREFIX)
        with storage_errors("complete idempotency key"):
            await table.update_entity(
                {"PartitionKey": pk, "RowKey": rk, "State": "done", **sealed},
                etag=claim.etag,
                match_condition=MatchConditions.IfNotModified,
            )

    async def release(self, claim: Claim) -> None:
        """Give the key back (Graph said the request was not processed): a retry may run."""
        table = await self._tables.table(TABLE)
        with (
            storage_errors("release idempotency key"),
            contextlib.suppress(ResourceNotFoundError),
        ):
            await table.delete_entity(claim.partition_key, claim.row_key)

    async def purge_expired(self, now: datetime) -> int:
        """Delete records past their TTL (the lifecycle timer calls this)."""
        return await purge_expired(await self._tables.table(TABLE), now, "purge idempotency keys")

    async def _open(self, entity: Any, pk: str, rk: str) -> StoredResponse | None:
        try:
            plaintext = await self._keys.open(
                entity, RowAddress(self._tables.name(TABLE), pk, rk), PREFIX
            )
        except CiphertextRejected:
            # Unreadable (keys retired since): no replay to give, and still no second send.
            return None
        record = json.loads(zlib.decompress(plaintext))
        return StoredResponse(
            int(record["status"]),
            {str(k): str(v) for k, v in dict(record.get("headers") or {}).items()},
            str(record.get("body") or "").encode(),
            str(record.get("mediaType") or "application/json"),
        )


def _compressed_record(response: StoredResponse) -> bytes:
    """The response as compressed JSON. A body too large for one table entity even
    compressed (a PATCH answer quoting a huge message) is left out: the replay then answers
    the same status and headers with an empty JSON object, and still sends nothing."""
    record: dict[str, Any] = {
        "status": response.status,
        "headers": response.headers,
        "mediaType": response.media_type,
        "body": response.body.decode("utf-8", "replace"),
    }
    packed = zlib.compress(json.dumps(record).encode(), 6)
    if len(packed) > _MAX_RECORD_BYTES:
        record["body"] = "{}"
        packed = zlib.compress(json.dumps(record).encode(), 6)
    return packed


# Below the envelope's 1 MiB entity ceiling, with room for the other properties.
_MAX_RECORD_BYTES = MAX_PLAINTEXT_BYTES - 64 * 1024


def _etag(metadata: Any) -> str | None:
    value = metadata.get("etag") if isinstance(metadata, dict) else None
    return str(value) if value else None


__all__ = ["Claim", "ClaimState", "IdempotencyStore", "StoredResponse", "record_keys"]
