"""The composition root's object graph: built once per worker process from Settings.

`get_container()` builds it on first use (not at import, to keep cold start cheap) and
keeps it for the life of the worker. Tests build their own with `Container.build(settings,
...)` and install it with `use_container()`; nothing else is global.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from shared.config import Settings, load_settings

if TYPE_CHECKING:
    from shared.audit import AuditSink
    from shared.auth.caller import CallerAuthenticator
    from shared.connections.application import ApplicationConnections
    from shared.connections.mailbox import Mailboxes
    from shared.connections.scheduler import DueScheduler
    from shared.connections.service import ConnectionService
    from shared.connections.tokens import TokenService
    from shared.crypto.keyring import KeyRingCache
    from shared.crypto.keys import KeyProvider
    from shared.export.service import ExportService
    from shared.graph.client import GraphClient
    from shared.health.service import HealthService, Probe
    from shared.lifecycle.service import LifecycleService
    from shared.mail.service import MailReader
    from shared.mail.settings import OutlookSettings
    from shared.mail.writer import MailWriter
    from shared.notifications.wiring import Notifications
    from shared.options.service import OptionLinks
    from shared.portal.service import PortalService
    from shared.store.connections import ConnectionStore
    from shared.store.idempotency import IdempotencyStore
    from shared.store.table_set import TableSet


@dataclass
class Container:
    settings: Settings
    audit: AuditSink
    keys: KeyProvider
    health: HealthService
    callers: CallerAuthenticator
    key_ring: KeyRingCache
    connections: ConnectionService
    application_connections: ApplicationConnections
    scheduler: DueScheduler
    tokens: TokenService
    mailboxes: Mailboxes
    mail_reader: MailReader
    mail_writer: MailWriter
    idempotency: IdempotencyStore
    graph: GraphClient
    lifecycle: LifecycleService
    notifications: Notifications
    portal: PortalService
    options: OptionLinks
    outlook_settings: OutlookSettings
    exports: ExportService
    # Closed by aclose(): pooled connections the container owns.
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    @classmethod
    def build(
        cls,
        settings: Settings,
        *,
        audit: AuditSink | None = None,
        keys: KeyProvider | None = None,
        probes: list[Probe] | None = None,
        callers: CallerAuthenticator | None = None,
        graph: GraphClient | None = None,
    ) -> Container:
        # Imported here, not at module level: `import function_app` stays cheap.
        from shared.audit import build_audit_sink
        from shared.auth.tokens import JwtCallerAuthenticator
        from shared.connections.app_tokens import AppTokens
        from shared.connections.application import ApplicationConnections
        from shared.connections.mailbox import Mailboxes
        from shared.connections.scheduler import DueScheduler
        from shared.connections.service import ConnectionService
        from shared.connections.signin import SignInSealer
        from shared.connections.tokens import TokenService
        from shared.crypto.keyring import KeyRingCache
        from shared.crypto.keys import build_key_provider
        from shared.crypto.sealed_text import SealedValues
        from shared.graph import cursor_codec_from_settings
        from shared.graph.client import GraphClient
        from shared.health.service import HealthService
        from shared.identity.msal_client import AppCredentialProbe, MsalClient
        from shared.lifecycle.maintenance import MaintenanceStep
        from shared.lifecycle.wiring import build_lifecycle
        from shared.mail.service import MailReader
        from shared.mail.settings import OutlookSettings
        from shared.mail.writer import build_mail_writer
        from shared.notifications.wiring import build_notifications
        from shared.options.service import OptionLinks
        from shared.portal.service import PortalService
        from shared.store.connections import ConnectionStore
        from shared.store.due import DueIndex
        from shared.store.options import OptionStore
        from shared.store.pending_flows import PendingFlowStore
        from shared.store.queue import storage_queue
        from shared.store.table_set import TableSet
        from shared.store.tables import TableStorageProbe, build_table_service

        keys = keys or build_key_provider(settings)
        key_ring = KeyRingCache(keys)
        table_service = build_table_service(settings)
        tables = TableSet(table_service, settings.TABLE_PREFIX)
        closers: list[Callable[[], Awaitable[None]]] = [table_service.close]
        msal_client = MsalClient(settings)
        if probes is None:
            probes = [TableStorageProbe(table_service), keys, AppCredentialProbe(msal_client)]
        if graph is None:
            graph = GraphClient.from_settings(settings)
            closers.append(graph.aclose)
        audit = audit or build_audit_sink(
            settings.APPLICATIONINSIGHTS_CONNECTION_STRING.get_secret_value()
            if settings.APPLICATIONINSIGHTS_CONNECTION_STRING
            else None,
            settings.AUDIT_LOG_PATH,
        )
        due = DueIndex(tables)
        connection_store = ConnectionStore(tables, key_ring)
        scheduler = DueScheduler(
            due, timedelta(days=settings.KEEPALIVE_IDLE_DAYS), store=connection_store
        )
        tokens = TokenService(settings, msal_client, connection_store, audit, scheduler)
        flows = PendingFlowStore(tables, key_ring)
        signins = SignInSealer(key_ring, tables.name("signin"))
        connections = ConnectionService(
            settings, msal_client, signins, connection_store, audit, scheduler
        )
        mailboxes = Mailboxes(
            connections,
            tokens,
            graph,
            app_tokens=AppTokens(msal_client, audit),
            app_client_id=str(settings.CLIENT_ID),
        )
        application_connections = ApplicationConnections(
            connection_store,
            mailboxes,
            audit,
            str(settings.ADMIN_GROUP_ID) if settings.ADMIN_GROUP_ID else None,
        )
        mail_reader = MailReader(mailboxes, cursor_codec_from_settings(settings), audit)
        mail_writer, idempotency, close_writer = build_mail_writer(
            settings, graph, tables, key_ring, audit
        )
        closers.append(close_writer)
        notification_queue = storage_queue(settings, settings.NOTIFICATIONS_QUEUE)
        notifications = build_notifications(
            settings,
            connections=connections,
            connection_store=connection_store,
            mailboxes=mailboxes,
            tables=tables,
            key_ring=key_ring,
            queue=notification_queue,
            audit=audit,
        )
        connections.delete_hooks.append(notifications.subscriptions.delete_for_connection)
        closers.append(notifications.aclose)
        lifecycle, work_queue = build_lifecycle(
            settings,
            tables=tables,
            table_service=table_service,
            due=due,
            scheduler=scheduler,
            connections=connection_store,
            tokens=tokens,
            key_ring=key_ring,
            audit=audit,
            steps=[
                MaintenanceStep("flows_purged", flows.purge_expired),
                MaintenanceStep("idempotency_keys_purged", idempotency.purge_expired),
                MaintenanceStep("subscriptions_renewed", notifications.subscriptions.renew_due),
                # Nothing to refresh for application connections: once a day, each is
                # checked to still reach its mailbox (out_of_scope otherwise).
                MaintenanceStep("application_scopes_changed", application_connections.check_scope),
            ],
        )
        closers.append(work_queue.aclose)
        exports = _build_exports(settings, mailboxes, connection_store, tables, key_ring, audit)
        closers.extend([exports.aclose_items, exports.aclose_queue])
        sealed = SealedValues(key_ring)  # browser-held values: portal cookies, option links
        return cls(
            settings=settings,
            audit=audit,
            keys=keys,
            health=HealthService(probes, timeout_seconds=settings.STORAGE_TIMEOUT_SECONDS),
            callers=callers or JwtCallerAuthenticator.from_settings(settings, audit),
            key_ring=key_ring,
            connections=connections,
            application_connections=application_connections,
            scheduler=scheduler,
            tokens=tokens,
            mailboxes=mailboxes,
            mail_reader=mail_reader,
            mail_writer=mail_writer,
            outlook_settings=OutlookSettings(mailboxes, mail_writer, audit),
            idempotency=idempotency,
            graph=graph,
            lifecycle=lifecycle,
            notifications=notifications,
            portal=PortalService(settings, msal_client, sealed, connections, notifications, audit),
            options=OptionLinks(
                settings, mail_writer, sealed, OptionStore(tables, key_ring), audit
            ),
            exports=exports.service,
            closers=closers,
        )

    async def aclose(self) -> None:
        for close in self.closers:
            await close()


@dataclass(frozen=True)
class _Exports:
    service: ExportService
    aclose_items: Callable[[], Awaitable[None]]
    aclose_queue: Callable[[], Awaitable[None]]


def _build_exports(
    settings: Settings,
    mailboxes: Mailboxes,
    connection_store: ConnectionStore,
    tables: TableSet,
    key_ring: KeyRingCache,
    audit: AuditSink,
) -> _Exports:
    from shared.export.service import ExportService
    from shared.store.blobs import build_blob_items
    from shared.store.exports import ExportStore
    from shared.store.queue import storage_queue

    items = build_blob_items(settings)  # azure.storage.blob loads here, never at import
    queue = storage_queue(settings, settings.EXPORTS_QUEUE)
    service = ExportService(
        mailboxes=mailboxes,
        connection_store=connection_store,
        store=ExportStore(tables),
        items=items,
        queue=queue,
        key_ring=key_ring,
        page_size=settings.EXPORT_PAGE_SIZE,
        audit=audit,
    )
    return _Exports(service, items.aclose, queue.aclose)


_container: Container | None = None
_lock = threading.Lock()


def use_container(container: Container | None) -> None:
    """Install (or, with None, drop) the worker's container."""
    global _container
    with _lock:
        _container = container


def get_container() -> Container:
    """The worker's container, built on first use. The composition root hands this resolver
    to the blueprints (function_app.py); nothing below it calls it."""
    global _container
    if _container is None:
        with _lock:
            if _container is None:
                _container = Container.build(load_settings())
    return _container
