"""Sealed rows in a real Azurite: binary round trip, and key rotation (resumable, ETag-safe,
over every table a store seals into, via the function and via `python -m shared.admin`)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.data.tables import EdmType, EntityProperty, UpdateMode
from azure.data.tables.aio import TableClient, TableServiceClient

from shared.audit import MemoryAuditSink, Outcome
from shared.crypto.envelope import Envelope, RowAddress
from shared.crypto.keyring import KeyRingCache
from shared.crypto.keys import LocalKeyProvider, add_local_key_version
from shared.crypto.rotation import RotationReport, rotate_keys
from shared.store.idempotency import ClaimState, IdempotencyStore, StoredResponse
from shared.store.sealed import sealed_tables
from shared.store.subscriptions import Subscription, SubscriptionStore
from shared.store.table_set import TableSet
from tests.support.app import sample_settings
from tests.support.azurite import AzuriteServer
from tests.support.processes import ROOT, python

CREATED = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def grant(n: int) -> bytes:
    return json.dumps({"refresh_token": f"secret-refresh-token-{n}-{uuid.uuid4()}"}).encode()


@pytest.fixture
def prefix() -> str:
    return "t" + uuid.uuid4().hex[:12]


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    return tmp_path / "dev-keys.json"


@pytest.fixture
async def service(azurite: AzuriteServer) -> AsyncIterator[TableServiceClient]:
    async with TableServiceClient.from_connection_string(azurite.connection_string) as client:
        yield client


async def envelope_from(key_file: Path) -> Envelope:
    return Envelope(await LocalKeyProvider(None, None, key_file).load())


async def seal_rows(
    service: TableServiceClient, envelope: Envelope, table_name: str, prefix: str, count: int
) -> dict[str, bytes]:
    """`count` sealed rows with metadata columns beside them; RowKey → plaintext."""
    table = await service.create_table_if_not_exists(table_name)
    plaintexts: dict[str, bytes] = {}
    for n in range(count):
        row_key = f"row{n:03d}"
        plaintexts[row_key] = grant(n)
        row = RowAddress(table_name, "p0", row_key)
        entity: dict[str, Any] = {
            "PartitionKey": "p0",
            "RowKey": row_key,
            "Mailbox": f"user{n}@contoso.test",
            "Created": CREATED,
            "Uses": EntityProperty(2**40 + n, EdmType.INT64),
            **envelope.seal(plaintexts[row_key], row, prefix),
        }
        await table.create_entity(entity)
    return plaintexts


async def rows_of(service: TableServiceClient, table_name: str) -> list[dict[str, Any]]:
    table = service.get_table_client(table_name)
    return [dict(e) async for e in table.list_entities()]


def quiet(_: str) -> None:
    return None


def table_for(prefix: str, short: str) -> tuple[str, str]:
    """(full name, property prefix) of one sealed table, as the rotation's registry has it."""
    [found] = [t for t in sealed_tables(prefix) if t[0] == f"{prefix}{short}"]
    return found


async def test_a_sealed_row_round_trips_through_azurite_as_binary(
    service: TableServiceClient, prefix: str, key_file: Path
) -> None:
    envelope = await envelope_from(key_file)
    table_name = f"{prefix}connections"
    plaintext = b"tok-" + os.urandom(200 * 1024)
    table = await service.create_table_if_not_exists(table_name)
    row = RowAddress(table_name, "p0", "conn1")

    await table.upsert_entity(
        {"PartitionKey": "p0", "RowKey": "conn1", **envelope.seal(plaintext, row, "Grant")},
        mode=UpdateMode.REPLACE,
    )
    stored = await table.get_entity("p0", "conn1")

    assert stored["GrantParts"] == 4
    assert all(isinstance(stored[f"Grant{i}"], bytes) for i in range(4))
    assert envelope.open(stored, row, "Grant") == plaintext


async def test_no_plaintext_appears_in_the_stored_entity(
    service: TableServiceClient, prefix: str, key_file: Path
) -> None:
    table_name = f"{prefix}connections"
    plaintexts = await seal_rows(service, await envelope_from(key_file), table_name, "Grant", 2)

    stored = await rows_of(service, table_name)

    needles: list[bytes] = []
    for plaintext in plaintexts.values():
        token = json.loads(plaintext)["refresh_token"].encode()
        needles += [plaintext, token, base64.b64encode(token), base64.urlsafe_b64encode(token)]
    haystacks: list[bytes] = []
    for entity in stored:
        for value in entity.values():
            if isinstance(value, bytes):
                haystacks += [value, base64.b64encode(value)]
            else:
                haystacks.append(str(value).encode())
    for needle in needles:
        assert not any(needle in haystack for haystack in haystacks)


