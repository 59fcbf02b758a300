"""Writing mail for one connection, as its caller: send, drafts, reply/forward, update,
move/copy, delete, folders, attachments.

Every method works on a `ConnectedMailbox` opened for writing (the caller authorized once,
the connection's token with one refresh on 401, the mailbox path), and every Graph call goes
through it and so through the client's retry rule and mailbox limiter.
Limits (recipients, attachment and message size) are checked before the first Graph call.
sendMail, reply and forward are non-idempotent POSTs: the client retries them only when
Graph said the request was not processed (429, 503 + Retry-After). Each write emits one
audit event (action, connection, mailbox, counts, outcome, Graph request-id), never content.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

from shared.audit import AuditEvent, AuditSink, Outcome
from shared.connections.mailbox import ConnectedMailbox
from shared.errors import (
    ApiError,
    FieldError,
    GraphThrottled,
    PayloadTooLarge,
    ValidationFailed,
)
from shared.graph import GraphRequest, MailboxPath, folder_segment, graph_id
from shared.graph.paths import WELL_KNOWN_FOLDERS
from shared.mail.compose import (
    AttachmentIn,
    DeleteMode,
    DraftCreateBody,
    DraftUpdateBody,
    FolderCreateBody,
    MessageFields,
    MessagePatchBody,
    ReplyBody,
    SendMessageBody,
    recipient_json,
)
from shared.mail.models import FOLDER_FIELDS, MESSAGE_FIELDS, only
from shared.mail.upload import (
    MAX_ATTACHMENT_BYTES,
    SMALL_ATTACHMENT_BYTES,
    ChunkUploader,
    FileAttachment,
    upload_requests_for,
)
from shared.store.idempotency import IdempotencyStore
from shared.tls import outbound_ssl_context

if TYPE_CHECKING:
    from shared.config import Settings
    from shared.crypto.keyring import KeyRingCache
    from shared.graph.client import GraphClient
    from shared.store.table_set import TableSet

logger = logging.getLogger(__name__)

# sendMail's JSON (base64 attachments included) stays under Graph's 4 MB request limit with
# room to spare; anything larger goes draft + attachments + send.
SEND_MAIL_MAX_JSON_BYTES = 3 * 1024 * 1024
_JSON_OVERHEAD = 16 * 1024
_ATTACHMENT_ID_IN_LOCATION = re.compile(r"Attachments\('([^']+)'\)")
_DRAFT_ACTIONS = {"reply": "createReply", "replyAll": "createReplyAll", "forward": "createForward"}


@dataclass(frozen=True)
class WriteLimits:
    max_message_bytes: int
    max_recipients: int


@dataclass(frozen=True)
class Sent:
    id: str | None
    internet_message_id: str | None

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "internetMessageId": self.internet_message_id}


def _body_bytes(fields: MessageFields | ReplyBody) -> int:
    return len(fields.body.content.encode()) if fields.body else 0


def _base64_length(size: int) -> int:
    return (size + 2) // 3 * 4


class MailWriter:
    def __init__(self, uploader: ChunkUploader, audit: AuditSink, limits: WriteLimits) -> None:
        self._uploader = uploader
        self._audit = audit
        self.limits = limits

    # --- audit ----------------------------------------------------------------------------
    @asynccontextmanager
    async def audited(
        self, action: str, mb: ConnectedMailbox, counts: dict[str, int] | None = None
    ) -> AsyncIterator[dict[str, int]]:
        """Emit one audit event for the write in the body, success or failure (`reason` is
        the stable error code). The body may add counts to the yielded dict."""
        tally = dict(counts or {})
        try:
            yield tally
        except ApiError as error:
            self._emit(action, mb, Outcome.FAILURE, tally, reason=error.code)
            raise
        self._emit(action, mb, Outcome.SUCCESS, tally)

    def _emit(
        self,
        action: str,
        mb: ConnectedMailbox,
        outcome: Outcome,
        counts: dict[str, int],
        reason: str | None = None,
    ) -> None:
        caller = mb.caller
        self._audit.emit(
            AuditEvent(
                action,
                outcome,
                mb.correlation_id,
                caller_oid=caller.oid if caller else None,
                caller_app_id=caller.app_id if caller else None,
                tenant_id=caller.tenant_id if caller else None,
                connection_id=mb.connection_id,
                mailbox=mb.key,
                graph_request_id=mb.last_request_id,
                reason=reason,
                counts={**counts, "graphRequests": len(mb.request_ids)},
            )
        )

    # --- limits ----------------------------------------------------------------------------
    def check_limits(
        self, fields: MessageFields | ReplyBody, attachments: list[AttachmentIn]
    ) -> None:
        """Recipients, each attachment, and the whole message: before any Graph call."""
        if fields.recipient_count() > self.limits.max_recipients:
            raise ValidationFailed(
                f"A message may have at most {self.limits.max_recipients} recipients.",
                errors=[FieldError(("body", "toRecipients"), "too many recipients")],
            )
        total = _body_bytes(fields)
        for index, attachment in enumerate(attachments):
            if attachment.size > MAX_ATTACHMENT_BYTES:
                raise PayloadTooLarge(
                    "An attachment may be at most 150 MB.",
                    errors=[FieldError(("body", "attachments", index), "larger than 150 MB")],
                )
            total += attachment.size
        if total > self.limits.max_message_bytes:
            raise PayloadTooLarge(
                f"The message is larger than {self.limits.max_message_bytes} bytes "
                "(attachments decoded, plus the body)."
            )

    def _decode(self, attachments: list[AttachmentIn]) -> list[FileAttachment]:
        files = []
        for index, attachment in enumerate(attachments):
            try:
                data = attachment.decoded()
            except ValueError:
                raise ValidationFailed(
                    "An attachment's contentBytes is not valid base64.",
                    errors=[FieldError(("body", "attachments", index, "contentBytes"), "base64")],
                ) from None
            files.append(
                FileAttachment(
                    attachment.name,
                    attachment.contentType,
                    data,
                    attachment.isInline,
                    attachment.contentId,
                )
            )
        return files

    def _check_upload_allowed(self, mb: ConnectedMailbox, files: list[FileAttachment]) -> None:
        # Microsoft's known issue: with delegated permissions, createUploadSession answers 403
        # in any mailbox but the signed-in user's. Refusing up front leaves no half-built
        # draft behind and tells the caller what to do instead.
        if mb.is_shared and any(len(f.data) > SMALL_ATTACHMENT_BYTES for f in files):
            raise ValidationFailed(
                "Attachments over 3 MB cannot be uploaded to a shared mailbox with delegated "
                "access (a Microsoft Graph limitation); attach smaller files or send from "
                "your own mailbox.",
                errors=[FieldError(("body", "attachments"), "over 3 MB in a shared mailbox")],
            )

    # --- send ------------------------------------------------------------------------------
    async def send(self, mb: ConnectedMailbox, body: SendMessageBody) -> Sent:
        if body.recipient_count() == 0:
            # Graph would refuse it with a 400 that is not the caller's fault to read.
            raise ValidationFailed(
                "A message needs at least one recipient (toRecipients, ccRecipients or "
                "bccRecipients).",
                errors=[FieldError(("body", "toRecipients"), "no recipients")],
            )
        self.check_limits(body, body.attachments)
        counts = {"recipients": body.recipient_count(), "attachments": len(body.attachments)}
        async with self.audited("mail.sent", mb, counts):
            files = self._decode(body.attachments)
            self._check_upload_allowed(mb, files)
            message = body.graph_message()
            encoded = _body_bytes(body) + sum(_base64_length(len(f.data)) for f in files)
            if encoded + _JSON_OVERHEAD <= SEND_MAIL_MAX_JSON_BYTES:
                if files:
                    message["attachments"] = [f.graph_json() for f in files]
                await mb.send(
                    GraphRequest(
                        "POST",
                        mb.path.send_mail(),
                        json={"message": message, "saveToSentItems": body.saveToSentItems},
                    )
                )
                # sendMail answers 202 with no body: Graph gives no id for what it sent.
                return Sent(None, None)
            draft = await self._new_draft(mb, message, files)
            draft_id = str(draft["id"])
            await self._send_draft(mb, draft_id, ours=True)
            if not body.saveToSentItems:
                await self._forget_sent_copy(mb, draft_id)
                return Sent(None, draft.get("internetMessageId"))
            return Sent(draft_id, draft.get("internetMessageId"))

    async def _new_draft(
        self, mb: ConnectedMailbox, message: dict[str, Any], files: list[FileAttachment]
    ) -> dict[str, Any]:
        """A draft with its attachments; discarded again if an attachment fails."""
        response = await mb.send(GraphRequest("POST", mb.path.messages(), json=message))
        draft: dict[str, Any] = response.json() or {}
        await self._attach_or_discard(mb, str(draft["id"]), files)
        return draft

    async def _attach_or_discard(
        self, mb: ConnectedMailbox, draft_id: str, files: list[FileAttachment]
    ) -> None:
        try:
            for file in files:
                await self._attach(mb, draft_id, file)
        except ApiError:
            await self._discard(mb, draft_id)
            raise

    async def _discard(self, mb: ConnectedMailbox, draft_id: str) -> None:
        try:
            await mb.send(GraphRequest("DELETE", mb.path.message(draft_id)))
        except ApiError as error:  # the original failure is what the caller needs to see
            logger.warning("could not discard a half-built draft: %s", error.code)

    async def _send_draft(self, mb: ConnectedMailbox, draft_id: str, *, ours: bool = False) -> None:
        """Send a draft. One this request built (`ours`) is discarded again when Graph says
        the send was not processed, so the caller's retry does not leave a stray draft; after
        any other failure the draft may have gone out, and is left alone."""
        try:
            await mb.send(GraphRequest("POST", mb.path.message_action(draft_id, "send")))
        except GraphThrottled:
            if ours:
                await self._discard(mb, draft_id)
            raise

    async def _forget_sent_copy(self, mb: ConnectedMailbox, message_id: str) -> None:
        # A draft's send always files it in Sent Items; saveToSentItems=false is honoured by
        # removing that copy afterwards (best effort: the mail is already on its way).
        try:
            await mb.send(
                GraphRequest("POST", mb.path.message_action(message_id, "permanentDelete"))
            )
        except ApiError as error:
            logger.warning("could not remove the Sent Items copy: %s", error.code)

    async def _attach(
        self, mb: ConnectedMailbox, message_id: str, file: FileAttachment
    ) -> str | None:
        """Add one attachment; return its id when Graph tells it."""
        response = await mb.send(upload_requests_for(mb.path, message_id, file))
        created = response.json() or {}
        if len(file.data) <= SMALL_ATTACHMENT_BYTES:
            return str(created.get("id")) if created.get("id") else None
        location = await self._uploader.put(
            str(created.get("uploadUrl", "")), file.data, mailbox_key=mb.key
        )
        match = _ATTACHMENT_ID_IN_LOCATION.search(location or "")
        return match.group(1) if match else None

    # --- drafts ----------------------------------------------------------------------------
    async def create_draft(self, mb: ConnectedMailbox, body: DraftCreateBody) -> dict[str, Any]:
        self.check_limits(body, body.attachments)
        async with self.audited("mail.draft_created", mb, {"attachments": len(body.attachments)}):
            files = self._decode(body.attachments)
            self._check_upload_allowed(mb, files)
            draft = await self._new_draft(mb, body.graph_message(), files)
            message = only(draft, MESSAGE_FIELDS)
            if files:
                message["hasAttachments"] = True
            return message

    async def update_draft(
        self, mb: ConnectedMailbox, draft_id: str, body: DraftUpdateBody
    ) -> dict[str, Any]:
        self.check_limits(body, [])
        patch = body.graph_message(partial=True)
        if not patch:
            raise ValidationFailed("Send at least one field to change.")
        async with self.audited("mail.draft_updated", mb, {"items": 1}):
            response = await mb.send(GraphRequest("PATCH", mb.path.message(draft_id), json=patch))
            return only(response.json(), MESSAGE_FIELDS)

    async def send_draft(self, mb: ConnectedMailbox, draft_id: str) -> Sent:
        async with self.audited("mail.sent", mb, {"items": 1}):
            graph_id(draft_id, field="draftId")
            await self._send_draft(mb, draft_id)
            # Sending keeps a draft's immutable id (Microsoft documents it for immutable ids),
            # so one GET finds its internetMessageId; the mail is sent whatever it answers.
            return Sent(draft_id, await self._internet_message_id(mb, draft_id))

    async def _internet_message_id(self, mb: ConnectedMailbox, message_id: str) -> str | None:
        try:
            response = await mb.send(
                GraphRequest(
                    "GET", mb.path.message(message_id), params={"$select": "internetMessageId"}
                )
            )
        except ApiError as error:
            logger.info("sent, but its internetMessageId could not be read: %s", error.code)
            return None
        value = (response.json() or {}).get("internetMessageId")
        return str(value) if value else None

    # --- reply / replyAll / forward --------------------------------------------------------
    async def respond(
        self, mb: ConnectedMailbox, message_id: str, action: str, body: ReplyBody
    ) -> Sent:
        if body.comment is not None and body.body is not None:
            raise ValidationFailed(
                "Send either `comment` or `body`, not both.",
                errors=[FieldError(("body", "comment"), "not together with body")],
            )
        if action == "forward" and not body.toRecipients:
            raise ValidationFailed(
                "A forward needs toRecipients.",
                errors=[FieldError(("body", "toRecipients"), "required for forward")],
            )
        self.check_limits(body, body.attachments)
        graph_id(message_id, field="messageId")
        payload: dict[str, Any] = {}
        if body.comment is not None:
            payload["comment"] = body.comment
        message: dict[str, Any] = {}
        if body.body is not None:
            message["body"] = body.body.model_dump()
        recipients = {
            "toRecipients": body.toRecipients,
            "ccRecipients": body.ccRecipients,
            "bccRecipients": body.bccRecipients,
        }
        for name, values in recipients.items():
            if values:
                message[name] = [recipient_json(r) for r in values]
        if action == "forward":
            payload["toRecipients"] = message.pop("toRecipients")
        if message:
            payload["message"] = message
        counts = {"recipients": body.recipient_count(), "attachments": len(body.attachments)}
        async with self.audited(f"mail.{action}", mb, counts):
            files = self._decode(body.attachments)
            self._check_upload_allowed(mb, files)
            if not files:
                await mb.send(
                    GraphRequest("POST", mb.path.message_action(message_id, action), json=payload)
                )
                return Sent(None, None)
            # The direct actions take no attachments: create the reply/forward as a draft,
            # attach, send it (its immutable id then names the sent message).
            created = await mb.send(
                GraphRequest(
                    "POST", mb.path.message_action(message_id, _DRAFT_ACTIONS[action]), json=payload
                )
            )
            draft: dict[str, Any] = created.json() or {}
            draft_id = str(draft["id"])
            await self._attach_or_discard(mb, draft_id, files)
            await self._send_draft(mb, draft_id, ours=True)
            return Sent(draft_id, draft.get("internetMessageId"))

    # --- update, move, copy, delete --------------------------------------------------------
    async def update_message(
        self, mb: ConnectedMailbox, message_id: str, body: MessagePatchBody
    ) -> dict[str, Any]:
        patch = body.graph_patch()
        if not patch:
            raise ValidationFailed("Send at least one of isRead, flag, categories, importance.")
        async with self.audited("mail.updated", mb, {"items": 1}):
            response = await mb.send(GraphRequest("PATCH", mb.path.message(message_id), json=patch))
            return only(response.json(), MESSAGE_FIELDS)

    async def move(
        self, mb: ConnectedMailbox, message_id: str, destination: str, *, copy: bool = False
    ) -> dict[str, Any]:
        target = destination_id(destination)
        action = "copy" if copy else "move"
        async with self.audited(f"mail.{'copied' if copy else 'moved'}", mb, {"items": 1}):
            response = await mb.send(
                GraphRequest(
                    "POST",
                    mb.path.message_action(message_id, action),
                    json={"destinationId": target},
                )
            )
            return only(response.json(), MESSAGE_FIELDS)

    async def delete(self, mb: ConnectedMailbox, message_id: str, mode: DeleteMode) -> None:
        async with self.audited(f"mail.deleted.{mode}", mb, {"items": 1}):
            await mb.send(delete_request(mb.path, message_id, mode))

    # --- attachments -----------------------------------------------------------------------
    async def add_attachment(
        self, mb: ConnectedMailbox, message_id: str, attachment: AttachmentIn
    ) -> dict[str, Any]:
        if attachment.size > MAX_ATTACHMENT_BYTES:
            raise PayloadTooLarge(
                "An attachment may be at most 150 MB.",
                errors=[FieldError(("body",), "larger than 150 MB")],
            )
        graph_id(message_id, field="messageId")
        async with self.audited("mail.attachment_added", mb, {"attachments": 1}):
            (file,) = self._decode([attachment])
            self._check_upload_allowed(mb, [file])
            attachment_id = await self._attach(mb, message_id, file)
            return {
                "id": attachment_id,
                "name": file.name,
                "contentType": file.content_type,
                "size": len(file.data),
                "isInline": file.is_inline,
            }

    # --- folders ---------------------------------------------------------------------------
    async def create_folder(self, mb: ConnectedMailbox, body: FolderCreateBody) -> dict[str, Any]:
        payload = {"displayName": body.displayName, "isHidden": body.isHidden}
        parent = body.parentFolder
        async with self.audited("mail.folder_created", mb, {"items": 1}):
            response = await mb.send(
                GraphRequest(
                    "POST",
                    mb.path.child_folders(parent) if parent else mb.path.folders(),
                    json=payload,
                )
            )
            return only(response.json(), FOLDER_FIELDS)

    async def rename_folder(
        self, mb: ConnectedMailbox, folder_id: str, display_name: str
    ) -> dict[str, Any]:
        async with self.audited("mail.folder_renamed", mb, {"items": 1}):
            response = await mb.send(
                GraphRequest("PATCH", mb.path.folder(folder_id), json={"displayName": display_name})
            )
            return only(response.json(), FOLDER_FIELDS)

    async def delete_folder(self, mb: ConnectedMailbox, folder_id: str) -> None:
        async with self.audited("mail.folder_deleted", mb, {"items": 1}):
            await mb.send(GraphRequest("DELETE", mb.path.folder(folder_id)))


def destination_id(destination: str) -> str:
    """A move/copy target as Graph's `destinationId` takes it: a well-known name (lower
    case) or a folder id, validated like any id from a caller (it travels in a JSON body,
    so it is not percent-encoded)."""
    folder_segment(destination, field="destinationFolder")  # raises for anything else
    lowered = destination.lower()
    return lowered if lowered in WELL_KNOWN_FOLDERS else destination


def delete_request(path: MailboxPath, message_id: str, mode: DeleteMode) -> GraphRequest:
    """api.md: trash = move to Deleted Items (what a mailbox user expects); soft = Graph
    DELETE (into Recoverable Items); permanent = permanentDelete (purged)."""
    if mode == "trash":
        return GraphRequest(
            "POST", path.message_action(message_id, "move"), json={"destinationId": "deleteditems"}
        )
    if mode == "soft":
        return GraphRequest("DELETE", path.message(message_id))
    return GraphRequest("POST", path.message_action(message_id, "permanentDelete"))


def build_mail_writer(
    settings: Settings,
    graph: GraphClient,
    tables: TableSet,
    keys: KeyRingCache,
    audit: AuditSink,
) -> tuple[MailWriter, IdempotencyStore, Callable[[], Awaitable[None]]]:
    """The writer, its Idempotency-Key store, and the close of the upload client it owns.

    The upload client is separate from the Graph client on purpose: upload URLs are
    pre-authenticated and must never receive the token the Graph client attaches."""
    upload_http = httpx.AsyncClient(
        timeout=httpx.Timeout(settings.GRAPH_TIMEOUT_SECONDS, connect=10.0),
        verify=outbound_ssl_context(settings.CA_BUNDLE),
        trust_env=False,
        follow_redirects=False,
        headers={"User-Agent": "outlook-integration-api"},
    )
    graph_host = (urlsplit(settings.graph_base_url).hostname or "").lower()
    uploader = ChunkUploader(upload_http, graph.limiter, frozenset({graph_host}))
    writer = MailWriter(
        uploader,
        audit,
        WriteLimits(settings.MAX_MESSAGE_BYTES, settings.MAX_RECIPIENTS),
    )
    store = IdempotencyStore(tables, keys, timedelta(hours=settings.IDEMPOTENCY_TTL_HOURS))
    return writer, store, upload_http.aclose
