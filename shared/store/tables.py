"""The async Table Storage service client, built once per worker from settings.

A connection string (Azurite, keyed accounts) or an endpoint reached with the managed
identity; either way the SDK's own retries are kept short so that a storage outage turns
into a prompt 503 `storage_unavailable` rather than a hung request.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from shared.config import Settings
from shared.errors import StorageUnavailable

if TYPE_CHECKING:
    from azure.data.tables.aio import TableServiceClient

logger = logging.getLogger(__name__)


def build_table_service(settings: Settings) -> TableServiceClient:
    # Imported here so that `import function_app` stays cheap (cold start budget).
    from azure.data.tables.aio import TableServiceClient

    options: dict[str, Any] = {
        "retry_total": 2,
        "retry_backoff_factor": 0.2,
        "connection_timeout": settings.STORAGE_TIMEOUT_SECONDS,
        "read_timeout": settings.STORAGE_TIMEOUT_SECONDS,
    }
    if settings.STORAGE_CONNECTION_STRING is not None:
        return TableServiceClient.from_connection_string(
            settings.STORAGE_CONNECTION_STRING.get_secret_value(), **options
        )
    from azure.identity.aio import DefaultAzureCredential

    return TableServiceClient(
        endpoint=str(settings.STORAGE_TABLE_ENDPOINT),
        credential=DefaultAzureCredential(),
        **options,
    )


class TableStorageProbe:
    """Readiness: can this worker reach Table Storage with its credentials?"""

    name = "tableStorage"

    def __init__(self, service: TableServiceClient) -> None:
        self._service = service

    async def check(self) -> None:
        from azure.core.exceptions import AzureError

        try:
            # The cheapest authenticated call: one page of at most one table name.
            async for _ in self._service.list_tables(results_per_page=1):
                break
        except AzureError as exc:
            logger.warning("table storage unreachable: %s", type(exc).__name__)
            raise StorageUnavailable("Table Storage is unreachable.") from None
