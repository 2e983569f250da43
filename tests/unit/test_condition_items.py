"""A failed condition's stored item comes back decoded, whatever its values: for a
single write and for each failed action of a cancelled transaction (issue 15 item 5)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from dynaorm import Entity, Table
from dynaorm._items import entity_to_item
from dynaorm._outcomes import explain, transaction_error
from dynaorm._planner import plan_put
from dynaorm._writes import Action
from dynaorm.errors import ItemAlreadyExists, TransactionCanceled

shop = Table("conditem")


class ShopItem(Entity, table=shop, pk="ITEM#{item_id}", sk="I"):
    item_id: str
    name: str
    price: int = 0
    tags: set[str] = set()


items = st.builds(
    ShopItem,
    item_id=st.text(min_size=1, max_size=8),
    name=st.text(max_size=20),
    price=st.integers(min_value=-(10**12), max_value=10**12),
    tags=st.sets(st.text(min_size=1, max_size=5), max_size=3),
)


def _create(item: ShopItem) -> Action:
    (action,) = plan_put(item, "conditem", None, create=True, loaded=None).actions
    return action


@given(stored=items)
def test_a_failed_create_reports_any_stored_item_decoded(stored: ShopItem) -> None:
    raw = entity_to_item(stored)
    error = explain(_create(stored), raw, None)
    assert isinstance(error, ItemAlreadyExists)
    assert error.item == stored and type(error.item) is ShopItem
    assert error.stored == raw


@given(stored=st.lists(items, min_size=1, max_size=6), failed=st.data())
def test_each_failed_transaction_action_reports_its_own_item(
    stored: list[ShopItem], failed: st.DataObject
) -> None:
    mask = failed.draw(st.lists(st.booleans(), min_size=len(stored), max_size=len(stored)))
    reasons = [
        {"Code": "ConditionalCheckFailed", "Item": entity_to_item(item)} if fails else None
        for item, fails in zip(stored, mask, strict=True)
    ]
    canceled = TransactionCanceled("cancelled", reasons=reasons)
    result = transaction_error(canceled, [_create(item) for item in stored])
    assert canceled.items == [
        item if fails else None for item, fails in zip(stored, mask, strict=True)
    ]
    if any(mask):
        assert isinstance(result, ItemAlreadyExists)
        assert result.item == stored[mask.index(True)]
    else:
        assert result is canceled
