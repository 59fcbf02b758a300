"""Option links: sent in a mail, chosen once, delivered signed to the caller's callback.

Why it is built this way:
- Each link carries a sealed token (shared/crypto/sealed_text.py: encrypted and authenticated,
  bound to its purpose, with its expiry inside): nothing guessable, nothing to look up
  before the recipient acts, and the callback URL (which may hold a secret of the caller's
  platform) never appears in the mail.
- Opening a link (GET) only shows a confirm page: mail scanners follow links. The choice is
  recorded by the page's POST, once per request (a Table row created with create-if-absent;
  a second choice, with the same or another option, is refused).
- The callback is checked like a trigger webhook (shared/notifications/webhooks.py: https,
  public addresses only) when the mail is sent and again before the delivery, and signed
  the same way (`X-Signature: sha256=<HMAC of the body>` under the secret returned when
  the mail was sent).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html import escape

import httpx

from shared.audit import AuditEvent, AuditSink, Outcome
from shared.config import Settings
from shared.connections.mailbox import ConnectedMailbox
from shared.crypto.sealed_text import SealedValues
from shared.errors import Conflict, FieldError, NotFound, ValidationFailed
from shared.mail.compose import SendMessageBody
from shared.mail.writer import MailWriter
from shared.notifications.webhooks import (
    CheckedWebhook,
    WebhookRejected,
    check_webhook,
    post_event,
    sign,
    webhook_client,
)
from shared.options.models import (
    OptionChosenEvent,
    OptionsSent,
    OptionSubscriptionCreated,
    SendWithOptionsBody,
)
from shared.store.options import OptionStore, OptionTarget
from shared.tls import outbound_ssl_context

PURPOSE = "option-choice"
# The person waits on the confirm page while the choice is delivered: a few quick retries of
# a transient failure (5xx, 408, 429, no answer), well inside a browser's patience.
DELIVERY_WAITS = (1.0, 3.0)


@dataclass(frozen=True)
class PendingChoice:
    request_id: str
    option: str
    connection_id: str


@dataclass(frozen=True)
class Chosen:
    option: str
    delivered: bool


class OptionLinks:
    def __init__(
        self,
        settings: Settings,
        writer: MailWriter,
        sealed: SealedValues,
        store: OptionStore,
        audit: AuditSink,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        transport: httpx.AsyncBaseTransport | None = None,  # tests
    ) -> None:
        self._sleep = sleep
        self._transport = transport
        self._settings = settings
        self._writer = writer
        self._sealed = sealed
        self._store = store
        self._audit = audit

    async def _check(self, url: str) -> CheckedWebhook:
        try:
            return await check_webhook(url, allow_http_loopback=self._settings.loopback_webhooks)
        except WebhookRejected as rejected:
            raise ValidationFailed(
                f"callbackUrl {rejected}.",
                errors=[FieldError(("body", "callbackUrl"), str(rejected))],
            ) from None

    async def send(self, mb: ConnectedMailbox, body: SendWithOptionsBody) -> OptionsSent:
        labels = [o.strip() for o in body.options]
        if any(not o or len(o) > 100 for o in labels) or len(set(labels)) != len(labels):
            raise ValidationFailed(
                "options must be distinct, non-empty labels of at most 100 characters.",
                errors=[FieldError(("body", "options"), "invalid option labels")],
            )
        callback = (await self._check(body.callbackUrl)).url if body.callbackUrl else None
        request_id = secrets.token_urlsafe(16)
        secret = secrets.token_urlsafe(32)
        ttl = body.expiresInHours * 3600
        base = str(self._settings.PUBLIC_BASE_URL).rstrip("/")
        links = []
        for label in labels:
            token = await self._sealed.wrap(
                PURPOSE,
                {"r": request_id, "o": label, "u": callback, "s": secret, "c": mb.connection_id},
                ttl,
            )
            links.append(f'<a href="{escape(base)}/api/options/{token}">{escape(label)}</a>')
        text = "".join(f"<p>{escape(line)}</p>" for line in (body.body or "").splitlines())
        html = f"{text}<p>{' &nbsp;|&nbsp; '.join(links)}</p>"
        message = SendMessageBody.model_validate(
            {
                "subject": body.subject,
                "body": {"contentType": "html", "content": html},
                "toRecipients": [r.model_dump() for r in body.toRecipients],
            }
        )
        await self._writer.send(mb, message)
        return OptionsSent(
            requestId=request_id,
            signingSecret=secret,
            expiresAt=datetime.now(UTC) + timedelta(seconds=ttl),
        )

    async def pending(self, token: str) -> PendingChoice:
        data = await self._sealed.unwrap(PURPOSE, token)
        if data is None:
            raise NotFound("This link is not valid or has expired.")
        return PendingChoice(str(data["r"]), str(data["o"]), str(data["c"]))

    async def choose(self, token: str, correlation_id: str) -> Chosen:
        data = await self._sealed.unwrap(PURPOSE, token)
        if data is None:
            raise NotFound("This link is not valid or has expired.")
        request_id, option = str(data["r"]), str(data["o"])
        now = datetime.now(UTC)
        if not await self._store.record_choice(request_id, str(data["c"]), now):
            raise Conflict("An option was already chosen for this mail.")
        event = OptionChosenEvent(
            requestId=request_id,
            connectionId=str(data["c"]),
            selectedOption=option,
            chosenAt=now,
        )
        if data.get("u"):
            targets = [OptionTarget(str(data["u"]), str(data["s"]))]
        else:
            targets = await self._store.subscriptions(str(data["c"]))
        results = [await self._deliver(target, event) for target in targets]
        delivered = bool(results) and all(results)
        self._audit.emit(
            AuditEvent(
                "options.chosen",
                Outcome.SUCCESS if delivered else Outcome.FAILURE,
                correlation_id,
                connection_id=str(data["c"]),
                reason=None if delivered else "callback_failed",
            )
        )
        return Chosen(option, delivered)

    async def _deliver(self, target: OptionTarget, event: OptionChosenEvent) -> bool:
        payload = event.model_copy(update={"subscriptionId": target.subscription_id})
        body = payload.model_dump_json(exclude_none=True).encode()
        try:
            checked = await self._check(target.url)
        except ValidationFailed:
            return False
        timeout = self._settings.WEBHOOK_TIMEOUT_SECONDS
        client = (
            webhook_client(timeout, outbound_ssl_context(self._settings.CA_BUNDLE))
            if self._transport is None
            else httpx.AsyncClient(timeout=timeout, transport=self._transport)
        )
        async with client:
            signature = sign(target.secret, body)
            for wait in (*DELIVERY_WAITS, None):
                attempt = await post_event(client, checked, body, signature, event.requestId)
                if attempt.delivered or not attempt.retryable or wait is None:
                    break
                await self._sleep(wait)
        return attempt.delivered

    # -- "When an option is chosen" (a webhook trigger) ---------------------------------

    async def subscribe(
        self, mb: ConnectedMailbox, notification_url: str
    ) -> OptionSubscriptionCreated:
        connection = mb.connection
        url = (await self._check(notification_url)).url
        subscription_id = secrets.token_urlsafe(16)
        secret = secrets.token_urlsafe(32)
        await self._store.add_subscription(
            connection.id, subscription_id, OptionTarget(url, secret, subscription_id)
        )
        self._audit.emit(
            AuditEvent(
                "options.subscribed",
                Outcome.SUCCESS,
                mb.correlation_id,
                caller_oid=mb.caller.oid if mb.caller else None,
                tenant_id=mb.caller.tenant_id if mb.caller else None,
                connection_id=connection.id,
            )
        )
        return OptionSubscriptionCreated(
            id=subscription_id, connectionId=connection.id, signingSecret=secret
        )

    async def unsubscribe(self, mb: ConnectedMailbox, subscription_id: str) -> None:
        connection = mb.connection
        if not await self._store.delete_subscription(connection.id, subscription_id):
            raise NotFound("No such trigger subscription.")
        self._audit.emit(
            AuditEvent(
                "options.unsubscribed",
                Outcome.SUCCESS,
                mb.correlation_id,
                caller_oid=mb.caller.oid if mb.caller else None,
                tenant_id=mb.caller.tenant_id if mb.caller else None,
                connection_id=connection.id,
            )
        )
