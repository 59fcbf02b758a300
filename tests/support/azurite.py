"""A private Azurite (Table, Queue, Blob) for tests: in memory, loopback, telemetry off."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tests.support.processes import ROOT, Process, free_port, port_open, wait_until

ACCOUNT = "devstoreaccount1"
# Azurite's well-known development key (public, documented by Microsoft; opens nothing real).
ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


@dataclass
class AzuriteServer:
    process: Process
    blob_port: int
    queue_port: int
    table_port: int

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint=http://127.0.0.1:{self.blob_port}/{ACCOUNT};"
            f"QueueEndpoint=http://127.0.0.1:{self.queue_port}/{ACCOUNT};"
            f"TableEndpoint=http://127.0.0.1:{self.table_port}/{ACCOUNT};"
        )

    def stop(self) -> None:
        self.process.stop()


def start_azurite(tmp_dir: Path) -> AzuriteServer:
    binary = ROOT / "node_modules" / ".bin" / "azurite"
    if not binary.exists():
        raise RuntimeError("Azurite is not installed: run `make test` (it runs `npm ci`)")
    blob, queue, table = free_port(), free_port(), free_port()
    workdir = tmp_dir / f"azurite-{table}"
    workdir.mkdir(parents=True, exist_ok=True)
    process = Process(
        "azurite",
        [
            str(binary),
            "--inMemoryPersistence",
            "--disableTelemetry",
            "--skipApiVersionCheck",
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(blob),
            "--queueHost",
            "127.0.0.1",
            "--queuePort",
            str(queue),
            "--tableHost",
            "127.0.0.1",
            "--tablePort",
            str(table),
        ],
        {},
        tmp_dir / f"azurite-{table}.log",
        cwd=workdir,
    )
    server = AzuriteServer(process, blob, queue, table)

    def ready() -> bool:
        process.ensure_running()
        return all(port_open(p) for p in (blob, queue, table))

    try:
        wait_until(ready, 30, "Azurite")
    except Exception:
        process.stop()
        raise
    return server
