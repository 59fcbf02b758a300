"""Send email with options: the caller's route, and the anonymous pages behind the links.

GET on a link only shows a confirm page (mail scanners follow links); the page's POST
records the choice and delivers it to the caller's callback URL."""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING
from urllib.parse import quote

import azure.functions as func

from shared.errors import (
    Conflict,
    ConnectionNotFound,
    Forbidden,
    GraphError,
    GraphThrottled,
    GraphUnavailable,
    NotFound,
    PayloadTooLarge,
    ReauthRequired,
    StorageUnavailable,
    UnsupportedMediaType,
    ValidationFailed,
)
from shared.http.api import ApiBlueprint, ApiRequest, ResponseSpec, Security, json_response
from shared.http.mail_write import IDEMPOTENCY_KEY, idempotent_write
from shared.http.mailboxes import open_mailbox
from shared.http.pages import html_page
from shared.options.models import (
    OptionsSent,
    OptionSubscriptionCreate,
    OptionSubscriptionCreated,
    SendWithOptionsBody,
)

if TYPE_CHECKING:
    from shared.connections.mailbox import ConnectedMailbox
    from shared.store.idempotency import StoredResponse

api = ApiBlueprint("options")
_HTML_ERRORS = ("application/problem+json", "text/html")


@api.route(
    "connections/{connectionId}/messages/sendWithOptions",
    methods=("POST",),
    operation_id="messages_send_with_options",
    summary="Send email with options: one link per option; the recipient's choice is POSTed, "
    "signed (X-Signature), to callbackUrl.",
    request_model=SendWithOptionsBody,
    headers=(IDEMPOTENCY_KEY,),
    responses={202: ResponseSpec("Sent; keep signingSecret to verify the callback", OptionsSent)},
    errors=(
        ValidationFailed,
        ConnectionNotFound,
        NotFound,
        Forbidden,
        Conflict,
        ReauthRequired,
        PayloadTooLarge,
        UnsupportedMediaType,
        GraphThrottled,
        GraphError,
        GraphUnavailable,
        StorageUnavailable,
    ),
)
async def messages_send_with_options(request: ApiRequest) -> func.HttpResponse:
    body = request.json(SendWithOptionsBody)

    async def produce(mb: ConnectedMailbox) -> StoredResponse:
        from shared.store.idempotency import StoredResponse  # storage SDK: not at cold start

        sent = await request.services.options.send(mb, body)
        # The replayed answer (sealed in the idempotency store) repeats the same secret, so a
        # retried call gets the secret that verifies the links of the one mail sent.
        return StoredResponse(202, {"Cache-Control": "no-store"}, sent.model_dump_json().encode())

    # The mail routes' Idempotency-Key handling: a caller's retry never sends a second mail.
    return await idempotent_write(request, None, produce)


_TRIGGER_ERRORS = (
    ValidationFailed,
    ConnectionNotFound,
    NotFound,
    Forbidden,
    ReauthRequired,
    UnsupportedMediaType,
    PayloadTooLarge,
    StorageUnavailable,
)


@api.route(
    "connections/{connectionId}/optionSubscriptions",
    methods=("POST",),
    operation_id="option_subscriptions_create",
    summary="Register a webhook for the choices of this connection's option mails sent without "
    "a callbackUrl (the 'When an option is chosen' trigger); 201 with Location.",
    request_model=OptionSubscriptionCreate,
    responses={201: ResponseSpec("Registered; keep signingSecret", OptionSubscriptionCreated)},
    errors=_TRIGGER_ERRORS,
)
async def option_subscriptions_create(request: ApiRequest) -> func.HttpResponse:
    body = request.json(OptionSubscriptionCreate)
    created = await request.services.options.subscribe(
        await open_mailbox(request, write=True), body.notificationUrl
    )
    base = str(request.services.settings.PUBLIC_BASE_URL).rstrip("/")
    location = (
        f"{base}/api/connections/{quote(created.connectionId, safe='')}"
        f"/optionSubscriptions/{quote(created.id, safe='')}"
    )
    # Power Automate keeps Location and DELETEs it when the flow is turned off.
    return json_response(created, status=201, headers={"Location": location})


@api.route(
    "connections/{connectionId}/optionSubscriptions/{subscriptionId}",
    methods=("DELETE",),
    operation_id="option_subscriptions_delete",
    summary="Remove a 'When an option is chosen' registration.",
    responses={204: ResponseSpec("Removed")},
    errors=_TRIGGER_ERRORS,
)
async def option_subscriptions_delete(request: ApiRequest) -> func.HttpResponse:
    await request.services.options.unsubscribe(
        await open_mailbox(request, write=True), request.route("subscriptionId")
    )
    return func.HttpResponse(status_code=204)


def _failure_page(error: NotFound | Conflict, correlation_id: str) -> func.HttpResponse:
    return html_page(
        "Nothing recorded",
        f"<p>{escape(error.detail)}</p>",
        correlation_id,
        status=error.http_status,
    )


@api.route(
    "options/{token}",
    methods=("GET",),
    operation_id="option_confirm",
    summary="An option link from a mail: a page asking to confirm the choice (records nothing).",
    security=Security.ANONYMOUS,
    responses={200: ResponseSpec("The confirm page", media_type="text/html")},
    errors=(NotFound,),
    error_media_types=_HTML_ERRORS,
)
async def option_confirm(request: ApiRequest) -> func.HttpResponse:
    try:
        pending = await request.services.options.pending(request.route("token"))
    except NotFound as error:
        return _failure_page(error, request.correlation_id)
    return html_page(
        "Confirm your choice",
        f'<p>Your answer: <strong id="option">{escape(pending.option)}</strong></p>'
        '<form method="post"><button type="submit" id="confirm">Confirm</button></form>',
        request.correlation_id,
        form_action="'self'",
    )


@api.route(
    "options/{token}",
    methods=("POST",),
    operation_id="option_choose",
    summary="Record the choice of an option link (once per mail) and deliver it to the sender.",
    security=Security.ANONYMOUS,
    responses={200: ResponseSpec("Recorded", media_type="text/html")},
    errors=(NotFound, Conflict, StorageUnavailable),
    error_media_types=_HTML_ERRORS,
)
async def option_choose(request: ApiRequest) -> func.HttpResponse:
    try:
        chosen = await request.services.options.choose(
            request.route("token"), request.correlation_id
        )
    except (NotFound, Conflict) as error:
        return _failure_page(error, request.correlation_id)
    note = "" if chosen.delivered else "<p>The sender's automation could not be reached yet.</p>"
    return html_page(
        "Thank you",
        f'<p>Your answer <strong id="recorded">{escape(chosen.option)}</strong> was recorded.</p>'
        + note,
        request.correlation_id,
    )
