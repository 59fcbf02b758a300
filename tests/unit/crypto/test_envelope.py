"""The two-layer envelope: round trips, row binding, tamper and version checks, splitting."""

from __future__ import annotations

import base64
import os
from typing import Any

import pytest

from shared.crypto.envelope import (
    MAX_PLAINTEXT_BYTES,
    PART_BYTES,
    CiphertextRejected,
    Envelope,
    RowAddress,
    UnknownKeyVersion,
    is_sealed,
)
from shared.crypto.keys import KeyRing

ROW = RowAddress("oiaconnections", "3f", "conn-abc")
SECRET = b'{"refresh_token": "very-secret-refresh-token"}'


def fernet_key() -> bytes:
    return base64.urlsafe_b64encode(os.urandom(32))


def ring_v1() -> KeyRing:
    return KeyRing(
        aes_keys={"a1": os.urandom(32)},
        aes_current="a1",
        fernet_keys={"f1": [fernet_key()]},
        fernet_current="f1",
    )


def rotated(ring: KeyRing) -> KeyRing:
    return KeyRing(
        aes_keys={**ring.aes_keys, "a2": os.urandom(32)},
        aes_current="a2",
        fernet_keys={**ring.fernet_keys, "f2": [fernet_key()]},
        fernet_current="f2",
    )


@pytest.fixture
def envelope() -> Envelope:
    return Envelope(ring_v1())


def test_a_sealed_value_opens_to_the_same_plaintext(envelope: Envelope) -> None:
    sealed = envelope.seal(SECRET, ROW, "Grant")

    assert envelope.open(sealed, ROW, "Grant") == SECRET


def test_sealed_properties_are_binary_parts_and_labels(envelope: Envelope) -> None:
    sealed = envelope.seal(SECRET, ROW, "Grant")

    assert set(sealed) == {
        "Grant0",
        "GrantParts",
        "GrantAesKey",
        "GrantFernetKey",
        "GrantSchema",
    }
    assert isinstance(sealed["Grant0"], bytes)
    assert (sealed["GrantParts"], sealed["GrantAesKey"], sealed["GrantFernetKey"]) == (
        1,
        "a1",
        "f1",
    )
    assert sealed["GrantSchema"] == 1


def test_every_seal_uses_a_fresh_nonce(envelope: Envelope) -> None:
    first = envelope.seal(SECRET, ROW, "Grant")["Grant0"]
    second = envelope.seal(SECRET, ROW, "Grant")["Grant0"]

    assert first[:12] != second[:12]
    assert first != second


@pytest.mark.parametrize(
    "other",
    [
        RowAddress("oiaconnections", "3f", "conn-other"),
        RowAddress("oiaconnections", "40", "conn-abc"),
        RowAddress("oiapendingflows", "3f", "conn-abc"),
    ],
    ids=["other-row-key", "other-partition-key", "other-table"],
)
def test_a_ciphertext_copied_to_another_row_is_rejected(
    envelope: Envelope, other: RowAddress
) -> None:
    sealed = envelope.seal(SECRET, ROW, "Grant")

    with pytest.raises(CiphertextRejected):
        envelope.open(sealed, other, "Grant")


def test_a_tampered_byte_is_rejected(envelope: Envelope) -> None:
    sealed = envelope.seal(SECRET, ROW, "Grant")
    blob = bytearray(sealed["Grant0"])
    blob[len(blob) // 2] ^= 0x01
    sealed["Grant0"] = bytes(blob)

    with pytest.raises(CiphertextRejected):
        envelope.open(sealed, ROW, "Grant")


def test_a_truncated_ciphertext_is_rejected(envelope: Envelope) -> None:
    sealed = envelope.seal(SECRET, ROW, "Grant")
    sealed["Grant0"] = sealed["Grant0"][:20]

    with pytest.raises(CiphertextRejected):
        envelope.open(sealed, ROW, "Grant")


@pytest.mark.parametrize("label", ["GrantAesKey", "GrantFernetKey"])
def test_a_relabelled_key_version_is_rejected(label: str) -> None:
    # Both versions are known to the ring, so only the associated data can catch the swap.
    ring = rotated(ring_v1())
    old = KeyRing(ring.aes_keys, "a1", ring.fernet_keys, "f1")
    sealed = Envelope(old).seal(SECRET, ROW, "Grant")
    sealed[label] = {"GrantAesKey": "a2", "GrantFernetKey": "f2"}[label]

    with pytest.raises(CiphertextRejected):
        Envelope(ring).open(sealed, ROW, "Grant")


def test_an_unknown_key_version_is_rejected(envelope: Envelope) -> None:
    sealed = Envelope(rotated(envelope.keyring)).seal(SECRET, ROW, "Grant")

    with pytest.raises(UnknownKeyVersion):
        envelope.open(sealed, ROW, "Grant")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("GrantSchema", 2),
        ("GrantParts", 0),
        ("GrantParts", 2),
        ("GrantParts", "1"),
        ("Grant0", "not bytes"),
        ("GrantAesKey", None),
    ],
)
def test_malformed_labels_are_rejected(envelope: Envelope, name: str, value: Any) -> None:
    sealed = envelope.seal(SECRET, ROW, "Grant")
    sealed[name] = value

    with pytest.raises(CiphertextRejected):
        envelope.open(sealed, ROW, "Grant")


