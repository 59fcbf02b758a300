"""File attachments: list/get/`$value`/POST/DELETE, and Outlook upload sessions for files of
3 MB to 150 MB (pre-authenticated uploadUrl, chunked PUTs with Content-Range)."""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from datetime import timedelta
from typing import Any

from sandbox.graph import errors, odata, schema
from sandbox.graph.calls import Call, page
from sandbox.graph.errors import GraphError
from sandbox.graph.pipeline import GraphResponse
from sandbox.graph.store import Message, UploadSession, format_datetime
from sandbox.graph.views import attachment_json

MIN_UPLOAD_SESSION_SIZE = 3 * 1024 * 1024
MAX_UPLOAD_SESSION_SIZE = 150 * 1024 * 1024
MAX_CHUNK = 4 * 1024 * 1024
SESSION_LIFETIME = timedelta(hours=1)
UPLOAD_PATH = "/_upload/attachmentSessions/"

_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+)$")


def list_attachments(call: Call, message_ref: str) -> GraphResponse:
    call.authorize("read")
    query = (
        odata.parse_query(call.request.params, entity="attachment", allow_search=False)
        if _has_options(call)
        else odata.Query()
    )
    message = call.message(message_ref)
    select = query.select
    body = page(
        call,
        list(message.attachments),
        lambda a: attachment_json(a, select=select),
        top=query.top,
        skip=query.skip,
        default_size=1000,
        count=query.count,
        context=f"messages('{message.id_for(call.immutable)}')/attachments",
    )
    return GraphResponse(200, body)


def _has_options(call: Call) -> bool:
    return any(k.startswith("$") for k, _ in call.request.params)


def get_attachment(call: Call, message_ref: str, ref: str) -> GraphResponse:
    call.authorize("read")
    query = odata.parse_query(call.request.params, entity="attachment", collection=False)
    message = call.message(message_ref)
    attachment = call.attachment(message, ref)
    body: dict[str, Any] = {
        "@odata.context": call.context_url(
            f"messages('{message.id_for(call.immutable)}')/attachments/$entity"
        )
    }
    body.update(attachment_json(attachment, select=query.select))
    return GraphResponse(200, body)


def attachment_value(call: Call, message_ref: str, ref: str) -> GraphResponse:
    call.authorize("read")
    message = call.message(message_ref)
    attachment = call.attachment(message, ref)
    return GraphResponse(
        200, raw=memoryview(attachment.content), content_type=attachment.content_type
    )


def add_attachment(call: Call, message_ref: str) -> GraphResponse:
    call.authorize("write")
    message = call.message(message_ref)
    item = schema.check_attachment(call.request.json())
    content_b64 = item.get("contentBytes")
    if not item.get("name") or content_b64 is None:
        raise errors.bad_request(
            "The fileAttachment's name and contentBytes are required.", "ErrorInvalidRequest"
        )
    try:
        content = base64.b64decode(content_b64, validate=True)
    except (binascii.Error, ValueError):
        raise errors.body_read_error(
            "Cannot convert the literal to the expected type 'Edm.Binary'."
        ) from None
    attachment = call.store.new_attachment(
        call.mailbox,
        message.key,
        item["name"],
        item.get("contentType") or "application/octet-stream",
        content,
        bool(item.get("isInline", False)),
        item.get("contentId"),
        item.get("contentLocation"),
    )
    call.store.add_attachment(message, attachment)
    body: dict[str, Any] = {
        "@odata.context": call.context_url(
            f"messages('{message.id_for(call.immutable)}')/attachments/$entity"
        )
    }
    body.update(attachment_json(attachment))
    return GraphResponse(201, body)


def delete_attachment(call: Call, message_ref: str, ref: str) -> GraphResponse:
    call.authorize("write")
    message = call.message(message_ref)
    attachment = call.attachment(message, ref)
    call.store.remove_attachment(message, attachment)
    return GraphResponse(204)


# --- upload sessions -----------------------------------------------------------------------
def create_upload_session(call: Call, message_ref: str) -> GraphResponse:
    call.authorize("write")
    principal = call.request.principal
    assert principal is not None
    # Microsoft's known issue: with delegated permissions, createUploadSession succeeds only
    # in the signed-in user's own mailbox (403 in a shared or delegated one).
    if principal.kind == "user" and (principal.upn or "").lower() != call.mailbox.upn:
        raise errors.access_denied()
    message = call.message(message_ref)
    params = schema.check_action("createUploadSession", call.request.json())
    item = params.get("AttachmentItem")
    if not item:
        raise errors.bad_request("The AttachmentItem parameter is required.", "ErrorInvalidRequest")
    if item.get("attachmentType") not in (None, "file"):
        raise errors.bad_request(
            "The sandbox supports upload sessions for file attachments only.",
            "ErrorInvalidRequest",
        )
    name, size = item.get("name"), item.get("size")
    if not name or size is None:
        raise errors.bad_request(
            "The attachmentItem's name and size are required.", "ErrorInvalidRequest"
        )
    if size < MIN_UPLOAD_SESSION_SIZE:
        raise GraphError(
            400,
            "ErrorAttachmentSizeShouldNotBeLessThanMinimumSize",
            "Attachment size must be greater than the minimum size.",
        )
    if size > MAX_UPLOAD_SESSION_SIZE:
        raise GraphError(
            400,
            "ErrorAttachmentSizeLimitExceeded",
            "The attachment size exceeds the maximum of 150 MB for an upload session.",
        )
    store = call.store
    assert call.request.principal is not None
    session = UploadSession(
        id=base64.urlsafe_b64encode(store.new_key(18)).decode("ascii"),
        secret=secrets.token_urlsafe(32),
        mailbox=call.mailbox.upn,
        app_id=call.request.principal.app_id,
        message_immutable_id=message.immutable_id,
        message_ref=message.id_for(call.immutable),
        user_ref=f"{call.target.user.id}@{call.ctx.directory.tenant_id}",
        name=name,
        content_type=item.get("contentType") or "application/octet-stream",
        size=size,
        is_inline=bool(item.get("isInline", False)),
        content_id=item.get("contentId"),
        expires=store.clock() + SESSION_LIFETIME,
    )
    store.upload_sessions[session.id] = session
    body = {
        "@odata.context": f"{call.graph_base}/$metadata#microsoft.graph.uploadSession",
        "uploadUrl": f"{call.graph_base}{UPLOAD_PATH}{session.id}?authtoken={session.secret}",
        "expirationDateTime": format_datetime(session.expires),
        "nextExpectedRanges": ["0-"],
    }
    return GraphResponse(201, body)


