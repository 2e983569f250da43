"""Small builders of blog entities shared by the integration tests."""

from __future__ import annotations

import datetime as dt
from typing import Any

from blog_models import Post

UTC = dt.timezone.utc
AT = dt.datetime(2024, 5, 1, 9, 30, tzinfo=UTC)


def post(n: int = 1, **changes: Any) -> Post:
    """Post number `n` of user u1, created `n` days after AT; fields overridable."""
    values: dict[str, Any] = {
        "user_id": "u1",
        "post_id": f"p{n}",
        "title": f"Post {n}",
        "created_at": AT + dt.timedelta(days=n),
    }
    values.update(changes)
    return Post(**values)
