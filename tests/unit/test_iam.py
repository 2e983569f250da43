"""`iam_policy()` and `dynaorm iam`: the exact documents, tenant patterns and refusals."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dynaorm import Entity, Index, Table, iam_policy, tenant_tag_value
from dynaorm.cli import main
from dynaorm.errors import PolicyError
from tests.iam_check import Need, allows

EXAMPLES = Path(__file__).parents[2] / "examples"
ARN = "arn:aws:dynamodb:eu-west-1:123456789012:table/prod_blog"
ITEMS = [
    "dynamodb:BatchGetItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:ConditionCheckItem",
    "dynamodb:DeleteItem",
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:Query",
    "dynamodb:Scan",
    "dynamodb:UpdateItem",
]


@pytest.fixture
def blog(monkeypatch: pytest.MonkeyPatch) -> Table:
    monkeypatch.syspath_prepend(str(EXAMPLES))
    from blog_models import app  # noqa: PLC0415 - the examples folder joins sys.path here

    return app


def _status(arn: str = ARN) -> dict[str, Any]:
    return {
        "Sid": "DynaormTableStatus",
        "Effect": "Allow",
        "Action": ["dynamodb:DescribeTable"],
        "Resource": [arn],
    }


def test_the_runtime_policy_of_the_blog(blog: Table) -> None:
    policy = iam_policy(blog, region="eu-west-1", account="123456789012", table_prefix="prod_")

    assert policy == {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "DynaormItems", "Effect": "Allow", "Action": ITEMS, "Resource": [ARN]},
            {
                "Sid": "DynaormIndexQueries",
                "Effect": "Allow",
                "Action": ["dynamodb:Query"],
                "Resource": [f"{ARN}/index/GSI1", f"{ARN}/index/GSI2"],
            },
            _status(),
        ],
    }


def test_read_only_and_admin_policies(blog: Table) -> None:
    options: dict[str, Any] = {"region": "eu-west-1", "account": "123456789012"}
    read = iam_policy(blog, access="read-only", table_prefix="prod_", **options)
    admin = iam_policy(blog, access="admin", table_prefix="prod_", **options)

    assert read["Statement"][0]["Action"] == [
        "dynamodb:BatchGetItem",
        "dynamodb:GetItem",
        "dynamodb:Query",
        "dynamodb:Scan",
    ]
    assert (
        read["Statement"][1:] == iam_policy(blog, table_prefix="prod_", **options)["Statement"][1:]
    )
    assert admin["Statement"] == [
        {
            "Sid": "DynaormAdmin",
            "Effect": "Allow",
            "Action": [
                "dynamodb:CreateTable",
                "dynamodb:DescribeTable",
                "dynamodb:DescribeTimeToLive",
                "dynamodb:GetItem",
                "dynamodb:Scan",
                "dynamodb:UpdateItem",
                "dynamodb:UpdateTable",
                "dynamodb:UpdateTimeToLive",
            ],
            "Resource": [ARN],
        }
    ]
    with pytest.raises(PolicyError, match="access='write'"):
        iam_policy(blog, access="write")  # type: ignore[arg-type]


def test_the_prefix_comes_from_the_environment_unless_given(
    blog: Table, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DYNAMODB_TABLE_PREFIX", "staging_")
    assert iam_policy(blog)["Statement"][2]["Resource"] == [
        "arn:aws:dynamodb:*:*:table/staging_blog"
    ]
    explicit = iam_policy(blog, table_prefix="", partition="aws-cn", region="cn-north-1")
    assert explicit["Statement"][2]["Resource"] == ["arn:aws-cn:dynamodb:cn-north-1:*:table/blog"]


@pytest.mark.parametrize(
    "option", [{"account": "12345"}, {"region": "eu-west-1:1/"}, {"partition": "aws:"}]
)
def test_arn_parts_are_checked(blog: Table, option: dict[str, str]) -> None:
    with pytest.raises(PolicyError, match="cannot go into an ARN") as info:
        iam_policy(blog, **option)  # type: ignore[arg-type]
    assert info.value.field == next(iter(option))


plain = Table("plain")


class Note(Entity, table=plain, pk="NOTE#{note_id}", sk="NOTE"):
    note_id: str


def test_a_table_without_gsis_grants_no_index() -> None:
    sids = [s["Sid"] for s in iam_policy(plain)["Statement"]]
    assert sids == ["DynaormItems", "DynaormTableStatus"]


# -- tenants -----------------------------------------------------------------------------------

tenants = Table("tenants")


class Project(Entity, table=tenants, pk="TENANT#{tenant_id}", sk="PROJECT#{project_id}"):
    tenant_id: str
    project_id: str
    owner: str

    by_owner = Index(pk="TENANT#{tenant_id}#OWNER#{owner}", sk="{project_id}")


class Member(Entity, table=tenants, pk="TENANT#{tenant_id}#MEMBER#{member_id}", sk="MEMBER"):
    tenant_id: str
    member_id: str


TAG = "${aws:PrincipalTag/org}"


def test_a_tenant_policy_conditions_items_and_index_queries_on_the_leading_keys() -> None:
    policy = iam_policy(tenants, tenant_slot="tenant_id", tenant_tag="org")

    condition = {
        "ForAllValues:StringLike": {"dynamodb:LeadingKeys": [f"TENANT#{TAG}", f"TENANT#{TAG}#*"]},
        "Null": {"dynamodb:LeadingKeys": "false"},
    }
    items, queries, status = policy["Statement"]
    assert items["Action"] == [a for a in ITEMS if a != "dynamodb:Scan"]
    assert items["Condition"] == queries["Condition"] == condition
    assert queries["Resource"] == ["arn:aws:dynamodb:*:*:table/tenants/index/GSI1"]
    assert "Condition" not in status  # the table's description names no tenant's data


starry = Table("starry")


class Star(Entity, table=starry, pk="A*?#{tenant_id}", sk="S"):
    tenant_id: str


def test_wildcard_characters_of_literals_are_matched_literally() -> None:
    (pattern,) = iam_policy(starry, tenant_slot="tenant_id")["Statement"][0]["Condition"][
        "ForAllValues:StringLike"
    ]["dynamodb:LeadingKeys"]
    assert pattern == "A${*}${?}#${aws:PrincipalTag/tenant_id}"
    need = Need("dynamodb:GetItem", "starry", leading_keys=("AXY#acme",))
    assert not allows(iam_policy(starry, tenant_slot="tenant_id"), need, {"tenant_id": "acme"})


@given(
    tenant=st.text(),
    stranger=st.text(),
    member=st.text(),
    owner=st.text(),
)
def test_the_condition_matches_exactly_the_partition_keys_of_its_tenant(
    tenant: str, stranger: str, member: str, owner: str
) -> None:
    """Whatever the tenant id holds (`#`, `$`, `*`, empty), the encoded key of its items
    matches the pattern filled with its encoded value, and never another tenant's."""
    policy = iam_policy(tenants, tenant_slot="tenant_id", table_prefix="")
    keys = [
        Project.key(tenant_id=tenant, project_id="p").pk,
        Member.key(tenant_id=tenant, member_id=member).pk,
        Project.by_owner.pk.encode({"tenant_id": tenant, "owner": owner}),
    ]
    codec = Project.__dynaorm__.pk.segments[1].codec  # type: ignore[union-attr]
    for key in keys:
        need = Need("dynamodb:PutItem", "tenants", leading_keys=(key,))
        assert allows(policy, need, {"tenant_id": codec.encode(tenant)})
        if stranger != tenant:
            assert not allows(policy, need, {"tenant_id": codec.encode(stranger)})


