"""Key rotation drill: `python -m shared.admin rotate-keys` is killed (SIGKILL, no chance to
clean up) in the middle of re-encrypting a table, then run again. It proves that rotation
resumes where it stopped: the second run rewrites only what is still stale, exits 0, and every
row then opens under the new key to exactly its original plaintext (none lost or mangled)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import uuid
from pathlib import Path
from typing import Any

from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableServiceClient

from shared.crypto.envelope import Envelope, RowAddress
from shared.crypto.keys import LocalKeyProvider, add_local_key_version
from shared.store.sealed import sealed_tables
from tests.support.app import sample_settings
from tests.support.azurite import AzuriteServer
from tests.support.processes import ROOT, python, wait_until

ROWS = 800


async def envelope_from(key_file: Path) -> Envelope:
    return Envelope(await LocalKeyProvider(None, None, key_file).load())


async def seal(service: TableServiceClient, envelope: Envelope, table: str) -> dict[str, bytes]:
    client = await service.create_table_if_not_exists(table)
    plaintexts = {f"row{n:04d}": f"refresh-{n}-{uuid.uuid4()}".encode() for n in range(ROWS)}

    async def put(row_key: str) -> None:
        row = RowAddress(table, "p0", row_key)
        sealed = envelope.seal(plaintexts[row_key], row, "Grant")
        entity = {"PartitionKey": "p0", "RowKey": row_key, **sealed}
        await client.upsert_entity(entity, mode=UpdateMode.REPLACE)

    keys = list(plaintexts)
    for start in range(0, ROWS, 50):
        await asyncio.gather(*(put(k) for k in keys[start : start + 50]))
    return plaintexts


async def rows(service: TableServiceClient, table: str) -> list[dict[str, Any]]:
    return [dict(e) async for e in service.get_table_client(table).list_entities()]


def run_until_killed(command: list[str], env: dict[str, str], out: Path, marker: str) -> int:
    """Start `command`, SIGKILL it once `marker` is in its output; its exit status."""
    with out.open("w") as sink:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=sink, stderr=sink)
        try:
            wait_until(lambda: marker in out.read_text(), 60, marker)
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait(10)
    return process.returncode


def run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )


async def test_rotation_killed_midway_resumes_and_every_row_opens(
    azurite: AzuriteServer, tmp_path: Path
) -> None:
    prefix = "k" + uuid.uuid4().hex[:12]
    key_file = tmp_path / "dev-keys.json"
    env = {
        **os.environ,
        **sample_settings(),
        "CA_BUNDLE": "",
        "STORAGE_CONNECTION_STRING": azurite.connection_string,
        "TABLE_PREFIX": prefix,
        "LOCAL_KEY_FILE": str(key_file),
        "AUDIT_LOG_PATH": str(tmp_path / "audit.jsonl"),
    }
    table = sealed_tables(prefix)[0][0]
    async with TableServiceClient.from_connection_string(azurite.connection_string) as service:
        plaintexts = await seal(service, await envelope_from(key_file), table)
        add_local_key_version(key_file)
        new = await envelope_from(key_file)
        command = [python(), "-m", "shared.admin", "rotate-keys", "--batch", "20"]

        first = run_until_killed(command, env, tmp_path / "first-run.txt", "20/800 rewritten")
        midway = sum(new.is_current(e, "Grant") for e in await rows(service, table))

        second = run(command, env)
        after = await rows(service, table)

    assert first == -signal.SIGKILL
    assert 0 < midway < ROWS, f"{midway} rows were current when the first run was killed"
    assert second.returncode == 0, second.stdout + second.stderr
    # The second run only rewrote what the first had not: resumed, not restarted.
    assert f"{ROWS - midway}/{ROWS - midway} rewritten" in second.stdout, second.stdout
    assert len(after) == ROWS
    for entity in after:
        row = RowAddress(table, "p0", entity["RowKey"])
        assert new.is_current(entity, "Grant")
        assert new.open(entity, row, "Grant") == plaintexts[entity["RowKey"]]
