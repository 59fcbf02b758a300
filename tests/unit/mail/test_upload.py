"""ChunkUploader and the writer's limits: what is sent, and what is refused up front."""

from __future__ import annotations

import base64

import httpx
import pytest

from shared.errors import GraphError, PayloadTooLarge, ValidationFailed
from shared.graph.limiter import MailboxLimiter
from shared.mail.compose import AttachmentIn, SendMessageBody
from shared.mail.upload import ChunkUploader
from shared.mail.writer import MailWriter, WriteLimits, destination_id

URL = "https://graph.example/_upload/attachmentSessions/abc?authtoken=xyz"


def uploader(handler: httpx.MockTransport, **kw: object) -> ChunkUploader:
    http = httpx.AsyncClient(transport=handler)
    return ChunkUploader(http, MailboxLimiter(4), frozenset({"graph.example"}), **kw)  # type: ignore[arg-type]


async def test_chunks_are_consecutive_ranges_without_authorization() -> None:
    seen: list[tuple[str, int, bool]] = []
    data = bytes(range(256)) * 40  # 10,240 bytes

    def handle(request: httpx.Request) -> httpx.Response:
        body = request.read()
        seen.append(
            (request.headers["content-range"], len(body), "authorization" in request.headers)
        )
        last = request.headers["content-range"].endswith(f"{len(data) - 1}/{len(data)}")
        return httpx.Response(201 if last else 200, headers={"Location": "loc"} if last else {})

    location = await uploader(httpx.MockTransport(handle), chunk_bytes=4096).put(
        URL, data, mailbox_key="alice"
    )

    assert seen == [
        ("bytes 0-4095/10240", 4096, False),
        ("bytes 4096-8191/10240", 4096, False),
        ("bytes 8192-10239/10240", 2048, False),
    ]
    assert location == "loc"


async def test_a_throttled_chunk_is_sent_again_after_retry_after() -> None:
    answers = iter([httpx.Response(429, headers={"Retry-After": "3"}), httpx.Response(201)])
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    up = uploader(httpx.MockTransport(lambda _: next(answers)), sleep=sleep)
    await up.put(URL, b"x" * 10, mailbox_key="alice")

    assert slept == [3.0]


@pytest.mark.parametrize(
    "url", ["http://graph.example/x", "https://evil.example/x", "ftp://graph.example/x"]
)
def test_unexpected_upload_urls_are_refused(url: str) -> None:
    with pytest.raises(GraphError):
        uploader(httpx.MockTransport(lambda _: httpx.Response(200))).check_url(url)


def writer(max_bytes: int = 1000, max_recipients: int = 2) -> MailWriter:
    return MailWriter(None, None, WriteLimits(max_bytes, max_recipients))  # type: ignore[arg-type]


def attachment(size: int) -> AttachmentIn:
    return AttachmentIn(name="a", contentBytes=base64.b64encode(b"x" * size).decode())


def test_the_decoded_size_is_known_without_decoding() -> None:
    assert [attachment(n).size for n in (0, 1, 2, 3, 1000)] == [0, 1, 2, 3, 1000]


def test_limits_are_checked_before_anything_else() -> None:
    recipients = [{"emailAddress": {"address": f"u{i}@x.test"}} for i in range(3)]

    with pytest.raises(ValidationFailed):
        writer().check_limits(SendMessageBody(toRecipients=recipients), [])
    with pytest.raises(PayloadTooLarge):
        writer().check_limits(SendMessageBody(), [attachment(600), attachment(600)])
    writer().check_limits(SendMessageBody(), [attachment(500)])


@pytest.mark.parametrize(("given", "sent"), [("Archive", "archive"), ("AAMkAGI2=", "AAMkAGI2=")])
def test_destinations_are_validated_and_sent_raw(given: str, sent: str) -> None:
    assert destination_id(given) == sent
    with pytest.raises(ValidationFailed):
        destination_id("../inbox")
