"""Putting an attachment on a draft: one POST up to 3 MB, else a Graph upload session fed in
4 MB chunks that are memoryview slices of the one decoded buffer (no per-chunk copies).

The session's `uploadUrl` is pre-authenticated: it gets no Authorization header (Graph
answers 401 if it does), so it is sent by a plain client here, not by `GraphClient`, which
would attach the token. It still goes through the mailbox's limiter, since Outlook counts
the PUTs against the mailbox.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from shared.errors import GraphError, GraphUnavailable
from shared.graph import GraphRequest, MailboxPath, error_for
from shared.graph.errors import parse_retry_after
from shared.graph.limiter import MailboxLimiter

logger = logging.getLogger(__name__)

# Graph: "attachments under 3 MB: POST; 3 MB to 150 MB: createUploadSession".
SMALL_ATTACHMENT_BYTES = 3 * 1024 * 1024
MAX_ATTACHMENT_BYTES = 150 * 1024 * 1024
# Microsoft recommends ≤ 4 MB per PUT (the sandbox enforces it); Outlook's upload sessions do
# not need OneDrive's 320 KiB multiples.
CHUNK_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class FileAttachment:
    name: str
    content_type: str
    data: bytes
    is_inline: bool = False
    content_id: str | None = None

    def graph_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "@odata.type": "#microsoft.graph.fileAttachment",
            "name": self.name,
            "contentType": self.content_type,
            "contentBytes": base64.b64encode(self.data).decode("ascii"),
            "isInline": self.is_inline,
        }
        if self.content_id:
            out["contentId"] = self.content_id
        return out

    def session_item(self) -> dict[str, Any]:
        item: dict[str, Any] = {
            "attachmentType": "file",
            "name": self.name,
            "size": len(self.data),
            "contentType": self.content_type,
            "isInline": self.is_inline,
        }
        if self.content_id:
            item["contentId"] = self.content_id
        return item


def upload_requests_for(
    path: MailboxPath, message_id: str, attachment: FileAttachment
) -> GraphRequest:
    """The first Graph request for `attachment`: the POST itself, or createUploadSession."""
    if len(attachment.data) <= SMALL_ATTACHMENT_BYTES:
        return GraphRequest("POST", path.attachments(message_id), json=attachment.graph_json())
    return GraphRequest(
        "POST",
        path.attachment_upload_session(message_id),
        json={"AttachmentItem": attachment.session_item()},
        # Creating a session has no effect until bytes arrive: safe to repeat.
        idempotent=True,
    )


class ChunkUploader:
    """PUTs one buffer to an upload session URL, chunk by chunk, in order."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        limiter: MailboxLimiter,
        allowed_hosts: frozenset[str],
        chunk_bytes: int = CHUNK_BYTES,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._sleep = sleep
        self._http = http
        self._limiter = limiter
        self._allowed_hosts = allowed_hosts
        self.chunk_bytes = chunk_bytes

    def check_url(self, upload_url: str) -> str:
        """An upload URL from Graph, accepted only over https (or loopback) to a host we
        expect: Graph's own, or Outlook's (`outlook.office.com` / `.office365.com`)."""
        parts = urlsplit(upload_url)
        host = (parts.hostname or "").lower()
        loopback = host in {"127.0.0.1", "localhost", "::1"}
        if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
            raise GraphError("InvalidUploadUrl", "Graph returned an unusable upload URL")
        if host not in self._allowed_hosts and not host.endswith(
            (".office.com", ".office365.com", ".outlook.com")
        ):
            raise GraphError("InvalidUploadUrl", "Graph returned an unusable upload URL")
        return upload_url

    async def put(self, upload_url: str, data: bytes, *, mailbox_key: str) -> str | None:
        """Upload `data`; return the final `Location` (the attachment), if Graph sent one."""
        url = self.check_url(upload_url)
        view = memoryview(data)
        total = len(data)
        start = 0
        location: str | None = None
        while start < total:
            end = min(start + self.chunk_bytes, total)
            headers = {
                "Content-Range": f"bytes {start}-{end - 1}/{total}",
                "Content-Length": str(end - start),
                "Content-Type": "application/octet-stream",
            }
            response = await self._put_chunk(url, view[start:end], headers, mailbox_key)
            location = response.headers.get("location") or location
            start = end
        return location

    async def _put_chunk(
        self, url: str, chunk: memoryview, headers: dict[str, str], mailbox_key: str
    ) -> httpx.Response:
        # A chunk Graph did not take (429, or 503 with Retry-After) is sent again after the
        # wait it asks for; the session still expects the same range, so nothing doubles.
        for attempt in range(1, _MAX_CHUNK_ATTEMPTS + 1):
            try:
                async with self._limiter.slot(mailbox_key):
                    response = await self._http.put(url, content=_one(chunk), headers=headers)
            except httpx.TransportError as exc:
                raise GraphUnavailable("The attachment upload could not be completed") from exc
            if response.status_code < 400:
                return response
            retry_after = parse_retry_after(response.headers)
            retryable = response.status_code == 429 or (
                response.status_code == 503 and retry_after is not None
            )
            logger.info("upload chunk answered %d (attempt %d)", response.status_code, attempt)
            if not retryable or attempt == _MAX_CHUNK_ATTEMPTS or (retry_after or 0) > 30:
                raise error_for(response.status_code, response.headers, response.content)
            await self._sleep(retry_after if retry_after is not None else 1.0)
        raise AssertionError("unreachable")


_MAX_CHUNK_ATTEMPTS = 4


async def _one(chunk: memoryview) -> AsyncIterator[bytes]:
    """The chunk as a one-element stream: httpx would iterate a memoryview int by int, and
    `bytes(chunk)` would copy it; with Content-Length set, httpx sends it as it is."""
    yield chunk  # type: ignore[misc]
