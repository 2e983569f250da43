"""Client-side field encryption: AES-256-GCM with envelope keys from a key provider.

A field marked `Annotated[T, Encrypted()]` is stored as one Binary attribute, an
*envelope*: the data key wrapped by the provider (AWS KMS, or a local master key), and the
value's JSON encrypted under that data key with AES-256-GCM. The associated data binds the
ciphertext to the item's type, its key attributes and the field's attribute name, so a
ciphertext copied into another item, or into another field of the same item, fails to
decrypt instead of reading as valid data.

Data keys are cached: one key encrypts at most `max_uses` values during at most `max_age`
seconds (random 96-bit nonces stay far below the 2**32 messages NIST SP 800-38D allows per
key), and unwrapped keys are kept for the same time so that reading a page of items costs
one provider call, not one per item. The envelope names the wrapping key, so items written
under a retired key still decrypt after a rotation while the provider can still unwrap it.

`cryptography` is imported when an encryptor is built, never at `import dynaorm`.
"""

from __future__ import annotations

import os
import struct
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from pydantic import BaseModel, TypeAdapter

from dynaorm.errors import DecryptionError, DefinitionError, ExpressionError, ItemEncodingError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from dynaorm._entity import EntityInfo

__all__ = [
    "DataKey",
    "Encrypted",
    "Encryptor",
    "KeyProvider",
    "KmsKeyProvider",
    "LocalKeyProvider",
    "associated_data",
    "check_encrypted",
    "encrypted_fields",
    "open_values",
    "refuse_encrypted_projection",
    "seal",
    "seal_values",
]

_FORMAT = 1
_NONCE_BYTES = 12
_KEY_BYTES = 32


@dataclass(frozen=True)
class Encrypted:
    """Field marker: `ssn: Annotated[str, Encrypted()]` stores the value encrypted.

    An encrypted field cannot be a key slot, an index slot, a `unique=` field or a
    condition or filter operand: the stored bytes are random, so nothing could compare
    or sort them.
    """


class DataKey(NamedTuple):
    """A data key in the clear and as wrapped by the provider under `key_id`."""

    key_id: str
    plaintext: bytes
    wrapped: bytes


class KeyProvider(Protocol):
    """Makes and unwraps data keys. `context` is bound to the wrapped key (KMS's
    encryption context): unwrapping with another context fails."""

    def generate_data_key(self, context: Mapping[str, str]) -> DataKey: ...

    def decrypt_data_key(
        self, key_id: str, wrapped: bytes, context: Mapping[str, str]
    ) -> bytes: ...


def _aesgcm(key: bytes) -> AESGCM:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: PLC0415 - `crypto` extra

    return AESGCM(key)


def _context_bytes(context: Mapping[str, str]) -> bytes:
    return associated_data(*(part for pair in sorted(context.items()) for part in pair))


class LocalKeyProvider:
    """Data keys wrapped with AES-256-GCM under local master keys, for tests and for
    deployments without KMS. `keys` maps a key id to 32 random bytes; `current` names
    the one new data keys are wrapped with (older ids stay for decrypting)."""

    def __init__(self, keys: Mapping[str, bytes], current: str) -> None:
        if current not in keys:
            raise ValueError(f"LocalKeyProvider: current key {current!r} is not among the keys")
        for key_id, key in keys.items():
            if len(key) != _KEY_BYTES:
                raise ValueError(
                    f"LocalKeyProvider: key {key_id!r} has {len(key)} bytes; "
                    f"AES-256 needs {_KEY_BYTES}"
                )
        self._keys = dict(keys)
        self.current = current

    def generate_data_key(self, context: Mapping[str, str]) -> DataKey:
        plaintext = os.urandom(_KEY_BYTES)
        nonce = os.urandom(_NONCE_BYTES)
        master = _aesgcm(self._keys[self.current])
        wrapped = nonce + master.encrypt(nonce, plaintext, _context_bytes(context))
        return DataKey(self.current, plaintext, wrapped)

    def decrypt_data_key(self, key_id: str, wrapped: bytes, context: Mapping[str, str]) -> bytes:
        key = self._keys.get(key_id)
        if key is None:
            raise DecryptionError(f"the local key {key_id!r} that wrapped this value is unknown")
        nonce, sealed = wrapped[:_NONCE_BYTES], wrapped[_NONCE_BYTES:]
        return bytes(_aesgcm(key).decrypt(nonce, sealed, _context_bytes(context)))


