"""Test support for applications built on dynaorm.

- `dynaorm.testing.plugin`: the pytest plugin, registered through the `pytest11` entry
  point, so installing dynaorm makes the `dynaorm_session` and `dynaorm_table` fixtures
  and the `dynaorm_tables` marker available in every test suite.
- `dynaorm.testing.strategies`: hypothesis strategies for entities and hostile text
  (needs `hypothesis`, which dynaorm does not install for you).
- `TableManager`: create tables for a test and drop them afterwards, in or out of pytest.
- `use_clock`: the clock automatic timestamps (`created=` / `updated=`) read, for a block.
"""

from dynaorm._timestamps import use_clock
from dynaorm.testing._tables import (
    TableManager,
    isolated_async_session,
    isolated_session,
    unique_prefix,
)

__all__ = [
    "TableManager",
    "isolated_async_session",
    "isolated_session",
    "unique_prefix",
    "use_clock",
]