class ChunkPlan:
    """A validated chunk: where it goes, before any byte of the body is read."""

    def __init__(self, session: UploadSession, start: int, end: int) -> None:
        self.session = session
        self.start = start
        self.end = end

    @property
    def length(self) -> int:
        return self.end - self.start + 1


def find_session(store: Any, session_id: str, token: str | None, now: Any) -> UploadSession:
    session: UploadSession | None = store.upload_sessions.get(session_id)
    if session is None or session.expires <= now:
        if session is not None:
            del store.upload_sessions[session_id]
        raise errors.item_not_found()
    if token is None or not secrets.compare_digest(token, session.secret):
        raise GraphError(401, "InvalidAuthenticationToken", "Access token validation failure.")
    return session


def plan_chunk(
    session: UploadSession, content_range: str | None, content_length: str | None
) -> ChunkPlan:
    """Check a PUT's Content-Range against the session before reading its body."""
    match = _CONTENT_RANGE.match((content_range or "").strip())
    if match is None:
        raise errors.bad_request(
            "The Content-Range header is missing or malformed; expected"
            " 'bytes {start}-{end}/{total}'.",
            "InvalidContentRange",
        )
    start, end, total = (int(g) for g in match.groups())
    if total != session.size:
        raise errors.bad_request(
            f"The Content-Range total {total} does not match the upload session size"
            f" {session.size}.",
            "InvalidContentRange",
        )
    if end < start or end >= total:
        raise errors.bad_request("The Content-Range is invalid.", "InvalidContentRange")
    if start != session.received or session.busy:
        raise GraphError(
            416,
            "InvalidRange",
            "The uploaded fragment does not start at the next expected position"
            f" {session.received}.",
        )
    plan = ChunkPlan(session, start, end)
    if plan.length > MAX_CHUNK:
        raise GraphError(413, "RequestEntityTooLarge", "The maximum size of a fragment is 4 MB.")
    # No 320 KiB-multiple rule here: that is OneDrive's; Outlook's own walkthrough uploads a
    # first chunk of 2,097,152 bytes (6.4 x 320 KiB).
    if content_length is not None and content_length.strip() != str(plan.length):
        raise errors.bad_request(
            "The Content-Range header length does not match the provided number of bytes.",
            "InvalidContentRange",
        )
    return plan


def complete_chunk(call_base: str, store: Any, plan: ChunkPlan, written: int) -> GraphResponse:
    """Account for a chunk whose bytes are already in the session buffer."""
    session = plan.session
    if written != plan.length:
        raise errors.bad_request(
            "The Content-Range header length does not match the provided number of bytes.",
            "InvalidContentRange",
        )
    session.received += written
    # The session keeps its expiry: Outlook does not extend it per chunk.
    if session.received < session.size:
        # Outlook's own (REST v2.0) shape, as the uploadUrl is an Outlook endpoint.
        return GraphResponse(
            200,
            {
                "@odata.context": f"{_outlook_base(call_base)}/$metadata#Users('"
                f"{session.user_ref}')/Messages('{session.message_ref}')/AttachmentSessions"
                "/$entity",
                "ExpirationDateTime": format_datetime(session.expires),
                "nextExpectedRanges": [str(session.received)],
            },
        )
    del store.upload_sessions[session.id]
    mailbox = store.mailbox(session.mailbox)
    message: Message | None = (
        mailbox.messages.get(session.message_immutable_id) if mailbox else None
    )
    if mailbox is None or message is None:
        raise errors.item_not_found()
    assert session.buffer is not None
    attachment = store.new_attachment(
        mailbox,
        message.key,
        session.name,
        session.content_type,
        session.buffer,
        session.is_inline,
        session.content_id,
    )
    session.buffer = None
    store.add_attachment(message, attachment)
    location = (
        f"{_outlook_base(call_base)}/Users('{session.user_ref}')/Messages('"
        f"{session.message_ref}')/Attachments('{attachment.id}')"
    )
    return GraphResponse(201, headers={"Location": location})


def _outlook_base(graph_base: str) -> str:
    """Where Outlook's REST v2.0 would be on this host (the Location names it, as Outlook's
    does; the sandbox serves no v2.0 API there)."""
    return graph_base.removesuffix("/v1.0") + "/api/v2.0"
