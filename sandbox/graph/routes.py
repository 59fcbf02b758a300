"""The `/v1.0` endpoint: one catch-all route whose dispatcher both HTTP requests and `$batch`
sub-requests go through, so that auth, permissions, throttling and errors are identical."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sandbox.graph import (
    attachments,
    batch,
    delta,
    errors,
    folders,
    mailbox_settings,
    messages,
    rules,
    subscriptions,
)
from sandbox.graph.calls import Call
from sandbox.graph.errors import GraphError
from sandbox.graph.pipeline import (
    MAX_JSON_BODY,
    GraphRequest,
    GraphResponse,
    Target,
    error_response,
    resolve_target,
    split_path,
    throttle_key,
)
from sandbox.identity.claims import CAE_CAPABILITY, pending_demand
from sandbox.principal import Principal, TokenRejected

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from sandbox.context import SandboxContext

logger = logging.getLogger(__name__)

JSON_TYPE = (
    "application/json;odata.metadata=minimal;odata.streaming=true;"
    "IEEE754Compatible=false;charset=utf-8"
)
MESSAGE_ACTIONS = {
    "send",
    "reply",
    "replyall",
    "forward",
    "createreply",
    "createreplyall",
    "createforward",
    "move",
    "copy",
    "permanentdelete",
}
_ACTION_NAMES = {
    "reply": "reply",
    "replyall": "replyAll",
    "forward": "forward",
    "createreply": "createReply",
    "createreplyall": "createReplyAll",
    "createforward": "createForward",
}


def graph_routes(ctx: SandboxContext) -> list[BaseRoute]:
    # Timestamps, expiries and throttling windows follow the control API's shiftable clock.
    ctx.mail.clock = ctx.controls.now
    subscriptions.install(ctx)

    async def endpoint(request: Request) -> Response:
        return await handle_http(ctx, request)

    methods = ["GET", "POST", "PATCH", "PUT", "DELETE"]
    return [Route("/{path:path}", endpoint, methods=methods)]


def _segment(name: str) -> str:
    """Graph path segments are case-insensitive and actions may be namespace-qualified."""
    lowered = name.lower()
    return lowered.removeprefix("microsoft.graph.")


def route(ctx: SandboxContext, request: GraphRequest, target: Target) -> GraphResponse:
    call = Call(ctx, request, target)
    rest = target.rest
    method = request.method
    if not rest:
        raise errors.bad_request("The sandbox implements only the mail and settings of a user.")
    head = _segment(rest[0])
    if head == "sendmail" and len(rest) == 1:
        _only(method, "POST")
        return messages.send_mail(call)
    if head == "messages":
        return route_messages(call, rest[1:])
    if head == "mailfolders":
        return route_folders(call, rest[1:])
    if head == "getmailtips" and len(rest) == 1:
        _only(method, "POST")
        return mailbox_settings.get_mail_tips(call)
    if head == "mailboxsettings":
        if len(rest) == 1:
            _only(method, "GET", "PATCH")
            if method == "PATCH":
                return mailbox_settings.update_settings(call)
        else:
            _only(method, "GET")
        return mailbox_settings.get_settings(call, rest[1:])
    if head == "outlook" and len(rest) == 2 and _segment(rest[1]) == "mastercategories":
        _only(method, "GET", "POST")
        if method == "GET":
            return mailbox_settings.list_categories(call)
        return mailbox_settings.create_category(call)
    raise errors.unknown_segment(rest[0])


def _only(method: str, *allowed: str) -> None:
    if method not in allowed:
        raise errors.method_not_allowed()


def _by_method(method: str, handlers: dict[str, Callable[[], GraphResponse]]) -> GraphResponse:
    """The handler for `method` on one path (405 for a method the path does not take)."""
    _only(method, *handlers)
    return handlers[method]()


def route_folders(call: Call, rest: list[str]) -> GraphResponse:
    method = call.request.method
    if not rest:
        return _by_method(
            method,
            {
                "GET": lambda: folders.list_folders(call, None),
                "POST": lambda: folders.create_folder(call, None),
            },
        )
    folder_ref, tail = rest[0], rest[1:]
    if not tail:
        return _by_method(
            method,
            {
                "GET": lambda: folders.get_folder(call, folder_ref),
                "PATCH": lambda: folders.update_folder(call, folder_ref),
                "DELETE": lambda: folders.delete_folder(call, folder_ref),
            },
        )
    if _segment(tail[0]) == "messagerules":
        # Settings permissions, not mail ones: decided by the rule handlers themselves.
        return route_rules(call, folder_ref, tail[1:])
    call.authorize("read")
    folder = call.folder(folder_ref)
    head = _segment(tail[0])
    if head == "childfolders":
        if len(tail) == 1:
            return _by_method(
                method,
                {
                    "GET": lambda: folders.list_folders(call, folder),
                    "POST": lambda: folders.create_folder(call, folder),
                },
            )
        return route_folders(call, tail[1:])
    if head == "messages":
        if len(tail) == 1:
            return _by_method(
                method,
                {
                    "GET": lambda: messages.list_messages(call, folder),
                    "POST": lambda: messages.create_draft(call, folder),
                },
            )
        # `delta()`: OData's call syntax for a function without parameters, which Graph
        # accepts and msgraph-sdk sends.
        if len(tail) == 2 and _segment(tail[1]) in ("delta", "delta()"):
            _only(method, "GET")
            return delta.delta(call, folder)
        return route_messages(call, tail[1:])
    raise errors.unknown_segment(tail[0])


def route_rules(call: Call, folder_ref: str, rest: list[str]) -> GraphResponse:
    method = call.request.method
    if not rest:
        return _by_method(
            method,
            {
                "GET": lambda: rules.list_rules(call, folder_ref),
                "POST": lambda: rules.create_rule(call, folder_ref),
            },
        )
    if len(rest) == 1:
        rule_id = rest[0]
        return _by_method(
            method,
            {
                "GET": lambda: rules.get_rule(call, folder_ref, rule_id),
                "PATCH": lambda: rules.update_rule(call, folder_ref, rule_id),
                "DELETE": lambda: rules.delete_rule(call, folder_ref, rule_id),
            },
        )
    raise errors.unknown_segment(rest[-1])


def route_messages(call: Call, rest: list[str]) -> GraphResponse:
    method = call.request.method
    if not rest:
        return _by_method(
            method,
            {
                "GET": lambda: messages.list_messages(call, None),
                "POST": lambda: messages.create_draft(call, None),
            },
        )
    ref, tail = rest[0], rest[1:]
    if not tail:
        return _by_method(
            method,
            {
                "GET": lambda: messages.get_message(call, ref),
                "PATCH": lambda: messages.update_message(call, ref),
                "DELETE": lambda: messages.delete_message(call, ref),
            },
        )
    head = _segment(tail[0])
    if head == "$value" and len(tail) == 1:
        _only(method, "GET")
        return messages.message_value(call, ref)
    if head in MESSAGE_ACTIONS and len(tail) == 1:
        _only(method, "POST")
        if head == "send":
            return messages.send_draft(call, ref)
        if head in ("move", "copy"):
            return messages.move_or_copy(call, ref, head)
        if head == "permanentdelete":
            return messages.permanent_delete(call, ref)
        action = _ACTION_NAMES[head]
        if action.startswith("create"):
            return messages.create_response(call, ref, action)
        return messages.respond(call, ref, action)
    if head == "attachments":
        if len(tail) == 1:
            return _by_method(
                method,
                {
                    "GET": lambda: attachments.list_attachments(call, ref),
                    "POST": lambda: attachments.add_attachment(call, ref),
                },
            )
        sub = _segment(tail[1])
        if sub == "createuploadsession" and len(tail) == 2:
            _only(method, "POST")
            return attachments.create_upload_session(call, ref)
        attachment_ref = tail[1]
        if len(tail) == 2:
            return _by_method(
                method,
                {
                    "GET": lambda: attachments.get_attachment(call, ref, attachment_ref),
                    "DELETE": lambda: attachments.delete_attachment(call, ref, attachment_ref),
                },
            )
        if len(tail) == 3 and _segment(tail[2]) == "$value":
            _only(method, "GET")
            return attachments.attachment_value(call, ref, attachment_ref)
    raise errors.unknown_segment(tail[-1])


def execute(ctx: SandboxContext, request: GraphRequest) -> GraphResponse:
    """Run one authenticated request synchronously (a `$batch` sub-request), throttled."""
    target = resolve_target(ctx, request)
    assert request.principal is not None
    key = throttle_key(request.principal, target.mailbox)
    ctx.mail.limiter.enter(key)
    try:
        return route(ctx, request, target)
    finally:
        ctx.mail.limiter.leave(key)


def authenticate(ctx: SandboxContext, header: str | None) -> Principal:
    # Imported late: the identity half imports the server, which imports these routes.
    from sandbox.identity.verify import authenticate_graph

    return authenticate_graph(ctx, header)


async def handle_http(ctx: SandboxContext, http: Request) -> Response:
    request_id = str(uuid.uuid4())
    client_request_id = http.headers.get("client-request-id") or request_id
    path = "/" + http.path_params.get("path", "")
    base_url = f"{http.url.scheme}://{http.url.netloc}"
    request = GraphRequest(
        method=http.method,
        path=path,
        params=list(http.query_params.multi_items()),
        headers=_headers(http),
        body=b"",
        base_url=base_url,
    )
    try:
        if path.startswith(attachments.UPLOAD_PATH):
            response = await upload_chunk(ctx, http, request)
        else:
            try:
                request.principal = authenticate(ctx, http.headers.get("authorization"))
            except TokenRejected as rejected:
                raise GraphError(
                    401,
                    rejected.code,
                    rejected.message,
                    {
                        "WWW-Authenticate": (
                            f'Bearer realm="", authorization_uri="{base_url}/common/oauth2/'
                            f'authorize", client_id="00000003-0000-0000-c000-000000000000"'
                        )
                    },
                ) from None
            _claims_challenge(ctx, request.principal, base_url)
            if split_path(path) == ["$batch"]:
                _only(http.method, "POST")
                request.body = await _read_body(http)
                response = batch.run_batch(ctx, request, execute)
            elif split_path(path)[:1] and split_path(path)[0].lower() == "subscriptions":
                request.body = await _read_body(http)
                response = await subscriptions.handle(ctx, request)
            else:
                target = resolve_target(ctx, request)
                key = throttle_key(request.principal, target.mailbox)
                ctx.mail.limiter.enter(key)
                try:
                    request.body = await _read_body(http)
                    response = route(ctx, request, target)
                finally:
                    ctx.mail.limiter.leave(key)
    except GraphError as failure:
        response = error_response(ctx, failure, request_id, client_request_id)
    except Exception:
        logger.exception("graph request failed (request-id %s)", request_id)
        response = error_response(
            ctx,
            GraphError(500, "generalException", "An internal server error occurred."),
            request_id,
            client_request_id,
        )
    return render(response, request, request_id, client_request_id)


def _claims_challenge(ctx: SandboxContext, principal: Principal, base_url: str) -> None:
    """A pending claims challenge for the user (sandbox/identity/claims.py) answers 401, to
    CAE-capable tokens only: Graph challenges no client that did not declare CP1."""
    if principal.kind != "user" or CAE_CAPABILITY not in principal.capabilities:
        return
    demand = pending_demand(ctx.identity.claims_demands, principal.upn)
    if demand is None:
        return
    demand.challenged += 1
    raise GraphError(
        401,
        "InvalidAuthenticationToken",
        "Continuous access evaluation resulted in challenge with result: InteractionRequired "
        "and code: TokenIssuedBeforeRevocationTimestamp",
        {"WWW-Authenticate": demand.www_authenticate(base_url)},
    )


async def _read_body(http: Request) -> bytes:
    """JSON bodies are capped at Graph's 4 MB before they are read into memory."""
    declared = http.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_JSON_BODY:
        raise GraphError(
            413, "RequestEntityTooLarge", "The request payload exceeds the 4 MB limit."
        )
    return await http.body()


