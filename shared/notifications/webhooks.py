"""The caller's side of a trigger: which webhook URLs may be registered, how an event is
signed, and one POST to the webhook.

A webhook URL is checked when it is registered and again before each delivery (DNS can
change in between): https, or http on loopback only when ALLOW_HTTP_LOOPBACK_WEBHOOKS is on;
every address the host resolves to must be public, so that a caller cannot aim the service
at its own network (see `is_public_address` for what that excludes).

The POST connects to the address the check approved, not to a second resolution of the
name (DNS rebinding: a name that answers a public address to the check and a private one to
the connection). The name is still what TLS sees: it is sent as SNI and the certificate is
verified against it, and it is the `Host` header.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import secrets
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import httpx

MAX_URL_LENGTH = 2048
SIGNATURE_HEADER = "X-Signature"
_LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}

# Azure's platform address (DNS, DHCP, health probes, the VM agent's wire server): global on
# paper, but answers only inside Azure, with the host's own services.
_AZURE_PLATFORM = ipaddress.IPv4Address("168.63.129.16")
# RFC 6052's well-known NAT64 prefix: the last 32 bits are an IPv4 address that a NAT64
# gateway on our network would reach for us.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")

Resolver = Callable[[str, int], Awaitable[list[str]]]


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


class WebhookRejected(ValueError):
    """The URL may not be used as a webhook; the message is safe to show the caller."""


SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)


def new_signing_secret() -> str:
    """A Standard Webhooks secret: `whsec_` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def sign(secret: str, body: bytes) -> str:
    """`sha256=<hex HMAC-SHA256 of the raw body>` keyed with the whole signing secret string
    (`X-Signature`, the scheme receivers had before Standard Webhooks)."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def standard_key(secret: str) -> bytes:
    """The Standard Webhooks key: the base64-decoded part after `whsec_`. A secret issued
    before secrets had that form is used as its UTF-8 bytes."""
    if secret.startswith(SECRET_PREFIX):
        try:
            return base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
        except ValueError:
            pass
    return secret.encode()


def standard_signature(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """`webhook-signature`: `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`
    (Standard Webhooks, github.com/standard-webhooks/standard-webhooks)."""
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(standard_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def signed_headers(secret: str, webhook_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """Every signature header of one attempt: Standard Webhooks' three and `X-Signature`."""
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": standard_signature(secret, webhook_id, timestamp, body),
        SIGNATURE_HEADER: sign(secret, body),
    }


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries to an IPv4 host: IPv4-mapped (::ffff:a.b.c.d),
    6to4 (2002:AABB:CCDD::/16, RFC 3056) or NAT64 (64:ff9b::a.b.c.d, RFC 6052)."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_public_address(address: str) -> bool:
    """Whether a webhook may connect to `address`: globally routable, not multicast or
    reserved, not Azure's platform address, and for IPv6 forms that wrap an IPv4 address
    (mapped, 6to4, NAT64), the wrapped address is judged instead."""
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address):
        ip = _embedded_ipv4(ip) or ip
    return ip.is_global and not (ip.is_multicast or ip.is_reserved) and ip != _AZURE_PLATFORM


def _loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class CheckedWebhook:
    """A webhook URL that passed the check, with the address to connect to (None only for
    an allowed loopback URL, which is used as it is)."""

    url: str
    host: str
    address: str | None = None


async def check_webhook(
    url: str, *, allow_http_loopback: bool, resolver: Resolver = system_resolver
) -> CheckedWebhook:
    """The URL and its checked address if it may be used; `WebhookRejected` otherwise."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL_LENGTH:
        raise WebhookRejected(f"must be an absolute https URL of at most {MAX_URL_LENGTH} chars")
    parts = urlsplit(url)
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        raise WebhookRejected("must be an absolute https URL") from None
    if host is None or parts.username is not None or parts.password is not None:
        raise WebhookRejected("must be an absolute https URL without credentials")
    if _loopback(host):
        if allow_http_loopback and parts.scheme in ("http", "https"):
            return CheckedWebhook(url, host)
        raise WebhookRejected("must not point at a loopback address")
    if parts.scheme != "https":
        raise WebhookRejected("must be an https URL")
    try:
        addresses = await resolver(host, port or 443)
    except (OSError, UnicodeError):
        raise WebhookRejected("its host does not resolve") from None
    try:
        public = bool(addresses) and all(is_public_address(a) for a in addresses)
    except ValueError:  # a resolver answer that is no address at all
        public = False
    if not public:
        raise WebhookRejected("must resolve to public addresses only")
    return CheckedWebhook(url, host, addresses[0])


def _pinned(target: CheckedWebhook) -> tuple[str, dict[str, str], dict[str, str]]:
    """The request URL with the host replaced by the checked address, the `Host` header, and
    the `sni_hostname` extension: httpcore then connects to the address but sends the name
    as SNI and verifies the certificate against the name."""
    parts = urlsplit(target.url)
    if target.address is None:
        return target.url, {}, {}
    literal = f"[{target.address}]" if ":" in target.address else target.address
    netloc = f"{literal}:{parts.port}" if parts.port else literal
    host_header = f"{target.host}:{parts.port}" if parts.port else target.host
    url = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
    extensions = {"sni_hostname": target.host} if parts.scheme == "https" else {}
    return url, {"Host": host_header}, extensions


@dataclass(frozen=True)
class Attempt:
    delivered: bool
    retryable: bool
    status: int | None

    @property
    def gone(self) -> bool:
        """410 Gone: the receiver says this webhook will never take events again."""
        return self.status == 410


def webhook_client(timeout: float, verify: object) -> httpx.AsyncClient:
    """The client for webhook POSTs. No redirects (a redirect could lead anywhere, past the
    checks); no environment proxies or trust; and no kept-alive connections, because pooled
    connections are keyed by address: one verified for another name that shares the address
    must not carry this name's event."""
    return httpx.AsyncClient(
        timeout=timeout,
        follow_redirects=False,
        trust_env=False,
        verify=verify,  # type: ignore[arg-type]
        limits=httpx.Limits(max_keepalive_connections=0),
    )


async def post_event(
    client: httpx.AsyncClient,
    target: CheckedWebhook,
    body: bytes,
    signature: str,
    event_id: str,
    headers: dict[str, str] | None = None,
) -> Attempt:
    """One POST to the checked address; 2xx delivered, 5xx / 408 / 429 / transport errors
    (certificate failures included) worth retrying, any other answer final (the caller's
    endpoint refuses the event)."""
    url, host, extensions = _pinned(target)
    try:
        response = await client.post(
            url,
            content=body,
            headers={
                "content-type": "application/json",
                SIGNATURE_HEADER: signature,
                "X-Event-Id": event_id,
                **(headers or {}),
                **host,
            },
            extensions=extensions,
        )
    except httpx.HTTPError:
        return Attempt(False, True, None)
    status = response.status_code
    if 200 <= status < 300:
        return Attempt(True, False, status)
    return Attempt(False, status >= 500 or status in (408, 429), status)
