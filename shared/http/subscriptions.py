"""Caller routes for triggers: register a webhook on a connection's folder, list, delete.

Power Automate's webhook-trigger convention: the 201 carries a `Location` header, and the
platform calls DELETE on it when the flow is turned off. The signing secret is in the 201
body only; it is never shown again.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit, urlunsplit

import azure.functions as func
from pydantic import Field

from shared.auth.caller import Caller
from shared.errors import (
    Conflict,
    ConnectionNotFound,
    Forbidden,
    GraphError,
    GraphThrottled,
    GraphUnavailable,
    InvalidCursor,
    NotFound,
    ReauthRequired,
    StorageUnavailable,
    UnsupportedMediaType,
    ValidationFailed,
)
from shared.http.api import ApiBlueprint, ApiRequest, ResponseSpec, json_response
from shared.http.models import ApiModel
from shared.notifications.filters import Filters

if TYPE_CHECKING:  # no storage SDK at import (cold start)
    from shared.store.deliveries import DeliveryRecord
    from shared.store.subscriptions import Subscription

api = ApiBlueprint("triggers")

EventName = Literal["created", "flagged"]

_ERRORS = (
    ValidationFailed,
    ConnectionNotFound,
    NotFound,
    Forbidden,
    ReauthRequired,
    UnsupportedMediaType,
    GraphThrottled,
    GraphError,
    GraphUnavailable,
    StorageUnavailable,
)


class SubscriptionCreate(ApiModel):
    notificationUrl: str = Field(
        max_length=2048,
        description="Where events are POSTed (https). Power Automate fills this in.",
    )
    folder: str = Field(
        default="inbox", min_length=1, max_length=256, description="Folder id or well-known name."
    )
    fromAddress: str | None = Field(
        default=None,
        alias="from",
        max_length=1024,
        description="Only mail from these addresses (`;`-separated).",
    )
    to: str | None = Field(
        default=None, max_length=1024, description="Only mail to one of these (`;`-separated)."
    )
    cc: str | None = Field(
        default=None, max_length=1024, description="Only mail cc'd to one of these."
    )
    importance: Literal["any", "low", "normal", "high"] = Field(
        default="any", description="Only mail of this importance."
    )
    hasAttachments: bool | None = Field(
        default=None, description="Only mail with (true) or without (false) attachments."
    )
    subjectContains: str | None = Field(
        default=None, max_length=255, description="Only mail whose subject contains this text."
    )
    mentionsMe: bool | None = Field(
        default=None,
        description="Only mail that @mentions the mailbox owner (Outlook's mention link in "
        "the body).",
    )
    includeMessage: bool = Field(
        default=False,
        description="Include the message's headers (subject, from, recipients...) in the event.",
    )
    mailbox: str | None = Field(
        default=None,
        max_length=256,
        description="A shared mailbox (UPN or id) the connected user may read; default: "
        "their own. Another user's mailbox is polled (mode poll): Graph notifies no "
        "delegated subscription there.",
    )
    events: list[EventName] = Field(
        default_factory=lambda: list[EventName](["created"]),
        min_length=1,
        max_length=2,
        description="created: a message appeared in the folder (new mail, moved or copied "
        "in); flagged: a message in the folder went from not flagged to flagged.",
    )

    def event_types(self) -> tuple[str, ...]:
        return tuple(e for e in ("created", "flagged") if e in self.events)

    def filters(self) -> Filters:
        return Filters.model_validate(
            {
                "from": self.fromAddress,
                "to": self.to,
                "cc": self.cc,
                "importance": self.importance,
                "hasAttachments": self.hasAttachments,
                "subjectContains": self.subjectContains,
                "mentionsMe": self.mentionsMe,
            }
        )


class SubscriptionView(ApiModel):
    id: str
    connectionId: str
    notificationUrl: str = Field(
        description="Where events are POSTed. In full only to the caller that created the "
        "subscription; anyone else who may read the connection (the mailbox owner, an app "
        "with a `Connections.*` role) sees it without its query string and fragment, which "
        "often carry the receiver's own secret (Power Automate's `sig`)."
    )
    folder: str
    filters: Filters
    includeMessage: bool
    expirationDateTime: datetime | None = Field(
        description="When Graph's side expires (renewed automatically); null for a `poll` "
        "subscription, which has no Graph side."
    )
    createdAt: datetime
    events: list[str] = Field(default_factory=lambda: ["created"])
    status: Literal["active", "disabled"] = Field(
        default="active",
        description="`disabled` once the webhook answered 410 Gone: no more events are sent "
        "(delete the subscription and create a new one to resume).",
    )
    mode: Literal["push", "poll"] = Field(
        default="push",
        description="Chosen by the service. push: Graph notifies the service of each change "
        "(the connection's own mailbox, or an application connection); poll: the service "
        "reads the folder's changes every POLL_INTERVAL_SECONDS (another user's mailbox "
        "through a delegated connection, where Graph allows no subscription). Same events "
        "and guarantees.",
    )
    mailbox: str | None = Field(
        default=None,
        description="The shared mailbox watched; null: the connection's own.",
    )

    @classmethod
    def of(cls, s: Subscription, caller: Caller) -> SubscriptionView:
        return cls(
            id=s.id,
            connectionId=s.connection_id,
            notificationUrl=_url_for(s, caller),
            folder=s.folder,
            filters=Filters.model_validate(s.filters),
            includeMessage=s.include_message,
            expirationDateTime=None if s.polled else s.expires,
            createdAt=s.created_at,
            events=list(s.events),
            status="disabled" if s.disabled else "active",
            mode="poll" if s.polled else "push",
            mailbox=s.mailbox,
        )


def _url_for(s: Subscription, caller: Caller) -> str:
    if s.created_by(caller.tenant_id, caller.oid):
        return s.notification_url
    parts = urlsplit(s.notification_url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


class SubscriptionCreated(SubscriptionView):
    signingSecret: str = Field(
        description="`whsec_<base64 key>`. Standard Webhooks' `webhook-signature` is keyed "
        "with the base64-decoded key, `X-Signature` with this whole string. Shown once: "
        "keep it."
    )


class SubscriptionList(ApiModel):
    value: list[SubscriptionView]


class MessageEvent(ApiModel):
    """What the caller's webhook receives, signed: Standard Webhooks' `webhook-id`,
    `webhook-timestamp` and `webhook-signature`, and `X-Signature: sha256=<hex>`."""

    subscriptionId: str
    connectionId: str
    changeType: Literal["created", "updated"]
    type: Literal["message.created", "message.flagged"]
    mailbox: str = Field(description="The watched mailbox: the connection's, or the shared one.")
    occurredAt: datetime = Field(description="When the service learned of the change.")
    messageId: str
    message: dict[str, object] | None = None


def location(request: ApiRequest, connection_id: str, subscription_id: str) -> str:
    base = str(request.services.settings.PUBLIC_BASE_URL).rstrip("/")
    return f"{base}/api/connections/{connection_id}/subscriptions/{subscription_id}"


@api.route(
    "connections/{connectionId}/subscriptions",
    methods=("POST",),
    operation_id="subscriptions_create",
    summary="When a new email arrives: register a webhook for new mail in a folder.",
    request_model=SubscriptionCreate,
    responses={201: ResponseSpec("Subscribed (Location: the URL to DELETE)", SubscriptionCreated)},
    errors=_ERRORS,
)
async def subscriptions_create(request: ApiRequest) -> func.HttpResponse:
    body = request.json(SubscriptionCreate)
    connection_id = request.route("connectionId")
    created = await request.services.notifications.subscriptions.create(
        request.caller,
        connection_id,
        notification_url=body.notificationUrl,
        folder=body.folder,
        filters=body.filters(),
        include_message=body.includeMessage,
        cid=request.correlation_id,
        events=body.event_types(),
        mailbox=body.mailbox,
    )
    view = SubscriptionView.of(created.subscription, request.caller)
    payload = SubscriptionCreated(**view.model_dump(), signingSecret=created.signing_secret)
    return json_response(
        payload,
        status=201,
        headers={"Location": location(request, connection_id, created.subscription.id)},
    )


@api.route(
    "connections/{connectionId}/subscriptions",
    methods=("GET",),
    operation_id="subscriptions_list",
    summary="The connection's webhook subscriptions (without their secrets).",
    responses={200: ResponseSpec("Subscriptions", SubscriptionList)},
    errors=_ERRORS,
)
async def subscriptions_list(request: ApiRequest) -> func.HttpResponse:
    found = await request.services.notifications.subscriptions.list_for(
        request.caller, request.route("connectionId")
    )
    views = [SubscriptionView.of(s, request.caller) for s in found]
    return json_response(SubscriptionList(value=views))


@api.route(
    "connections/{connectionId}/subscriptions/{subscriptionId}",
    methods=("DELETE",),
    operation_id="subscriptions_delete",
    summary="Remove the webhook subscription (and Graph's).",
    responses={204: ResponseSpec("Removed")},
    errors=_ERRORS,
)
async def subscriptions_delete(request: ApiRequest) -> func.HttpResponse:
    await request.services.notifications.subscriptions.delete(
        request.caller,
        request.route("connectionId"),
        request.route("subscriptionId"),
        request.correlation_id,
    )
    return func.HttpResponse(status_code=204)


class DeliveryQuery(ApiModel):
    status: Literal["pending", "delivered", "failed", "filtered", "gone"] | None = Field(
        default=None, description="Only events in this state (default: all)."
    )
    cursor: str | None = Field(default=None, max_length=64)


class DeliveryView(ApiModel):
    id: str = Field(description="The event's `webhook-id` (the same on every attempt).")
    messageId: str
    type: str = Field(description="`message.created` or `message.flagged`.")
    status: Literal["pending", "delivered", "failed", "filtered", "gone"] = Field(
        description="pending: being delivered or retried; delivered: the webhook answered "
        "2xx; failed: refused, or still failing after WEBHOOK_RETRY_HOURS; filtered: did "
        "not match the filters; gone: the message was deleted before delivery."
    )
    attempts: int
    lastAttemptAt: datetime | None
    lastStatus: int | None = Field(
        description="The webhook's HTTP status at the last attempt (null: no answer)."
    )

    @classmethod
    def of(cls, r: DeliveryRecord) -> DeliveryView:
        return cls(
            id=r.id,
            messageId=r.message_id,
            type="message." + r.type.split(".", 1)[0],  # flagged.<n>: the n-th flagging
            status=r.status,
            attempts=r.attempts,
            lastAttemptAt=r.last_attempt_at,
            lastStatus=r.last_status,
        )


class DeliveryList(ApiModel):
    value: list[DeliveryView]
    nextCursor: str | None = None


@api.route(
    "connections/{connectionId}/subscriptions/{subscriptionId}/deliveries",
    methods=("GET",),
    operation_id="deliveries_list",
    summary="The subscription's events and how their delivery went (for support and replay).",
    query_model=DeliveryQuery,
    responses={200: ResponseSpec("Events, in id order", DeliveryList)},
    errors=(*_ERRORS, InvalidCursor),
)
async def deliveries_list(request: ApiRequest) -> func.HttpResponse:
    query = request.query(DeliveryQuery)
    found, after = await request.services.notifications.subscriptions.deliveries(
        request.caller,
        request.route("connectionId"),
        request.route("subscriptionId"),
        status=query.status,
        cursor=query.cursor,
    )
    return json_response(DeliveryList(value=[DeliveryView.of(r) for r in found], nextCursor=after))


@api.route(
    "connections/{connectionId}/subscriptions/{subscriptionId}/deliveries/{deliveryId}/redeliver",
    methods=("POST",),
    operation_id="deliveries_redeliver",
    summary="Send an event again, with the same webhook-id (a new retry window starts).",
    responses={202: ResponseSpec("Queued")},
    errors=(*_ERRORS, Conflict),
)
async def deliveries_redeliver(request: ApiRequest) -> func.HttpResponse:
    await request.services.notifications.subscriptions.redeliver(
        request.caller,
        request.route("connectionId"),
        request.route("subscriptionId"),
        request.route("deliveryId"),
        request.correlation_id,
    )
    return func.HttpResponse(status_code=202)
