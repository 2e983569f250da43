"""The public surface: one sorted __all__, every name importable, private modules private."""

from __future__ import annotations

import dynaorm
import dynaorm.errors
import dynaorm.testing

EXPECTED = [
    "AsyncCollectionQuery",
    "AsyncQuery",
    "AsyncScan",
    "AsyncSession",
    "AsyncUnitOfWork",
    "BulkFailure",
    "BulkResult",
    "Collection",
    "CollectionPage",
    "CollectionQuery",
    "CollectionResult",
    "CompiledSchema",
    "Condition",
    "DynaormError",
    "Encrypted",
    "Entity",
    "EntityIndex",
    "Index",
    "Key",
    "KmsKeyProvider",
    "LocalKeyProvider",
    "Page",
    "Path",
    "Query",
    "QueryPlan",
    "RequestEvent",
    "Scan",
    "Session",
    "StreamChange",
    "Table",
    "TableCapacity",
    "Telemetry",
    "UnitOfWork",
    "Update",
    "Usage",
    "__version__",
    "errors",
    "iam_policy",
    "schema_of",
    "tenant_tag_value",
]


def test_exported_members() -> None:
    assert dynaorm.__all__ == EXPECTED
    for name in dynaorm.__all__:
        assert hasattr(dynaorm, name), name


def test_every_error_is_a_dynaorm_error_with_a_code() -> None:
    assert dynaorm.errors.__all__ == sorted(dynaorm.errors.__all__)
    codes = set()
    for name in dynaorm.errors.__all__:
        error = getattr(dynaorm.errors, name)
        assert issubclass(error, dynaorm.errors.DynaormError), name
        assert error.__doc__, name
        codes.add(error.code)
    assert len(codes) == len(dynaorm.errors.__all__)  # stable, distinct codes


def test_public_classes_are_documented() -> None:
    for name in dynaorm.__all__:
        value = getattr(dynaorm, name)
        if isinstance(value, type):
            assert value.__doc__, name
            assert value.__module__.startswith("dynaorm"), name
    assert dynaorm.testing.__all__ == sorted(dynaorm.testing.__all__)
