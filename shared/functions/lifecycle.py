"""The token lifecycle's triggers: the timer that plans a run, the queue worker that works
each batch, and the poison-queue listener that records a batch that kept failing.

Thin on purpose: each handler resolves the worker's services and calls one lifecycle
method. Schedules and queue names are `%SETTING%` binding expressions (see
docs/operations.md).
"""

from __future__ import annotations

import logging

import azure.functions as func

from shared.functions.services import TriggerResolver

logger = logging.getLogger(__name__)

# The host setting holding the storage account of the work queue (the host's own account).
QUEUE_CONNECTION = "AzureWebJobsStorage"


def blueprint(resolve: TriggerResolver) -> func.Blueprint:
    """The lifecycle's functions, reaching the lifecycle service through `resolve`."""
    bp = func.Blueprint()  # type: ignore[no-untyped-call]

    @bp.function_name("lifecycle_timer")
    @bp.timer_trigger(arg_name="timer", schedule="%LIFECYCLE_SCHEDULE%", use_monitor=True)
    async def lifecycle_timer(timer: func.TimerRequest) -> None:
        if timer.past_due:
            logger.info("lifecycle timer is past due; running now")
        started = await resolve().lifecycle.run()
        logger.info(
            "lifecycle run %s: %s due, %s batches queued%s",
            started.run_id,
            started.due,
            started.batches,
            f", stopped: {started.reason}" if started.reason else "",
        )

    @bp.function_name("lifecycle_batch")
    @bp.queue_trigger(arg_name="msg", queue_name="%LIFECYCLE_QUEUE%", connection=QUEUE_CONNECTION)
    async def lifecycle_batch(msg: func.QueueMessage) -> None:
        # Raising hands the message back to the host: retried, then moved to <queue>-poison.
        await resolve().lifecycle.work(msg.get_body())

    @bp.function_name("lifecycle_poison")
    @bp.queue_trigger(
        arg_name="msg", queue_name="%LIFECYCLE_QUEUE%-poison", connection=QUEUE_CONNECTION
    )
    async def lifecycle_poison(msg: func.QueueMessage) -> None:
        await resolve().lifecycle.poisoned(msg.get_body())

    return bp
