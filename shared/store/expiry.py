"""Removing rows past their TTL: tables whose rows carry an `ExpiresAt` column (pending
sign-ins, idempotency keys) share this one purge, which a lifecycle step runs."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from azure.core.exceptions import ResourceNotFoundError

from shared.store.errors import storage_errors

if TYPE_CHECKING:
    from azure.data.tables.aio import TableClient


async def purge_expired(table: TableClient, now: datetime, operation: str) -> int:
    """Delete the rows that expired before `now`; how many this call removed (a row another
    worker deleted first is not counted). `operation` names the work in storage errors."""
    removed = 0
    with storage_errors(operation):
        async for entity in table.query_entities(
            "ExpiresAt lt @now", parameters={"now": now}, select=["PartitionKey", "RowKey"]
        ):
            try:
                await table.delete_entity(entity["PartitionKey"], entity["RowKey"])
                removed += 1
            except ResourceNotFoundError:
                pass
    return removed
