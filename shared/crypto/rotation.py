"""Re-encryption after a key rotation: rewrite every sealed row whose key versions are not
the newest, under ETag conditions, resumably. Beside the envelope it rotates; used by
`python -m shared.admin rotate-keys` and by the lifecycle timer. Which tables to rotate is
not kept here: every store declares what it seals (`SealedTable`), and
`shared.store.sealed.sealed_tables` collects those declarations."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shared.audit import AuditEvent, AuditSink, Outcome
from shared.crypto.envelope import CiphertextRejected, Envelope, RowAddress, is_sealed

if TYPE_CHECKING:
    from azure.data.tables.aio import TableClient, TableServiceClient

logger = logging.getLogger(__name__)


@dataclass
class TableRotation:
    """What one table's pass did. `stale` rows were found under old key versions; each then
    ended as rewritten, skipped or failed."""

    table: str
    exists: bool = True
    examined: int = 0
    stale: int = 0
    rewritten: int = 0
    skipped: int = 0  # changed or deleted by someone else meanwhile
    failed: int = 0  # did not open: tampered, or under a key version no longer loaded
    failed_rows: list[tuple[str, str]] = field(default_factory=list)

    def line(self) -> str:
        if not self.exists:
            return f"{self.table}: no such table, skipped"
        done = self.rewritten + self.skipped + self.failed
        return (
            f"{self.table}: {self.rewritten}/{self.stale} rewritten, {self.skipped} skipped "
            f"(changed meanwhile), {self.failed} failed"
            + ("" if done == self.stale else f", {self.stale - done} to go")
        )


@dataclass
class RotationReport:
    aes_version: str
    fernet_version: str
    tables: list[TableRotation] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(t.failed == 0 for t in self.tables)

    def counts(self) -> dict[str, int]:
        return {
            name: sum(getattr(t, name) for t in self.tables)
            for name in ("examined", "stale", "rewritten", "skipped", "failed")
        }

    def summary(self) -> str:
        c = self.counts()
        return (
            f"rotation to AES {self.aes_version} / Fernet {self.fernet_version}: "
            f"{c['rewritten']} rewritten, {c['skipped']} skipped (changed meanwhile), "
            f"{c['failed']} failed, of {c['stale']} stale rows among {c['examined']} examined"
        )


async def rotate_keys(
    service: TableServiceClient,
    envelope: Envelope,
    tables: Sequence[tuple[str, str]],
    batch: int = 100,
    progress: Callable[[str], Any] = print,
    *,
    audit: AuditSink | None = None,
) -> RotationReport:
    """Rewrite, under `envelope`'s current key versions, every sealed row of `tables` (pairs
    of full table name and property prefix, as `shared.store.sealed.sealed_tables` gives
    them) that is not current yet. `progress` gets a line
    every `batch` rows and at the end of each table.

    Resumable by construction: each row is rewritten in one conditional write, and a re-run
    only looks at rows still under old versions, so stopping midway loses nothing.
    """
    ring = envelope.keyring
    report = RotationReport(ring.aes_current, ring.fernet_current)
    outcome: Outcome = Outcome.FAILURE
    reason: str | None = "interrupted"
    try:
        for table_name, prefix in tables:
            result = TableRotation(table_name)
            report.tables.append(result)
            table = service.get_table_client(table_name)
            await _rotate_table(table, envelope, prefix, result, batch, progress)
            progress(result.line())
        progress(report.summary())
        outcome = Outcome.SUCCESS if report.ok else Outcome.FAILURE
        reason = None if report.ok else "rows_failed_to_open"
        return report
    finally:
        if audit is not None:
            # Emitted for interrupted runs too: a partial rewrite is still worth a record.
            audit.emit(
                AuditEvent(
                    action="keys.rotated", outcome=outcome, reason=reason, counts=report.counts()
                )
            )


async def _rotate_table(
    table: TableClient,
    envelope: Envelope,
    prefix: str,
    result: TableRotation,
    batch: int,
    progress: Callable[[str], Any],
) -> None:
    from azure.core.exceptions import ResourceNotFoundError

    # First pass reads only the labels, and keeps only the keys of stale rows: cheap even
    # for large tables (a sealed row may weigh up to 1 MiB), and it gives the total to
    # report progress against.
    labels = ["PartitionKey", "RowKey", *(f"{prefix}{n}" for n in _LABELS)]
    stale: list[tuple[str, str]] = []
    try:
        async for entity in table.list_entities(select=labels, results_per_page=batch):
            result.examined += 1
            if is_sealed(entity, prefix) and not envelope.is_current(entity, prefix):
                stale.append((entity["PartitionKey"], entity["RowKey"]))
    except ResourceNotFoundError:
        result.exists = False  # not created yet (nothing sealed in it, nothing to rotate)
        return
    result.stale = len(stale)
    for done, (partition_key, row_key) in enumerate(stale, start=1):
        await _rotate_row(table, envelope, prefix, partition_key, row_key, result)
        if done % batch == 0 and done < len(stale):
            progress(result.line())


_LABELS = ("Parts", "AesKey", "FernetKey", "Schema")


async def _rotate_row(
    table: TableClient,
    envelope: Envelope,
    prefix: str,
    partition_key: str,
    row_key: str,
    result: TableRotation,
) -> None:
    from azure.core import MatchConditions
    from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
    from azure.data.tables import UpdateMode

    try:
        # Read again, whole and with a fresh ETag, just before rewriting: the window in which
        # someone else's write can race ours stays one round trip wide.
        entity = await table.get_entity(partition_key, row_key)
    except ResourceNotFoundError:
        result.skipped += 1  # deleted meanwhile (e.g. a revoked connection): nothing to do
        return
    if not is_sealed(entity, prefix) or envelope.is_current(entity, prefix):
        result.skipped += 1  # rewritten or cleared by someone else since the first pass
        return
    try:
        row = RowAddress(table.table_name, partition_key, row_key)
        plaintext = envelope.open(entity, row, prefix)
    except (CiphertextRejected, ValueError) as exc:
        # Counted and reported, never fatal: one bad row must not stop the others from
        # moving to the new keys. The row is left exactly as it was for investigation.
        logger.warning("row did not open during rotation: %s %s", table.table_name, exc)
        result.failed += 1
        result.failed_rows.append((partition_key, row_key))
        return
    stale_parts = re.compile(rf"{re.escape(prefix)}\d+")
    # REPLACE, not MERGE: a smaller ciphertext than before must not leave the old trailing
    # parts behind. Every other column is carried over unchanged (with its Edm type, as the
    # SDK handed it to us).
    replacement = {k: v for k, v in entity.items() if not stale_parts.fullmatch(k)}
    replacement.update(envelope.seal(plaintext, row, prefix))
    try:
        await table.update_entity(
            replacement,
            mode=UpdateMode.REPLACE,
            etag=entity.metadata["etag"],
            match_condition=MatchConditions.IfNotModified,
        )
    except (ResourceModifiedError, ResourceNotFoundError):
        # 412 (or 404): someone wrote or deleted the row since we read it. Overwriting would
        # clobber their newer data (a refreshed token cache, say) with our older copy, so
        # skip: their write sealed under their ring's current versions, and should that ring
        # still have been the old one, the next run picks the row up again.
        result.skipped += 1
        return
    result.rewritten += 1
