"""The `dynaorm schema` command."""

from __future__ import annotations

import io
import json
import subprocess
import sys
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
