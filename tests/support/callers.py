"""A caller of the API as one user, for one connection (shared by the mail e2e tests)."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support.app import AppServer
from tests.support.browser import connect
from tests.support.sandbox import SandboxServer


class Caller:
    """A caller of the API as one user, for one connection."""

    def __init__(self, app: AppServer, sandbox: SandboxServer, upn: str) -> None:
        self.upn = upn
        self.connection_id = connect(app, sandbox, upn)
        self.client = httpx.Client(
            base_url=f"{app.url}/api/connections/{self.connection_id}",
            headers={"Authorization": f"Bearer {sandbox.user_token(upn)}"},
            timeout=120,
        )

    def get(self, path: str = "", **params: Any) -> httpx.Response:
        return self.client.get(path, params=params)

    def post(
        self, path: str, json: Any = None, *, key: str | None = None, **params: Any
    ) -> httpx.Response:
        return self.client.post(path, json=json, params=params, headers=_key(key))

    def patch(
        self, path: str, json: Any, *, key: str | None = None, **params: Any
    ) -> httpx.Response:
        return self.client.patch(path, json=json, params=params, headers=_key(key))

    def delete(self, path: str, *, key: str | None = None, **params: Any) -> httpx.Response:
        return self.client.delete(path, params=params, headers=_key(key))


def _key(key: str | None) -> dict[str, str]:
    return {"Idempotency-Key": key} if key else {}