async def test_rotation_rewrites_every_old_row_and_they_still_open(
    service: TableServiceClient, prefix: str, key_file: Path
) -> None:
    connections, flows = table_for(prefix, "connections"), table_for(prefix, "pendingflows")
    old = await envelope_from(key_file)
    grants = await seal_rows(service, old, connections[0], "Grant", 7)
    pending = await seal_rows(service, old, flows[0], "Flow", 3)
    add_local_key_version(key_file)
    new = await envelope_from(key_file)
    audit = MemoryAuditSink()

    report = await rotate_keys(service, new, [connections, flows], 3, quiet, audit=audit)

    assert report.ok
    assert report.counts() == {
        "examined": 10,
        "stale": 10,
        "rewritten": 10,
        "skipped": 0,
        "failed": 0,
    }
    for (table_name, prefix_), plaintexts in [(connections, grants), (flows, pending)]:
        for entity in await rows_of(service, table_name):
            row = RowAddress(table_name, "p0", entity["RowKey"])
            assert new.is_current(entity, prefix_)
            assert new.open(entity, row, prefix_) == plaintexts[entity["RowKey"]]
            assert entity["Created"] == CREATED
            assert entity["Uses"] == EntityProperty(2**40 + int(entity["RowKey"][3:]), "Edm.Int64")
            assert entity["Mailbox"].endswith("@contoso.test")
    [event] = audit.events
    assert (event.action, event.outcome, event.counts["rewritten"]) == (
        "keys.rotated",
        Outcome.SUCCESS,
        10,
    )


async def test_rotation_rewrites_subscription_secrets_and_stored_responses(
    service: TableServiceClient, prefix: str, key_file: Path
) -> None:
    def stores() -> tuple[SubscriptionStore, IdempotencyStore]:
        keys = KeyRingCache(LocalKeyProvider(None, None, key_file))
        tables = TableSet(service, prefix)
        return SubscriptionStore(tables, keys), IdempotencyStore(tables, keys, timedelta(hours=1))

    subscriptions, idempotency = stores()
    subscription = Subscription(
        id="sub-1",
        connection_id="conn-1",
        graph_id="graph-1",
        notification_url="https://flows.contoso.test/hook?sig=signature-value",
        folder="inbox",
        filters={},
        include_message=False,
        expires=CREATED + timedelta(days=2),
        created_at=CREATED,
        client_state="client-state-value-0123456789",
        signing_secret="signing-secret-value-0123456789",
    )
    await subscriptions.save(subscription)
    first = StoredResponse(202, {"Location": "/api/x"}, b'{"subject": "quoted mail"}')
    claim = await idempotency.claim("caller", "conn-1", "key-1", "fp", CREATED)
    await idempotency.complete(claim, first)
    add_local_key_version(key_file)
    new = await envelope_from(key_file)

    report = await rotate_keys(service, new, sealed_tables(prefix), progress=quiet)

    assert report.ok
    assert report.counts()["rewritten"] == 2
    for table_name, sealed_prefix in (
        table_for(prefix, "subscriptions"),
        table_for(prefix, "idempotency"),
    ):
        sealed = [e for e in await rows_of(service, table_name) if e.get(f"{sealed_prefix}Parts")]
        assert sealed and all(new.is_current(e, sealed_prefix) for e in sealed)
    subscriptions, idempotency = stores()  # a fresh ring: only the new versions are current
    reopened = await subscriptions.get("sub-1")
    replay = await idempotency.claim("caller", "conn-1", "key-1", "fp", CREATED)
    assert reopened is not None
    assert (reopened.client_state, reopened.signing_secret) == (
        subscription.client_state,
        subscription.signing_secret,
    )
    assert (replay.state, replay.response) == (ClaimState.REPLAY, first)


async def test_a_second_run_finds_nothing_left_to_rewrite(
    service: TableServiceClient, prefix: str, key_file: Path
) -> None:
    tables = sealed_tables(prefix)
    await seal_rows(service, await envelope_from(key_file), tables[0][0], "Grant", 3)
    add_local_key_version(key_file)
    new = await envelope_from(key_file)
    await rotate_keys(service, new, tables, progress=quiet)

    again = await rotate_keys(service, new, tables, progress=quiet)

    assert again.counts()["stale"] == 0
    assert again.counts()["examined"] == 3


