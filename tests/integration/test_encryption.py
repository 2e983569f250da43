"""Encrypted attributes on a real backend: stored as envelopes, bound to their item."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Annotated, Any

import pytest
from pydantic import BaseModel

from dynaorm import Encrypted, Entity, Index, LocalKeyProvider, Session, Table
from dynaorm.errors import DecryptionError, DefinitionError, ExpressionError, ItemEncodingError
from tests.dynamodb_local import Backend

KEYS = {"2026-01": bytes(range(32)), "2026-12": bytes(range(1, 33))}
vault = Table("vault", encryption=LocalKeyProvider(KEYS, current="2026-12"))


class Address(BaseModel):
    street: str
    city: str


class Patient(Entity, table=vault, pk="PATIENT#{patient_id}", sk="PROFILE"):
    patient_id: str
    name: str
    ssn: Annotated[str, Encrypted()]
    address: Annotated[Address, Encrypted()]
    allergies: Annotated[set[str], Encrypted()] = set()
    born: Annotated[dt.date | None, Encrypted()] = None
    notes: Annotated[str, Encrypted()] = ""
    ward: str | None = None

    by_ward = Index(pk="WARD#{ward}")


def patient(patient_id: str = "p1", **changes: Any) -> Patient:
    values: dict[str, Any] = {
        "patient_id": patient_id,
        "name": "Ann",
        "ssn": "123-45-6789",
        "address": Address(street="1 Main St", city="Springfield"),
        "allergies": {"penicillin"},
        "born": dt.date(1990, 5, 17),
        "ward": "W1",
    }
    values.update(changes)
    return Patient(**values)


@pytest.fixture
def session(dynamodb_backend: Backend) -> Iterator[Session]:
    prefix = f"enc{dynamodb_backend.run_id}_"
    session = dynamodb_backend.session(table_prefix=prefix)
    session.create_table(vault, exists_ok=True)
    yield session
    session.delete_table(vault)
    session.transport.close()


def raw(session: Session, pk: str, sk: str = "PROFILE") -> dict[str, Any]:
    response = session.transport.call(
        "GetItem",
        {"TableName": session.table_name(vault), "Key": {"PK": {"S": pk}, "SK": {"S": sk}}},
    )
    item: dict[str, Any] = response["Item"]
    return item


def test_encrypted_fields_are_stored_as_envelopes_and_read_back(session: Session) -> None:
    original = patient()
    session.put(original)
    item = raw(session, "PATIENT#p1")
    for attribute in ("ssn", "address", "allergies", "born", "notes"):
        assert set(item[attribute]) == {"B"}, attribute
    stored = repr(item)
    for secret in ("123-45-6789", "Main St", "Springfield", "penicillin", "1990"):
        assert secret not in stored
    assert item["name"] == {"S": "Ann"}  # other fields stay queryable
    assert session.get(Patient, patient_id="p1") == original
    assert session.query(Patient.by_ward, ward="W1").all() == [original]


def test_none_stays_none_and_is_not_encrypted(session: Session) -> None:
    session.put(patient(born=None))
    assert "born" not in raw(session, "PATIENT#p1")
    loaded = session.get(Patient, patient_id="p1")
    assert loaded is not None and loaded.born is None


def test_a_ciphertext_copied_into_another_item_does_not_decrypt(session: Session) -> None:
    session.put(patient("p1", ssn="111-11-1111"))
    session.put(patient("p2", ssn="222-22-2222"))
    stolen = raw(session, "PATIENT#p1")["ssn"]
    session.transport.call(
        "UpdateItem",
        {
            "TableName": session.table_name(vault),
            "Key": {"PK": {"S": "PATIENT#p2"}, "SK": {"S": "PROFILE"}},
            "UpdateExpression": "SET ssn = :v",
            "ExpressionAttributeValues": {":v": stolen},
        },
    )
    with pytest.raises(DecryptionError) as caught:
        session.get(Patient, patient_id="p2")
    assert caught.value.entity == "Patient" and caught.value.field == "ssn"
    assert "PATIENT#p2" in str(caught.value)


def test_a_ciphertext_swapped_between_fields_does_not_decrypt(session: Session) -> None:
    session.put(patient(notes="x"))
    item = raw(session, "PATIENT#p1")
    session.transport.call(
        "UpdateItem",
        {
            "TableName": session.table_name(vault),
            "Key": {"PK": {"S": "PATIENT#p1"}, "SK": {"S": "PROFILE"}},
            "UpdateExpression": "SET notes = :v",
            "ExpressionAttributeValues": {":v": item["ssn"]},
        },
    )
    with pytest.raises(DecryptionError, match=r"Patient\.notes"):
        session.get(Patient, patient_id="p1")


def test_items_written_before_a_key_rotation_still_decrypt(session: Session) -> None:
    vault.use_encryption(LocalKeyProvider(KEYS, current="2026-01"))
    try:
        session.put(patient("old"))
    finally:
        vault.use_encryption(LocalKeyProvider(KEYS, current="2026-12"))
    session.put(patient("new"))
    assert session.get(Patient, patient_id="old") == patient("old")
    assert session.get(Patient, patient_id="new") == patient("new")


def test_a_value_left_unencrypted_is_refused_on_read(session: Session) -> None:
    session.put(patient())
    session.transport.call(
        "UpdateItem",
        {
            "TableName": session.table_name(vault),
            "Key": {"PK": {"S": "PATIENT#p1"}, "SK": {"S": "PROFILE"}},
            "UpdateExpression": "SET ssn = :v",
            "ExpressionAttributeValues": {":v": {"S": "123-45-6789"}},
        },
    )
    with pytest.raises(DecryptionError, match="not an envelope"):
        session.get(Patient, patient_id="p1")


def test_a_table_without_a_key_provider_refuses_before_sending(session: Session) -> None:
    bare = Table("bare")

    class Secret(Entity, table=bare, pk="S#{secret_id}", sk="S"):
        secret_id: str
        value: Annotated[str, Encrypted()]

    sent: list[str] = []
    session.transport.add_listener(lambda op, *_: sent.append(op))
    with pytest.raises(ItemEncodingError, match=r"Secret\.value is Encrypted\(\).*no key provider"):
        session.put(Secret(secret_id="s", value="v"))
    assert sent == []


@pytest.mark.parametrize(
    ("options", "index", "role"),
    [
        ({"pk": "S#{value}", "sk": "S"}, None, "a primary-key slot"),
        ({"pk": "S#{secret_id}", "sk": "S"}, Index(pk="V#{value}"), "a slot of index by_value"),
        ({"pk": "S#{secret_id}", "sk": "S", "unique": ("value",)}, None, "a unique= field"),
    ],
)
def test_encrypted_fields_cannot_be_compared_slots(
    options: dict[str, Any], index: Index | None, role: str
) -> None:
    namespace: dict[str, Any] = {
        "__annotations__": {"secret_id": str, "value": Annotated[str, Encrypted()]}
    }
    if index is not None:
        namespace["by_value"] = index
    with pytest.raises(
        DefinitionError, match=rf"Secret\.value is Encrypted\(\) and cannot be {role}"
    ):
        type(Entity)("Secret", (Entity,), namespace, table=Table("slots"), **options)


def test_update_encrypts_what_it_sets(session: Session) -> None:
    session.put(patient())
    updated = session.update(Patient.key(patient_id="p1"), set={"ssn": "999-99-9999"})
    assert updated.ssn == "999-99-9999"
    assert "999-99-9999" not in repr(raw(session, "PATIENT#p1"))
    loaded = session.get(Patient, patient_id="p1")
    assert loaded is not None and loaded.ssn == "999-99-9999"


def test_unit_of_work_encrypts_changed_fields(session: Session) -> None:
    session.put(patient())
    with session.unit_of_work() as uow:
        loaded = uow.get(Patient, patient_id="p1")
        assert loaded is not None
        loaded.ssn = "555-55-5555"
        loaded.address = Address(street="2 High St", city="Shelbyville")
        uow.add(patient("p2", ssn="777-77-7777"))
    stored = repr(raw(session, "PATIENT#p1")) + repr(raw(session, "PATIENT#p2"))
    for secret in ("555-55-5555", "High St", "777-77-7777"):
        assert secret not in stored
    loaded = session.get(Patient, patient_id="p1")
    assert loaded is not None and loaded.address.city == "Shelbyville"


@pytest.mark.parametrize(
    "change",
    [
        {"add": {"allergies": {"latex"}}},
        {"delete": {"allergies": {"penicillin"}}},
        {"set": {Patient.address.city: "Elsewhere"}},
    ],
    ids=["add", "delete", "nested-path"],
)
def test_updates_that_cannot_work_on_ciphertext_are_refused(
    session: Session, change: dict[str, Any]
) -> None:
    session.put(patient())
    with pytest.raises(
        ExpressionError, match=r"Patient\.(allergies|address)(\.city)? is Encrypted"
    ):
        session.update(Patient.key(patient_id="p1"), **change)


@pytest.mark.parametrize(
    "condition",
    [
        lambda: Patient.ssn == "123-45-6789",
        lambda: Patient.ssn.begins_with("123"),
        lambda: Patient.address.city == "Springfield",
    ],
    ids=["equals", "begins_with", "nested"],
)
def test_encrypted_fields_are_refused_as_condition_and_filter_operands(
    session: Session, condition: Any
) -> None:
    with pytest.raises(ExpressionError, match="is Encrypted"):
        session.query(Patient.by_ward, ward="W1").where(condition()).all()
    with pytest.raises(ExpressionError, match="is Encrypted"):
        session.put(patient(), condition=condition())


def test_existence_checks_on_encrypted_fields_are_allowed(session: Session) -> None:
    session.put(patient(born=None))
    found = session.query(Patient.by_ward, ward="W1").where(Patient.born.not_exists()).all()
    assert [p.patient_id for p in found] == ["p1"]


def test_projections_of_encrypted_fields_are_refused_before_sending(session: Session) -> None:
    with pytest.raises(ExpressionError, match=r"Patient\.ssn is Encrypted\(\)"):
        session.get(Patient, patient_id="p1", projection=["name", "ssn"])
    with pytest.raises(ExpressionError, match=r"Patient\.address is Encrypted\(\)"):
        session.query(Patient.by_ward, ward="W1").project(Patient.address.city)
    session.put(patient())
    assert session.get(Patient, patient_id="p1", projection=["name"]) == {"name": "Ann"}


def test_batch_write_and_unit_of_work_update_encrypt_too(session: Session) -> None:
    session.batch_write(put=[patient(f"b{i}", ssn=f"00{i}-00-0000") for i in range(3)])
    with session.unit_of_work() as uow:
        uow.update(Patient.key(patient_id="b0"), set={"ssn": "444-44-4444"})
    stored = "".join(repr(raw(session, f"PATIENT#b{i}")) for i in range(3))
    for secret in ("000-00-0000", "001-00-0000", "002-00-0000", "444-44-4444"):
        assert secret not in stored
    found = session.batch_get([Patient.key(patient_id=f"b{i}") for i in range(3)])
    assert sorted(p.ssn for p in found if isinstance(p, Patient)) == [
        "001-00-0000",
        "002-00-0000",
        "444-44-4444",
    ]
