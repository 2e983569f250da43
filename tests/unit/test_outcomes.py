"""The sans-I/O half of the write planner: a failed condition plus the stored item it
returned -> success, or the error that says what really failed. No transport here."""

from __future__ import annotations

import pytest

from dynaorm import Entity, Index, Table
from dynaorm._outcomes import single_outcome, single_request
from dynaorm._planner import Loaded, plan_delete, plan_put
from dynaorm._writes import Action
from dynaorm.errors import (
    ConditionFailed,
    StaleEntity,
    VersionConflict,
    WriteOutcomeUnknown,
)

ledger = Table("ledger")


class Account(Entity, table=ledger, pk="ACCOUNT#{account_id}", sk="A", version="version"):
    account_id: str
    owner: str
    balance: int = 0
    version: int = 0

    by_owner = Index(pk="OWNER#{owner}")


def _put(balance: int, version: int) -> Action:
    account = Account(account_id="a1", owner="ann", balance=balance, version=version)
    (action,) = plan_put(account, "ledger", None, create=False, loaded=None).actions
    return action


def _failed(item: dict[str, object] | None, retries: int) -> ConditionFailed:
    error = ConditionFailed("failed", operation="PutItem")
    error.stored, error.retries = item, retries
    return error


def test_a_put_asks_for_the_stored_item_when_its_condition_fails() -> None:
    operation, request = single_request(_put(5, 3))
    assert operation == "PutItem"
    assert request["ReturnValuesOnConditionCheckFailure"] == "ALL_OLD"
    assert request["Item"]["version"] == {"N": "4"}


def test_a_resent_put_that_finds_its_own_item_succeeded() -> None:
    action = _put(5, 3)
    assert (
        single_outcome(action, _failed(action.params["Item"], retries=1)) == (action.params["Item"])
    )


def test_the_same_item_on_a_first_attempt_is_another_writer_not_success() -> None:
    action = _put(5, 3)  # never resent: the identical item was stored by someone else
    assert isinstance(single_outcome(action, _failed(action.params["Item"], 0)), VersionConflict)


def test_a_resent_put_that_finds_a_later_version_cannot_tell() -> None:
    action = _put(5, 3)
    later = {**action.params["Item"], "version": {"N": "6"}}
    outcome = single_outcome(action, _failed(later, retries=2))
    assert isinstance(outcome, WriteOutcomeUnknown)
    assert not isinstance(outcome, VersionConflict)


def test_a_resent_put_beaten_from_the_same_version_is_a_version_conflict() -> None:
    action = _put(5, 3)
    theirs = {**action.params["Item"], "balance": {"N": "7"}}  # version 4, not ours
    assert isinstance(single_outcome(action, _failed(theirs, retries=1)), VersionConflict)


def test_a_delete_that_finds_nothing_is_done() -> None:
    key = Account.key(account_id="a1")
    basis = Loaded(key, {}, {}, 3)
    (action,) = plan_delete(key, "ledger", None, basis).actions
    assert single_outcome(action, _failed(None, retries=0)) is None


@pytest.mark.parametrize("stored_owner", ["bob", None])
def test_a_matching_version_with_moved_values_is_stale_not_a_conflict(
    stored_owner: str | None,
) -> None:
    key = Account.key(account_id="a1")
    action = _put(5, 3)
    relied = action._replace(
        purpose=action.purpose._replace(
            expect=action.purpose.expect._replace(relied={"owner": "ann"})  # type: ignore[union-attr]
        )
    )
    stored = {**action.params["Item"], "version": {"N": "3"}}
    stored.pop("owner")
    if stored_owner is not None:
        stored["owner"] = {"S": stored_owner}
    outcome = single_outcome(relied, _failed(stored, retries=0))
    assert isinstance(outcome, StaleEntity)
    assert outcome.fields == {"owner": ("ann", stored_owner)}
    assert outcome.key == (key.pk, key.sk)
