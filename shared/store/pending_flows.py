"""Pending browser sign-ins of earlier releases: rows of MSAL's flow dict, sealed, with a
10-minute life.

Sign-ins no longer write here: the flow travels sealed in the browser's cookie
(shared/connections/signin.py), so that an anonymous `/api/auth/login` stores nothing. What
remains is for rows written before an upgrade: the lifecycle timer purges them once they
expire, and key rotation still covers them meanwhile (`SEALED`).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from shared.crypto.envelope import SealedTable
from shared.crypto.keyring import KeyRingCache
from shared.store.expiry import purge_expired
from shared.store.table_set import TableSet

TABLE = "pendingflows"
SEALED = SealedTable(TABLE, "Flow")  # MSAL's auth-code flow (PKCE verifier, nonce)
PREFIX = SEALED.prefix
FLOW_TTL = timedelta(minutes=10)


class PendingFlowStore:
    def __init__(self, tables: TableSet, keys: KeyRingCache) -> None:
        self._tables = tables
        self._keys = keys

    async def purge_expired(self, now: datetime) -> int:
        """Delete flows past their TTL (the lifecycle timer calls this)."""
        return await purge_expired(await self._tables.table(TABLE), now, "purge pending flows")


__all__ = ["FLOW_TTL", "PendingFlowStore"]