def test_the_rejection_message_holds_no_key_or_plaintext(envelope: Envelope) -> None:
    sealed = envelope.seal(SECRET, ROW, "Grant")

    with pytest.raises(CiphertextRejected) as caught:
        envelope.open(sealed, RowAddress("oiaconnections", "3f", "elsewhere"), "Grant")

    message = str(caught.value)
    ring = envelope.keyring
    for secret in [SECRET, ring.aes_keys["a1"], *ring.fernet_keys["f1"]]:
        assert secret.decode("latin-1") not in message
        assert base64.b64encode(secret).decode() not in message


def test_the_wrong_prefix_does_not_open(envelope: Envelope) -> None:
    sealed = envelope.seal(SECRET, ROW, "Grant")

    with pytest.raises(CiphertextRejected):
        envelope.open(sealed, ROW, "Flow")


def test_a_large_plaintext_is_split_and_rejoined(envelope: Envelope) -> None:
    plaintext = os.urandom(200 * 1024)

    sealed = envelope.seal(plaintext, ROW, "Grant")

    assert sealed["GrantParts"] == 4
    assert all(len(sealed[f"Grant{i}"]) <= PART_BYTES for i in range(4))
    assert envelope.open(sealed, ROW, "Grant") == plaintext


def test_leftover_parts_from_an_older_larger_seal_are_ignored(envelope: Envelope) -> None:
    large = envelope.seal(os.urandom(200 * 1024), ROW, "Grant")
    small = envelope.seal(SECRET, ROW, "Grant")

    assert envelope.open({**large, **small}, ROW, "Grant") == SECRET


def test_the_largest_plaintext_fits_and_a_larger_one_is_refused(envelope: Envelope) -> None:
    sealed = envelope.seal(b"x" * MAX_PLAINTEXT_BYTES, ROW, "Grant")
    stored = sum(len(v) for k, v in sealed.items() if isinstance(v, bytes))

    assert stored < 1024 * 1024 - 32 * 1024
    with pytest.raises(ValueError, match="exceeds"):
        envelope.seal(b"x" * (MAX_PLAINTEXT_BYTES + 1), ROW, "Grant")


def test_a_rotated_ring_opens_old_rows_and_marks_them_not_current(envelope: Envelope) -> None:
    old_row = envelope.seal(SECRET, ROW, "Grant")
    newer = Envelope(rotated(envelope.keyring))

    new_row = newer.seal(SECRET, ROW, "Grant")

    assert newer.open(old_row, ROW, "Grant") == SECRET
    assert not newer.is_current(old_row, "Grant")
    assert newer.is_current(new_row, "Grant")
    assert (new_row["GrantAesKey"], new_row["GrantFernetKey"]) == ("a2", "f2")


def test_only_a_newer_aes_version_makes_a_row_not_current(envelope: Envelope) -> None:
    ring = envelope.keyring
    sealed = envelope.seal(SECRET, ROW, "Grant")
    aes_only = KeyRing({**ring.aes_keys, "a2": os.urandom(32)}, "a2", ring.fernet_keys, "f1")

    assert envelope.is_current(sealed, "Grant")
    assert not Envelope(aes_only).is_current(sealed, "Grant")


def test_several_fernet_keys_in_one_version_all_decrypt() -> None:
    older, newer = fernet_key(), fernet_key()
    before = KeyRing({"a1": b"k" * 32}, "a1", {"f1": [older]}, "f1")
    after = KeyRing({"a1": b"k" * 32}, "a1", {"f1": [newer, older]}, "f1")
    sealed = Envelope(before).seal(SECRET, ROW, "Grant")

    assert Envelope(after).open(sealed, ROW, "Grant") == SECRET


def test_a_key_ring_with_an_aes_key_that_is_not_256_bits_is_refused() -> None:
    with pytest.raises(ValueError, match="AES-256"):
        KeyRing({"a1": b"k" * 16}, "a1", {"f1": [fernet_key()]}, "f1")


def test_a_key_ring_with_a_malformed_fernet_key_is_refused() -> None:
    with pytest.raises(ValueError, match="malformed") as caught:
        KeyRing({"a1": b"k" * 32}, "a1", {"f1": [b"short-key"]}, "f1")

    assert "short-key" not in str(caught.value)


def test_an_address_holding_the_separator_is_refused() -> None:
    with pytest.raises(ValueError, match="'\\|'"):
        RowAddress("oiaconnections", "a|b", "c")


def test_is_sealed_tells_rows_with_a_sealed_value(envelope: Envelope) -> None:
    assert is_sealed(envelope.seal(SECRET, ROW, "Grant"), "Grant")
    assert not is_sealed({"PartitionKey": "3f", "RowKey": "conn-abc"}, "Grant")
    assert not is_sealed({"PartitionKey": "3f", "GrantParts": None}, "Grant")


def test_a_key_ring_with_a_separator_in_a_version_is_refused() -> None:
    with pytest.raises(ValueError, match="'\\|'"):
        KeyRing({"a|1": b"k" * 32}, "a|1", {"f1": [fernet_key()]}, "f1")
