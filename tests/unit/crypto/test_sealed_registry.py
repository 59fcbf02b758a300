"""Key rotation knows every sealed table: the registry is built from the stores' own
declarations, and every `seal(...)` call in shared/ seals under a declared prefix, so a new
store that seals something cannot be left out of `rotate-keys`."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

from shared.crypto.envelope import SealedTable
from shared.store.sealed import sealed_declarations, sealed_tables
from tests.support.processes import ROOT

SHARED = ROOT / "shared"


def seal_calls(path: Path) -> list[ast.Call]:
    """`<anything>.seal(plaintext, row, prefix)` calls in one module."""
    tree = ast.parse(path.read_text("utf-8"))
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "seal"
    ]


def prefix_of(call: ast.Call, module: object) -> object:
    """The value of a seal call's prefix argument, resolved in its module."""
    node = (
        call.args[2]
        if len(call.args) >= 3
        else next((k.value for k in call.keywords if k.arg == "prefix"), None)
    )
    assert node is not None, "a seal call without a prefix"
    if isinstance(node, ast.Constant):
        return node.value
    return eval(compile(ast.Expression(node), "<prefix>", "eval"), vars(module))  # noqa: S307


def test_every_seal_call_uses_a_prefix_the_rotation_knows() -> None:
    known = {d.prefix for d in sealed_declarations()}
    checked = 0
    for path in sorted(SHARED.rglob("*.py")):
        relative = path.relative_to(ROOT)
        if relative.parts[:2] == ("shared", "crypto"):
            continue  # the envelope itself, and the rotation that re-seals what it reads
        calls = seal_calls(path)
        if not calls:
            continue
        module = importlib.import_module(".".join(relative.with_suffix("").parts))
        for call in calls:
            prefix = prefix_of(call, module)
            assert prefix in known, (
                f"{relative}:{call.lineno} seals under {prefix!r}, which no SealedTable in "
                "shared/store declares: key rotation would leave those rows behind"
            )
            checked += 1
    assert checked >= 4  # connections, pending flows, subscriptions, idempotency at least


def test_each_declaring_module_seals_into_its_declared_table() -> None:
    for path in sorted((SHARED / "store").glob("*.py")):
        module = importlib.import_module(f"shared.store.{path.stem}")
        declared = [v for v in vars(module).values() if isinstance(v, SealedTable)]
        if seal_calls(path):
            assert declared, f"{path.name} seals values but declares no SealedTable"


def test_rotation_covers_every_table_that_holds_sealed_values() -> None:
    assert sealed_tables("oia") == [
        ("oiaconnections", "Grant"),
        ("oiaidempotency", "Resp"),
        ("oiaoptionsubscriptions", "Target"),
        ("oiapendingflows", "Flow"),
        ("oiasubscriptions", "Secrets"),
    ]