async def test_an_interrupted_rotation_resumes_without_losing_rows(
    service: TableServiceClient, prefix: str, key_file: Path
) -> None:
    tables = sealed_tables(prefix)
    table_name = tables[0][0]
    plaintexts = await seal_rows(service, await envelope_from(key_file), table_name, "Grant", 7)
    add_local_key_version(key_file)
    new = await envelope_from(key_file)

    def crash(line: str) -> None:
        raise KeyboardInterrupt  # as an operator's Ctrl-C after the first progress line

    audit = MemoryAuditSink()
    with pytest.raises(KeyboardInterrupt):
        await rotate_keys(service, new, tables, 2, crash, audit=audit)
    midway = await rows_of(service, table_name)
    report = await rotate_keys(service, new, tables, 2, quiet)

    assert sum(new.is_current(e, "Grant") for e in midway) == 2
    assert (audit.events[0].outcome, audit.events[0].reason) == (Outcome.FAILURE, "interrupted")
    assert report.counts()["rewritten"] == 5
    final = await rows_of(service, table_name)
    assert len(final) == 7
    for entity in final:
        row = RowAddress(table_name, "p0", entity["RowKey"])
        assert new.open(entity, row, "Grant") == plaintexts[entity["RowKey"]]


class RacingTable:
    """A TableClient whose every read is followed by someone else's write to that row."""

    def __init__(self, inner: TableClient, write: Any) -> None:
        self._inner = inner
        self._write = write

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def get_entity(self, partition_key: str, row_key: str) -> Any:
        entity = await self._inner.get_entity(partition_key, row_key)
        await self._write(partition_key, row_key)
        return entity


class RacingService:
    def __init__(self, inner: TableServiceClient, write: Any) -> None:
        self._inner = inner
        self._write = write

    def get_table_client(self, table_name: str) -> RacingTable:
        return RacingTable(self._inner.get_table_client(table_name), self._write)


async def test_a_row_changed_between_read_and_write_is_skipped_not_clobbered(
    service: TableServiceClient, prefix: str, key_file: Path
) -> None:
    tables = sealed_tables(prefix)
    table_name = tables[0][0]
    await seal_rows(service, await envelope_from(key_file), table_name, "Grant", 2)
    add_local_key_version(key_file)
    new = await envelope_from(key_file)
    table = service.get_table_client(table_name)

    async def refresh_token_meanwhile(partition_key: str, row_key: str) -> None:
        row = RowAddress(table_name, partition_key, row_key)
        entity = {"PartitionKey": partition_key, "RowKey": row_key, "Mailbox": "refreshed"}
        entity |= new.seal(b"newer-grant-" + row_key.encode(), row, "Grant")
        await table.upsert_entity(entity, mode=UpdateMode.REPLACE)

    racing: Any = RacingService(service, refresh_token_meanwhile)
    report = await rotate_keys(racing, new, tables, progress=quiet)

    assert report.counts()["skipped"] == 2
    assert report.counts()["rewritten"] == 0
    for entity in await rows_of(service, table_name):
        row = RowAddress(table_name, "p0", entity["RowKey"])
        assert entity["Mailbox"] == "refreshed"
        assert new.open(entity, row, "Grant") == b"newer-grant-" + entity["RowKey"].encode()


async def test_a_row_that_does_not_open_is_counted_and_left_as_it_was(
    service: TableServiceClient, prefix: str, key_file: Path
) -> None:
    tables = sealed_tables(prefix)
    table_name = tables[0][0]
    await seal_rows(service, await envelope_from(key_file), table_name, "Grant", 3)
    table = service.get_table_client(table_name)
    tampered = await table.get_entity("p0", "row001")
    tampered["Grant0"] = bytes([tampered["Grant0"][0] ^ 1]) + tampered["Grant0"][1:]
    await table.update_entity(tampered, mode=UpdateMode.REPLACE)
    add_local_key_version(key_file)
    new = await envelope_from(key_file)
    audit = MemoryAuditSink()

    report = await rotate_keys(service, new, tables, progress=quiet, audit=audit)

    assert not report.ok
    assert (report.counts()["rewritten"], report.counts()["failed"]) == (2, 1)
    assert report.tables[0].failed_rows == [("p0", "row001")]
    assert (await table.get_entity("p0", "row001"))["Grant0"] == tampered["Grant0"]
    assert (audit.events[0].outcome, audit.events[0].reason) == (
        Outcome.FAILURE,
        "rows_failed_to_open",
    )


