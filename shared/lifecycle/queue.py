"""The work queue port and its Azure Storage implementation (Azurite locally).

The queue-triggered function reads the same queue through the Functions host's binding
(connection setting `AzureWebJobsStorage`); this side only sends.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from azure.storage.queue.aio import QueueClient


class QueueUnavailable(Exception):
    """The work queue could not be reached (the run stops and says so)."""


class WorkQueue(Protocol):
    async def send(self, text: str) -> None: ...

    async def aclose(self) -> None: ...


class StorageWorkQueue:
    """Sends to one storage queue, creating it on first use (as the host does for triggers)."""

    def __init__(
        self,
        connection_string: str,
        queue_name: str,
        timeout_seconds: float,
        account_url: str | None = None,
    ) -> None:
        # Either a connection string (Azurite, keyed accounts) or, identity-based as the host
        # binds `AzureWebJobsStorage__queueServiceUri`, the queue endpoint reached with the
        # managed identity (production storage has shared keys disabled).
        self._connection_string = connection_string
        self._account_url = account_url
        self.queue_name = queue_name
        self._timeout = timeout_seconds
        self._client: QueueClient | None = None
        self._lock = asyncio.Lock()

    async def _queue(self) -> QueueClient:
        if self._client is None:
            async with self._lock:
                if self._client is None:
                    from azure.core.exceptions import ResourceExistsError
                    from azure.storage.queue.aio import QueueClient

                    options: dict[str, Any] = {
                        "retry_total": 2,
                        "connection_timeout": self._timeout,
                        "read_timeout": self._timeout,
                    }
                    if self._account_url:
                        from azure.identity.aio import DefaultAzureCredential

                        client = QueueClient(
                            self._account_url,
                            self.queue_name,
                            credential=DefaultAzureCredential(),
                            **options,
                        )
                    else:
                        client = QueueClient.from_connection_string(
                            self._connection_string, self.queue_name, **options
                        )
                    with contextlib.suppress(ResourceExistsError):
                        await client.create_queue()
                    self._client = client
        return self._client

    async def send(self, text: str) -> None:
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        try:
            queue = await self._queue()
            try:
                await queue.send_message(text)
            except ResourceNotFoundError:
                # The queue vanished (deleted, or an emulator restarted empty): create it again.
                await queue.create_queue()
                await queue.send_message(text)
        except (AzureError, ValueError) as exc:  # ValueError: no usable connection string
            raise QueueUnavailable(type(exc).__name__) from None

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
