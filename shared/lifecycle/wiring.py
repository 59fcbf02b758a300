"""Builds the lifecycle service from settings and the container's parts (Container.build)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from shared.config import Settings
from shared.lifecycle.maintenance import MaintenanceStep
from shared.lifecycle.service import (
    LifecycleConfig,
    LifecycleService,
    key_rotation,
    table_creator,
)
from shared.store.queue import StorageWorkQueue, storage_queue
from shared.store.runs import RunLedger

if TYPE_CHECKING:
    from azure.data.tables.aio import TableServiceClient

    from shared.audit import AuditSink
    from shared.connections.scheduler import DueScheduler
    from shared.connections.tokens import TokenService
    from shared.crypto.keyring import KeyRingCache
    from shared.store.connections import ConnectionStore
    from shared.store.due import DueIndex
    from shared.store.table_set import TableSet


def build_lifecycle(
    settings: Settings,
    *,
    tables: TableSet,
    table_service: TableServiceClient,
    due: DueIndex,
    scheduler: DueScheduler,
    connections: ConnectionStore,
    tokens: TokenService,
    key_ring: KeyRingCache,
    audit: AuditSink,
    steps: Sequence[MaintenanceStep] = (),
) -> tuple[LifecycleService, StorageWorkQueue]:
    """`steps`: the other work each run does (purges, subscription renewal)."""
    queue = storage_queue(settings, settings.LIFECYCLE_QUEUE)
    service = LifecycleService(
        config=LifecycleConfig(
            batch_size=settings.LIFECYCLE_BATCH_SIZE,
            concurrency=settings.REFRESH_CONCURRENCY,
            run_budget=settings.LIFECYCLE_RUN_BUDGET,
        ),
        due=due,
        scheduler=scheduler,
        ledger=RunLedger(tables),
        connections=connections,
        tokens=tokens,
        key_ring=key_ring,
        queue=queue,
        audit=audit,
        rotate=key_rotation(table_service, key_ring, settings.TABLE_PREFIX, audit),
        ensure_tables=table_creator(
            table_service,
            [tables.name(t) for t in ("due", "lifecycleruns", "pendingflows", "connections")],
        ),
        steps=steps,
    )
    return service, queue
