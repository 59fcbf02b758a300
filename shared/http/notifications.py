"""Graph → the service: change and lifecycle notifications (anonymous at the HTTP level:
each item is authenticated by its subscription's clientState, compared in constant time).

Both answer the `validationToken` handshake with the decoded token as text/plain (nothing
else echoed), and otherwise queue the work and answer 202 at once: Graph wants an answer
within 3 seconds and retries slow endpoints.
"""

from __future__ import annotations

import azure.functions as func

from shared.errors import (
    PayloadTooLarge,
    StorageUnavailable,
    TooManyNotifications,
    ValidationFailed,
)
from shared.http.api import ApiBlueprint, ApiRequest, ResponseSpec, Security
from shared.notifications.intake import validation_answer

api = ApiBlueprint("notifications")

_ERRORS = (ValidationFailed, PayloadTooLarge, TooManyNotifications, StorageUnavailable)
# The echoed token is the caller's text: it must never be sniffed as HTML or run as script.
_ECHO_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "Cache-Control": "no-store",
}


def _validation(request: ApiRequest) -> func.HttpResponse | None:
    token = request.raw.params.get("validationToken")
    if token is None:
        return None
    return func.HttpResponse(
        validation_answer(token),
        status_code=200,
        mimetype="text/plain",
        charset="utf-8",
        headers=_ECHO_HEADERS,
    )


@api.route(
    "notifications/graph",
    methods=("POST",),
    operation_id="notifications_graph",
    summary="Microsoft Graph change notifications (Graph calls this, not callers).",
    security=Security.ANONYMOUS,
    responses={
        200: ResponseSpec("The validation token", media_type="text/plain"),
        202: ResponseSpec("Accepted; delivered to the callers' webhooks off this request"),
    },
    errors=_ERRORS,
)
async def notifications_graph(request: ApiRequest) -> func.HttpResponse:
    answer = _validation(request)
    if answer is not None:
        return answer
    await request.services.notifications.intake.receive(
        request.raw.get_body(), request.correlation_id
    )
    return func.HttpResponse(status_code=202)


@api.route(
    "notifications/lifecycle",
    methods=("POST",),
    operation_id="notifications_lifecycle",
    summary="Microsoft Graph lifecycle notifications (reauthorizationRequired, "
    "subscriptionRemoved, missed).",
    security=Security.ANONYMOUS,
    responses={
        200: ResponseSpec("The validation token", media_type="text/plain"),
        202: ResponseSpec("Accepted"),
    },
    errors=_ERRORS,
)
async def notifications_lifecycle(request: ApiRequest) -> func.HttpResponse:
    answer = _validation(request)
    if answer is not None:
        return answer
    await request.services.notifications.intake.receive_lifecycle(
        request.raw.get_body(), request.correlation_id
    )
    return func.HttpResponse(status_code=202)