def test_tenant_tag_values_are_the_encoded_slot() -> None:
    assert tenant_tag_value(tenants, "tenant_id", "acme-eu_1") == "acme-eu_1"
    with pytest.raises(PolicyError, match=r"'acme\$ceu'") as info:
        tenant_tag_value(tenants, "tenant_id", "acme#eu")
    assert (info.value.entity, info.value.field, info.value.value) == (
        "Project",
        "tenant_id",
        "acme#eu",
    )
    with pytest.raises(PolicyError, match="no partition key"):
        tenant_tag_value(tenants, "owner", "ann")


numbered = Table("numbered")


class Shard(Entity, table=numbered, pk="ORG#{org}#SHARD", sk="S"):
    org: int


def test_an_int_tenant_tags_its_fixed_width_encoding() -> None:
    assert tenant_tag_value(numbered, "org", 42) == "00000000000000000042"
    assert tenant_tag_value(numbered, "org", -1) == "-99999999999999999999"


# -- refusals ----------------------------------------------------------------------------------

guarded = Table("guarded")


class Account(Entity, table=guarded, pk="T#{tenant_id}#A#{account_id}", sk="A", unique=("email",)):
    tenant_id: str
    account_id: str
    email: str


regional = Table("regional")


class Site(Entity, table=regional, pk="{region}#{tenant_id}", sk="SITE"):
    region: str
    tenant_id: str


