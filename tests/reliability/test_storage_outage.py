"""Storage outage drill: a private app on a private Azurite that keeps its data on disk; while
callers keep reading mail, Azurite is stopped for a few seconds and started again. It proves
that during the outage requests fail cleanly (200 from what the app holds in memory, or 503
problem+json `storage_unavailable`; never a 500 or a hang), that the app recovers by itself
once storage is back, and that the connection's stored grant is neither lost nor corrupted
(the same connection reads mail again, through a refresh-capable grant)."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.support.app import app_settings, start_app
from tests.support.browser import connect
from tests.support.drills import Traffic, call, wait_for
from tests.support.persistent_azurite import PersistentAzurite
from tests.support.sandbox import SandboxServer

UPN = "alice@contoso.test"
OUTAGE_SECONDS = 4


def test_azurite_restarted_under_load_fails_cleanly_recovers_and_keeps_the_grant(
    sandbox: SandboxServer, servers_dir: Path, spare_app_port: int, tmp_path: Path
) -> None:
    storage = PersistentAzurite(tmp_path)
    settings = app_settings(sandbox, storage, tmp_path, spare_app_port)  # type: ignore[arg-type]
    server = start_app(settings, tmp_path, spare_app_port)
    try:
        connection_id = connect(server, sandbox, UPN)
        headers = {"Authorization": f"Bearer {sandbox.user_token(UPN)}"}
        with httpx.Client(base_url=f"{server.url}/api", headers=headers, timeout=60) as api:
            paths = [
                f"/connections/{connection_id}/messages?top=5",
                f"/connections/{connection_id}",
                "/connections",
            ]
            with Traffic(api, paths) as traffic:
                wait_for(lambda: len(traffic.answers) >= 6, 30)
                storage.stop()
                down_at = traffic.elapsed()
                wait_for(lambda: traffic.elapsed() > down_at + OUTAGE_SECONDS, 30)
                storage.start()
                up_at = traffic.elapsed()
                recovered = wait_for(
                    lambda: sum(a.status == 200 and a.at > up_at for a in traffic.answers) >= 6,
                    60,
                )
            after = [call(api, path, 0) for path in paths]
    finally:
        server.stop()
        storage.stop()

    answers = traffic.answers
    during = [a for a in answers if down_at < a.at < up_at]
    failures = [a for a in answers if a.status != 200]
    assert during, "no request was made while storage was down"
    assert {a.status for a in answers} <= {200, 503}, failures
    assert all(a.code == "storage_unavailable" for a in failures), failures
    assert any(a.status == 503 for a in during), "storage was never in the path"
    assert all(a.seconds < 30 for a in answers), max(a.seconds for a in answers)
    assert recovered, answers[-6:]
    assert [a.status for a in after] == [200, 200, 200], after
