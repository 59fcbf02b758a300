"""`Idempotency-Key` on mail writes: the same key and request within the TTL answers the
first response again and sends nothing to Graph; the same key with another request is 409.

Rules (docs/api.md "Writing mail"):
- scope: caller (tid + oid + app id) + connection + key; fingerprint: SHA-256 of method, path,
  query and the exact body bytes;
- the first request claims the key insert-only; a concurrent request with the same key gets
  409 `conflict` with `Retry-After: 1` (it did nothing; retrying later replays the result);
- success and every error after which Graph may have acted are stored and replayed;
- the key is released (a retry may run again) only when nothing can have happened: an error
  raised before any Graph call, or Graph's own "not processed" (429, 503 + Retry-After).
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from shared.auth.caller import Caller
from shared.errors import (
    ApiError,
    Conflict,
    FieldError,
    GraphFailure,
    GraphThrottled,
    InternalError,
    ValidationFailed,
)
from shared.store.idempotency import ClaimState, IdempotencyStore, StoredResponse

HEADER = "Idempotency-Key"
REPLAY_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255


def fingerprint(method: str, path: str, query: str, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (method.upper().encode(), path.encode(), query.encode()):
        digest.update(len(part).to_bytes(4, "big") + part)
    digest.update(body)
    return digest.hexdigest()


def caller_identity(caller: Caller) -> str:
    return f"{caller.tenant_id}|{caller.oid}|{caller.app_id}"


def check_key(key: str) -> str:
    if not (0 < len(key) <= MAX_KEY_LENGTH) or not key.isascii() or not key.isprintable():
        raise ValidationFailed(
            "Idempotency-Key must be 1 to 255 printable ASCII characters.",
            errors=[FieldError(("header", HEADER), "invalid")],
        )
    return key


def _nothing_happened(error: ApiError) -> bool:
    """True when the write certainly had no effect, so the key may be used again."""
    if isinstance(error, GraphThrottled):
        return True  # Graph's own word that the request was not processed
    if isinstance(error, GraphFailure):
        return False  # Graph saw the request (or may have: a lost answer) and may have acted
    # Our own refusals (limits, validation, authorization) come before any Graph call; a
    # 5xx of ours (storage, the identity provider) may come after one.
    return error.http_status < 500


class IdempotencyGuard:
    def __init__(
        self, store: IdempotencyStore, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self._store = store
        self._clock = clock

    async def run(
        self,
        caller: Caller,
        connection_id: str,
        key: str | None,
        request_fingerprint: str,
        produce: Callable[[], Awaitable[StoredResponse]],
        render_error: Callable[[ApiError], StoredResponse],
    ) -> StoredResponse:
        """`produce()` once per key; replay its response for later requests with the key."""
        if key is None:
            return await produce()
        claim = await self._store.claim(
            caller_identity(caller), connection_id, check_key(key), request_fingerprint,
            self._clock(),
        )  # fmt: skip
        if claim.state is ClaimState.MISMATCH:
            raise Conflict("This Idempotency-Key was already used with a different request.")
        if claim.state is ClaimState.IN_PROGRESS:
            raise Conflict(
                "A request with this Idempotency-Key is still in progress; retry shortly.",
                headers={"Retry-After": "1"},
            )
        if claim.state is ClaimState.ABANDONED:
            raise Conflict(
                "The first request with this Idempotency-Key did not finish (the service "
                "stopped during it), so whether it took effect is unknown. Check the mailbox, "
                "then retry with a new key."
            )
        if claim.state is ClaimState.REPLAY:
            if claim.response is None:
                raise Conflict("This Idempotency-Key was used; its response cannot be read.")
            replay = claim.response
            return StoredResponse(
                replay.status,
                {**replay.headers, REPLAY_HEADER: "true"},
                replay.body,
                replay.media_type,
            )
        try:
            response = await produce()
        except ApiError as error:
            if _nothing_happened(error):
                await self._store.release(claim)
            else:
                await self._store.complete(claim, render_error(error))
            raise
        except Exception:
            # Our own bug mid-write: whether Graph acted is unknown, so the key never resends.
            await self._store.complete(claim, render_error(InternalError()))
            raise
        await self._store.complete(claim, response)
        return response
