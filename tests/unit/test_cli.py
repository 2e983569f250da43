"""The `dynaorm` command: schema (and its lock), diff and migrate options, progress."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from dynaorm._backfill import BackfillCounts
from dynaorm.cli import _progress, main

EXAMPLES = Path(__file__).parents[2] / "examples"


@pytest.fixture(autouse=True)
def _examples_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(EXAMPLES))


def test_access_pattern_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "blog_models:app"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["ENTITY", "ACCESS", "INDEX", "PK", "SK", "EXAMPLE"]
    assert lines[2].split() == [
        "User", "primary", "key", "table", "PK", "=", "USER#{user_id}", "SK", "=", "PROFILE",
        "USER#user_id", "/", "PROFILE",
    ]  # fmt: skip
    assert any(line.startswith("Post") and "by_topic" in line and "GSI2" in line for line in lines)


def test_json_formats(capsys: pytest.CaptureFixture[str]) -> None:
    main(["schema", "blog_models:app", "--format", "create-table", "--table-name", "prod"])
    request = json.loads(capsys.readouterr().out)
    assert request["TableName"] == "prod"
    assert [g["IndexName"] for g in request["GlobalSecondaryIndexes"]] == ["GSI1", "GSI2"]
    main(["schema", "blog_models:app", "--format", "cloudformation"])
    assert json.loads(capsys.readouterr().out)["Type"] == "AWS::DynamoDB::Table"
    main(["schema", "blog_models:app", "--format", "json"])
    assert json.loads(capsys.readouterr().out)[0]["entity"] == "User"


def test_bad_specs_explain_themselves() -> None:
    with pytest.raises(SystemExit, match="expected module:table"):
        main(["schema", "blog_models"])
    with pytest.raises(SystemExit, match="cannot import"):
        main(["schema", "no_such_module:app"])
    with pytest.raises(SystemExit, match="not a dynaorm Table"):
        main(["schema", "blog_models:User"])


def test_console_script_is_installed() -> None:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "dynaorm"), "schema", "blog_models:app"],
        capture_output=True,
        text=True,
        cwd=EXAMPLES,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "by_email" in result.stdout


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_plain_lines_without_a_terminal() -> None:
    stream = io.StringIO()
    with _progress(stream, enabled=True) as update:
        assert update is not None
        update(BackfillCounts(scanned=3, pending={"Post": 2}, estimate=10))
    assert stream.getvalue() == "backfill: 3 of about 10 items scanned, 2 to update or updated\n"


def test_progress_is_a_bar_on_a_terminal() -> None:
    pytest.importorskip("rich")
    stream = _Terminal()
    with _progress(stream, enabled=True) as update:
        assert update is not None
        update(BackfillCounts(scanned=3, pending={"Post": 2}, estimate=10))
    assert "backfill, 2 to update" in stream.getvalue()
    assert "3/10" in stream.getvalue()


def test_progress_falls_back_to_lines_without_rich(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "rich.console", None)  # makes the import fail
    stream = _Terminal()
    with _progress(stream, enabled=True) as update:
        assert update is not None
        update(BackfillCounts(scanned=1))
    assert stream.getvalue() == "backfill: 1 items scanned, 0 to update or updated\n"


def test_progress_can_be_turned_off() -> None:
    with _progress(io.StringIO(), enabled=False) as update:
        assert update is None


def test_diff_and_migrate_document_their_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["migrate", "--help"])
    help_text = capsys.readouterr().out
    for option in ("--dry-run", "--checkpoint", "--endpoint-url", "--region", "--table-prefix",
                   "--in-memory", "--segments", "--no-progress"):  # fmt: skip
        assert option in help_text


def test_migrate_refuses_a_non_positive_count(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["migrate", "blog_models:app", "--segments", "0"])
    assert "expected a positive number, got 0" in capsys.readouterr().err


# -- the schema lock ------------------------------------------------------------------

_SHOP = """
from dynaorm import Entity, Index, Table

app = Table("shop", lock={lock!r})


