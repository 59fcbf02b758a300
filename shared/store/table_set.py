"""The app's tables: names from TABLE_PREFIX, each created once per worker on first use."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from azure.core.exceptions import ResourceExistsError

from shared.store.errors import storage_errors

if TYPE_CHECKING:
    from azure.data.tables.aio import TableClient, TableServiceClient


class TableSet:
    def __init__(self, service: TableServiceClient, prefix: str) -> None:
        self._service = service
        self.prefix = prefix
        self._clients: dict[str, TableClient] = {}
        self._lock = asyncio.Lock()

    def name(self, short: str) -> str:
        return f"{self.prefix}{short}"

    async def table(self, short: str) -> TableClient:
        client = self._clients.get(short)
        if client is None:
            async with self._lock:
                client = self._clients.get(short)
                if client is None:
                    name = self.name(short)
                    with storage_errors("create table"), contextlib.suppress(ResourceExistsError):
                        await self._service.create_table(name)
                    # One client per table per worker: it shares the service's pipeline, and
                    # building one per call showed up in the refresh benchmark's profile.
                    client = self._service.get_table_client(name)
                    self._clients[short] = client
        return client