async def test_tables_that_do_not_exist_yet_are_skipped(
    service: TableServiceClient, prefix: str, key_file: Path
) -> None:
    lines: list[str] = []

    report: RotationReport = await rotate_keys(
        service, await envelope_from(key_file), sealed_tables(prefix), progress=lines.append
    )

    assert report.ok
    assert [t.exists for t in report.tables] == [False] * 5
    assert f"{prefix}connections: no such table, skipped" in lines


async def test_rows_without_a_sealed_value_are_left_alone(
    service: TableServiceClient, prefix: str, key_file: Path
) -> None:
    tables = sealed_tables(prefix)
    table = await service.create_table_if_not_exists(tables[0][0])
    await table.create_entity({"PartitionKey": "p0", "RowKey": "revoked", "Status": "revoked"})

    report = await rotate_keys(service, await envelope_from(key_file), tables, progress=quiet)

    assert report.counts()["examined"] == 1
    assert report.counts()["stale"] == 0


def admin(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [python(), "-m", "shared.admin", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def cli_env(azurite: AzuriteServer, prefix: str, key_file: Path, tmp_path: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", str(tmp_path)),
        **sample_settings(),
        "CA_BUNDLE": "",
        "STORAGE_CONNECTION_STRING": azurite.connection_string,
        "TABLE_PREFIX": prefix,
        "LOCAL_KEY_FILE": str(key_file),
        "AUDIT_LOG_PATH": str(tmp_path / "audit.jsonl"),
    }


async def test_the_rotate_keys_command_prints_progress_and_exits_zero(
    service: TableServiceClient,
    prefix: str,
    key_file: Path,
    cli_env: dict[str, str],
    tmp_path: Path,
) -> None:
    tables = sealed_tables(prefix)
    plaintexts = await seal_rows(service, await envelope_from(key_file), tables[0][0], "Grant", 5)

    added = admin(cli_env, "new-local-keys")
    rotated = admin(cli_env, "rotate-keys", "--batch", "2")

    assert added.returncode == 0, added.stderr
    assert "local-2" in added.stdout
    assert rotated.returncode == 0, rotated.stderr
    lines = rotated.stdout.splitlines()
    assert (
        f"{prefix}connections: 2/5 rewritten, 0 skipped (changed meanwhile), 0 failed, 3 to go"
        in lines
    )
    assert f"{prefix}connections: 5/5 rewritten, 0 skipped (changed meanwhile), 0 failed" in lines
    assert f"{prefix}pendingflows: no such table, skipped" in lines
    new = await envelope_from(key_file)
    for entity in await rows_of(service, tables[0][0]):
        assert new.is_current(entity, "Grant")
        row = RowAddress(tables[0][0], "p0", entity["RowKey"])
        assert new.open(entity, row, "Grant") == plaintexts[entity["RowKey"]]
    audit = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert audit[-1]["action"] == "keys.rotated"
    assert audit[-1]["counts"]["rewritten"] == 5
    for plaintext in plaintexts.values():
        assert plaintext.decode() not in rotated.stdout + rotated.stderr


async def test_the_rotate_keys_command_exits_non_zero_when_a_row_does_not_open(
    service: TableServiceClient, prefix: str, key_file: Path, cli_env: dict[str, str]
) -> None:
    table_name = sealed_tables(prefix)[0][0]
    await seal_rows(service, await envelope_from(key_file), table_name, "Grant", 2)
    table = service.get_table_client(table_name)
    await table.update_entity(
        {"PartitionKey": "p0", "RowKey": "row000", "GrantAesKey": "local-9"}, mode=UpdateMode.MERGE
    )
    add_local_key_version(key_file)

    rotated = admin(cli_env, "rotate-keys")

    assert rotated.returncode == 1
    assert f"did not open: {table_name} PartitionKey=p0 RowKey=row000" in rotated.stdout
    assert f"{table_name}: 1/2 rewritten, 0 skipped (changed meanwhile), 1 failed" in rotated.stdout


def test_the_command_refuses_unusable_settings_with_exit_code_2(
    cli_env: dict[str, str],
) -> None:
    result = admin({**cli_env, "KEY_PROVIDER": "keyvault"}, "rotate-keys")

    assert result.returncode == 2
    assert "KEY_VAULT_URL" in result.stderr
