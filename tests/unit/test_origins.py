"""returnTo allow-list: entries and candidates are compared as parsed URLs, never as string
prefixes (shared/origins.py)."""

from __future__ import annotations

import pytest

from shared.origins import AllowedTarget, allowed

APP = AllowedTarget.parse("https://app.contoso.com")
FLOWS = AllowedTarget.parse("https://flows.contoso.com/done")


@pytest.mark.parametrize(
    "attack",
    [
        "https://app.contoso.com.evil.example/",
        "https://app.contoso.com@evil.example/",
        "https://app.contoso.com:443@evil.example/",
        "https://user:pw@app.contoso.com/",
        "http://app.contoso.com/",
        "https://app.contoso.com:8443/",
        "https://evil.example/https://app.contoso.com",
        "//app.contoso.com/",
        "https:\\\\app.contoso.com\\",
        "https://app.contoso.com\\@evil.example/",
        "https://app.contoso.com/\r\nSet-Cookie: x=y",
        "https://app.contoso.com/#fragment",
        "javascript://app.contoso.com/%0aalert(1)",
        "https://app.contoso.com:99999/",
    ],
)
def test_look_alike_origins_are_refused(attack: str) -> None:
    assert not APP.allows(attack)


@pytest.mark.parametrize(
    "fine",
    [
        "https://app.contoso.com",
        "https://app.contoso.com/",
        "https://APP.contoso.com/flows?x=1",
        "https://app.contoso.com:443/done",
    ],
)
def test_the_same_origin_with_any_path_is_allowed(fine: str) -> None:
    assert APP.allows(fine)


def test_a_path_entry_matches_on_segment_boundaries_only() -> None:
    assert FLOWS.allows("https://flows.contoso.com/done")
    assert FLOWS.allows("https://flows.contoso.com/done/42?x=1")
    assert not FLOWS.allows("https://flows.contoso.com/done-evil")
    assert not FLOWS.allows("https://flows.contoso.com/donex")
    assert not FLOWS.allows("https://flows.contoso.com/")
    assert not FLOWS.allows("https://flows.contoso.com/done/../admin")
    assert not FLOWS.allows("https://flows.contoso.com/done/%2e%2e/admin")


def test_http_is_allowed_on_loopback_only_and_exactly() -> None:
    loopback = AllowedTarget.parse("http://localhost:7071/")

    assert loopback.allows("http://localhost:7071/api/health")
    assert not loopback.allows("http://localhost.evil.example:7071/")
    assert not loopback.allows("http://localhost:7072/")
    assert not loopback.allows("http://localhost/")


@pytest.mark.parametrize(
    "entry",
    [
        "http://localhost.evil.example",
        "http://127.0.0.1.evil.example/",
        "http://app.contoso.com/",
        "app.contoso.com",
        "https://",
        "https://user@app.contoso.com/",
        "https://app.contoso.com/?next=1",
        "https://app.contoso.com/#x",
        "https://app.contoso.com/a/../b",
        "ftp://app.contoso.com/",
        "https://app.contoso.com:notaport/",
    ],
)
def test_entries_that_are_not_an_absolute_origin_are_refused(entry: str) -> None:
    with pytest.raises(ValueError) as refused:
        AllowedTarget.parse(entry)

    assert entry not in str(refused.value)


def test_any_of_several_entries_may_allow() -> None:
    assert allowed("https://flows.contoso.com/done/1", [APP, FLOWS])
    assert not allowed("https://evil.example/", [APP, FLOWS])
    assert not allowed("https://evil.example/", [])
