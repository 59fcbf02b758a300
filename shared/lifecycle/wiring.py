"""Builds the lifecycle service from settings and the container's parts (Container.build)."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from shared.config import Settings
from shared.lifecycle.queue import StorageWorkQueue
from shared.lifecycle.service import (
    LifecycleConfig,
    LifecycleService,
    key_rotation,
    table_creator,
)
from shared.store.runs import RunLedger

if TYPE_CHECKING:
    from azure.data.tables.aio import TableServiceClient

    from shared.audit import AuditSink
    from shared.connections.tokens import TokenService
    from shared.crypto.keyring import KeyRingCache
    from shared.store.connections import ConnectionStore
    from shared.store.due import DueIndex
    from shared.store.pending_flows import PendingFlowStore
    from shared.store.table_set import TableSet

# The host setting the queue trigger binds to (`connection="AzureWebJobsStorage"`). It is a
# Functions host setting, not one of ours, so it is read here rather than through Settings.
QUEUE_CONNECTION_SETTING = "AzureWebJobsStorage"


def queue_account_url(settings: Settings, environ: Mapping[str, str]) -> str | None:
    """The queue endpoint for identity-based access: the host setting's identity form
    (`__queueServiceUri`, or `__accountName` in the public cloud), else the queue endpoint of
    the tables' account (STORAGE_TABLE_ENDPOINT with `.table.` → `.queue.`)."""
    uri = environ.get(f"{QUEUE_CONNECTION_SETTING}__queueServiceUri", "")
    if uri:
        return uri
    account = environ.get(f"{QUEUE_CONNECTION_SETTING}__accountName", "")
    if account:
        return f"https://{account}.queue.core.windows.net"
    endpoint = str(settings.STORAGE_TABLE_ENDPOINT or "").rstrip("/")
    return endpoint.replace(".table.", ".queue.", 1) if ".table." in endpoint else None


def queue_connection_string(settings: Settings, environ: Mapping[str, str] | None = None) -> str:
    """Where the timer sends work: the tables' account when it is reached with a connection
    string (Azurite, keyed accounts: the same account as `AzureWebJobsStorage` in every local
    and test setup), else the host's `AzureWebJobsStorage` connection string, else "" (then
    `queue_account_url` applies). Settings come first so that a container built from explicit
    settings never picks up a stray environment variable."""
    if settings.STORAGE_CONNECTION_STRING is not None:
        return settings.STORAGE_CONNECTION_STRING.get_secret_value()
    return (os.environ if environ is None else environ).get(QUEUE_CONNECTION_SETTING, "")


def build_lifecycle(
    settings: Settings,
    *,
    tables: TableSet,
    table_service: TableServiceClient,
    due: DueIndex,
    connections: ConnectionStore,
    tokens: TokenService,
    flows: PendingFlowStore,
    key_ring: KeyRingCache,
    audit: AuditSink,
    purges: Sequence[Callable[[datetime], Awaitable[int]]] = (),
) -> tuple[LifecycleService, StorageWorkQueue]:
    """`purges`: other stores' `purge_expired(now)` to run each time (idempotency keys...)."""
    connection_string = queue_connection_string(settings)
    queue = StorageWorkQueue(
        connection_string,
        settings.LIFECYCLE_QUEUE,
        settings.STORAGE_TIMEOUT_SECONDS,
        # A connection string when there is one; the identity-based endpoint otherwise.
        account_url=None if connection_string else queue_account_url(settings, os.environ),
    )
    service = LifecycleService(
        config=LifecycleConfig(
            batch_size=settings.LIFECYCLE_BATCH_SIZE,
            concurrency=settings.REFRESH_CONCURRENCY,
            run_budget=settings.LIFECYCLE_RUN_BUDGET,
        ),
        due=due,
        ledger=RunLedger(tables),
        connections=connections,
        tokens=tokens,
        flows=flows,
        key_ring=key_ring,
        queue=queue,
        audit=audit,
        rotate=key_rotation(table_service, key_ring, settings.TABLE_PREFIX, audit),
        ensure_tables=table_creator(
            table_service,
            [tables.name(t) for t in ("due", "lifecycleruns", "pendingflows", "connections")],
        ),
        purges=purges,
    )
    return service, queue
