"""Bulk drill: the app (dev host and worker) is SIGKILLed while a bulk mark-read of 60 messages
is half-way through its Graph $batch calls, then started again on the same storage. It proves
that what the API reports after the restart is the truth about the mailbox: the interrupted
key does not replay a result that never existed (it answers 409 `conflict`, as documented for
an unfinished request, or a stored result), a fresh request reports every message done, the
mailbox then has exactly those messages read, and nothing was duplicated or lost."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path
from typing import Any

import httpx

from tests.support.app import AppServer, app_settings, start_app
from tests.support.azurite import AzuriteServer
from tests.support.browser import connect
from tests.support.processes import wait_until
from tests.support.sandbox import SandboxServer

UPN = "alice@contoso.test"
COUNT = 60


def mailbox(sandbox: SandboxServer) -> list[dict[str, Any]]:
    with sandbox.client() as control:
        return list(control.get(f"/_sandbox/users/{UPN}/mailbox").json()["messages"])


def batches(sandbox: SandboxServer) -> int:
    with sandbox.client() as control:
        return sum(r["path"].endswith("/$batch") for r in control.get("/_sandbox/requests").json())


def test_app_killed_mid_bulk_reports_only_the_truth_after_restart(
    sandbox: SandboxServer, azurite: AzuriteServer, spare_app_port: int, tmp_path: Path
) -> None:
    settings = app_settings(sandbox, azurite, tmp_path, spare_app_port)
    with sandbox.client() as control:
        seeded = control.post(f"/_sandbox/users/{UPN}/messages", json={"count": COUNT})
        seeded.raise_for_status()
    servers = [start_app(settings, tmp_path, spare_app_port)]
    try:
        run_drill(servers, sandbox, settings, tmp_path, spare_app_port)
    finally:
        for server in servers:
            server.stop()


def run_drill(
    servers: list[AppServer],
    sandbox: SandboxServer,
    settings: dict[str, str],
    tmp_path: Path,
    port: int,
) -> None:
    server = servers[0]
    connection_id = connect(server, sandbox, UPN)
    headers = {"Authorization": f"Bearer {sandbox.user_token(UPN)}"}
    base = f"{server.url}/api/connections/{connection_id}"
    with httpx.Client(base_url=base, headers=headers, timeout=60) as api:
        listed = api.get("/messages", params={"top": 100})
    assert listed.status_code == 200, listed.text
    ids = [m["id"] for m in listed.json()["value"] if not m["isRead"]][:COUNT]
    assert len(ids) == COUNT
    before = mailbox(sandbox)
    body = {"action": "markRead", "ids": ids}
    key = str(uuid.uuid4())
    with sandbox.client() as control:
        control.delete("/_sandbox/requests").raise_for_status()
        control.post("/_sandbox/latency", json={"graphMs": 1500}).raise_for_status()

    interrupted: list[BaseException | httpx.Response] = []

    def bulk() -> None:
        try:
            with httpx.Client(base_url=base, headers=headers, timeout=60) as api:
                interrupted.append(
                    api.post("/messages/bulk", json=body, headers={"Idempotency-Key": key})
                )
        except httpx.TransportError as failure:
            interrupted.append(failure)

    worker = threading.Thread(target=bulk, daemon=True)
    worker.start()
    try:
        wait_until(lambda: batches(sandbox) >= 1, 30, "the first $batch")
        server.process.stop(sig=9)
        worker.join(30)
        with sandbox.client() as control:
            control.post("/_sandbox/latency", json={}).raise_for_status()
        server = start_app(settings, tmp_path, port)
        servers.append(server)
        with httpx.Client(base_url=base, headers=headers, timeout=60) as api:
            retried = api.post("/messages/bulk", json=body, headers={"Idempotency-Key": key})
            fresh = api.post(
                "/messages/bulk", json=body, headers={"Idempotency-Key": str(uuid.uuid4())}
            )
    finally:
        server.stop()
    after = mailbox(sandbox)

    assert len(interrupted) == 1 and isinstance(interrupted[0], httpx.TransportError)
    # The interrupted key: never a made-up success. A stored result would have to be true.
    assert retried.status_code in {200, 409}, retried.text
    if retried.status_code == 409:
        assert retried.json()["code"] == "conflict"
    # A fresh request finishes the job and says so, item by item.
    assert fresh.status_code == 200, fresh.text
    result = fresh.json()
    assert (result["succeeded"], result["failed"]) == (len(ids), 0), result
    assert sorted(item["id"] for item in result["value"]) == sorted(ids)
    # The mailbox agrees: those messages are read, no message was added or lost.
    read = {m["id"] for m in after if m.get("isRead")}
    assert set(ids) <= read
    assert sorted(m["id"] for m in after) == sorted(m["id"] for m in before)
