"""The notification queue's jobs as the request path and resyncs send them (worker.py reads
them): one job per message, lifecycle event or resync."""

from __future__ import annotations

import base64
import json

from shared.store.queue import WorkQueue


class JobQueue:
    def __init__(self, queue: WorkQueue) -> None:
        self._queue = queue

    async def send(self, job: dict[str, str]) -> None:
        """One job; base64 as the host's queue trigger expects (messageEncoding base64)."""
        raw = json.dumps(job, separators=(",", ":")).encode()
        await self._queue.send(base64.b64encode(raw).decode("ascii"))

    async def change(self, subscription_id: str, message_id: str, cid: str) -> None:
        await self.send({"kind": "change", "sub": subscription_id, "msg": message_id, "cid": cid})

    async def lifecycle(self, subscription_id: str, event: str, cid: str) -> None:
        await self.send({"kind": "lifecycle", "sub": subscription_id, "event": event, "cid": cid})
