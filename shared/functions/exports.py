"""The export worker: one queue message per folder page of an export job (queued by
ExportService), and the poison listener that fails an export whose page kept failing.

The queue name is the `%EXPORTS_QUEUE%` binding expression (docs/archiving.md).
"""

from __future__ import annotations

import azure.functions as func

from shared.functions.lifecycle import QUEUE_CONNECTION
from shared.functions.services import TriggerResolver


def blueprint(resolve: TriggerResolver) -> func.Blueprint:
    bp = func.Blueprint()  # type: ignore[no-untyped-call]

    @bp.function_name("exports_page")
    @bp.queue_trigger(arg_name="msg", queue_name="%EXPORTS_QUEUE%", connection=QUEUE_CONNECTION)
    async def exports_page(msg: func.QueueMessage) -> None:
        # Raising hands the page back to the host: redelivered, it resumes at the checkpoint.
        await resolve().exports.work(msg.get_body().decode())

    @bp.function_name("exports_poison")
    @bp.queue_trigger(
        arg_name="msg", queue_name="%EXPORTS_QUEUE%-poison", connection=QUEUE_CONNECTION
    )
    async def exports_poison(msg: func.QueueMessage) -> None:
        await resolve().exports.poisoned(msg.get_body().decode())

    return bp
