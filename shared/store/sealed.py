"""Which tables hold sealed values: collected from the stores' own `SealedTable` declarations,
so that key rotation covers every one of them without a list kept by hand.

Every module of this package is imported and each module-level `SealedTable` it holds is
taken; tests/unit/crypto/test_sealed_registry.py checks that every `seal(...)` call in
shared/ uses a prefix declared this way.
"""

from __future__ import annotations

import importlib
import pkgutil

import shared.store
from shared.crypto.envelope import SealedTable


def sealed_declarations() -> tuple[SealedTable, ...]:
    """Every `SealedTable` declared at module level in shared/store, in a stable order."""
    found: set[SealedTable] = set()
    for module_info in pkgutil.iter_modules(shared.store.__path__):
        module = importlib.import_module(f"{shared.store.__name__}.{module_info.name}")
        found |= {value for value in vars(module).values() if isinstance(value, SealedTable)}
    return tuple(sorted(found, key=lambda d: (d.table, d.prefix)))


def sealed_tables(table_prefix: str) -> list[tuple[str, str]]:
    """(full table name, property prefix) of every sealed table, for `rotate_keys`."""
    return [(d.full_name(table_prefix), d.prefix) for d in sealed_declarations()]