class Color(Enum):
    RED = "red"


mixed = Table("mixed")


class Left(Entity, table=mixed, pk="L#{tenant_id}", sk="L"):
    tenant_id: str


class Right(Entity, table=mixed, pk="R#{tenant_id}", sk="R"):
    tenant_id: int


indexed = Table("indexed")


class Doc(Entity, table=indexed, pk="T#{tenant_id}", sk="D#{doc_id}"):
    tenant_id: str
    doc_id: str
    slug: str

    by_slug = Index(pk="SLUG#{slug}")


empty = Table("empty")


@pytest.mark.parametrize(
    ("table", "entity", "message"),
    [
        (guarded, "Account", "guard items whose partition key .UNIQUE#Account"),
        (regional, "Site", r"'\{region\}#\{tenant_id\}' does not start with the tenant slot"),
        (plain, "Note", r"'NOTE#\{note_id\}' does not start with the tenant slot"),
        (indexed, "Doc", r"index 'by_slug' partition key 'SLUG#\{slug\}'"),
        (mixed, None, r"encoded differently .*Left pk: str, Right pk: int"),
        (empty, None, "declares no entity"),
    ],
)
def test_tenant_conditions_that_cannot_cover_an_item_are_refused(
    table: Table, entity: str | None, message: str
) -> None:
    with pytest.raises(PolicyError, match=message) as info:
        iam_policy(table, tenant_slot="tenant_id")
    assert (info.value.entity, info.value.field) == (entity, "tenant_id")


def test_a_tenant_needs_a_valid_tag_key_and_a_runtime_policy() -> None:
    with pytest.raises(PolicyError, match="not an IAM tag key"):
        iam_policy(tenants, tenant_slot="tenant_id", tenant_tag="org}/x${*")
    with pytest.raises(PolicyError, match="admin policy"):
        iam_policy(tenants, access="admin", tenant_slot="tenant_id")


# -- the command -------------------------------------------------------------------------------


def test_the_iam_command_prints_the_policy(
    blog: Table, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DYNAMODB_TABLE_PREFIX", "prod_")
    assert (
        main(["iam", "blog_models:app", "--region", "eu-west-1", "--account", "123456789012"]) == 0
    )
    assert json.loads(capsys.readouterr().out) == iam_policy(
        blog, region="eu-west-1", account="123456789012"
    )
    assert main(["iam", "blog_models:app", "--admin", "--table-prefix", "x_"]) == 0
    assert json.loads(capsys.readouterr().out) == iam_policy(
        blog, access="admin", table_prefix="x_"
    )
    assert (
        main(["iam", "tests.unit.test_iam:tenants", "--read-only", "--tenant-slot", "tenant_id"])
        == 0
    )
    assert json.loads(capsys.readouterr().out) == iam_policy(
        tenants, access="read-only", tenant_slot="tenant_id"
    )


def test_the_iam_command_reports_refusals(blog: Table, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["iam", "blog_models:app", "--tenant-slot", "user_id"]) == 1
    assert "User: unique=[['email']]" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["iam", "blog_models:app", "--admin", "--read-only"])
    assert info.value.code == 2
