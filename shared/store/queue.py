"""The work queue port and its Azure Storage implementation (Azurite locally), and the one
place that builds a queue from settings (the lifecycle's and the notifications' alike).

The queue-triggered functions read the same queues through the Functions host's binding
(connection setting `AzureWebJobsStorage`); this side only sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from azure.storage.queue.aio import QueueClient

    from shared.config import Settings

# The host setting the queue triggers bind to (`connection="AzureWebJobsStorage"`). It is a
# Functions host setting, not one of ours, so it is read here rather than through Settings.
QUEUE_CONNECTION_SETTING = "AzureWebJobsStorage"
MAX_DELAY = 7 * 24 * 3600 - 60  # a message's visibility delay must stay under its 7-day life


class QueueUnavailable(Exception):
    """The work queue could not be reached (the run stops and says so)."""


class WorkQueue(Protocol):
    async def send(self, text: str, *, delay_seconds: int = 0) -> None: ...

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

    async def send(self, text: str, *, delay_seconds: int = 0) -> None:
        """One message, visible after `delay_seconds` (0: at once; at most 7 days, the
        queue's limit): how delivery retries are scheduled without sleeping."""
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        options = {"visibility_timeout": min(delay_seconds, MAX_DELAY)} if delay_seconds > 0 else {}
        try:
            queue = await self._queue()
            try:
                await queue.send_message(text, **options)
            except ResourceNotFoundError:
                # The queue vanished (deleted, or an emulator restarted empty): create it again.
                await queue.create_queue()
                await queue.send_message(text, **options)
        except (AzureError, ValueError) as exc:  # ValueError: no usable connection string
            raise QueueUnavailable(type(exc).__name__) from None

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None


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
    """Where work is sent: the tables' account when it is reached with a connection string
    (Azurite, keyed accounts: the same account as `AzureWebJobsStorage` in every local and
    test setup), else the host's `AzureWebJobsStorage` connection string, else "" (then
    `queue_account_url` applies). Settings come first so that a container built from explicit
    settings never picks up a stray environment variable."""
    if settings.STORAGE_CONNECTION_STRING is not None:
        return settings.STORAGE_CONNECTION_STRING.get_secret_value()
    return (os.environ if environ is None else environ).get(QUEUE_CONNECTION_SETTING, "")


def storage_queue(
    settings: Settings, queue_name: str, environ: Mapping[str, str] | None = None
) -> StorageWorkQueue:
    """The queue `queue_name` in the host's storage account: by connection string when there
    is one, else identity-based at its endpoint."""
    environ = os.environ if environ is None else environ
    connection_string = queue_connection_string(settings, environ)
    return StorageWorkQueue(
        connection_string,
        queue_name,
        settings.STORAGE_TIMEOUT_SECONDS,
        account_url=None if connection_string else queue_account_url(settings, environ),
    )
