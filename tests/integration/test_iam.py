"""The generated IAM policies against the requests dynaorm really sends, on both backends.

Each test records what a workload sends and checks every permission it needed with the
evaluator in tests/iam_check.py (written from the DynamoDB and IAM docs, not from
dynaorm/_iam.py): allowed, and nothing granted that the workload did not use. The last
test of the run checks everything the whole integration suite sent.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from blog_models import Post, User, app, user_feed

from dynaorm import Entity, Index, Session, Table, iam_policy, tenant_tag_value
from dynaorm._migrate import migrate
from tests.dynamodb_local import Backend
from tests.iam_check import (
    ACCOUNT,
    REGION,
    AccessLog,
    Need,
    allows,
    declared_tables,
    key_names_of,
    needs,
)

from .conftest import ACCESS_LOG, Recorder
from .factories import post

# Requests the suite sends that no generated policy grants, and why.
EXEMPT = {
    "dynamodb:DeleteTable": "the fixtures drop each test's tables; dynaorm's API never needs it",
    "dynamodb:ListTables": "health_check() without a table; IAM cannot scope it to a table",
}


def _policy(session: Session, table: Table, **options: Any) -> dict[str, Any]:
    return iam_policy(
        table,
        region=REGION,
        account=ACCOUNT,
        table_prefix=session.transport.table_prefix,
        **options,
    )


def _needs(session: Session, recorder: Recorder, *tables: Table) -> list[Need]:
    key_names = key_names_of({session.table_name(t): t for t in tables})
    return [need for op, params in recorder.calls for need in needs(op, params, key_names)]


def _granted(policy: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (action, resource)
        for statement in policy["Statement"]
        for action in statement["Action"]
        for resource in statement["Resource"]
    }


def exercise(session: Session) -> None:
    """Every runtime call of the public API, on the blog table."""
    ann = User(user_id="u1", email="ann@example.com", name="Ann")
    session.create(ann)  # a transaction: the user and its unique guard
    first = post(1, topic="dynamodb")
    session.put(first)
    session.update(first, add={"likes": 1})
    assert session.get(User, user_id="u1") == ann
    assert session.query(Post, user_id="u1").all()
    assert session.query(Post.by_topic, topic="dynamodb").all()
    assert session.query(Post.by_post, post_id="p1").all()
    assert session.query(User.by_email, email="ann@example.com").all()
    assert session.collection(user_feed, user_id="u1")[User] == [ann]
    assert session.scan(Post).all()
    session.batch_write(put=[post(2), post(3)])
    session.batch_write(delete=[post(3).get_key()])
    assert len(session.batch_get([first.get_key(), post(2).get_key()])) == 2
    with session.unit_of_work() as uow:
        user = uow.get(User, user_id="u1")
        assert user is not None
        uow.check(post(2), Post.likes == 0)
        user.name = "Ann B."
        uow.add(post(4))
    session.delete(first)
    assert session.health_check(app)


def test_the_runtime_policy_grants_exactly_what_the_api_sends(
    session: Session, recorder: Recorder
) -> None:
    exercise(session)
    policy = _policy(session, app)

    sent = _needs(session, recorder, app)
    assert [need for need in sent if not allows(policy, need)] == []
    assert {(need.action, need.arn()) for need in sent} == _granted(policy)


def test_the_read_only_policy_allows_the_reads_and_refuses_every_write(
    session: Session, recorder: Recorder
) -> None:
    exercise(session)
    policy = _policy(session, app, access="read-only")

    sent = _needs(session, recorder, app)
    reads = {"GetItem", "BatchGetItem", "Query", "Scan", "DescribeTable"}
    refused = {need.action for need in sent if not allows(policy, need)}
    assert refused == {
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:BatchWriteItem",
        "dynamodb:ConditionCheckItem",
    }
    assert {need.action for need in sent if allows(policy, need)} == {
        f"dynamodb:{action}" for action in reads
    }


# -- admin: create_table and migrate ----------------------------------------------------------

catalog_v1 = Table("catalog")


class ItemV1(Entity, table=catalog_v1, pk="ITEM#{sku}", sk="ITEM", type_name="Item"):
    sku: str
    shelf: str | None = None


catalog_v2 = Table("catalog", ttl="expires_at")


class Item(Entity, table=catalog_v2, pk="ITEM#{sku}", sk="ITEM"):
    sku: str
    shelf: str | None = None
    expires_at: datetime | None = None

    by_shelf = Index(pk="SHELF#{shelf}")


@pytest.fixture
def other(dynamodb_backend: Backend, session: Session) -> Iterator[Session]:
    """A second session on the same tables, whose requests the recorder does not see."""
    other = dynamodb_backend.session(table_prefix=session.transport.table_prefix)
    yield other
    other.transport.close()


def test_create_table_and_migrate_need_only_the_admin_policy(
    session: Session,
    other: Session,
    recorder: Recorder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    recorder.clear()
    session.create_table(catalog_v1)
    other.batch_write(put=[ItemV1(sku=f"s{i}", shelf=f"A{i % 2}") for i in range(6)])
    # A second writer changes an item between the backfill's read and its update, so the
    # backfill's update fails its condition and re-reads the item.
    real_call = session.transport.call
    raced = []

    def call(operation: str, params: dict[str, Any], **context: Any) -> dict[str, Any]:
        if operation == "UpdateItem" and not raced:
            raced.append(params["Key"])
            item = other.get(ItemV1, sku=params["Key"]["PK"]["S"].removeprefix("ITEM#"))
            assert item is not None
            other.put(ItemV1(sku=item.sku, shelf="B9"))
        return real_call(operation, params, **context)

    monkeypatch.setattr(session.transport, "call", call)
    try:
        report = migrate(session, catalog_v2)
    finally:
        other.delete_table(catalog_v2)
    assert report.complete and report.backfill.retried == 1

    policy = _policy(session, catalog_v2, access="admin")
    sent = _needs(session, recorder, catalog_v2)
    assert [need for need in sent if not allows(policy, need)] == []
    assert {(need.action, need.arn()) for need in sent} == _granted(policy)
    runtime = _policy(session, catalog_v2)
    assert not allows(runtime, Need("dynamodb:CreateTable", session.table_name(catalog_v2)))


# -- tenant-scoped policies ---------------------------------------------------------------------

tenants = Table("tenants")


class Project(Entity, table=tenants, pk="TENANT#{tenant_id}", sk="PROJECT#{project_id}"):
    tenant_id: str
    project_id: str
    owner: str

    by_owner = Index(pk="TENANT#{tenant_id}#OWNER#{owner}", sk="{project_id}")


class Member(
    Entity,
    table=tenants,
    pk="TENANT#{tenant_id}#MEMBER#{member_id}",
    sk="MEMBER",
    version="version",
):
    tenant_id: str
    member_id: str
    version: int = 0


def test_a_tenant_policy_allows_its_tenant_and_nobody_else(
    session: Session, other: Session, recorder: Recorder
) -> None:
    other.create_table(tenants)
    try:
        project = Project(tenant_id="acme", project_id="p1", owner="ann")
        session.put(project)
        session.create(Member(tenant_id="acme", member_id="m1"))
        assert session.query(Project, tenant_id="acme").all() == [project]
        assert session.query(Project.by_owner, tenant_id="acme", owner="ann").all() == [project]
        with session.unit_of_work() as uow:
            member = uow.get(Member, tenant_id="acme", member_id="m1")
            assert member is not None
            uow.check(project, Project.owner == "ann")
            uow.delete(member)
        session.batch_write(put=[Project(tenant_id="acme", project_id="p2", owner="bo")])
        assert len(session.batch_get([project.get_key()])) == 1
        session.delete(project)
        assert session.health_check(tenants)
    finally:
        other.delete_table(tenants)

    policy = _policy(session, tenants, tenant_slot="tenant_id")
    sent = _needs(session, recorder, tenants)
    item_needs = [need for need in sent if need.action != "dynamodb:DescribeTable"]
    assert all(need.leading_keys for need in item_needs)  # the checker saw every key
    acme = {"tenant_id": tenant_tag_value(tenants, "tenant_id", "acme")}
    assert [need for need in sent if not allows(policy, need, acme)] == []
    for stranger in ("acm", "acme2", "ACME", "other"):
        tags = {"tenant_id": tenant_tag_value(tenants, "tenant_id", stranger)}
        assert [need for need in item_needs if allows(policy, need, tags)] == []
    assert [need for need in item_needs if allows(policy, need, {})] == []
    scan = Need("dynamodb:Scan", session.table_name(tenants))
    assert not allows(policy, scan, acme)


# -- the whole suite ---------------------------------------------------------------------------


def test_every_request_the_suite_sent_is_allowed(
    session: Session, request: pytest.FixtureRequest
) -> None:
    """Runs last (see conftest.py): every permission any integration test's requests
    needed is granted by the runtime or the admin policy of the table it went to."""
    exercise(session)
    log: AccessLog = request.config.stash[ACCESS_LOG]
    refused: list[str] = []
    tables: dict[str, list[Table]] = {}
    policies: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for sent in log.sent:
        need = sent.need
        if need.action in EXEMPT:
            continue
        where = f"{sent.test}: {need.action} on {need.arn()}"
        if need.table is None or not need.table.startswith(sent.prefix):
            refused.append(f"{where} (not a table of the session's prefix {sent.prefix!r})")
            continue
        logical = need.table.removeprefix(sent.prefix)
        if logical not in tables:
            tables[logical] = declared_tables(logical)
        if (sent.prefix, logical) not in policies:
            policies[sent.prefix, logical] = [
                iam_policy(t, access=access, table_prefix=sent.prefix)
                for t in tables[logical]
                for access in ("read-write", "admin")
            ]
        candidates = policies[sent.prefix, logical]
        if not candidates:
            refused.append(f"{where} (no declared Table named {logical!r})")
        elif not any(allows(policy, need) for policy in candidates):
            refused.append(where)
    assert len(log.sent) > 10
    assert refused == []
