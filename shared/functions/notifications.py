"""The change-notification worker: one queue message per notified item, lifecycle event or
resync (sent by shared/http/notifications.py), the reconciliation timer, the poll timer
(poll-mode subscriptions), and the poison listener.

Thin: each handler calls one NotificationWorker method. The queue name is the
`%NOTIFICATIONS_QUEUE%` binding expression (an app setting, see README "Settings").
"""

from __future__ import annotations

import logging

import azure.functions as func

from shared.audit import AuditEvent, Outcome
from shared.functions.lifecycle import QUEUE_CONNECTION
from shared.functions.services import TriggerResolver

logger = logging.getLogger(__name__)


def blueprint(resolve: TriggerResolver) -> func.Blueprint:
    """The notification functions, reaching the notification service through `resolve`."""
    bp = func.Blueprint()  # type: ignore[no-untyped-call]

    @bp.function_name("notifications_deliver")
    @bp.queue_trigger(
        arg_name="msg", queue_name="%NOTIFICATIONS_QUEUE%", connection=QUEUE_CONNECTION
    )
    async def notifications_deliver(msg: func.QueueMessage) -> None:
        # Delivery retries to the caller happen inside (bounded, audited); raising hands the
        # message back to the host only when Graph or storage could not be reached.
        await resolve().notifications.worker.work(msg.get_body().decode())

    @bp.function_name("notifications_reconcile")
    @bp.timer_trigger(arg_name="timer", schedule="%RECONCILE_SCHEDULE%", use_monitor=True)
    async def notifications_reconcile(timer: func.TimerRequest) -> None:
        # A delta sweep of every subscription's folder (docs/triggers.md "Gaps").
        queued = await resolve().notifications.subscriptions.reconcile()
        logger.info("reconciliation queued %s folder sweeps", queued)

    @bp.function_name("notifications_poll")
    @bp.timer_trigger(arg_name="timer", schedule="%POLL_SCHEDULE%", use_monitor=True)
    async def notifications_poll(timer: func.TimerRequest) -> None:
        # A `poll` job per due poll-mode subscription (docs/triggers.md "Shared mailboxes").
        queued = await resolve().notifications.poller.queue_due()
        logger.info("poll timer queued %s folder reads", queued)

    @bp.function_name("notifications_poison")
    @bp.queue_trigger(
        arg_name="msg", queue_name="%NOTIFICATIONS_QUEUE%-poison", connection=QUEUE_CONNECTION
    )
    async def notifications_poison(msg: func.QueueMessage) -> None:
        resolve().audit.emit(
            AuditEvent("notification.poisoned", Outcome.FAILURE, reason="poison_queue")
        )
        logger.warning("a notification job kept failing and was set aside")

    return bp
