"""Mail control routes under `/_sandbox` for tests and demos: seed messages in bulk, inspect a
mailbox (hidden Recoverable Items included, so soft deletes can be asserted), and see
throttling state. Ids handed out here are immutable ids, the kind the product asks for.
"""

from __future__ import annotations

import base64
import binascii
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from sandbox.graph import rules, schema, subscriptions
from sandbox.graph.delta_control import delta_control_routes
from sandbox.graph.errors import GraphError
from sandbox.graph.mime import message_mime
from sandbox.graph.store import Mailbox, apply_fields, default_props, format_datetime
from sandbox.graph.views import folder_json, message_json

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from sandbox.context import SandboxContext

MAX_SEED_COUNT = 100_000


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status)


def _mailbox(ctx: SandboxContext, upn: str) -> Mailbox | None:
    user = ctx.directory.find(upn)
    if user is None:
        return None
    return ctx.mail.ensure_mailbox(user)


def mail_control_routes(ctx: SandboxContext) -> list[BaseRoute]:
    async def seed_messages(request: Request) -> JSONResponse:
        upn = request.path_params["upn"]
        mailbox = _mailbox(ctx, upn)
        if mailbox is None:
            return _error(404, "user_not_found", f"No sandbox user '{upn}'.")
        try:
            body = await request.json() if await request.body() else {}
        except ValueError:
            return _error(400, "invalid_json", "The body must be JSON.")
        if not isinstance(body, dict):
            return _error(400, "invalid_request", "The body must be a JSON object.")
        unknown = set(body) - {"count", "folder", "template", "renderMime"}
        if unknown:
            return _error(400, "invalid_request", f"Unknown fields: {sorted(unknown)}.")
        if not isinstance(body.get("renderMime", False), bool):
            return _error(400, "invalid_request", "renderMime must be true or false.")
        count = body.get("count", 1)
        if (
            isinstance(count, bool)
            or not isinstance(count, int)
            or not 1 <= count <= MAX_SEED_COUNT
        ):
            return _error(400, "invalid_request", f"count must be 1..{MAX_SEED_COUNT}.")
        folder = mailbox.folder(str(body.get("folder", "inbox")))
        if folder is None:
            return _error(404, "folder_not_found", f"No folder '{body.get('folder')}'.")
        template = body.get("template") or {}
        if not isinstance(template, dict):
            return _error(400, "invalid_request", "template must be a Graph message object.")
        try:
            fields = schema.check_object("message", template)
            attachments = _attachments(fields.get("attachments") or [])
        except GraphError as failure:
            return _error(400, failure.code, failure.message)
        store = ctx.mail
        now = store.clock()
        owner = {"emailAddress": {"name": mailbox.user.display_name, "address": mailbox.upn}}
        sender = {"emailAddress": {"name": "Sandbox Sender", "address": "sender@example.test"}}
        out: list[str] = []
        for i in range(count):
            received = format_datetime(now - timedelta(seconds=i))
            key = store.new_key()
            props = default_props(received, conversation_seed=key[:12])
            props.update(
                {
                    "subject": f"Seeded message {i + 1}",
                    "isRead": False,
                    "from": sender,
                    "sender": sender,
                    "toRecipients": [owner],
                    "body": {"contentType": "text", "content": f"Seeded message {i + 1}."},
                }
            )
            apply_fields(props, fields, trusted=True)
            if "sentDateTime" not in fields:
                props["sentDateTime"] = props["receivedDateTime"]
            if "sender" not in fields and "from" in fields:
                props["sender"] = props["from"]
            built = [
                store.new_attachment(mailbox, key, name, ctype, data, inline)
                for name, ctype, data, inline in attachments
            ]
            if folder.well_known == "inbox":
                # Seeded inbox mail stands for mail arriving: the mailbox's rules run on it
                # (and may file it elsewhere, or drop it: no id then).
                message = rules.deliver(store, mailbox, props, built, key=key)
            else:
                message = store.add_message(mailbox, folder, props, built, key=key)
            if message is not None:
                if body.get("renderMime") is True:
                    message_mime(message)  # held with the message, as a received message's MIME
                out.append(message.immutable_id)
        return JSONResponse({"ids": out}, status_code=201)

    async def mailbox_state(request: Request) -> JSONResponse:
        upn = request.path_params["upn"]
        mailbox = _mailbox(ctx, upn)
        if mailbox is None:
            return _error(404, "user_not_found", f"No sandbox user '{upn}'.")
        folders = [
            {**folder_json(mailbox, f), "wellKnownName": f.well_known}
            for f in mailbox.folders.values()
        ]
        messages = [
            {
                **message_json(m, immutable=True, body_type=None),
                "regularId": m.regular_id,
                "attachments": [
                    {"id": a.id, "name": a.name, "contentType": a.content_type, "size": a.size}
                    for a in m.attachments
                ],
            }
            for m in sorted(mailbox.messages.values(), key=lambda m: m.seq)
        ]
        return JSONResponse({"folders": folders, "messages": messages})

    async def throttle_state(request: Request) -> JSONResponse:
        in_flight = [
            {"appId": app, "mailbox": upn, "inFlight": n}
            for (app, upn), n in ctx.mail.limiter.in_flight.items()
        ]
        return JSONResponse({"inFlight": in_flight})

    return [
        Route("/users/{upn}/messages", seed_messages, methods=["POST"]),
        Route("/users/{upn}/mailbox", mailbox_state, methods=["GET"]),
        Route("/graph/throttle", throttle_state, methods=["GET"]),
        *subscriptions.control_routes(ctx),
        *delta_control_routes(ctx),
    ]


def _attachments(items: list[dict[str, Any]]) -> list[tuple[str, str, bytes, bool]]:
    out = []
    for item in items:
        try:
            data = base64.b64decode(item.get("contentBytes") or "", validate=True)
        except (binascii.Error, ValueError):
            raise GraphError(400, "RequestBodyRead", "contentBytes is not base64.") from None
        out.append(
            (
                str(item.get("name") or "attachment"),
                str(item.get("contentType") or "application/octet-stream"),
                data,
                bool(item.get("isInline", False)),
            )
        )
    return out
