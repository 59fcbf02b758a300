"""One action on up to 1,000 messages through Graph JSON batching (`POST /$batch`).

20 sub-requests per batch (Graph's limit), at most 4 batches in flight per request (Outlook's
MailboxConcurrency; the client's per-mailbox limiter holds the same line across requests).
A sub-request Graph throttled (429, or 503 with Retry-After) was not processed: it is sent
again, alone with the other throttled ones, after the longest Retry-After among them, for a
few rounds. Every id gets a result — the status Graph answered and, for failures, our
stable error code; a batch that fails as a whole gives its error to each of its ids.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from shared.connections.mailbox import ConnectedMailbox
from shared.errors import (
    FieldError,
    GraphError,
    GraphThrottled,
    GraphUnavailable,
    IdentityUnavailable,
    StorageUnavailable,
    ValidationFailed,
)
from shared.graph import GraphRequest, MailboxPath, error_for, graph_id
from shared.graph.errors import parse_retry_after
from shared.graph.headers import IMMUTABLE_ID_PREFERENCE
from shared.mail.compose import BulkBody
from shared.mail.writer import MailWriter, delete_request, destination_id

logger = logging.getLogger(__name__)

BATCH_SIZE = 20
BATCHES_IN_FLIGHT = 4
MAX_ROUNDS = 5
MAX_WAIT_SECONDS = 30.0


@dataclass(frozen=True)
class ItemResult:
    id: str
    status: int
    code: str | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "status": self.status}
        if self.code is not None:
            out["code"] = self.code
        return out


def sub_request(path: MailboxPath, message_id: str, body: BulkBody) -> GraphRequest:
    """The Graph request one id stands for (relative URL, as $batch wants it)."""
    match body.action:
        case "markRead" | "markUnread":
            patch: dict[str, Any] = {"isRead": body.action == "markRead"}
        case "flag" | "unflag":
            patch = {"flag": {"flagStatus": "flagged" if body.action == "flag" else "notFlagged"}}
        case "categorize":
            patch = {"categories": list(body.categories or [])}
        case "move":
            target = destination_id(body.destinationFolder or "")
            return GraphRequest(
                "POST", path.message_action(message_id, "move"), json={"destinationId": target}
            )
        case _:
            return delete_request(path, message_id, body.mode)
    return GraphRequest("PATCH", path.message(message_id), json=patch)


def check(body: BulkBody) -> None:
    """Everything a caller can get wrong, before any Graph call."""
    errors: list[FieldError] = []
    seen: set[str] = set()
    for index, message_id in enumerate(body.ids):
        try:
            graph_id(message_id, field="ids")
        except ValidationFailed:
            errors.append(FieldError(("body", "ids", index), "must be a Microsoft Graph id"))
        if message_id in seen:
            errors.append(FieldError(("body", "ids", index), "duplicate id"))
        seen.add(message_id)
    if body.action == "categorize" and body.categories is None:
        errors.append(FieldError(("body", "categories"), "required for categorize"))
    if body.action == "move":
        if not body.destinationFolder:
            errors.append(FieldError(("body", "destinationFolder"), "required for move"))
        else:
            try:
                destination_id(body.destinationFolder)
            except ValidationFailed:
                errors.append(FieldError(("body", "destinationFolder"), "not a folder"))
    if errors:
        raise ValidationFailed("The bulk request is not valid.", errors=errors)


class BulkRunner:
    def __init__(
        self,
        writer: MailWriter,
        *,
        batch_size: int = BATCH_SIZE,
        in_flight: int = BATCHES_IN_FLIGHT,
        max_rounds: int = MAX_ROUNDS,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._writer = writer
        self._batch_size = batch_size
        self._in_flight = in_flight
        self._max_rounds = max_rounds
        self._sleep = sleep

    async def run(self, mb: ConnectedMailbox, body: BulkBody) -> dict[str, Any]:
        check(body)
        async with self._writer.audited(f"mail.bulk.{body.action}", mb) as counts:
            requests = {i: sub_request(mb.path, mid, body) for i, mid in enumerate(body.ids)}
            results: dict[int, ItemResult] = {}
            gate = asyncio.Semaphore(self._in_flight)
            chunks = [
                list(range(start, min(start + self._batch_size, len(body.ids))))
                for start in range(0, len(body.ids), self._batch_size)
            ]

            async def one_chunk(indexes: list[int]) -> None:
                async with gate:
                    results.update(await self._chunk(mb, body.ids, indexes, requests))

            await asyncio.gather(*(one_chunk(c) for c in chunks))
            ordered = [results[i] for i in range(len(body.ids))]
            succeeded = sum(1 for r in ordered if r.status < 400)
            counts.update(
                {"items": len(ordered), "succeeded": succeeded, "failed": len(ordered) - succeeded}
            )
            return {
                "action": body.action,
                "succeeded": succeeded,
                "failed": len(ordered) - succeeded,
                "value": [r.as_json() for r in ordered],
            }

    async def _chunk(
        self,
        mb: ConnectedMailbox,
        ids: Sequence[str],
        indexes: list[int],
        requests: dict[int, GraphRequest],
    ) -> dict[int, ItemResult]:
        results: dict[int, ItemResult] = {}
        pending = list(indexes)
        for round_number in range(1, self._max_rounds + 1):
            try:
                answers = await self._batch(mb, pending, requests)
            except (
                GraphThrottled,
                GraphUnavailable,
                GraphError,
                IdentityUnavailable,
                StorageUnavailable,
            ) as error:
                # The batch as a whole failed: each of its ids says so, none is hidden.
                for index in pending:
                    results[index] = ItemResult(ids[index], error.http_status, error.code)
                return results
            throttled: list[int] = []
            wait = 0.0
            for index in pending:
                status, headers, raw = answers.get(index, (502, {}, b""))
                if status == 429 or (status == 503 and parse_retry_after(headers) is not None):
                    throttled.append(index)
                    wait = max(wait, parse_retry_after(headers) or 1.0)
                    continue
                code = None if status < 400 else error_for(status, headers, raw).code
                results[index] = ItemResult(ids[index], status, code)
            if not throttled:
                return results
            if round_number == self._max_rounds or wait > MAX_WAIT_SECONDS:
                break
            logger.info("bulk: %d items throttled, retrying in %.1fs", len(throttled), wait)
            await self._sleep(wait)
            pending = throttled
        for index in throttled:
            results[index] = ItemResult(ids[index], 429, GraphThrottled.code)
        return results

    async def _batch(
        self, mb: ConnectedMailbox, indexes: list[int], requests: dict[int, GraphRequest]
    ) -> dict[int, tuple[int, dict[str, str], bytes]]:
        payload = {"requests": [_batch_item(str(i), requests[i]) for i in indexes]}
        response = await mb.send(GraphRequest("POST", "/$batch", json=payload, idempotent=False))
        out: dict[int, tuple[int, dict[str, str], bytes]] = {}
        for answer in (response.json() or {}).get("responses") or []:
            try:
                index = int(answer.get("id"))
            except (TypeError, ValueError):
                continue
            headers = {str(k).lower(): str(v) for k, v in (answer.get("headers") or {}).items()}
            status = int(answer.get("status") or 502)
            body = answer.get("body")
            # Only a failure's body is read (error_for, for Graph's code): a success's, the
            # whole updated message for a PATCH, is not written out again for nothing.
            failed = status >= 400 and isinstance(body, dict)
            raw = json.dumps(body).encode() if failed else b""
            out[index] = (status, headers, raw)
        return out


def batch_url(path: str) -> str:
    """A sub-request URL: the builders' path with `=` and `+` left literal. Both are legal in
    a path segment (RFC 3986 sub-delims) and are all a validated id can carry besides
    unreserved characters; a $batch URL is not decoded the way a request line is, so the
    percent-encoded forms would not name the same item."""
    return _ENCODED_SUBDELIM.sub(lambda m: "=" if m.group(0).upper() == "%3D" else "+", path)


_ENCODED_SUBDELIM = re.compile(r"%3D|%2B", re.IGNORECASE)


def _batch_item(item_id: str, request: GraphRequest) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": item_id,
        "method": request.method,
        "url": batch_url(request.path),
        # Sub-requests do not inherit the batch's own headers: each asks for immutable ids.
        "headers": {"Prefer": IMMUTABLE_ID_PREFERENCE},
    }
    if request.json is not None or request.method in ("POST", "PATCH", "PUT"):
        # $batch wants a body and Content-Type on every write, even an empty action.
        item["body"] = request.json if request.json is not None else {}
        item["headers"]["Content-Type"] = "application/json"
    return item


__all__ = ["BATCH_SIZE", "BulkRunner", "ItemResult", "check", "sub_request"]
