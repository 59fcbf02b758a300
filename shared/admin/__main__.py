"""`python -m shared.admin rotate-keys | new-local-keys`: operator commands, settings from the
environment exactly as the app reads them. A thin command line: the work is done by
shared.crypto.rotation (over the tables shared.store.sealed collects) and shared.crypto.keys.

Exit codes: 0 done; 1 some rows did not open, or a dependency failed; 2 unusable settings.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from shared.config import KeyProviderKind, Settings, SettingsError, load_settings
from shared.errors import ApiError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.admin", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    rotate = commands.add_parser(
        "rotate-keys", help="re-encrypt rows sealed under older key versions (resumable)"
    )
    rotate.add_argument("--batch", type=int, default=100, help="rows per progress line")
    commands.add_parser(
        "new-local-keys",
        help="add a new AES and Fernet version to the local key file (development only)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.command == "new-local-keys":
        return _new_local_keys(settings)
    return asyncio.run(_rotate_keys(settings, max(1, args.batch)))


def _new_local_keys(settings: Settings) -> int:
    from shared.crypto.keys import add_local_key_version

    if settings.KEY_PROVIDER is not KeyProviderKind.LOCAL:
        print("KEY_PROVIDER is keyvault: add a new version of each secret in Key Vault instead")
        return 2
    if settings.LOCAL_AES_KEY is not None:
        print("LOCAL_AES_KEY / LOCAL_FERNET_KEYS are set, so the key file is not in use")
        return 2
    aes, fernet = add_local_key_version(settings.LOCAL_KEY_FILE)
    print(f"{settings.LOCAL_KEY_FILE}: AES {aes} and Fernet {fernet} are now current")
    print("restart the app (or wait for its key ring to refresh), then run rotate-keys")
    return 0


async def _rotate_keys(settings: Settings, batch: int) -> int:
    from azure.core.exceptions import AzureError

    from shared.audit import build_audit_sink
    from shared.crypto.envelope import Envelope
    from shared.crypto.keys import build_key_provider
    from shared.crypto.rotation import rotate_keys
    from shared.store.sealed import sealed_tables
    from shared.store.tables import build_table_service

    # The same audit sink and key provider the app builds from these settings, without the
    # rest of the app's object graph (no Graph or MSAL client is needed here).
    audit = build_audit_sink(
        settings.APPLICATIONINSIGHTS_CONNECTION_STRING.get_secret_value()
        if settings.APPLICATIONINSIGHTS_CONNECTION_STRING
        else None,
        settings.AUDIT_LOG_PATH,
    )
    service = build_table_service(settings)
    try:
        # Loaded fresh, not from a cache: rotation must seal under the newest versions.
        envelope = Envelope(await build_key_provider(settings).load())
        report = await rotate_keys(
            service,
            envelope,
            sealed_tables(settings.TABLE_PREFIX),
            batch,
            lambda line: print(line, flush=True),
            audit=audit,
        )
    except ApiError as exc:  # key provider or storage unavailable: a safe message
        print(f"rotation stopped: {exc.detail}", file=sys.stderr)
        return 1
    except AzureError as exc:
        # The exception text may echo request details; its type says enough. A re-run
        # resumes where this one stopped.
        print(
            f"rotation stopped: storage error ({type(exc).__name__}); re-run to resume",
            file=sys.stderr,
        )
        return 1
    finally:
        await service.close()
    for table in report.tables:
        for partition_key, row_key in table.failed_rows:
            print(f"did not open: {table.table} PartitionKey={partition_key} RowKey={row_key}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
