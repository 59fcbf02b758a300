"""Ids and mailboxes from callers: validated, and encoded as exactly one path segment."""

from __future__ import annotations

import string
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.errors import ValidationFailed
from shared.graph.paths import (
    MailboxPath,
    folder_segment,
    graph_id,
    is_relative_graph_path,
    is_within_base,
    mailbox_segment,
)

IMMUTABLE = "AAkALgAAAAAAHYQDEapmEc2byACqAC-EWg0AnuC2v3dHsUqfQ3zK0BiNUAAAAAAAAA=="
REGULAR = "AAMkAGI2THVSAAA_abc-def=="


@pytest.mark.parametrize("value", [IMMUTABLE, REGULAR, "a", "AAk+ALg=", "x" * 512])
def test_graph_shaped_ids_are_accepted_unchanged(value: str) -> None:
    assert graph_id(value) == value.replace("+", "%2B").replace("=", "%3D")


@given(st.text(alphabet=string.ascii_letters + string.digits + "-_=+", min_size=1, max_size=512))
def test_an_id_is_encoded_as_urllib_quotes_one_segment(value: str) -> None:
    assert graph_id(value) == quote(value, safe="")


@pytest.mark.parametrize(
    "value",
    [
        "..%2F..%2Fusers%2Fbob@contoso.test%2Fmessages",
        "../../users/bob@contoso.test/messages",
        "abc/def",
        "%00",
        "abc\x00def",
        "a" * 10 * 1024,
        "x" * 513,
        "",
        "..",
        ".",
        "abc def",
        "abc\tdef",
        "abc\ndef",
        "abc?x=1",
        "abc#frag",
        "abc\\def",
        "%2e%2e",
        "abc'",
        "ü",
    ],
)
def test_ids_that_could_leave_their_segment_are_refused(value: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        graph_id(value, field="messageId")

    assert caught.value.errors[0].loc == ("path", "messageId")
    assert value not in caught.value.detail or value == ""


def test_a_refused_id_never_reaches_a_path() -> None:
    with pytest.raises(ValidationFailed):
        MailboxPath.of(None).message("..%2F..%2Fusers%2Fbob@contoso.test%2Fmessages")


def test_mailbox_paths() -> None:
    me, shared = MailboxPath.of(None), MailboxPath.of("support@contoso.test")

    assert me.messages() == "/me/messages"
    assert shared.messages() == "/users/support@contoso.test/messages"
    assert me.message(IMMUTABLE) == f"/me/messages/{IMMUTABLE.replace('=', '%3D')}"
    assert me.attachment_content("AAMk", "AAMkAt") == "/me/messages/AAMk/attachments/AAMkAt/$value"
    assert me.message_mime("AAMk") == "/me/messages/AAMk/$value"
    assert me.folder_messages("Inbox") == "/me/mailFolders/inbox/messages"
    assert me.child_folders("msgfolderroot") == "/me/mailFolders/msgfolderroot/childFolders"
    assert me.message_action("AAMk", "createReply") == "/me/messages/AAMk/createReply"


def test_object_ids_and_apostrophes_in_mailboxes() -> None:
    assert (
        mailbox_segment("0f7c3a2e-1111-4a4a-9b9b-123456789abc")
        == "0f7c3a2e-1111-4a4a-9b9b-123456789abc"
    )
    assert mailbox_segment("o'brien@contoso.test") == "o%27brien@contoso.test"


@pytest.mark.parametrize(
    "value",
    [
        "bob@contoso.test/messages",
        "../users/bob@contoso.test",
        "bob",
        "bob@",
        "@contoso.test",
        "bob@contoso",
        "bob@contoso..test",
        "bob%40contoso.test",
        "bob@contoso.test\x00",
        "bob @contoso.test",
        "a" * 400 + "@contoso.test",
    ],
)
def test_malformed_mailboxes_are_refused(value: str) -> None:
    with pytest.raises(ValidationFailed):
        MailboxPath.of(value)


@pytest.mark.parametrize("name", ["inbox", "Inbox", "SENTITEMS", "recoverableitemsdeletions"])
def test_well_known_folders_are_lower_cased(name: str) -> None:
    assert folder_segment(name) == name.lower()


def test_other_folders_must_be_ids() -> None:
    assert folder_segment("AAMkAGFolder==") == "AAMkAGFolder%3D%3D"
    with pytest.raises(ValidationFailed):
        folder_segment("Inbox/Projects")


def test_message_actions_are_allow_listed() -> None:
    with pytest.raises(ValueError):
        MailboxPath.of(None).message_action("AAMk", "../../users")


@pytest.mark.parametrize(
    ("path", "ok"),
    [
        ("/me/messages", True),
        ("/me/messages/AAk%3D", True),
        ("/me/messages/a%2Fb", False),
        ("/me/messages/a%5cb", False),
        ("/me/%2e%2e/users", False),
        ("/me/./messages", False),
        ("/me/messages?$top=1", False),
        ("//evil.test/x", False),
        ("/me/messages\r\nX: y", False),
    ],
)
def test_relative_paths(path: str, ok: bool) -> None:
    assert is_relative_graph_path(path) is ok


def test_within_base_compares_host_case_insensitively_and_default_ports() -> None:
    base = "https://graph.microsoft.com/v1.0"

    assert is_within_base("https://GRAPH.microsoft.com:443/v1.0/me/messages?$skip=10", base)
    assert not is_within_base("https://graph.microsoft.com/v1.0", base)
    assert not is_within_base("https://graph.microsoft.com/v1.0evil/me", base)
    assert not is_within_base("https://graph.microsoft.com:99999/v1.0/me", base)


def test_a_subscription_resource_names_the_folder_as_graph_documents_it() -> None:
    """`me/mailFolders('{id}')/messages`, the id as it is: a resource is not decoded, so
    `%3D` in place of `=` would name another folder (custom folders answered 404)."""
    me = MailboxPath.of(None)

    assert me.folder_messages_resource("Inbox") == "me/mailFolders('inbox')/messages"
    assert me.folder_messages_resource(IMMUTABLE) == f"me/mailFolders('{IMMUTABLE}')/messages"
    for hostile in ("x')/messages", "a/b", "inbox'", "%3D", ""):
        with pytest.raises(ValidationFailed):
            me.folder_messages_resource(hostile)
