"""Queue triggers: poll Azure Storage queues and call the functions, with the host's rules.

Per queue function: create the queue if missing, receive up to ``batchSize`` messages,
call the function for each (in parallel; the next batch is received once the messages in
flight are down to ``newBatchThreshold``), delete a message when the call succeeds, make
it visible again after ``visibilityTimeout`` when it fails, and move it to
``<queue>-poison`` once it has failed ``maxDequeueCount`` times. An empty queue backs off
from 100 ms up to ``maxPollingInterval``; an unreachable storage account is logged and
retried, never fatal.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from azure.core.exceptions import AzureError, ResourceExistsError
from azure.functions.queue import QueueMessage as FunctionQueueMessage
from azure.storage.queue import QueueClient
from azure.storage.queue import QueueMessage as StorageQueueMessage

from devhost.invoke import call_function
from devhost.loader import QueueFunction, QueueSettings

logger = logging.getLogger(__name__)

POISON_SUFFIX = "-poison"
# How long a received message stays invisible while its function runs (the host renews a
# ten-minute lease; the dev host does not renew, so it takes a generous one).
PROCESSING_VISIBILITY = timedelta(minutes=10)
_T = TypeVar("_T")


class MessageDecodeError(ValueError):
    """A message body is not valid for the configured messageEncoding."""


def resolve_connection_string(setting: str, env: Mapping[str, str]) -> str | None:
    """The connection string in setting ``setting`` (or ``AzureWebJobs<setting>``), as the host."""
    return env.get(setting) or env.get(f"AzureWebJobs{setting}") or None


def decode_body(content: str | bytes | None, encoding: str) -> bytes:
    """The message body as the function sees it, for messageEncoding ``base64`` or ``none``."""
    raw = content or ""
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8")
    if encoding == "none":
        return raw.encode("utf-8")
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError) as error:
        raise MessageDecodeError(
            "message is not valid base64 (messageEncoding is base64)"
        ) from error


def function_message(message: StorageQueueMessage, body: bytes) -> FunctionQueueMessage:
    """Turn a storage message into the ``azure.functions.QueueMessage`` the handler receives."""
    return FunctionQueueMessage(  # type: ignore[no-untyped-call]
        id=message.id,
        body=body,
        dequeue_count=message.dequeue_count,
        expiration_time=message.expires_on,
        insertion_time=message.inserted_on,
        time_next_visible=message.next_visible_on,
        pop_receipt=message.pop_receipt,
    )


def adhoc_message(body: str) -> FunctionQueueMessage:
    """A message for an admin-API invocation: the input string is the body."""
    now = datetime.now(UTC)
    return FunctionQueueMessage(  # type: ignore[no-untyped-call]
        id=str(uuid.uuid4()),
        body=body.encode("utf-8"),
        dequeue_count=1,
        expiration_time=now + timedelta(days=7),
        insertion_time=now,
        time_next_visible=now + PROCESSING_VISIBILITY,
        pop_receipt=None,
    )


class QueueListener:
    """Polls one queue for one function until cancelled."""

    def __init__(
        self,
        function: QueueFunction,
        connection_string: str,
        settings: QueueSettings,
        executor: Executor,
        storage_executor: Executor,
    ) -> None:
        self._function = function
        self._settings = settings
        self._executor = executor
        self._storage_executor = storage_executor
        # retry_total=0: the loop below owns retries and backoff, so a dead endpoint
        # cannot stall it inside the SDK's own retry policy.
        options: dict[str, Any] = {"retry_total": 0, "connection_timeout": 5, "read_timeout": 30}
        self._queue = QueueClient.from_connection_string(
            connection_string, function.queue_name, **options
        )
        self._poison = QueueClient.from_connection_string(
            connection_string, function.queue_name + POISON_SUFFIX, **options
        )
        self._queue_ready = False
        self.in_flight = 0  # messages received and not yet settled (admin API reports it)
        self._working: set[asyncio.Task[None]] = set()
        self._settled = asyncio.Event()

    async def run(self) -> None:
        """Poll until cancelled; messages still being worked on are cancelled with it."""
        try:
            await self._poll_forever()
        finally:
            for task in self._working:
                task.cancel()
            await asyncio.gather(*self._working, return_exceptions=True)

    async def _poll_forever(self) -> None:
        interval = self._settings.min_polling_interval
        failing = False
        while True:
            try:
                processed = await self._poll_once()
            except AzureError as error:
                if not failing:
                    logger.warning(
                        "Queue %s for function %s is unreachable (%s); retrying with backoff",
                        self._function.queue_name,
                        self._function.name,
                        type(error).__name__,
                    )
                failing = True
                self._queue_ready = False
                processed = 0
            except Exception:
                # Outermost edge of the listener: log, back off, keep the host alive.
                logger.exception("Queue listener for %s failed; retrying", self._function.name)
                self._queue_ready = False
                processed = 0
            else:
                if failing:
                    logger.info("Queue %s is reachable again", self._function.queue_name)
                failing = False
            if processed:
                interval = self._settings.min_polling_interval
                continue
            await asyncio.sleep(interval.total_seconds())
            interval = min(interval * 2, self._settings.max_polling_interval)

    async def _storage(self, call: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._storage_executor, lambda: call(*args, **kwargs))

    async def _poll_once(self) -> int:
        if not self._queue_ready:
            await self._create_if_missing(self._queue)
            self._queue_ready = True
        # As the host: another batch is fetched once the messages being worked on are down to
        # newBatchThreshold, not when the whole previous batch is done, so one slow message
        # does not hold back the rest (at most batchSize + newBatchThreshold at once).
        while self.in_flight > self._settings.new_batch_threshold:
            self._settled.clear()
            await self._settled.wait()
        batch = await self._storage(self._receive_batch)
        for message in batch:
            self.in_flight += 1
            task = asyncio.create_task(self._process(message))
            self._working.add(task)
            task.add_done_callback(self._working.discard)
        return len(batch)

    def _receive_batch(self) -> list[StorageQueueMessage]:
        pages = self._queue.receive_messages(
            messages_per_page=self._settings.batch_size,
            visibility_timeout=int(PROCESSING_VISIBILITY.total_seconds()),
        ).by_page()
        return list(next(pages, []))

    async def _create_if_missing(self, client: QueueClient) -> None:
        with contextlib.suppress(ResourceExistsError):
            await self._storage(client.create_queue)

    async def _process(self, message: StorageQueueMessage) -> None:
        try:
            await self._settle(message)
        except Exception:
            # Settling talks to storage: a failure leaves the message to reappear after its
            # visibility timeout, as a host crash would.
            logger.exception("Settling a message of %s failed", self._function.name)
        finally:
            self.in_flight -= 1
            self._settled.set()

    async def _settle(self, message: StorageQueueMessage) -> None:
        dequeue_count = message.dequeue_count or 1
        if dequeue_count > self._settings.max_dequeue_count:
            # Failed often enough already (e.g. the process died mid-call): poison it unrun.
            await self._move_to_poison(message)
            return
        try:
            body = decode_body(message.content, self._settings.message_encoding)
            await call_function(
                self._function.handler,
                self._function.name,
                self._function.parameter,
                function_message(message, body),
                self._executor,
            )
        except Exception:
            # Catch-all at the edge: the host logs any function failure and retries the message.
            logger.exception(
                "Queue function %s failed (dequeue count %s)", self._function.name, dequeue_count
            )
            await self._after_failure(message, dequeue_count)
            return
        await self._storage(self._queue.delete_message, message.id, message.pop_receipt)
        logger.info("Queue function %s succeeded", self._function.name)

    async def _after_failure(self, message: StorageQueueMessage, dequeue_count: int) -> None:
        if dequeue_count >= self._settings.max_dequeue_count:
            await self._move_to_poison(message)
            return
        await self._storage(
            self._queue.update_message,
            message.id,
            message.pop_receipt,
            visibility_timeout=int(self._settings.visibility_timeout.total_seconds()),
        )

    async def _move_to_poison(self, message: StorageQueueMessage) -> None:
        await self._create_if_missing(self._poison)
        # The original text is copied unchanged, so it keeps its encoding.
        await self._storage(self._poison.send_message, message.content)
        await self._storage(self._queue.delete_message, message.id, message.pop_receipt)
        logger.warning(
            "Message %s moved to %s%s after %s failed attempts",
            message.id,
            self._function.queue_name,
            POISON_SUFFIX,
            message.dequeue_count,
        )

    def close(self) -> None:
        """Release the storage clients."""
        self._queue.close()
        self._poison.close()


class QueuePoller:
    """Runs a :class:`QueueListener` per queue function until stopped."""

    def __init__(
        self,
        functions: list[QueueFunction],
        settings: QueueSettings,
        env: Mapping[str, str],
        executor: Executor,
        storage_executor: Executor,
    ) -> None:
        self._listeners: list[QueueListener] = []
        for function in functions:
            connection_string = resolve_connection_string(function.connection, env)
            if connection_string is None:
                # The host puts such a function in an error state and keeps running the rest.
                logger.error(
                    "Queue function %s disabled: connection setting %s is not set",
                    function.name,
                    function.connection,
                )
                continue
            try:
                listener = QueueListener(
                    function, connection_string, settings, executor, storage_executor
                )
            except ValueError as error:
                logger.error(
                    "Queue function %s disabled: connection setting %s is invalid (%s)",
                    function.name,
                    function.connection,
                    type(error).__name__,
                )
                continue
            self._listeners.append(listener)
        self._tasks: list[asyncio.Task[None]] = []

    def in_flight(self) -> int:
        """Messages being worked on now, across every queue."""
        return sum(listener.in_flight for listener in self._listeners)

    def start(self) -> None:
        """Start polling every queue."""
        for listener in self._listeners:
            self._tasks.append(asyncio.create_task(listener.run()))

    async def stop(self) -> None:
        """Stop polling; calls already sent to storage finish in their thread."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        for listener in self._listeners:
            listener.close()


async def invoke_with_input(function: QueueFunction, body: str, executor: Executor) -> None:
    """Run ``function`` once with ``body`` as the message (admin API); failures are logged."""
    try:
        await call_function(
            function.handler, function.name, function.parameter, adhoc_message(body), executor
        )
    except Exception:
        # Background run started by the admin API: nobody awaits it, so log it here.
        logger.exception("Queue function %s failed (admin invocation)", function.name)
        return
    logger.info("Queue function %s succeeded (admin invocation)", function.name)
