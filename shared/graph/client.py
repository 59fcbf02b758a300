"""GraphClient: the one adapter through which every mail operation reaches Microsoft Graph.

One `httpx.AsyncClient` per worker (keep-alive pool, timeouts, CA bundle), and a small
pipeline around each call, each step its own piece:

    request headers (auth, Prefer, client-request-id)  -> headers.py
    per-mailbox concurrency                              -> limiter.MailboxLimiter
    retry / backoff / deadline                           -> retry.RetryPolicy
    Graph error -> typed API error                       -> errors.error_for

`send()` returns a `GraphResponse` for 2xx/3xx and raises a typed error (shared.errors, or
`GraphUnauthorized` for 401) otherwise.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx

from shared.errors import GraphUnavailable
from shared.graph.errors import error_for, parse_retry_after
from shared.graph.headers import graph_headers
from shared.graph.limiter import MailboxLimiter
from shared.graph.paths import is_relative_graph_path, is_within_base
from shared.graph.retry import RetryPolicy
from shared.tls import outbound_ssl_context
from shared.wirejson import loads

if TYPE_CHECKING:
    from shared.config import Settings

logger = logging.getLogger(__name__)

_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Methods that change nothing in a mailbox: all a handle opened for reading may send.
_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Characters left as they are in query values: OData punctuation that Graph reads literally.
# Everything else (space -> %20, never `+`; `&`, `=`, `+`, `#`, `%`, quotes) is encoded.
_QUERY_SAFE = "$'(),:/@*"


@dataclass(frozen=True)
class GraphRequest:
    """One Graph call, before headers and retries.

    path: relative to GRAPH_BASE_URL (`/me/messages`, built by shared.graph.paths), or an
        absolute nextLink (from `CursorCodec.decode`), which the client checks again.
    params: OData options (`ListQuery.params()`), encoded by the client.
    json / content: the body (at most one).
    prefer: extra `Prefer` values, merged with `IdType="ImmutableId"`.
    idempotent: may a failed attempt be repeated? Default: True for GET/HEAD/OPTIONS only.
    reads_only: does it leave the mailbox as it was? Default: True for GET/HEAD/OPTIONS only;
        set for the POST actions that only read (getMailTips), which a handle opened for
        reading may then send.
    """

    method: str
    path: str
    params: Mapping[str, str] | None = None
    json: Any = None
    content: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    prefer: Sequence[str] = ()
    idempotent: bool | None = None
    reads_only: bool | None = None

    def __post_init__(self) -> None:
        if self.json is not None and self.content is not None:
            raise ValueError("a GraphRequest has a json body or raw content, not both")

    @property
    def is_idempotent(self) -> bool:
        if self.idempotent is not None:
            return self.idempotent
        return self.method.upper() in _IDEMPOTENT_METHODS

    @property
    def is_read_only(self) -> bool:
        if self.reads_only is not None:
            return self.reads_only
        return self.method.upper() in _READ_METHODS


@dataclass(frozen=True)
class GraphResponse:
    """A successful Graph answer: status, headers, raw bytes; `json()` parses on demand, so
    MIME (`$value`) and attachment content are read as bytes and never parsed."""

    status: int
    headers: httpx.Headers
    content: bytes
    request_id: str | None  # Graph's `request-id`, for audit and support cases

    def json(self) -> Any:
        return loads(self.content) if self.content else None


class GraphClient:
    """Sends `GraphRequest`s to GRAPH_BASE_URL with retries, a per-mailbox limiter and typed
    errors. One instance per worker (the container owns it); safe for concurrent use."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout_seconds: float = 30.0,
        connect_timeout_seconds: float = 10.0,
        ca_bundle: Path | None = None,
        retry: RetryPolicy | None = None,
        limiter: MailboxLimiter | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        max_connections: int = 100,
        max_keepalive_connections: int = 20,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.retry = retry or RetryPolicy()
        self.limiter = limiter or MailboxLimiter()
        self._timeout = timeout_seconds
        self._connect_timeout = min(connect_timeout_seconds, timeout_seconds)
        self._sleep = sleep
        self._clock = clock
        self._rng = rng
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_seconds, connect=self._connect_timeout),
            limits=httpx.Limits(
                max_connections=max_connections,
                max_keepalive_connections=max_keepalive_connections,
                keepalive_expiry=30,
            ),
            verify=outbound_ssl_context(ca_bundle),
            # Why trust_env=False: these machines set REQUESTS_CA_BUNDLE/SSL_CERT_FILE and
            # proxy variables that would silently replace our trust and route tokens through
            # a proxy; Graph is reached directly with exactly the trust configured here.
            trust_env=False,
            # Redirects are never followed: a Location elsewhere must not receive the token.
            follow_redirects=False,
            transport=transport,
            headers={"User-Agent": "outlook-integration-api"},
        )

    @classmethod
    def from_settings(
        cls, settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> GraphClient:
        return cls(
            settings.graph_base_url,
            timeout_seconds=settings.GRAPH_TIMEOUT_SECONDS,
            ca_bundle=settings.CA_BUNDLE,
            retry=RetryPolicy(
                deadline_seconds=settings.GRAPH_RETRY_DEADLINE_SECONDS,
                max_retry_after_seconds=settings.GRAPH_MAX_RETRY_AFTER_SECONDS,
            ),
            limiter=MailboxLimiter(settings.GRAPH_MAX_CONCURRENCY_PER_MAILBOX),
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> GraphClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def send(
        self, request: GraphRequest, *, token: str, mailbox_key: str, correlation_id: str
    ) -> GraphResponse:
        """Send `request` with `token`, at most N in flight for `mailbox_key`, retrying per
        `RetryPolicy` within its deadline.

        mailbox_key: the mailbox Graph will act on (the connection's UPN for `/me`, the shared
            mailbox's otherwise): Outlook throttles per app and mailbox, so must we.
        correlation_id: sent as `client-request-id` (shared.http.correlation's sane form).

        Raises: GraphUnauthorized (401: refresh the token and call again), the mapped
        shared.errors type for other Graph errors (see shared.graph.errors), GraphUnavailable
        when Graph cannot be reached within the deadline.
        """
        url = self.url_for(request)
        headers = graph_headers(
            token=token,
            correlation_id=correlation_id,
            prefer=request.prefer,
            extra=request.headers,
        )
        idempotent = request.is_idempotent
        started = self._clock()
        attempt = 0
        while True:
            attempt += 1
            remaining = self.retry.deadline_seconds - (self._clock() - started)
            if remaining <= 0:
                raise GraphUnavailable("Microsoft Graph did not answer within the deadline")
            http_request = self._http.build_request(
                request.method,
                url,
                json=request.json,
                content=request.content,
                headers=headers,
                timeout=httpx.Timeout(
                    min(self._timeout, remaining), connect=min(self._connect_timeout, remaining)
                ),
            )
            attempt_started = self._clock()
            try:
                async with self.limiter.slot(mailbox_key.lower()):
                    response = await self._http.send(http_request)
                    try:
                        content = await response.aread()
                    finally:
                        await response.aclose()
            except httpx.TransportError as exc:
                delay = self.retry.delay_after_transport_error(
                    idempotent=idempotent,
                    attempt=attempt,
                    elapsed=self._clock() - started,
                    rng=self._rng,
                )
                logger.info(
                    "graph %s %s failed: %s (attempt %d, retry in %s)",
                    request.method,
                    path_template(url, self.base_url),
                    type(exc).__name__,
                    attempt,
                    "-" if delay is None else f"{delay:.2f}s",
                )
                if delay is None:
                    raise GraphUnavailable("Microsoft Graph could not be reached") from exc
                await self._sleep(delay)
                continue

            status = response.status_code
            request_id = response.headers.get("request-id")
            level = logging.DEBUG if status < 400 else logging.INFO
            if logger.isEnabledFor(level):  # the template is work only a written line needs
                # Why no query, no mailbox, no ids in logs: filters carry addresses, subjects.
                logger.log(
                    level,
                    "graph %s %s -> %d in %.0f ms (request-id %s, attempt %d)",
                    request.method,
                    path_template(url, self.base_url),
                    status,
                    (self._clock() - attempt_started) * 1000,
                    request_id,
                    attempt,
                )
            if status < 400:
                return GraphResponse(status, response.headers, content, request_id)
            retry_after = parse_retry_after(response.headers)
            delay = None
            if status != 401:
                delay = self.retry.delay_after_status(
                    status=status,
                    retry_after=retry_after,
                    idempotent=idempotent,
                    attempt=attempt,
                    elapsed=self._clock() - started,
                    rng=self._rng,
                )
            if delay is None:
                error = error_for(status, response.headers, content)
                error.extensions.setdefault("graphRequestId", request_id)
                raise error
            await self._sleep(delay)

    def url_for(self, request: GraphRequest) -> str:
        """The absolute URL of `request`, which must lie under GRAPH_BASE_URL.

        Why checked here as well as in the builders: this is the one place that attaches the
        token, so it is the one place that must guarantee where the token goes."""
        path = request.path
        if path.startswith("/"):
            if not is_relative_graph_path(path):
                raise ValueError("not a Graph path built by shared.graph.paths")
            url = self.base_url + path
        elif is_within_base(path, self.base_url):
            url = path
        else:
            raise ValueError("refusing to send a token outside GRAPH_BASE_URL")
        if request.params:
            if "?" in url:
                raise ValueError("params given for a URL that already has a query (a nextLink)")
            url += "?" + encode_query(request.params)
        return url


def encode_query(params: Mapping[str, str]) -> str:
    """OData options as Graph documents them: `$` kept, spaces as %20 (never `+`)."""
    return "&".join(
        f"{quote(key, safe='$')}={quote(value, safe=_QUERY_SAFE)}" for key, value in params.items()
    )


_ID_LIKE = re.compile(r"[A-Za-z0-9\-_=+%]{20,}")


def path_template(url: str, base_url: str) -> str:
    """A loggable form of `url`: no query (filters hold addresses), the mailbox and ids
    replaced by placeholders (`/users/{mailbox}/messages/{id}`)."""
    path = url[len(base_url) :] if url.startswith(base_url) else url
    path = path.split("?", 1)[0]
    parts = path.split("/")
    out: list[str] = []
    for index, part in enumerate(parts):
        if index > 0 and parts[index - 1] == "users":
            out.append("{mailbox}")
        elif _ID_LIKE.fullmatch(part):
            out.append("{id}")
        else:
            out.append(part)
    return "/".join(out)
