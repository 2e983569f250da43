"""Facts of DynamoDB's API that every transport and telemetry share; imports nothing heavy.

Telemetry is loaded with the package, so what it needs to know about requests and error
codes lives here rather than in a transport module: importing a transport would pull its
HTTP stack (botocore and pynamodb for the botocore transport) into every cold start.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["THROTTLING_CODES", "innermost", "tables_of"]

# Reported after the transport has spent its retry budget on them.
THROTTLING_CODES = frozenset(
    {"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"}
)


def tables_of(sent: dict[str, Any]) -> str | None:
    """The table(s) a request names, comma-separated, for messages and span attributes."""
    if "TableName" in sent:
        return str(sent["TableName"])
    names: list[str] = list(sent.get("RequestItems", {}))
    for action in sent.get("TransactItems", []):
        names.extend(str(body.get("TableName")) for body in action.values())
    return ",".join(dict.fromkeys(names)) or None


def innermost(error: BaseException) -> BaseException:
    """The driver's own error under pynamodb's wrappers, or `error` itself.

    Only the botocore transport raises wrapped errors, and it can only have raised one if
    its module is loaded: asking `sys.modules` keeps this from importing it (and botocore).
    """
    transport = sys.modules.get("dynaorm._transport")
    if transport is None:
        return error
    peeled: BaseException = transport._innermost(error)
    return peeled
