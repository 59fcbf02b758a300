"""The export benchmark's opponent: the same MIME export of one folder done with
msgraph-sdk-python, the way its documentation shows (a delta loop over the folder with
`with_url(odata_next_link)`, then `messages.by_message_id(id).content.get()` per message),
each message's MIME written to local disk with its sha256.

Two variants:
- `sequential`: one await after another, as a user would write the loop;
- `concurrent`: the same loop with at most 4 `$value` requests of a page in flight
  (asyncio.gather under a semaphore), the most Outlook allows per mailbox: an opponent
  that is not soft.

Runs as a child of benchmarks/export.py in `.venv/bench` (where msgraph-sdk is installed,
never in the app's requirements): `python benchmarks/export_peer.py VARIANT ENV_JSON OUT_DIR`.
Prints one JSON line: messages, bytes, wall and CPU seconds after the imports, VmHWM.
Self-contained: imports nothing from this project.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

IN_FLIGHT = 4


def vm_hwm_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def export(variant: str, env: dict[str, Any], out: Path) -> dict[str, Any]:
    import httpx
    from azure.core.credentials import AccessToken
    from kiota_abstractions.base_request_configuration import RequestConfiguration
    from kiota_authentication_azure.azure_identity_authentication_provider import (
        AzureIdentityAuthenticationProvider,
    )
    from msgraph import GraphRequestAdapter, GraphServiceClient
    from msgraph.generated.users.item.mail_folders.item.messages.delta.delta_request_builder import (  # noqa: E501
        DeltaRequestBuilder,
    )
    from msgraph_core import GraphClientFactory

    class StaticToken:
        """The delegated Graph token the sandbox issued (as azure-identity would return)."""

        async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
            return AccessToken(env["graph_token"], int(time.time()) + 3000)

        async def close(self) -> None:
            return None

    started, cpu_started = time.perf_counter(), time.process_time()
    auth = AzureIdentityAuthenticationProvider(
        StaticToken(),  # type: ignore[arg-type]
        scopes=["https://graph.microsoft.com/.default"],
        allowed_hosts=["127.0.0.1"],
    )
    http = GraphClientFactory.create_with_default_middleware(
        client=httpx.AsyncClient(verify=env["ca_bundle"], timeout=60)
    )
    adapter = GraphRequestAdapter(auth, client=http)
    adapter.base_url = env["graph_url"]
    # /users/{upn}: `client.me` needs a URL-replace middleware this factory does not add.
    me = GraphServiceClient(request_adapter=adapter).users.by_user_id(env["upn"])
    # The same page size and fields as the app's export asks for.
    config = RequestConfiguration(
        query_parameters=DeltaRequestBuilder.DeltaRequestBuilderGetQueryParameters(
            select=["internetMessageId", "receivedDateTime", "parentFolderId"]
        )
    )
    config.headers.add("Prefer", f"odata.maxpagesize={env['page_size']}")
    delta = me.mail_folders.by_mail_folder_id(env["folder"]).messages.delta
    gate = asyncio.Semaphore(IN_FLIGHT)
    manifest: list[tuple[str, int, str]] = []

    async def save(message_id: str) -> None:
        mime = await me.messages.by_message_id(message_id).content.get()
        assert mime is not None
        digest = hashlib.sha256(mime).hexdigest()
        (out / f"{digest}.eml").write_bytes(mime)
        manifest.append((message_id, len(mime), digest))

    async def limited(message_id: str) -> None:
        async with gate:
            await save(message_id)

    page = await delta.get(request_configuration=config)
    while page is not None:
        ids = [m.id for m in page.value or [] if m.id]
        if variant == "sequential":
            for message_id in ids:
                await save(message_id)
        else:
            await asyncio.gather(*(limited(message_id) for message_id in ids))
        if not page.odata_next_link:
            break
        page = await delta.with_url(page.odata_next_link).get(request_configuration=config)
    return {
        "messages": len(manifest),
        "bytes": sum(size for _, size, _ in manifest),
        "wall_s": time.perf_counter() - started,
        "cpu_s": time.process_time() - cpu_started,
    }


def main() -> None:
    variant, env_path, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    if variant not in ("sequential", "concurrent"):
        raise SystemExit("variant: sequential or concurrent")
    env = json.loads(env_path.read_text())
    before = time.perf_counter()
    import msgraph  # noqa: F401 - the import is measured apart from the export

    import_s = time.perf_counter() - before
    figures = asyncio.run(export(variant, env, out))
    figures["import_s"] = import_s
    figures["vm_hwm_mb"] = vm_hwm_mb()
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
