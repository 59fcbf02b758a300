"""Servers shared by the whole suite: each started once per session on free loopback ports."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.app import AppServer, app_settings, start_app
from tests.support.azurite import AzuriteServer, start_azurite
from tests.support.processes import free_port
from tests.support.sandbox import SandboxServer, start_sandbox
from tests.support.secrecy import SecretLedger, summary


@pytest.fixture(scope="session")
def servers_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("servers")


@pytest.fixture(scope="session")
def app_port() -> int:
    """Chosen before the sandbox starts, so that the app's callback URL can be registered."""
    return free_port()


@pytest.fixture(scope="session")
def spare_app_port() -> int:
    """For tests that start a private app which must complete a sign-in (its callback URL is
    registered in the sandbox too). Such tests run one at a time, so one port is enough."""
    return free_port()


@pytest.fixture(scope="session")
def sandbox_server(
    servers_dir: Path, app_port: int, spare_app_port: int
) -> Iterator[SandboxServer]:
    callbacks = [
        f"http://127.0.0.1:{p}/api/{area}/callback"
        for p in (app_port, spare_app_port)
        for area in ("auth", "portal")
    ]
    server = start_sandbox(servers_dir, {"SANDBOX_REDIRECT_URIS": ",".join(callbacks)})
    yield server
    server.stop()


@pytest.fixture
def sandbox(sandbox_server: SandboxServer) -> SandboxServer:
    """The session's sandbox, back at its default seed for this test."""
    sandbox_server.reset()
    return sandbox_server


@pytest.fixture(scope="session")
def azurite(servers_dir: Path) -> Iterator[AzuriteServer]:
    server = start_azurite(servers_dir)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def settings_env(
    sandbox_server: SandboxServer, azurite: AzuriteServer, servers_dir: Path, app_port: int
) -> dict[str, str]:
    """The app's settings (as environment variables) pointed at this session's servers."""
    return app_settings(sandbox_server, azurite, servers_dir, app_port)


@pytest.fixture(scope="session")
def app_server(
    settings_env: dict[str, str], servers_dir: Path, app_port: int
) -> Iterator[AppServer]:
    server = start_app(settings_env, servers_dir, app_port)
    yield server
    server.stop()


# --- The whole run's secrecy sweep (tests/support/secrecy.py) -----------------------------
# Every sandbox's tokens, secrets, clientStates and subjects are collected before it resets or
# stops; when the session ends, every app log and audit file under the session's temp dir is
# searched for them, and a finding fails the run.
SECRECY_LEDGER = pytest.StashKey[SecretLedger]()
SECRECY_ROOT = pytest.StashKey[Path]()


def pytest_sessionstart(session: pytest.Session) -> None:
    ledger = SecretLedger()
    ledger.install()
    session.config.stash[SECRECY_LEDGER] = ledger


@pytest.fixture(scope="session", autouse=True)
def secrecy_sweep_root(
    tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> None:
    pytestconfig.stash[SECRECY_ROOT] = tmp_path_factory.getbasetemp()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    ledger = session.config.stash.get(SECRECY_LEDGER, None)
    root = session.config.stash.get(SECRECY_ROOT, None)
    if ledger is None or root is None or not ledger.secrets:
        return  # no sandbox ran: nothing to look for
    findings = ledger.sweep(root)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if findings:
        if reporter is not None:
            reporter.write_line(summary(findings), red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    elif reporter is not None:
        reporter.write_line(
            f"secrecy sweep: {len(ledger.secrets)} secrets and {len(ledger.subjects)} subjects"
            f" absent from every log and audit file under {root}"
        )
