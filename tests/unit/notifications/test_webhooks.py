"""Which webhook URLs callers may register, which addresses count as public, that a
delivery connects to the address that was checked (with the name still used for TLS), and
the event signature."""

from __future__ import annotations

import hashlib
import hmac

import httpx
import pytest

from shared.errors import ValidationFailed
from shared.notifications.intake import validation_answer
from shared.notifications.webhooks import (
    WebhookRejected,
    check_webhook,
    is_public_address,
    post_event,
    sign,
)


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/hook",  # not https
        "https://10.0.0.5/hook",  # private
        "https://192.168.1.1/hook",
        "https://169.254.169.254/metadata",  # link-local: the platform's metadata endpoint
        "https://[fe80::1]/hook",
        "https://[::ffff:10.0.0.1]/hook",  # private behind an IPv4-mapped address
        "https://0.0.0.0/hook",
        "https://user:pw@example.com/hook",  # credentials in the URL
        "ftp://example.com/x",
        "https://" + "a" * 3000 + ".com/",
        "",
    ],
)
async def test_rejected_urls(url: str) -> None:
    with pytest.raises(WebhookRejected):
        await check_webhook(url, allow_http_loopback=False)


async def test_loopback_only_when_allowed() -> None:
    with pytest.raises(WebhookRejected):
        await check_webhook("http://127.0.0.1:8080/hook", allow_http_loopback=False)
    with pytest.raises(WebhookRejected):
        await check_webhook("https://localhost/hook", allow_http_loopback=False)

    assert await check_webhook("http://127.0.0.1:8080/h", allow_http_loopback=True)
    assert await check_webhook("http://localhost:8080/h", allow_http_loopback=True)


async def test_public_https_literal_is_accepted() -> None:
    assert await check_webhook("https://8.8.8.8/hook", allow_http_loopback=False)


def test_signature_is_hmac_sha256_of_the_raw_body() -> None:
    body = b'{"messageId":"x"}'
    expected = hmac.new(b"secret", body, hashlib.sha256).hexdigest()

    assert sign("secret", body) == f"sha256={expected}"


def test_validation_answer_echoes_only_a_bounded_token() -> None:
    assert validation_answer("Validation: a b") == "Validation: a b"
    with pytest.raises(ValidationFailed):
        validation_answer("x" * 1025)
    with pytest.raises(ValidationFailed):
        validation_answer("")


@pytest.mark.parametrize(
    "address",
    [
        "10.0.0.1",
        "127.0.0.1",
        "169.254.169.254",
        "100.64.0.1",  # carrier-grade NAT
        "168.63.129.16",  # Azure's platform address (wire server, DNS, health probes)
        "::1",
        "fd00::1",
        "::ffff:10.0.0.1",  # IPv4-mapped
        "2002:a00:1::1",  # 6to4 wrapping 10.0.0.1
        "2002:a9fe:a9fe::1",  # 6to4 wrapping 169.254.169.254
        "64:ff9b::a00:1",  # NAT64 wrapping 10.0.0.1
        "64:ff9b::a9fe:a9fe",  # NAT64 wrapping 169.254.169.254
        "64:ff9b::a83f:8110",  # NAT64 wrapping 168.63.129.16
        "224.0.0.1",
    ],
)
def test_private_platform_and_wrapped_private_addresses_are_not_public(address: str) -> None:
    assert not is_public_address(address)


@pytest.mark.parametrize("address", ["8.8.8.8", "2606:4700::1111", "2002:808:808::1"])
def test_public_addresses_are_public(address: str) -> None:
    assert is_public_address(address)


@pytest.mark.parametrize(
    "url",
    ["https://[2002:a00:1::1]/hook", "https://[64:ff9b::a00:1]/hook", "https://168.63.129.16/"],
)
async def test_urls_wrapping_private_addresses_are_rejected(url: str) -> None:
    with pytest.raises(WebhookRejected):
        await check_webhook(url, allow_http_loopback=False)


async def test_a_name_resolving_to_any_private_address_is_rejected() -> None:
    async def resolver(host: str, port: int) -> list[str]:
        return ["8.8.8.8", "10.0.0.7"]

    with pytest.raises(WebhookRejected):
        await check_webhook("https://hook.example/h", allow_http_loopback=False, resolver=resolver)


async def test_a_resolver_answering_differently_later_cannot_redirect_the_connection() -> None:
    answers = iter([["8.8.8.8"], ["127.0.0.1"], ["127.0.0.1"]])
    calls: list[str] = []

    async def rebinding(host: str, port: int) -> list[str]:
        calls.append(host)
        return next(answers)

    seen: list[httpx.Request] = []

    def server(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(202)

    target = await check_webhook(
        "https://hook.example:8443/flow?sig=s", allow_http_loopback=False, resolver=rebinding
    )
    async with httpx.AsyncClient(transport=httpx.MockTransport(server)) as client:
        attempt = await post_event(client, target, b"{}", "sha256=x", "e1")

    assert attempt.delivered
    assert calls == ["hook.example"]  # resolved once, by the check; never again
    [request] = seen
    assert request.url.host == "8.8.8.8" and request.url.port == 8443
    assert request.url.path == "/flow" and request.url.query == b"sig=s"
    assert request.headers["host"] == "hook.example:8443"
    assert request.extensions["sni_hostname"] == "hook.example"
