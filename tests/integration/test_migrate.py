"""Migrating a populated table: a new index, TTL, backfill, resumption, concurrency, CLI."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from dynaorm import Entity, Index, Session, Table
from dynaorm._backfill import BackfillCounts, backfill
from dynaorm._compiler import schema_of
from dynaorm._migrate import (
    LiveTable,
    describe_live,
    diff_table,
    gsi_create_request,
    migrate,
)
from dynaorm.cli import main
from dynaorm.errors import CheckpointMismatch, MigrationError

from .conftest import Recorder

# Version 1 of the model, as the table was created and filled.
shop_v1 = Table("shop")


class ProductV1(Entity, table=shop_v1, pk="PRODUCT#{sku}", sk="PRODUCT", type_name="Product"):
    sku: str
    name: str
    category: str | None = None


# Version 2: the same physical table, with a new access pattern and TTL.
shop_v2 = Table("shop", ttl="expires_at")


class Product(Entity, table=shop_v2, pk="PRODUCT#{sku}", sk="PRODUCT"):
    sku: str
    name: str
    category: str | None = None
    expires_at: datetime | None = None

    by_category = Index(pk="CATEGORY#{category}", sk="{sku}")  # sparse without a category


# Version 3 wants the same GSI with another projection: migrate must refuse.
shop_v3 = Table("shop")


class ProductV3(Entity, table=shop_v3, pk="PRODUCT#{sku}", sk="PRODUCT", type_name="Product"):
    sku: str
    name: str
    category: str | None = None

    # Pinned: left to the rule, a KEYS_ONLY index would go to its own GSI (GSIKeys1).
    by_category = Index(pk="CATEGORY#{category}", sk="{sku}", gsi="GSI1", projection="KEYS_ONLY")


CATEGORIES = ("tools", "toys", None)
WRITES = {"UpdateItem", "UpdateTable", "UpdateTimeToLive", "PutItem", "DeleteItem"}


@pytest.fixture
def shop(session: Session) -> Iterator[list[ProductV1]]:
    """The v1 table with 30 products (10 without a category) and one foreign item."""
    session.create_table(shop_v1)
    products = [
        ProductV1(sku=f"p{i:02}", name=f"product {i}", category=CATEGORIES[i % 3])
        for i in range(30)
    ]
    session.batch_write(put=products)
    foreign = {"PK": {"S": "OTHER#1"}, "SK": {"S": "X"}, "_type": {"S": "Invoice"}}
    session._call("PutItem", {"TableName": session.table_name(shop_v1), "Item": foreign})
    yield products
    session.delete_table(shop_v1)


def _raw(session: Session, sku: str) -> dict[str, Any]:
    key = {"PK": {"S": f"PRODUCT#{sku}"}, "SK": {"S": "PRODUCT"}}
    request = {"TableName": session.table_name(shop_v2), "Key": key, "ConsistentRead": True}
    item: dict[str, Any] = session._call("GetItem", request)["Item"]
    return item


def test_migrate_makes_the_new_access_pattern_return_every_old_item(
    session: Session, shop: list[ProductV1]
) -> None:
    report = migrate(session, shop_v2, page_size=7, segments=2)

    assert report.created_gsis == ["GSI1"]
    assert report.ttl_enabled
    assert report.backfill.pending == {"Product": 20}
    assert report.backfill.scanned == 31
    assert (report.backfill.current, report.backfill.skipped) == (10, 1)
    for category in ("tools", "toys"):
        found = session.query(Product.by_category, category=category).all()
        expected = sorted(p.sku for p in shop if p.category == category)
        assert [p.sku for p in found] == expected
    sparse = _raw(session, "p02")
    assert "GSI1PK" not in sparse and "GSI1SK" not in sparse
    assert diff_table(schema_of(shop_v2), describe_live(session, shop_v2)).in_sync


def test_a_second_run_changes_nothing(
    session: Session, shop: list[ProductV1], recorder: Recorder
) -> None:
    migrate(session, shop_v2)
    recorder.clear()

    again = migrate(session, shop_v2)

    assert WRITES.isdisjoint(recorder.operations())
    assert again.created_gsis == [] and not again.ttl_enabled
    assert again.backfill.pending == {} and again.backfill.current == 30


def test_dry_run_reports_and_writes_nothing(
    session: Session, shop: list[ProductV1], recorder: Recorder, tmp_path: Path
) -> None:
    checkpoint = tmp_path / "progress.json"
    report = migrate(session, shop_v2, dry_run=True, checkpoint=checkpoint)

    assert set(recorder.operations()) <= {"DescribeTable", "DescribeTimeToLive", "Scan"}
    assert not checkpoint.exists()
    assert [g.name for g in report.diff.missing_gsis] == ["GSI1"]
    assert report.diff.enable_ttl
    assert report.backfill.pending == {"Product": 20}
    assert "GSI1PK" not in _raw(session, "p00")


def _inject_before_first_update(
    session: Session, monkeypatch: pytest.MonkeyPatch, concurrent: dict[str, Any], times: int
) -> list[int]:
    """Send `concurrent` (an UpdateItem) just before the backfill's UpdateItems."""
    original = session.transport.call
    sent = [0]

    def call(operation: str, params: dict[str, Any], **context: Any) -> dict[str, Any]:
        if operation == "UpdateItem" and params["Key"] == concurrent["Key"] and sent[0] < times:
            sent[0] += 1
            request = dict(concurrent)
            request["ExpressionAttributeValues"] = {":c": {"S": f"garden{sent[0]}"}}
            original("UpdateItem", request)
        return original(operation, params, **context)

    monkeypatch.setattr(session.transport, "call", call)
    return sent


