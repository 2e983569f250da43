"""Envelope encryption of field values: AES-256-GCM, data-key cache, rotation, KMS."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dynaorm._crypto import (
    DataKey,
    Encryptor,
    KmsKeyProvider,
    LocalKeyProvider,
    associated_data,
)
from dynaorm.errors import DecryptionError

MASTER = {"k1": bytes(range(32)), "k2": bytes(range(32, 64))}


class Counting:
    """A provider that counts how often it is asked for and to unwrap data keys."""

    def __init__(self, inner: LocalKeyProvider) -> None:
        self.inner = inner
        self.generated = 0
        self.unwrapped = 0

    def generate_data_key(self, context: Mapping[str, str]) -> DataKey:
        self.generated += 1
        return self.inner.generate_data_key(context)

    def decrypt_data_key(self, key_id: str, wrapped: bytes, context: Mapping[str, str]) -> bytes:
        self.unwrapped += 1
        return self.inner.decrypt_data_key(key_id, wrapped, context)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


AAD = associated_data("User", "PK", "USER#u1", "SK", "PROFILE", "ssn")


@given(plaintext=st.binary(max_size=2048), parts=st.lists(st.text(max_size=8), max_size=6))
def test_round_trip_of_any_value_under_any_associated_data(
    plaintext: bytes, parts: list[str]
) -> None:
    encryptor = Encryptor(LocalKeyProvider(MASTER, "k1"))
    aad = associated_data(*parts)
    envelope = encryptor.encrypt(plaintext, aad)
    if len(plaintext) >= 16:  # shorter strings can occur in random bytes by chance
        assert plaintext not in envelope
    assert encryptor.decrypt(envelope, aad) == plaintext


@given(a=st.lists(st.text(max_size=4), max_size=4), b=st.lists(st.text(max_size=4), max_size=4))
def test_associated_data_is_unambiguous(a: list[str], b: list[str]) -> None:
    assert (associated_data(*a) == associated_data(*b)) == (a == b)


@pytest.mark.parametrize(
    "other",
    [
        associated_data("User", "PK", "USER#u2", "SK", "PROFILE", "ssn"),  # another item
        associated_data("User", "PK", "USER#u1", "SK", "PROFILE", "tax_id"),  # another field
        associated_data("Admin", "PK", "USER#u1", "SK", "PROFILE", "ssn"),  # another type
    ],
)
def test_a_ciphertext_moved_elsewhere_does_not_decrypt(other: bytes) -> None:
    encryptor = Encryptor(LocalKeyProvider(MASTER, "k1"))
    envelope = encryptor.encrypt(b"123-45-6789", AAD)
    with pytest.raises(DecryptionError, match="does not authenticate"):
        encryptor.decrypt(envelope, other)


def test_every_altered_byte_is_detected() -> None:
    encryptor = Encryptor(LocalKeyProvider(MASTER, "k1"))
    envelope = encryptor.encrypt(b"secret", AAD)
    for i in range(len(envelope)):
        altered = bytearray(envelope)
        altered[i] ^= 0x01
        with pytest.raises(DecryptionError):
            encryptor.decrypt(bytes(altered), AAD)


@pytest.mark.parametrize("cut", [0, 1, 3, 10, 60])
def test_truncated_envelopes_are_refused(cut: int) -> None:
    encryptor = Encryptor(LocalKeyProvider(MASTER, "k1"))
    envelope = encryptor.encrypt(b"secret", AAD)
    with pytest.raises(DecryptionError):
        encryptor.decrypt(envelope[:cut], AAD)


def test_items_written_under_an_old_master_key_decrypt_after_rotation() -> None:
    old = Encryptor(LocalKeyProvider(MASTER, "k1")).encrypt(b"before", AAD)
    rotated = Encryptor(LocalKeyProvider(MASTER, "k2"))
    new = rotated.encrypt(b"after", AAD)
    assert rotated.decrypt(old, AAD) == b"before"
    assert rotated.decrypt(new, AAD) == b"after"
    retired = Encryptor(LocalKeyProvider({"k2": MASTER["k2"]}, "k2"))
    with pytest.raises(DecryptionError, match=r"'k1'.*unknown"):
        retired.decrypt(old, AAD)


def test_a_data_key_encrypts_at_most_max_uses_values() -> None:
    provider = Counting(LocalKeyProvider(MASTER, "k1"))
    encryptor = Encryptor(provider, max_uses=3)
    envelopes = [encryptor.encrypt(b"x", AAD) for _ in range(7)]
    assert provider.generated == 3  # 3 + 3 + 1
    assert all(encryptor.decrypt(e, AAD) == b"x" for e in envelopes)


def test_a_data_key_expires_after_max_age_and_so_do_unwrapped_keys() -> None:
    provider = Counting(LocalKeyProvider(MASTER, "k1"))
    clock = Clock()
    writer = Encryptor(provider, max_age=10.0, clock=clock)
    first = writer.encrypt(b"a", AAD)
    clock.now = 9.9
    writer.encrypt(b"b", AAD)
    assert provider.generated == 1
    clock.now = 10.0
    writer.encrypt(b"c", AAD)
    assert provider.generated == 2

    reader = Encryptor(provider, max_age=10.0, clock=clock)
    for _ in range(5):
        reader.decrypt(first, AAD)
    assert provider.unwrapped == 1  # one provider call for a page of items
    clock.now = 20.0
    reader.decrypt(first, AAD)
    assert provider.unwrapped == 2


def test_the_unwrapped_key_cache_is_bounded() -> None:
    provider = Counting(LocalKeyProvider(MASTER, "k1"))
    writer = Encryptor(provider, max_uses=1)
    envelopes = [writer.encrypt(b"v", AAD) for _ in range(4)]
    reader = Encryptor(provider, max_cached=2)
    for envelope in envelopes + envelopes:
        reader.decrypt(envelope, AAD)
    assert provider.unwrapped == 8  # each of 4 keys evicted before it came round again


def test_data_keys_are_bound_to_the_encryption_context() -> None:
    provider = LocalKeyProvider(MASTER, "k1")
    envelope = Encryptor(provider, context={"table": "app"}).encrypt(b"v", AAD)
    with pytest.raises(DecryptionError):
        Encryptor(provider, context={"table": "other"}).decrypt(envelope, AAD)


@pytest.mark.parametrize(
    ("keys", "current", "message"),
    [
        ({"k1": b"short"}, "k1", "has 5 bytes"),
        (MASTER, "k9", "not among the keys"),
    ],
)
def test_local_provider_refuses_bad_keys(
    keys: dict[str, bytes], current: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        LocalKeyProvider(keys, current)


@pytest.fixture
def kms() -> Iterator[Any]:
    moto = pytest.importorskip("moto")
    import botocore.session  # noqa: PLC0415 - after moto is known to be there

    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        with moto.mock_aws():
            yield botocore.session.get_session().create_client("kms", region_name="us-east-1")
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def test_kms_envelopes_round_trip_and_survive_key_rotation(kms: Any) -> None:
    old_key = kms.create_key()["KeyMetadata"]["Arn"]
    new_key = kms.create_key()["KeyMetadata"]["Arn"]
    old = Encryptor(KmsKeyProvider(old_key, client=kms)).encrypt(b"before", AAD)
    rotated = Encryptor(KmsKeyProvider(new_key, client=kms))
    assert rotated.decrypt(rotated.encrypt(b"after", AAD), AAD) == b"after"
    assert rotated.decrypt(old, AAD) == b"before"


def test_kms_refusing_to_unwrap_is_a_decryption_error(kms: Any) -> None:
    key = kms.create_key()["KeyMetadata"]["Arn"]
    envelope = Encryptor(KmsKeyProvider(key, client=kms), context={"t": "a"}).encrypt(b"v", AAD)
    with pytest.raises(DecryptionError, match="KMS refused"):
        Encryptor(KmsKeyProvider(key, client=kms), context={"t": "b"}).decrypt(envelope, AAD)
