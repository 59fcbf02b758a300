"""Send-email-with-options tables: the one choice recorded per mail (`optionchoices`, nothing
secret in it) and the "When an option is chosen" trigger registrations
(`optionsubscriptions`: PartitionKey = connection id, RowKey = registration id; the
callback URL and signing secret sealed together under the `Target` prefix, bound to the row,
since a flow's callback URL is itself a credential)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from shared.crypto.envelope import CiphertextRejected, RowAddress, SealedTable
from shared.crypto.keyring import KeyRingCache
from shared.store.errors import storage_errors
from shared.store.table_set import TableSet

CHOICES = "optionchoices"
SUBSCRIPTIONS = "optionsubscriptions"
PREFIX = "Target"
SEALED = SealedTable(SUBSCRIPTIONS, PREFIX)  # the trigger's callback URL and signing secret

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class OptionTarget:
    """Where a choice is delivered: a callback URL and the secret its body is signed with."""

    url: str = field(repr=False)
    secret: str = field(repr=False)
    subscription_id: str | None = None


class OptionStore:
    def __init__(self, tables: TableSet, keys: KeyRingCache) -> None:
        self._tables = tables
        self._keys = keys

    async def record_choice(self, request_id: str, connection_id: str, now: datetime) -> bool:
        """Record the choice of mail `request_id`; False when one was recorded already."""
        table = await self._tables.table(CHOICES)
        try:
            with storage_errors("record option choice"):
                await table.create_entity(
                    {
                        "PartitionKey": request_id[:2],
                        "RowKey": request_id,
                        "ChosenAt": now,
                        "ConnectionId": connection_id,
                    }
                )
        except ResourceExistsError:
            return False
        return True

    def _address(self, connection_id: str, subscription_id: str) -> RowAddress:
        return RowAddress(self._tables.name(SUBSCRIPTIONS), connection_id, subscription_id)

    async def add_subscription(
        self, connection_id: str, subscription_id: str, target: OptionTarget
    ) -> None:
        plaintext = json.dumps({"u": target.url, "s": target.secret}).encode()
        sealed = (await self._keys.envelope()).seal(
            plaintext, self._address(connection_id, subscription_id), PREFIX
        )
        table = await self._tables.table(SUBSCRIPTIONS)
        with storage_errors("store option subscription"):
            await table.upsert_entity(
                {"PartitionKey": connection_id, "RowKey": subscription_id, **sealed},
                mode=UpdateMode.REPLACE,
            )

    async def delete_subscription(self, connection_id: str, subscription_id: str) -> bool:
        """False when the connection has no such registration."""
        table = await self._tables.table(SUBSCRIPTIONS)
        try:
            with storage_errors("delete option subscription"):
                await table.get_entity(connection_id, subscription_id)
                await table.delete_entity(connection_id, subscription_id)
        except ResourceNotFoundError:
            return False
        return True

    async def subscriptions(self, connection_id: str) -> list[OptionTarget]:
        table = await self._tables.table(SUBSCRIPTIONS)
        envelope = await self._keys.envelope()
        found = []
        with storage_errors("list option subscriptions"):
            async for row in table.query_entities(
                "PartitionKey eq @pk", parameters={"pk": connection_id}
            ):
                subscription_id = str(row["RowKey"])
                try:
                    data = json.loads(
                        envelope.open(row, self._address(connection_id, subscription_id), PREFIX)
                    )
                except CiphertextRejected:
                    # Not this row's (copied, tampered) or under retired keys: never delivered
                    # to, and the other registrations still are.
                    logger.warning("an option subscription row does not open; skipped")
                    continue
                found.append(OptionTarget(str(data["u"]), str(data["s"]), subscription_id))
        return found