def _category_change(session: Session, sku: str) -> dict[str, Any]:
    """What an old version of the service would send: the field, not the derived key."""
    return {
        "TableName": session.table_name(shop_v2),
        "Key": {"PK": {"S": f"PRODUCT#{sku}"}, "SK": {"S": "PRODUCT"}},
        "UpdateExpression": "SET #c = :c, #n = :c",
        "ExpressionAttributeNames": {"#c": "category", "#n": "name"},
    }


def test_a_concurrent_write_during_backfill_is_not_overwritten(
    session: Session, shop: list[ProductV1], monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = _inject_before_first_update(session, monkeypatch, _category_change(session, "p01"), 1)

    report = migrate(session, shop_v2)

    assert sent == [1]
    assert report.backfill.retried == 1 and report.complete
    stored = _raw(session, "p01")
    assert stored["category"] == {"S": "garden1"} and stored["name"] == {"S": "garden1"}
    assert stored["GSI1PK"] == {"S": "CATEGORY#garden1"}
    assert [p.sku for p in session.query(Product.by_category, category="garden1")] == ["p01"]
    assert "p01" not in [p.sku for p in session.query(Product.by_category, category="toys")]


def test_an_item_that_keeps_changing_is_left_for_the_next_run(
    session: Session, shop: list[ProductV1], monkeypatch: pytest.MonkeyPatch
) -> None:
    _inject_before_first_update(session, monkeypatch, _category_change(session, "p01"), 99)

    report = migrate(session, shop_v2, max_attempts=3)

    assert (report.backfill.conflicts, report.backfill.retried) == (1, 2)
    assert not report.complete
    assert "GSI1PK" not in _raw(session, "p01")
    assert _raw(session, "p01")["category"] == {"S": "garden3"}


def test_an_item_deleted_meanwhile_is_not_resurrected(
    session: Session, shop: list[ProductV1], monkeypatch: pytest.MonkeyPatch
) -> None:
    original = session.transport.call
    key = {"PK": {"S": "PRODUCT#p01"}, "SK": {"S": "PRODUCT"}}

    def call(operation: str, params: dict[str, Any], **context: Any) -> dict[str, Any]:
        if operation == "UpdateItem" and params["Key"] == key:
            original("DeleteItem", {"TableName": params["TableName"], "Key": key})
        return original(operation, params, **context)

    monkeypatch.setattr(session.transport, "call", call)
    report = migrate(session, shop_v2)

    assert report.backfill.vanished == 1
    assert session.get(Product, sku="p01") is None


class _Interrupt(Exception):
    pass


def test_a_checkpointed_run_resumes_where_it_stopped(
    session: Session, shop: list[ProductV1], tmp_path: Path
) -> None:
    checkpoint = tmp_path / "progress.json"

    def stop_after_first_page(counts: BackfillCounts) -> None:
        raise _Interrupt

    migrate(session, shop_v2, dry_run=True)  # nothing saved by a dry run
    with pytest.raises(_Interrupt):
        backfill(
            session, shop_v2, checkpoint=checkpoint, page_size=8, progress=stop_after_first_page
        )
    saved = json.loads(checkpoint.read_text())
    assert saved["done"] == [] and saved["positions"]["0"] is not None

    rest = migrate(session, shop_v2, checkpoint=checkpoint, page_size=8)

    assert rest.backfill.scanned == 31 - 8
    assert json.loads(checkpoint.read_text())["done"] == [0]
    assert len(session.query(Product.by_category, category="tools").all()) == 10
    assert backfill(session, shop_v2, checkpoint=checkpoint).scanned == 0
    with pytest.raises(CheckpointMismatch, match="belongs to another run"):
        backfill(session, shop_v2, checkpoint=checkpoint, segments=4)


def test_an_existing_gsi_of_another_shape_is_refused(
    session: Session, shop: list[ProductV1]
) -> None:
    migrate(session, shop_v2)

    with pytest.raises(MigrationError, match="GSI1 projects"):
        migrate(session, shop_v3)


def test_a_provisioned_table_gets_throughput_for_the_new_index() -> None:
    schema = schema_of(shop_v2)
    live = LiveTable(
        "prod_shop",
        {
            "BillingModeSummary": {"BillingMode": "PROVISIONED"},
            "ProvisionedThroughput": {"ReadCapacityUnits": 5, "WriteCapacityUnits": 3},
            "AttributeDefinitions": [
                {"AttributeName": "PK", "AttributeType": "S"},
                {"AttributeName": "SK", "AttributeType": "S"},
            ],
        },
        {"TimeToLiveStatus": "DISABLED"},
    )

    request = gsi_create_request(schema, schema.gsis[0], live)

    assert request == {
        "TableName": "prod_shop",
        "AttributeDefinitions": [
            {"AttributeName": name, "AttributeType": "S"}
            for name in ("PK", "SK", "GSI1PK", "GSI1SK")
        ],
        "GlobalSecondaryIndexUpdates": [
            {
                "Create": {
                    "IndexName": "GSI1",
                    "KeySchema": [
                        {"AttributeName": "GSI1PK", "KeyType": "HASH"},
                        {"AttributeName": "GSI1SK", "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "ALL"},
                    "ProvisionedThroughput": {"ReadCapacityUnits": 5, "WriteCapacityUnits": 3},
                }
            }
        ],
    }


# -- the commands ---------------------------------------------------------------------


@pytest.fixture
def cli_args(
    session: Session, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> list[str]:
    """Connection options that point the command at the test session's backend."""
    monkeypatch.setitem(sys.modules, "dynaorm_migrate_models", sys.modules[__name__])
    transport = session.transport
    prefix = ["--table-prefix", transport.table_prefix]
    endpoint = transport.endpoint_url
    if endpoint is None or endpoint.endswith(".amazonaws.com"):  # the embedded backend
        return ["--in-memory", *prefix]
    # Another endpoint (DynamoDB Local): its credentials select the database.
    backend = request.getfixturevalue("dynamodb_backend")
    for name, value in backend.program_environment().items():
        monkeypatch.setenv(name, value)
    return ["--endpoint-url", endpoint, "--region", transport.region, *prefix]


def test_diff_and_migrate_commands(
    shop: list[ProductV1], cli_args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    target = "dynaorm_migrate_models:shop_v2"
    assert main(["diff", target, *cli_args]) == 2
    out = capsys.readouterr().out
    assert "+ GSI GSI1 (GSI1PK, GSI1SK) is missing" in out
    assert "+ TTL on 'expires_at' is DISABLED" in out

    assert main(["migrate", target, "--dry-run", *cli_args]) == 0
    out = capsys.readouterr().out
    assert "GSIs: would create GSI1" in out and "would update Product 20" in out

    assert main(["migrate", target, *cli_args]) == 0
    captured = capsys.readouterr()
    assert "GSIs: did create GSI1" in captured.out and "did update Product 20" in captured.out
    assert "creating GSI GSI1" in captured.err
    assert "backfill: 31 of about 31 items scanned" in captured.err  # plain progress lines

    assert main(["diff", target, *cli_args]) == 0
    assert "matches the schema" in capsys.readouterr().out
    assert main(["migrate", target, "--no-progress", *cli_args]) == 0
    captured = capsys.readouterr()
    assert "did update no items" in captured.out and "backfill:" not in captured.err


def test_commands_report_errors(
    session: Session, cli_args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["diff", "dynaorm_migrate_models:shop_v2", *cli_args]) == 1
    assert "dynaorm:" in capsys.readouterr().err


def test_diff_shows_what_migrate_leaves_alone_or_refuses(
    shop: list[ProductV1], cli_args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["migrate", "dynaorm_migrate_models:shop_v2", "--no-progress", *cli_args]) == 0
    capsys.readouterr()

    assert main(["diff", "dynaorm_migrate_models:shop_v1", *cli_args]) == 2
    assert capsys.readouterr().out.splitlines() == [
        "- GSI GSI1 exists but the schema does not use it",
        "- TTL is on 'expires_at'; the schema declares none",
    ]
    assert main(["diff", "dynaorm_migrate_models:shop_v3", *cli_args]) == 2
    out = capsys.readouterr().out
    assert out.startswith("! GSI GSI1 projects {'ProjectionType': 'ALL'}")
    assert main(["migrate", "dynaorm_migrate_models:shop_v3", *cli_args]) == 1
    assert "migrate does not change" in capsys.readouterr().err


def test_a_finished_checkpoint_says_why_nothing_was_scanned(
    shop: list[ProductV1],
    cli_args: list[str],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    checkpoint = ["--checkpoint", str(tmp_path / "progress.json"), "--no-progress"]
    assert main(["migrate", "dynaorm_migrate_models:shop_v2", *checkpoint, *cli_args]) == 0
    assert "backfill: 31 items scanned, did update Product 20" in capsys.readouterr().out

    assert main(["migrate", "dynaorm_migrate_models:shop_v2", *checkpoint, *cli_args]) == 0

    assert (
        "  backfill: the checkpoint says the backfill finished: scanned none, did update "
        "none; delete the checkpoint to scan again"
    ) in capsys.readouterr().out.splitlines()


def test_in_memory_explains_that_each_command_starts_empty(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "dynaorm_migrate_models", sys.modules[__name__])
    command = ["dynaorm_migrate_models:shop_v2", "--in-memory", "--table-prefix", "nowhere_"]
    for name in ("diff", "migrate"):
        assert main([name, *command]) == 1
        err = capsys.readouterr().err
        assert "table-not-found" in err
        assert "--in-memory starts an empty backend inside this process" in err
    with pytest.raises(SystemExit):
        main(["migrate", "--help"])
    assert "from a shell every command starts with no tables" in " ".join(
        capsys.readouterr().out.split()
    )


def test_a_worker_that_loses_the_race_to_create_a_gsi_or_ttl_carries_on(
    session: Session, shop: list[ProductV1], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Workers of a shared run all start with `migrate`: when another one sends the same
    UpdateTable / UpdateTimeToLive just before this one, this one finds them done."""
    original = session.transport.call
    raced: list[str] = []

    def call(operation: str, params: dict[str, Any], **context: Any) -> dict[str, Any]:
        if operation in ("UpdateTable", "UpdateTimeToLive") and operation not in raced:
            raced.append(operation)
            original(operation, params)  # the other worker's identical request lands first
        return original(operation, params, **context)

    monkeypatch.setattr(session.transport, "call", call)
    report = migrate(session, shop_v2)

    assert raced == ["UpdateTable", "UpdateTimeToLive"]
    assert report.created_gsis == []  # another worker did
    # DynamoDB refuses a second enable, moto accepts it: either way TTL ends up enabled.
    assert report.backfill.pending == {"Product": 20}
    assert diff_table(schema_of(shop_v2), describe_live(session, shop_v2)).in_sync
