"""Identity drill: access tokens that live 1 second, so every mail call needs a refresh at the
identity provider, which is first slow (2 s per request) and then down (503 on the token
endpoint). It proves that a slow identity provider only slows calls down (they still succeed),
that an identity outage answers a clean 5xx problem+json with a stable code (never a bare 500,
never a hang, never a lost connection), and that calls succeed again once it is back (after
MSAL's own hold-off on a 5xx, 5 s without Retry-After)."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.support.app import app_settings, start_app
from tests.support.azurite import AzuriteServer
from tests.support.browser import connect
from tests.support.drills import wait_for
from tests.support.processes import free_port
from tests.support.sandbox import start_sandbox

UPN = "alice@contoso.test"


def test_refresh_against_a_slow_then_down_identity_provider_fails_cleanly_and_recovers(
    azurite: AzuriteServer, tmp_path: Path
) -> None:
    port = free_port()
    sandbox = start_sandbox(
        tmp_path,
        {
            "SANDBOX_REDIRECT_URIS": f"http://127.0.0.1:{port}/api/auth/callback",
            "SANDBOX_ACCESS_TOKEN_LIFETIME": "1",
        },
    )
    server = None
    try:
        server = start_app(app_settings(sandbox, azurite, tmp_path, port), tmp_path, port)
        connection_id = connect(server, sandbox, UPN)
        with sandbox.client() as control:
            minted = control.post("/_sandbox/token", json={"user": UPN, "lifetimeSeconds": 3600})
        headers = {"Authorization": f"Bearer {minted.json()['access_token']}"}
        base = f"{server.url}/api/connections/{connection_id}"
        with (
            httpx.Client(base_url=base, headers=headers, timeout=90) as api,
            sandbox.client() as control,
        ):
            assert api.get("/messages", params={"top": 5}).status_code == 200  # JWKS cached

            control.post("/_sandbox/latency", json={"identityMs": 2000}).raise_for_status()
            slow = [api.get("/messages", params={"top": 5}) for _ in range(3)]
            control.post("/_sandbox/latency", json={}).raise_for_status()

            control.post(
                "/_sandbox/faults",
                json={"method": "POST", "pathRegex": r"/oauth2/v2\.0/token$", "status": 503},
            ).raise_for_status()
            down = [api.get("/messages", params={"top": 5}) for _ in range(3)]
            control.delete("/_sandbox/faults").raise_for_status()

            # MSAL holds a 5xx answer for its Retry-After (5 s when absent) before asking again.
            recovered = wait_for(
                lambda: api.get("/messages", params={"top": 5}).status_code == 200, 30
            )
            back = [api.get("/messages", params={"top": 5}) for _ in range(3)]
            with sandbox.client() as log:
                refreshes = [
                    r
                    for r in log.get("/_sandbox/requests").json()
                    if r["path"].endswith("/oauth2/v2.0/token")
                ]
    finally:
        if server is not None:
            server.stop()
        sandbox.stop()

    assert len(refreshes) >= 3, refreshes  # the identity provider was in the path
    assert [r.status_code for r in slow] == [200, 200, 200], [r.text for r in slow]
    assert all(r.elapsed.total_seconds() >= 2 for r in slow)
    for response in down:
        assert response.status_code in {502, 503}, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["code"] != "internal_error", response.text
    assert recovered
    assert [r.status_code for r in back] == [200, 200, 200], [r.text for r in back]
