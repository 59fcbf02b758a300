"""`make run`: Azurite + the sandbox + the app on this machine, stopped together on Ctrl-C.

The app runs under Azure Functions Core Tools (`func start`) when they are installed, else
under the dev host (devhost/). Settings come from local.settings.json, created from
local.settings.sample.json on first run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APP_PORT = int(os.environ.get("APP_PORT", "7071"))
SANDBOX_PORT = int(os.environ.get("SANDBOX_PORT", "5443"))
AZURITE_PORTS = (10000, 10001, 10002)


def load_local_settings() -> dict[str, str]:
    settings_path = ROOT / "local.settings.json"
    if not settings_path.exists():
        shutil.copyfile(ROOT / "local.settings.sample.json", settings_path)
        print("run: created local.settings.json from local.settings.sample.json")
    document = json.loads(settings_path.read_text())
    sample = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]
    missing = {k: v for k, v in sample.items() if k not in document["Values"]}
    if missing:
        # A checkout from before a setting existed: add it with its sample value, keep the rest.
        document["Values"].update(missing)
        settings_path.write_text(json.dumps(document, indent=2) + "\n")
        print(f"run: added new settings to local.settings.json: {', '.join(sorted(missing))}")
    return {k: str(v) for k, v in document["Values"].items()}


def port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_for(
    check: Callable[[], bool], what: str, timeout: float, procs: list[subprocess.Popen[bytes]]
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in procs:
            if proc.poll() is not None:
                raise SystemExit(f"run: {what} could not start (a process exited early)")
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"run: {what} did not become ready within {timeout:.0f} s")


def main() -> None:
    env = {**os.environ, **load_local_settings(), "SANDBOX_PORT": str(SANDBOX_PORT)}
    busy = [p for p in (*AZURITE_PORTS, SANDBOX_PORT, APP_PORT) if port_in_use(p)]
    if busy:
        raise SystemExit(f"run: ports already in use: {busy} (is another `make run` running?)")

    procs: list[subprocess.Popen[bytes]] = []

    def stop(*_: object) -> None:
        for proc in reversed(procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        sys.exit(0)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)

    azurite_dir = ROOT / ".azurite"
    azurite_dir.mkdir(exist_ok=True)
    procs.append(
        subprocess.Popen(
            [
                str(ROOT / "node_modules/.bin/azurite"),
                "--inMemoryPersistence",
                "--disableTelemetry",
                "--silent",
                "--skipApiVersionCheck",
                "--blobHost",
                "127.0.0.1",
                "--queueHost",
                "127.0.0.1",
                "--tableHost",
                "127.0.0.1",
            ],
            cwd=azurite_dir,
            env=env,
            start_new_session=True,
        )
    )
    wait_for(lambda: port_in_use(AZURITE_PORTS[2]), "Azurite", 30, procs)

    ca = ROOT / ".sandbox" / "ca.pem"
    ca.unlink(missing_ok=True)
    procs.append(
        subprocess.Popen(
            [sys.executable, "-m", "sandbox"], cwd=ROOT, env=env, start_new_session=True
        )
    )
    context = None

    def sandbox_ready() -> bool:
        nonlocal context
        if not ca.exists():
            return False
        context = ssl.create_default_context(cafile=str(ca))
        url = f"https://127.0.0.1:{SANDBOX_PORT}/_sandbox/health"
        with urllib.request.urlopen(url, context=context, timeout=2) as response:
            return bool(response.status == 200)

    wait_for(sandbox_ready, "the sandbox", 30, procs)

    if shutil.which("func"):
        app_cmd = ["func", "start", "--port", str(APP_PORT)]
    else:
        app_cmd = [sys.executable, "-m", "devhost", "--port", str(APP_PORT)]
    procs.append(subprocess.Popen(app_cmd, cwd=ROOT, env=env, start_new_session=True))

    def app_ready() -> bool:
        url = f"http://127.0.0.1:{APP_PORT}/api/health"
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)

    wait_for(app_ready, "the app", 120, procs)
    base = f"http://127.0.0.1:{APP_PORT}"
    print(
        "\n"
        f"  App          {base}/api/health   (OpenAPI: {base}/api/openapi.json)\n"
        f"  Connect      {base}/api/auth/login?loginHint=alice@contoso.test\n"
        f"  Sandbox      https://127.0.0.1:{SANDBOX_PORT}  (CA: .sandbox/ca.pem)\n"
        f"  Azurite      http://127.0.0.1:{AZURITE_PORTS[0]}-{AZURITE_PORTS[2]}\n"
        "  Ctrl-C stops everything.\n",
        flush=True,
    )
    while True:
        for proc in procs:
            if proc.poll() is not None:
                name = proc.args[0] if isinstance(proc.args, list) else proc.args
                print(f"run: a process exited ({name!s}); stopping everything", flush=True)
                stop()
        time.sleep(0.5)


if __name__ == "__main__":
    main()
