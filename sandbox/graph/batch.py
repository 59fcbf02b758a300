"""`POST /v1.0/$batch`: JSON batching with up to 20 requests, `dependsOn` ordering and
424 Failed Dependency, each sub-request run through the same pipeline as a direct call."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from sandbox.graph import errors
from sandbox.graph.errors import GraphError, error_body
from sandbox.graph.pipeline import GraphRequest, GraphResponse, error_response

if TYPE_CHECKING:
    from sandbox.context import SandboxContext

MAX_REQUESTS = 20
Executor = Callable[["SandboxContext", GraphRequest], GraphResponse]


def _order(requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Requests in an order that honours dependsOn (stable otherwise); cycles are refused."""
    by_id = {r["id"]: r for r in requests}
    done: set[str] = set()
    visiting: set[str] = set()
    ordered: list[dict[str, Any]] = []

    def visit(item: dict[str, Any]) -> None:
        if item["id"] in done:
            return
        if item["id"] in visiting:
            raise errors.bad_request("The batch request's dependsOn contains a cycle.")
        visiting.add(item["id"])
        for dep in item.get("dependsOn") or []:
            visit(by_id[dep])
        visiting.discard(item["id"])
        done.add(item["id"])
        ordered.append(item)

    for item in requests:
        visit(item)
    return ordered


def _validate(body: Any) -> list[dict[str, Any]]:
    if not isinstance(body, dict) or not isinstance(body.get("requests"), list):
        raise errors.bad_request("Invalid batch payload format.")
    requests: list[dict[str, Any]] = body["requests"]
    if not requests:
        raise errors.bad_request("Invalid batch payload format: no requests.")
    if len(requests) > MAX_REQUESTS:
        raise errors.bad_request(
            f"Number of requests in the batch exceeds the limit of {MAX_REQUESTS}."
        )
    seen: set[str] = set()
    for item in requests:
        if not isinstance(item, dict):
            raise errors.bad_request("Invalid batch payload format.")
        rid, method, url = item.get("id"), item.get("method"), item.get("url")
        if not isinstance(rid, str) or not rid:
            raise errors.bad_request("Each request in a batch needs a non-empty string 'id'.")
        if rid in seen:
            raise errors.bad_request(f"Duplicate request id '{rid}' in the batch.")
        seen.add(rid)
        if not isinstance(method, str) or not isinstance(url, str) or not url:
            raise errors.bad_request(f"Request '{rid}' needs a 'method' and a relative 'url'.")
        if method.upper() in ("POST", "PATCH", "PUT"):
            headers = {str(k).lower() for k in (item.get("headers") or {})}
            if "body" not in item or "content-type" not in headers:
                raise errors.bad_request(
                    f"Write request id : {rid} does not contain Content-Type header or body."
                )
        depends = item.get("dependsOn")
        if depends is not None and (
            not isinstance(depends, list) or not all(isinstance(d, str) for d in depends)
        ):
            raise errors.bad_request(f"Request '{rid}' has an invalid dependsOn.")
    ids = {item["id"] for item in requests}
    for item in requests:
        for dep in item.get("dependsOn") or []:
            if dep not in ids:
                raise errors.bad_request(
                    f"Request '{item['id']}' depends on '{dep}', which is not in the batch."
                )
    return requests


def run_batch(ctx: SandboxContext, outer: GraphRequest, execute: Executor) -> GraphResponse:
    requests = _validate(outer.json())
    results: dict[str, GraphResponse] = {}
    for item in _order(requests):
        failed = [d for d in item.get("dependsOn") or [] if results[d].status >= 400]
        if failed:
            results[item["id"]] = GraphResponse(
                424,
                error_body(
                    "FailedDependency",
                    f"The request depends on failed request(s): {', '.join(failed)}.",
                    date=ctx.controls.now().strftime("%Y-%m-%dT%H:%M:%S"),
                    request_id="",
                    client_request_id="",
                ),
            )
            continue
        results[item["id"]] = _run_one(ctx, outer, item, execute)
    responses = [_describe(item["id"], results[item["id"]]) for item in requests]
    return GraphResponse(200, {"responses": responses})


def _run_one(
    ctx: SandboxContext, outer: GraphRequest, item: dict[str, Any], execute: Executor
) -> GraphResponse:
    url: str = item["url"]
    parts = urlsplit(url)
    headers = {str(k).lower(): str(v) for k, v in (item.get("headers") or {}).items()}
    headers.pop("authorization", None)  # the batch's own token applies to every request
    for name in ("prefer", "client-request-id"):
        if name not in headers and name in outer.headers:
            headers[name] = outer.headers[name]
    body = item.get("body")
    raw = b""
    if body is not None:
        import json

        raw = json.dumps(body).encode()
    request = GraphRequest(
        method=item["method"].upper(),
        path="/" + parts.path.lstrip("/"),
        params=parse_qsl(parts.query, keep_blank_values=True),
        headers=headers,
        body=raw,
        base_url=outer.base_url,
        principal=outer.principal,
    )
    try:
        if parts.scheme or parts.netloc:
            raise errors.bad_request("Batch request urls must be relative, e.g. '/me/messages'.")
        if request.path.lower().startswith("/$batch"):
            raise errors.bad_request("A batch cannot contain another batch.")
        response = execute(ctx, request)
    except GraphError as failure:
        response = error_response(ctx, failure, "", headers.get("client-request-id", ""))
    if request.immutable_ids:
        response.headers.setdefault("Preference-Applied", 'IdType="ImmutableId"')
    return response


def _describe(request_id: str, response: GraphResponse) -> dict[str, Any]:
    out: dict[str, Any] = {"id": request_id, "status": response.status}
    headers = dict(response.headers)
    if response.raw is not None:
        headers["Content-Type"] = response.content_type or "application/octet-stream"
        out["body"] = base64.b64encode(bytes(response.raw)).decode("ascii")
    elif response.body is not None:
        headers["Content-Type"] = "application/json"
        out["body"] = response.body
    out["headers"] = headers
    return out
