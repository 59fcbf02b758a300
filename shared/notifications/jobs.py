"""The notification queue's jobs as the request path and resyncs send them (worker.py reads
them): one job per message, lifecycle event, resync or poll."""

from __future__ import annotations

import base64
import json

from shared.store.queue import WorkQueue


class JobQueue:
    def __init__(self, queue: WorkQueue) -> None:
        self._queue = queue

    async def send(self, job: dict[str, str], *, delay_seconds: int = 0) -> None:
        """One job; base64 as the host's queue trigger expects (messageEncoding base64);
        visible after `delay_seconds` when given (a scheduled retry)."""
        raw = json.dumps(job, separators=(",", ":")).encode()
        text = base64.b64encode(raw).decode("ascii")
        if delay_seconds > 0:
            await self._queue.send(text, delay_seconds=delay_seconds)
        else:
            await self._queue.send(text)

    async def change(
        self,
        subscription_id: str,
        message_id: str,
        cid: str,
        *,
        event_type: str = "created",
        lease: str | None = None,
        delay_seconds: int = 0,
    ) -> None:
        """A change to deliver; `lease` is the token of the ledger's lease a scheduled retry
        holds (docs/triggers.md "Delivery guarantee")."""
        job = {"kind": "change", "sub": subscription_id, "msg": message_id, "cid": cid}
        if event_type != "created":
            job["type"] = event_type
        if lease:
            job["lease"] = lease
        await self.send(job, delay_seconds=delay_seconds)

    async def lifecycle(self, subscription_id: str, event: str, cid: str) -> None:
        await self.send({"kind": "lifecycle", "sub": subscription_id, "event": event, "cid": cid})

    async def resync(self, subscription_id: str, cid: str) -> None:
        """Sweep the subscription's folder with delta (reconciliation)."""
        await self.send({"kind": "resync", "sub": subscription_id, "cid": cid})

    async def poll(self, subscription_id: str, cid: str) -> None:
        """Read a poll-mode subscription's folder with delta (shared/notifications/polling.py)."""
        await self.send({"kind": "poll", "sub": subscription_id, "cid": cid})
