"""Listing and reading mail: default seed, paging, $select/$orderby/$count, Graph headers."""

from __future__ import annotations

import time
import uuid

import pytest

from tests.sandbox.graph.support import ALICE, Graph, error_code, mailbox, seed
from tests.support.sandbox import SandboxServer


def test_default_seed_has_the_documented_counts(sandbox: SandboxServer) -> None:
    state = {
        upn: mailbox(sandbox, upn) for upn in (ALICE, "bob@contoso.test", "support@contoso.test")
    }

    def in_folder(upn: str, well_known: str) -> int:
        folder = next(f for f in state[upn]["folders"] if f["wellKnownName"] == well_known)
        return sum(1 for m in state[upn]["messages"] if m["parentFolderId"] == folder["id"])

    assert in_folder(ALICE, "inbox") == 30
    assert in_folder("bob@contoso.test", "inbox") == 5
    assert in_folder("support@contoso.test", "inbox") == 10
    names = {f["displayName"] for f in state[ALICE]["folders"]}
    assert {"Projects", "Deletions", "Inbox", "Outbox", "Archive"} <= names


def test_messages_default_page_is_ten_with_a_next_link(alice: Graph) -> None:
    response = alice.get("/me/mailFolders/inbox/messages")

    body = response.json()
    assert response.status_code == 200
    assert len(body["value"]) == 10
    assert body["@odata.nextLink"].startswith(f"{alice.sandbox.graph_url}/me/mailFolders/inbox/")
    assert "$skip=10" in body["@odata.nextLink"]


def test_messages_are_newest_first_by_default(alice: Graph) -> None:
    values = alice.get("/me/mailFolders/inbox/messages", params={"$top": 30}).json()["value"]

    received = [m["receivedDateTime"] for m in values]
    assert received == sorted(received, reverse=True)


def test_me_messages_spans_all_visible_folders(alice: Graph) -> None:
    body = alice.get("/me/messages", params={"$count": "true", "$top": 1}).json()

    assert body["@odata.count"] == 32  # 30 in Inbox + 2 in Inbox/Projects


def test_next_links_walk_the_whole_folder_once(alice: Graph) -> None:
    url: str | None = "/me/mailFolders/inbox/messages?$top=7&$select=subject"
    seen: list[str] = []
    while url:
        body = alice.get(url).json()
        seen += [m["id"] for m in body["value"]]
        url = body.get("@odata.nextLink")

    assert len(seen) == 30
    assert len(set(seen)) == 30


def test_paging_through_1200_messages_with_top_250(sandbox: SandboxServer, alice: Graph) -> None:
    seed(sandbox, ALICE, count=1200, folder="archive")
    url: str | None = "/me/mailFolders/archive/messages?$top=250&$select=id"
    seen: list[str] = []
    pages = 0
    while url:
        body = alice.get(url).json()
        seen += [m["id"] for m in body["value"]]
        url = body.get("@odata.nextLink")
        pages += 1

    assert pages == 5
    assert len(set(seen)) == 1200


def test_ten_thousand_messages_page_completely_and_quickly(
    sandbox: SandboxServer, alice: Graph
) -> None:
    ids = seed(sandbox, ALICE, count=10_000, folder="archive")
    started = time.monotonic()
    url: str | None = "/me/mailFolders/archive/messages?$top=1000&$select=subject,receivedDateTime"
    seen: list[str] = []
    while url:
        response = alice.get(url)
        assert response.status_code == 200
        body = response.json()
        seen += [m["id"] for m in body["value"]]
        url = body.get("@odata.nextLink")

    assert seen == ids  # newest first: the control seed hands ids out newest first
    assert time.monotonic() - started < 10


def test_top_above_1000_is_capped_at_1000(sandbox: SandboxServer, alice: Graph) -> None:
    seed(sandbox, ALICE, count=1005, folder="archive")

    body = alice.get("/me/mailFolders/archive/messages", params={"$top": 5000}).json()

    assert len(body["value"]) == 1000
    assert "@odata.nextLink" in body


@pytest.mark.parametrize("top", ["0", "-1", "ten"])
def test_invalid_top_is_rejected(alice: Graph, top: str) -> None:
    response = alice.get("/me/messages", params={"$top": top})

    assert response.status_code == 400
    assert error_code(response) == "BadRequest"


def test_skip_skips(alice: Graph) -> None:
    everything = alice.get("/me/mailFolders/inbox/messages?$top=30").json()["value"]

    skipped = alice.get("/me/mailFolders/inbox/messages?$top=5&$skip=20").json()["value"]

    assert [m["id"] for m in skipped] == [m["id"] for m in everything[20:25]]


