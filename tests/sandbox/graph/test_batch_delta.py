"""JSON batching ($batch) and delta queries on a folder's messages."""

from __future__ import annotations

from typing import Any

from tests.sandbox.graph.support import ALICE, Graph, error_code, seed
from tests.support.sandbox import SandboxServer


def _inbox_ids(graph: Graph, n: int) -> list[str]:
    values = graph.get(f"/me/mailFolders/inbox/messages?$top={n}&$select=id").json()["value"]
    return [m["id"] for m in values]


def test_batch_runs_requests_and_answers_each(alice: Graph) -> None:
    ids = _inbox_ids(alice, 2)

    response = alice.post(
        "/$batch",
        json={
            "requests": [
                {"id": "1", "method": "GET", "url": "/me/mailFolders/inbox?$select=displayName"},
                {
                    "id": "2",
                    "method": "PATCH",
                    "url": f"/me/messages/{ids[0]}",
                    "headers": {"Content-Type": "application/json"},
                    "body": {"isRead": True},
                },
                {"id": "3", "method": "GET", "url": f"me/messages/{ids[1]}?$select=subject"},
                {"id": "4", "method": "GET", "url": "/me/messages/not-an-id"},
            ]
        },
    )

    assert response.status_code == 200
    by_id = {r["id"]: r for r in response.json()["responses"]}
    assert by_id["1"]["status"] == 200
    assert by_id["1"]["body"]["displayName"] == "Inbox"
    assert by_id["2"]["status"] == 200
    assert by_id["2"]["body"]["isRead"] is True
    assert by_id["3"]["body"]["id"] == ids[1]
    assert by_id["4"]["status"] == 400
    assert by_id["4"]["body"]["error"]["code"] == "ErrorInvalidIdMalformed"
    assert by_id["1"]["headers"]["Content-Type"].startswith("application/json")


def test_batch_next_links_are_absolute(alice: Graph) -> None:
    response = alice.post(
        "/$batch", json={"requests": [{"id": "1", "method": "GET", "url": "/me/messages"}]}
    )

    link = response.json()["responses"][0]["body"]["@odata.nextLink"]
    assert link.startswith(alice.sandbox.graph_url + "/me/messages?")


def test_batch_of_more_than_20_is_refused(alice: Graph) -> None:
    requests = [{"id": str(i), "method": "GET", "url": "/me/mailFolders"} for i in range(21)]

    response = alice.post("/$batch", json={"requests": requests})

    assert response.status_code == 400
    assert error_code(response) == "BadRequest"


def test_batch_with_duplicate_ids_or_unknown_dependencies_is_refused(alice: Graph) -> None:
    duplicate = [{"id": "1", "method": "GET", "url": "/me"}] * 2
    unknown = [{"id": "1", "method": "GET", "url": "/me/messages", "dependsOn": ["9"]}]

    assert alice.post("/$batch", json={"requests": duplicate}).status_code == 400
    assert alice.post("/$batch", json={"requests": unknown}).status_code == 400


def test_depends_on_orders_requests(sandbox: SandboxServer, alice: Graph) -> None:
    message = _inbox_ids(alice, 1)[0]

    response = alice.post(
        "/$batch",
        json={
            "requests": [
                {
                    "id": "read",
                    "method": "GET",
                    "url": f"/me/messages/{message}?$select=parentFolderId",
                    "dependsOn": ["move"],
                },
                {
                    "id": "move",
                    "method": "POST",
                    "url": f"/me/messages/{message}/move",
                    "body": {"destinationId": "archive"},
                    "headers": {"Content-Type": "application/json"},
                },
            ]
        },
    )

    by_id = {r["id"]: r for r in response.json()["responses"]}
    archive = alice.get("/me/mailFolders/archive").json()["id"]
    assert by_id["move"]["status"] == 201
    assert by_id["read"]["body"]["parentFolderId"] == archive


def test_failed_dependency_is_424(alice: Graph) -> None:
    response = alice.post(
        "/$batch",
        json={
            "requests": [
                {"id": "1", "method": "GET", "url": "/me/messages/not-an-id"},
                {"id": "2", "method": "GET", "url": "/me/mailFolders", "dependsOn": ["1"]},
                {"id": "3", "method": "GET", "url": "/me/mailFolders", "dependsOn": ["2"]},
            ]
        },
    )

    statuses = {r["id"]: r["status"] for r in response.json()["responses"]}
    assert statuses == {"1": 400, "2": 424, "3": 424}


def test_batch_sub_requests_are_authorised_individually(bob: Graph) -> None:
    response = bob.post(
        "/$batch",
        json={
            "requests": [
                {"id": "mine", "method": "GET", "url": "/me/messages?$top=1"},
                {"id": "theirs", "method": "GET", "url": f"/users/{ALICE}/messages?$top=1"},
            ]
        },
    )

    statuses = {r["id"]: r["status"] for r in response.json()["responses"]}
    assert statuses == {"mine": 200, "theirs": 403}


def _walk(graph: Graph, url: str) -> tuple[list[dict[str, Any]], str]:
    values: list[dict[str, Any]] = []
    while True:
        body = graph.get(url).json()
        values += body["value"]
        if "@odata.deltaLink" in body:
            return values, body["@odata.deltaLink"]
        url = body["@odata.nextLink"]


