"""`python -m devhost` as a process: banner, serving, clean exit on SIGTERM and SIGINT."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.devhost.conftest import write_host_json
from tests.support.processes import ROOT, free_port, port_open, wait_until


def start_cli(root: Path, port: int, *extra: str) -> subprocess.Popen[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("DEVHOST_")}
    env.update(DEVHOST_PORT=str(port), SCHEDULE_SETTING="0 0 0 1 1 *", WORK_QUEUE="cli-work")
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "devhost",
            "--app",
            "tests.devhost.sample_app:app",
            "--root",
            str(root),
            "--no-queues",
            *extra,
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_cli_serves_prints_banner_and_exits_cleanly_on_signal(
    tmp_path: Path, stop_signal: signal.Signals
) -> None:
    root = write_host_json(tmp_path)
    port = free_port()
    process = start_cli(root, port)
    try:
        wait_until(lambda: port_open(port) or process.poll() is not None, 20, "dev host CLI")
        response = httpx.get(f"http://127.0.0.1:{port}/api/items/new", timeout=5)
        process.send_signal(stop_signal)
        output, _ = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)

    keys = json.loads((root / ".devhost" / "keys.json").read_text())
    assert response.json() == {"handler": "new_item_form"}
    assert process.returncode == 0
    assert f"GET http://127.0.0.1:{port}/api/items/{{id}}" in output
    assert str(root / ".devhost" / "keys.json") in output
    assert keys["masterKey"] not in output
    assert keys["functionKeys"]["default"] not in output


def test_cli_stops_with_a_message_naming_a_missing_setting(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"SCHEDULE_SETTING", "WORK_QUEUE"}}

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "devhost",
            "--app",
            "tests.devhost.sample_app:app",
            "--root",
            str(write_host_json(tmp_path)),
            "--port",
            "0",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert result.returncode == 2
    assert "SCHEDULE_SETTING" in result.stderr
