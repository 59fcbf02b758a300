"""Export items in Blob Storage: one container per install (`{TABLE_PREFIX}-exports`), one
blob per exported message, written whole (a message's MIME is at most a few tens of MB).

The SDK is imported when the container is built, never at `import function_app`. Failures
become 503 `storage_unavailable` the way the table stores' do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from shared.errors import StorageUnavailable

if TYPE_CHECKING:
    from azure.storage.blob.aio import BlobServiceClient, ContainerClient

    from shared.config import Settings

logger = logging.getLogger(__name__)


def exports_container_name(table_prefix: str) -> str:
    # Container names are lower case; TABLE_PREFIX ([A-Za-z][A-Za-z0-9]{0,19}) fits once lowered.
    return f"{table_prefix.lower()}-exports"


@contextlib.contextmanager
def _blob_errors(what: str) -> Iterator[None]:
    from azure.core.exceptions import AzureError, ResourceNotFoundError

    try:
        yield
    except ResourceNotFoundError:
        raise
    except AzureError as exc:
        logger.warning("blob storage failed during %s: %s", what, type(exc).__name__)
        raise StorageUnavailable("Blob Storage is unavailable.") from None


class BlobItems:
    """Whole-blob reads and writes under one container, created on first use."""

    def __init__(self, service: BlobServiceClient, container: str) -> None:
        self._service = service
        self.container_name = container
        self._container: ContainerClient | None = None
        self._lock = asyncio.Lock()

    async def _client(self) -> ContainerClient:
        if self._container is None:
            async with self._lock:
                if self._container is None:
                    from azure.core.exceptions import ResourceExistsError

                    client = self._service.get_container_client(self.container_name)
                    with _blob_errors("create container"), contextlib.suppress(ResourceExistsError):
                        await client.create_container()
                    self._container = client
        return self._container

    async def put(self, name: str, data: bytes, content_type: str) -> None:
        from azure.storage.blob import ContentSettings

        container = await self._client()
        with _blob_errors("write item"):
            await container.upload_blob(
                name,
                data,
                overwrite=True,
                content_settings=ContentSettings(content_type=content_type),
            )

    async def get(self, name: str) -> bytes | None:
        """The blob's bytes, or None when there is none."""
        from azure.core.exceptions import ResourceNotFoundError

        container = await self._client()
        try:
            with _blob_errors("read item"):
                downloader = await container.download_blob(name)
                return bytes(await downloader.readall())
        except ResourceNotFoundError:
            return None

    async def delete_under(self, prefix: str) -> int:
        """Delete every blob whose name starts with `prefix`; how many went."""
        from azure.core.exceptions import ResourceNotFoundError

        container = await self._client()
        deleted = 0
        with _blob_errors("delete items"):
            async for blob in container.list_blobs(name_starts_with=prefix):
                with contextlib.suppress(ResourceNotFoundError):
                    await container.delete_blob(blob.name)
                    deleted += 1
        return deleted

    async def aclose(self) -> None:
        await self._service.close()


def build_blob_items(settings: Settings) -> BlobItems:
    """The exports container in the storage account of the tables (same connection string,
    or the blob endpoint beside STORAGE_TABLE_ENDPOINT with the managed identity)."""
    from azure.storage.blob.aio import BlobServiceClient

    options: dict[str, Any] = {
        "retry_total": 2,
        "connection_timeout": settings.STORAGE_TIMEOUT_SECONDS,
        "read_timeout": max(30.0, settings.STORAGE_TIMEOUT_SECONDS),
        # Why not the environment's proxy and netrc settings: aiohttp looks both up in a
        # thread on every request (about 0.8 ms of CPU per blob written, a third of an
        # export's storage cost), and the storage account is reached directly, as Graph is
        # (GraphClient's trust_env=False).
        "use_env_settings": False,
    }
    service: BlobServiceClient
    if settings.STORAGE_CONNECTION_STRING is not None:
        service = BlobServiceClient.from_connection_string(
            settings.STORAGE_CONNECTION_STRING.get_secret_value(), **options
        )
    else:
        from azure.identity.aio import DefaultAzureCredential

        endpoint = str(settings.STORAGE_TABLE_ENDPOINT or "").replace(".table.", ".blob.", 1)
        service = BlobServiceClient(endpoint, credential=DefaultAzureCredential(), **options)
    return BlobItems(service, exports_container_name(settings.TABLE_PREFIX))
