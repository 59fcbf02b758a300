"""What HTTP handlers reach through `request.services`: the use cases, as one port.

The worker's container satisfies it (shared/container.py); a test hands the dispatcher any
object with the attributes it needs. The services are named here only for type checking,
so importing an HTTP adapter loads none of them (cold start) and the HTTP layer never
imports the composition root.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from shared.audit import AuditSink
    from shared.auth.caller import CallerAuthenticator
    from shared.config import Settings
    from shared.connections.application import ApplicationConnections
    from shared.connections.mailbox import Mailboxes
    from shared.connections.service import ConnectionService
    from shared.export.service import ExportService
    from shared.health.service import HealthService
    from shared.mail.service import MailReader
    from shared.mail.settings import OutlookSettings
    from shared.mail.writer import MailWriter
    from shared.notifications.wiring import Notifications
    from shared.options.service import OptionLinks
    from shared.portal.service import PortalService
    from shared.store.idempotency import IdempotencyStore


class Services(Protocol):
    """Read-only views of the worker's services (properties, so a dataclass matches)."""

    @property
    def settings(self) -> Settings: ...

    @property
    def callers(self) -> CallerAuthenticator: ...

    @property
    def health(self) -> HealthService: ...

    @property
    def connections(self) -> ConnectionService: ...

    @property
    def application_connections(self) -> ApplicationConnections: ...

    @property
    def mail_reader(self) -> MailReader: ...

    @property
    def mail_writer(self) -> MailWriter: ...

    @property
    def idempotency(self) -> IdempotencyStore: ...

    @property
    def notifications(self) -> Notifications: ...

    @property
    def mailboxes(self) -> Mailboxes: ...

    @property
    def audit(self) -> AuditSink: ...

    @property
    def portal(self) -> PortalService: ...

    @property
    def options(self) -> OptionLinks: ...

    @property
    def outlook_settings(self) -> OutlookSettings: ...

    @property
    def exports(self) -> ExportService: ...