class KmsKeyProvider:
    """Data keys from AWS KMS `GenerateDataKey` (AES_256), unwrapped with `Decrypt`.

    `key_id` is a key id, ARN or alias. The botocore client is made on first use from the
    usual AWS environment, unless `client` is given. Rotating to a new KMS key: build the
    provider with the new `key_id`; values written under the old key still decrypt, since
    each envelope names its key and `Decrypt` is called with it.
    """

    def __init__(self, key_id: str, *, client: Any = None, region: str | None = None) -> None:
        self.key_id = key_id
        self._client = client
        self._region = region
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                import botocore.session  # noqa: PLC0415 - only KMS users need it

                self._client = botocore.session.get_session().create_client(
                    "kms", region_name=self._region
                )
            return self._client

    def generate_data_key(self, context: Mapping[str, str]) -> DataKey:
        response = self.client.generate_data_key(
            KeyId=self.key_id, KeySpec="AES_256", EncryptionContext=dict(context)
        )
        return DataKey(response["KeyId"], response["Plaintext"], response["CiphertextBlob"])

    def decrypt_data_key(self, key_id: str, wrapped: bytes, context: Mapping[str, str]) -> bytes:
        from botocore.exceptions import ClientError  # noqa: PLC0415 - only KMS users need it

        try:
            response = self.client.decrypt(
                CiphertextBlob=wrapped, KeyId=key_id, EncryptionContext=dict(context)
            )
        except ClientError as e:  # access denied, invalid ciphertext, disabled key
            raise DecryptionError(f"KMS refused to unwrap the data key of {key_id!r}: {e}") from e
        return bytes(response["Plaintext"])


def associated_data(*parts: str) -> bytes:
    """An unambiguous byte string of `parts`: each is length-prefixed UTF-8."""
    out = bytearray()
    for part in parts:
        data = part.encode("utf-8", "surrogatepass")
        out += struct.pack(">I", len(data)) + data
    return bytes(out)


class _Current:
    def __init__(self, key: DataKey, expires: float) -> None:
        self.key = key
        self.expires = expires
        self.uses = 0


