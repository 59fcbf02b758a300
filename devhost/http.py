"""ASGI side of HTTP functions: route a request, check its key, call the function, answer.

Mirrors the host: the route prefix from host.json, ASP.NET route precedence, a method
mismatch answered like no match at all (404, empty body), a missing or wrong key answered
401 with an empty body, a failing function answered 500 with an empty body.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import azure.functions as func

from devhost.invoke import call_function
from devhost.keys import KeyRing, presented_key
from devhost.loader import HttpFunction
from devhost.routing import RouteTable, RouteTemplate, split_path

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# Headers the dev host computes itself from the body it sends.
_FRAMING_HEADERS = frozenset({"content-length", "transfer-encoding"})


@dataclass
class Response:
    """A response ready to be sent over ASGI."""

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    async def send(self, send: Send) -> None:
        """Send status, headers and body."""
        raw_headers = [
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in self.headers
            if name.lower() not in _FRAMING_HEADERS
        ]
        raw_headers.append((b"content-length", str(len(self.body)).encode("ascii")))
        await send({"type": "http.response.start", "status": self.status, "headers": raw_headers})
        await send({"type": "http.response.body", "body": self.body})


def json_response(status: int, document: Any) -> Response:
    """A JSON response."""
    body = json.dumps(document).encode("utf-8")
    return Response(status, [("content-type", "application/json; charset=utf-8")], body)


@dataclass(frozen=True)
class IncomingRequest:
    """The parts of an ASGI request the dev host works with."""

    method: str
    raw_path: str
    url: str
    headers: dict[str, str]
    query: dict[str, str]
    body: bytes
    client_host: str | None


def _joined(pairs: Iterable[tuple[str, str]], lower_names: bool) -> dict[str, str]:
    # Repeated names become one comma-separated value, as the host hands them to workers.
    joined: dict[str, str] = {}
    for name, value in pairs:
        key = name.lower() if lower_names else name
        joined[key] = f"{joined[key]},{value}" if key in joined else value
    return joined


async def read_request(scope: Scope, receive: Receive) -> IncomingRequest:
    """Read the whole request (body included) from ASGI."""
    chunks: list[bytes] = []
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    headers = _joined(
        ((name.decode("latin-1"), value.decode("latin-1")) for name, value in scope["headers"]),
        lower_names=True,
    )
    query_string = scope.get("query_string", b"").decode("latin-1")
    query = _joined(parse_qsl(query_string, keep_blank_values=True), lower_names=False)
    raw_path = (scope.get("raw_path") or scope["path"].encode("utf-8")).decode("latin-1")
    raw_path = raw_path.split("?", 1)[0]
    host = headers.get("host")
    if host is None:
        server_host, server_port = scope.get("server") or ("127.0.0.1", 80)
        host = f"{server_host}:{server_port}"
    url = f"{scope.get('scheme', 'http')}://{host}{raw_path}"
    if query_string:
        url = f"{url}?{query_string}"
    client = scope.get("client")
    return IncomingRequest(
        method=scope["method"].upper(),
        raw_path=raw_path,
        url=url,
        headers=headers,
        query=query,
        body=b"".join(chunks),
        client_host=client[0] if client else None,
    )


def to_response(result: Any) -> Response:
    """Convert what an HTTP function returned, as the Python worker and host do."""
    if result is None:
        return Response(204)  # Functions 2.x+: no return value = 204 No Content
    if isinstance(result, str):
        return Response(200, [("content-type", "text/plain; charset=utf-8")], result.encode())
    if isinstance(result, func.HttpResponse):
        headers = [(str(name), str(value)) for name, value in result.headers.items()]
        for name, value in headers:
            # Fail here (a logged 500) rather than half-way through sending the response.
            name.encode("latin-1")
            value.encode("latin-1")
        if not any(name.lower() == "content-type" for name, _ in headers):
            # The worker's default: mimetype, with the charset for text/* types.
            content_type = result.mimetype
            if content_type.startswith("text/"):
                content_type = f"{content_type}; charset={result.charset}"
            headers.append(("content-type", content_type))
        return Response(int(result.status_code), headers, result.get_body())
    raise TypeError(f"HTTP function returned {type(result).__name__}, not HttpResponse")


class HttpFunctionRouter:
    """Maps request paths to HTTP functions under the host's route prefix."""

    def __init__(self, functions: Iterable[HttpFunction], route_prefix: str) -> None:
        self.route_prefix = route_prefix.strip("/")
        self._prefix_segments = split_path(self.route_prefix)
        self._table: RouteTable[HttpFunction] = RouteTable()
        for function in functions:
            self._table.add(RouteTemplate.parse(function.route), function)

    def url_path(self, function: HttpFunction) -> str:
        """The URL path template of ``function``, e.g. ``/api/items/{id}``."""
        parts = [self.route_prefix, function.route.strip("/")]
        return "/" + "/".join(part for part in parts if part)

    def resolve(self, raw_path: str, method: str) -> tuple[HttpFunction, dict[str, str]] | None:
        """The function answering ``method`` on ``raw_path`` and its route values, or None."""
        segments = split_path(raw_path)
        prefix = self._prefix_segments
        if [s.casefold() for s in segments[: len(prefix)]] != [p.casefold() for p in prefix]:
            return None
        for match in self._table.matches(segments[len(prefix) :]):
            methods = match.target.methods
            # A route whose methods exclude this one is skipped like a non-matching route:
            # the host registers the method as a route constraint (hence 404, not 405).
            if methods is None or method in methods:
                return match.target, match.values
        return None


class HttpFunctionsApp:
    """Serves the HTTP functions: routing, keys, invocation, response conversion."""

    def __init__(self, router: HttpFunctionRouter, keys: KeyRing, executor: Executor) -> None:
        self._router = router
        self._keys = keys
        self._executor = executor

    async def handle(self, request: IncomingRequest) -> Response:
        """Answer one request."""
        started = time.perf_counter()
        resolved = self._router.resolve(request.raw_path, request.method)
        if resolved is None:
            self._log(request.method, "(no route)", 404, started)
            return Response(404)
        function, route_values = resolved
        if not self._keys.authorizes(
            function.auth_level, presented_key(request.headers, request.query)
        ):
            self._log(request.method, function.route, 401, started)
            return Response(401)
        response = await self._invoke(function, request, route_values)
        self._log(request.method, function.route, response.status, started)
        return response

    async def _invoke(
        self, function: HttpFunction, request: IncomingRequest, route_values: Mapping[str, str]
    ) -> Response:
        http_request = func.HttpRequest(
            method=request.method,
            url=request.url,
            headers=request.headers,
            params=request.query,
            route_params=dict(route_values),
            body=request.body,
        )
        try:
            result = await call_function(
                function.handler, function.name, function.parameter, http_request, self._executor
            )
            return to_response(result)
        except Exception:
            # Outermost edge of an invocation: the host logs the error and answers 500
            # with an empty body, leaking nothing.
            logger.exception("HTTP function %s failed", function.name)
            return Response(500)

    @staticmethod
    def _log(method: str, route: str, status: int, started: float) -> None:
        # Never the path or query: they may carry an auth code or personal data.
        elapsed_ms = (time.perf_counter() - started) * 1000
        logger.info("%s %s -> %s in %.1f ms", method, route, status, elapsed_ms)
