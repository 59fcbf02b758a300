"""File attachments and Outlook upload sessions (3 MB..150 MB, chunks of at most 4 MB in
multiples of 320 KiB, pre-authenticated uploadUrl)."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.sandbox.graph.support import Graph, error_code
from tests.support.sandbox import SandboxServer

KIB320 = 320 * 1024
MB = 1024 * 1024


def _draft(graph: Graph) -> dict[str, Any]:
    return dict(graph.post("/me/messages", json={"subject": "with a big file"}).json())


def _session(graph: Graph, message_id: str, size: int, name: str = "big.bin") -> httpx.Response:
    return graph.post(
        f"/me/messages/{message_id}/attachments/createUploadSession",
        json={"AttachmentItem": {"attachmentType": "file", "name": name, "size": size}},
    )


@pytest.fixture
def uploader(sandbox: SandboxServer) -> Iterator[httpx.Client]:
    """A client with no Authorization header, as the pre-authenticated uploadUrl requires."""
    client = httpx.Client(verify=sandbox.ssl_context(), timeout=60)
    yield client
    client.close()


def _put(client: httpx.Client, url: str, data: bytes, start: int, total: int) -> httpx.Response:
    end = start + len(data) - 1
    return client.put(url, content=data, headers={"Content-Range": f"bytes {start}-{end}/{total}"})


def test_seeded_attachments_list_get_and_value(alice: Graph) -> None:
    message = alice.get(
        "/me/mailFolders/inbox/messages",
        params={"$filter": "hasAttachments eq true", "$top": 50},
    ).json()["value"]
    large = next(
        m
        for m in message
        if any(
            a["size"] >= 4 * MB
            for a in alice.get(f"/me/messages/{m['id']}/attachments?$select=size,name").json()[
                "value"
            ]
        )
    )

    listing = alice.get(f"/me/messages/{large['id']}/attachments").json()["value"]
    attachment = listing[0]
    one = alice.get(f"/me/messages/{large['id']}/attachments/{attachment['id']}").json()
    raw = alice.get(f"/me/messages/{large['id']}/attachments/{attachment['id']}/$value")

    assert attachment["@odata.type"] == "#microsoft.graph.fileAttachment"
    assert one["size"] == len(raw.content) >= 4 * MB
    assert base64.b64decode(one["contentBytes"]) == raw.content
    assert raw.headers["content-type"].startswith("application/octet-stream")


def test_post_a_small_file_attachment(alice: Graph) -> None:
    draft = _draft(alice)

    response = alice.post(
        f"/me/messages/{draft['id']}/attachments",
        json={
            "@odata.type": "#microsoft.graph.fileAttachment",
            "name": "hello.txt",
            "contentType": "text/plain",
            "contentBytes": base64.b64encode(b"hello").decode(),
        },
    )

    assert response.status_code == 201
    assert response.json()["size"] == 5
    assert alice.get(f"/me/messages/{draft['id']}").json()["hasAttachments"] is True


def test_post_an_attachment_without_odata_type_is_refused(alice: Graph) -> None:
    draft = _draft(alice)

    response = alice.post(
        f"/me/messages/{draft['id']}/attachments",
        json={"name": "hello.txt", "contentBytes": "aGVsbG8="},
    )

    assert response.status_code == 400
    assert error_code(response) == "RequestBodyRead"


def test_post_more_than_the_request_limit_is_too_large(alice: Graph) -> None:
    draft = _draft(alice)

    response = alice.post(
        f"/me/messages/{draft['id']}/attachments",
        json={
            "@odata.type": "#microsoft.graph.fileAttachment",
            "name": "big.bin",
            "contentBytes": base64.b64encode(b"\0" * (3 * MB + 1)).decode(),
        },
    )

    assert response.status_code == 413


def test_delete_an_attachment(alice: Graph) -> None:
    draft = _draft(alice)
    created = alice.post(
        f"/me/messages/{draft['id']}/attachments",
        json={
            "@odata.type": "#microsoft.graph.fileAttachment",
            "name": "x",
            "contentBytes": "eA==",
        },
    ).json()

    assert (
        alice.delete(f"/me/messages/{draft['id']}/attachments/{created['id']}").status_code == 204
    )
    assert alice.get(f"/me/messages/{draft['id']}/attachments").json()["value"] == []


def test_upload_session_happy_path(alice: Graph, uploader: httpx.Client) -> None:
    draft = _draft(alice)
    size = 10 * KIB320 + 12_345  # 3.2 MB: two chunks of 1.6 MB (5 x 320 KiB) and the rest
    data = hashlib.sha256(b"x").digest() * (size // 32 + 1)
    data = data[:size]

    session = _session(alice, draft["id"], size)
    assert session.status_code == 201
    body = session.json()
    assert body["nextExpectedRanges"] == ["0-"]
    url = body["uploadUrl"]

    first = _put(uploader, url, data[: 5 * KIB320], 0, size)
    assert first.status_code == 200
    assert first.json()["nextExpectedRanges"] == [str(5 * KIB320)]
    second = _put(uploader, url, data[5 * KIB320 : 10 * KIB320], 5 * KIB320, size)
    assert second.status_code == 200
    last = _put(uploader, url, data[10 * KIB320 :], 10 * KIB320, size)
    assert last.status_code == 201
    location = last.headers["location"]
    assert f"/Messages('{draft['id']}')/Attachments('" in location

    attachments = alice.get(f"/me/messages/{draft['id']}/attachments?$select=name,size")
    listed = attachments.json()["value"]
    assert [(a["name"], a["size"]) for a in listed] == [("big.bin", size)]
    raw = alice.get(f"/me/messages/{draft['id']}/attachments/{listed[0]['id']}/$value")
    assert raw.content == data


def test_upload_session_below_3_mb_is_refused(alice: Graph) -> None:
    response = _session(alice, _draft(alice)["id"], 3 * MB - 1)

    assert response.status_code == 400
    assert error_code(response) == "ErrorAttachmentSizeShouldNotBeLessThanMinimumSize"


def test_upload_session_above_150_mb_is_refused_at_creation(alice: Graph) -> None:
    response = _session(alice, _draft(alice)["id"], 150 * MB + 1)

    assert response.status_code == 400
    assert error_code(response) == "ErrorAttachmentSizeLimitExceeded"


def test_upload_session_for_a_non_file_attachment_is_refused(alice: Graph) -> None:
    draft = _draft(alice)

    response = alice.post(
        f"/me/messages/{draft['id']}/attachments/createUploadSession",
        json={"AttachmentItem": {"attachmentType": "item", "name": "x", "size": 4 * MB}},
    )

    assert response.status_code == 400


def test_chunk_out_of_order_is_416(alice: Graph, uploader: httpx.Client) -> None:
    size = 4 * MB
    url = _session(alice, _draft(alice)["id"], size).json()["uploadUrl"]

    response = _put(uploader, url, b"\0" * KIB320, KIB320, size)

    assert response.status_code == 416


def test_chunk_over_4_mb_is_too_large(alice: Graph, uploader: httpx.Client) -> None:
    size = 6 * MB
    url = _session(alice, _draft(alice)["id"], size).json()["uploadUrl"]

    response = _put(uploader, url, b"\0" * (4 * MB + KIB320), 0, size)

    assert response.status_code == 413


def test_chunks_need_not_be_multiples_of_320_kib(alice: Graph, uploader: httpx.Client) -> None:
    # Microsoft's walkthrough: 3,483,322 bytes sent as 2,097,152 + 1,386,170.
    size = 3_483_322
    draft = _draft(alice)
    url = _session(alice, draft["id"], size).json()["uploadUrl"]

    first = _put(uploader, url, b"\1" * 2_097_152, 0, size)
    last = _put(uploader, url, b"\2" * 1_386_170, 2_097_152, size)

    assert first.status_code == 200
    assert first.json()["nextExpectedRanges"] == ["2097152"]
    assert "ExpirationDateTime" in first.json()
    assert last.status_code == 201
    assert last.headers["content-length"] == "0"


def test_chunk_with_a_wrong_total_is_refused(alice: Graph, uploader: httpx.Client) -> None:
    size = 4 * MB
    url = _session(alice, _draft(alice)["id"], size).json()["uploadUrl"]

    response = _put(uploader, url, b"\0" * KIB320, 0, size + 1)

    assert response.status_code == 400


def test_chunk_without_content_range_is_refused(alice: Graph, uploader: httpx.Client) -> None:
    url = _session(alice, _draft(alice)["id"], 4 * MB).json()["uploadUrl"]

    response = uploader.put(url, content=b"\0" * KIB320)

    assert response.status_code == 400


def test_upload_url_refuses_an_authorization_header(alice: Graph, uploader: httpx.Client) -> None:
    size = 4 * MB
    url = _session(alice, _draft(alice)["id"], size).json()["uploadUrl"]

    response = uploader.put(
        url,
        content=b"\0" * KIB320,
        headers={"Content-Range": f"bytes 0-{KIB320 - 1}/{size}", "Authorization": "Bearer x"},
    )

    assert response.status_code == 401


def test_upload_url_with_a_wrong_secret_is_refused(alice: Graph, uploader: httpx.Client) -> None:
    size = 4 * MB
    url = _session(alice, _draft(alice)["id"], size).json()["uploadUrl"]
    forged = url.split("authtoken=")[0] + "authtoken=forged"

    response = _put(uploader, forged, b"\0" * KIB320, 0, size)

    assert response.status_code == 401


def test_a_cancelled_session_is_gone(alice: Graph, uploader: httpx.Client) -> None:
    size = 4 * MB
    url = _session(alice, _draft(alice)["id"], size).json()["uploadUrl"]

    assert uploader.delete(url).status_code == 204
    assert _put(uploader, url, b"\0" * KIB320, 0, size).status_code == 404


def test_upload_of_150_mb_completes(alice: Graph, uploader: httpx.Client) -> None:
    size = 150 * MB
    draft = _draft(alice)
    url = _session(alice, draft["id"], size).json()["uploadUrl"]
    chunk = b"\x5a" * (12 * KIB320)  # 3.75 MiB
    start = 0
    response: httpx.Response | None = None
    while start < size:
        piece = chunk[: min(len(chunk), size - start)]
        response = _put(uploader, url, piece, start, size)
        assert response.status_code in (200, 201), response.text
        start += len(piece)

    assert response is not None and response.status_code == 201
    listed = alice.get(f"/me/messages/{draft['id']}/attachments?$select=size").json()["value"]
    assert listed[0]["size"] == size


def test_delegated_upload_session_in_a_shared_mailbox_is_forbidden(
    alice: Graph, app: Graph
) -> None:
    # Microsoft's known issue: delegated createUploadSession works only in one's own mailbox.
    draft = alice.post("/users/support@contoso.test/messages", json={"subject": "x"}).json()
    body = {"AttachmentItem": {"attachmentType": "file", "name": "f", "size": 4 * MB}}

    delegated = alice.post(
        f"/users/support@contoso.test/messages/{draft['id']}/attachments/createUploadSession",
        json=body,
    )
    as_app = app.post(
        f"/users/support@contoso.test/messages/{draft['id']}/attachments/createUploadSession",
        json=body,
    )

    assert delegated.status_code == 403
    assert error_code(delegated) == "ErrorAccessDenied"
    assert as_app.status_code == 201
