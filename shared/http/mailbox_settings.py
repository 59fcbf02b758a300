"""Caller routes for the mailbox's Outlook settings (bearer token; the connection must be the
caller's, as for mail): the category list, automatic replies, and mail tips.

Reads authorize like mail reads, the automatic-replies change like mail writes. These need
the connection to hold `MailboxSettings.ReadWrite` (in GRAPH_SCOPES since this release; a
mailbox connected before answers 403 `forbidden` until its owner connects it again).
"""

from __future__ import annotations

import azure.functions as func

from shared.errors import (
    ConnectionNotFound,
    Forbidden,
    GraphError,
    GraphThrottled,
    GraphUnavailable,
    NotFound,
    ReauthRequired,
    StorageUnavailable,
    UnsupportedMediaType,
    ValidationFailed,
)
from shared.http.api import ApiBlueprint, ApiRequest, ResponseSpec, json_response
from shared.http.mailboxes import open_mailbox
from shared.http.models import MailboxQuery
from shared.mail.settings_models import (
    AutomaticRepliesSetting,
    AutomaticRepliesUpdate,
    CategoryList,
    MailTipsList,
    MailTipsRequest,
)

api = ApiBlueprint("mailbox-settings")

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


@api.route(
    "connections/{connectionId}/categories",
    methods=("GET",),
    operation_id="categories_list",
    summary="The mailbox's categories (Outlook's master category list), with their colors.",
    query_model=MailboxQuery,
    responses={200: ResponseSpec("Categories", CategoryList)},
    errors=_ERRORS,
)
async def categories_list(request: ApiRequest) -> func.HttpResponse:
    query = request.query(MailboxQuery)
    items = await request.services.outlook_settings.categories(
        request.caller, request.route("connectionId"), query.mailbox, request.correlation_id
    )
    return json_response({"value": items})


@api.route(
    "connections/{connectionId}/automaticReplies",
    methods=("GET",),
    operation_id="automatic_replies_get",
    summary="The mailbox's automatic replies (out of office): status, window and messages.",
    query_model=MailboxQuery,
    responses={200: ResponseSpec("Automatic replies", AutomaticRepliesSetting)},
    errors=_ERRORS,
)
async def automatic_replies_get(request: ApiRequest) -> func.HttpResponse:
    query = request.query(MailboxQuery)
    setting = await request.services.outlook_settings.automatic_replies(
        request.caller, request.route("connectionId"), query.mailbox, request.correlation_id
    )
    return json_response(setting)


@api.route(
    "connections/{connectionId}/automaticReplies",
    methods=("PATCH",),
    operation_id="automatic_replies_update",
    summary="Turn automatic replies on, off or scheduled, and set their messages (only the "
    "fields sent change).",
    query_model=MailboxQuery,
    request_model=AutomaticRepliesUpdate,
    responses={200: ResponseSpec("Automatic replies as now set", AutomaticRepliesSetting)},
    errors=_ERRORS,
)
async def automatic_replies_update(request: ApiRequest) -> func.HttpResponse:
    query = request.query(MailboxQuery)
    body = request.json(AutomaticRepliesUpdate)
    mb = await open_mailbox(request, query.mailbox, write=True)
    return json_response(await request.services.outlook_settings.update_automatic_replies(mb, body))


@api.route(
    "connections/{connectionId}/mailTips",
    methods=("POST",),
    operation_id="mail_tips_get",
    summary="Mail tips for recipients before sending: automatic replies, full mailbox, "
    "external recipients and more.",
    query_model=MailboxQuery,
    request_model=MailTipsRequest,
    responses={200: ResponseSpec("One entry per address, in order", MailTipsList)},
    errors=_ERRORS,
)
async def mail_tips_get(request: ApiRequest) -> func.HttpResponse:
    query = request.query(MailboxQuery)
    body = request.json(MailTipsRequest)
    tips = await request.services.outlook_settings.mail_tips(
        request.caller, request.route("connectionId"), body, query.mailbox, request.correlation_id
    )
    return json_response({"value": tips})
