"""Which webhook URLs callers may register, and the event signature."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from shared.errors import ValidationFailed
from shared.notifications.service import NotificationService
from shared.notifications.webhooks import WebhookRejected, check_webhook, sign


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
    assert NotificationService.validation_answer("Validation: a b") == "Validation: a b"
    with pytest.raises(ValidationFailed):
        NotificationService.validation_answer("x" * 1025)
    with pytest.raises(ValidationFailed):
        NotificationService.validation_answer("")
