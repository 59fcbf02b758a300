"""Recipients as Graph objects or as one `;`-separated string, validated at the edge."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shared.mail.compose import ReplyBody, SendMessageBody
from shared.mail.recipients import split_addresses
from shared.mail.settings_models import MailTipsRequest


def test_a_semicolon_list_becomes_graph_recipients() -> None:
    body = SendMessageBody.model_validate(
        {"toRecipients": "a@contoso.test; Bob Example <bob@contoso.test>;"}
    )

    assert body.graph_message()["toRecipients"] == [
        {"emailAddress": {"address": "a@contoso.test"}},
        {"emailAddress": {"address": "bob@contoso.test", "name": "Bob Example"}},
    ]


def test_graph_objects_are_still_accepted_beside_a_string() -> None:
    body = ReplyBody.model_validate(
        {
            "toRecipients": [{"emailAddress": {"address": "a@contoso.test", "name": "A"}}],
            "ccRecipients": "c@contoso.test",
        }
    )

    assert body.toRecipients[0].emailAddress.name == "A"
    assert body.ccRecipients[0].emailAddress.address == "c@contoso.test"


def test_an_empty_string_means_no_recipients() -> None:
    assert SendMessageBody.model_validate({"bccRecipients": " ; "}).bccRecipients == []


@pytest.mark.parametrize(
    "text", ["a@contoso.test; not-an-address", "a@contoso.test; b@c@d", "x <y>", "a@b, c@d"]
)
def test_an_entry_that_is_no_address_is_a_field_error_naming_its_position(text: str) -> None:
    with pytest.raises(ValidationError) as caught:
        SendMessageBody.model_validate({"ccRecipients": text})

    (error,) = caught.value.errors(include_input=False)
    assert error["loc"] == ("ccRecipients",)
    assert "is not an email address" in error["msg"]
    assert "not-an-address" not in error["msg"]  # the rejected text is never echoed


def test_the_position_counts_entries_as_written() -> None:
    with pytest.raises(ValueError, match="entry 3 "):
        split_addresses("a@contoso.test; b@contoso.test; oops")


def test_a_huge_list_is_refused_before_it_is_split() -> None:
    with pytest.raises(ValueError, match="longer than"):
        split_addresses("a@contoso.test;" * 5000)


def test_mail_tips_take_addresses_as_a_list_or_a_string() -> None:
    listed = MailTipsRequest.model_validate({"emailAddresses": ["a@contoso.test"]})
    joined = MailTipsRequest.model_validate({"emailAddresses": "a@contoso.test;b@contoso.test"})

    assert listed.graph() == {
        "EmailAddresses": ["a@contoso.test"],
        "MailTipsOptions": "automaticReplies, mailboxFullStatus",
    }
    assert joined.emailAddresses == ["a@contoso.test", "b@contoso.test"]


def test_mail_tips_refuse_a_list_entry_that_is_not_one_address() -> None:
    with pytest.raises(ValidationError) as caught:
        MailTipsRequest.model_validate({"emailAddresses": ["a@contoso.test", "b@x; c@y"]})

    assert "entry 2 " in caught.value.errors()[0]["msg"]
