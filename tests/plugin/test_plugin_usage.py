"""The pytest plugin, used the way an application's suite uses it: from the entry point."""

from __future__ import annotations

from tests.plugin.conftest import RunPytest

USAGE = """
    import pytest

    from dynaorm import Entity, Session, Table

    app = Table("inline")


    class Note(Entity, table=app, pk="NOTE#{note_id}", sk="NOTE"):
        note_id: str
        text: str


    @pytest.mark.dynaorm_tables(app)
    def test_write_and_read(dynaorm_session: Session) -> None:
        dynaorm_session.put(Note(note_id="n#1", text="hello"))
        assert dynaorm_session.get(Note, note_id="n#1") == Note(note_id="n#1", text="hello")


    @pytest.mark.dynaorm_tables(app)
    def test_each_test_starts_empty(dynaorm_session: Session) -> None:
        assert dynaorm_session.get(Note, note_id="n#1") is None


    def test_table_factory(dynaorm_session: Session, dynaorm_table) -> None:
        name = dynaorm_table(app)
        assert name.startswith("test_") and name.endswith("_inline")
        assert dynaorm_table(app) == name  # a second call reuses the table
        assert dynaorm_session.health_check(app)


    def test_no_table_without_asking(dynaorm_session: Session) -> None:
        assert not dynaorm_session.health_check(app)


    def test_embedded_backend_by_default(dynaorm_endpoint) -> None:
        assert dynaorm_endpoint is None
"""


def test_fixtures_come_from_the_entry_point(run_pytest: RunPytest) -> None:
    result = run_pytest(USAGE, "-v", "--strict-markers")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "5 passed" in result.stdout
    assert (
        "dynaorm fixtures (dynaorm_session): embedded backend (moto, in-process)" in result.stdout
    )


def test_disabling_the_plugin_removes_the_fixtures(run_pytest: RunPytest) -> None:
    source = """
        def test_needs_a_session(dynaorm_session) -> None:
            pass
    """
    result = run_pytest(source, "-p", "no:dynaorm")
    assert result.returncode != 0
    assert "fixture 'dynaorm_session' not found" in result.stdout


ENDPOINT = """
    def test_endpoint(dynaorm_endpoint, dynaorm_session) -> None:
        assert dynaorm_endpoint == "http://127.0.0.1:9"
        assert dynaorm_session.transport.endpoint_url == "http://127.0.0.1:9"
"""


def test_endpoint_option(run_pytest: RunPytest) -> None:
    # Port 9 (discard) is never a DynamoDB endpoint; nothing here sends a request.
    result = run_pytest(ENDPOINT, "--dynaorm-endpoint", "http://127.0.0.1:9")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "dynaorm fixtures (dynaorm_session): endpoint http://127.0.0.1:9" in result.stdout


def test_endpoint_from_the_environment(run_pytest: RunPytest) -> None:
    result = run_pytest(ENDPOINT, env={"DYNAORM_TEST_ENDPOINT": "http://127.0.0.1:9"})
    assert result.returncode == 0, result.stdout + result.stderr


SESSION_OPTIONS = """
    import pytest

    from dynaorm import Entity, Session, Table

    app = Table("inline")


    class Note(Entity, table=app, pk="NOTE#{note_id}", sk="NOTE#{n}"):
        note_id: str
        n: int


    @pytest.fixture
    def dynaorm_session_options():
        return {"cursor_secret": b"s3cret"}


    @pytest.mark.dynaorm_tables(app)
    def test_signed_cursors(dynaorm_session: Session) -> None:
        assert dynaorm_session.cursor_secret == b"s3cret"
        dynaorm_session.batch_write(put=[Note(note_id="a", n=n) for n in range(3)])
        page = dynaorm_session.query(Note, note_id="a").page(2)
        assert [note.n for note in page.items] == [0, 1] and page.cursor is not None


    @pytest.mark.dynaorm_tables("not a table")
    def test_bad_marker(dynaorm_session: Session) -> None:
        pass
"""


def test_session_options_and_marker_errors(run_pytest: RunPytest) -> None:
    result = run_pytest(SESSION_OPTIONS, "-v")
    assert "test_signed_cursors PASSED" in result.stdout, result.stdout + result.stderr
    assert "test_bad_marker ERROR" in result.stdout
    assert "expected a dynaorm Table, got 'not a table'" in result.stdout


ASYNC_USAGE = """
    import pytest

    from dynaorm import AsyncSession, Entity, Session, Table

    app = Table("inline")


    class Note(Entity, table=app, pk="NOTE#{note_id}", sk="NOTE"):
        note_id: str
        text: str


    @pytest.mark.dynaorm_tables(app)
    @pytest.mark.asyncio
    async def test_async_write_sync_read(
        dynaorm_async_session: AsyncSession, dynaorm_session: Session
    ) -> None:
        await dynaorm_async_session.put(Note(note_id="n1", text="hello"))
        found = await dynaorm_async_session.get(Note, note_id="n1")
        assert found == Note(note_id="n1", text="hello")
        assert dynaorm_session.get(Note, note_id="n1") is not None  # the same table


    @pytest.mark.dynaorm_tables(app)
    @pytest.mark.asyncio
    async def test_each_async_test_starts_empty(dynaorm_async_session: AsyncSession) -> None:
        assert await dynaorm_async_session.get(Note, note_id="n1") is None
        assert await dynaorm_async_session.health_check(app)


    @pytest.mark.asyncio
    async def test_no_table_without_asking(dynaorm_async_session: AsyncSession) -> None:
        assert not await dynaorm_async_session.health_check(app)
"""


def test_async_fixture_shares_the_isolated_tables(run_pytest: RunPytest) -> None:
    result = run_pytest(ASYNC_USAGE, "-v", "--strict-markers", "-p", "asyncio")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout
