"""Archiving end to end over real HTTP: caller → app (dev host) → exports queue (Azurite) →
page worker → sandbox Graph (delta, `$value`) → Blob Storage (Azurite) → manifest, items and
verification back through the app.

One private app per module (its own tables, queues and exports container), with small delta
pages so that every export spans several page jobs.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.sandbox.graph.support import user_token as graph_token
from tests.support.app import AppServer, app_settings, isolated_settings, start_app
from tests.support.azurite import AzuriteServer
from tests.support.callers import Caller
from tests.support.sandbox import SandboxServer

ALICE = "alice@contoso.test"
BOB = "bob@contoso.test"
PAGE_SIZE = 7


@pytest.fixture(scope="module")
def export_app(
    sandbox_server: SandboxServer,
    azurite: AzuriteServer,
    servers_dir: Path,
    spare_app_port: int,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[AppServer]:
    tmp = tmp_path_factory.mktemp("export")
    isolation = isolated_settings("exp", tmp)
    settings = {
        **app_settings(sandbox_server, azurite, servers_dir, spare_app_port),
        **isolation,
        "EXPORTS_QUEUE": f"{isolation['TABLE_PREFIX']}-exports",
        "EXPORT_PAGE_SIZE": str(PAGE_SIZE),
    }
    server = start_app(settings, tmp, spare_app_port)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def alice(export_app: AppServer, sandbox: SandboxServer) -> Iterator[Caller]:
    caller = Caller(export_app, sandbox, ALICE)
    yield caller
    export_app.wait_idle()


@pytest.fixture
def graph(sandbox: SandboxServer) -> Iterator[httpx.Client]:
    """Alice's own Graph client against the sandbox: what the archive must match."""
    with httpx.Client(
        base_url=sandbox.graph_url,
        verify=sandbox.ssl_context(),
        timeout=30,
        headers={
            "Authorization": f"Bearer {graph_token(sandbox, ALICE)}",
            "Prefer": 'IdType="ImmutableId"',
        },
    ) as client:
        yield client


def start_export(caller: Caller, body: dict[str, Any]) -> str:
    response = caller.post("/exports", json=body)
    assert response.status_code == 202, response.text
    location = response.headers["location"]
    export_id = str(response.json()["id"])
    assert location == f"/api/connections/{caller.connection_id}/exports/{export_id}"
    return export_id


def wait_finished(caller: Caller, export_id: str, timeout: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        response = caller.get(f"/exports/{export_id}")
        assert response.status_code == 200, response.text
        job = response.json()
        if job["status"] in ("completed", "failed", "cancelled"):
            return dict(job)
        assert time.monotonic() < deadline, f"export still {job['status']}: {job}"
        time.sleep(0.3)


def manifest(caller: Caller, export_id: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params = {"cursor": cursor} if cursor else {}
        response = caller.get(f"/exports/{export_id}/manifest", **params)
        assert response.status_code == 200, response.text
        body = response.json()
        entries += body["value"]
        cursor = body["nextCursor"]
        if not cursor:
            return entries


def folder_id(graph: httpx.Client, name: str) -> str:
    return str(graph.get(f"/me/mailFolders/{name}").json()["id"])


def ids_in(graph: httpx.Client, name: str) -> set[str]:
    ids: set[str] = set()
    url: str | None = f"/me/mailFolders/{name}/messages?$select=id&$top=100"
    while url:
        body = graph.get(url).json()
        ids |= {m["id"] for m in body["value"]}
        url = body.get("@odata.nextLink")
    return ids


def sandbox_sha256(graph: httpx.Client, message_id: str) -> str:
    response = graph.get(f"/me/messages/{message_id}/$value")
    assert response.status_code == 200
    return hashlib.sha256(response.content).hexdigest()


def seed(sandbox: SandboxServer, count: int, folder: str = "inbox") -> list[str]:
    with sandbox.client() as control:
        response = control.post(
            f"/_sandbox/users/{ALICE}/messages", json={"count": count, "folder": folder}
        )
    assert response.status_code == 201, response.text
    return list(response.json()["ids"])


def test_full_export_stores_every_message_with_the_sandboxs_mime_digest(
    alice: Caller, graph: httpx.Client, sandbox: SandboxServer
) -> None:
    seed(sandbox, 12)
    expected = ids_in(graph, "inbox")

    export_id = start_export(alice, {"folders": ["inbox"], "format": "mime"})
    job = wait_finished(alice, export_id)
    entries = manifest(alice, export_id)

    assert job["status"] == "completed", job
    assert {e["messageId"] for e in entries} == expected
    assert len(entries) == len(expected)
    assert job["counts"]["messages"] == len(expected)
    assert job["counts"]["removed"] == 0
    assert job["counts"]["bytes"] == sum(e["size"] for e in entries)
    inbox = folder_id(graph, "inbox")
    for entry in entries:
        assert entry["folderId"] == inbox
        assert entry["sha256"] == sandbox_sha256(graph, entry["messageId"])
    item = alice.get(f"/exports/{export_id}/items/{entries[0]['messageId']}")
    assert item.status_code == 200
    assert item.headers["content-type"].startswith("message/rfc822")
    assert hashlib.sha256(item.content).hexdigest() == entries[0]["sha256"]
    digest = item.headers["content-digest"]
    assert digest.startswith("sha-256=:") and item.headers["digest"].startswith("SHA-256=")
    verified = alice.get(f"/exports/{export_id}/manifest/verify").json()
    assert verified["valid"] is True
    assert verified["checked"] == len(expected)
    listed = alice.get("/exports").json()["value"]
    assert [j["id"] for j in listed] == [export_id]


def test_incremental_export_holds_only_adds_moves_and_deletes(
    alice: Caller, graph: httpx.Client, sandbox: SandboxServer
) -> None:
    base = start_export(alice, {"folders": ["inbox", "archive"]})
    assert wait_finished(alice, base)["status"] == "completed"
    inbox = sorted(ids_in(graph, "inbox"))
    moved, deleted = inbox[0], inbox[1]
    assert graph.post(f"/me/messages/{moved}/move", json={"destinationId": "archive"}).is_success
    assert graph.delete(f"/me/messages/{deleted}").status_code == 204
    added = set(seed(sandbox, 3))

    export_id = start_export(alice, {"folders": ["inbox", "archive"], "since": base})
    job = wait_finished(alice, export_id)
    entries = {e["messageId"]: e for e in manifest(alice, export_id)}

    assert job["status"] == "completed", job
    assert set(entries) == added | {moved, deleted}
    assert entries[deleted].get("removed") is True
    assert entries[moved].get("removed") is None
    assert entries[moved]["folderId"] == folder_id(graph, "archive")
    assert entries[moved]["sha256"] == sandbox_sha256(graph, moved)
    assert all(entries[i].get("removed") is None for i in added)
    assert job["counts"]["messages"] == 4
    assert job["counts"]["removed"] == 1
    assert alice.get(f"/exports/{export_id}/items/{deleted}").status_code == 404


def test_a_page_that_fails_midway_is_redone_without_duplicates(
    alice: Caller, graph: httpx.Client, sandbox: SandboxServer
) -> None:
    """The worker dies in the middle of a page: Graph refuses the third `$value` of the run
    (a 400 the client does not retry), so the page job raises after some of its items were
    stored and before its checkpoint moved. The host hands the message back; the redelivered
    page reads the same delta page again and overwrites what was there."""
    seed(sandbox, 10)
    expected = ids_in(graph, "inbox")
    with sandbox.client() as control:
        control.delete("/_sandbox/requests")
        assert (
            control.post(
                "/_sandbox/faults",
                json={
                    "method": "GET",
                    "pathRegex": r"/messages/[^/]+/\$value$",
                    "status": 400,
                    "body": {"error": {"code": "ErrorInternalServerError", "message": "x"}},
                    "times": 1,
                },
            ).status_code
            == 201
        )

    export_id = start_export(alice, {"folders": ["inbox"]})
    job = wait_finished(alice, export_id)
    entries = manifest(alice, export_id)

    assert job["status"] == "completed", job
    assert len(entries) == len({e["messageId"] for e in entries}) == len(expected)
    assert {e["messageId"] for e in entries} == expected
    assert job["counts"]["messages"] == len(expected)
    with sandbox.client() as control:
        log = control.get("/_sandbox/requests").json()
    fetched = [r["path"] for r in log if r["path"].endswith("/$value")]
    assert len(fetched) > len(expected)  # the failed page was read again
    assert alice.get(f"/exports/{export_id}/manifest/verify").json()["valid"] is True


def test_an_expired_delta_token_means_a_full_resync_with_right_counts(
    alice: Caller, graph: httpx.Client, sandbox: SandboxServer
) -> None:
    base = start_export(alice, {"folders": ["inbox"]})
    assert wait_finished(alice, base)["status"] == "completed"
    seed(sandbox, 2)
    with sandbox.client() as control:
        assert control.post(f"/_sandbox/users/{ALICE}/delta/expire").status_code == 200
    expected = ids_in(graph, "inbox")

    export_id = start_export(alice, {"folders": ["inbox"], "since": base})
    job = wait_finished(alice, export_id)
    entries = manifest(alice, export_id)

    assert job["status"] == "completed", job
    assert {e["messageId"] for e in entries} == expected
    assert job["counts"] == {
        "messages": len(expected),
        "removed": 0,
        "bytes": sum(e["size"] for e in entries),
        "failed": 0,
    }


def test_a_tampered_item_fails_verification(
    alice: Caller, export_app: AppServer, sandbox: SandboxServer
) -> None:
    from azure.storage.blob import ContainerClient

    export_id = start_export(alice, {"folders": ["inbox"], "format": "json"})
    assert wait_finished(alice, export_id)["status"] == "completed"
    entries = manifest(alice, export_id)
    tampered, gone = entries[0]["messageId"], entries[1]["messageId"]
    container = ContainerClient.from_connection_string(
        export_app.settings["STORAGE_CONNECTION_STRING"],
        f"{export_app.settings['TABLE_PREFIX']}-exports",
    )
    with container:
        names = {
            b.name
            for b in container.list_blobs(name_starts_with=f"{alice.connection_id}/{export_id}/")
        }
        key = {hashlib.sha256(m.encode()).hexdigest(): m for m in (tampered, gone)}
        by_message = {
            key[n.rsplit("/", 1)[1].split(".")[0]]: n
            for n in names
            if n.rsplit("/", 1)[1].split(".")[0] in key
        }
        body = json.loads(container.download_blob(by_message[tampered]).readall())
        body["subject"] = "altered"
        container.upload_blob(by_message[tampered], json.dumps(body).encode(), overwrite=True)
        container.delete_blob(by_message[gone])

    verified = alice.get(f"/exports/{export_id}/manifest/verify").json()

    assert verified["valid"] is False
    assert verified["sealValid"] is True
    assert verified["mismatched"] == [tampered]
    assert verified["missing"] == [gone]


def test_someone_elses_export_is_not_found(
    alice: Caller, export_app: AppServer, sandbox: SandboxServer
) -> None:
    export_id = start_export(alice, {"folders": ["inbox"]})
    bob = Caller(export_app, sandbox, BOB)
    bob_on_alice = httpx.Client(
        base_url=f"{export_app.url}/api/connections/{alice.connection_id}",
        headers={"Authorization": f"Bearer {sandbox.user_token(BOB)}"},
    )

    with bob_on_alice:
        through_alices_connection = bob_on_alice.get(f"/exports/{export_id}")
        manifest_there = bob_on_alice.get(f"/exports/{export_id}/manifest")
    through_his_own = bob.get(f"/exports/{export_id}")
    deleted = bob.delete(f"/exports/{export_id}")

    assert through_alices_connection.status_code == 404
    assert through_alices_connection.json()["code"] == "connection_not_found"
    assert manifest_there.status_code == 404
    assert through_his_own.status_code == 404
    assert through_his_own.json()["code"] == "export_not_found"
    assert deleted.status_code == 404
    wait_finished(alice, export_id)


def test_bad_requests_are_problems_not_500s(alice: Caller) -> None:
    cases = [
        ({"folders": [], "format": "mime"}, "validation_failed"),
        ({"format": "pdf"}, "validation_failed"),
        ({"receivedAfter": "2026-01-01T00:00:00"}, "validation_failed"),
        ({"since": "no-such-export"}, "export_not_found"),
        ({"unknown": 1}, "validation_failed"),
    ]
    for body, code in cases:
        response = alice.post("/exports", json=body)
        assert 400 <= response.status_code < 500, (body, response.text)
        assert response.json()["code"] == code, (body, response.text)
    assert alice.get("/exports/nope/manifest", cursor="garbage").json()["code"] == (
        "export_not_found"
    )


def test_a_running_export_is_cancelled_then_a_finished_one_deleted(
    alice: Caller, sandbox: SandboxServer
) -> None:
    seed(sandbox, 40)
    export_id = start_export(alice, {"folders": "all"})

    cancelled = alice.delete(f"/exports/{export_id}")
    job = wait_finished(alice, export_id)
    deleted = alice.delete(f"/exports/{export_id}")
    after = alice.get(f"/exports/{export_id}")

    assert cancelled.status_code == 202, cancelled.text
    assert job["status"] == "cancelled"
    assert deleted.status_code == 204
    assert after.status_code == 404
    assert after.json()["code"] == "export_not_found"


def test_page_jobs_delivered_again_during_and_after_a_run_change_nothing(
    alice: Caller, export_app: AppServer, graph: httpx.Client, sandbox: SandboxServer
) -> None:
    """Re-running page jobs through the dev host's admin API, as a redelivery would: page 0
    twice more while the export is running (racing the queue's own delivery), then pages 0
    and 1 again after it completed."""
    seed(sandbox, 10)
    expected = ids_in(graph, "inbox")
    export_id = start_export(alice, {"folders": ["inbox"]})
    inbox = alice.get(f"/exports/{export_id}").json()["folders"][0]

    def run_page(page: int) -> None:
        body = {"c": alice.connection_id, "e": export_id, "f": inbox, "p": page}
        with export_app.client() as admin:
            response = admin.post("/admin/functions/exports_page", json={"input": json.dumps(body)})
        assert response.status_code == 202, response.text

    run_page(0)
    run_page(0)
    job = wait_finished(alice, export_id)
    export_app.wait_idle()
    before = manifest(alice, export_id)
    with sandbox.client() as control:
        control.delete("/_sandbox/requests")
    run_page(0)
    run_page(1)
    export_app.wait_idle()
    after = manifest(alice, export_id)

    assert job["status"] == "completed", job
    assert len(before) == len({e["messageId"] for e in before}) == len(expected)
    assert {e["messageId"] for e in before} == expected
    assert after == before
    assert alice.get(f"/exports/{export_id}").json()["counts"] == job["counts"]
    with sandbox.client() as control:
        log = control.get("/_sandbox/requests").json()
    assert [r for r in log if r["path"].startswith("/v1.0/")] == []  # nothing read again
    assert alice.get(f"/exports/{export_id}/manifest/verify").json()["valid"] is True


def all_folder_ids_and_total(graph: httpx.Client) -> tuple[set[str], int]:
    folders: set[str] = set()
    total = 0
    pending = ["/me/mailFolders?$top=100"]
    while pending:
        body = graph.get(pending.pop()).json()
        for folder in body["value"]:
            folders.add(folder["id"])
            total += folder["totalItemCount"]
            if folder["childFolderCount"]:
                pending.append(f"/me/mailFolders/{folder['id']}/childFolders?$top=100")
    return folders, total


def test_exporting_all_folders_as_json_covers_every_visible_folder(
    alice: Caller, graph: httpx.Client, sandbox: SandboxServer
) -> None:
    created = graph.post("/me/mailFolders/inbox/childFolders", json={"displayName": "Sub"})
    assert created.status_code == 201, created.text
    sub = created.json()["id"]
    seed(sandbox, 3, folder=sub)
    folders, total = all_folder_ids_and_total(graph)

    export_id = start_export(alice, {"folders": "all", "format": "json"})
    job = wait_finished(alice, export_id)
    entries = manifest(alice, export_id)

    assert job["status"] == "completed", job
    assert set(job["folders"]) == folders
    assert job["counts"]["messages"] == len(entries) == total
    assert sub in {e["folderId"] for e in entries}
    item = alice.get(f"/exports/{export_id}/items/{entries[0]['messageId']}")
    assert item.headers["content-type"].startswith("application/json")
    assert json.loads(item.content)["id"] == entries[0]["messageId"]


def test_odd_export_ids_are_not_found_not_errors(alice: Caller) -> None:
    for export_id in ("a%23b", "a%3Fb", "x" * 65, "a%5Cb", "a'b"):
        response = alice.get(f"/exports/{export_id}")
        assert response.status_code == 404, (export_id, response.text)
        assert response.json()["code"] == "export_not_found"
    since = alice.post("/exports", json={"since": "a#b/c"})
    assert since.status_code == 404
    assert since.json()["code"] == "export_not_found"
