"""Where the timer sends its work: the tables' account, then the host's storage setting."""

from __future__ import annotations

from shared.config import load_settings
from shared.store.queue import queue_account_url, queue_connection_string
from tests.support.app import sample_settings


def settings(**values: str):  # type: ignore[no-untyped-def]
    return load_settings({**sample_settings(), "CA_BUNDLE": "", **values})


def test_the_tables_connection_string_wins_over_a_stray_environment_variable() -> None:
    chosen = settings(STORAGE_CONNECTION_STRING="UseDevelopmentStorage=true")
    assert (
        queue_connection_string(chosen, {"AzureWebJobsStorage": "elsewhere"})
        == "UseDevelopmentStorage=true"
    )


def test_identity_based_storage_uses_the_hosts_queue_uri_or_the_tables_account() -> None:
    managed = settings(
        STORAGE_CONNECTION_STRING="",
        STORAGE_TABLE_ENDPOINT="https://acct.table.core.windows.net",
    )
    assert queue_connection_string(managed, {}) == ""
    assert queue_account_url(managed, {}) == "https://acct.queue.core.windows.net"
    assert (
        queue_account_url(managed, {"AzureWebJobsStorage__accountName": "other"})
        == "https://other.queue.core.windows.net"
    )
    assert (
        queue_account_url(managed, {"AzureWebJobsStorage__queueServiceUri": "https://q.example"})
        == "https://q.example"
    )