def _headers(http: Request) -> dict[str, str]:
    """Lower-case names; repeated headers (several `Prefer`s) joined as HTTP allows."""
    out: dict[str, str] = {}
    for name, value in http.headers.items():
        key = name.lower()
        out[key] = f"{out[key]}, {value}" if key in out else value
    return out


def render(
    response: GraphResponse, request: GraphRequest, request_id: str, client_request_id: str
) -> Response:
    headers = {
        "request-id": request_id,
        "client-request-id": client_request_id,
        "OData-Version": "4.0",
        **response.headers,
    }
    applied = []
    if request.immutable_ids:
        applied.append('IdType="ImmutableId"')
    if request.prefer("outlook.body-content-type") is not None:
        applied.append(f'outlook.body-content-type="{request.body_type}"')
    if applied:
        headers["Preference-Applied"] = ", ".join(applied)
    if response.raw is not None:
        return Response(
            bytes(response.raw) if isinstance(response.raw, memoryview) else response.raw,
            status_code=response.status,
            headers=headers,
            media_type=response.content_type or "application/octet-stream",
        )
    if response.body is None:
        return Response(status_code=response.status, headers=headers)
    content = json.dumps(response.body, separators=(",", ":")).encode()
    return Response(content, status_code=response.status, headers=headers, media_type=JSON_TYPE)