def test_select_returns_only_the_selected_properties(alice: Graph) -> None:
    message = alice.get("/me/messages?$select=subject,isRead&$top=1").json()["value"][0]

    assert set(message) == {"@odata.etag", "id", "subject", "isRead"}


def test_select_of_an_unknown_property_is_rejected(alice: Graph) -> None:
    response = alice.get("/me/messages?$select=subject,shoeSize")

    assert response.status_code == 400
    assert error_code(response) == "RequestBroker--ParseUri"
    assert "shoeSize" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("$expand=foo", "RequestBroker--ParseUri"),
        ("$apply=groupby((subject))", "BadRequest"),
        ("$format=json", "BadRequest"),
        ("$top=1&$top=2", "BadRequest"),
    ],
)
def test_unsupported_query_options_fail(alice: Graph, query: str, code: str) -> None:
    response = alice.get(f"/me/messages?{query}")

    assert response.status_code == 400
    assert error_code(response) == code


def test_expand_attachments_inlines_them(alice: Graph) -> None:
    messages = alice.get(
        "/me/mailFolders/inbox/messages",
        params={"$filter": "hasAttachments eq true", "$expand": "attachments", "$top": 50},
    ).json()["value"]

    assert messages
    assert all(m["attachments"] for m in messages)


@pytest.mark.parametrize(
    ("orderby", "key", "reverse"),
    [
        ("receivedDateTime asc", "receivedDateTime", False),
        ("receivedDateTime desc", "receivedDateTime", True),
        ("subject", "subject", False),
        ("subject desc", "subject", True),
    ],
)
def test_orderby(alice: Graph, orderby: str, key: str, reverse: bool) -> None:
    values = alice.get(
        "/me/mailFolders/inbox/messages", params={"$orderby": orderby, "$top": 30}
    ).json()["value"]

    got = [m[key] for m in values]
    assert got == sorted(got, key=str.lower, reverse=reverse)


def test_orderby_an_unknown_property_is_rejected(alice: Graph) -> None:
    response = alice.get("/me/messages", params={"$orderby": "shoeSize desc"})

    assert response.status_code == 400
    assert error_code(response) == "RequestBroker--ParseUri"


def test_count_counts_all_matches_not_the_page(alice: Graph) -> None:
    body = alice.get("/me/mailFolders/inbox/messages", params={"$count": "true", "$top": 2}).json()

    assert body["@odata.count"] == 30
    assert len(body["value"]) == 2


def test_get_one_message(alice: Graph) -> None:
    first = alice.get("/me/messages?$top=1").json()["value"][0]

    response = alice.get(f"/me/messages/{first['id']}")

    assert response.status_code == 200
    assert response.json()["subject"] == first["subject"]
    assert response.json()["@odata.context"].endswith("/messages/$entity")


def test_well_known_folder_names_work_in_place_of_ids(alice: Graph) -> None:
    by_name = alice.get("/me/mailFolders/Inbox").json()
    by_id = alice.get(f"/me/mailFolders/{by_name['id']}").json()

    assert by_name["id"] == by_id["id"]
    assert by_name["displayName"] == "Inbox"
    assert by_name["totalItemCount"] == 30
    assert by_name["childFolderCount"] == 1


def test_folder_tree_hides_recoverable_items(alice: Graph) -> None:
    top = alice.get("/me/mailFolders?$top=50").json()["value"]
    hidden_too = alice.get("/me/mailFolders?$top=50&includeHiddenFolders=true").json()["value"]

    names = {f["displayName"] for f in top}
    assert names == {
        "Archive",
        "Deleted Items",
        "Drafts",
        "Inbox",
        "Junk Email",
        "Outbox",
        "Sent Items",
    }
    assert "Deletions" not in {f["displayName"] for f in hidden_too}
    deletions = alice.get("/me/mailFolders/recoverableitemsdeletions").json()
    assert deletions["displayName"] == "Deletions"
    assert deletions["isHidden"] is True


def test_child_folders(alice: Graph) -> None:
    children = alice.get("/me/mailFolders/inbox/childFolders").json()["value"]

    assert [c["displayName"] for c in children] == ["Projects"]
    projects = children[0]
    messages = alice.get(f"/me/mailFolders/inbox/childFolders/{projects['id']}/messages")
    assert len(messages.json()["value"]) == 2


def test_every_response_has_request_ids(alice: Graph) -> None:
    mine = str(uuid.uuid4())

    response = alice.get("/me/messages?$top=1", headers={"client-request-id": mine})

    assert response.headers["client-request-id"] == mine
    assert uuid.UUID(response.headers["request-id"])


