"""An unsigned cursor's key is accepted exactly when the query could have returned it."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parents[2] / "examples"))

from blog_models import Post, app

from dynaorm._compiler import schema_of
from dynaorm._cursor import check_resume_key
from dynaorm.errors import InvalidCursor

UTC = dt.timezone.utc
moments = st.datetimes(
    min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2100, 1, 1), timezones=st.just(UTC)
)


@given(
    user_id=st.sampled_from(["u1", "u10", "u"]),
    post_id=st.text(),
    created_at=moments,
    window=st.tuples(moments, moments).map(sorted),
)
def test_resume_key_is_accepted_iff_it_is_in_the_query_range(
    user_id: str, post_id: str, created_at: dt.datetime, window: list[dt.datetime]
) -> None:
    low, high = window
    plan = schema_of(app).plan(
        Post, {"user_id": "u1"}, op="between", field="created_at", operand=(low, high)
    )
    post = Post(user_id=user_id, post_id=post_id, title="t", created_at=created_at)
    key = {name: {"S": value["S"]} for name, value in post.get_key().to_dynamodb().items()}
    returnable = user_id == "u1" and low <= created_at <= high
    if returnable:
        check_resume_key(key, plan, Post.__dynaorm__, None)
    else:
        with pytest.raises(InvalidCursor):
            check_resume_key(key, plan, Post.__dynaorm__, None)
