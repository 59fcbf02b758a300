"""The composition root's object graph: built once per worker process from Settings.

`get_container()` builds it on first use (not at import, to keep cold start cheap) and
keeps it for the life of the worker. Tests build their own with `Container.build(settings,
...)` and install it with `use_container()`; nothing else is global.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from shared.audit import AuditSink, build_audit_sink
from shared.config import Settings, load_settings
from shared.crypto.keys import KeyProvider, build_key_provider
from shared.health.service import HealthService, Probe
from shared.http.api import RequestLimits, configure_requests


@dataclass
class Container:
    settings: Settings
    audit: AuditSink
    keys: KeyProvider
    health: HealthService
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
    ) -> Container:
        from shared.store.tables import TableStorageProbe, build_table_service

        keys = keys or build_key_provider(settings)
        closers: list[Callable[[], Awaitable[None]]] = []
        if probes is None:
            tables = build_table_service(settings)
            closers.append(tables.close)
            probes = [TableStorageProbe(tables), keys]
        return cls(
            settings=settings,
            audit=audit
            or build_audit_sink(
                settings.APPLICATIONINSIGHTS_CONNECTION_STRING.get_secret_value()
                if settings.APPLICATIONINSIGHTS_CONNECTION_STRING
                else None,
                settings.AUDIT_LOG_PATH,
            ),
            keys=keys,
            health=HealthService(probes, timeout_seconds=settings.STORAGE_TIMEOUT_SECONDS),
            closers=closers,
        )

    async def aclose(self) -> None:
        for close in self.closers:
            await close()


_container: Container | None = None
_lock = threading.Lock()


def _install(container: Container | None) -> None:
    global _container
    _container = container
    if container is not None:
        configure_requests(
            RequestLimits(
                max_body_bytes=container.settings.MAX_REQUEST_BODY_BYTES,
                problem_type_base=str(container.settings.PROBLEM_TYPE_BASE_URL),
            )
        )


def use_container(container: Container | None) -> None:
    """Install (or, with None, drop) the worker's container."""
    with _lock:
        _install(container)


def get_container() -> Container:
    if _container is None:
        with _lock:
            if _container is None:
                _install(Container.build(load_settings()))
    assert _container is not None
    return _container
