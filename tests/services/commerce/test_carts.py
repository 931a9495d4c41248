"""The cart state: order-independent, duplicate-proof, and closed for good by an order."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from services.commerce.carts import CartState, apply
from services.commerce.events import CartEvent, CartEventKind, Product
from tests.services.commerce.strategies import START, cart_event, cart_events


def fold(events: list[CartEvent]) -> CartState:
    state: CartState | None = None
    for event in events:
        state = apply(state, event)
    assert state is not None
    return state


def ev(
    event_id: str,
    kind: CartEventKind,
    minutes: int,
    product: Product | None = None,
    **fields: object,
) -> CartEvent:
    return CartEvent.model_validate(
        {"event_id": event_id, "kind": kind, "at": START + timedelta(minutes=minutes), "cart_id": "c1"}
        | ({"product": product} if product else {})
        | fields
    )


MUG = Product(id="mug", name="Mug", price=Decimal("12.50"), quantity=1)


@given(st.data(), cart_events(min_size=1))
def test_any_arrival_order_with_duplicates_gives_the_same_cart(data: st.DataObject, events: list[CartEvent]) -> None:
    duplicates = data.draw(st.lists(st.sampled_from(events), max_size=6))
    shuffled = data.draw(st.permutations(events + duplicates))
    assert fold(shuffled) == fold(events)


@given(cart_events(min_size=1))
def test_total_is_the_sum_of_line_prices_times_quantities(events: list[CartEvent]) -> None:
    state = fold(events)
    assert state.total == sum(((line.price or Decimal(0)) * line.quantity for line in state.lines), Decimal(0))
    assert all(line.quantity > 0 for line in state.lines)


@given(st.data(), cart_events(min_size=0, max_size=10))
def test_an_order_closes_the_cart_whenever_it_arrives_and_whatever_its_time(
    data: st.DataObject, events: list[CartEvent]
) -> None:
    order = data.draw(cart_event("order", kinds=["order_completed"]))
    arrival = data.draw(st.permutations([*events, order]))
    state: CartState | None = None
    for n, event in enumerate(arrival, start=1):
        state = apply(state, event)
        arrived = arrival[:n]
        if order in arrived:
            assert state.status == "ordered"
            assert state.ordered_at == min(e.at for e in arrived if e.kind == "order_completed")


@given(cart_events(min_size=1))
def test_last_activity_is_the_latest_activity_time(events: list[CartEvent]) -> None:
    activity = [e.at for e in events if e.kind != "order_completed"]
    assert fold(events).last_activity_at == (max(activity) if activity else None)


def test_adds_and_removes_sum_per_product_and_late_arrivals_are_placed_by_time() -> None:
    two = MUG.model_copy(update={"quantity": 2})
    state = fold(
        [ev("a2", "product_added", 10, two), ev("r1", "product_removed", 20, MUG), ev("a1", "product_added", 0, MUG)]
    )
    assert [(line.product_id, line.quantity) for line in state.lines] == [("mug", 2)]
    assert state.total == Decimal("25.00")
    assert state.last_activity_at == START + timedelta(minutes=20)


def test_a_duplicate_event_id_is_counted_once() -> None:
    add = ev("a1", "product_added", 0, MUG)
    state = fold([add, add, add])
    assert state.item_count == 1 and len(state.events) == 1


def test_an_add_stamped_before_the_order_but_arriving_after_it_does_not_reopen_the_cart() -> None:
    state = fold([ev("a1", "product_added", 0, MUG), ev("o", "order_completed", 30, order_id="o1")])
    late = apply(state, ev("a2", "product_added", 10, MUG.model_copy(update={"id": "tea"})))
    assert late.status == "ordered"
    assert (late.ordered_at, late.order_id) == (START + timedelta(minutes=30), "o1")


def test_removing_everything_empties_the_cart_and_adding_again_reopens_it() -> None:
    emptied = fold([ev("a1", "product_added", 0, MUG), ev("r1", "product_removed", 5, MUG, removes_line=True)])
    assert emptied.status == "emptied" and emptied.lines == ()
    again = apply(emptied, ev("a2", "product_added", 9, MUG))
    assert again.status == "open" and again.item_count == 1


def test_cart_emptied_event_clears_the_contents() -> None:
    state = fold([ev("a1", "product_added", 0, MUG), ev("x", "cart_emptied", 5)])
    assert state.status == "emptied" and state.total == 0


def test_checkout_snapshot_replaces_the_contents_and_earlier_deltas() -> None:
    tea = Product(id="tea", price=Decimal(4), quantity=3)
    state = fold(
        [
            ev("a1", "product_added", 0, MUG),
            ev("k", "checkout_started", 5, products=(tea,), checkout_id="k1", currency="EUR"),
            ev("a2", "product_added", 8, MUG),
        ]
    )
    assert state.status == "checkout" and state.checkout_id == "k1" and state.currency == "EUR"
    assert [(line.product_id, line.quantity) for line in state.lines] == [("mug", 1), ("tea", 3)]
    assert state.total == Decimal("24.50")


def test_a_later_event_without_a_price_keeps_the_known_price() -> None:
    state = fold([ev("a1", "product_added", 0, MUG), ev("a2", "product_added", 1, Product(id="mug", quantity=1))])
    assert state.lines[0].price == Decimal("12.50") and state.total == Decimal(25)


def test_removing_more_than_held_never_goes_negative() -> None:
    three = MUG.model_copy(update={"quantity": 3})
    # Replayed by time: the removal comes first and finds nothing to remove.
    state = fold([ev("a", "product_added", 2, MUG), ev("r", "product_removed", 1, three)])
    assert state.item_count == 1
