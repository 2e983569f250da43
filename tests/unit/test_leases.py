"""Lease items of a shared backfill: the exact requests, the internal key space, status."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dynaorm import Table
from dynaorm._keys import KeyTemplate
from dynaorm._leases import (
    INTERNAL_KEY_PREFIX,
    Lease,
    RunInfo,
    checkpoint_request,
    claim_request,
    lease_from_item,
    partition_of,
    release_request,
)
from dynaorm._workers import RunStatus, status_lines
from dynaorm.errors import DefinitionError, KeyEncodingError, KeyTemplateError
from tests.property.test_key_properties import ANNOTATIONS, ROUND_TRIP, STRATEGIES, template

app = Table("app")
KEY = {"PK": {"S": "!dynaorm#migrate#r1"}, "SK": {"S": "segment#0000003"}}


def test_a_first_claim_creates_the_lease_only_if_nobody_did() -> None:
    request, lease = claim_request(app, "prod_app", "r1", 3, None, "w1", 61_000)

    assert request == {
        "TableName": "prod_app",
        "Key": KEY,
        "UpdateExpression": "SET #state = :leased, #owner = :me, #until = :until, "
        "#segment = :segment, #type = :type ADD #claims :one",
        "ConditionExpression": "attribute_not_exists(#pk)",
        "ExpressionAttributeNames": {
            "#state": "state",
            "#owner": "owner",
            "#until": "until",
            "#claims": "claims",
            "#segment": "segment",
            "#type": "_type",
            "#pk": "PK",
        },
        "ExpressionAttributeValues": {
            ":leased": {"S": "leased"},
            ":me": {"S": "w1"},
            ":until": {"N": "61000"},
            ":one": {"N": "1"},
            ":segment": {"N": "3"},
            ":type": {"S": "dynaorm.migrate"},
        },
    }
    assert lease == Lease(3, "leased", "w1", 61_000, 1, None)


def test_a_takeover_is_conditioned_on_the_old_holder_and_expiry() -> None:
    expired = Lease(3, "leased", "w1", 61_000, 1, {"PK": {"S": "A"}}, scanned=9, updated=4)

    request, lease = claim_request(app, "prod_app", "r1", 3, expired, "w2", 99_000)

    assert request["ConditionExpression"] == (
        "#owner = :old_owner AND #until = :old_until AND #state <> :done"
    )
    values = request["ExpressionAttributeValues"]
    assert (values[":old_owner"], values[":old_until"]) == ({"S": "w1"}, {"N": "61000"})
    assert values[":me"] == {"S": "w2"} and values[":done"] == {"S": "done"}
    assert "#pk" not in request["ExpressionAttributeNames"]
    # The new holder resumes at the saved position with the saved counts.
    assert lease == Lease(3, "leased", "w2", 99_000, 2, {"PK": {"S": "A"}}, 9, 4)


def test_checkpoints_and_releases_are_fenced_by_the_claim_count() -> None:
    lease = Lease(3, "leased", "w2", 99_000, 2, {"PK": {"S": "A#1"}}, 12, 5)

    saved = checkpoint_request(app, "prod_app", "r1", lease, until_ms=120_000)
    done = checkpoint_request(app, "prod_app", "r1", lease, until_ms=120_000, done=True)
    released = release_request(app, "prod_app", "r1", lease)

    fence = "#owner = :me AND #claims = :claims AND #state = :leased"
    assert saved == {
        "TableName": "prod_app",
        "Key": KEY,
        "UpdateExpression": "SET #until = :until, #scanned = :scanned, #updated = :updated, "
        "#position = :position",
        "ConditionExpression": fence,
        "ExpressionAttributeNames": {
            "#owner": "owner",
            "#claims": "claims",
            "#state": "state",
            "#until": "until",
            "#scanned": "scanned",
            "#updated": "updated",
            "#position": "position",
        },
        "ExpressionAttributeValues": {
            ":me": {"S": "w2"},
            ":claims": {"N": "2"},
            ":leased": {"S": "leased"},
            ":until": {"N": "120000"},
            ":scanned": {"N": "12"},
            ":updated": {"N": "5"},
            ":position": {"S": '{"PK": {"S": "A#1"}}'},
        },
    }
    assert done["UpdateExpression"] == (
        "SET #until = :until, #scanned = :scanned, #updated = :updated, #state = :done "
        "REMOVE #position"
    )
    assert done["ConditionExpression"] == released["ConditionExpression"] == fence
    assert released["UpdateExpression"] == "SET #state = :released, #until = :zero"


def test_a_lease_item_reads_back_as_written() -> None:
    item = {
        **KEY,
        "_type": {"S": "dynaorm.migrate"},
        "segment": {"N": "3"},
        "state": {"S": "leased"},
        "owner": {"S": "w2"},
        "until": {"N": "99000"},
        "claims": {"N": "2"},
        "position": {"S": '{"PK": {"S": "A#1"}}'},
        "scanned": {"N": "12"},
        "updated": {"N": "5"},
    }

    assert lease_from_item(item) == Lease(3, "leased", "w2", 99_000, 2, {"PK": {"S": "A#1"}}, 12, 5)
    assert not lease_from_item(item).claimable(98_999)
    assert lease_from_item(item).claimable(99_001)


@pytest.mark.parametrize("run", ["", "a#b", "x y", "-lead", "é", "r" * 129])
def test_run_ids_are_plain_names(run: str) -> None:
    with pytest.raises(DefinitionError, match="migrate run id"):
        partition_of(run)


@given(st.sampled_from(ROUND_TRIP), st.data())
def test_no_entity_key_enters_the_internal_key_space(source: str, data: st.DataObject) -> None:
    """Every encoded slot keeps above '#' and literals may not hold '!': no key a template
    encodes can start with the internal prefix (or hold its '!' anywhere)."""
    t = template(source)
    values = {name: data.draw(STRATEGIES[name], label=name) for name in t.fields}
    try:
        key = t.encode(values)
    except KeyEncodingError:
        return
    assert "!" not in key and not key.startswith(INTERNAL_KEY_PREFIX)


def test_a_template_cannot_spell_the_internal_prefix() -> None:
    with pytest.raises(KeyTemplateError, match="at or below"):
        KeyTemplate.parse(
            "!dynaorm#migrate#{s}", ANNOTATIONS, entity="E", role="pk", max_bytes=2048
        )


def test_status_lines_show_each_segment() -> None:
    info = RunInfo("r1", "prod_app", "f00d", 4)
    status = RunStatus(
        "r1",
        info,
        {
            0: Lease(0, "done", "w1", 50_000, 1, None, 30, 20),
            1: Lease(1, "leased", "w2", 1_700_000_090_000, 1, {"PK": {"S": "A"}}, 9, 3),
            2: Lease(2, "leased", "w3", 1_700_000_000_000, 2, None, 0, 0),
        },
    )

    lines = status_lines(status, now_ms=1_700_000_030_000)

    assert lines == [
        "run r1 on prod_app: 4 segments, 1 done, 1 expired, 1 leased, 1 unclaimed; "
        "39 items scanned, 23 updated",
        "SEGMENT  STATE      OWNER  SCANNED  UPDATED  LEASE EXPIRES",
        "0        done       w1     30       20       -",
        "1        leased     w2     9        3        2023-11-14T22:14:50Z (in 60s)",
        "2        expired    w3     0        0        2023-11-14T22:13:20Z (expired 30s ago)",
        "3        unclaimed  -      0        0        -",
    ]
    assert not status.finished
