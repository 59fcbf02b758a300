"""What one keep-alive refresh costs in CPU, part by part, with nothing else running.

Run with `make bench-refresh` (after the job itself) or `python benchmarks/refresh_costs.py`.
The refresh job's floor (connections x latency / concurrency) assumes the identity
provider's latency is the only cost. On a machine that also runs the emulator and the
sandbox, the CPU each refresh needs bounds the throughput first; this measures those
parts one at a time, single-threaded, so that the bound can be computed:

- the two Table Storage calls a refresh makes (read the connection row, write it back under
  its ETag), through the Azure SDK against Azurite: the app's CPU and Azurite's;
- one MSAL refresh-token redemption against the sandbox (the grant a keep-alive redeems):
  the app's CPU and the sandbox's;
- opening and sealing the grant (AES-256-GCM over Fernet).

The connection row is a real one: made by a sign-in through the sandbox and
`ConnectionStore.save`, among ROWS other rows (Azurite's cost depends on the table's size).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ALICE = "alice@contoso.test"
ROUNDS = 400
ROWS = 10_000


def process_cpu(pid: int) -> float:
    """utime + stime of another process, in seconds (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:13]) / os.sysconf("SC_CLK_TCK")


async def measure(sandbox_pid: int, azurite_pid: int) -> dict[str, Any]:
    import msal
    from azure.core import MatchConditions
    from azure.data.tables import UpdateMode

    from shared.audit import MemoryAuditSink
    from shared.config import load_settings
    from shared.container import Container
    from shared.crypto.envelope import RowAddress
    from tests.support.browser import connect_in_process

    settings = load_settings()
    container = Container.build(settings, audit=MemoryAuditSink())
    store = container.connections._store  # type: ignore[attr-defined]
    connection_id = (await connect_in_process(container, ALICE, str(settings.CA_BUNDLE))).id
    table = await store._tables.table("connections")
    filler = os.urandom(8000)
    gate = asyncio.Semaphore(32)

    async def fill(n: int) -> None:
        async with gate:
            key = f"filler{n:08d}"
            await table.upsert_entity({"PartitionKey": key, "RowKey": key, "Grant0": filler})

    await asyncio.gather(*(fill(n) for n in range(ROWS)))
    results: dict[str, Any] = {"rows": ROWS + 1, "rounds": ROUNDS}

    # The two table calls of a refresh, on the real sealed row.
    for _ in range(20):  # warm the connection pool
        await table.get_entity(connection_id, connection_id)
    own, emulator = time.process_time(), process_cpu(azurite_pid)
    for _ in range(ROUNDS):
        entity = await table.get_entity(connection_id, connection_id)
        await table.update_entity(
            dict(entity),
            mode=UpdateMode.REPLACE,
            etag=entity.metadata["etag"],
            match_condition=MatchConditions.IfNotModified,
        )
    results["table_read_write_ms"] = {
        "app": round((time.process_time() - own) * 1000 / ROUNDS, 2),
        "azurite": round((process_cpu(azurite_pid) - emulator) * 1000 / ROUNDS, 2),
    }

    # One refresh-token redemption through MSAL, as TokenService makes it.
    msal_client = container.connections._msal  # type: ignore[attr-defined]
    cache_text = (await store.open_cache(connection_id)).cache.decode()

    def redeem(text: str) -> str:
        cache = msal.SerializableTokenCache()
        cache.deserialize(text)
        app = msal_client.application(cache)
        account = app.get_accounts()[0]
        result = app.acquire_token_silent_with_error(
            msal_client.scopes, account, force_refresh=True
        )
        assert result and "access_token" in result
        return cache.serialize()

    for _ in range(10):
        cache_text = redeem(cache_text)
    own, identity = time.thread_time(), process_cpu(sandbox_pid)
    for _ in range(ROUNDS):
        cache_text = redeem(cache_text)
    results["msal_refresh_ms"] = {
        "app": round((time.thread_time() - own) * 1000 / ROUNDS, 2),
        "sandbox": round((process_cpu(sandbox_pid) - identity) * 1000 / ROUNDS, 2),
    }

    # Opening and sealing the grant.
    envelope = await container.key_ring.envelope()
    address = RowAddress(store._tables.name("connections"), connection_id, connection_id)
    plaintext = cache_text.encode()
    own = time.process_time()
    for _ in range(ROUNDS):
        envelope.open(envelope.seal(plaintext, address, "Grant"), address, "Grant")
    results["seal_open_ms"] = {"app": round((time.process_time() - own) * 1000 / ROUNDS, 2)}
    results["grant_bytes"] = len(plaintext)
    await container.aclose()
    return results


def main() -> int:
    from tests.support.app import app_settings
    from tests.support.azurite import start_azurite
    from tests.support.sandbox import start_sandbox

    tmp = Path(tempfile.mkdtemp(prefix="bench-refresh-costs-"))
    sandbox = start_sandbox(
        tmp, {"SANDBOX_REDIRECT_URIS": "http://127.0.0.1:7071/api/auth/callback"}
    )
    azurite = start_azurite(tmp)
    try:
        os.environ.update({**app_settings(sandbox, azurite, tmp, 7071), "TABLE_PREFIX": "costs"})
        results = asyncio.run(measure(sandbox.process.popen.pid, azurite.process.popen.pid))
    finally:
        azurite.stop()
        sandbox.stop()
    app = sum(part["app"] for key, part in results.items() if key.endswith("_ms"))
    servers = results["table_read_write_ms"]["azurite"] + results["msal_refresh_ms"]["sandbox"]
    results["per_refresh_cpu_ms"] = {"app": round(app, 2), "servers": round(servers, 2)}
    # With every process sharing the machine's cores, at best:
    cores = os.cpu_count() or 1
    results["refreshes_per_second_at_most"] = round(cores * 1000 / (app + servers))
    results["app_process_refreshes_per_second_at_most"] = round(1000 / app)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
