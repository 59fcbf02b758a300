"""Cursors: Graph's nextLink, signed, expiring, bound to a connection and to GRAPH_BASE_URL."""

from __future__ import annotations

import base64
import struct

import pytest

from shared.config import load_settings
from shared.errors import InvalidCursor
from shared.graph.cursor import CursorCodec, cursor_codec_from_settings, process_local_secret
from tests.support.app import sample_settings

BASE = "https://graph.microsoft.com/v1.0"
LINK = f"{BASE}/me/mailFolders/inbox/messages?$top=50&$filter=isRead%20eq%20false&$skip=50"
SECRET = b"k" * 32


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def codec(clock: Clock) -> CursorCodec:
    return CursorCodec(SECRET, BASE, ttl_seconds=3600, clock=clock)


def test_round_trip(codec: CursorCodec) -> None:
    cursor = codec.encode(LINK, "conn-1")

    assert codec.decode(cursor, "conn-1") == LINK


def test_cursor_is_compact_url_safe_and_opaque(codec: CursorCodec) -> None:
    cursor = codec.encode(LINK, "conn-1")

    assert len(cursor) < len(LINK) + 40
    assert all(c.isalnum() or c in "-_." for c in cursor)
    assert "graph.microsoft.com" not in cursor and "conn-1" not in cursor


def test_a_cursor_of_another_connection_is_refused(codec: CursorCodec) -> None:
    cursor = codec.encode(LINK, "conn-1")

    with pytest.raises(InvalidCursor):
        codec.decode(cursor, "conn-2")


def test_an_expired_cursor_is_refused(codec: CursorCodec, clock: Clock) -> None:
    cursor = codec.encode(LINK, "conn-1")
    clock.now += 3600

    with pytest.raises(InvalidCursor):
        codec.decode(cursor, "conn-1")


def test_a_cursor_still_valid_just_before_expiry(codec: CursorCodec, clock: Clock) -> None:
    cursor = codec.encode(LINK, "conn-1")
    clock.now += 3599

    assert codec.decode(cursor, "conn-1") == LINK


@pytest.mark.parametrize("position", [0, 5, 20, -3, -1])
def test_any_altered_character_is_refused(codec: CursorCodec, position: int) -> None:
    cursor = codec.encode(LINK, "conn-1")
    flipped = "A" if cursor[position] != "A" else "B"
    tampered = cursor[:position] + flipped + (cursor[position + 1 :] if position != -1 else "")

    with pytest.raises(InvalidCursor):
        codec.decode(tampered, "conn-1")


def test_a_payload_swapped_under_a_valid_tag_is_refused(codec: CursorCodec) -> None:
    header = struct.pack(">BBQ", 1, 0, 4_000_000_000)
    body = base64.urlsafe_b64encode(header + b"/users/bob@contoso.test/messages").decode()
    cursor = codec.encode(LINK, "conn-1")

    with pytest.raises(InvalidCursor):
        codec.decode(body.rstrip("=") + "." + cursor.split(".")[1], "conn-1")


@pytest.mark.parametrize(
    "cursor", ["", ".", "abc", "abc.", ".abc", "a.b.c", "!!!.???", "x" * 9000, "\x00.\x00"]
)
def test_garbage_is_refused(codec: CursorCodec, cursor: str) -> None:
    with pytest.raises(InvalidCursor):
        codec.decode(cursor, "conn-1")


def test_a_cursor_signed_with_another_secret_is_refused(clock: Clock) -> None:
    other = CursorCodec(b"o" * 32, BASE, clock=clock)
    cursor = other.encode(LINK, "conn-1")

    with pytest.raises(InvalidCursor):
        CursorCodec(SECRET, BASE, clock=clock).decode(cursor, "conn-1")


@pytest.mark.parametrize(
    "link",
    [
        "https://evil.test/v1.0/me/messages?$skip=10",
        "http://graph.microsoft.com/v1.0/me/messages",
        "https://graph.microsoft.com:8443/v1.0/me/messages",
        "https://graph.microsoft.com/beta/me/messages",
        "https://graph.microsoft.com/v1.0/../beta/me",
        "https://graph.microsoft.com/v1.0/me/messages/..%2F..%2Fusers",
    ],
)
def test_a_next_link_off_the_graph_base_url_is_never_encoded(codec: CursorCodec, link: str) -> None:
    with pytest.raises(ValueError):
        codec.encode(link, "conn-1")


@pytest.mark.parametrize("suffix", ["/../beta/me", "@evil.test/v1.0/me", ".evil.test/x", "/a%2Fb"])
def test_a_correctly_signed_link_off_the_base_is_still_refused_at_decode(
    codec: CursorCodec, suffix: str
) -> None:
    # As if encode had a bug or the base URL setting changed: decode checks the link again.
    header = struct.pack(">BBQ", 1, 0, 4_000_000_000)
    body = base64.urlsafe_b64encode(header + suffix.encode()).decode().rstrip("=")
    tag = base64.urlsafe_b64encode(codec._mac(body, "c")).decode().rstrip("=")

    with pytest.raises(InvalidCursor):
        codec.decode(f"{body}.{tag}", "c")


def test_short_secrets_are_refused() -> None:
    with pytest.raises(ValueError):
        CursorCodec(b"short", BASE)


def test_settings_without_a_secret_use_one_key_per_process() -> None:
    settings = load_settings({**sample_settings(), "CA_BUNDLE": ""})

    a, b = cursor_codec_from_settings(settings), cursor_codec_from_settings(settings)
    link = f"{settings.graph_base_url}/me/messages?$skip=10"

    assert b.decode(a.encode(link, "c"), "c") == link
    assert process_local_secret() == process_local_secret()


def test_settings_with_a_secret_use_it() -> None:
    secret = base64.b64encode(b"s" * 32).decode()
    settings = load_settings({**sample_settings(), "CA_BUNDLE": "", "CURSOR_SECRET": secret})
    link = f"{settings.graph_base_url}/me/messages?$skip=10"

    cursor = cursor_codec_from_settings(settings).encode(link, "c")

    assert CursorCodec(b"s" * 32, settings.graph_base_url).decode(cursor, "c") == link
