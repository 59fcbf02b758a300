"""The Outlook connector's trigger filters, applied to the notified message."""

from __future__ import annotations

from typing import Any

import pytest

from shared.notifications.filters import Filters, matches


def _message(**overrides: Any) -> dict[str, Any]:
    message: dict[str, Any] = {
        "subject": "Invoice 42 attached",
        "from": {"emailAddress": {"address": "Boss@Example.test"}},
        "toRecipients": [{"emailAddress": {"address": "alice@contoso.test"}}],
        "ccRecipients": [{"emailAddress": {"address": "bob@contoso.test"}}],
        "importance": "high",
        "hasAttachments": True,
    }
    message.update(overrides)
    return message


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({}, True),
        ({"from": "boss@example.test"}, True),
        ({"from": "x@example.test; boss@example.test"}, True),
        ({"from": "someone@example.test"}, False),
        ({"to": "alice@contoso.test"}, True),
        ({"to": "bob@contoso.test"}, False),
        ({"cc": "BOB@contoso.test"}, True),
        ({"importance": "high"}, True),
        ({"importance": "low"}, False),
        ({"hasAttachments": True}, True),
        ({"hasAttachments": False}, False),
        ({"subjectContains": "invoice"}, True),
        ({"subjectContains": "receipt"}, False),
        ({"from": "boss@example.test", "hasAttachments": True, "importance": "high"}, True),
    ],
)
def test_filters(filters: dict[str, Any], expected: bool) -> None:
    assert matches(Filters.model_validate(filters), _message()) is expected


def test_missing_fields_do_not_match_a_filter_on_them() -> None:
    assert not matches(Filters.model_validate({"from": "boss@example.test"}), {"subject": "x"})
    assert matches(Filters(), {})


def test_unknown_filters_are_refused() -> None:
    with pytest.raises(ValueError):
        Filters.model_validate({"bodyContains": "x"})


# --- mentionsMe: Outlook's @mention anchor in the HTML body --------------------------------
ME = ("alice@contoso.test",)
# As Outlook on the web writes a mention (id OWAAM + 32 hex digits, the name in a span).
MENTION = (
    '<a id="OWAAM29C89DAFD5E14DD4AF1FCC5361A59632" href="mailto:alice@contoso.test">'
    '<span style="font-family:&quot;Calibri&quot;,sans-serif;text-decoration:none">'
    "@Alice Example</span></a>"
)
SIGNATURE = (
    '<div id="Signature"><p>Bob Builder | Contoso<br>'
    '<a href="mailto:alice@contoso.test">alice@contoso.test</a> for billing</p></div>'
)


def _html(*parts: str) -> dict[str, Any]:
    content = (
        '<html><head><meta http-equiv="Content-Type" content="text/html; charset=utf-8">'
        '</head><body><div class="elementToProof" style="font-size:11pt">'
        + "".join(parts)
        + "</div></body></html>"
    )
    return {"contentType": "html", "content": content}


def _mentions_me(body: dict[str, Any], me: tuple[str, ...] = ME) -> bool:
    return matches(Filters(mentionsMe=True), _message(body=body), me)


def test_an_outlook_mention_of_the_mailbox_passes() -> None:
    assert _mentions_me(_html("Hi ", MENTION, ", could you look at this?"))


def test_new_outlooks_mention_form_passes_too() -> None:
    # New Outlook: attributes in another order, a numeric id, classes, no span.
    mention = (
        '<a href="mailto:alice@contoso.test" id="OWAAM957748" '
        'class="tWKOu mention ms-bgc-nlr ms-fcl-b" moz-do-not-send="true">@Alice</a>'
    )

    assert _mentions_me(_html("+", mention, "<br>please review"))


def test_a_plain_mailto_link_in_a_signature_is_not_a_mention() -> None:
    assert not _mentions_me(_html("Thanks for the invoice.", SIGNATURE))


def test_a_mention_of_someone_else_does_not_pass() -> None:
    other = MENTION.replace("alice@contoso.test", "bob@contoso.test")

    assert not _mentions_me(_html("Hi ", other, SIGNATURE))


def test_addresses_are_compared_without_regard_to_case() -> None:
    upper = MENTION.replace("alice@contoso.test", "Alice@CONTOSO.test")

    assert _mentions_me(_html(upper))
    assert _mentions_me(_html(MENTION), ("ALICE@contoso.TEST",))


def test_any_of_the_mailboxs_addresses_is_recognised() -> None:
    smtp = MENTION.replace("alice@contoso.test", "alice.example@contoso.test")

    assert _mentions_me(_html(smtp), ("alice@contoso.test", "alice.example@contoso.test"))


def test_a_quoted_mention_in_a_reply_is_not_a_new_mention() -> None:
    # Outlook prefixes ids in the quoted part of a reply.
    quoted = MENTION.replace('id="OWAAM', 'id="x_OWAAM')

    assert not _mentions_me(_html("Sounds good.<hr>", quoted))


def test_a_text_body_or_a_missing_body_mentions_no_one() -> None:
    text = {"contentType": "text", "content": 'id="OWAAM1" href="mailto:alice@contoso.test"'}

    assert not _mentions_me(text)
    assert not matches(Filters(mentionsMe=True), _message(), ME)


def test_without_mentions_me_the_body_is_not_needed() -> None:
    assert not Filters().reads_body
    assert Filters(mentionsMe=True).reads_body
    assert matches(Filters(mentionsMe=False), _message())


def test_a_mention_split_across_parser_slices_is_still_found() -> None:
    # Padding puts the anchor across the boundary of the parser's 16 KiB slices.
    for pad in range(16 * 1024 - 60, 16 * 1024 + 5, 7):
        assert _mentions_me(_html("x" * pad, MENTION))
