"""The per-worker key ring cache: one load, reload after the TTL, refresh on a newer version."""

from __future__ import annotations

import base64

import pytest

from shared.crypto.envelope import CiphertextRejected, Envelope, RowAddress
from shared.crypto.keyring import KeyRingCache
from shared.crypto.keys import KeyRing
from shared.errors import KeyProviderUnavailable

ROW = RowAddress("oiaconnections", "3f", "conn-abc")


def ring(version: int) -> KeyRing:
    aes = {f"a{v}": bytes([v]) * 32 for v in range(1, version + 1)}
    fernet = {f"f{v}": [base64.urlsafe_b64encode(bytes([v]) * 32)] for v in range(1, version + 1)}
    return KeyRing(aes, f"a{version}", fernet, f"f{version}")


class CountingProvider:
    name = "keyProvider"

    def __init__(self, version: int = 1) -> None:
        self.version = version
        self.loads = 0
        self.down = False

    async def load(self) -> KeyRing:
        self.loads += 1
        if self.down:
            raise KeyProviderUnavailable("Key Vault is unreachable.")
        return ring(self.version)

    async def check(self) -> None:
        await self.load()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_the_ring_is_loaded_once_within_the_ttl() -> None:
    provider, clock = CountingProvider(), Clock()
    cache = KeyRingCache(provider, ttl_seconds=600, clock=clock)

    first = await cache.get()
    clock.now += 599
    second = await cache.get()

    assert first is second
    assert provider.loads == 1


async def test_the_ring_is_reloaded_after_the_ttl() -> None:
    provider, clock = CountingProvider(), Clock()
    cache = KeyRingCache(provider, ttl_seconds=600, clock=clock)
    await cache.get()

    provider.version = 2
    clock.now += 600

    assert (await cache.get()).aes_current == "a2"
    assert provider.loads == 2


async def test_a_failed_reload_keeps_the_loaded_ring() -> None:
    provider, clock = CountingProvider(), Clock()
    cache = KeyRingCache(provider, ttl_seconds=600, clock=clock)
    loaded = await cache.get()

    provider.down = True
    clock.now += 600

    assert await cache.get() is loaded


async def test_a_failed_first_load_is_raised() -> None:
    provider = CountingProvider()
    provider.down = True

    with pytest.raises(KeyProviderUnavailable):
        await KeyRingCache(provider).get()


async def test_a_row_under_a_newer_version_refreshes_the_ring_once() -> None:
    provider, clock = CountingProvider(), Clock()
    cache = KeyRingCache(provider, clock=clock)
    await cache.get()
    clock.now += 60
    sealed = Envelope(ring(2)).seal(b"grant", ROW, "Grant")

    provider.version = 2

    assert await cache.open(sealed, ROW, "Grant") == b"grant"
    assert provider.loads == 2


async def test_forged_versions_do_not_hammer_the_provider() -> None:
    provider, clock = CountingProvider(), Clock()
    cache = KeyRingCache(provider, clock=clock)
    await cache.get()
    forged = Envelope(ring(1)).seal(b"grant", ROW, "Grant") | {"GrantAesKey": "a9"}

    for _ in range(5):
        with pytest.raises(CiphertextRejected):
            await cache.open(forged, ROW, "Grant")

    assert provider.loads == 1


async def test_the_envelope_is_reused_until_the_ring_changes() -> None:
    provider, clock = CountingProvider(), Clock()
    cache = KeyRingCache(provider, ttl_seconds=600, clock=clock)

    first = await cache.envelope()
    again = await cache.envelope()
    clock.now += 600
    reloaded = await cache.envelope()

    assert first is again
    assert reloaded is not first
