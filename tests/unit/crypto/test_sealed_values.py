"""Browser-held sealed values: open only as sealed, for their purpose, before they expire."""

from __future__ import annotations

import base64

from shared.crypto.keyring import KeyRingCache
from shared.crypto.keys import KeyRing
from shared.crypto.sealed_text import SealedValues


class Provider:
    name = "keyProvider"

    async def load(self) -> KeyRing:
        return KeyRing(
            {"a1": b"\x01" * 32}, "a1", {"f1": [base64.urlsafe_b64encode(b"\x02" * 32)]}, "f1"
        )

    async def check(self) -> None:
        pass


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def sealer(clock: Clock | None = None) -> SealedValues:
    return SealedValues(KeyRingCache(Provider()), clock or Clock())


async def test_a_sealed_value_opens_for_its_purpose() -> None:
    values = sealer()
    text = await values.wrap("portal-session", {"oid": "o-1"}, 60)

    assert await values.unwrap("portal-session", text) == {"oid": "o-1"}
    outer = text.rsplit(".", 1)[-1]  # <schema>.<aes>.<fernet>.<ciphertext>
    assert b"o-1" not in base64.urlsafe_b64decode(outer + "=" * (-len(outer) % 4))


async def test_a_value_sealed_for_another_purpose_does_not_open() -> None:
    values = sealer()
    flow = await values.wrap("portal-flow", {"oid": "o-1"}, 60)

    assert await values.unwrap("portal-session", flow) is None


async def test_an_expired_value_does_not_open() -> None:
    clock = Clock()
    values = sealer(clock)
    text = await values.wrap("portal-session", {"oid": "o-1"}, 60)
    clock.now += 61

    assert await values.unwrap("portal-session", text) is None


async def test_a_tampered_or_malformed_value_does_not_open() -> None:
    values = sealer()
    text = await values.wrap("option-choice", {"o": "Approve"}, 60)
    flipped = text[:-6] + ("A" if text[-6] != "A" else "B") + text[-5:]

    for bad in (flipped, "", "not-base64!", "W10", "x" * 5000, None):
        assert await values.unwrap("option-choice", bad) is None
