"""Pending browser sign-ins: MSAL's flow dict, sealed, single use, with a 10-minute life.

The row is keyed by the flow's `state` and bound to the browser that started it by a hash of
a random cookie value, so a `state` copied into another browser is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError

from shared.crypto.envelope import CiphertextRejected, RowAddress
from shared.crypto.keyring import KeyRingCache
from shared.store.errors import storage_errors
from shared.store.expiry import purge_expired
from shared.store.table_set import TableSet

TABLE = "pendingflows"
PREFIX = "Flow"
FLOW_TTL = timedelta(minutes=10)


class FlowRejected(Exception):
    """Missing, replayed, expired or foreign `state` (`reason` is a stable code)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class PendingFlow:
    flow: dict[str, Any]
    return_to: str | None


def _binding(browser_secret: str) -> str:
    return hashlib.sha256(browser_secret.encode()).hexdigest()


def _row_keys(state: str) -> tuple[str, str]:
    # Spread flows over partitions by the state's first characters (state is random).
    return state[:2], state


class PendingFlowStore:
    def __init__(self, tables: TableSet, keys: KeyRingCache) -> None:
        self._tables = tables
        self._keys = keys

    async def put(
        self, flow: dict[str, Any], browser_secret: str, return_to: str | None, now: datetime
    ) -> None:
        table = await self._tables.table(TABLE)
        pk, rk = _row_keys(str(flow["state"]))
        envelope = await self._keys.envelope()
        sealed = envelope.seal(
            json.dumps(flow).encode(), RowAddress(self._tables.name(TABLE), pk, rk), PREFIX
        )
        entity = {
            "PartitionKey": pk,
            "RowKey": rk,
            "Binding": _binding(browser_secret),
            "ExpiresAt": now + FLOW_TTL,
            "ReturnTo": return_to or "",
            **sealed,
        }
        with storage_errors("store pending flow"):
            await table.create_entity(entity)

    async def take(self, state: str, browser_secret: str | None, now: datetime) -> PendingFlow:
        """Remove and return the flow: it can be taken once, by the browser that started it."""
        if not state or len(state) > 256 or not state.replace("-", "").replace("_", "").isalnum():
            raise FlowRejected("state_invalid")
        table = await self._tables.table(TABLE)
        pk, rk = _row_keys(state)
        with storage_errors("read pending flow"):
            try:
                entity = await table.get_entity(pk, rk)
            except ResourceNotFoundError:
                raise FlowRejected("state_unknown") from None
        if browser_secret is None or not hmac.compare_digest(
            str(entity.get("Binding", "")), _binding(browser_secret)
        ):
            # Not deleted: the rightful browser may still finish its own sign-in.
            raise FlowRejected("state_foreign")
        with storage_errors("consume pending flow"):
            try:
                # Single use even under a race: only the delete that matches this read wins.
                await table.delete_entity(
                    pk,
                    rk,
                    etag=entity.metadata["etag"],
                    match_condition=MatchConditions.IfNotModified,
                )
            except (ResourceNotFoundError, ResourceModifiedError):
                raise FlowRejected("state_replayed") from None
        expires = entity.get("ExpiresAt")
        if not isinstance(expires, datetime) or expires <= now:
            raise FlowRejected("state_expired")
        try:
            plaintext = await self._keys.open(
                entity, RowAddress(self._tables.name(TABLE), pk, rk), PREFIX
            )
        except CiphertextRejected:
            raise FlowRejected("state_unreadable") from None
        return PendingFlow(json.loads(plaintext), str(entity.get("ReturnTo") or "") or None)

    async def purge_expired(self, now: datetime) -> int:
        """Delete flows past their TTL (the lifecycle timer calls this)."""
        return await purge_expired(await self._tables.table(TABLE), now, "purge pending flows")


__all__ = ["FLOW_TTL", "FlowRejected", "PendingFlow", "PendingFlowStore"]