async def upload_chunk(ctx: SandboxContext, http: Request, request: GraphRequest) -> GraphResponse:
    """PUT (or DELETE) on a pre-authenticated uploadUrl: no Authorization header allowed."""
    session_id = request.path[len(attachments.UPLOAD_PATH) :]
    if http.headers.get("authorization"):
        raise GraphError(
            401,
            "InvalidAuthenticationToken",
            "The uploadUrl is pre-authenticated; do not send an Authorization header.",
        )
    store = ctx.mail
    session = attachments.find_session(
        store, session_id, http.query_params.get("authtoken"), store.clock()
    )
    if http.method == "DELETE":
        del store.upload_sessions[session.id]
        return GraphResponse(204)
    _only(http.method, "PUT")
    plan = attachments.plan_chunk(
        session, http.headers.get("content-range"), http.headers.get("content-length")
    )
    key = (session.app_id, session.mailbox)
    store.limiter.enter(key)
    session.busy = True
    try:
        store.limiter.charge_upload(key, plan.length)
        if session.buffer is None:
            session.buffer = bytearray(session.size)
        # Chunks are written in place into the preallocated buffer: no concatenation.
        written = 0
        view = memoryview(session.buffer)
        async for piece in http.stream():
            if not piece:
                continue
            room = plan.length - written
            if len(piece) > room:
                written += len(piece)
                continue
            view[plan.start + written : plan.start + written + len(piece)] = piece
            written += len(piece)
        view.release()
        return attachments.complete_chunk(f"{request.base_url}/v1.0", store, plan, written)
    finally:
        session.busy = False
        store.limiter.leave(key)
