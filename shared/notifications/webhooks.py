"""The caller's side of a trigger: which webhook URLs may be registered, how an event is
signed, and one POST to the webhook.

A webhook URL is checked when it is registered and again before each delivery (DNS can
change in between): https, or http on loopback only when ALLOW_HTTP_LOOPBACK_WEBHOOKS is on;
every address the host resolves to must be public (no private, loopback, link-local —
169.254.169.254 is the platform's metadata endpoint —, multicast or reserved addresses),
so that a caller cannot aim the service at its own network.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

MAX_URL_LENGTH = 2048
SIGNATURE_HEADER = "X-Signature"
_LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}


class WebhookRejected(ValueError):
    """The URL may not be used as a webhook; the message is safe to show the caller."""


def sign(secret: str, body: bytes) -> str:
    """`sha256=<hex HMAC-SHA256 of the raw body>` under the subscription's signing secret."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not (ip.is_multicast or ip.is_reserved)


def _loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def check_webhook(url: str, *, allow_http_loopback: bool) -> str:
    """The URL if it may be used; `WebhookRejected` otherwise."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL_LENGTH:
        raise WebhookRejected(f"must be an absolute https URL of at most {MAX_URL_LENGTH} chars")
    parts = urlsplit(url)
    host = parts.hostname
    if host is None or parts.username is not None or parts.password is not None:
        raise WebhookRejected("must be an absolute https URL without credentials")
    if _loopback(host):
        if allow_http_loopback and parts.scheme in ("http", "https"):
            return url
        raise WebhookRejected("must not point at a loopback address")
    if parts.scheme != "https":
        raise WebhookRejected("must be an https URL")
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, parts.port or 443, type=socket.SOCK_STREAM
        )
    except (OSError, UnicodeError):
        raise WebhookRejected("its host does not resolve") from None
    if not infos or not all(_public(str(info[4][0])) for info in infos):
        raise WebhookRejected("must resolve to public addresses only")
    return url


@dataclass(frozen=True)
class Attempt:
    delivered: bool
    retryable: bool
    status: int | None


async def post_event(
    client: httpx.AsyncClient, url: str, body: bytes, signature: str, event_id: str
) -> Attempt:
    """One POST; 2xx delivered, 5xx / 408 / 429 / transport errors worth retrying, any other
    answer final (the caller's endpoint refuses the event)."""
    try:
        response = await client.post(
            url,
            content=body,
            headers={
                "content-type": "application/json",
                SIGNATURE_HEADER: signature,
                "X-Event-Id": event_id,
            },
        )
    except httpx.HTTPError:
        return Attempt(False, True, None)
    status = response.status_code
    if 200 <= status < 300:
        return Attempt(True, False, status)
    return Attempt(False, status >= 500 or status in (408, 429), status)
