"""What the non-HTTP triggers reach through the resolver the composition root gives them.

The worker's container satisfies it; the services are named for type checking only, so
registering the triggers at import loads none of them (cold start).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from shared.audit import AuditSink
    from shared.export.service import ExportService
    from shared.lifecycle.service import LifecycleService
    from shared.notifications.wiring import Notifications


class TriggerServices(Protocol):
    @property
    def audit(self) -> AuditSink: ...

    @property
    def lifecycle(self) -> LifecycleService: ...

    @property
    def notifications(self) -> Notifications: ...

    @property
    def exports(self) -> ExportService: ...


TriggerResolver = Callable[[], TriggerServices]