def test_delta_initial_sync_returns_everything_then_a_delta_link(alice: Graph) -> None:
    values, delta_link = _walk(alice, "/me/mailFolders/inbox/messages/delta?$select=subject")

    assert len(values) == 30
    assert len({v["id"] for v in values}) == 30
    assert "$deltatoken=" in delta_link
    assert delta_link.startswith(alice.sandbox.graph_url)


def test_delta_called_as_a_function_with_parentheses_is_the_same_query(alice: Graph) -> None:
    # OData's call syntax, which msgraph-sdk sends (`.../messages/delta()`).
    values, delta_link = _walk(alice, "/me/mailFolders/inbox/messages/delta()?$select=subject")
    plain, _ = _walk(alice, "/me/mailFolders/inbox/messages/delta?$select=subject")

    assert [v["id"] for v in values] == [v["id"] for v in plain]
    assert "$deltatoken=" in delta_link


def test_delta_reports_new_changed_and_removed_messages(
    sandbox: SandboxServer, alice: Graph
) -> None:
    _, delta_link = _walk(alice, "/me/mailFolders/inbox/messages/delta")
    ids = _inbox_ids(alice, 2)
    alice.patch(f"/me/messages/{ids[0]}", json={"isRead": True})
    alice.post(f"/me/messages/{ids[1]}/move", json={"destinationId": "archive"})
    [new] = seed(sandbox, ALICE, count=1)

    values, next_delta = _walk(alice, delta_link)

    changed = {v["id"] for v in values if "@removed" not in v}
    removed = {v["id"] for v in values if "@removed" in v}
    assert changed == {ids[0], new}
    assert removed == {ids[1]}
    assert next(v for v in values if v["id"] == ids[1])["@removed"] == {"reason": "deleted"}
    again, _ = _walk(alice, next_delta)
    assert again == []


def test_delta_honours_max_page_size(alice: Graph) -> None:
    body = alice.get(
        "/me/mailFolders/inbox/messages/delta",
        headers={"Prefer": 'odata.maxpagesize=7, IdType="ImmutableId"'},
    ).json()

    assert len(body["value"]) == 7
    assert "$skiptoken=" in body["@odata.nextLink"]


def test_delta_filter_only_on_received_date_time(alice: Graph) -> None:
    ok = alice.get(
        "/me/mailFolders/inbox/messages/delta",
        params={"$filter": "receivedDateTime ge 2026-01-20T00:00:00Z"},
    )
    bad = alice.get("/me/mailFolders/inbox/messages/delta", params={"$filter": "isRead eq false"})

    assert ok.status_code == 200
    assert all(v["receivedDateTime"] >= "2026-01-20" for v in ok.json()["value"])
    assert bad.status_code == 400
    assert error_code(bad) == "ErrorInvalidUrlQuery"


def test_delta_with_a_forged_token_is_refused(alice: Graph) -> None:
    response = alice.get("/me/mailFolders/inbox/messages/delta?$deltatoken=garbage")

    assert response.status_code == 400


def test_batch_write_without_content_type_or_body_is_refused(alice: Graph) -> None:
    message = _inbox_ids(alice, 1)[0]

    no_header = alice.post(
        "/$batch",
        json={
            "requests": [
                {
                    "id": "1",
                    "method": "PATCH",
                    "url": f"/me/messages/{message}",
                    "body": {"isRead": True},
                }
            ]
        },
    )
    no_body = alice.post(
        "/$batch",
        json={
            "requests": [
                {
                    "id": "1",
                    "method": "POST",
                    "url": f"/me/messages/{message}/send",
                    "headers": {"Content-Type": "application/json"},
                }
            ]
        },
    )

    assert no_header.status_code == 400
    assert no_header.json()["error"]["message"] == (
        "Write request id : 1 does not contain Content-Type header or body."
    )
    assert no_body.status_code == 400


def test_delta_change_type_created_reports_only_new_messages(
    sandbox: SandboxServer, alice: Graph
) -> None:
    _, delta_link = _walk(alice, "/me/mailFolders/inbox/messages/delta?changeType=created")
    ids = _inbox_ids(alice, 2)
    alice.patch(f"/me/messages/{ids[0]}", json={"isRead": True})
    alice.delete(f"/me/messages/{ids[1]}")
    [new] = seed(sandbox, ALICE, count=1)

    values, _ = _walk(alice, delta_link)

    assert [v["id"] for v in values] == [new]
    assert values[0]["@odata.type"] == "#microsoft.graph.message"


def test_delta_orderby_only_received_desc(alice: Graph) -> None:
    ok = alice.get(
        "/me/mailFolders/inbox/messages/delta",
        params={"$orderby": "receivedDateTime desc"},
        headers={"Prefer": "odata.maxpagesize=30"},
    )
    bad = alice.get("/me/mailFolders/inbox/messages/delta", params={"$orderby": "subject"})

    received = [v["receivedDateTime"] for v in ok.json()["value"]]
    assert received == sorted(received, reverse=True)
    assert bad.status_code == 400
