"""Turning Azure Table Storage failures into the API's own errors, in one place."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)

from shared.errors import StorageUnavailable

logger = logging.getLogger(__name__)


@contextmanager
def storage_errors(what: str) -> Iterator[None]:
    """Storage outages become 503 `storage_unavailable`; the outcomes callers branch on
    (not found, exists, modified) pass through for them to handle."""
    try:
        yield
    except (ResourceNotFoundError, ResourceExistsError, ResourceModifiedError):
        raise
    except HttpResponseError as exc:
        if exc.status_code is not None and exc.status_code < 500 and exc.status_code != 408:
            raise
        logger.warning("table storage failed during %s: %s", what, type(exc).__name__)
        raise StorageUnavailable("Table Storage is unavailable; nothing was changed.") from None
    except AzureError as exc:
        logger.warning("table storage unreachable during %s: %s", what, type(exc).__name__)
        raise StorageUnavailable("Table Storage is unavailable; nothing was changed.") from None
