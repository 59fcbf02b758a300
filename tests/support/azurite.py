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


def start_azurite(tmp_dir: Path, attempts: int = 3) -> AzuriteServer:
    """Start Azurite on three distinct free ports; try fresh ones if another process took a
    port between our probe and Azurite's bind (Azurite then exits at once)."""
    binary = ROOT / "node_modules" / ".bin" / "azurite"
    if not binary.exists():
        raise RuntimeError("Azurite is not installed: run `make test` (it runs `npm ci`)")
    for attempt in range(1, attempts + 1):
        ports: set[int] = set()
        while len(ports) < 3:
            ports.add(free_port())
        blob, queue, table = sorted(ports)
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

        def ready(process: Process = process, ports: set[int] = ports) -> bool:
            process.ensure_running()
            return all(port_open(p) for p in ports)

        try:
            wait_until(ready, 60, "Azurite")
            return server
        except Exception:
            process.stop()
            if attempt == attempts:
                raise
    raise AssertionError("unreachable")