class Product(Entity, table=app, pk="P#{{sku}}", sk="P"):
    sku: str
    name: str
{indexes}
"""


def _shop_module(
    path: Path, module: str, indexes: Sequence[str], lock: str | None = "shop.lock.json"
) -> str:
    body = "".join(f"    {line}\n" for line in indexes)
    (path / f"{module}.py").write_text(_SHOP.format(lock=lock, indexes=body))
    return f"{module}:app"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


BY_SKU = 'by_sku = Index(pk="SKU#{sku}")'
BY_NAME = 'by_name = Index(pk="NAME#{name}")'
BY_CODE = 'by_code = Index(pk="CODE#{sku}")'


def test_schema_lock_is_written_then_keeps_indexes_in_place(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["schema", _shop_module(workdir, "shop_v1", [BY_SKU, BY_NAME]), "--lock"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "wrote shop.lock.json: 2 indexes of table shop",
        "+ Product.by_name -> GSI1 (GSI1PK, GSI1SK, ALL): new, not in the lock",
        "+ Product.by_sku -> GSI2 (GSI2PK, GSI2SK, ALL): new, not in the lock",
    ]
    locked = json.loads((workdir / "shop.lock.json").read_text())["tables"]["shop"]
    assert {name: entry["gsi"] for name, entry in locked.items()} == {
        "Product.by_name": "GSI1",
        "Product.by_sku": "GSI2",
    }
    # A new index that sorts first, lines reordered: the locked indexes stay.
    target = _shop_module(workdir, "shop_v2", [BY_NAME, BY_CODE, BY_SKU])
    assert main(["schema", target]) == 0
    rows = [line.split()[:3] for line in capsys.readouterr().out.splitlines()[3:]]
    assert rows == [["Product", "by_name", "GSI1"], ["Product", "by_code", "GSI3"],
                    ["Product", "by_sku", "GSI2"]]  # fmt: skip
    assert main(["schema", target, "--lock"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "wrote shop.lock.json: 3 indexes of table shop",
        "+ Product.by_code -> GSI3 (GSI3PK, GSI3SK, ALL): new, not in the lock",
    ]


def test_schema_lock_refuses_to_move_an_index_without_force(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["schema", _shop_module(workdir, "shop_pin1", [BY_SKU, BY_NAME]), "--lock"])
    before = (workdir / "shop.lock.json").read_text()
    capsys.readouterr()
    pinned = 'by_sku = Index(pk="SKU#{sku}", gsi="GSI7")'
    target = _shop_module(workdir, "shop_pin2", [pinned, BY_NAME])
    assert main(["schema", target]) == 1
    assert "Product.by_sku: the schema lock places it on GSI2" in capsys.readouterr().err
    assert main(["schema", target, "--lock"]) == 1
    assert capsys.readouterr().out.splitlines() == [
        "! Product.by_sku: the lock places it on GSI2 (GSI2PK, GSI2SK, ALL), the schema on "
        "GSI7 (GSI7PK, GSI7SK, ALL) (pinned with gsi=)",
        "shop.lock.json is unchanged: pass --force to move these indexes, then run "
        "`dynaorm migrate` to backfill their new GSIs",
    ]
    assert (workdir / "shop.lock.json").read_text() == before
    assert main(["schema", target, "--lock", "--force"]) == 0
    assert capsys.readouterr().out.startswith("wrote shop.lock.json: 2 indexes")
    assert main(["schema", target]) == 0


def test_schema_lock_needs_a_path_when_the_table_declares_none(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = _shop_module(workdir, "shop_nolock", [BY_SKU], lock=None)
    with pytest.raises(SystemExit, match="--lock needs a path"):
        main(["schema", target, "--lock"])
    assert main(["schema", target, "--lock", "elsewhere.json"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        "note: Table('shop') does not declare lock='elsewhere.json'; the compiler honours "
        "a lock only when the table declares it"
    )
    assert "shop" in json.loads((workdir / "elsewhere.json").read_text())["tables"]
