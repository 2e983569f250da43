"""The `dynaorm schema` command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dynaorm.cli import main

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
