"""Graph change notifications for messages: `/v1.0/subscriptions` (POST, GET, PATCH, DELETE,
`reauthorize`), the `validationToken` handshake, notifications posted off the request path
when a message arrives in a subscribed folder, lifecycle events on demand, and expiry on the
sandbox clock.

What Graph documents and the sandbox copies:
- creation validates `notificationUrl` (and `lifecycleNotificationUrl`) by POSTing
  `?validationToken=<url-encoded token>`; the endpoint must answer 200 with the decoded token
  as text/plain within 10 seconds, otherwise the subscription is not created (400);
- https only (the sandbox also allows http on loopback, so that a local app can receive);
- `clientState` at most 128 characters, echoed in every notification;
- Outlook message subscriptions live at most 10,080 minutes (7 days);
- notifications may batch several changes in one POST (`{"value": [...]}`); an endpoint that
  does not answer 2xx within 3 seconds is retried with backoff.

Control routes (`/_sandbox/subscriptions...`): list (without client states), send a lifecycle
event, and pause notifications (to make `missed` testable: messages that arrive while paused
are not notified; a `missed` lifecycle event then tells the subscriber to resync).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import re
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from sandbox.graph import errors
from sandbox.graph.errors import GraphError
from sandbox.graph.pipeline import GraphRequest, GraphResponse, authorize, split_path
from sandbox.graph.store import format_datetime, parse_datetime

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from sandbox.context import SandboxContext
    from sandbox.directory import User
    from sandbox.graph.store import Mailbox, Message
    from sandbox.principal import Principal

logger = logging.getLogger(__name__)

MAX_MESSAGE_MINUTES = 10080
MAX_CLIENT_STATE = 128
HANDSHAKE_TIMEOUT = 10.0
DELIVERY_TIMEOUT = 3.0
DELIVERY_BACKOFF = (0.25, 0.5, 1.0, 2.0)
MAX_ITEMS_PER_POST = 20
LIFECYCLE_EVENTS = ("reauthorizationRequired", "subscriptionRemoved", "missed")
_CREATE_FIELDS = {
    "changeType",
    "notificationUrl",
    "lifecycleNotificationUrl",
    "resource",
    "expirationDateTime",
    "clientState",
    "latestSupportedTlsVersion",
    "includeResourceData",
    "@odata.type",
}
_RESOURCE = re.compile(
    r"^/?(?:me|users/(?P<user>[^/]+))"
    r"(?:/mailFolders(?:/(?P<folder>[^/()]+)|\('(?P<folder_q>[^']+)'\)))?/messages$",
    re.IGNORECASE,
)


@dataclass
class Subscription:
    id: str
    app_id: str
    creator_upn: str | None
    tenant_id: str
    resource: str
    change_types: frozenset[str]
    notification_url: str
    lifecycle_url: str | None
    client_state: str | None
    expires: datetime
    user_id: str
    mailbox_upn: str
    folder_id: str | None  # None: every folder of the mailbox
    immutable_ids: bool
    paused: bool = False
    needs_reauthorization: bool = False
    delivered: int = 0  # notifications (items) answered 2xx
    failed: int = 0  # items given up on after the retries
    pending: list[dict[str, Any]] = field(default_factory=list)
    flushing: bool = False

    def json(self) -> dict[str, Any]:
        return {
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#subscriptions/$entity",
            "id": self.id,
            "resource": self.resource,
            "applicationId": self.app_id,
            "changeType": ",".join(sorted(self.change_types)),
            "clientState": self.client_state,
            "notificationUrl": self.notification_url,
            "lifecycleNotificationUrl": self.lifecycle_url,
            "expirationDateTime": _iso(self.expires),
            "creatorId": self.user_id,
            "includeResourceData": False,
            "latestSupportedTlsVersion": "v1_2",
            "encryptionCertificate": None,
            "encryptionCertificateId": None,
            "notificationUrlAppId": None,
        }


def _iso(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.0000000Z")


def _subscriptions(ctx: SandboxContext) -> dict[str, Subscription]:
    store: dict[str, Subscription] = ctx.mail.subscriptions
    return store


def install(ctx: SandboxContext) -> None:
    """Hook notifications into the mail store (once per process)."""

    def arrived(mailbox: Mailbox, message: Message) -> None:
        _notify(ctx, mailbox, message, "created")

    def updated(mailbox: Mailbox, message: Message) -> None:
        _notify(ctx, mailbox, message, "updated")

    ctx.mail.arrival_listeners.append(arrived)
    ctx.mail.update_listeners.append(updated)


# Graph endpoint --------------------------------------------------------------------------


async def handle(ctx: SandboxContext, request: GraphRequest) -> GraphResponse:
    """`/subscriptions[/{id}[/reauthorize]]`, after authentication."""
    _expire(ctx)
    segments = split_path(request.path)[1:]
    method = request.method
    if not segments:
        if method == "POST":
            return await _create(ctx, request)
        if method == "GET":
            mine = [s.json() for s in _subscriptions(ctx).values() if _owns(request, s)]
            return GraphResponse(200, {"value": mine})
        raise errors.method_not_allowed()
    subscription = _subscriptions(ctx).get(segments[0])
    if subscription is None or not _owns(request, subscription):
        raise GraphError(404, "ResourceNotFound", "The object was not found.")
    if len(segments) == 2 and segments[1].lower() == "reauthorize" and method == "POST":
        subscription.needs_reauthorization = False
        return GraphResponse(204)
    if len(segments) != 1:
        raise errors.unknown_segment(segments[1])
    if method == "GET":
        return GraphResponse(200, subscription.json())
    if method == "DELETE":
        del _subscriptions(ctx)[subscription.id]
        return GraphResponse(204)
    if method == "PATCH":
        body = request.json()
        if not isinstance(body, dict) or set(body) - {"expirationDateTime", "@odata.type"}:
            raise errors.bad_request("Only expirationDateTime can be updated.")
        subscription.expires = _expiry(ctx, body.get("expirationDateTime"))
        subscription.needs_reauthorization = False
        return GraphResponse(200, subscription.json())
    raise errors.method_not_allowed()


def _owns(request: GraphRequest, subscription: Subscription) -> bool:
    principal = request.principal
    return principal is not None and principal.app_id == subscription.app_id


def _expiry(ctx: SandboxContext, value: Any) -> datetime:
    if not isinstance(value, str):
        raise errors.bad_request("expirationDateTime is required.")
    try:
        expires = parse_datetime(value)
    except ValueError:
        raise errors.bad_request("expirationDateTime is not a valid date/time.") from None
    now = ctx.controls.now()
    if expires <= now:
        raise errors.bad_request("Subscription expiration must be in the future.", "ExtensionError")
    if expires > now + timedelta(minutes=MAX_MESSAGE_MINUTES):
        raise errors.bad_request(
            f"Subscription expiration can only be {MAX_MESSAGE_MINUTES} minutes in the future.",
            "ExtensionError",
        )
    return expires


def _check_url(value: Any, name: str) -> str:
    if not isinstance(value, str) or len(value) > 2048:
        raise errors.bad_request(f"{name} is required.")
    parts = urlsplit(value)
    if parts.scheme == "https" and parts.hostname:
        return value
    if parts.scheme == "http" and _loopback(parts.hostname):
        return value
    raise errors.bad_request(f"The {name} must be an https URL.", "ValidationError")


def _loopback(host: str | None) -> bool:
    if host is None:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _resolve(ctx: SandboxContext, request: GraphRequest, resource: Any) -> tuple[User, str | None]:
    if not isinstance(resource, str):
        raise errors.bad_request("resource is required.")
    match = _RESOURCE.match(resource.strip())
    if match is None:
        raise errors.bad_request(
            f"Resource '{resource}' is not supported by the sandbox: use messages of a user or"
            " of one of their folders.",
            "ExtensionError",
        )
    principal = request.principal
    assert principal is not None
    ref = match.group("user")
    if ref is None:
        if principal.kind != "user" or principal.upn is None:
            raise errors.bad_request("/me request is only valid with delegated authentication.")
        ref = principal.upn
    user = ctx.directory.find(ref)
    if user is None:
        raise errors.invalid_user(ref)
    refuse_foreign_delegated(principal, user)
    authorize(ctx, principal, user, "read")
    mailbox = ctx.mail.ensure_mailbox(user)
    folder_ref = match.group("folder") or match.group("folder_q")
    if folder_ref is None:
        return user, None
    folder = mailbox.folder(folder_ref)
    if folder is None:
        raise errors.item_not_found()
    return user, folder.id


def refuse_foreign_delegated(principal: Principal, user: User) -> None:
    """Graph accepts a delegated subscription only on the signed-in user's own mailbox: the
    delegated `.Shared` permissions read a shared or delegated mailbox but "don't support
    subscribing to change notifications on items in shared or delegated folders"
    (learn.microsoft.com/graph/outlook-share-messages-folders). Even with full access,
    Exchange refuses to create it with an ExtensionError wrapping Forbidden (as reported
    for shared calendars and confirmed by Graph's maintainers); only application
    permissions subscribe to any user's folders."""
    if principal.kind == "user" and (principal.upn or "").lower() != user.upn:
        raise GraphError(
            403,
            "ExtensionError",
            "Operation: Create; Exception: [Status Code: Forbidden; Reason: Forbidden]",
        )


async def _create(ctx: SandboxContext, request: GraphRequest) -> GraphResponse:
    body = request.json()
    if not isinstance(body, dict):
        raise errors.bad_request("The body must be a JSON object.")
    unknown = set(body) - _CREATE_FIELDS
    if unknown:
        name = sorted(unknown)[0]
        raise errors.bad_request(f"Invalid property '{name}' in the request.", "InvalidRequest")
    change_types = frozenset(
        part.strip() for part in str(body.get("changeType") or "").split(",") if part.strip()
    )
    if not change_types or change_types - {"created", "updated", "deleted"}:
        raise errors.bad_request("changeType must be created, updated and/or deleted.")
    if body.get("includeResourceData"):
        raise errors.bad_request(
            "An encryptionCertificate is required when includeResourceData is true.",
            "ValidationError",
        )
    client_state = body.get("clientState")
    if client_state is not None and (
        not isinstance(client_state, str) or len(client_state) > MAX_CLIENT_STATE
    ):
        raise errors.bad_request(
            f"clientState must be a string of at most {MAX_CLIENT_STATE} characters."
        )
    notification_url = _check_url(body.get("notificationUrl"), "notificationUrl")
    lifecycle_url = body.get("lifecycleNotificationUrl")
    if lifecycle_url is not None:
        lifecycle_url = _check_url(lifecycle_url, "lifecycleNotificationUrl")
    expires = _expiry(ctx, body.get("expirationDateTime"))
    user, folder_id = _resolve(ctx, request, body.get("resource"))
    for url in {notification_url, lifecycle_url} - {None}:
        assert url is not None
        await _handshake(url)
    principal = request.principal
    assert principal is not None
    subscription = Subscription(
        id=str(uuid.uuid4()),
        app_id=principal.app_id,
        creator_upn=principal.upn,
        tenant_id=principal.tenant_id,
        resource=str(body["resource"]),
        change_types=change_types,
        notification_url=notification_url,
        lifecycle_url=lifecycle_url,
        client_state=client_state,
        expires=expires,
        user_id=user.id,
        mailbox_upn=user.upn,
        folder_id=folder_id,
        immutable_ids=request.immutable_ids,
    )
    _subscriptions(ctx)[subscription.id] = subscription
    return GraphResponse(201, subscription.json())


async def _handshake(url: str) -> None:
    # Graph's tokens are prose with spaces and colons: a receiver must URL-decode them.
    token = (
        "Validation: Testing client application reachability for subscription"
        f" Request-Id: {uuid.uuid4()} {secrets.token_hex(4)}"
    )
    separator = "&" if "?" in url else "?"
    target = f"{url}{separator}validationToken={quote(token, safe='')}"
    try:
        async with httpx.AsyncClient(timeout=HANDSHAKE_TIMEOUT) as client:
            response = await client.post(target, headers={"content-type": "text/plain"})
    except httpx.HTTPError:
        raise _validation_failed() from None
    content_type = response.headers.get("content-type", "")
    if (
        response.status_code != 200
        or not content_type.lower().startswith("text/plain")
        or response.text != token
    ):
        raise _validation_failed()


def _validation_failed() -> GraphError:
    return GraphError(
        400,
        "ValidationError",
        "Subscription validation request failed. Notification endpoint must respond with"
        " 200 OK to validation request.",
    )


def _expire(ctx: SandboxContext) -> None:
    """Subscriptions past their expiry stop notifying and disappear, on the sandbox clock."""
    now = ctx.controls.now()
    store = _subscriptions(ctx)
    for sid in [sid for sid, s in store.items() if s.expires <= now]:
        del store[sid]


# Notifications ---------------------------------------------------------------------------


def _notify(ctx: SandboxContext, mailbox: Mailbox, message: Message, change: str) -> None:
    """A message arrived in a folder (`created`: new, moved or copied in) or changed in
    place (`updated`): queue a notification for each subscription asking for that change."""
    store = _subscriptions(ctx)
    if not store:
        return
    _expire(ctx)
    for subscription in list(store.values()):
        if (
            subscription.mailbox_upn != mailbox.upn
            or change not in subscription.change_types
            or (subscription.folder_id is not None and subscription.folder_id != message.folder_id)
            or subscription.paused
            or ctx.mail.notifications_paused == "drop"
        ):
            continue
        message_id = message.id_for(subscription.immutable_ids)
        resource = f"Users/{subscription.user_id}/Messages/{message_id}"
        subscription.pending.append(
            {
                "subscriptionId": subscription.id,
                "subscriptionExpirationDateTime": _iso(subscription.expires),
                "changeType": change,
                "resource": resource,
                "resourceData": {
                    "@odata.type": "#Microsoft.Graph.Message",
                    "@odata.id": resource,
                    "@odata.etag": f'W/"{message.props.get("changeKey", "")}"',
                    "id": message_id,
                },
                "clientState": subscription.client_state,
                "tenantId": subscription.tenant_id,
            }
        )
        _schedule_flush(ctx, subscription)


def _schedule_flush(ctx: SandboxContext, subscription: Subscription) -> None:
    if subscription.flushing or ctx.mail.notifications_paused is not None:
        return  # held: sent when notifications resume
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # seeding outside a request: nobody to notify yet
        return
    subscription.flushing = True
    task = loop.create_task(_flush(ctx, subscription))
    _TASKS.add(task)
    task.add_done_callback(_TASKS.discard)


_TASKS: set[asyncio.Task[None]] = set()


async def _flush(ctx: SandboxContext, subscription: Subscription) -> None:
    """Post what is pending, in batches, off the request path (one flusher per subscription,
    so notifications for one subscription are never posted concurrently)."""
    try:
        await asyncio.sleep(0.05)  # let a burst collect into one POST, as Graph does
        while subscription.pending:
            batch = subscription.pending[:MAX_ITEMS_PER_POST]
            del subscription.pending[:MAX_ITEMS_PER_POST]
            if subscription.id not in _subscriptions(ctx):
                return
            if await _post(subscription.notification_url, {"value": batch}):
                subscription.delivered += len(batch)
            else:
                subscription.failed += len(batch)
    finally:
        subscription.flushing = False


async def _post(url: str, payload: dict[str, Any]) -> bool:
    body = json.dumps(payload).encode()
    async with httpx.AsyncClient(timeout=DELIVERY_TIMEOUT) as client:
        for delay in (0.0, *DELIVERY_BACKOFF):
            if delay:
                await asyncio.sleep(delay)
            try:
                response = await client.post(
                    url, content=body, headers={"content-type": "application/json"}
                )
            except httpx.HTTPError:
                continue
            if 200 <= response.status_code < 300:
                return True
            if response.status_code < 500 and response.status_code != 429:
                return False
    logger.info("notification to a subscriber gave up after retries")
    return False


# Control routes --------------------------------------------------------------------------


def control_routes(ctx: SandboxContext) -> list[BaseRoute]:
    def _error(status: int, code: str, message: str) -> JSONResponse:
        return JSONResponse({"error": code, "message": message}, status_code=status)

    async def list_all(request: Request) -> JSONResponse:
        _expire(ctx)
        out = []
        for s in _subscriptions(ctx).values():
            view = s.json()
            view.pop("clientState")  # the control API never hands out secrets
            view.update(
                {
                    "mailbox": s.mailbox_upn,
                    "folderId": s.folder_id,
                    "paused": s.paused,
                    "needsReauthorization": s.needs_reauthorization,
                    "delivered": s.delivered,
                    "failed": s.failed,
                }
            )
            out.append(view)
        return JSONResponse({"value": out})

    async def update(request: Request) -> JSONResponse:
        subscription = _subscriptions(ctx).get(request.path_params["sid"])
        if subscription is None:
            return _error(404, "not_found", "No such subscription.")
        body = await request.json()
        if (
            not isinstance(body, dict)
            or set(body) - {"paused"}
            or not isinstance(body.get("paused"), bool)
        ):
            return _error(400, "invalid_request", 'Send {"paused": true|false}.')
        subscription.paused = body["paused"]
        return JSONResponse({"id": subscription.id, "paused": subscription.paused})

    async def lifecycle(request: Request) -> JSONResponse:
        subscription = _subscriptions(ctx).get(request.path_params["sid"])
        if subscription is None:
            return _error(404, "not_found", "No such subscription.")
        body = await request.json()
        event = body.get("event") if isinstance(body, dict) else None
        if event not in LIFECYCLE_EVENTS:
            return _error(400, "invalid_request", f"event must be one of {LIFECYCLE_EVENTS}.")
        if subscription.lifecycle_url is None:
            return _error(409, "no_lifecycle_url", "The subscription has no lifecycle URL.")
        if event == "subscriptionRemoved":
            del _subscriptions(ctx)[subscription.id]
        elif event == "reauthorizationRequired":
            subscription.needs_reauthorization = True
        item = {
            "subscriptionId": subscription.id,
            "subscriptionExpirationDateTime": _iso(subscription.expires),
            "tenantId": subscription.tenant_id,
            "clientState": subscription.client_state,
            "lifecycleEvent": event,
        }
        delivered = await _post(subscription.lifecycle_url, {"value": [item]})
        return JSONResponse({"event": event, "delivered": delivered})

    async def pause(request: Request) -> JSONResponse:
        body = await request.json() if await request.body() else {}
        if (
            not isinstance(body, dict)
            or set(body) - {"drop"}
            or not isinstance(body.get("drop", False), bool)
        ):
            return _error(400, "invalid_request", 'Send {"drop"?: true|false}.')
        ctx.mail.notifications_paused = "drop" if body.get("drop") else "hold"
        return JSONResponse({"paused": True, "drop": bool(body.get("drop"))})

    async def resume(request: Request) -> JSONResponse:
        ctx.mail.notifications_paused = None
        for subscription in _subscriptions(ctx).values():
            if subscription.pending:
                _schedule_flush(ctx, subscription)
        return JSONResponse({"paused": False, "drop": False})

    return [
        Route("/notifications/pause", pause, methods=["POST"]),
        Route("/notifications/pause", resume, methods=["DELETE"]),
        Route("/subscriptions", list_all, methods=["GET"]),
        Route("/subscriptions/{sid}", update, methods=["PATCH"]),
        Route("/subscriptions/{sid}/lifecycle", lifecycle, methods=["POST"]),
    ]


__all__ = ["Subscription", "control_routes", "format_datetime", "handle", "install"]
