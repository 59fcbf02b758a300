"""Download headers from a sender-chosen attachment name and type (shared/http/downloads.py)."""

from __future__ import annotations

import pytest

from shared.http.downloads import content_disposition, download_media_type


def visible_ascii(value: str) -> bool:
    return all(" " <= c <= "~" for c in value)


@pytest.mark.parametrize(
    "name",
    [
        "a\r\nSet-Cookie: x=1.txt",
        'quote".txt',
        "back\\slash.txt",
        "bell\x07\x00\x7f.txt",
        "Übersicht.pdf",
    ],
)
def test_a_hostile_or_foreign_name_leaves_one_safe_header_value(name: str) -> None:
    header = content_disposition(name)

    assert visible_ascii(header)
    stand_in = header.split('filename="', 1)[1].split('"; filename*=', 1)[0]
    assert '"' not in stand_in and "\\" not in stand_in
    assert len(stand_in) == len(name)


def test_a_missing_name_falls_back() -> None:
    assert (
        content_disposition(None)
        == "attachment; filename=\"attachment\"; filename*=UTF-8''attachment"
    )


@pytest.mark.parametrize(
    ("declared", "served"),
    [
        ("application/pdf", "application/pdf"),
        ("text/plain; charset=utf-8", "text/plain; charset=utf-8"),
        ("text/plain\r\nX-Injected: yes", "application/octet-stream"),
        ("not a type", "application/octet-stream"),
        ("", "application/octet-stream"),
        (None, "application/octet-stream"),
    ],
)
def test_only_a_well_formed_media_type_is_passed_on(declared: str | None, served: str) -> None:
    assert download_media_type(declared) == served