def test_errors_have_graphs_body_shape(alice: Graph) -> None:
    mine = str(uuid.uuid4())

    response = alice.get("/me/messages/not-an-id", headers={"client-request-id": mine})

    error = response.json()["error"]
    assert response.status_code == 400
    assert error["code"] == "ErrorInvalidIdMalformed"
    assert error["message"] == "Id is malformed."
    assert error["innerError"]["client-request-id"] == mine
    assert error["innerError"]["request-id"] == response.headers["request-id"]
    assert error["innerError"]["date"]


def test_a_well_formed_unknown_id_is_not_found(alice: Graph) -> None:
    message = alice.get("/me/messages?$top=1").json()["value"][0]
    alice.post(f"/me/messages/{message['id']}/permanentDelete")

    response = alice.get(f"/me/messages/{message['id']}")

    assert response.status_code == 404
    assert error_code(response) == "ErrorItemNotFound"
    assert response.json()["error"]["message"] == (
        "The specified object was not found in the store."
    )


def test_unknown_user_is_invalid_user(alice: Graph) -> None:
    response = alice.get("/users/nobody@contoso.test/messages")

    assert response.status_code == 404
    assert error_code(response) == "ErrorInvalidUser"


def test_unknown_folder_name_is_malformed(alice: Graph) -> None:
    response = alice.get("/me/mailFolders/notafolder/messages")

    assert response.status_code == 400
    assert error_code(response) == "ErrorInvalidIdMalformed"


def test_message_value_is_mime(alice: Graph) -> None:
    message = alice.get(
        "/me/mailFolders/inbox/messages", params={"$filter": "hasAttachments eq true"}
    ).json()["value"][0]

    response = alice.get(f"/me/messages/{message['id']}/$value")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("message/rfc822")
    assert f"Subject: {message['subject']}".encode() in response.content
    assert b"Content-Disposition: attachment" in response.content


def test_regular_ids_are_returned_without_the_immutable_preference(
    alice: Graph, alice_regular: Graph
) -> None:
    immutable = alice.get("/me/messages?$top=1&$select=subject")
    regular = alice_regular.get("/me/messages?$top=1&$select=subject")

    assert immutable.headers["preference-applied"] == 'IdType="ImmutableId"'
    assert "preference-applied" not in regular.headers
    assert immutable.json()["value"][0]["id"] != regular.json()["value"][0]["id"]
    # Both kinds of id address the same message.
    same = alice.get(f"/me/messages/{regular.json()['value'][0]['id']}").json()
    assert same["id"] == immutable.json()["value"][0]["id"]


def test_unknown_segments_fail_as_graph_does(alice: Graph) -> None:
    response = alice.get("/me/events")

    assert response.status_code == 400
    assert response.json()["error"]["message"] == "Resource not found for the segment 'events'."


def test_method_not_allowed(alice: Graph) -> None:
    response = alice.http.put("/me/messages", json={})

    assert response.status_code == 405


def test_path_segments_are_case_insensitive(alice: Graph) -> None:
    response = alice.get("/me/MailFolders/Inbox/Messages?$top=1")

    assert response.status_code == 200
    assert len(response.json()["value"]) == 1


def test_messages_are_reachable_under_their_folder(alice: Graph) -> None:
    message = alice.get("/me/mailFolders/inbox/messages?$top=1").json()["value"][0]

    response = alice.get(f"/me/mailFolders/inbox/messages/{message['id']}/attachments")

    assert response.status_code == 200


def test_another_mailboxs_message_id_is_not_found_here(alice: Graph, bob: Graph) -> None:
    bobs = bob.get("/me/messages?$top=1").json()["value"][0]

    response = alice.get(f"/me/messages/{bobs['id']}")

    assert response.status_code == 404
    assert error_code(response) == "ErrorItemNotFound"


def test_expand_attachments_with_a_nested_select_omits_content(alice: Graph) -> None:
    listing = alice.get("/me/messages?$filter=hasAttachments eq true&$top=1").json()["value"]
    message_id = listing[0]["id"]

    narrow = alice.get(f"/me/messages/{message_id}?$expand=attachments($select=id,name,size)")
    full = alice.get(f"/me/messages/{message_id}?$expand=attachments")
    unknown = alice.get(f"/me/messages/{message_id}?$expand=attachments($select=nope)")

    attachment = narrow.json()["attachments"][0]
    assert narrow.status_code == 200
    assert {"id", "name", "size"} <= set(attachment)
    assert "contentBytes" not in attachment
    assert "contentBytes" in full.json()["attachments"][0]
    assert unknown.status_code == 400
