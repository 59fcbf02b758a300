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
        self._ready: set[str] = set()
        self._lock = asyncio.Lock()

    def name(self, short: str) -> str:
        return f"{self.prefix}{short}"

    async def table(self, short: str) -> TableClient:
        name = self.name(short)
        if name not in self._ready:
            async with self._lock:
                if name not in self._ready:
                    with storage_errors("create table"), contextlib.suppress(ResourceExistsError):
                        await self._service.create_table(name)
                    self._ready.add(name)
        return self._service.get_table_client(name)