class Encryptor:
    """Encrypts and decrypts field values for one table (the encryption `context`).

    Safe to share across threads. `max_age` seconds and `max_uses` values bound how long
    one data key encrypts; `max_cached` bounds the unwrapped keys kept for reading.
    """

    def __init__(
        self,
        provider: KeyProvider,
        *,
        context: Mapping[str, str] | None = None,
        max_age: float = 300.0,
        max_uses: int = 1 << 20,
        max_cached: int = 1000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_age <= 0 or max_uses <= 0 or max_cached <= 0:
            raise ValueError("Encryptor: max_age, max_uses and max_cached must be positive")
        self.provider = provider
        self.context = dict(context or {"dynaorm": "field-encryption"})
        self.max_age = max_age
        self.max_uses = max_uses
        self.max_cached = max_cached
        self._clock = clock
        self._lock = threading.Lock()
        self._current: _Current | None = None
        self._unwrapped: OrderedDict[tuple[str, bytes], tuple[bytes, float]] = OrderedDict()

    def _data_key(self) -> DataKey:
        now = self._clock()
        with self._lock:
            current = self._current
            if current is None or current.uses >= self.max_uses or now >= current.expires:
                current = _Current(
                    self.provider.generate_data_key(self.context), now + self.max_age
                )
                self._current = current
            current.uses += 1
            return current.key

    def _unwrap(self, key_id: str, wrapped: bytes) -> bytes:
        now = self._clock()
        slot = (key_id, wrapped)
        with self._lock:
            cached = self._unwrapped.get(slot)
            if cached is not None and now < cached[1]:
                self._unwrapped.move_to_end(slot)
                return cached[0]
        plaintext = self.provider.decrypt_data_key(key_id, wrapped, self.context)
        with self._lock:
            self._unwrapped[slot] = (plaintext, now + self.max_age)
            self._unwrapped.move_to_end(slot)
            while len(self._unwrapped) > self.max_cached:
                self._unwrapped.popitem(last=False)
        return plaintext

    def encrypt(self, plaintext: bytes, aad: bytes) -> bytes:
        """The envelope of `plaintext`, bound to `aad`."""
        key = self._data_key()
        key_id = key.key_id.encode("utf-8")
        nonce = os.urandom(_NONCE_BYTES)
        sealed = _aesgcm(key.plaintext).encrypt(nonce, plaintext, aad)
        header = struct.pack(">BH", _FORMAT, len(key_id)) + key_id
        return header + struct.pack(">I", len(key.wrapped)) + key.wrapped + nonce + sealed

    def decrypt(self, envelope: bytes, aad: bytes) -> bytes:
        """The plaintext of `envelope`; `DecryptionError` if it was not made for `aad`."""
        from cryptography.exceptions import InvalidTag  # noqa: PLC0415 - `crypto` extra

        try:
            version, id_length = struct.unpack_from(">BH", envelope, 0)
            if version != _FORMAT:
                raise DecryptionError(f"unknown envelope format {version}")
            offset = 3 + id_length
            key_id = envelope[3:offset].decode("utf-8")
            (wrapped_length,) = struct.unpack_from(">I", envelope, offset)
            offset += 4
            wrapped = envelope[offset : offset + wrapped_length]
            offset += wrapped_length
            nonce = envelope[offset : offset + _NONCE_BYTES]
            sealed = envelope[offset + _NONCE_BYTES :]
            if len(wrapped) != wrapped_length or len(nonce) != _NONCE_BYTES or not sealed:
                raise DecryptionError("the envelope is truncated")
        except (struct.error, UnicodeDecodeError) as e:
            raise DecryptionError(f"the envelope is malformed: {e}") from e
        try:
            key = self._unwrap(key_id, wrapped)
            return _aesgcm(key).decrypt(nonce, sealed, aad)
        except InvalidTag as e:
            raise DecryptionError(
                "the value does not authenticate: it was made for another item, field or "
                "key, or it was altered"
            ) from e


# -- entities ------------------------------------------------------------------------


def encrypted_fields(cls: type[BaseModel]) -> frozenset[str]:
    """The fields of a model declared `Annotated[..., Encrypted()]`."""
    return frozenset(
        name
        for name, field in cls.model_fields.items()
        if any(isinstance(m, Encrypted) for m in field.metadata)
    )


def check_encrypted(info: EntityInfo) -> None:
    """Refuse, at class definition, an encrypted field used where it must be compared."""
    roles: list[tuple[str, tuple[str, ...]]] = [
        ("a primary-key slot", info.pk.fields + info.sk.fields),
        *((f"a slot of index {name}", index.fields) for name, index in info.indexes.items()),
        *(("a unique= field", group) for group in info.unique),
        ("the version field", (info.version,) if info.version else ()),
        ("the TTL attribute", (info.ttl,) if info.ttl else ()),
    ]
    for role, fields in roles:
        for name in fields:
            if name in info.encrypted:
                raise DefinitionError(
                    f"{info.name}.{name} is Encrypted() and cannot be {role}: its stored "
                    "bytes are random, so nothing could compare, sort or find them",
                    entity=info.name,
                    field=name,
                )


def _adapter(info: EntityInfo, name: str) -> TypeAdapter[Any]:
    return _field_adapter(info.cls, name)


@lru_cache(maxsize=1024)
def _field_adapter(cls: type[BaseModel], name: str) -> TypeAdapter[Any]:
    # The values are valid already (the model checked them): the bare annotation is
    # enough to turn them into JSON and back, constraints are not re-applied.
    annotation: Any = cls.model_fields[name].annotation
    return TypeAdapter(annotation)


def _encryptor(info: EntityInfo, name: str) -> Encryptor:
    encryptor: Encryptor | None = info.table.encryptor
    if encryptor is None:
        raise ItemEncodingError(
            f"{info.name}.{name} is Encrypted() but table {info.table.name!r} has no key "
            "provider: pass Table(..., encryption=...) or call table.use_encryption(...)",
            entity=info.name,
            field=name,
        )
    return encryptor


def _field_aad(info: EntityInfo, keys: Mapping[str, str], attribute: str) -> bytes:
    table = info.table
    return associated_data(
        info.name,
        table.partition_key,
        keys[table.partition_key],
        table.sort_key,
        keys[table.sort_key],
        attribute,
    )


def seal(info: EntityInfo, name: str, value: Any, keys: Mapping[str, str]) -> bytes:
    """The envelope storing `value` of field `name` in the item with primary `keys`."""
    plaintext = _adapter(info, name).dump_json(value)
    return _encryptor(info, name).encrypt(plaintext, _field_aad(info, keys, info.attributes[name]))


def seal_values(
    info: EntityInfo, entity: BaseModel, values: dict[str, Any], keys: Mapping[str, str]
) -> None:
    """Replace the encrypted fields of `values` (a dump by attribute name) with envelopes."""
    for name in info.encrypted:
        attribute = info.attributes[name]
        if values.get(attribute) is not None:
            values[attribute] = seal(info, name, getattr(entity, name), keys)


def open_values(info: EntityInfo, values: dict[str, Any], keys: Mapping[str, str]) -> None:
    """Replace envelopes in `values` (decoded from an item) by the values they hold."""
    for name in info.encrypted:
        attribute = info.attributes[name]
        envelope = values.get(attribute)
        if envelope is None:
            continue
        if not isinstance(envelope, bytes):
            raise DecryptionError(
                f"{info.name}.{name} is Encrypted() but the item stores "
                f"{type(envelope).__name__}, not an envelope (written unencrypted?)",
                entity=info.name,
                key=(keys.get(info.table.partition_key), keys.get(info.table.sort_key)),
                field=name,
            )
        try:
            plaintext = _encryptor(info, name).decrypt(envelope, _field_aad(info, keys, attribute))
        except DecryptionError as e:
            e.entity, e.field = info.name, name
            e.key = (keys.get(info.table.partition_key), keys.get(info.table.sort_key))
            e.message = f"{info.name}.{name} at {e.key}: {e.message}"
            e.args = (e.message,)
            raise
        values[attribute] = _adapter(info, name).validate_json(plaintext)


def refuse_encrypted_projection(info: EntityInfo, paths: Iterable[Any]) -> None:
    """A projection returns stored attributes as they are: an encrypted one would come
    back as ciphertext, so naming it is refused before sending."""
    if not info.encrypted:
        return
    sealed = {info.attributes[name]: name for name in info.encrypted}
    for path in paths:
        root = path.segments[0] if hasattr(path, "segments") else path
        if root in sealed:
            raise ExpressionError(
                f"{info.name}.{sealed[root]} is Encrypted(): a projection would return its "
                "ciphertext; read the entity instead",
                entity=info.name,
                field=sealed[root],
            )
