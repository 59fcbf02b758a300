"""An Azurite that keeps its data on disk, so that a drill can stop it and start it again on
the same ports with the same data (the session's Azurite is in memory: a restart empties it).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.support.azurite import ACCOUNT, ACCOUNT_KEY
from tests.support.processes import ROOT, Process, free_port, port_open, wait_until


class PersistentAzurite:
    def __init__(self, tmp_path: Path) -> None:
        self.location = tmp_path / "azurite-data"
        self.location.mkdir()
        self.ports = {"blob": free_port(), "queue": free_port(), "table": free_port()}
        self.log_dir = tmp_path
        self.starts = 0
        self.process = self.start()

    @property
    def connection_string(self) -> str:
        p = self.ports
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint=http://127.0.0.1:{p['blob']}/{ACCOUNT};"
            f"QueueEndpoint=http://127.0.0.1:{p['queue']}/{ACCOUNT};"
            f"TableEndpoint=http://127.0.0.1:{p['table']}/{ACCOUNT};"
        )

    def start(self) -> Process:
        self.starts += 1
        args = [str(ROOT / "node_modules" / ".bin" / "azurite"), "--disableTelemetry"]
        args += ["--skipApiVersionCheck", "--location", str(self.location)]
        for service, port in self.ports.items():
            args += [f"--{service}Host", "127.0.0.1", f"--{service}Port", str(port)]
        self.process = Process("azurite", args, {}, self.log_dir / f"azurite-{self.starts}.log")
        wait_until(lambda: all(port_open(p) for p in self.ports.values()), 60, "Azurite")
        return self.process

    def stop(self) -> None:
        self.process.stop()

    def restart_after(self, while_down: Callable[[], object]) -> None:
        """Stop, run `while_down`, start again on the same ports with the same data."""
        self.process.stop()
        while_down()
        self.start()
